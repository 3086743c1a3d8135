/* sparse: 4 blocks of 256 MiB; write one byte on every 100th page (1%),
 * read one byte of every page (a program reading memory it never wrote),
 * then free. Memory is sampled just before the frees. */
#include "common.h"

#define NBLOCKS 4
#define BLOCK ((size_t)256 << 20)
#define WRITE_EVERY 100

int main(void)
{
    size_t ps = page_size();
    size_t pages = BLOCK / ps;
    unsigned char *b[NBLOCKS];
    uint64_t sum = 0;
    int unwritten = -1;

    uint64_t t0 = now_ns();
    for (int i = 0; i < NBLOCKS; i++) {
        b[i] = xmalloc(BLOCK);
        for (size_t p = 0; p < pages; p += WRITE_EVERY)
            b[i][p * ps] = (unsigned char)(p + 1);
        for (size_t p = 0; p < pages; p++)
            sum += ((volatile unsigned char *)b[i])[p * ps];
    }
    uint64_t t1 = now_ns();
    struct mem m = mem_now();
    unwritten = ((volatile unsigned char *)b[0])[ps + 1];
    uint64_t t2 = now_ns();
    for (int i = 0; i < NBLOCKS; i++)
        free(b[i]);
    uint64_t t3 = now_ns();
    bench_sink = sum;

    char extra[160];
    snprintf(extra, sizeof extra,
             "\"unwritten_byte\": %d, \"blocks\": %d, \"block_bytes\": %zu, "
             "\"page_size\": %zu", unwritten, NBLOCKS, BLOCK, ps);
    print_result("sparse", (t1 - t0) + (t3 - t2), m, extra);
    return 0;
}
