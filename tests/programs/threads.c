/* 8 threads (argv[1]) for argv[2] ms each doing mixed small/large
 * malloc/calloc/realloc/free, checking the pattern of every fresh byte and
 * the content of every live block. */
#include "common.h"
#include <pthread.h>
#include <time.h>

#define SLOTS 48

static unsigned char PAT;
static size_t T;
static long duration_ms;

struct slot {
    unsigned char *p;
    size_t n;
    size_t dirty_end;   /* one past the highest byte ever written */
    unsigned char sig;
};

struct tstate {
    int id;
    unsigned long ops, larges, reallocs;
    unsigned long rng;
};

static unsigned long rnd(struct tstate *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

static size_t pick_size(struct tstate *t)
{
    unsigned r = rnd(t) % 100;
    if (r < 85)
        return 1 + rnd(t) % 4096;
    if (r < 95)
        return 4097 + rnd(t) % (2 * T);
    t->larges++;
    return T + rnd(t) % (6u << 20);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sign the block: the first 64 bytes, the last byte, one byte per 64 KiB. */
static void sign(struct slot *s)
{
    size_t k = s->n < 64 ? s->n : 64;
    memset(s->p, s->sig, k);
    s->p[s->n - 1] = s->sig;
    if (s->n > s->dirty_end)
        s->dirty_end = s->n;
    for (size_t off = 65536; off < s->n; off += 65536)
        s->p[off] = s->sig;
}

static void verify(struct slot *s, int tid, size_t n)
{
    size_t k = n < 64 ? n : 64;
    for (size_t i = 0; i < k; i++)
        if (s->p[i] != s->sig)
            FAIL("thread %d: block %p size %zu byte %zu is 0x%02x, signature 0x%02x",
                 tid, (void *)s->p, s->n, i, s->p[i], s->sig);
    if (n == s->n && s->p[n - 1] != s->sig)
        FAIL("thread %d: block %p last byte lost", tid, (void *)s->p);
    for (size_t off = 65536; off < n; off += 65536)
        if (s->p[off] != s->sig)
            FAIL("thread %d: block %p size %zu byte %zu lost signature", tid,
                 (void *)s->p, s->n, off);
}

static void *worker(void *arg)
{
    struct tstate *t = arg;
    struct slot slots[SLOTS];
    memset(slots, 0, sizeof slots);
    long end = now_ms() + duration_ms;
    while (now_ms() < end) {
        for (int it = 0; it < 64; it++) {
            struct slot *s = &slots[rnd(t) % SLOTS];
            t->ops++;
            if (!s->p) {
                size_t n = pick_size(t);
                int zero = rnd(t) % 8 == 0;
                s->p = zero ? calloc(1, n) : malloc(n);
                if (!s->p)
                    FAIL("thread %d: %s(%zu) NULL", t->id, zero ? "calloc" : "malloc", n);
                s->n = n;
                s->dirty_end = 0;
                size_t u = malloc_usable_size(s->p);
                CHECK(u >= n, "thread %d usable %zu < %zu", t->id, u, n);
                if (zero) {
                    CHECK_BYTES(s->p, 0, n, 0, "thread %d calloc(%zu)", t->id, n);
                    s->dirty_end = u;   /* calloc's slack is not the pattern */
                }
                else
                    CHECK_BYTES(s->p, 0, u, PAT, "thread %d malloc(%zu)", t->id, n);
                s->sig = (unsigned char)(1 + (t->id * 37 + t->ops) % 250);
                if (s->sig == PAT)
                    s->sig ^= 0x40;
                sign(s);
            } else if (rnd(t) % 3 == 0) {
                verify(s, t->id, s->n);
                size_t m = pick_size(t);
                size_t old = s->n, old_usable = malloc_usable_size(s->p);
                unsigned char *q = realloc(s->p, m);
                if (!q)
                    FAIL("thread %d realloc(%zu -> %zu) NULL", t->id, old, m);
                t->reallocs++;
                s->p = q;
                s->n = m;
                size_t keep = old < m ? old : m;
                /* The signature bytes below keep survive the move. */
                for (size_t i = 0; i < keep && i < 64; i++)
                    if (q[i] != s->sig)
                        FAIL("thread %d realloc %zu -> %zu lost byte %zu", t->id, old, m, i);
                for (size_t off = 65536; off < keep; off += 65536)
                    if (q[off] != s->sig)
                        FAIL("thread %d realloc %zu -> %zu lost byte %zu", t->id, old, m, off);
                if (m > old) {
                    if (q[old - 1] != s->sig)
                        FAIL("thread %d realloc %zu -> %zu lost last byte", t->id, old, m);
                    /* the grown tail, beyond the old usable size and beyond
                     * anything the program wrote, is the pattern */
                    size_t from = s->dirty_end >= old_usable ? old_usable
                                  : (old > s->dirty_end ? old : s->dirty_end);
                    CHECK_BYTES(q, from, malloc_usable_size(q), PAT,
                                "thread %d realloc %zu -> %zu tail", t->id, old, m);
                }
                sign(s);
            } else {
                verify(s, t->id, s->n);
                free(s->p);
                s->p = NULL;
            }
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            verify(&slots[i], t->id, slots[i].n);
            free(slots[i].p);
        }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    int nthreads = argc > 1 ? atoi(argv[1]) : 8;
    duration_ms = argc > 2 ? atol(argv[2]) : 1000;
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    pthread_t th[64];
    struct tstate st[64];
    for (int i = 0; i < nthreads; i++) {
        st[i] = (struct tstate){.id = i, .rng = 0x9e3779b97f4a7c15ul * (i + 1)};
        if (pthread_create(&th[i], NULL, worker, &st[i]))
            FAIL("pthread_create");
    }
    unsigned long ops = 0, larges = 0, reallocs = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        ops += st[i].ops;
        larges += st[i].larges;
        reallocs += st[i].reallocs;
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("end", &s);
    CHECK(s.live_large_blocks == 0, "live_large_blocks %" PRIu64 " after all frees",
          s.live_large_blocks);
    printf("OK threads=%d ops=%lu large_requests=%lu reallocs=%lu large_allocs=%" PRIu64 "\n",
           nthreads, ops, larges, reallocs, s.large_allocs);
    return 0;
}
