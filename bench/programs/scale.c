/* scale: TOTAL bytes of live blocks of BLOCK bytes each, one page in a
 * hundred written. Reports time per allocation, mappings in use (lines of
 * /proc/self/maps) and memory while all are live.
 * usage: scale TOTAL BLOCK */
#include "bench.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: scale TOTAL BLOCK\n");
        return 2;
    }
    size_t total = parse_size(argv[1]), block = parse_size(argv[2]);
    size_t count = total / block, ps = page_size();
    unsigned char **b = xmalloc(count * sizeof *b);
    if (count == 0)
        return 2;
    long maps_before = maps_count();
    uint64_t alloc_ns = 0, t0 = now_ns();
    for (size_t i = 0; i < count; i++) {
        uint64_t a = now_ns();
        b[i] = xmalloc(block);
        alloc_ns += now_ns() - a;
        for (size_t p = 0; p < block / ps; p += 100)
            b[i][p * ps] = 1;
    }
    uint64_t t = now_ns() - t0;
    struct mem peak = mem_now();
    long maps = maps_count();
    int unwritten = ((volatile unsigned char *)b[count - 1])[ps + 3];
    uint64_t t1 = now_ns();
    for (size_t i = 0; i < count; i++)
        free(b[i]);
    t += now_ns() - t1;
    result_add("\"blocks\": %zu, \"block_bytes\": %zu, \"alloc_ns_per_block\": %.0f, "
               "\"maps_before\": %ld, \"maps_live\": %ld, \"unwritten_byte\": %d",
               count, block, (double)alloc_ns / (double)count, maps_before, maps, unwritten);
    result_print(t, peak);
    return 0;
}
