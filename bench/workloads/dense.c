/* dense: 8 times malloc a 64 MiB block, write it whole (memset), free.
 * Memory is sampled before the last free (one block live). */
#include "common.h"

#define ROUNDS 8
#define BLOCK ((size_t)64 << 20)

int main(void)
{
    struct mem m = {-1, -1};
    uint64_t sum = 0, t_mem = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        unsigned char *p = xmalloc(BLOCK);
        memset(p, i + 1, BLOCK);
        sum += ((volatile unsigned char *)p)[BLOCK / 2];
        if (i == ROUNDS - 1) {
            uint64_t a = now_ns();
            m = mem_now();
            t_mem = now_ns() - a;
        }
        free(p);
    }
    uint64_t t1 = now_ns();
    bench_sink = sum;
    char extra[96];
    snprintf(extra, sizeof extra, "\"rounds\": %d, \"block_bytes\": %zu",
             ROUNDS, BLOCK);
    print_result("dense", (t1 - t0) - t_mem, m, extra);
    return 0;
}
