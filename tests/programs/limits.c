/* Allocation where glibc's succeeds (issue 11, items 3-6, 8-10). Each mode
 * prints one line of figures the test compares with a plain-glibc run of the
 * same program, or checks its own invariant and fails with a FAIL line.
 *
 *   limits lower-as MiB       setrlimit(RLIMIT_AS) mid-run, then malloc(4096),
 *                             100 x 1 MiB and 64 MiB: all must succeed
 *   limits reach MiB_STEP     allocate blocks of MiB_STEP until malloc fails:
 *                             prints the total reached (under a limit the
 *                             test sets before exec)
 *   limits grow MiB           realloc a block up 1 MiB at a time to MiB
 *   limits mapcount N         the program's own mappings take all but 10 of
 *                             vm.max_map_count, then N large mallocs with the
 *                             pattern: all must succeed
 *   limits huge GiB           malloc(GiB): prints "huge ok" or "huge ENOMEM"
 *   limits aligned N          N x memalign(1 GiB, 1 MiB), kept live: prints
 *                             the anonymous memory used
 *   limits live N KiB         N live blocks of KiB, untouched: prints the
 *                             anonymous memory used
 *   limits lazy MiB           the address space used (VmSize) before any
 *                             allocation and after one block of MiB */
#include <sys/mman.h>
#include <sys/resource.h>

#include "common.h"

#define MiB ((size_t)1 << 20)

/* Under plain glibc (the comparison runs) fresh memory holds no pattern. */
static int patterned(void)
{
    return getenv("LD_PRELOAD") != NULL;
}

static void set_as_limit(size_t bytes)
{
    struct rlimit r = {bytes, bytes};
    if (getrlimit(RLIMIT_AS, &r) == 0)
        r.rlim_cur = bytes;
    if (setrlimit(RLIMIT_AS, &r) != 0)
        FAIL("setrlimit: %s", strerror(errno));
}

static int lower_as(size_t mib)
{
    /* A large block first: refmalloc's range is reserved by then. */
    free(malloc(4 * MiB));
    set_as_limit(mib * MiB);
    void *small = malloc(4096);
    CHECK(small, "malloc(4096) after setrlimit(RLIMIT_AS, %zu MiB): %s", mib, strerror(errno));
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc(MiB);
        CHECK(blocks[i], "malloc(1 MiB) #%d: %s", i, strerror(errno));
        CHECK_BYTES(blocks[i], 0, MiB, expected_pattern(), "block %d", i);
        memset(blocks[i], i, MiB);
    }
    void *big = malloc(64 * MiB);
    CHECK(big, "malloc(64 MiB): %s", strerror(errno));
    CHECK_BYTES(big, 0, 64 * MiB, expected_pattern(), "64 MiB block");
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    free(big);
    free(small);
    printf("OK lower-as %zu\n", mib);
    return 0;
}

static int reach(size_t step_mib)
{
    size_t total = 0;
    void *head = NULL;
    for (;;) {
        void **p = malloc(step_mib * MiB);
        if (!p)
            break;
        *p = head;   /* keep them all live */
        head = p;
        total += step_mib;
    }
    printf("reach %zu\n", total);
    return 0;
}

static int grow(size_t mib)
{
    char *p = NULL;
    for (size_t n = 1; n <= mib; n++) {
        char *q = realloc(p, n * MiB);
        CHECK(q, "realloc to %zu MiB: %s", n, strerror(errno));
        CHECK_BYTES(q, (n - 1) * MiB, n * MiB, expected_pattern(), "grown tail at %zu MiB", n);
        q[(n - 1) * MiB] = (char)n;
        for (size_t k = 1; k < n; k++)
            CHECK(q[(k - 1) * MiB] == (char)k, "content lost at %zu MiB", k);
        p = q;
    }
    free(p);
    printf("OK grow %zu\n", mib);
    return 0;
}

static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int mapcount(int n)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long max = 0;
    CHECK(f && fscanf(f, "%ld", &max) == 1, "max_map_count");
    fclose(f);
    /* One reservation cut into single pages of alternating protection: none
     * of them can merge with its neighbours. */
    size_t page = page_size(), want = (size_t)(max - 10 - map_count());
    want = want / 2 * 2;
    char *area = mmap(NULL, 2 * want * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(area != MAP_FAILED, "mmap area");
    /* Each page made readable inside the reservation adds two mappings. */
    for (size_t i = 0; i < want - want % 2; i += 2)
        CHECK(mprotect(area + i * page + page, page, PROT_READ) == 0, "mprotect %zu: %s", i,
              strerror(errno));
    long have = map_count();
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char *p = malloc(MiB);
        if (!p)
            continue;
        if (patterned())
            CHECK_BYTES(p, 0, MiB, expected_pattern(), "block %d", i);
        p[0] = 1;
        ok++;
    }
    printf("mapcount %d of %d (maps before %ld of %ld)\n", ok, n, have, max);
    return 0;
}

static int huge(size_t gib)
{
    errno = 0;
    void *p = malloc(gib << 30);
    printf("huge %s\n", p ? "ok" : errno == ENOMEM ? "ENOMEM" : strerror(errno));
    return 0;
}

static int aligned(int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char *p = memalign((size_t)1 << 30, MiB);
        CHECK(p, "memalign #%d: %s", i, strerror(errno));
        CHECK(((uintptr_t)p & (((uintptr_t)1 << 30) - 1)) == 0, "alignment");
        CHECK_BYTES(p, 0, MiB, expected_pattern(), "aligned block %d", i);
    }
    printf("anon_kb %ld\n", smaps_rollup_kb("Anonymous"));
    return 0;
}

static int live(int n, size_t kib)
{
    for (int i = 0; i < n; i++)
        CHECK(malloc(kib << 10), "malloc #%d: %s", i, strerror(errno));
    printf("anon_kb %ld\n", smaps_rollup_kb("Anonymous"));
    return 0;
}

static int lazy(size_t mib)
{
    long before = proc_self_kb("status", "VmSize");
    unsigned char *p = malloc(mib * MiB);
    CHECK(p, "malloc(%zu MiB): %s", mib, strerror(errno));
    if (patterned())
        CHECK_BYTES(p, 0, mib * MiB, expected_pattern(), "block");
    p[0] = 1;
    printf("vm_before_kb %ld\nvm_after_kb %ld\n", before, proc_self_kb("status", "VmSize"));
    free(p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: limits MODE ARG [ARG]\n");
        return 2;
    }
    const char *mode = argv[1];
    size_t arg = strtoull(argv[2], NULL, 0);
    if (!strcmp(mode, "lower-as"))
        return lower_as(arg);
    if (!strcmp(mode, "reach"))
        return reach(arg);
    if (!strcmp(mode, "grow"))
        return grow(arg);
    if (!strcmp(mode, "mapcount"))
        return mapcount((int)arg);
    if (!strcmp(mode, "huge"))
        return huge(arg);
    if (!strcmp(mode, "aligned"))
        return aligned((int)arg);
    if (!strcmp(mode, "lazy"))
        return lazy(arg);
    if (!strcmp(mode, "live") && argc == 4)
        return live((int)arg, strtoull(argv[3], NULL, 0));
    fprintf(stderr, "limits: unknown mode %s\n", mode);
    return 2;
}
