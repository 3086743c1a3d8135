/* Error behaviour that must match glibc 2.36. Each case prints one line
 * "case: ..." made only of facts glibc defines (NULL or not, errno, return
 * value, alignment); the test runs it with and without refmalloc and
 * compares the lines. Under refmalloc (argv[1] == "refmalloc") it also checks
 * the pattern on the blocks it gets and a few contracts directly. */
#include "common.h"
#include <stdint.h>

static int REF;
static unsigned char PAT;

static const char *en(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case ERANGE: return "ERANGE";
    case EDOM: return "EDOM";
    default: return rm_fmt("%d", e);
    }
}

/* n == (size_t)-1: a calloc block, not checked for the pattern. */
static void pat_check(void *p, size_t n, const char *what)
{
    if (!REF || !p || n == (size_t)-1)
        return;
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s: usable %zu < %zu", what, u, n);
    CHECK_BYTES(p, 0, u, PAT, "%s", what);
}

/* Report a pointer-returning call: NULL or not, errno (set to EDOM before). */
#define PTRCASE(name, call, n)                                                \
    do {                                                                      \
        errno = EDOM;                                                         \
        void *p_ = (call);                                                    \
        int e_ = errno;                                                       \
        printf("%s: %s errno=%s\n", name, p_ ? "ptr" : "NULL",                \
               p_ ? "-" : en(e_));                                            \
        pat_check(p_, (n), name);                                             \
        free(p_);                                                             \
    } while (0)

static int is_aligned(void *p, size_t al)
{
    return ((uintptr_t)p & (al - 1)) == 0;
}

static size_t next_pow2(size_t a)
{
    size_t r = 1;
    while (r < a)
        r <<= 1;
    return r;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    REF = argc > 1 && !strcmp(argv[1], "refmalloc");
    PAT = expected_pattern();
    if (REF && !under_refmalloc())
        FAIL("expected to run under refmalloc");
    if (!REF && under_refmalloc())
        FAIL("expected to run without refmalloc");

    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1,
                     (size_t)PTRDIFF_MAX, (size_t)1 << 50};
    const char *hn[] = {"SIZE_MAX", "SIZE_MAX-4096", "PTRDIFF_MAX+1", "PTRDIFF_MAX", "2^50"};

    /* malloc */
    PTRCASE("malloc(0)", malloc(0), 0);
    for (int i = 0; i < 5; i++)
        PTRCASE(rm_fmt("malloc(%s)", hn[i]), malloc(huge[i]), 0);

    /* calloc */
    PTRCASE("calloc(0,0)", calloc(0, 0), (size_t)-1);
    PTRCASE("calloc(0,5)", calloc(0, 5), (size_t)-1);
    PTRCASE("calloc(5,0)", calloc(5, 0), (size_t)-1);
    PTRCASE("calloc(SIZE_MAX/2,3)", calloc(SIZE_MAX / 2, 3), (size_t)-1);
    PTRCASE("calloc(2^33,2^33)", calloc((size_t)1 << 33, (size_t)1 << 33), (size_t)-1);
    PTRCASE("calloc(SIZE_MAX,1)", calloc(SIZE_MAX, 1), (size_t)-1);
    PTRCASE("calloc(1,SIZE_MAX)", calloc(1, SIZE_MAX), (size_t)-1);
    PTRCASE("calloc(2^25,2^25)", calloc((size_t)1 << 25, (size_t)1 << 25), (size_t)-1);

    /* reallocarray */
    PTRCASE("reallocarray(NULL,0,0)", reallocarray(NULL, 0, 0), 0);
    PTRCASE("reallocarray(NULL,SIZE_MAX/2,3)", reallocarray(NULL, SIZE_MAX / 2, 3), 0);
    PTRCASE("reallocarray(NULL,2^33,2^33)",
            reallocarray(NULL, (size_t)1 << 33, (size_t)1 << 33), 0);
    PTRCASE("reallocarray(NULL,10,10)", reallocarray(NULL, 10, 10), 100);
    size_t bases[] = {100, 1 << 20};
    for (int b = 0; b < 2; b++) {
        size_t n = bases[b];
        unsigned char *p = malloc(n);
        CHECK(p, "malloc(%zu)", n);
        fill_content(p, n, 3);
        errno = EDOM;
        void *q = reallocarray(p, SIZE_MAX / 2, 3);
        printf("reallocarray(p%zu,overflow): %s errno=%s\n", n, q ? "ptr" : "NULL",
               q ? "-" : en(errno));
        CHECK(q == NULL, "reallocarray overflow returned non-NULL");
        CHECK_CONTENT(p, n, 3, "block kept after failed reallocarray");
        errno = EDOM;
        q = realloc(p, SIZE_MAX);
        printf("realloc(p%zu,SIZE_MAX): %s errno=%s\n", n, q ? "ptr" : "NULL",
               q ? "-" : en(errno));
        CHECK(q == NULL, "realloc(p, SIZE_MAX) returned non-NULL");
        CHECK_CONTENT(p, n, 3, "block kept after failed realloc");
        errno = EDOM;
        q = realloc(p, (size_t)1 << 50);
        printf("realloc(p%zu,2^50): %s errno=%s\n", n, q ? "ptr" : "NULL",
               q ? "-" : en(errno));
        if (q)
            p = q;
        else
            CHECK_CONTENT(p, n, 3, "block kept after failed realloc");
        free(p);
    }

    /* realloc(NULL, n), realloc(p, 0) (glibc 2.36: frees, returns NULL, errno untouched). */
    PTRCASE("realloc(NULL,0)", realloc(NULL, 0), 0);
    PTRCASE("realloc(NULL,100)", realloc(NULL, 100), 100);
    PTRCASE("realloc(NULL,1MiB)", realloc(NULL, 1 << 20), 1 << 20);
    size_t r0[] = {100, 1 << 20, 64 << 20};
    for (int i = 0; i < 3; i++) {
        void *p = malloc(r0[i]);
        CHECK(p, "malloc");
        errno = EDOM;
        void *q = realloc(p, 0);
        int e = errno;
        printf("realloc(p%zu,0): %s errno=%s\n", r0[i], q ? "ptr" : "NULL", en(e));
        if (q)
            free(q);
    }
    if (REF) {
        /* realloc(p, 0) of a large block must really free it. */
        struct refmalloc_stats s0, s1;
        void *p = malloc(4 << 20);
        get_stats(&s0);
        void *q = realloc(p, 0);
        get_stats(&s1);
        CHECK(q == NULL, "realloc(large, 0) returned %p", q);
        CHECK(s1.live_large_blocks == s0.live_large_blocks - 1,
              "realloc(large,0) did not free: live_large_blocks %" PRIu64 " -> %" PRIu64,
              s0.live_large_blocks, s1.live_large_blocks);
    }

    /* posix_memalign: returns the error, errno untouched, *memptr untouched. */
    size_t bad_al[] = {0, 1, 2, 3, 4, 24, 48, 4097, (size_t)1 << 63 | 8, SIZE_MAX};
    for (int i = 0; i < 10; i++) {
        void *p = (void *)0x1234;
        errno = EDOM;
        int r = posix_memalign(&p, bad_al[i], 100);
        printf("posix_memalign(al=%zu,100): ret=%s errno=%s memptr=%s\n", bad_al[i],
               en(r), en(errno), p == (void *)0x1234 ? "untouched" : (p ? "ptr" : "NULL"));
        if (r == 0)
            free(p);
    }
    size_t good_al[] = {8, 16, 64, 4096, 1 << 21};
    for (int i = 0; i < 5; i++) {
        for (int h = 0; h < 3; h++) {
            void *p = (void *)0x1234;
            errno = EDOM;
            int r = posix_memalign(&p, good_al[i], huge[h]);
            printf("posix_memalign(al=%zu,%s): ret=%s errno=%s memptr=%s\n", good_al[i],
                   hn[h], en(r), en(errno),
                   p == (void *)0x1234 ? "untouched" : (p ? "ptr" : "NULL"));
            if (r == 0)
                free(p);
        }
        void *p = NULL;
        errno = EDOM;
        int r = posix_memalign(&p, good_al[i], 0);
        printf("posix_memalign(al=%zu,0): ret=%s errno=%s aligned=%d\n", good_al[i],
               en(r), en(errno), r == 0 && is_aligned(p, good_al[i]));
        if (r == 0)
            free(p);
    }

    /* aligned_alloc and memalign: in glibc 2.36 both round a bad alignment up
     * to a power of two; alignments above SIZE_MAX/2+1 give EINVAL. */
    size_t odd_al[] = {0, 1, 3, 5, 24, 100, 4097, 65537, (size_t)1 << 63,
                       ((size_t)1 << 63) + 1, SIZE_MAX};
    for (int i = 0; i < 11; i++) {
        size_t al = odd_al[i];
        size_t want = al > ((size_t)1 << 63) ? 1 : next_pow2(al ? al : 1);
        errno = EDOM;
        void *p = aligned_alloc(al, 100);
        int e = errno;
        printf("aligned_alloc(al=%zu,100): %s errno=%s aligned=%d\n", al,
               p ? "ptr" : "NULL", p ? "-" : en(e), p && is_aligned(p, want));
        pat_check(p, 100, "aligned_alloc odd");
        free(p);
        errno = EDOM;
        p = memalign(al, 100);
        e = errno;
        printf("memalign(al=%zu,100): %s errno=%s aligned=%d\n", al, p ? "ptr" : "NULL",
               p ? "-" : en(e), p && is_aligned(p, want));
        pat_check(p, 100, "memalign odd");
        free(p);
        errno = EDOM;
        p = memalign(al, 1 << 20);
        e = errno;
        printf("memalign(al=%zu,1MiB): %s errno=%s aligned=%d\n", al, p ? "ptr" : "NULL",
               p ? "-" : en(e), p && is_aligned(p, want));
        pat_check(p, 1 << 20, "memalign odd large");
        free(p);
    }
    for (int h = 0; h < 5; h++) {
        PTRCASE(rm_fmt("memalign(4096,%s)", hn[h]), memalign(4096, huge[h]), 0);
        PTRCASE(rm_fmt("aligned_alloc(64,%s)", hn[h]), aligned_alloc(64, huge[h]), 0);
        PTRCASE(rm_fmt("valloc(%s)", hn[h]), valloc(huge[h]), 0);
        PTRCASE(rm_fmt("pvalloc(%s)", hn[h]), pvalloc(huge[h]), 0);
    }
    {
        errno = EDOM;
        void *p = pvalloc(0);
        printf("pvalloc(0): %s errno=%s aligned=%d\n", p ? "ptr" : "NULL",
               p ? "-" : en(errno), p && is_aligned(p, page_size()));
        free(p);
        errno = EDOM;
        p = valloc(0);
        printf("valloc(0): %s errno=%s aligned=%d\n", p ? "ptr" : "NULL",
               p ? "-" : en(errno), p && is_aligned(p, page_size()));
        free(p);
    }

    /* free keeps errno: NULL, small, large, aligned, calloc'd. */
    {
        void *blocks[6];
        blocks[0] = NULL;
        blocks[1] = malloc(100);
        blocks[2] = malloc(1 << 20);
        blocks[3] = memalign(4096, 1 << 20);
        blocks[4] = calloc(1, 1 << 20);
        blocks[5] = aligned_alloc(64, 300);
        for (int i = 0; i < 6; i++) {
            errno = ERANGE;
            free(blocks[i]);
            printf("free(block%d): errno=%s\n", i, en(errno));
        }
    }
    printf("malloc_usable_size(NULL): %zu\n", malloc_usable_size(NULL));

    if (REF) {
        /* Entry points glibc 2.36 lacks, exported by refmalloc. */
        void (*free_sized)(void *, size_t) =
            (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
        void (*free_aligned_sized)(void *, size_t, size_t) =
            (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
        void (*cfree_)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
        CHECK(free_sized, "free_sized not exported");
        CHECK(free_aligned_sized, "free_aligned_sized not exported");
        CHECK(cfree_, "cfree not exported");
        struct refmalloc_stats s0, s1;
        void *a = malloc(100), *b = malloc(2 << 20);
        void *c = aligned_alloc(4096, 2 << 20), *d = aligned_alloc(64, 200);
        void *e = malloc(3 << 20), *f = malloc(50);
        get_stats(&s0);
        errno = ERANGE;
        free_sized(a, 100);
        free_sized(b, 2 << 20);
        free_aligned_sized(c, 4096, 2 << 20);
        free_aligned_sized(d, 64, 200);
        cfree_(e);
        cfree_(f);
        CHECK(errno == ERANGE, "free_sized/free_aligned_sized/cfree changed errno to %d", errno);
        get_stats(&s1);
        CHECK(s1.large_frees - s0.large_frees == 3, "large frees via free_sized etc: %" PRIu64,
              s1.large_frees - s0.large_frees);
        CHECK(s1.live_large_blocks + 3 == s0.live_large_blocks, "live_large_blocks");
        free_sized(NULL, 0);
        /* malloc(0) and friends: usable bytes hold the pattern (checked above). */
        printf("INFO extra entry points ok\n");
    }
    printf("DONE\n");
    return 0;
}
