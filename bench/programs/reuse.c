/* reuse: malloc one SIZE block, write it whole, free it; ITER times (glibc
 * serves it again from its heap without faults).
 * usage: reuse SIZE ITER */
#include "bench.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reuse SIZE ITER\n");
        return 2;
    }
    size_t size = parse_size(argv[1]);
    size_t iter = parse_size(argv[2]);
    struct mem peak = {-1, -1};
    int fresh = -1;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < iter; i++) {
        unsigned char *b = xmalloc(size);
        if (i == iter - 1)
            fresh = ((volatile unsigned char *)b)[size / 2];  /* reused: stale or pattern */
        memset(b, (int)(i & 0x7f) + 1, size);
        bench_sink += b[size - 1];
        if (i == iter / 2) {
            uint64_t t1 = now_ns();
            peak = mem_now();
            t0 += now_ns() - t1;
        }
        free(b);
    }
    uint64_t t = now_ns() - t0;
    result_add("\"reused_byte\": %d, \"size\": %zu, \"iterations\": %zu", fresh, size, iter);
    result_print(t, peak);
    return 0;
}
