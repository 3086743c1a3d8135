/* realloc: one block grown by doubling from FROM to TO bytes with realloc;
 * after each step the new part is written (TOUCH all: every byte, as a
 * growing array; sparse: one byte of its first page). REPEAT times.
 * usage: realloc FROM TO all|sparse REPEAT */
#include "bench.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: realloc FROM TO all|sparse REPEAT\n");
        return 2;
    }
    size_t from = parse_size(argv[1]), to = parse_size(argv[2]);
    int all = !strcmp(argv[3], "all");
    size_t repeat = parse_size(argv[4]);
    struct mem peak = {-1, -1};
    int tail = -1;
    uint64_t t = 0;
    for (size_t r = 0; r < repeat; r++) {
        uint64_t t0 = now_ns();
        size_t n = from;
        unsigned char *p = xmalloc(n);
        memset(p, 1, all ? n : 1);
        while (n < to) {
            unsigned char *q = realloc(p, 2 * n);
            if (!q) {
                fprintf(stderr, "realloc(%zu) failed\n", 2 * n);
                return 3;
            }
            p = q;
            if (r == 0 && 2 * n == to)
                tail = ((volatile unsigned char *)p)[2 * n - 1];
            if (all)
                memset(p + n, 2, n);
            else
                p[n] = 2;
            n *= 2;
        }
        bench_sink += p[n / 2];
        t += now_ns() - t0;
        if (r == 0)
            peak = mem_now();
        t0 = now_ns();
        free(p);
        t += now_ns() - t0;
    }
    result_add("\"grown_tail_byte\": %d, \"from\": %zu, \"to\": %zu", tail, from, to);
    result_print(t, peak);
    return 0;
}
