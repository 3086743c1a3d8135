/* threshold sweep: usage sweep SIZE ITERATIONS [reuse|live].
 * reuse (default): each iteration mallocs SIZE bytes, writes one byte on
 *   10% of its pages (every 10th page, at least the first) and frees it.
 * live: the ITERATIONS blocks are all kept live (same writes), memory is
 *   sampled, then they are all freed.
 * Run under different REFMALLOC_OPTIONS thresholds to compare the refpage
 * path with the small path (next allocator + memset). */
#include "common.h"

static void touch(unsigned char *p, size_t pages, size_t ps, long i)
{
    for (size_t q = 0; q < pages; q += 10)
        p[q * ps] = (unsigned char)(i + 1);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s SIZE ITERATIONS [reuse|live]\n", argv[0]);
        return 2;
    }
    size_t size = strtoull(argv[1], NULL, 0);
    long iters = strtol(argv[2], NULL, 0);
    int live = argc == 4 && strcmp(argv[3], "live") == 0;
    if (size == 0 || iters <= 0 || (argc == 4 && !live && strcmp(argv[3], "reuse"))) {
        fprintf(stderr, "sweep: bad SIZE, ITERATIONS or mode\n");
        return 2;
    }
    size_t ps = page_size();
    size_t pages = (size + ps - 1) / ps;
    uint64_t sum = 0, t_mem = 0;
    struct mem m;
    uint64_t t0 = now_ns();
    if (!live) {
        for (long i = 0; i < iters; i++) {
            unsigned char *p = xmalloc(size);
            touch(p, pages, ps, i);
            sum += ((volatile unsigned char *)p)[size - 1];
            free(p);
        }
        t_mem = now_ns();
        m = mem_now();
        t_mem = now_ns() - t_mem;
    } else {
        unsigned char **b = xmalloc((size_t)iters * sizeof *b);
        for (long i = 0; i < iters; i++) {
            b[i] = xmalloc(size);
            touch(b[i], pages, ps, i);
            sum += ((volatile unsigned char *)b[i])[size - 1];
        }
        t_mem = now_ns();
        m = mem_now();
        t_mem = now_ns() - t_mem;
        for (long i = 0; i < iters; i++)
            free(b[i]);
        free(b);
    }
    uint64_t t1 = now_ns();
    bench_sink = sum;
    char extra[128];
    snprintf(extra, sizeof extra,
             "\"size\": %zu, \"iterations\": %ld, \"mode\": \"%s\"", size, iters,
             live ? "live" : "reuse");
    print_result("sweep", (t1 - t0) - t_mem, m, extra);
    return 0;
}
