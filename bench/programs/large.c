/* large: COUNT blocks of SIZE bytes; TOUCH of each block written:
 *   4k   the first page only        1pct  one page in a hundred
 *   half every page of the first half   all   every page
 * (one byte per page for 4k/1pct/half is enough to fault the page; "all"
 * writes the whole block, as a program filling it would).
 * MODE live: all blocks allocated and touched, memory sampled (the peak),
 *            then freed. MODE loop: malloc, touch, free, COUNT times (the
 *            MAP_REFPAGE series' microbenchmark).
 * Also reports the byte a never-written page reads (the pattern check).
 * usage: large SIZE COUNT TOUCH MODE */
#include "bench.h"

static int touch(unsigned char *b, size_t size, const char *how, size_t ps, uint64_t i)
{
    size_t pages = (size + ps - 1) / ps;
    if (!strcmp(how, "all")) {
        memset(b, (int)(i & 0x7f) + 1, size);
        return -1;
    }
    size_t upto = !strcmp(how, "half") ? pages / 2 : !strcmp(how, "4k") ? 1 : pages;
    size_t step = !strcmp(how, "1pct") ? 100 : 1;
    for (size_t p = 0; p < upto; p += step)
        b[p * ps] = (unsigned char)(p + 1);
    /* a page that was not written: half -> the last one, 1pct -> page 1 */
    size_t probe = !strcmp(how, "half") ? pages - 1 : 1;
    return probe < pages ? ((volatile unsigned char *)b)[probe * ps + 7] : -1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: large SIZE COUNT 4k|1pct|half|all live|loop\n");
        return 2;
    }
    size_t size = parse_size(argv[1]);
    size_t count = parse_size(argv[2]);
    const char *how = argv[3];
    int live = !strcmp(argv[4], "live");
    size_t ps = page_size();
    int unwritten = -1;
    struct mem peak = {-1, -1};
    uint64_t t0 = now_ns(), t = 0;
    if (live) {
        unsigned char **b = xmalloc(count * sizeof *b);
        for (size_t i = 0; i < count; i++) {
            b[i] = xmalloc(size);
            int u = touch(b[i], size, how, ps, i);
            if (i == 0)
                unwritten = u;
        }
        t = now_ns() - t0;
        peak = mem_now();
        uint64_t t1 = now_ns();
        for (size_t i = 0; i < count; i++)
            free(b[i]);
        t += now_ns() - t1;
        free(b);
    } else {
        struct mem m;
        for (size_t i = 0; i < count; i++) {
            unsigned char *b = xmalloc(size);
            int u = touch(b, size, how, ps, i);
            if (i == 0 || (u != unwritten && unwritten >= 0))
                unwritten = i == 0 ? u : -2; /* -2: differs between blocks */
            if (i == count / 2) {
                uint64_t t1 = now_ns();
                m = mem_now();
                peak = m;
                t0 += now_ns() - t1;
            }
            free(b);
        }
        t = now_ns() - t0;
    }
    result_add("\"unwritten_byte\": %d, \"size\": %zu, \"count\": %zu", unwritten, size, count);
    result_print(t, peak);
    return 0;
}
