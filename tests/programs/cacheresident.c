/* cacheresident: three rounds over BLOCKS large blocks of distinct sizes:
 * allocate each (checking that it holds the pattern in every byte), write it
 * whole, free them all, oldest first. It prints the size of the block
 * freed last ("last_kb"), then for each round how much anonymous
 * memory the freed blocks still hold ("held_kb": smaps_rollup's Anonymous
 * beyond what it was before round 0) and how many of its mallocs the cache
 * served ("hits"). Round 0's blocks are fresh, later rounds reuse them: the
 * pattern must be back whether a block's written pages were kept (and
 * re-filled at reuse) or given back to the kernel while it waited.
 * With "full", see full() below. */
#include "common.h"

#define BLOCKS 12
#define ROUNDS 3

/* 1 MiB, 1.5 MiB, ... 6.5 MiB: 45 MiB in all, within the default cache. */
static size_t size_of(size_t i)
{
    return (size_t)(2 + i) << 19;
}

/* full: FULL_BLOCKS blocks of 1 MiB live at once, one page of each written,
 * then all freed: prints how many gave their written pages back. */
#define FULL_BLOCKS 40

static int full(void)
{
    unsigned char *p[FULL_BLOCKS];
    for (size_t i = 0; i < FULL_BLOCKS; i++) {
        p[i] = malloc(1u << 20);
        CHECK(p[i], "malloc(1 MiB)");
        p[i][0] = 1;
    }
    for (size_t i = 0; i < FULL_BLOCKS; i++)
        free(p[i]);
    struct refmalloc_stats s;
    get_stats(&s);
    printf("given_back=%" PRIu64 " cache_bytes=%" PRIu64 "\n", s.cache_given_back, s.cache_bytes);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "full"))
        return full();
    unsigned char pattern = (unsigned char)env_ul("TEST_PATTERN", 0xaa);
    printf("last_kb=%zu\n", size_of(BLOCKS - 1) >> 10);
    long start = smaps_rollup_kb("Anonymous");
    for (int round = 0; round < ROUNDS; round++) {
        unsigned char *p[BLOCKS];
        struct refmalloc_stats s0, s1;
        get_stats(&s0);
        for (size_t i = 0; i < BLOCKS; i++) {
            p[i] = malloc(size_of(i));
            CHECK(p[i], "malloc(%zu)", size_of(i));
            for (size_t j = 0; j < size_of(i); j++)
                CHECK(p[i][j] == pattern, "round %d block %zu byte %zu is 0x%02x", round, i, j,
                      p[i][j]);
        }
        get_stats(&s1);
        for (size_t i = 0; i < BLOCKS; i++)
            memset(p[i], 0x11, size_of(i));
        for (size_t i = 0; i < BLOCKS; i++)
            free(p[i]);
        printf("round=%d held_kb=%ld hits=%" PRIu64 "\n", round,
               smaps_rollup_kb("Anonymous") - start, s1.cache_hits - s0.cache_hits);
    }
    return 0;
}
