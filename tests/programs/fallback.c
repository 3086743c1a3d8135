/* Forced fallbacks. Modes:
 *   seccomp  memfd_create refused (EPERM) by a seccomp filter installed before
 *            the first large block: large blocks still hold the pattern,
 *            stats.fallback_memfd > 0.
 *   budget   run with max_mappings=50: many live large blocks, all pattern,
 *            stats.fallback_budget > 0, mappings_in_use within the budget.
 *   eager    run with refpages=0: every large block eager, all pattern.
 *   region   run with reserve=1g: blocks beyond the reserved range still
 *            hold the pattern, stats.fallback_region > 0. */
#include "memfd_util.h"
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;

static unsigned char *big(size_t n, const char *what)
{
    unsigned char *p = malloc(n);
    if (!p)
        FAIL("%s: malloc(%zu) NULL errno %d", what, n, errno);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s usable", what);
    CHECK_BYTES(p, 0, u, PAT, "%s: malloc(%zu)", what, n);
    return p;
}

/* The common workload: fresh, written, reused, realloc'd, calloc'd, aligned. */
static void workload(const char *what)
{
    size_t sizes[] = {T, T + 1, 1 * MiB, 3 * MiB + 7, 32 * MiB};
    unsigned char *blk[5];
    for (int i = 0; i < 5; i++) {
        blk[i] = big(sizes[i], what);
        memset(blk[i], 0x10 + i, sizes[i]);
    }
    for (int i = 0; i < 5; i++)
        free(blk[i]);
    for (int i = 0; i < 5; i++) {                  /* reuse after dense writes */
        blk[i] = big(sizes[i], what);
        fill_content(blk[i], sizes[i] / 2, (unsigned)i);
    }
    for (int i = 0; i < 5; i++) {                  /* grow */
        size_t m = sizes[i] * 2 + 5;
        blk[i] = realloc(blk[i], m);
        CHECK(blk[i], "realloc");
        CHECK_CONTENT(blk[i], sizes[i] / 2, (unsigned)i, "%s realloc content", what);
        CHECK_BYTES(blk[i], sizes[i] / 2, malloc_usable_size(blk[i]), PAT,
                    "%s realloc tail", what);
        free(blk[i]);
    }
    unsigned char *z = calloc(1, 8 * MiB);
    CHECK(z, "calloc");
    CHECK_BYTES(z, 0, 8 * MiB, 0, "%s calloc", what);
    free(z);
    void *a;
    CHECK(posix_memalign(&a, 2 * MiB, 5 * MiB) == 0, "posix_memalign");
    CHECK(((uintptr_t)a & (2 * MiB - 1)) == 0, "alignment");
    CHECK_BYTES(a, 0, 5 * MiB, PAT, "%s aligned", what);
    free(a);
}

static void mode_seccomp(void)
{
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    CHECK(s0.large_allocs == 0, "a large block was allocated before the filter");
    refuse_memfd_create();
    workload("memfd refused");
    get_stats(&s1);
    print_stats("seccomp", &s1);
    CHECK(s1.fallback_memfd > 0, "fallback_memfd = 0 with memfd_create refused");
    CHECK(s1.refpage_allocs == 0, "refpage_allocs = %" PRIu64 " though memfd_create is refused",
          s1.refpage_allocs);
    CHECK(s1.eager_allocs > 0, "eager_allocs = 0");
    /* The program keeps running: more work, small and large. */
    for (int i = 0; i < 50; i++) {
        void *p = big(T + (size_t)i * 10000, "more");
        void *q = malloc(100);
        CHECK_BYTES(q, 0, 100, PAT, "small");
        free(p);
        free(q);
    }
    printf("OK seccomp fallback_memfd=%" PRIu64 "\n", s1.fallback_memfd);
}

static void mode_budget(void)
{
    enum { N = 300 };
    static unsigned char *blk[N];
    static size_t sz[N];
    long maps0 = count_maps();
    for (int i = 0; i < N; i++) {
        sz[i] = (i % 10 == 9) ? 24 * MiB + (size_t)i * 4096 : T + (size_t)(i % 37) * 50000;
        blk[i] = big(sz[i], "budget");
        blk[i][0] = (unsigned char)i;
        blk[i][sz[i] - 1] = (unsigned char)(i + 1);
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("budget", &s);
    long maps1 = count_maps();
    printf("maps lines %ld -> %ld\n", maps0, maps1);
    CHECK(s.mapping_budget == 50, "mapping_budget = %" PRIu64 ", max_mappings=50 requested",
          s.mapping_budget);
    CHECK(s.fallback_budget > 0, "fallback_budget = 0 with %d live large blocks and budget 50", N);
    /* Past the budget the next allocator serves large blocks (filled eagerly):
     * they count as large allocations but are not tracked as live blocks. */
    CHECK(s.large_allocs == N, "large_allocs %" PRIu64, s.large_allocs);
    CHECK(s.live_large_blocks < N, "live_large_blocks %" PRIu64 " with the budget reached",
          s.live_large_blocks);
    /* Every block intact; grow a few. */
    for (int i = 0; i < N; i++) {
        CHECK(blk[i][0] == (unsigned char)i && blk[i][sz[i] - 1] == (unsigned char)(i + 1),
              "block %d content", i);
        CHECK_BYTES(blk[i], 1, sz[i] - 1, PAT, "budget block %d", i);
    }
    for (int i = 0; i < N; i += 25) {
        blk[i] = realloc(blk[i], sz[i] * 3);
        CHECK(blk[i] && blk[i][0] == (unsigned char)i, "realloc under budget");
        CHECK_BYTES(blk[i], sz[i], sz[i] * 3, PAT, "realloc tail under budget");
    }
    /* The budget bounds the mappings refmalloc uses, eager fallbacks included:
     * that is what keeps a program below vm.max_map_count. */
    get_stats(&s);
    long maps2 = count_maps();
    printf("after realloc: mappings_in_use=%" PRIu64 " maps lines %ld\n", s.mappings_in_use, maps2);
    CHECK(s.mappings_in_use <= s.mapping_budget, "mappings_in_use %" PRIu64 " > budget %" PRIu64,
          s.mappings_in_use, s.mapping_budget);
    CHECK(maps2 - maps0 <= (long)s.mapping_budget + 16,
          "/proc/self/maps grew by %ld lines with a budget of %" PRIu64, maps2 - maps0,
          s.mapping_budget);
    for (int i = 0; i < N; i++)
        free(blk[i]);
    workload("after budget");
    get_stats(&s);
    print_stats("end", &s);
    CHECK(s.live_large_blocks == 0, "live blocks after free");
    printf("OK budget fallback_budget=%" PRIu64 "\n", s.fallback_budget);
}

static void mode_eager(void)
{
    workload("refpages=0");
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("eager", &s);
    CHECK(s.refpage_allocs == 0, "refpage_allocs %" PRIu64 " with refpages=0", s.refpage_allocs);
    CHECK(s.eager_allocs > 0, "eager_allocs = 0");
    query_fn q = (query_fn)dlsym(RTLD_DEFAULT, "refmalloc_query");
    CHECK(q, "refmalloc_query not exported");
    size_t sizes[] = {T, 7 * MiB + 3};
    for (int i = 0; i < 2; i++) {
        unsigned char *p = big(sizes[i], "eager query");
        struct refmalloc_block_info bi;
        CHECK(q(p, &bi) == 1, "refmalloc_query on a large block");
        CHECK(bi.kind == REFMALLOC_BLOCK_EAGER, "block kind %d with refpages=0", bi.kind);
        free(p);
    }
    get_stats(&s);
    CHECK(s.refpage_allocs == 0, "refpage_allocs %" PRIu64 " with refpages=0", s.refpage_allocs);
    printf("OK eager\n");
}

/* Check the pattern on a sample of pages of [from, to) of p. */
static void check_sampled(const unsigned char *p, size_t from, size_t to, const char *what, int i)
{
    size_t ps = page_size();
    CHECK_BYTES(p, from, from + ps < to ? from + ps : to, PAT, "%s %d first page", what, i);
    for (size_t off = from; off + ps <= to; off += 97 * ps)
        CHECK_BYTES(p, off, off + ps, PAT, "%s %d at %zu", what, i, off);
    CHECK_BYTES(p, to - ps, to, PAT, "%s %d last page", what, i);
}

static void mode_region(void)
{
    enum { N = 12 };
    const size_t sz = 96 * MiB;
    unsigned char *blk[N];
    for (int i = 0; i < N; i++) {
        blk[i] = malloc(sz + (size_t)i * 4096);
        CHECK(blk[i], "malloc %d", i);
        check_sampled(blk[i], 0, sz, "region block", i);
        blk[i][0] = (unsigned char)(i + 1);
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("region", &s);
    CHECK(s.fallback_region > 0, "fallback_region = 0 with 1.1 GiB live in a 1 GiB range");
    for (int i = 0; i < N; i++) {
        CHECK(blk[i][0] == (unsigned char)(i + 1), "block %d content", i);
        blk[i] = realloc(blk[i], sz + 16 * MiB);
        CHECK(blk[i] && blk[i][0] == (unsigned char)(i + 1), "realloc content %d", i);
        check_sampled(blk[i], sz + (size_t)i * 4096, sz + 16 * MiB, "region realloc tail", i);
    }
    for (int i = 0; i < N; i++)
        free(blk[i]);
    workload("after region");
    printf("OK region fallback_region=%" PRIu64 "\n", s.fallback_region);
}

/* More live large blocks than vm.max_map_count allows VMAs (default budget):
 * none may fail, all hold the pattern. */
static void mode_many(long n)
{
    unsigned char **blk = malloc(sizeof *blk * (size_t)n);
    CHECK(blk, "malloc array");
    for (long i = 0; i < n; i++) {
        blk[i] = malloc(T);
        if (!blk[i]) {
            struct refmalloc_stats s;
            get_stats(&s);
            print_stats("failed", &s);
            FAIL("malloc(%zu) #%ld of %ld live large blocks returned NULL (errno %d), "
                 "/proc/self/maps has %ld lines", T, i, n, errno, count_maps());
        }
        CHECK(blk[i][0] == PAT && blk[i][T - 1] == PAT, "block %ld pattern", i);
        blk[i][T / 2] = 1;
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("many", &s);
    long maps = count_maps();
    printf("maps lines %ld\n", maps);
    for (long i = 0; i < n; i++)
        free(blk[i]);
    free(blk);
    printf("OK many\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    if (argc < 2)
        FAIL("usage");
    if (!strcmp(argv[1], "seccomp"))
        mode_seccomp();
    else if (!strcmp(argv[1], "budget"))
        mode_budget();
    else if (!strcmp(argv[1], "eager"))
        mode_eager();
    else if (!strcmp(argv[1], "region"))
        mode_region();
    else if (!strcmp(argv[1], "many") && argc > 2)
        mode_many(atol(argv[2]));
    else
        FAIL("unknown mode");
    return 0;
}
