/* Every kind of block in one process, for the report's columns: small
 * blocks, refpage blocks (one reused from the cache, one grown by realloc),
 * large callocs, and, past a small mapping budget (max_mappings), blocks of
 * the memset fallback. Prints what it did; the report must add up to it. */
#include "common.h"

#define MIB (1u << 20)

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 100; i++)
        free(malloc(64));
    /* A refpage block freed and asked for again: from the cache. */
    char *a = malloc(MIB);
    a[0] = 1;
    free(a);
    a = malloc(MIB);
    /* Grown by realloc from 1 MiB to 4 MiB, shrunk to 2 MiB and grown back
     * (its largest size is still 4 MiB): one page written before, one in
     * the grown tail. */
    char *g = malloc(MIB);
    g[0] = 1;
    g = realloc(g, 4 * MIB);
    CHECK(g != NULL, "realloc");
    g = realloc(g, 2 * MIB);
    CHECK(g != NULL, "realloc");
    g = realloc(g, 4 * MIB);
    CHECK(g != NULL, "realloc");
    g[3 * MIB] = 1;
    printf("GROWN %zu %zu\n", (size_t)4 * MIB, 4 * MIB / page);
    char *z = calloc(1, 2 * MIB);
    z[0] = 1;
    /* Live blocks until the budget sends new ones to the next allocator.
     * Neighbours map consecutive offsets of one pattern file and share a
     * mapping (four 1 MiB blocks per 4 MiB file, after the grown block made
     * one), so it takes more than 64 of them to pass a budget of 40. */
    enum { MANY = 128 };
    static char *live[MANY];
    for (int i = 0; i < MANY; i++) {
        live[i] = malloc(MIB);
        CHECK(live[i] && (unsigned char)live[i][MIB - 1] == 0xaa, "pattern");
    }
    free(g);
    printf("DONE\n");
    return 0;
}
