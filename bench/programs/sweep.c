/* sweep: the threshold sweep's program (python -m bench --sweep).
 * Each block of SIZE bytes gets one byte written on every 10th page (at
 * least the first), 10% of its pages.
 *   reuse: ITER times malloc, write, free (the freed block comes back).
 *   live:  ITER blocks malloc'd and written, all kept live, memory sampled
 *          (the peak), then all freed.
 * Run with REFMALLOC_OPTIONS=threshold=SIZE (reference pages) and with a
 * threshold above SIZE (next allocator + memset) to compare the two paths.
 * The time leaves out the memory sampling. Also reports what the last block
 * reads on its second page, which is never written (the pattern check).
 * usage: sweep SIZE ITER reuse|live */
#include "bench.h"

static void touch(unsigned char *b, size_t pages, size_t ps, size_t i)
{
    for (size_t p = 0; p < pages; p += 10)
        b[p * ps] = (unsigned char)(i + 1);
}

static int unwritten(const unsigned char *b, size_t pages, size_t ps)
{
    return pages > 1 ? ((const volatile unsigned char *)b)[ps + 7] : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[3], "reuse") && strcmp(argv[3], "live"))) {
        fprintf(stderr, "usage: sweep SIZE ITER reuse|live\n");
        return 2;
    }
    size_t size = parse_size(argv[1]);
    size_t iter = parse_size(argv[2]);
    int live = !strcmp(argv[3], "live");
    if (size == 0 || iter == 0) {
        fprintf(stderr, "sweep: SIZE and ITER must be positive\n");
        return 2;
    }
    size_t ps = page_size();
    size_t pages = (size + ps - 1) / ps;
    struct mem peak = {-1, -1};
    int probe = -1;
    uint64_t t0 = now_ns(), t;
    if (live) {
        unsigned char **b = xmalloc(iter * sizeof *b);
        for (size_t i = 0; i < iter; i++) {
            b[i] = xmalloc(size);
            touch(b[i], pages, ps, i);
            bench_sink += ((volatile unsigned char *)b[i])[size - 1];
        }
        t = now_ns() - t0;
        peak = mem_now();
        probe = unwritten(b[iter - 1], pages, ps);
        uint64_t t1 = now_ns();
        for (size_t i = 0; i < iter; i++)
            free(b[i]);
        free(b);
        t += now_ns() - t1;
    } else {
        for (size_t i = 0; i < iter; i++) {
            unsigned char *b = xmalloc(size);
            touch(b, pages, ps, i);
            bench_sink += ((volatile unsigned char *)b)[size - 1];
            if (i == iter / 2) {
                uint64_t t1 = now_ns();
                peak = mem_now();
                t0 += now_ns() - t1;
            }
            if (i == iter - 1)
                probe = unwritten(b, pages, ps);
            free(b);
        }
        t = now_ns() - t0;
    }
    result_add("\"unwritten_byte\": %d, \"size\": %zu, \"iterations\": %zu, \"mode\": \"%s\"",
               probe, size, iter, argv[3]);
    result_print(t, peak);
    return 0;
}
