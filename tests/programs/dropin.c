/* Drop-in robustness of the interposition layer: what a program that works
 * under glibc (or under another allocator) must see the same way under
 * refmalloc. One mode per argv[1]; each checks its own invariants, prints
 * "OK <mode>" and exits 0, or fails with a FAIL line.
 *
 *   realloc-shrink-grow  a small block shrunk then grown back: the bytes past
 *                        the shrunk size read as the pattern, after the shrink
 *                        and after the growth, whatever the next allocator
 *   double-free-small    a small block freed twice: the next allocator's own
 *                        check must catch it (glibc aborts); prints BADPTR first
 *   free-bad POINTER     free of a bad small pointer: "interior1" (p+1),
 *                        "interior16" (p+16 of a live block), "misaligned"
 *                        (static buffer + 8), "garbage" (static buffer whose
 *                        size field is nonsense); prints BADPTR first
 *   realloc-bad POINTER  the same pointers handed to realloc
 *   libc-large           __libc_malloc/__libc_free/__libc_realloc/... on small
 *                        and large blocks, mixed with the standard names
 *   mallinfo             mallinfo2 and mallinfo count a live large block
 *   calls                every entry point once (reallocarray, valloc, pvalloc,
 *                        aligned_alloc, posix_memalign, memalign,
 *                        malloc_usable_size, free_sized, cfree...) on the
 *                        allocator that serves malloc
 *   overflow1            one byte written past a small block's requested size,
 *                        then free: MALLOC_CHECK_=3 with libc_malloc_debug
 *                        catches it (glibc alone does not); prints BADPTR first */
#include "common.h"
#include <stdbool.h>

/* Declared by no glibc 2.36 header. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

#define KiB 1024ul
#define MiB (1024ul * 1024ul)

typedef void *(*realloc_fn)(void *, size_t);

static void shrink_grow(size_t a, size_t b, unsigned seed)
{
    unsigned char pat = expected_pattern();
    unsigned char *p = malloc(a);
    CHECK(p, "malloc(%zu)", a);
    fill_content(p, a, seed);
    unsigned char *q = realloc(p, b);
    CHECK(q, "realloc(%zu -> %zu)", a, b);
    CHECK_CONTENT(q, b, seed, "after shrink %zu -> %zu", a, b);
    CHECK_BYTES(q, b, malloc_usable_size(q), pat, "cut tail after shrink %zu -> %zu", a, b);
    unsigned char *r = realloc(q, a);
    CHECK(r, "realloc(%zu -> %zu)", b, a);
    CHECK_CONTENT(r, b, seed, "after growth %zu -> %zu -> %zu", a, b, a);
    CHECK_BYTES(r, b, malloc_usable_size(r), pat, "grown tail %zu -> %zu -> %zu", a, b, a);
    free(r);
}

static void realloc_shrink_grow(void)
{
    shrink_grow(40, 24, 1);   /* the case the 16-thread stress hit */
    unsigned seed = 2;
    for (size_t a = 16; a <= 2048; a += a < 256 ? 8 : 72)
        for (size_t b = 1; b < a; b += b < 64 ? 7 : b / 2)
            shrink_grow(a, b, seed++);
}

static void free_bad(const char *what, bool by_realloc)
{
    static union {
        size_t words[64];
        char bytes[512];
    } buf __attribute__((aligned(64)));
    char *bad;
    if (!strcmp(what, "interior1")) {
        char *p = malloc(64);
        CHECK(p, "malloc");
        bad = p + 1;
    } else if (!strcmp(what, "interior16")) {
        char *p = malloc(200);
        CHECK(p, "malloc");
        memset(p, 0x7b, 200);   /* the "size field" of p+16 is nonsense */
        bad = p + 16;
    } else if (!strcmp(what, "misaligned")) {
        bad = buf.bytes + 40;
    } else if (!strcmp(what, "garbage")) {
        for (size_t i = 0; i < 64; i++)
            buf.words[i] = 0x0123456789abcdefull;
        bad = buf.bytes + 64;
    } else {
        FAIL("unknown free-bad kind %s", what);
    }
    printf("BADPTR %p\n", (void *)bad);
    if (by_realloc)
        opaque(realloc(bad, 100));
    else
        free(bad);
    printf("STILL RUNNING after bad %s\n", by_realloc ? "realloc" : "free");
}

static void double_free_small(void)
{
    void *keep = malloc(40);   /* so that the block is not merged into the top */
    char *p = malloc(40);
    CHECK(p && keep, "malloc");
    free(p);
    printf("BADPTR %p\n", (void *)p);
    free(p);
    /* glibc aborts above; if it did not, it hands the same block out twice. */
    void *a = malloc(40), *b = malloc(40);
    printf("STILL RUNNING after double free (%p %p%s)\n", a, b,
           a == b ? ", the same block twice" : "");
}

static void overflow1(void)
{
    unsigned char *p = malloc(20);
    CHECK(p, "malloc");
    opaque(p);
    p[20] = (unsigned char)~p[20];
    printf("BADPTR %p\n", (void *)p);
    free(p);
    printf("STILL RUNNING after free of an overflowed block\n");
}

static void libc_large(void)
{
    unsigned char pat = expected_pattern();
    size_t sizes[] = {24, 1000, 128 * KiB, 1 * MiB, 5 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        unsigned char *p = __libc_malloc(n);
        CHECK(p, "__libc_malloc(%zu)", n);
        CHECK_BYTES(p, 0, n, pat, "__libc_malloc(%zu)", n);
        fill_content(p, n, 3);
        p = __libc_realloc(p, 2 * n);
        CHECK(p, "__libc_realloc(%zu)", 2 * n);
        CHECK_CONTENT(p, n, 3, "__libc_realloc(%zu -> %zu)", n, 2 * n);
        CHECK_BYTES(p, n, 2 * n, pat, "__libc_realloc grown tail");
        __libc_free(p);

        p = malloc(n);   /* standard name in, __libc_ name out, and back */
        CHECK(p, "malloc(%zu)", n);
        p = __libc_realloc(p, n / 2 + 1);
        CHECK(p, "__libc_realloc shrink");
        __libc_free(p);
        p = __libc_malloc(n);
        CHECK(p, "__libc_malloc(%zu)", n);
        p = realloc(p, n + 4096);
        CHECK(p, "realloc");
        free(p);

        unsigned char *z = __libc_calloc(1, n);
        CHECK(z, "__libc_calloc(%zu)", n);
        CHECK_BYTES(z, 0, n, 0, "__libc_calloc(%zu)", n);
        __libc_free(z);
        unsigned char *m = __libc_memalign(4096, n);
        CHECK(m && (uintptr_t)m % 4096 == 0, "__libc_memalign(4096, %zu)", n);
        CHECK_BYTES(m, 0, n, pat, "__libc_memalign(%zu)", n);
        __libc_free(m);
        m = __libc_valloc(n);
        CHECK(m && (uintptr_t)m % page_size() == 0, "__libc_valloc(%zu)", n);
        __libc_free(m);
        m = __libc_pvalloc(n);
        CHECK(m && (uintptr_t)m % page_size() == 0, "__libc_pvalloc(%zu)", n);
        free(m);
    }
    __libc_free(NULL);
}

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void mallinfo_counts(void)
{
    size_t n = 1 * MiB;
    struct mallinfo2 a = mallinfo2();
    struct mallinfo oa = mallinfo();
    unsigned char *p = malloc(n);
    CHECK(p, "malloc");
    p[0] = 1;
    struct mallinfo2 b = mallinfo2();
    struct mallinfo ob = mallinfo();
    printf("mallinfo2 hblkhd %zu -> %zu, uordblks %zu -> %zu, hblks %zu -> %zu\n", a.hblkhd,
           b.hblkhd, a.uordblks, b.uordblks, a.hblks, b.hblks);
    CHECK(b.hblkhd >= a.hblkhd + n, "mallinfo2().hblkhd %zu -> %zu after malloc(%zu)", a.hblkhd,
          b.hblkhd, n);
    CHECK(b.uordblks >= a.uordblks + n, "mallinfo2().uordblks %zu -> %zu after malloc(%zu)",
          a.uordblks, b.uordblks, n);
    CHECK(b.hblks >= a.hblks + 1, "mallinfo2().hblks %zu -> %zu", a.hblks, b.hblks);
    CHECK((size_t)(unsigned)ob.hblkhd >= (size_t)(unsigned)oa.hblkhd + n,
          "mallinfo().hblkhd %d -> %d", oa.hblkhd, ob.hblkhd);
    CHECK((size_t)(unsigned)ob.uordblks >= (size_t)(unsigned)oa.uordblks + n,
          "mallinfo().uordblks %d -> %d", oa.uordblks, ob.uordblks);
    CHECK(ob.hblks >= oa.hblks + 1, "mallinfo().hblks %d -> %d", oa.hblks, ob.hblks);
    free(p);
    struct mallinfo2 c = mallinfo2();
    CHECK(c.hblkhd + n <= b.hblkhd, "mallinfo2().hblkhd %zu -> %zu after free", b.hblkhd,
          c.hblkhd);
    CHECK(c.uordblks + n <= b.uordblks, "mallinfo2().uordblks %zu -> %zu after free",
          b.uordblks, c.uordblks);
}

/* Every entry point, as ls, python and the others use them. */
static void calls(void)
{
    size_t page = page_size();
    for (int round = 0; round < 200; round++) {
        size_t n = 8 + (size_t)round * 37;
        char *p = reallocarray(NULL, n, 3);
        CHECK(p, "reallocarray(NULL, %zu, 3)", n);
        memset(p, 1, n * 3);
        p = reallocarray(p, n, 5);
        CHECK(p, "reallocarray(%zu, 5)", n);
        CHECK(p[n * 3 - 1] == 1, "reallocarray lost content");
        CHECK(malloc_usable_size(p) >= n * 5, "malloc_usable_size %zu < %zu",
              malloc_usable_size(p), n * 5);
        errno = 0;
        CHECK(!reallocarray(p, SIZE_MAX / 2, 3) && errno == ENOMEM,
              "reallocarray overflow must fail with ENOMEM");
        free(p);

        void *v = valloc(n);
        CHECK(v && (uintptr_t)v % page == 0, "valloc(%zu)", n);
        memset(v, 2, n);
        free(v);
        v = pvalloc(n);
        CHECK(v && (uintptr_t)v % page == 0, "pvalloc(%zu)", n);
        memset(v, 2, page);
        free(v);
        v = aligned_alloc(64, n * 64 / 64);
        CHECK(v && (uintptr_t)v % 64 == 0, "aligned_alloc(64, %zu)", n);
        free(v);
        v = memalign(256, n);
        CHECK(v && (uintptr_t)v % 256 == 0, "memalign(256, %zu)", n);
        free(v);
        void *pm = NULL;
        CHECK(posix_memalign(&pm, 128, n) == 0 && (uintptr_t)pm % 128 == 0,
              "posix_memalign(128, %zu)", n);
        CHECK(malloc_usable_size(pm) >= n, "usable size of posix_memalign block");
        free(pm);
        CHECK(posix_memalign(&pm, 3, n) == EINVAL, "posix_memalign(3) must be EINVAL");
        char *c = calloc(n, 2);
        CHECK(c, "calloc");
        CHECK_BYTES(c, 0, n * 2, 0, "calloc(%zu, 2)", n);
        c = realloc(c, n * 4);
        CHECK(c, "realloc");
        free(c);
    }
    void (*free_sized)(void *, size_t) =
        (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*free_aligned_sized)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    if (free_sized)
        free_sized(malloc(100), 100);
    if (free_aligned_sized)
        free_aligned_sized(aligned_alloc(64, 128), 64, 128);
    if (cfree_fn)
        cfree_fn(malloc(100));
    void *big = malloc(4 * MiB);
    CHECK(big, "malloc(4 MiB)");
    big = reallocarray(big, 2, 4 * MiB);
    CHECK(big, "reallocarray 8 MiB");
    free(big);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "realloc-shrink-grow"))
        realloc_shrink_grow();
    else if (!strcmp(m, "double-free-small"))
        double_free_small();
    else if (!strcmp(m, "overflow1"))
        overflow1();
    else if (!strcmp(m, "free-bad") && argc > 2)
        free_bad(argv[2], false);
    else if (!strcmp(m, "realloc-bad") && argc > 2)
        free_bad(argv[2], true);
    else if (!strcmp(m, "libc-large"))
        libc_large();
    else if (!strcmp(m, "mallinfo"))
        mallinfo_counts();
    else if (!strcmp(m, "calls"))
        calls();
    else
        FAIL("unknown mode %s", m);
    printf("OK %s\n", m);
    return 0;
}
