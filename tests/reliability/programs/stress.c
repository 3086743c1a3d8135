/* Stress workloads under refmalloc (issue 6). Every mode checks its own
 * invariants and exits 1 with a FAIL line at the first violation. Modes:
 *   churn N SEED    N allocations (malloc/calloc/realloc/aligned) with random
 *                   frees over 4096 slots, sizes mostly small, some across and
 *                   above the threshold: fresh bytes hold the pattern (calloc
 *                   zero), signatures survive until free, usable size >= size.
 *   pingpong N      blocks realloc'd back and forth across the threshold
 *                   (T-1 <-> T, small <-> large, shrinking too): content kept,
 *                   grown tail holds the pattern, N round trips.
 *   ownmemfd MS     large blocks holding this process's pattern; prints the
 *                   device:inode of its memfd, holds the blocks MS ms (so many
 *                   processes run at once), checks them again.
 *   forkstorm K TH  TH threads allocate across the threshold without pause
 *                   while K children are forked, alternately from the main
 *                   thread and from a worker thread; each child starts a
 *                   thread, allocates/frees, checks inherited blocks, and forks
 *                   a grandchild that does the same (alarm: a deadlock is a
 *                   failure, never a hang). */
#include "common.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned char sig_for(uint64_t k)
{
    unsigned char b = (unsigned char)(1 + k % 251);
    while (b == PAT || b == 0)
        b = (unsigned char)(b + 3);
    return b;
}

/* ---- churn --------------------------------------------------------------- */

struct cslot {
    unsigned char *p;
    size_t n;
    unsigned char sig;
};

/* Write the signature: up to 32 bytes at the start, the last byte, and one
 * byte per 64 KiB (large blocks stay sparse). */
static void sign(struct cslot *s)
{
    size_t k = s->n < 32 ? s->n : 32;
    memset(s->p, s->sig, k);
    if (s->n)
        s->p[s->n - 1] = s->sig;
    for (size_t off = 65536; off < s->n; off += 65536)
        s->p[off] = s->sig;
}

static void verify_sig(const struct cslot *s, size_t n, const char *what)
{
    size_t k = n < 32 ? n : 32;
    for (size_t i = 0; i < k; i++)
        if (s->p[i] != s->sig)
            FAIL("%s: block %p size %zu byte %zu is 0x%02x, signature 0x%02x", what,
                 (void *)s->p, s->n, i, s->p[i], s->sig);
    if (n == s->n && n && s->p[n - 1] != s->sig)
        FAIL("%s: block %p size %zu lost its last byte", what, (void *)s->p, s->n);
    for (size_t off = 65536; off < n; off += 65536)
        if (s->p[off] != s->sig)
            FAIL("%s: block %p size %zu lost byte %zu", what, (void *)s->p, s->n, off);
}

static size_t churn_size(uint64_t *r)
{
    unsigned c = (unsigned)(rng_next(r) % 1000);
    if (c < 880)
        return rng_next(r) % 1025;                  /* tiny/small, 0 included */
    if (c < 960)
        return 1025 + rng_next(r) % (T - 1025);      /* medium, below the threshold */
    if (c < 985)                                     /* at the threshold +- 2 pages */
        return T - 2 * page_size() + rng_next(r) % (4 * page_size());
    return T + rng_next(r) % (4 * T);                /* large */
}

static void mode_churn(unsigned long n, uint64_t seed)
{
    /* TEST_NO_MEMALIGN=1: Debian's mimalloc 2.0.9 itself (without refmalloc)
     * returns memalign(512, 512) blocks aligned to 128 only after this
     * history */
    int no_memalign = getenv("TEST_NO_MEMALIGN") != NULL;
    enum { NS = 4096 };
    static struct cslot slots[NS];
    uint64_t r = seed ? seed : 88172645463325252ull;
    unsigned long allocs = 0, frees = 0, large = 0, reallocs = 0;
    while (allocs < n) {
        struct cslot *s = &slots[rng_next(&r) % NS];
        if (s->p && rng_next(&r) % 4 == 0) {       /* realloc a live block */
            verify_sig(s, s->n, "churn before realloc");
            size_t m = churn_size(&r);
            if (m == 0)
                m = 1;
            size_t old = s->n, old_usable = malloc_usable_size(s->p);
            unsigned char *q = realloc(s->p, m);
            CHECK(q, "realloc(%zu -> %zu) NULL", old, m);
            s->p = q;
            size_t keep = old < m ? old : m;
            verify_sig(s, keep, "churn after realloc");
            /* Beyond the old usable size nothing was ever written: pattern. */
            size_t u = malloc_usable_size(q);
            CHECK(u >= m, "usable %zu < %zu after realloc", u, m);
            if (u > old_usable)
                CHECK_BYTES(q, old_usable, u, PAT, "realloc %zu -> %zu grown tail", old, m);
            s->n = m;
            sign(s);
            reallocs++;
            allocs++;
            continue;
        }
        if (s->p) {
            verify_sig(s, s->n, "churn before free");
            free(s->p);
            s->p = NULL;
            frees++;
        }
        size_t m = churn_size(&r);
        unsigned how = (unsigned)(rng_next(&r) % 16);
        unsigned char *p;
        size_t align = 0;
        if (how == 0) {
            p = calloc(1, m);
        } else if (how == 1 && !no_memalign) {
            align = (size_t)64 << (rng_next(&r) % 8);  /* 64 .. 8192 */
            p = memalign(align, m);
        } else {
            p = malloc(m);
        }
        CHECK(p, "alloc(%zu) NULL errno %d", m, errno);
        size_t u = malloc_usable_size(p);
        CHECK(u >= m, "usable %zu < requested %zu", u, m);
        /* malloc's alignment: 16 for blocks that can hold a max_align_t; small
         * blocks of jemalloc and others get 8 */
        CHECK(((uintptr_t)p & (m >= 16 ? 15 : m ? 7 : 0)) == 0, "%p (size %zu) misaligned", (void *)p, m);
        if (align && m)   /* jemalloc's memalign(A, 0) is not A-aligned */
            CHECK(((uintptr_t)p & (align - 1)) == 0, "%p not aligned to %zu (size %zu, how %u)", (void *)p, align, m, how);
        if (how == 0)
            CHECK_BYTES(p, 0, m, 0, "calloc(%zu)", m);
        else if (m < 3 * T)
            CHECK_BYTES(p, 0, u, PAT, "malloc(%zu)", m);
        else {                                       /* large: first, middle, last pages */
            size_t ps = page_size();
            CHECK_BYTES(p, 0, ps, PAT, "malloc(%zu) head", m);
            CHECK_BYTES(p, (m / 2) & ~(ps - 1), ((m / 2) & ~(ps - 1)) + ps, PAT,
                        "malloc(%zu) middle", m);
            CHECK_BYTES(p, u - ps, u, PAT, "malloc(%zu) tail", m);
        }
        if (m >= T)
            large++;
        s->p = p;
        s->n = m;
        s->sig = sig_for(allocs);
        sign(s);
        allocs++;
    }
    for (int i = 0; i < NS; i++)
        if (slots[i].p) {
            verify_sig(&slots[i], slots[i].n, "churn final");
            free(slots[i].p);
            frees++;
        }
    struct refmalloc_stats st;
    get_stats(&st);
    print_stats("churn", &st);
    CHECK(st.live_large_blocks == 0, "live_large_blocks %" PRIu64 " after freeing all",
          st.live_large_blocks);
    printf("OK churn allocs=%lu frees=%lu reallocs=%lu large=%lu\n", allocs, frees, reallocs,
           large);
}

/* ---- pingpong ------------------------------------------------------------ */

static void mode_pingpong(unsigned long rounds)
{
    size_t ps = page_size();
    /* size pairs crossing the threshold both ways */
    size_t a[] = {T - 1, 100, T / 2, T - ps, 4000, 1};
    size_t b[] = {T, T + 1, 3 * T + 5, T + ps, 8 * T, 2 * MiB + 3};
    enum { NP = sizeof a / sizeof a[0] };
    unsigned char *blk[NP];
    size_t cur[NP];
    for (int i = 0; i < NP; i++) {
        blk[i] = malloc(a[i]);
        CHECK(blk[i], "malloc");
        cur[i] = a[i];
        fill_content(blk[i], a[i], (unsigned)i);
    }
    for (unsigned long r = 0; r < rounds; r++) {
        for (int i = 0; i < NP; i++) {
            size_t to = (r & 1) ? a[i] : b[i];
            if ((r % 7) == 3)                        /* sometimes a different size */
                to += (r % 5) * 4096 + r % 3;
            size_t from = cur[i], keep = from < to ? from : to;
            unsigned char *q = realloc(blk[i], to);
            CHECK(q, "realloc %zu -> %zu NULL", from, to);
            CHECK_CONTENT(q, keep, (unsigned)i, "round %lu block %d realloc %zu -> %zu", r, i,
                          from, to);
            size_t u = malloc_usable_size(q);
            CHECK(u >= to, "usable %zu < %zu", u, to);
            /* The program only ever wrote [0, keep) of this block: the rest of
             * the usable size holds the pattern (realloc fills it). */
            CHECK_BYTES(q, keep, u, PAT, "round %lu block %d realloc %zu -> %zu tail", r, i,
                        from, to);
            fill_content(q, to, (unsigned)i);
            blk[i] = q;
            cur[i] = to;
        }
    }
    for (int i = 0; i < NP; i++) {
        CHECK_CONTENT(blk[i], cur[i], (unsigned)i, "final block %d", i);
        free(blk[i]);
    }
    struct refmalloc_stats st;
    get_stats(&st);
    print_stats("pingpong", &st);
    CHECK(st.live_large_blocks == 0, "live_large_blocks %" PRIu64, st.live_large_blocks);
    printf("OK pingpong rounds=%lu realloc_in_place=%" PRIu64 " realloc_moved=%" PRIu64 "\n",
           rounds, st.realloc_in_place, st.realloc_moved);
}

/* ---- ownmemfd ------------------------------------------------------------ */

static void print_memfds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d, "opendir");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l < 0)
            continue;
        link[l] = 0;
        if (!is_memfd_link(link))
            continue;
        struct stat st;
        CHECK(stat(path, &st) == 0, "stat %s", path);
        printf("MEMFD %llu:%llu\n", (unsigned long long)st.st_dev,
               (unsigned long long)st.st_ino);
        n++;
    }
    closedir(d);
    CHECK(n >= 1, "no memfd in this process after large mallocs");
}

static void mode_ownmemfd(long ms)
{
    size_t sizes[] = {T, 1 * MiB, 7 * MiB + 5, 40 * MiB};
    enum { NB = sizeof sizes / sizeof sizes[0] };
    unsigned char *p[NB];
    for (int i = 0; i < NB; i++) {
        p[i] = malloc(sizes[i]);
        CHECK(p[i], "malloc");
        CHECK_BYTES(p[i], 0, malloc_usable_size(p[i]), PAT, "malloc(%zu)", sizes[i]);
        fill_content(p[i], sizes[i] / 3, (unsigned)i);
    }
    print_memfds();
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    for (int i = 0; i < NB; i++) {
        CHECK_CONTENT(p[i], sizes[i] / 3, (unsigned)i, "block %d after sleep", i);
        CHECK_BYTES(p[i], sizes[i] / 3, sizes[i], PAT, "block %d after sleep", i);
        free(p[i]);
    }
    for (int i = 0; i < NB; i++) {                /* fresh again, after the others ran */
        unsigned char *q = malloc(sizes[i] + 4096);
        CHECK(q, "malloc");
        CHECK_BYTES(q, 0, sizes[i] + 4096, PAT, "second malloc(%zu)", sizes[i] + 4096);
        free(q);
    }
    struct refmalloc_stats st;
    get_stats(&st);
    CHECK(st.refpage_allocs >= 1, "no refpage block");
    printf("OK ownmemfd pattern=0x%02x\n", PAT);
}

/* ---- forkstorm ----------------------------------------------------------- */

static volatile int stop_churn;
static unsigned char *held[3];
static size_t held_n[3];

static void small_large_round(unsigned k, const char *who)
{
    size_t sizes[] = {24, 3000, T - 1, T, 2 * MiB + 17};
    for (int i = 0; i < 5; i++) {
        unsigned char *p = malloc(sizes[i]);
        CHECK(p, "%s malloc(%zu)", who, sizes[i]);
        CHECK_BYTES(p, 0, malloc_usable_size(p), PAT, "%s %u malloc(%zu)", who, k, sizes[i]);
        memset(p, 0x5a, sizes[i]);
        p = realloc(p, sizes[i] * 2 + 1);
        CHECK(p && p[0] == 0x5a && p[sizes[i] - 1] == 0x5a, "%s realloc content", who);
        CHECK_BYTES(p, sizes[i], malloc_usable_size(p), PAT, "%s realloc tail", who);
        free(p);
    }
}

static void *churner(void *arg)
{
    uint64_t r = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *keep[8] = {0};
    size_t keep_n[8] = {0};
    while (!stop_churn) {
        int i = (int)(rng_next(&r) % 8);
        if (keep[i]) {
            CHECK(keep[i][0] == 0x3c && keep[i][keep_n[i] - 1] == 0x3c, "churner content");
            free(keep[i]);
            keep[i] = NULL;
        }
        size_t n = (rng_next(&r) & 1) ? 16 + rng_next(&r) % 2000 : T + rng_next(&r) % (3 * T);
        unsigned char *p = malloc(n);
        CHECK(p, "churner malloc(%zu)", n);
        CHECK(p[0] == PAT && p[n - 1] == PAT, "churner fresh block");
        p[0] = p[n - 1] = 0x3c;
        keep[i] = p;
        keep_n[i] = n;
    }
    for (int i = 0; i < 8; i++)
        free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg)
{
    small_large_round((unsigned)(uintptr_t)arg, "child thread");
    return NULL;
}

static void child_body(unsigned k, int depth)
{
    alarm(30);       /* deadlock -> SIGALRM, reported by the parent */
    for (int b = 0; b < 3; b++) {
        CHECK(held[b][0] == (unsigned char)(0x40 + b), "child %u: inherited block %d", k, b);
        CHECK_BYTES(held[b], 1, held_n[b], PAT, "child %u inherited block %d", k, b);
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)k) == 0, "child thread");
    small_large_round(k, "child");
    CHECK(pthread_join(t, NULL) == 0, "join");
    if (depth == 0) {
        pid_t g = fork();
        CHECK(g >= 0, "fork grandchild");
        if (g == 0) {
            child_body(k + 1000, 1);
            _exit(0);
        }
        int st;
        CHECK(waitpid(g, &st, 0) == g, "waitpid grandchild");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "grandchild of %u status 0x%x", k, st);
    }
    for (int b = 0; b < 3; b++)
        memset(held[b] + 1, 0x11, held_n[b] - 1);   /* private copies: the parent must not see it */
}

static void fork_and_wait(unsigned k)
{
    pid_t c = fork();
    CHECK(c >= 0, "fork: %s", strerror(errno));
    if (c == 0) {
        child_body(k, 0);
        _exit(0);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c, "waitpid");
    if (WIFSIGNALED(st))
        FAIL("child %u killed by signal %d%s", k, WTERMSIG(st),
             WTERMSIG(st) == SIGALRM ? " (deadlock after fork?)" : "");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %u exit status 0x%x", k, st);
}

struct forker_arg {
    unsigned from, count;
};

static void *forker(void *arg)
{
    struct forker_arg *fa = arg;
    for (unsigned k = 0; k < fa->count; k++)
        fork_and_wait(fa->from + k);
    return NULL;
}

static void mode_forkstorm(unsigned k, int nthreads)
{
    held_n[0] = T;
    held_n[1] = 3 * MiB;
    held_n[2] = 100;
    for (int b = 0; b < 3; b++) {
        held[b] = malloc(held_n[b]);
        CHECK(held[b], "malloc");
        held[b][0] = (unsigned char)(0x40 + b);
    }
    pthread_t th[32];
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&th[i], NULL, churner, (void *)(uintptr_t)(i + 1)) == 0, "create");
    struct forker_arg fa = {100000, k / 2};
    pthread_t ft;
    CHECK(pthread_create(&ft, NULL, forker, &fa) == 0, "create forker");
    for (unsigned i = 0; i < k - k / 2; i++)
        fork_and_wait(i);
    CHECK(pthread_join(ft, NULL) == 0, "join forker");
    stop_churn = 1;
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    for (int b = 0; b < 3; b++) {
        CHECK(held[b][0] == (unsigned char)(0x40 + b), "parent block %d changed", b);
        CHECK_BYTES(held[b], 1, held_n[b], PAT, "parent block %d after children wrote", b);
        free(held[b]);
    }
    printf("OK forkstorm children=%u threads=%d\n", k, nthreads);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    if (argc < 2)
        FAIL("usage: stress MODE ...");
    const char *m = argv[1];
    if (strcmp(m, "plain") && !under_refmalloc())
        FAIL("not running under refmalloc");
    if (!strcmp(m, "churn"))
        mode_churn(argc > 2 ? strtoul(argv[2], NULL, 0) : 1000000,
                   argc > 3 ? strtoull(argv[3], NULL, 0) : 0);
    else if (!strcmp(m, "pingpong"))
        mode_pingpong(argc > 2 ? strtoul(argv[2], NULL, 0) : 2000);
    else if (!strcmp(m, "ownmemfd"))
        mode_ownmemfd(argc > 2 ? atol(argv[2]) : 300);
    else if (!strcmp(m, "forkstorm"))
        mode_forkstorm(argc > 2 ? (unsigned)atoi(argv[2]) : 20, argc > 3 ? atoi(argv[3]) : 4);
    else
        FAIL("unknown mode %s", m);
    return 0;
}
