/* Bad frees of large blocks must abort with a refmalloc message naming the
 * address. Modes: double, interior, interior1, cached-double, realloc-double.
 * Prints "BADPTR 0x..." (the pointer about to be freed wrongly) first. */
#include "common.h"

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    const char *m = argc > 1 ? argv[1] : "double";
    size_t n = 1 << 20;
    unsigned char *p = malloc(n);
    CHECK(p, "malloc");
    unsigned char *keep = malloc(4 << 20);   /* another live block nearby */
    CHECK(keep, "malloc");
    p[0] = 1;
    void *bad;
    if (!strcmp(m, "double")) {
        free(p);
        bad = p;
    } else if (!strcmp(m, "interior")) {
        bad = p + 4096 * 3;
    } else if (!strcmp(m, "interior1")) {
        bad = p + 1;
    } else if (!strcmp(m, "cached-double")) {
        /* freed, a new block of another size allocated, then freed again */
        free(p);
        void *q = malloc(3 << 20);
        CHECK(q, "malloc");
        bad = p;
    } else if (!strcmp(m, "realloc-double")) {
        /* a block that realloc moved, freed through its old address */
        unsigned char *q = realloc(p, 64 << 20);
        CHECK(q, "realloc");
        if (q == p)
            FAIL("realloc did not move the block; cannot test this case");
        bad = p;
    } else if (!strcmp(m, "garbage")) {
        /* not refmalloc's: glibc's own check aborts */
        static char buf[256] __attribute__((aligned(16)));
        bad = buf + 32;
    } else if (!strcmp(m, "realloc-freed")) {
        free(p);
        printf("BADPTR %p\n", (void *)p);
        void *q = realloc(p, 2 << 20);
        printf("STILL RUNNING after realloc of a freed block (%p)\n", q);
        return 0;
    } else {
        FAIL("unknown mode");
    }
    printf("BADPTR %p\n", bad);
    free(bad);
    printf("STILL RUNNING after bad free\n");
    return 0;
}
