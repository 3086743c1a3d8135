/* Tests of refmalloc's mte=1 option, run inside the emulated arm64 MTE
 * machine (the rig package, rig/) with librefmalloc.so preloaded.
 *
 *   mte_tests CASE...     run the named cases, each in a child process
 *
 * Each case prints "ok CASE" or "not ok CASE: why". A case named *_faults
 * passes only when its child dies of a synchronous tag check fault
 * (SIGSEGV, si_code SEGV_MTESERR) at the access it makes; *_aborts only when
 * refmalloc stops the child with SIGABRT and a message naming the bug. The
 * exit status is the number of failed cases. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define PATTERN 0xaa
#define FAULT_EXIT 42        /* the child took SEGV_MTESERR */
#define OTHER_FAULT_EXIT 43  /* SIGSEGV of another kind */

static size_t page;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  # ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* ---- tags -------------------------------------------------------------- */

static unsigned tag_of(const void *p)
{
    return (unsigned)((uintptr_t)p >> 56) & 0xf;
}

static uintptr_t untag(const void *p)
{
    return (uintptr_t)p & ~((uintptr_t)0xff << 56);
}

static char *with_tag(const void *p, unsigned tag)
{
    return (char *)(untag(p) | ((uintptr_t)tag << 56));
}

/* The allocation tag stored for the granule at p (LDG). */
__attribute__((target("arch=armv8.5-a+memtag")))
static unsigned memory_tag(const void *p)
{
    uintptr_t v = untag(p);
    __asm__ volatile("ldg %0, [%1]" : "+r"(v) : "r"(untag(p)));
    return tag_of((void *)v);
}

static void check_tag_everywhere(const char *p, size_t len, unsigned tag)
{
    for (size_t off = 0; off < len; off += page / 2)
        CHECK(memory_tag(p + off) == tag, "memory tag at +%zu is %u, pointer tag %u",
              off, memory_tag(p + off), tag);
    CHECK(memory_tag(p + len - 16) == tag, "memory tag of the last granule");
}

static void check_bytes(const char *p, size_t from, size_t to, unsigned char want)
{
    for (size_t i = from; i < to; i++)
        CHECK((unsigned char)p[i] == want, "byte +%zu is 0x%02x, want 0x%02x", i,
              (unsigned char)p[i], want);
}

/* ---- pagemap: is a page still the shared reference page? ---------------- */

static uint64_t pagemap_entry(const void *p)
{
    FILE *f = fopen("/proc/self/pagemap", "rb");
    CHECK(f, "open pagemap: %s", strerror(errno));
    uint64_t e = 0;
    CHECK(fseek(f, (long)(untag(p) / page * 8), SEEK_SET) == 0, "seek pagemap");
    CHECK(fread(&e, 8, 1, f) == 1, "read pagemap");
    fclose(f);
    return e;
}

static int page_written(const void *p)   /* present, anonymous, exclusive */
{
    uint64_t e = pagemap_entry(p);
    return (e >> 63) & 1 && !((e >> 61) & 1);
}

/* ---- faults ------------------------------------------------------------ */

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)ctx;
    char buf[96];
    int n = snprintf(buf, sizeof buf, "  # SIGSEGV si_code=%d at %p\n", si->si_code,
                     si->si_addr);
    if (write(1, buf, (size_t)n) < 0)
        _exit(2);
    _exit(si->si_code == SEGV_MTESERR ? FAULT_EXIT : OTHER_FAULT_EXIT);
}

static void catch_faults(void)
{
    struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
    sigaction(SIGSEGV, &sa, NULL);
}

static void touch(const char *p)
{
    printf("  # reading %p\n", (const void *)p);
    fflush(stdout);
    (void)*(const volatile char *)p;
}

static char *large(size_t size)
{
    char *p = malloc(size);
    CHECK(p, "malloc(%zu) failed", size);
    CHECK(tag_of(p) != 0, "malloc(%zu) returned an untagged pointer %p", size, (void *)p);
    return p;
}

/* ---- the cases --------------------------------------------------------- */

static void case_pattern_through_tagged_pointer(void)
{
    char *p = large(MIB);
    check_bytes(p, 0, MIB, PATTERN);
    check_tag_everywhere(p, MIB, tag_of(p));
    CHECK(malloc_usable_size(p) >= MIB, "usable size %zu", malloc_usable_size(p));
    CHECK(!page_written(p), "reading wrote a page");
    free(p);
}

static void case_write_copies_page_and_keeps_tag(void)
{
    char *p = large(4 * MIB);
    char *pg = p + 3 * page;
    CHECK(!page_written(pg), "page 3 written before any store");
    pg[5] = 1;
    CHECK(page_written(pg), "the store did not copy page 3");
    CHECK(!page_written(pg + page), "page 4 was copied too");
    CHECK(memory_tag(pg) == tag_of(p) && memory_tag(pg + page - 16) == tag_of(p),
          "the copied page lost its tag (%u, want %u)", memory_tag(pg), tag_of(p));
    CHECK(pg[5] == 1, "the store was lost");
    check_bytes(pg, 0, 5, PATTERN);
    check_bytes(pg, 6, page, PATTERN);
    free(p);
}

static void case_wrong_tag_faults(void)
{
    char *p = large(MIB);
    p[100] = 1;
    catch_faults();
    touch(with_tag(p, tag_of(p) % 15 + 1) + 100);
}

static void case_untagged_pointer_faults(void)
{
    char *p = large(MIB);
    catch_faults();
    touch(with_tag(p, 0) + 4096 * 10);
}

/* B is placed right after A (fresh blocks get no growth room): the two
 * mappings touch. */
static void adjacent_pair(char **a, char **b)
{
    *a = large(MIB);
    *b = large(MIB);
    CHECK(untag(*b) == untag(*a) + MIB, "B at %p is not right after A (%p)",
          (void *)*b, (void *)*a);
    CHECK(tag_of(*a) != tag_of(*b), "neighbours share tag %u", tag_of(*a));
    CHECK(memory_tag(*b) == tag_of(*b) && memory_tag(*a + MIB - 16) == tag_of(*a),
          "memory tags at the boundary");
}

/* Growing in place extends a block's range: it must not come to touch a
 * block with its own tag. Run with cache=0, so that a freed block gives its
 * range back at once. */
static void case_growth_never_touches_same_tag(void)
{
    char *a = large(MIB);                    /* range [0, 1M) */
    char *x = large(MIB);                    /* [1M, 2M) */
    char *c = NULL;
    for (int i = 0; i < 16 && !c; i++) {     /* at 2M, until it has a's tag */
        char *p = large(MIB);
        CHECK(untag(p) == untag(a) + 2 * MIB, "block at %p, not at a + 2 MiB", (void *)p);
        if (tag_of(p) == tag_of(a))
            c = p;
        else
            free(p);
    }
    CHECK(c, "no block right after x got a's tag");
    free(x);                                 /* [1M, 2M) free again */
    char *grown = realloc(a, 2 * MIB);
    CHECK(grown && tag_of(grown) == tag_of(a), "realloc");
    if (untag(grown) + 2 * MIB == untag(c))
        fail("grown in place up to a block of the same tag %u", tag_of(c));
    free(grown);
    free(c);
}

static void case_overflow_into_next_block_faults(void)
{
    char *a, *b;
    adjacent_pair(&a, &b);
    catch_faults();
    touch(a + MIB);
}

static void case_underflow_into_previous_block_faults(void)
{
    char *a, *b;
    adjacent_pair(&a, &b);
    catch_faults();
    touch(b - 1);
}

/* The granules past the size, in the block's last page, carry another tag. */
static void case_overflow_past_size_faults(void)
{
    char *p = large(MIB + 100);
    p[MIB + 99] = 1;
    (void)*(volatile char *)(p + MIB + 111);   /* the size's own granule */
    catch_faults();
    touch(p + MIB + 112);
}

static void case_usable_size_follows_size(void)
{
    char *p = large(MIB + 100);
    CHECK(malloc_usable_size(p) == MIB + 112, "usable size %zu", malloc_usable_size(p));
    CHECK(memory_tag(p + MIB + 112) != tag_of(p), "the slack has the block's tag");
    char *q = realloc(p, MIB + 5000);
    CHECK(untag(q) == untag(p) && tag_of(q) == tag_of(p), "grew elsewhere");
    CHECK(malloc_usable_size(q) == MIB + 5008, "usable size %zu", malloc_usable_size(q));
    check_bytes(q, MIB, MIB + 5000, PATTERN);
    q[MIB + 5007] = 2;
    CHECK(memory_tag(q + MIB + 5008) != tag_of(q), "the new slack has the block's tag");
    q = realloc(q, MIB + 10);
    CHECK(malloc_usable_size(q) == MIB + 16, "usable size %zu", malloc_usable_size(q));
    q = realloc(q, 2 * MIB);
    check_bytes(q, MIB + 10, 2 * MIB, PATTERN);
    check_tag_everywhere(q, 2 * MIB, tag_of(q));
    free(q);
}

static void case_use_after_free_faults(void)
{
    char *p = large(MIB);
    p[0] = 1;
    free(p);
    catch_faults();
    touch(p);
}

/* Free p (a block of MIB bytes) and allocate it again: the same block. */
static char *free_and_reuse(char *p)
{
    free(p);
    char *q = large(MIB);
    CHECK(untag(q) == untag(p), "the freed block was not reused (%p, %p)", (void *)p,
          (void *)q);
    return q;
}

static void case_reuse_gets_fresh_tag(void)
{
    char *p = large(MIB);
    memset(p, 1, MIB);
    char *q = free_and_reuse(p);
    CHECK(tag_of(q) != tag_of(p), "reused with the same tag %u", tag_of(q));
    check_bytes(q, 0, MIB, PATTERN);
    check_tag_everywhere(q, MIB, tag_of(q));
    CHECK(!page_written(q) && !page_written(q + MIB - page),
          "the reused block is not back on reference pages");
    free(q);
}

static void case_stale_pointer_after_reuse_faults(void)
{
    char *p = large(MIB);
    char *q = free_and_reuse(p);
    q[0] = 2;
    catch_faults();
    touch(p);
}

static void case_double_free_after_reuse_aborts(void)
{
    char *p = large(MIB);
    free_and_reuse(p);
    free(p);   /* the stale pointer: refmalloc must refuse it, not free the new block */
}

/* The content written by case_realloc_keeps_content_and_tag: i * 7 in the
 * first 100000 bytes, 0x5c at the last byte of each earlier size, the
 * pattern elsewhere. */
static void check_realloc_content(char *p, size_t old, size_t size, unsigned tag)
{
    CHECK(p, "realloc to %zu failed", size);
    CHECK(tag_of(p) == tag, "realloc to %zu changed the tag %u -> %u", size, tag, tag_of(p));
    for (size_t i = 0; i < 100000; i++)
        CHECK((unsigned char)p[i] == (unsigned char)(i * 7), "content lost at %zu", i);
    for (size_t end = MIB; end <= old; end += MIB / 2) {
        CHECK((unsigned char)p[end - 1] == 0x5c, "byte +%zu lost", end - 1);
        check_bytes(p, end - MIB / 2 > 100000 ? end - MIB / 2 : 100000, end - 1, PATTERN);
    }
    check_bytes(p, old, size, PATTERN);
    check_tag_everywhere(p, size, tag);
}

static void case_realloc_keeps_content_and_tag(void)
{
    char *p = large(MIB);
    unsigned tag = tag_of(p);
    for (size_t i = 0; i < 100000; i++)
        p[i] = (char)(i * 7);
    p[MIB - 1] = 0x5c;
    char *q = realloc(p, MIB + MIB / 2);             /* in place */
    CHECK(untag(q) == untag(p), "1.5 MiB did not grow in place");
    char *blocker = large(MIB);   /* right after q: 64 MiB must move */
    check_realloc_content(q, MIB, MIB + MIB / 2, tag);
    q[MIB + MIB / 2 - 1] = 0x5c;
    char *r = realloc(q, 64 * MIB);                  /* moves */
    CHECK(untag(r) != untag(q), "64 MiB did not move");
    check_realloc_content(r, MIB + MIB / 2, 64 * MIB, tag);
    char *s = realloc(r, MIB / 2);                   /* shrinks */
    CHECK(s == r, "shrinking moved the block");
    for (size_t i = 0; i < 100000; i++)
        CHECK((unsigned char)s[i] == (unsigned char)(i * 7), "content lost at %zu", i);
    free(s);
    free(blocker);
}

static void case_calloc_is_zero_and_tagged(void)
{
    char *p = calloc(1, 2 * MIB);
    CHECK(p && tag_of(p) != 0, "calloc returned %p", (void *)p);
    check_bytes(p, 0, 2 * MIB, 0);
    check_tag_everywhere(p, 2 * MIB, tag_of(p));
    CHECK(!page_written(p + MIB), "calloc wrote its pages");
    p[10] = 3;
    char *blocker = large(MIB);
    char *q = realloc(p, 64 * MIB);                  /* moves: zeros must follow */
    CHECK(untag(q) != untag(p), "64 MiB did not move");
    CHECK(q && tag_of(q) == tag_of(p), "realloc of the calloc block");
    CHECK(q[10] == 3, "written byte lost");
    check_bytes(q, 11, 2 * MIB, 0);
    check_bytes(q, 2 * MIB, 64 * MIB, PATTERN);
    free(q);
    free(blocker);
}

static void case_aligned_block_is_tagged(void)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 2 * MIB, 4 * MIB) == 0, "posix_memalign");
    CHECK(tag_of(p) != 0 && untag(p) % (2 * MIB) == 0, "aligned block %p", p);
    check_bytes(p, 0, 4 * MIB, PATTERN);
    check_tag_everywhere(p, 4 * MIB, tag_of(p));
    free(p);
    char *q = aligned_alloc(page, MIB);
    CHECK(q && tag_of(q) != 0, "aligned_alloc");
    free(q);
}

/* With refpages=0 (or when reference pages fail): anonymous PROT_MTE memory,
 * pattern and tags stored together up front. */
static void case_eager_block_is_tagged_and_filled(void)
{
    char *p = large(MIB);
    CHECK(page_written(p) && page_written(p + MIB - page), "not an eager block");
    check_bytes(p, 0, MIB, PATTERN);
    check_tag_everywhere(p, MIB, tag_of(p));
    char *z = calloc(1, MIB);
    CHECK(z && tag_of(z) != 0 && tag_of(z) != tag_of(p), "calloc block %p", (void *)z);
    check_bytes(z, 0, MIB, 0);
    check_tag_everywhere(z, MIB, tag_of(z));
    free(z);
    free(p);
}

/* glibc's own tagging (GLIBC_TUNABLES=glibc.mem.tagging=1) sets asynchronous
 * checks before refmalloc starts: refmalloc keeps the program's choice. */
static void case_program_mode_kept(void)
{
    int ctrl = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
    CHECK(ctrl >= 0 && (ctrl & PR_MTE_TCF_MASK) == PR_MTE_TCF_ASYNC,
          "checks are not the asynchronous ones glibc chose (0x%x)", ctrl);
    char *p = large(MIB);
    check_bytes(p, 0, MIB, PATTERN);
    free(p);
}

static void case_small_blocks_untagged(void)
{
    char *p = malloc(1000);
    CHECK(p && tag_of(p) == 0, "small block %p is tagged", (void *)p);
    check_bytes(p, 0, 1000, PATTERN);
    free(p);
}

static void case_checks_on_for_the_process(void)
{
    int ctrl = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
    CHECK(ctrl >= 0, "PR_GET_TAGGED_ADDR_CTRL: %s", strerror(errno));
    CHECK(ctrl & PR_TAGGED_ADDR_ENABLE, "tagged addresses not enabled (0x%x)", ctrl);
    CHECK((ctrl & PR_MTE_TCF_MASK) == PR_MTE_TCF_SYNC, "checks not synchronous (0x%x)", ctrl);
}

static void case_fork_child_shares_tags(void)
{
    char *p = large(MIB);
    p[0] = 7;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        case_checks_on_for_the_process();
        CHECK(p[0] == 7 && (unsigned char)p[1] == PATTERN, "child sees the wrong content");
        p[2] = 9;
        CHECK(memory_tag(p) == tag_of(p), "child: tag of the copied page");
        char *q = large(MIB);
        check_bytes(q, 0, MIB, PATTERN);
        CHECK(tag_of(q) != tag_of(p) || untag(q) != untag(p), "child block");
        free(q);
        free(p);
        catch_faults();
        touch(p);          /* a use after free in the child faults too */
        _exit(3);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == FAULT_EXIT, "child status 0x%x", st);
    CHECK((unsigned char)p[2] == PATTERN, "the child's store reached the parent");
    free(p);
}

static void *thread_body(void *arg)
{
    (void)arg;
    case_checks_on_for_the_process();
    char *p = large(2 * MIB);
    check_bytes(p, 0, 2 * MIB, PATTERN);
    p[0] = 1;
    catch_faults();
    touch(with_tag(p, tag_of(p) % 15 + 1));
    return NULL;
}

static void case_wrong_tag_in_thread_faults(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_body, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
}

/* Without mte=1, or where it is refused: plain untagged blocks. */
static void case_untagged_blocks(void)
{
    char *p = malloc(MIB);
    CHECK(p && tag_of(p) == 0, "block %p is tagged", (void *)p);
    check_bytes(p, 0, MIB, PATTERN);
    p = realloc(p, 8 * MIB);
    check_bytes(p, MIB, 8 * MIB, PATTERN);
    free(p);
}

static void case_has_mte(void)
{
    CHECK(getauxval(AT_HWCAP2) & (1UL << 18), "HWCAP2_MTE is not set");
}

static void case_has_no_mte(void)
{
    CHECK(!(getauxval(AT_HWCAP2) & (1UL << 18)), "HWCAP2_MTE is set");
}

struct test_case {
    const char *name;
    void (*fn)(void);
};

static const struct test_case cases[] = {
#define C(n) {#n, case_##n}
    C(pattern_through_tagged_pointer), C(write_copies_page_and_keeps_tag),
    C(wrong_tag_faults), C(untagged_pointer_faults), C(overflow_into_next_block_faults),
    C(underflow_into_previous_block_faults), C(overflow_past_size_faults),
    C(growth_never_touches_same_tag),
    C(usable_size_follows_size), C(use_after_free_faults),
    C(reuse_gets_fresh_tag), C(stale_pointer_after_reuse_faults),
    C(double_free_after_reuse_aborts), C(realloc_keeps_content_and_tag),
    C(calloc_is_zero_and_tagged), C(aligned_block_is_tagged), C(eager_block_is_tagged_and_filled),
    C(program_mode_kept), C(small_blocks_untagged),
    C(checks_on_for_the_process), C(fork_child_shares_tags), C(wrong_tag_in_thread_faults),
    C(untagged_blocks), C(has_mte), C(has_no_mte),
#undef C
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Run one case in a child; its stderr (refmalloc's messages) is kept to
 * check what an aborting case printed. */
static bool run_case(const struct test_case *c)
{
    int err[2];
    if (pipe(err) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(err[0]);
        dup2(err[1], 2);
        c->fn();
        fflush(stdout);
        _exit(ends_with(c->name, "_faults") || ends_with(c->name, "_aborts") ? 4 : 0);
    }
    close(err[1]);
    char text[4096];
    size_t used = 0;
    ssize_t n;
    while ((n = read(err[0], text + used, sizeof text - 1 - used)) > 0)
        used += (size_t)n;
    text[used] = '\0';
    close(err[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool names_bug = strstr(text, "refmalloc") && strstr(text, "memory tag");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        printf("  # stderr: %s\n", line);

    const char *why = NULL;
    if (ends_with(c->name, "_faults")) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != FAULT_EXIT)
            why = WIFEXITED(st) && WEXITSTATUS(st) == 4 ? "no fault"
                : WIFEXITED(st) && WEXITSTATUS(st) == OTHER_FAULT_EXIT
                ? "faulted, but not with SEGV_MTESERR" : "failed before the access";
    } else if (ends_with(c->name, "_aborts")) {
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
            why = "not stopped by SIGABRT";
        else if (!names_bug)
            why = "stopped without refmalloc's message about the memory tag";
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        why = WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "failed";
    }
    if (why)
        printf("not ok %s: %s (status 0x%x)\n", c->name, why, st);
    else
        printf("ok %s\n", c->name);
    fflush(stdout);
    return why == NULL;
}

int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        const struct test_case *c = NULL;
        for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++)
            if (strcmp(cases[j].name, argv[i]) == 0)
                c = &cases[j];
        if (!c) {
            printf("not ok %s: no such case\n", argv[i]);
            failed++;
        } else if (!run_case(c)) {
            failed++;
        }
    }
    return failed;
}
