/* Pattern on every path: fresh blocks of every size, reuse, calloc, realloc,
 * the aligned families and reallocarray. Usage: pattern MODE */
#include "common.h"

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;

/* malloc(n): usable >= n, every usable byte is the pattern. */
static void *fresh(size_t n, const char *what)
{
    void *p = malloc(n);
    if (!p)
        FAIL("%s: malloc(%zu) returned NULL (errno %d)", what, n, errno);
    size_t u = malloc_usable_size(p);
    if (u < n)
        FAIL("%s: malloc_usable_size(%p)=%zu < %zu", what, p, u, n);
    CHECK_BYTES(p, 0, u, PAT, "%s: malloc(%zu) usable %zu", what, n, u);
    return p;
}

static void mode_sizes(void)
{
    size_t count = 0;
    /* Every size 1..1024, then a spread of odd steps up to 64 KiB. */
    for (size_t n = 1; n <= 1024; n++, count++) {
        void *p = fresh(n, "small");
        memset(p, 0x11, n);
        free(p);
    }
    for (size_t n = 1025; n <= 65536; n += 97, count++) {
        void *p = fresh(n, "step");
        memset(p, 0x12, n);
        free(p);
    }
    for (unsigned s = 4; s <= 16; s++)
        for (int d = -1; d <= 1; d++, count++) {
            size_t n = ((size_t)1 << s) + d;
            void *p = fresh(n, "pow2");
            memset(p, 0x13, n);
            free(p);
        }
    /* Around the threshold and beyond. */
    size_t big[] = {T - 4096, T - 1, T, T + 1, T + 4095, 2 * T + 17, 1 * MiB,
                    1 * MiB + 1, 3 * MiB + 12345, 64 * MiB, 256 * MiB};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++, count++) {
        void *p = fresh(big[i], "large");
        /* Write the first and last byte, then free. */
        ((char *)p)[0] = 0x14;
        ((char *)p)[big[i] - 1] = 0x14;
        free(p);
    }
    /* Many live at once, small and large interleaved. */
    void *live[64];
    for (int i = 0; i < 64; i++, count++)
        live[i] = fresh((i % 4 == 0) ? T + (size_t)i * 4099 : 16 + (size_t)i * 37,
                        "live");
    for (int i = 0; i < 64; i++)
        free(live[i]);
    printf("OK sizes checked=%zu pattern=0x%02x\n", count, PAT);
}

static void mode_reuse_small(void)
{
    size_t sizes[] = {1, 8, 24, 40, 100, 256, 1000, 4000, 20000, 65536, T - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int round = 0; round < 5; round++) {
            void *p = fresh(n, "reuse-small first");
            memset(p, 0x5a ^ round, malloc_usable_size(p));
            free(p);
            void *q = fresh(n, "reuse-small again");
            if (round == 0)
                printf("reuse small n=%zu same_address=%d\n", n, p == q);
            free(q);
        }
    }
    /* calloc must zero a block just freed dirty. */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = fresh(n, "calloc-reuse first");
        memset(p, 0x77, malloc_usable_size(p));
        free(p);
        unsigned char *z = calloc(1, n);
        CHECK(z, "calloc(1, %zu)", n);
        CHECK_BYTES(z, 0, n, 0, "calloc after dirty free n=%zu", n);
        free(z);
    }
    printf("OK reuse-small\n");
}

static void mode_reuse_large(void)
{
    size_t ps = page_size();
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    size_t sizes[] = {T, 1 * MiB, 4 * MiB + 100, 16 * MiB, 40 * MiB};
    /* Written every `stride` pages before the free: 0 = not written,
     * 1 = every page (whole block memset). Sparse and dense blocks are
     * restored differently (MADV_DONTNEED or re-fill): both must show the
     * pattern again. */
    size_t strides[] = {0, 1000, 100, 7, 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (size_t k = 0; k < sizeof strides / sizeof strides[0]; k++) {
            for (int round = 0; round < 2; round++) {
                unsigned char *p = fresh(n, "reuse-large first");
                if (strides[k] == 1) {
                    memset(p, 0x22, malloc_usable_size(p));
                } else if (strides[k]) {
                    for (size_t off = 0; off < n; off += strides[k] * ps)
                        p[off + 100] = 0x21;
                    p[n - 1] = 0x21;
                }
                free(p);
                unsigned char *q = fresh(n, "reuse-large again");
                printf("reuse large n=%zu stride=%zu same_address=%d\n", n, strides[k], p == q);
                free(q);
            }
        }
        /* Reuse by a smaller large request, and a calloc of the same size. */
        unsigned char *p = fresh(n, "reuse-large shrink first");
        memset(p, 0x23, n);
        free(p);
        p = fresh(n - n / 4, "reuse-large smaller again");
        free(p);
        p = fresh(n, "reuse-large before calloc");
        memset(p, 0x24, n);
        free(p);
        unsigned char *z = calloc(n, 1);
        CHECK(z, "calloc(%zu, 1)", n);
        CHECK_BYTES(z, 0, n, 0, "large calloc after dirty free n=%zu", n);
        free(z);
    }
    get_stats(&s1);
    print_stats("after", &s1);
    unsigned long expect = env_ul("TEST_EXPECT_CACHE", 1);   /* 1 hits, 0 none, 2 either */
    if (expect == 1) {
        CHECK(s1.cache_hits > s0.cache_hits,
              "freed large blocks must be reused from the cache (cache_hits %" PRIu64
              " -> %" PRIu64 ")", s0.cache_hits, s1.cache_hits);
    } else if (expect == 0) {
        CHECK(s1.cache_hits == s0.cache_hits, "cache=0 but cache_hits grew %" PRIu64
              " -> %" PRIu64, s0.cache_hits, s1.cache_hits);
    }
    printf("OK reuse-large\n");
}

static void mode_calloc(void)
{
    size_t sizes[] = {1, 7, 64, 1000, 65536, T - 1, T, T + 1, 1 * MiB, 64 * MiB + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *z = calloc(n, 1);
        CHECK(z, "calloc(%zu,1)", n);
        CHECK_BYTES(z, 0, n, 0, "calloc(%zu,1)", n);
        free(z);
        z = calloc(1, n);
        CHECK(z, "calloc(1,%zu)", n);
        CHECK_BYTES(z, 0, n, 0, "calloc(1,%zu)", n);
        free(z);
    }
    /* calloc as count*size: 1000 x 300 (large) */
    unsigned char *z = calloc(1000, 300);
    CHECK(z, "calloc(1000,300)");
    CHECK_BYTES(z, 0, 300000, 0, "calloc(1000,300)");
    free(z);

    /* Large calloc grown with realloc: zero prefix kept, grown tail is the pattern. */
    size_t grow[][2] = {{T, 8 * MiB}, {1 * MiB, 1 * MiB + 5000}, {1 * MiB, 64 * MiB},
                        {100, 5000}, {1000, T * 2}};
    for (size_t i = 0; i < sizeof grow / sizeof grow[0]; i++) {
        size_t a = grow[i][0], b = grow[i][1];
        unsigned char *p = calloc(1, a);
        CHECK(p, "calloc(1,%zu)", a);
        size_t ua = malloc_usable_size(p);
        CHECK_BYTES(p, 0, a, 0, "calloc(1,%zu) before realloc", a);
        p[0] = 1;
        p = realloc(p, b);
        CHECK(p, "realloc(calloc(%zu), %zu)", a, b);
        size_t ub = malloc_usable_size(p);
        CHECK(ub >= b, "usable %zu < %zu", ub, b);
        CHECK(p[0] == 1, "first byte lost in realloc of calloc block");
        CHECK_BYTES(p, 1, a, 0, "calloc(%zu) realloc'd to %zu: zero prefix", a, b);
        CHECK_BYTES(p, ua, ub, PAT, "calloc(%zu) realloc'd to %zu: grown tail", a, b);
        free(p);
    }
    printf("OK calloc\n");
}

/* realloc a -> b with content written over [0, a); check kept prefix and tail. */
static void *realloc_case(void *p, size_t a, size_t b, unsigned seed, const char *what)
{
    void *q = realloc(p, b);
    if (!q)
        FAIL("%s: realloc(%zu -> %zu) returned NULL", what, a, b);
    size_t ub = malloc_usable_size(q);
    CHECK(ub >= b, "%s: usable %zu < %zu", what, ub, b);
    size_t keep = a < b ? a : b;
    CHECK_CONTENT(q, keep, seed, "%s: realloc %zu -> %zu kept content", what, a, b);
    if (b > a)
        CHECK_BYTES(q, a, ub, PAT, "%s: realloc %zu -> %zu grown tail", what, a, b);
    return q;
}

static void mode_realloc(void)
{
    size_t cases[][2] = {
        {100, 1000},           /* small -> small */
        {24, 25},              /* small, likely in place */
        {1000, 1100},          /* small, grows a little */
        {1000, 2 * T},         /* small -> large */
        {T - 1, T},            /* crossing the threshold */
        {1 * MiB, 1 * MiB + 100},  /* large -> large by a little */
        {1 * MiB, 1 * MiB + 70000},
        {1 * MiB, 64 * MiB},   /* large -> large by a lot */
        {3 * MiB + 7, 200 * MiB},
        {1 * MiB, 1000},       /* large -> small */
        {8 * MiB, 1 * MiB},    /* large shrink */
        {4000, 100},           /* small shrink */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t a = cases[i][0], b = cases[i][1];
        void *p = fresh(a, "realloc source");
        fill_content(p, a, (unsigned)i);
        p = realloc_case(p, a, b, (unsigned)i, "realloc case");
        free(p);
    }
    /* Large block grown while other large blocks sit right after it. */
    {
        void *p = fresh(2 * MiB, "neighbour a");
        void *n1 = fresh(2 * MiB, "neighbour b");
        fill_content(p, 2 * MiB, 77);
        memset(n1, 0x31, 2 * MiB);
        p = realloc_case(p, 2 * MiB, 40 * MiB, 77, "grow with neighbour");
        CHECK_BYTES(n1, 0, 2 * MiB, 0x31, "neighbour block changed by realloc");
        free(n1);
        free(p);
    }
    /* Shrink, then grow back: the regrown tail is the pattern, not old data. */
    size_t sg[][2] = {{4000, 100}, {8 * MiB, 1 * MiB}, {1 * MiB, 1000}, {3 * MiB, T},
                      {64 * MiB, 3 * MiB + 1}};
    for (size_t i = 0; i < sizeof sg / sizeof sg[0]; i++) {
        size_t a = sg[i][0], b = sg[i][1];
        unsigned char *p = fresh(a, "shrink-grow source");
        fill_content(p, a, 100 + (unsigned)i);
        p = realloc(p, b);
        CHECK(p, "shrink %zu -> %zu", a, b);
        size_t us = malloc_usable_size(p);
        CHECK_CONTENT(p, b, 100 + (unsigned)i, "shrink %zu -> %zu", a, b);
        p = realloc(p, a);
        CHECK(p, "regrow %zu -> %zu", b, a);
        CHECK_CONTENT(p, b, 100 + (unsigned)i, "regrow %zu -> %zu -> %zu", a, b, a);
        printf("shrink-grow %zu -> %zu (usable %zu) -> %zu\n", a, b, us, a);
        /* A large block shrunk and grown again: everything past the shrunk
         * size is the grown tail (refmalloc keeps the slack of its own blocks
         * clean). A small block shrunk in place by the next allocator may keep
         * old bytes up to its usable size, as in glibc. */
        size_t from = a >= T ? b : us;
        if (from < a)
            CHECK_BYTES(p, from, malloc_usable_size(p), PAT,
                        "regrown tail after %zu -> %zu -> %zu (old data?)", a, b, a);
        if (a >= T && b >= T)
            CHECK(us < a, "large shrink %zu -> %zu left usable size %zu", a, b, us);
        free(p);
    }
    /* A realloc chain growing by 1.5x from 1 byte to 48 MiB, then back down. */
    {
        size_t n = 1;
        unsigned char *p = fresh(n, "chain");
        p[0] = content_byte(0, 5);
        while (n < 48 * MiB) {
            size_t m = n + n / 2 + 1;
            p = realloc_case(p, n, m, 5, "chain up");
            for (size_t k = n; k < m; k++)
                p[k] = content_byte(k, 5);
            n = m;
        }
        while (n > 10) {
            size_t m = n / 3;
            p = realloc_case(p, n, m, 5, "chain down");
            n = m;
        }
        free(p);
    }
    /* realloc(NULL, n) is malloc. */
    size_t rn[] = {10, 5000, T, 5 * MiB};
    for (size_t i = 0; i < sizeof rn / sizeof rn[0]; i++) {
        void *p = realloc(NULL, rn[i]);
        CHECK(p, "realloc(NULL, %zu)", rn[i]);
        CHECK_BYTES(p, 0, malloc_usable_size(p), PAT, "realloc(NULL, %zu)", rn[i]);
        free(p);
    }
    printf("OK realloc\n");
}

static void check_aligned(void *p, size_t al, size_t n, const char *fn)
{
    CHECK(p, "%s(al=%zu, n=%zu) returned NULL errno=%d", fn, al, n, errno);
    CHECK(((uintptr_t)p & (al - 1)) == 0, "%s(al=%zu, n=%zu) = %p not aligned",
          fn, al, n, p);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s(al=%zu, n=%zu): usable %zu", fn, al, n, u);
    CHECK_BYTES(p, 0, u, PAT, "%s(al=%zu, n=%zu)", fn, al, n);
    memset(p, 0x41, u);
}

static void mode_aligned(void)
{
    size_t ps = page_size();
    size_t sizes[] = {1, 100, 4099, T - 1, T, 3 * T + 5, 4 * MiB + 1};
    size_t count = 0;
    for (size_t al = 16; al <= 2 * MiB; al *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            int r = posix_memalign(&p, al, n);
            CHECK(r == 0, "posix_memalign(al=%zu, n=%zu) = %d", al, n, r);
            check_aligned(p, al, n, "posix_memalign");
            void *q = aligned_alloc(al, n);
            check_aligned(q, al, n, "aligned_alloc");
            void *m = memalign(al, n);
            check_aligned(m, al, n, "memalign");
            /* Grow an aligned block: content kept, tail pattern. */
            size_t um = malloc_usable_size(m);
            m = realloc(m, um + 5000);
            CHECK(m, "realloc of memalign block");
            CHECK_BYTES(m, 0, um, 0x41, "realloc of memalign(al=%zu, n=%zu) content", al, n);
            CHECK_BYTES(m, um, malloc_usable_size(m), PAT,
                        "realloc of memalign(al=%zu, n=%zu) tail", al, n);
            free(p);
            free(q);
            free(m);
            count += 3;
        }
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *v = valloc(n);
        check_aligned(v, ps, n, "valloc");
        void *pv = pvalloc(n);
        check_aligned(pv, ps, n, "pvalloc");
        size_t rounded = (n + ps - 1) / ps * ps;
        CHECK(malloc_usable_size(pv) >= rounded, "pvalloc(%zu) usable %zu < %zu", n,
              malloc_usable_size(pv), rounded);
        free(v);
        free(pv);
        count += 2;
    }
    /* Many aligned blocks live together. */
    void *live[40];
    for (int i = 0; i < 40; i++) {
        size_t al = (size_t)64 << (i % 10);
        size_t n = (i % 3 == 0) ? T + (size_t)i * 1000 : (size_t)i * 100 + 1;
        CHECK(posix_memalign(&live[i], al, n) == 0, "posix_memalign live %d", i);
        check_aligned(live[i], al, n, "posix_memalign live");
    }
    for (int i = 0; i < 40; i++)
        free(live[i]);
    printf("OK aligned checked=%zu\n", count);
}

static void mode_reallocarray(void)
{
    size_t cases[][2] = {{10, 10}, {100, 300}, {1000, 1024}, {8, T}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t nm = cases[i][0], sz = cases[i][1];
        unsigned char *p = reallocarray(NULL, nm, sz);
        CHECK(p, "reallocarray(NULL, %zu, %zu)", nm, sz);
        size_t u = malloc_usable_size(p);
        CHECK(u >= nm * sz, "usable");
        CHECK_BYTES(p, 0, u, PAT, "reallocarray(NULL, %zu, %zu)", nm, sz);
        fill_content(p, nm * sz, 9);
        p = reallocarray(p, nm * 3, sz);
        CHECK(p, "reallocarray grow");
        CHECK_CONTENT(p, nm * sz, 9, "reallocarray(%zu*3, %zu) content", nm, sz);
        CHECK_BYTES(p, nm * sz, malloc_usable_size(p), PAT,
                    "reallocarray(%zu*3, %zu) tail", nm, sz);
        p = reallocarray(p, nm, sz / 2);
        CHECK(p, "reallocarray shrink");
        CHECK_CONTENT(p, nm * (sz / 2), 9, "reallocarray shrink content");
        free(p);
    }
    printf("OK reallocarray\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    if (argc < 2)
        FAIL("usage: pattern MODE");
    if (!under_refmalloc())
        FAIL("not running under refmalloc (refmalloc_get_stats not found)");
    const char *m = argv[1];
    if (!strcmp(m, "sizes"))
        mode_sizes();
    else if (!strcmp(m, "reuse-small"))
        mode_reuse_small();
    else if (!strcmp(m, "reuse-large"))
        mode_reuse_large();
    else if (!strcmp(m, "calloc"))
        mode_calloc();
    else if (!strcmp(m, "realloc"))
        mode_realloc();
    else if (!strcmp(m, "aligned"))
        mode_aligned();
    else if (!strcmp(m, "reallocarray"))
        mode_reallocarray();
    else
        FAIL("unknown mode %s", m);
    return 0;
}
