/* Introspection. Modes:
 *   query       refmalloc_query on large blocks (exact pages_written), small
 *               blocks, stack addresses, freed blocks; counters move as they should.
 *   report      leave known blocks live and exit: the test reads report=PATH.
 *               Prints "PID n" and "LIVE addr size written_pages kind".
 *   write-report PATH   refmalloc_write_report(PATH) twice: 0, then -1 EEXIST. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;
static query_fn Q;

static void mode_query(void)
{
    size_t ps = page_size();
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    size_t n = 8 * MiB + 100;
    unsigned char *p = malloc(n);
    CHECK(p, "malloc");
    get_stats(&s1);
    CHECK(s1.large_allocs == s0.large_allocs + 1, "large_allocs %" PRIu64 " -> %" PRIu64,
          s0.large_allocs, s1.large_allocs);
    CHECK(s1.live_large_blocks == s0.live_large_blocks + 1, "live_large_blocks");
    CHECK(s1.large_bytes >= s0.large_bytes + n, "large_bytes");

    struct refmalloc_block_info bi;
    memset(&bi, 0, sizeof bi);
    CHECK(Q(p, &bi) == 1, "refmalloc_query(start) != 1");
    CHECK(bi.start == p, "start %p != %p", bi.start, (void *)p);
    CHECK(bi.size == n, "size %zu != %zu", bi.size, n);
    CHECK(bi.usable == malloc_usable_size(p), "usable %zu != malloc_usable_size %zu", bi.usable,
          malloc_usable_size(p));
    size_t span = ((uintptr_t)p + bi.usable + ps - 1) / ps - (uintptr_t)p / ps;
    CHECK(bi.pages == span, "pages %zu, usable spans %zu pages", bi.pages, span);
    CHECK(bi.kind == REFMALLOC_BLOCK_REFPAGE, "kind %d", bi.kind);
    CHECK(bi.pattern == PAT, "pattern 0x%02x", bi.pattern);
    CHECK(bi.pages_written == 0, "pages_written %zu before any write", bi.pages_written);

    /* Read every page: still nothing written. */
    CHECK_BYTES(p, 0, n, PAT, "fresh block");
    CHECK(Q(p, &bi) == 1 && bi.pages_written == 0,
          "pages_written %zu after only reading", bi.pages_written);

    /* Write exactly k pages (3 pages apart, so each write hits its own page). */
    size_t k = 37;
    for (size_t i = 0; i < k; i++)
        p[(i * 3 + 1) * ps + 5] = 0x01;
    CHECK(Q(p, &bi) == 1, "query after writes");
    CHECK(bi.pages_written == k, "pages_written %zu, program wrote %zu pages", bi.pages_written, k);
    CHECK(bi.pages_pattern + bi.pages_written == bi.pages, "pattern %zu + written %zu != pages %zu",
          bi.pages_pattern, bi.pages_written, bi.pages);
    /* Write the same pages again: still k. Write one more: k+1. */
    for (size_t i = 0; i < k; i++)
        p[(i * 3 + 1) * ps + 100] = 0x02;
    p[n - 1] = 0x03;
    CHECK(Q(p, &bi) == 1 && bi.pages_written == k + 1, "pages_written %zu, expected %zu",
          bi.pages_written, k + 1);

    /* Interior and last-byte addresses find the same block. */
    struct refmalloc_block_info bj;
    CHECK(Q(p + 5 * MiB + 3, &bj) == 1 && bj.start == p, "query(interior)");
    CHECK(Q(p + n - 1, &bj) == 1 && bj.start == p, "query(last byte)");

    /* Not large blocks: stack, global, small heap block, NULL. */
    int local = 0;
    static int global;
    void *small = malloc(100);
    CHECK(Q(&local, &bj) == 0, "query(stack address) != 0");
    CHECK(Q(&global, &bj) == 0, "query(global) != 0");
    CHECK(Q(small, &bj) == 0, "query(small block) != 0");
    CHECK(Q(NULL, &bj) == 0, "query(NULL) != 0");
    free(small);

    /* Large calloc: kind zero. */
    void *z = calloc(1, 3 * MiB);
    CHECK(Q(z, &bj) == 1 && bj.kind == REFMALLOC_BLOCK_ZERO, "calloc block kind %d", bj.kind);
    free(z);

    /* After free: not live. */
    get_stats(&s0);
    free(p);
    get_stats(&s1);
    CHECK(Q(p, &bj) == 0, "query(freed block) != 0");
    CHECK(s1.large_frees == s0.large_frees + 1, "large_frees");
    CHECK(s1.live_large_blocks == s0.live_large_blocks - 1, "live_large_blocks after free");
    CHECK(s1.freed_pages_written >= s0.freed_pages_written + k + 1,
          "freed_pages_written %" PRIu64 " -> %" PRIu64, s0.freed_pages_written,
          s1.freed_pages_written);

    /* Small counters. */
    get_stats(&s0);
    void *sm[10];
    for (int i = 0; i < 10; i++)
        sm[i] = malloc(50);
    for (int i = 0; i < 10; i++)
        free(sm[i]);
    get_stats(&s1);
    CHECK(s1.small_allocs >= s0.small_allocs + 10, "small_allocs");
    CHECK(s1.small_frees >= s0.small_frees + 10, "small_frees");

    /* Other exported helpers. */
    unsigned char (*pat)(void) = (unsigned char (*)(void))dlsym(RTLD_DEFAULT, "refmalloc_pattern");
    const char *(*ver)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "refmalloc_version");
    CHECK(pat && pat() == PAT, "refmalloc_pattern()");
    CHECK(ver && ver() && *ver(), "refmalloc_version()");
    printf("OK query version=%s\n", ver());
}

static void mode_report(void)
{
    size_t ps = page_size();
    printf("PID %d\n", (int)getpid());
    /* Some traffic, then two refpage blocks and one zero block left live. */
    for (int i = 0; i < 5; i++)
        free(malloc(T + (size_t)i * 1000));
    size_t n1 = 3 * MiB, n2 = 5 * MiB + 7, n3 = 2 * MiB;
    unsigned char *a = malloc(n1);
    unsigned char *b = malloc(n2);
    unsigned char *c = calloc(1, n3);
    CHECK(a && b && c, "malloc");
    a[0] = 1;
    a[ps * 10] = 1;           /* 2 pages written */
    struct refmalloc_block_info bi;
    CHECK(Q(a, &bi) == 1, "query");
    printf("LIVE %lu %zu %zu %s\n", (unsigned long)(uintptr_t)a, n1, (size_t)2, "refpage");
    printf("LIVE %lu %zu %zu %s\n", (unsigned long)(uintptr_t)b, n2, (size_t)0, "refpage");
    printf("LIVE %lu %zu - %s\n", (unsigned long)(uintptr_t)c, n3, "zero");
    (void)b;
}

static void mode_write_report(const char *path)
{
    int (*wr)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "refmalloc_write_report");
    CHECK(wr, "refmalloc_write_report not exported");
    void *a = malloc(2 * MiB);
    printf("PID %d\n", (int)getpid());
    printf("LIVE %lu %zu 0 refpage\n", (unsigned long)(uintptr_t)a, (size_t)(2 * MiB));
    CHECK(wr(path) == 0, "refmalloc_write_report(%s) failed: %s", path, strerror(errno));
    errno = 0;
    CHECK(wr(path) == -1 && errno == EEXIST, "second write_report: errno %d, expected EEXIST", errno);
    free(a);
    printf("OK write-report\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    Q = (query_fn)dlsym(RTLD_DEFAULT, "refmalloc_query");
    CHECK(Q, "refmalloc_query not exported");
    if (argc < 2)
        FAIL("usage");
    if (!strcmp(argv[1], "query"))
        mode_query();
    else if (!strcmp(argv[1], "report"))
        mode_report();
    else if (!strcmp(argv[1], "write-report") && argc > 2)
        mode_write_report(argv[2]);
    else
        FAIL("unknown mode");
    return 0;
}
