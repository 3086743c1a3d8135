/* Stacked under another allocator preloaded after refmalloc:
 * argv[1] = jemalloc|mimalloc|tcmalloc, argv[2] = its library path.
 * Small blocks come from that allocator (its own size function agrees) and
 * hold the pattern over their whole usable size, fresh and reused; frees,
 * reallocs across the threshold and large blocks work. */
#include "common.h"

#define MiB (1024ul * 1024ul)

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned char PAT = expected_pattern();
    size_t T = test_threshold();
    if (argc < 3)
        FAIL("usage: stack NAME LIBPATH");
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    void *h = dlopen(argv[2], RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        FAIL("%s is not loaded in this process: %s", argv[2], dlerror());
    const char *fname = !strcmp(argv[1], "jemalloc") ? "malloc_usable_size"
                      : !strcmp(argv[1], "mimalloc") ? "mi_usable_size"
                      : !strcmp(argv[1], "tcmalloc") ? "tc_malloc_size" : NULL;
    CHECK(fname, "unknown allocator %s", argv[1]);
    size_t (*their_size)(void *) = (size_t (*)(void *))dlsym(h, fname);
    CHECK(their_size, "%s not found in %s", fname, argv[2]);
    void *(*their_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "malloc");
    CHECK(their_malloc, "malloc not found in %s", argv[2]);
    CHECK((void *)their_malloc != dlsym(RTLD_DEFAULT, "malloc"),
          "%s comes before refmalloc in the search order", argv[2]);

    size_t checked = 0;
    for (size_t n = 1; n <= 70000; n = n < 512 ? n + 1 : n + 509) {
        for (int round = 0; round < 2; round++) {
            unsigned char *p = malloc(n);
            CHECK(p, "malloc(%zu)", n);
            size_t u = malloc_usable_size(p);
            CHECK(u >= n, "usable %zu < %zu", u, n);
            CHECK(their_size(p) == u, "%s(%p)=%zu but malloc_usable_size=%zu: block not from %s",
                  fname, (void *)p, their_size(p), u, argv[1]);
            CHECK_BYTES(p, 0, u, PAT, "%s round %d malloc(%zu) usable %zu", argv[1], round, n, u);
            memset(p, 0x3c, u);    /* dirty, so the reused block must be refilled */
            free(p);
            checked++;
        }
    }
    /* calloc on dirty reused memory */
    for (size_t n = 8; n <= 65536; n *= 2) {
        unsigned char *p = malloc(n);
        memset(p, 0x3d, n);
        free(p);
        p = calloc(n, 1);
        CHECK_BYTES(p, 0, n, 0, "%s calloc(%zu)", argv[1], n);
        free(p);
    }
    /* realloc: small growth (tail pattern beyond the old usable size), across threshold. */
    size_t rc[][2] = {{10, 30}, {100, 5000}, {5000, 100}, {1000, 2 * T}, {2 * T, 1000},
                      {3 * MiB, 9 * MiB}};
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
        size_t a = rc[i][0], b = rc[i][1];
        unsigned char *p = malloc(a);
        CHECK_BYTES(p, 0, a, PAT, "realloc source");
        fill_content(p, a, (unsigned)i);
        unsigned char *q = realloc(p, b);
        CHECK(q, "realloc %zu -> %zu", a, b);
        size_t keep = a < b ? a : b;
        CHECK_CONTENT(q, keep, (unsigned)i, "%s realloc %zu -> %zu", argv[1], a, b);
        if (b > a)
            CHECK_BYTES(q, a, malloc_usable_size(q), PAT, "%s realloc %zu -> %zu tail", argv[1], a, b);
        free(q);
    }
    /* aligned small blocks from the next allocator */
    for (size_t al = 16; al <= 4096; al *= 2) {
        void *p;
        CHECK(posix_memalign(&p, al, 300) == 0, "posix_memalign");
        CHECK(((uintptr_t)p & (al - 1)) == 0, "alignment");
        CHECK_BYTES(p, 0, malloc_usable_size(p), PAT, "%s posix_memalign(%zu)", argv[1], al);
        free(p);
    }
    /* large blocks still refmalloc's */
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    unsigned char *L = malloc(4 * MiB);
    CHECK_BYTES(L, 0, 4 * MiB, PAT, "large block");
    get_stats(&s1);
    CHECK(s1.large_allocs == s0.large_allocs + 1, "large block not from refmalloc");
    free(L);
    CHECK(s1.small_allocs > 0, "small_allocs = 0");
    printf("OK stacked %s checked=%zu\n", argv[1], checked);
    return 0;
}
