/* probe: what a program finds in memory it never wrote, per path (not timed):
 * small fresh, small reused after free (tcache), large fresh, large reused,
 * realloc's grown tail. Each value is the byte read, or -2 if the bytes of
 * the block differ among themselves. */
#include "bench.h"

static int byte_of(const unsigned char *p, size_t n)
{
    int v = p[0];
    for (size_t i = 1; i < n; i += (n > 4096 ? 4093 : 1))
        if (p[i] != v)
            return -2;
    return p[n - 1] == v ? v : -2;
}

int main(void)
{
    unsigned char *a = xmalloc(100);
    int small_fresh = byte_of(a, 100);
    memset(a, 0x11, 100);
    free(a);
    unsigned char *b = xmalloc(100);
    int small_reused = byte_of(b, 100);
    size_t big = (size_t)8 << 20;
    unsigned char *c = xmalloc(big);
    int large_fresh = byte_of(c, big);
    memset(c, 0x22, big);
    free(c);
    unsigned char *d = xmalloc(big);
    int large_reused = byte_of(d, big);
    unsigned char *e = realloc(b, 4000);
    int grown = e ? byte_of(e + 100, 3900) : -3;
    unsigned char *f = realloc(d, 2 * big);
    int grown_large = f ? byte_of(f + big, big) : -3;
    free(e);
    free(f);
    result_add("\"small_fresh\": %d, \"small_reused\": %d, \"large_fresh\": %d, "
               "\"large_reused\": %d, \"realloc_tail\": %d, \"realloc_tail_large\": %d",
               small_fresh, small_reused, large_fresh, large_reused, grown, grown_large);
    struct mem m = {-1, -1};
    result_print(0, m);
    return 0;
}
