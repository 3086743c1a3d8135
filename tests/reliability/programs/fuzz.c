/* Random allocation sequences against a shadow model (issue 6, fuzzing).
 *
 *   fuzz            read operations from stdin, one per line (hypothesis)
 *   fuzz random SEED OPS [MAXSIZE]   generate OPS operations from SEED
 *
 * Operations (S: slot 0..63, N/K: sizes, A: alignment, SEED: content seed):
 *   m S N          p = malloc(N)
 *   c S K N        p = calloc(K, N)
 *   a S KIND A N   KIND 0 memalign, 1 posix_memalign, 2 aligned_alloc,
 *                  3 valloc, 4 pvalloc (A ignored by 3 and 4)
 *   r S N          p = realloc(p, N)   (slot empty: realloc(NULL, N))
 *   y S K N        p = reallocarray(p, K, N)
 *   w S OFF LEN SEED   write content bytes over [OFF, OFF+LEN) of the
 *                  requested size (clipped)
 *   f S            free(p)             (slot empty: free(NULL))
 *   z S            free_sized(p, N)    (when the library exports it)
 *   v              check every live block
 * An allocation into a live slot frees the old block first.
 *
 * After every step the block touched is checked completely against the
 * model: bytes never written hold the pattern (calloc: zero), written bytes
 * are intact after reallocs, alignment, usable size >= size and unchanged
 * while the block lives. TEST_PATTERN gives the expected pattern. */
#include "common.h"
#include <time.h>

#define NSLOTS 64

enum seg_kind { PAT = 1, ZERO, ZP /* zero or pattern */, ANY, DATA };

struct seg {
    size_t a, b;
    int kind;
    unsigned seed;
};

struct slot {
    unsigned char *p;
    size_t n, usable, align;
    struct seg *seg;
    size_t nseg, cap;
};

static struct slot slots[NSLOTS];
static unsigned char PATB;
static unsigned long step;
static const char *cur_op = "";
static void (*free_sized_fn)(void *, size_t);
static FILE *trace;   /* FUZZ_TRACE=path: every operation, for a reproducer */

#define FFAIL(...)                                                              \
    FAIL("step %lu (%s): %s", step, cur_op, rm_fmt(__VA_ARGS__))

static void seg_push(struct slot *s, size_t a, size_t b, int kind, unsigned seed)
{
    if (a >= b)
        return;
    if (s->nseg == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->seg = realloc(s->seg, s->cap * sizeof *s->seg);
        if (!s->seg)
            FFAIL("model out of memory");
    }
    s->seg[s->nseg++] = (struct seg){a, b, kind, seed};
}

/* Overlay [a, b) with a new segment (segments stay sorted, disjoint, and
 * cover [0, usable)). */
static void seg_overlay(struct slot *s, size_t a, size_t b, int kind, unsigned seed)
{
    if (a >= b)
        return;
    struct seg *old = s->seg;
    size_t n = s->nseg;
    s->seg = NULL;
    s->nseg = s->cap = 0;
    int placed = 0;
    for (size_t i = 0; i < n; i++) {
        struct seg g = old[i];
        if (g.b <= a || g.a >= b) {
            if (!placed && g.a >= b) {
                seg_push(s, a, b, kind, seed);
                placed = 1;
            }
            seg_push(s, g.a, g.b, g.kind, g.seed);
            continue;
        }
        if (g.a < a)
            seg_push(s, g.a, a, g.kind, g.seed);
        if (!placed) {
            seg_push(s, a, b, kind, seed);
            placed = 1;
        }
        if (g.b > b)
            seg_push(s, b, g.b, g.kind, g.seed);
    }
    if (!placed)
        seg_push(s, a, b, kind, seed);
    free(old);
}

static unsigned char data_byte(size_t i, unsigned seed)
{
    unsigned char b = (unsigned char)((i * 167u + seed * 61u + (i >> 9) * 13u) & 0xff);
    while (b == PATB || b == 0)
        b = (unsigned char)(b + 11);
    return b;
}

/* The alignment malloc owes a block of n bytes: 16 (max_align_t) once it can
 * hold one; jemalloc and others give tiny blocks 8. */
static size_t base_align(size_t n)
{
    return n >= 16 ? 16 : n ? 8 : 1;
}

static void check_slot(int k)
{
    struct slot *s = &slots[k];
    if (!s->p)
        return;
    size_t u = malloc_usable_size(s->p);
    if (u != s->usable)
        FFAIL("slot %d: usable size changed from %zu to %zu while live", k, s->usable, u);
    for (size_t g = 0; g < s->nseg; g++) {
        struct seg *e = &s->seg[g];
        switch (e->kind) {
        case PAT: {
            size_t i = find_mismatch(s->p, e->a, e->b, PATB);
            if (i != (size_t)-1)
                FFAIL("slot %d (%p size %zu usable %zu): byte %zu is 0x%02x, expected the "
                      "pattern 0x%02x (never written)",
                      k, (void *)s->p, s->n, s->usable, i, s->p[i], PATB);
            break;
        }
        case ZERO: {
            size_t i = find_mismatch(s->p, e->a, e->b, 0);
            if (i != (size_t)-1)
                FFAIL("slot %d (%p size %zu): byte %zu is 0x%02x, expected 0 (calloc)", k,
                      (void *)s->p, s->n, i, s->p[i]);
            break;
        }
        case ZP:
            for (size_t i = e->a; i < e->b; i++)
                if (s->p[i] != 0 && s->p[i] != PATB)
                    FFAIL("slot %d (%p size %zu): byte %zu is 0x%02x, expected 0 or the "
                          "pattern",
                          k, (void *)s->p, s->n, i, s->p[i]);
            break;
        case DATA:
            for (size_t i = e->a; i < e->b; i++)
                if (s->p[i] != data_byte(i, e->seed))
                    FFAIL("slot %d (%p size %zu): written byte %zu is 0x%02x, expected 0x%02x "
                          "(content lost)",
                          k, (void *)s->p, s->n, i, s->p[i], data_byte(i, e->seed));
            break;
        default:
            break;
        }
    }
}

static void drop(int k)
{
    struct slot *s = &slots[k];
    free(s->seg);
    memset(s, 0, sizeof *s);
}

/* A fresh block from an allocation function. */
static void adopt(int k, unsigned char *p, size_t n, size_t align, int zero, const char *fn)
{
    struct slot *s = &slots[k];
    if (!p)
        FFAIL("%s(%zu) returned NULL (errno %d)", fn, n, errno);
    size_t u = malloc_usable_size(p);
    if (u < n)
        FFAIL("%s(%zu): usable size %zu < size", fn, n, u);
    if ((uintptr_t)p % base_align(n))
        FFAIL("%s(%zu) = %p: not %zu-byte aligned", fn, n, (void *)p, base_align(n));
    if (align && n && (uintptr_t)p % align)   /* jemalloc: memalign(A, 0) not A-aligned */
        FFAIL("%s(%zu) = %p: not aligned to %zu", fn, n, (void *)p, align);
    s->p = p;
    s->n = n;
    s->usable = u;
    s->align = align;
    if (zero) {
        seg_push(s, 0, n, ZERO, 0);
        seg_push(s, n, u, ZP, 0);
    } else {
        seg_push(s, 0, u, PAT, 0);
    }
    check_slot(k);
}

static void release(int k, int sized)
{
    struct slot *s = &slots[k];
    if (!s->p) {
        free(NULL);
        return;
    }
    check_slot(k);
    int e = errno = 1234;
    if (sized && free_sized_fn && !s->align)
        free_sized_fn(s->p, s->n);
    else
        free(s->p);
    if (errno != e)
        FFAIL("free changed errno to %d", errno);
    drop(k);
}

static void do_realloc(int k, size_t m, unsigned char *q, const char *fn)
{
    struct slot *s = &slots[k];
    if (!s->p) {
        adopt(k, q, m, 0, 0, fn);
        return;
    }
    if (m == 0 && !q) {                 /* glibc 2.36: realloc(p, 0) frees */
        drop(k);
        return;
    }
    if (!q)
        FFAIL("%s(%zu -> %zu) NULL errno %d", fn, s->n, m, errno);
    size_t ou = s->usable, nu = malloc_usable_size(q);
    if (nu < m)
        FFAIL("%s(%zu -> %zu): usable %zu", fn, s->n, m, nu);
    if ((uintptr_t)q % base_align(m))
        FFAIL("%s(%zu): %p not %zu-byte aligned", fn, m, (void *)q, base_align(m));
    /* Model: bytes below min(old usable, new usable) keep what they held, but
     * written data beyond the new size is no longer promised; the rest of the
     * new usable size is the pattern. */
    size_t keep = ou < nu ? ou : nu;
    struct seg *old = s->seg;
    size_t n = s->nseg;
    s->seg = NULL;
    s->nseg = s->cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct seg g = old[i];
        if (g.a >= keep)
            break;
        if (g.b > keep)
            g.b = keep;
        if ((g.kind == DATA || g.kind == ZERO) && g.b > m) {
            /* beyond the new size: written data is no longer promised,
             * calloc's zeros may have become the pattern */
            if (g.a < m)
                seg_push(s, g.a, m, g.kind, g.seed);
            seg_push(s, g.a > m ? g.a : m, g.b, g.kind == DATA ? ANY : ZP, 0);
        } else {
            seg_push(s, g.a, g.b, g.kind, g.seed);
        }
    }
    free(old);
    seg_push(s, keep, nu, PAT, 0);
    s->p = q;
    s->n = m;
    s->usable = nu;
    s->align = 0;
    check_slot(k);
}

static void do_write(int k, size_t off, size_t len, unsigned seed)
{
    struct slot *s = &slots[k];
    if (!s->p || s->n == 0)
        return;
    off %= s->n;
    if (len > s->n - off)
        len = s->n - off;
    for (size_t i = off; i < off + len; i++)
        s->p[i] = data_byte(i, seed);
    seg_overlay(s, off, off + len, DATA, seed);
    check_slot(k);
}

static int slot_arg(unsigned long v)
{
    return (int)(v % NSLOTS);
}

static void run_line(char *line)
{
    char op[4] = {0};
    unsigned long a[5] = {0};
    int got = sscanf(line, "%3s %lu %lu %lu %lu %lu", op, &a[0], &a[1], &a[2], &a[3], &a[4]);
    if (got < 1)
        return;
    cur_op = line;
    if (trace)
        fprintf(trace, "%s\n", line);
    int k = slot_arg(a[0]);
    switch (op[0]) {
    case 'm':
        release(k, 0);
        adopt(k, malloc(a[1]), a[1], 0, 0, "malloc");
        break;
    case 'c': {
        release(k, 0);
        size_t n = a[1] * a[2];
        adopt(k, calloc(a[1], a[2]), n, 0, 1, "calloc");
        break;
    }
    case 'a': {
        release(k, 0);
        size_t al = a[2], n = a[3], ps = page_size();
        unsigned char *p = NULL;
        switch (a[1] % 5) {
        case 0:
            p = memalign(al, n);
            adopt(k, p, n, al, 0, "memalign");
            break;
        case 1: {
            int e = errno = 4321;
            int rc = posix_memalign((void **)&p, al, n);
            if (rc)
                FFAIL("posix_memalign(%zu, %zu) = %d", al, n, rc);
            if (errno != e)
                FFAIL("posix_memalign changed errno");
            adopt(k, p, n, al, 0, "posix_memalign");
            break;
        }
        case 2:
            adopt(k, aligned_alloc(al, n), n, al, 0, "aligned_alloc");
            break;
        case 3:
            adopt(k, valloc(n), n, ps, 0, "valloc");
            break;
        default: {
            size_t r = (n + ps - 1) / ps * ps;
            adopt(k, pvalloc(n), r, ps, 0, "pvalloc");
            break;
        }
        }
        break;
    }
    case 'r':
        check_slot(k);
        do_realloc(k, a[1], realloc(slots[k].p, a[1]), "realloc");
        break;
    case 'y': {
        size_t n = a[1] * a[2];
        if (!slots[k].p) {
            adopt(k, reallocarray(NULL, a[1], a[2]), n, 0, 0, "reallocarray");
            break;
        }
        check_slot(k);   /* before: the call may free the old block */
        do_realloc(k, n, reallocarray(slots[k].p, a[1], a[2]), "reallocarray");
        break;
    }
    case 'w':
        do_write(k, a[1], a[2], (unsigned)a[3]);
        break;
    case 'f':
        release(k, 0);
        break;
    case 'z':
        release(k, 1);
        break;
    case 'v':
        for (int i = 0; i < NSLOTS; i++)
            check_slot(i);
        break;
    default:
        FFAIL("unknown operation");
    }
    step++;
}

static uint64_t rng = 1;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t rsize(size_t T, size_t maxsize)
{
    switch (rnd() % 8) {
    case 0:
        return rnd() % 64;
    case 1:
    case 2:
        return rnd() % 4096;
    case 3:
        return rnd() % T;
    case 4:                                   /* around the threshold */
        return T - 64 + rnd() % 128;
    case 5:                                   /* around page multiples of it */
        return T + (rnd() % 8) * page_size() - 2 + rnd() % 4;
    default:
        return T + rnd() % (maxsize > T ? maxsize - T : 1);
    }
}

int main(int argc, char **argv)
{
    /* stdio buffers of our own: with a tiny threshold a malloc'd buffer would
     * be a live large block at the final count */
    static char outbuf[8192], inbuf[8192], tracebuf[8192];
    setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf);
    setvbuf(stdin, inbuf, _IOFBF, sizeof inbuf);
    PATB = expected_pattern();
    size_t T = test_threshold();
    free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    struct refmalloc_stats st0;
    get_stats(&st0);
    uint64_t live_before = st0.live_large_blocks;
    char line[256];
    if (getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE")) {
        trace = fopen(getenv("FUZZ_TRACE"), "w");
        CHECK(trace, "open FUZZ_TRACE");
        setvbuf(trace, tracebuf, _IOLBF, sizeof tracebuf);
    }
    if (argc > 1 && !strcmp(argv[1], "random")) {
        rng = argc > 2 ? strtoull(argv[2], NULL, 0) * 2654435761u + 1 : 1;
        unsigned long ops = argc > 3 ? strtoul(argv[3], NULL, 0) : 10000;
        size_t maxsize = argc > 4 ? strtoul(argv[4], NULL, 0) : 8 * T;
        for (unsigned long i = 0; i < ops; i++) {
            unsigned s = (unsigned)(rnd() % NSLOTS);
            unsigned c = (unsigned)(rnd() % 100);
            if (c < 25)
                snprintf(line, sizeof line, "m %u %zu", s, rsize(T, maxsize));
            else if (c < 30)
                snprintf(line, sizeof line, "c %u %u %zu", s, (unsigned)(1 + rnd() % 4),
                         rsize(T, maxsize) / 4);
            else if (c < 36)
                snprintf(line, sizeof line, "a %u %u %zu %zu", s, (unsigned)(rnd() % 5),
                         (size_t)16 << (rnd() % 12), rsize(T, maxsize));
            else if (c < 55)
                snprintf(line, sizeof line, "r %u %zu", s, rsize(T, maxsize));
            else if (c < 58)
                snprintf(line, sizeof line, "y %u %u %zu", s, (unsigned)(1 + rnd() % 3),
                         rsize(T, maxsize) / 3);
            else if (c < 80)
                snprintf(line, sizeof line, "w %u %zu %zu %u", s, (size_t)rnd() % (maxsize + 1),
                         (size_t)(rnd() % 4 ? rnd() % 5000 : rnd() % maxsize),
                         (unsigned)(rnd() % 1000));
            else if (c < 97)
                snprintf(line, sizeof line, "%s %u", rnd() % 4 ? "f" : "z", s);
            else
                snprintf(line, sizeof line, "v");
            run_line(line);
        }
    } else {
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\n")] = 0;
            run_line(line);
        }
    }
    cur_op = "final check";
    for (int i = 0; i < NSLOTS; i++) {
        check_slot(i);
        release(i, 0);
    }
    struct refmalloc_stats st;
    get_stats(&st);
    /* Blocks live before the first operation (libstdc++'s 72704-byte emergency
     * pool when jemalloc, which links it, is stacked) are not ours. */
    if (st.live_large_blocks != live_before) {
        /* FUZZ_REPORT=path: the report (its live_blocks) for the diagnosis */
        int (*wr)(const char *) =
            (int (*)(const char *))dlsym(RTLD_DEFAULT, "refmalloc_write_report");
        if (getenv("FUZZ_REPORT") && wr)
            wr(getenv("FUZZ_REPORT"));
        FFAIL("live_large_blocks %" PRIu64 " after every block was freed (%" PRIu64 " before)",
              st.live_large_blocks, live_before);
    }
    printf("OK fuzz steps=%lu large_allocs=%" PRIu64 " cache_hits=%" PRIu64
           " realloc_in_place=%" PRIu64 " realloc_moved=%" PRIu64 "\n",
           step, st.large_allocs, st.cache_hits, st.realloc_in_place, st.realloc_moved);
    return 0;
}
