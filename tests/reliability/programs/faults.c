/* Faults forced in the middle of a run (issue 6). In every mode the program
 * keeps running, every byte it wrote before the fault is still there, fresh
 * bytes hold the pattern, and it exits 0 (1 with a FAIL line otherwise).
 * Modes:
 *   seccomp-midrun   live and cached large blocks with content; then a seccomp
 *                    filter refuses memfd_create and the memfd is closed: new
 *                    blocks fall back (eager), old ones are intact and can grow.
 *   budget-midrun    (max_mappings set by the test) live blocks with content
 *                    until the budget is exhausted; more blocks, reallocs that
 *                    grow refpage blocks past it; everything intact; after the
 *                    frees reference pages are used again.
 *   memfd-swap       live blocks with content; the memfd is replaced by dup2 of
 *                    another sealed memfd full of 'Z', then closed, several
 *                    times; reuse of cached blocks, growth, fork: no 'Z' ever,
 *                    content intact, the program's descriptor untouched.
 *   rlimit-live      RLIMIT_AS lowered after start-up to a little above the
 *                    current size: allocations fail with NULL/ENOMEM (never a
 *                    crash), blocks already held are intact, memory freed can
 *                    be allocated again; realloc failing keeps the block.
 *   rlimit-work MiB  an ordinary workload (one large block first, then MiB of
 *                    small blocks, then large blocks) run under an RLIMIT_AS
 *                    set by the caller: exits 0 if every allocation succeeded,
 *                    else prints how far it got and exits 4.
 *   work             a small deterministic workload; prints a checksum and
 *                    exits 3 (the caller checks the status survives).
 *                    TEST_PATTERN=any: fresh blocks must be uniform, of
 *                    whatever byte. */
#include "memfd_util.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;
static int any_pattern;

/* A block the program owns: requested size, content written over [0, n). */
struct blk {
    unsigned char *p;
    size_t n;
    unsigned seed;
};

static void new_blk(struct blk *b, size_t n, unsigned seed, const char *what)
{
    errno = 0;
    b->p = malloc(n);
    CHECK(b->p, "%s: malloc(%zu) NULL errno %d", what, n, errno);
    size_t u = malloc_usable_size(b->p);
    CHECK(u >= n, "%s: usable %zu < %zu", what, u, n);
    CHECK_BYTES(b->p, 0, u, PAT, "%s: fresh malloc(%zu)", what, n);
    b->n = n;
    b->seed = seed;
    fill_content(b->p, n, seed);
}

static void check_blk(const struct blk *b, const char *what)
{
    CHECK_CONTENT(b->p, b->n, b->seed, "%s: block %p size %zu", what, (void *)b->p, b->n);
}

static void grow_blk(struct blk *b, size_t m, const char *what)
{
    size_t old = b->n;
    size_t ou = malloc_usable_size(b->p);
    unsigned char *q = realloc(b->p, m);
    CHECK(q, "%s: realloc(%zu -> %zu) NULL errno %d", what, old, m, errno);
    b->p = q;
    CHECK_CONTENT(q, old, b->seed, "%s: realloc %zu -> %zu content", what, old, m);
    /* [old, ou) was never written (the pattern); beyond ou realloc's tail */
    CHECK_BYTES(q, old, malloc_usable_size(q), PAT, "%s: realloc %zu -> %zu tail (old usable %zu)",
                what, old, m, ou);
    for (size_t i = old; i < m; i++)
        q[i] = content_byte(i, b->seed);
    b->n = m;
}

static void no_byte(const unsigned char *p, size_t n, unsigned char bad, const char *what)
{
    const unsigned char *z = memchr(p, bad, n);
    if (z)
        FAIL("%s: byte 0x%02x at offset %zu (a foreign file mapped?)", what, bad,
             (size_t)(z - p));
}

static void fork_check(struct blk *b, int nb, const char *what)
{
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        alarm(20);
        for (int i = 0; i < nb; i++)
            check_blk(&b[i], what);
        struct blk x;
        new_blk(&x, 5 * MiB + 1, 99, "child");
        grow_blk(&x, 9 * MiB, "child");
        free(x.p);
        _exit(0);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "%s: child status 0x%x", what, st);
}

static void mode_seccomp_midrun(void)
{
    struct blk live[4];
    size_t sz[4] = {T, 2 * MiB + 3, 9 * MiB, 33 * MiB};
    for (int i = 0; i < 4; i++)
        new_blk(&live[i], sz[i], (unsigned)i + 1, "before");
    /* some blocks into the cache */
    for (int i = 0; i < 3; i++) {
        struct blk c;
        new_blk(&c, 4 * MiB + (size_t)i * 4096, 50u + i, "to cache");
        free(c.p);
    }
    int fds[8];
    int n = memfd_fds(fds, 8);
    CHECK(n >= 1, "no memfd after large mallocs");
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    print_stats("before", &s0);

    refuse_memfd_create();
    for (int i = 0; i < n; i++)
        close(fds[i]);
    CHECK(memfd_fds(fds, 8) == 0, "memfd still open");

    struct blk fresh[6];
    for (int i = 0; i < 6; i++)                     /* new sizes: not from the cache */
        new_blk(&fresh[i], 11 * MiB + (size_t)i * 3 * MiB + 4096, 20u + i, "after seccomp");
    struct blk reused;
    new_blk(&reused, 4 * MiB, 60, "cache reuse after seccomp");
    for (int i = 0; i < 4; i++)
        check_blk(&live[i], "after seccomp");
    grow_blk(&live[1], 17 * MiB, "grow after seccomp");
    grow_blk(&live[3], 80 * MiB, "grow after seccomp");
    grow_blk(&live[0], T + 7 * page_size(), "grow after seccomp");
    unsigned char *z = calloc(1, 6 * MiB);
    CHECK(z, "calloc after seccomp");
    CHECK_BYTES(z, 0, 6 * MiB, 0, "calloc after seccomp");
    free(z);
    fork_check(live, 4, "child after seccomp");
    for (int i = 0; i < 6; i++) {
        check_blk(&fresh[i], "fresh after seccomp");
        free(fresh[i].p);
    }
    for (int i = 0; i < 4; i++) {
        check_blk(&live[i], "end");
        free(live[i].p);
    }
    free(reused.p);
    CHECK(memfd_fds(fds, 8) == 0, "a memfd appeared although memfd_create is refused");
    get_stats(&s1);
    print_stats("after", &s1);
    CHECK(s1.fallback_memfd > s0.fallback_memfd, "fallback_memfd did not grow (%" PRIu64 ")",
          s1.fallback_memfd);
    printf("OK seccomp-midrun\n");
}

static void mode_budget_midrun(void)
{
    enum { MAXB = 400 };
    static struct blk b[MAXB];
    struct refmalloc_stats s;
    struct blk probe;
    new_blk(&probe, T, 12345, "probe");   /* the library sets up its budget lazily */
    free(probe.p);
    get_stats(&s);
    uint64_t budget = s.mapping_budget;
    CHECK(budget > 0, "mapping_budget 0 after a large block");
    int nb = 0;
    /* Live blocks of growing sizes (more chunks each) until the budget is hit,
     * then as many again. */
    int over = -1;
    for (nb = 0; nb < MAXB; nb++) {
        size_t n = T + (size_t)(nb % 13) * 700 * 1024 + (size_t)nb * 4096;
        new_blk(&b[nb], n, (unsigned)nb, "filling");
        get_stats(&s);
        CHECK(s.mappings_in_use <= budget, "mappings_in_use %" PRIu64 " > budget %" PRIu64,
              s.mappings_in_use, budget);
        if (over < 0 && s.fallback_budget > 0)
            over = nb;
        if (over >= 0 && nb >= 2 * over + 10)
            break;
    }
    CHECK(over >= 0, "budget %" PRIu64 " never reached with %d blocks", budget, nb);
    if (nb == MAXB)
        nb--;
    nb++;
    print_stats("exhausted", &s);
    printf("budget=%" PRIu64 " reached at block %d, %d live blocks\n", budget, over, nb);
    for (int i = 0; i < nb; i++)
        check_blk(&b[i], "budget exhausted");
    /* grow the earliest (refpage) blocks while no mapping is left */
    for (int i = 0; i < over && i < 20; i++)
        grow_blk(&b[i], b[i].n * 3 + 5, "grow while exhausted");
    /* shrink some */
    for (int i = over; i < nb; i += 3) {
        size_t m = b[i].n / 2;
        unsigned char *q = realloc(b[i].p, m);
        CHECK(q, "shrink");
        b[i].p = q;
        b[i].n = m;
    }
    for (int i = 0; i < nb; i++)
        check_blk(&b[i], "after growth while exhausted");
    fork_check(b, nb < 30 ? nb : 30, "child with budget exhausted");
    get_stats(&s);
    CHECK(s.mappings_in_use <= budget, "mappings_in_use %" PRIu64 " > budget", s.mappings_in_use);
    for (int i = 0; i < nb; i++)
        free(b[i].p);
    get_stats(&s);
    print_stats("freed", &s);
    uint64_t rp = s.refpage_allocs;
    struct blk again;
    new_blk(&again, 3 * MiB + 12345, 7, "after frees");
    get_stats(&s);
    CHECK(s.refpage_allocs > rp || s.cache_hits > 0,
          "budget not recovered after freeing everything");
    free(again.p);
    printf("OK budget-midrun\n");
}

static int make_z_memfd(size_t size)
{
    int fd = (int)syscall(SYS_memfd_create, "program-Z", MFD_ALLOW_SEALING);
    CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate");
    unsigned char *m = mmap(NULL, size, PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap");
    memset(m, 'Z', size);
    munmap(m, size);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0, "seal");
    return fd;
}

static void mode_memfd_swap(void)
{
    struct blk live[5];
    size_t sz[5] = {T + 1, 1 * MiB, 6 * MiB + 5, 24 * MiB, 3 * T};
    for (int i = 0; i < 5; i++)
        new_blk(&live[i], sz[i], (unsigned)i + 1, "before");
    for (int round = 0; round < 4; round++) {
        int fds[8];
        int n = memfd_fds(fds, 8);
        CHECK(n >= 1, "round %d: no memfd of refmalloc", round);
        struct stat zst;
        int zfd = -1;
        if (round % 2 == 0) {
            /* replace every memfd number with the program's own sealed Z memfd */
            zfd = make_z_memfd(64 * MiB);
            CHECK(fstat(zfd, &zst) == 0, "fstat");
            for (int i = 0; i < n; i++)
                CHECK(dup2(zfd, fds[i]) == fds[i], "dup2");
        } else {
            for (int i = 0; i < n; i++)
                close(fds[i]);
        }
        /* cached blocks reused, fresh ones, growth, frees */
        struct blk f[4];
        for (int i = 0; i < 4; i++) {
            size_t m = (i % 2 ? 4 * MiB : 10 * MiB + (size_t)round * 8192) + (size_t)i * 4096;
            errno = 0;
            f[i].p = malloc(m);
            CHECK(f[i].p, "malloc(%zu)", m);
            no_byte(f[i].p, malloc_usable_size(f[i].p), 'Z', "fresh after swap");
            CHECK_BYTES(f[i].p, 0, malloc_usable_size(f[i].p), PAT, "round %d fresh", round);
            f[i].n = m;
            f[i].seed = 100u + (unsigned)i;
            fill_content(f[i].p, m, f[i].seed);
        }
        grow_blk(&live[round % 5], live[round % 5].n * 2 + 4096, "grow after swap");
        for (int i = 0; i < 5; i++)
            check_blk(&live[i], "after swap");
        fork_check(live, 5, "child after swap");
        for (int i = 0; i < 4; i++) {
            check_blk(&f[i], "fresh");
            free(f[i].p);
        }
        if (zfd >= 0) {
            for (int i = 0; i < n; i++) {
                struct stat st;
                CHECK(fstat(fds[i], &st) == 0 && st.st_ino == zst.st_ino,
                      "fd %d no longer names the program's memfd", fds[i]);
            }
            unsigned char buf[4096];
            CHECK(pread(fds[0], buf, sizeof buf, 0) == (ssize_t)sizeof buf, "pread");
            CHECK_BYTES(buf, 0, sizeof buf, 'Z', "program's memfd changed");
            for (int i = 0; i < n; i++)
                close(fds[i]);
            close(zfd);
        }
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("swap", &s);
    CHECK(s.memfd_recreated >= 2, "memfd_recreated %" PRIu64, s.memfd_recreated);
    for (int i = 0; i < 5; i++) {
        check_blk(&live[i], "end");
        free(live[i].p);
    }
    printf("OK memfd-swap\n");
}

static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f, "status");
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmSize:", 7))
            v = strtol(line + 7, NULL, 10);
    fclose(f);
    return v;
}

static void mode_rlimit_live(void)
{
    /* start-up: the library reserves its range at the first large block */
    struct blk first;
    new_blk(&first, 2 * MiB, 1, "first");
    /* The limit a little above the current size. refmalloc gives back the
     * part of its range that the limit leaves no room for (it keeps a quarter
     * of the room), so the size shrinks: lowered again until it holds still. */
    long vm = vm_size_kb(), before;
    struct rlimit rl;
    do {
        before = vm;
        rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + 48 * 1024) * 1024;
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));
        vm = vm_size_kb();
    } while (vm < before);
    rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + 48 * 1024) * 1024;
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno));
    printf("VmSize %ld kB, RLIMIT_AS %lu\n", vm, (unsigned long)rl.rlim_cur);

    enum { MAXB = 16384 };
    static struct blk b[MAXB];
    int nb = 0, fails_small = 0, fails_large = 0;
    size_t total = 0, total_large = 0;
    /* Mixed sizes until small requests have failed several times. Large
     * blocks may still come from the range refmalloc reserved before the
     * limit (already counted in VmSize): they are bounded to 256 MiB in all
     * so the test never needs much memory, even if they are filled eagerly. */
    for (int i = 0; nb < MAXB && i < 2000000; i++) {
        size_t n;
        int large = i % 3 == 0 && total_large < (256ul << 20);
        if (large)
            n = (i % 2 ? 4 * MiB : T) + (size_t)(i % 17) * 4096;
        else
            n = 1000 + (size_t)(i % 50) * 2000;
        errno = 0;
        unsigned char *p = (i % 5 == 4) ? calloc(1, n) : malloc(n);
        if (!p) {
            CHECK(errno == ENOMEM, "allocation of %zu failed with errno %d, not ENOMEM", n, errno);
            if (large)
                fails_large++;
            else
                fails_small++;
            if (fails_small >= 20)
                break;
            continue;
        }
        if (i % 5 == 4)
            CHECK_BYTES(p, 0, n, 0, "calloc(%zu) under RLIMIT_AS", n);
        else
            CHECK_BYTES(p, 0, n, PAT, "malloc(%zu) under RLIMIT_AS", n);
        b[nb].p = p;
        b[nb].n = n < 65536 ? n : 65536;
        b[nb].seed = (unsigned)nb;
        fill_content(p, b[nb].n, b[nb].seed);
        nb++;
        total += n;
        if (large)
            total_large += n;
    }
    printf("held %d blocks, %zu bytes; failed small=%d large=%d\n", nb, total, fails_small,
           fails_large);
    CHECK(fails_small > 0, "no small allocation failed under RLIMIT_AS");
    check_blk(&first, "first block");
    for (int i = 0; i < nb; i++)
        check_blk(&b[i], "held under RLIMIT_AS");
    /* huge requests and a realloc that cannot succeed keep the block */
    errno = 0;
    CHECK(malloc(1ul << 40) == NULL && errno == ENOMEM, "malloc(1 TiB) errno %d", errno);
    errno = 0;
    CHECK(calloc(1ul << 20, 1ul << 20) == NULL && errno == ENOMEM, "calloc(1 TiB) errno %d",
          errno);
    errno = 0;
    CHECK(realloc(first.p, 1ul << 40) == NULL && errno == ENOMEM, "realloc to 1 TiB errno %d",
          errno);
    check_blk(&first, "first block after failed realloc");
    /* free half, allocate again */
    for (int i = 0; i < nb; i += 2) {
        free(b[i].p);
        b[i].p = NULL;
    }
    int again = 0;
    for (int i = 0; i < nb; i += 2) {
        errno = 0;
        unsigned char *p = malloc(b[i].n);
        if (!p)
            continue;
        CHECK_BYTES(p, 0, b[i].n, PAT, "malloc again after free");
        b[i].p = p;
        fill_content(p, b[i].n, b[i].seed);
        again++;
    }
    CHECK(again > 0, "nothing could be allocated again after freeing half");
    for (int i = 0; i < nb; i++)
        if (b[i].p) {
            check_blk(&b[i], "end");
            free(b[i].p);
        }
    free(first.p);
    printf("OK rlimit-live blocks=%d again=%d\n", nb, again);
}

static void mode_rlimit_work(size_t mib)
{
    /* one large block first (the library sets itself up), then the program's
     * ordinary small allocations, then a few large ones */
    struct blk first = {malloc(1 * MiB), 1 * MiB, 1};
    CHECK(first.p, "first large malloc failed errno %d", errno);
    fill_content(first.p, first.n, first.seed);
    size_t n = 32 * 1024, count = mib * MiB / n, got = 0;
    unsigned char **v = calloc(count, sizeof *v);
    CHECK(v, "calloc vector");
    for (size_t i = 0; i < count; i++) {
        v[i] = malloc(n);
        if (!v[i]) {
            printf("small allocation %zu of %zu failed errno %d (VmSize %ld kB)\n", i, count,
                   errno, vm_size_kb());
            break;
        }
        v[i][0] = 1;
        v[i][n - 1] = 2;
        got++;
    }
    int large_ok = 0;
    for (int i = 0; i < 8 && got == count; i++) {
        unsigned char *p = malloc(16 * MiB);
        if (!p) {
            printf("large allocation %d failed errno %d\n", i, errno);
            break;
        }
        p[0] = 1;
        free(p);
        large_ok++;
    }
    for (size_t i = 0; i < got; i++)
        free(v[i]);
    free(v);
    check_blk(&first, "first");
    free(first.p);
    if (got != count || large_ok != 8) {
        printf("INCOMPLETE small=%zu/%zu large=%d/8\n", got, count, large_ok);
        exit(4);
    }
    printf("OK rlimit-work small=%zu large=%d\n", got, large_ok);
}

static void mode_work(void)
{
    uint64_t h = 1469598103934665603ull;
    int under = under_refmalloc();   /* the plain control run checks nothing */
    for (int i = 0; i < 200; i++) {
        size_t n = (i % 4 == 0) ? T + (size_t)i * 1000 : 100 + (size_t)i * 13;
        unsigned char *p = malloc(n);
        CHECK(p, "malloc");
        /* TEST_PATTERN=any: the pattern is unknown, but uniform */
        if (under)
            CHECK_BYTES(p, 0, n, any_pattern ? p[0] : PAT, "malloc(%zu)", n);
        for (size_t k = 0; k < n; k += 97)
            p[k] = (unsigned char)(k ^ (size_t)i);
        for (size_t k = 0; k < n; k += 97)
            h = (h ^ p[k]) * 1099511628211ull;
        free(p);
    }
    printf("checksum %016llx\n", (unsigned long long)h);
    fflush(stdout);
    exit(3);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    any_pattern = getenv("TEST_PATTERN") && !strcmp(getenv("TEST_PATTERN"), "any");
    PAT = any_pattern ? 0 : expected_pattern();
    T = test_threshold();
    if (argc < 2)
        FAIL("usage: faults MODE");
    const char *m = argv[1];
    if (strcmp(m, "rlimit-work") && strcmp(m, "work") && !under_refmalloc())
        FAIL("not running under refmalloc");
    if (!strcmp(m, "seccomp-midrun"))
        mode_seccomp_midrun();
    else if (!strcmp(m, "budget-midrun"))
        mode_budget_midrun();
    else if (!strcmp(m, "memfd-swap"))
        mode_memfd_swap();
    else if (!strcmp(m, "rlimit-live"))
        mode_rlimit_live();
    else if (!strcmp(m, "rlimit-work"))
        mode_rlimit_work(argc > 2 ? strtoul(argv[2], NULL, 0) : 256);
    else if (!strcmp(m, "work"))
        mode_work();
    else
        FAIL("unknown mode %s", m);
    return 0;
}
