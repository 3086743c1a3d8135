/* small churn: 2 million malloc/free pairs of sizes 8..2048 (xorshift,
 * fixed seed) through a pool of 1000 live slots. Each new block gets one
 * byte written so the work cannot be optimised away. */
#include "common.h"

#define OPS 2000000
#define SLOTS 1000

static unsigned char *slot[SLOTS];

int main(void)
{
    uint64_t s = 0x9e3779b97f4a7c15u, sum = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < OPS; i++) {
        uint64_t r = xorshift64(&s);
        size_t k = (size_t)(r % SLOTS);
        size_t n = 8 + (size_t)((r >> 32) % (2048 - 8 + 1));
        if (slot[k]) {
            sum += slot[k][0];
            free(slot[k]);
        }
        slot[k] = xmalloc(n);
        slot[k][n - 1] = (unsigned char)i;
    }
    uint64_t t1 = now_ns();
    struct mem m = mem_now();
    uint64_t t2 = now_ns();
    for (size_t k = 0; k < SLOTS; k++)
        free(slot[k]);
    uint64_t t3 = now_ns();
    bench_sink = sum;
    char extra[64];
    snprintf(extra, sizeof extra, "\"ops\": %d, \"slots\": %d", OPS, SLOTS);
    print_result("churn", (t1 - t0) + (t3 - t2), m, extra);
    return 0;
}
