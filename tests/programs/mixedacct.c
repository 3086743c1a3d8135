/* A reference-page block that grows while the mapping budget is nearly
 * spent gets an eager tail (a mixed block). argv[1] blocks of 1 MiB are made
 * first to spend the budget; then one block grows from 1 to 8 MiB, everything
 * is freed, and the reference-page accounts must be back to zero.
 * Prints "MIXED fallback=N live_after=N peak=N". */
#include "common.h"

int main(int argc, char **argv)
{
    int (*get)(struct refmalloc_stats *, size_t) =
        (int (*)(struct refmalloc_stats *, size_t))dlsym(RTLD_DEFAULT, "refmalloc_get_stats");
    CHECK(get != NULL, "refmalloc_get_stats not found: library not loaded");
    int k = argc > 1 ? atoi(argv[1]) : 0;
    char *spent[16];
    CHECK(k >= 0 && k <= 16, "bad count %d", k);
    for (int i = 0; i < k; i++)
        CHECK((spent[i] = malloc(1 << 20)) != NULL, "malloc");
    struct refmalloc_stats before, after;
    CHECK(get(&before, sizeof before) == 0, "stats");
    char *p = malloc(1 << 20);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 100);
    p = realloc(p, 8 << 20);
    CHECK(p != NULL, "realloc");
    CHECK(p[99] == 1 && (unsigned char)p[100] == 0xaa && (unsigned char)p[(8 << 20) - 1] == 0xaa,
          "grown block lost its content or pattern");
    free(p);
    for (int i = 0; i < k; i++)
        free(spent[i]);
    CHECK(get(&after, sizeof after) == 0, "stats");
    printf("MIXED fallback=%" PRIu64 " live_after=%" PRIu64 " peak=%" PRIu64 "\n",
           after.fallback_budget - before.fallback_budget, after.live_refpage_bytes,
           after.peak_refpage_bytes);
    return 0;
}
