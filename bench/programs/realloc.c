/* realloc: one block grown by doubling from FROM to TO bytes with realloc;
 * after each step the new part is written (TOUCH all: every byte, as a
 * growing array; sparse: one byte of its first page; pair: two blocks grown
 * in turn and written whole, so that each one's growth meets the other and
 * moves). REPEAT times.
 * usage: realloc FROM TO all|sparse|pair REPEAT */
#include "bench.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: realloc FROM TO all|sparse|pair REPEAT\n");
        return 2;
    }
    size_t from = parse_size(argv[1]), to = parse_size(argv[2]);
    int pair = !strcmp(argv[3], "pair");
    int all = pair || !strcmp(argv[3], "all");
    int blocks = pair ? 2 : 1;
    size_t repeat = parse_size(argv[4]);
    struct mem peak = {-1, -1};
    int tail = -1;
    uint64_t t = 0;
    for (size_t r = 0; r < repeat; r++) {
        uint64_t t0 = now_ns();
        size_t n = from;
        unsigned char *p[2];
        for (int b = 0; b < blocks; b++) {
            p[b] = xmalloc(n);
            memset(p[b], 1, all ? n : 1);
        }
        while (n < to) {
            for (int b = 0; b < blocks; b++) {
                unsigned char *q = realloc(p[b], 2 * n);
                if (!q) {
                    fprintf(stderr, "realloc(%zu) failed\n", 2 * n);
                    return 3;
                }
                p[b] = q;
                if (r == 0 && b == 0 && 2 * n == to)
                    tail = ((volatile unsigned char *)q)[2 * n - 1];
                if (all)
                    memset(q + n, 2, n);
                else
                    q[n] = 2;
            }
            n *= 2;
        }
        for (int b = 0; b < blocks; b++)
            bench_sink += p[b][n / 2];
        t += now_ns() - t0;
        if (r == 0)
            peak = mem_now();
        t0 = now_ns();
        for (int b = 0; b < blocks; b++)
            free(p[b]);
        t += now_ns() - t0;
    }
    result_add("\"grown_tail_byte\": %d, \"from\": %zu, \"to\": %zu", tail, from, to);
    result_print(t, peak);
    return 0;
}
