/* Self-test of the emulated machine of the rig package (rig/): what the guest
 * kernel and CPU give a program. Usage:
 *
 *   probe_mte mte     the machine has MTE: HWCAP2_MTE, tags stored with stg
 *                     in a memfd survive munmap, sealing and a MAP_PRIVATE
 *                     mapping (and its copy-on-write), and a load through a
 *                     wrong tag raises SIGSEGV/SEGV_MTESERR once synchronous
 *                     tag checks are on
 *   probe_mte nomte   the machine has no MTE: no HWCAP2_MTE; mprotect refuses
 *                     PROT_MTE (EINVAL) while mmap silently ignores it
 *   probe_mte perf    perf_event_open(PERF_COUNT_HW_INSTRUCTIONS) counts a
 *                     loop of a known number of instructions
 *
 * Prints one "ok ..." or "not ok ..." line per check ("# ..." for facts) and
 * exits 1 if any check failed. Built with aarch64-linux-gnu-gcc -O2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef HWCAP2_MTE
#define HWCAP2_MTE (1 << 18)
#endif
#ifndef PROT_MTE
#define PROT_MTE 0x20
#endif
#ifndef PR_SET_TAGGED_ADDR_CTRL
#define PR_SET_TAGGED_ADDR_CTRL 55
#define PR_TAGGED_ADDR_ENABLE (1UL << 0)
#endif
#ifndef PR_MTE_TCF_SYNC
#define PR_MTE_TCF_SYNC (1UL << 1)
#endif
#ifndef PR_MTE_TAG_SHIFT
#define PR_MTE_TAG_SHIFT 3
#endif
#ifndef SEGV_MTESERR
#define SEGV_MTESERR 9
#endif
#ifndef F_SEAL_SEAL
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

#define GRANULE 16
#define NGRANULES 64 /* tagged granules at the start of the memfd */

static int failures;

#define OK(cond, ...)                                                         \
    do {                                                                      \
        int ok_ = (cond);                                                     \
        printf("%s ", ok_ ? "ok" : "not ok");                                 \
        printf(__VA_ARGS__);                                                  \
        putchar('\n');                                                        \
        fflush(stdout);                                                       \
        failures += !ok_;                                                     \
    } while (0)

static void *with_tag(void *p, unsigned tag)
{
    uintptr_t a = (uintptr_t)p & ~(0xfful << 56);
    return (void *)(a | ((uintptr_t)(tag & 0xf) << 56));
}

static void set_tag(void *tagged)
{
    asm volatile(".arch armv8.5-a+memtag\n stg %0, [%0]" ::"r"(tagged) : "memory");
}

static unsigned get_tag(void *p)
{
    void *r = p;
    asm volatile(".arch armv8.5-a+memtag\n ldg %0, [%0]" : "+r"(r)::"memory");
    return (unsigned)((uintptr_t)r >> 56) & 0xf;
}

static unsigned tag_of(int granule)
{
    return (unsigned)(granule % 15) + 1; /* 1..15, never 0 */
}

/* How many of the first NGRANULES granules of p carry tag_of(i). */
static int tags_matching(unsigned char *p)
{
    int n = 0;
    for (int i = 0; i < NGRANULES; i++)
        n += get_tag(p + i * GRANULE) == tag_of(i);
    return n;
}

static sigjmp_buf jump;
static volatile sig_atomic_t got_signo, got_code;

static void on_segv(int signo, siginfo_t *si, void *uc)
{
    (void)uc;
    got_signo = signo;
    got_code = si->si_code;
    siglongjmp(jump, 1);
}

/* Loads one byte through p; returns 0 when it did not fault, else the signal
 * (its si_code in *code). */
static int probe_load(volatile unsigned char *p, int *code)
{
    got_signo = got_code = 0;
    if (sigsetjmp(jump, 1) == 0) {
        unsigned char v = *p;
        (void)v;
        return 0;
    }
    *code = got_code;
    return got_signo;
}

static int mode_mte(void)
{
    unsigned long hw2 = getauxval(AT_HWCAP2);
    OK(hw2 & HWCAP2_MTE, "hwcap2 has MTE (AT_HWCAP2=0x%lx)", hw2);
    if (!(hw2 & HWCAP2_MTE))
        return 1;

    long page = sysconf(_SC_PAGESIZE);
    size_t len = 2 * (size_t)page;
    int fd = memfd_create("probe_mte", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    OK(fd >= 0, "memfd_create (%s)", fd < 0 ? strerror(errno) : "fd");
    if (fd < 0)
        return 1;
    unsigned char *fill = malloc(len);
    memset(fill, 0xa5, len);
    OK(write(fd, fill, len) == (ssize_t)len, "memfd filled with 0xa5");
    free(fill);

    unsigned char *sh = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_MTE, MAP_SHARED, fd, 0);
    OK(sh != MAP_FAILED, "mmap memfd MAP_SHARED PROT_READ|PROT_WRITE|PROT_MTE (%s)",
       sh == MAP_FAILED ? strerror(errno) : "mapped");
    if (sh == MAP_FAILED)
        return 1;
    OK(tags_matching(sh) < NGRANULES, "fresh shmem granules carry no tags yet");
    for (int i = 0; i < NGRANULES; i++)
        set_tag(with_tag(sh + i * GRANULE, tag_of(i)));
    OK(tags_matching(sh) == NGRANULES, "ldg reads back the %d tags set with stg", NGRANULES);
    OK(sh[0] == 0xa5 && sh[len - 1] == 0xa5, "stg kept the data");
    OK(munmap(sh, len) == 0, "munmap the shared mapping");
    int seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
    OK(fcntl(fd, F_ADD_SEALS, seals) == 0, "memfd sealed (%s)", strerror(errno));

    unsigned char *ro = mmap(NULL, len, PROT_READ | PROT_MTE, MAP_PRIVATE, fd, 0);
    OK(ro != MAP_FAILED, "mmap sealed memfd MAP_PRIVATE PROT_READ|PROT_MTE (%s)",
       ro == MAP_FAILED ? strerror(errno) : "mapped");
    if (ro == MAP_FAILED)
        return 1;
    OK(tags_matching(ro) == NGRANULES, "tags survive munmap and sealing (%d/%d)",
       tags_matching(ro), NGRANULES);

    unsigned char *cow =
        mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_MTE, MAP_PRIVATE, fd, 0);
    OK(cow != MAP_FAILED, "mmap sealed memfd MAP_PRIVATE PROT_READ|PROT_WRITE|PROT_MTE");
    if (cow == MAP_FAILED)
        return 1;
    OK(tags_matching(cow) == NGRANULES, "writable private mapping sees the tags before a write");
    /* Tag checks are still off: the untagged pointer may write. */
    cow[GRANULE * (NGRANULES - 1)] = 0x11;
    int after = tags_matching(cow);
    OK(after == NGRANULES, "copy-on-write copies the tags (%d/%d)", after, NGRANULES);
    OK(cow[0] == 0xa5 && ro[GRANULE * (NGRANULES - 1)] == 0xa5,
       "copy-on-write page has the data, the memfd is unchanged");

    int pr = prctl(PR_SET_TAGGED_ADDR_CTRL,
                   PR_TAGGED_ADDR_ENABLE | PR_MTE_TCF_SYNC | (0xfffeUL << PR_MTE_TAG_SHIFT), 0,
                   0, 0);
    OK(pr == 0, "prctl(PR_SET_TAGGED_ADDR_CTRL, ENABLE|TCF_SYNC) (%s)",
       pr ? strerror(errno) : "0");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    int code = 0;
    int sig = probe_load(with_tag(ro + GRANULE * 5, tag_of(5)), &code);
    OK(sig == 0, "load through the right tag does not fault (signal %d)", sig);
    sig = probe_load(with_tag(ro + GRANULE * 5, tag_of(5) + 1), &code);
    OK(sig == SIGSEGV && code == SEGV_MTESERR,
       "load through a wrong tag: SIGSEGV with SEGV_MTESERR (signal %d si_code %d)", sig, code);
    sig = probe_load(with_tag(cow + GRANULE * 7, tag_of(7) + 3), &code);
    OK(sig == SIGSEGV && code == SEGV_MTESERR,
       "wrong tag in the copy-on-write mapping faults too (signal %d si_code %d)", sig, code);
    sig = probe_load(ro + GRANULE * 5, &code);
    OK(sig == SIGSEGV && code == SEGV_MTESERR,
       "untagged pointer to a tagged granule faults (signal %d si_code %d)", sig, code);
    /* Memory mapped without PROT_MTE is never checked. */
    unsigned char *plain =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sig = probe_load(with_tag(plain, 9), &code);
    OK(sig == 0, "a tagged pointer into memory without PROT_MTE does not fault (signal %d)", sig);
    unsigned char *anon = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE | PROT_MTE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    OK(anon != MAP_FAILED && get_tag(anon) == 0, "anonymous PROT_MTE memory starts with tag 0");
    unsigned char *later =
        mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    OK(mprotect(later, (size_t)page, PROT_READ | PROT_WRITE | PROT_MTE) == 0,
       "mprotect adds PROT_MTE to anonymous memory (%s)", strerror(errno));
    set_tag(with_tag(later, 6));
    OK(get_tag(later) == 6, "stg/ldg work after mprotect(PROT_MTE)");
    sig = probe_load(with_tag(anon, 3), &code);
    OK(sig == SIGSEGV && code == SEGV_MTESERR,
       "tag 3 into anonymous tag-0 memory faults (signal %d si_code %d)", sig, code);
    return failures != 0;
}

static int mode_nomte(void)
{
    unsigned long hw2 = getauxval(AT_HWCAP2);
    OK(!(hw2 & HWCAP2_MTE), "hwcap2 has no MTE (AT_HWCAP2=0x%lx)", hw2);
    /* mmap ignores the prot bits that it does not know; mprotect checks. */
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_MTE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    int e = errno;
    OK(p != MAP_FAILED, "mmap ignores PROT_MTE (%s)", p == MAP_FAILED ? strerror(e) : "mapped");
    void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mp = mprotect(q, 4096, PROT_READ | PROT_WRITE | PROT_MTE);
    e = errno;
    OK(mp < 0 && e == EINVAL, "mprotect with PROT_MTE fails with EINVAL (%s)",
       mp < 0 ? strerror(e) : "it succeeded");
    int pr = prctl(PR_SET_TAGGED_ADDR_CTRL,
                   PR_TAGGED_ADDR_ENABLE | PR_MTE_TCF_SYNC | (0xfffeUL << PR_MTE_TAG_SHIFT), 0,
                   0, 0);
    e = errno;
    printf("# prctl(PR_SET_TAGGED_ADDR_CTRL, ENABLE|TCF_SYNC) without MTE: %d (%s)\n", pr,
           pr ? strerror(e) : "accepted");
    return failures != 0;
}

static long perf_open(uint64_t config, int exclude_kernel)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = config;
    attr.disabled = 1;
    attr.exclude_kernel = (unsigned)exclude_kernel;
    attr.exclude_hv = 1;
    return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

/* 2 instructions per iteration (subs, b.ne). */
static void spin(uint64_t n)
{
    asm volatile("1: subs %0, %0, #1\n b.ne 1b" : "+r"(n)::"cc");
}

static int mode_perf(void)
{
    static const struct {
        uint64_t config;
        const char *name;
    } events[] = {
        {PERF_COUNT_HW_INSTRUCTIONS, "instructions"},
        {PERF_COUNT_HW_CPU_CYCLES, "cycles"},
    };
    for (size_t k = 0; k < sizeof events / sizeof events[0]; k++) {
        for (int excl = 1; excl >= 0; excl--) {
            long fd = perf_open(events[k].config, excl);
            if (fd < 0) {
                OK(0, "perf_event_open(%s, exclude_kernel=%d): %s", events[k].name, excl,
                   strerror(errno));
                continue;
            }
            uint64_t counts[2];
            const uint64_t iters[2] = {1000000, 10000000};
            for (int r = 0; r < 2; r++) {
                ioctl((int)fd, PERF_EVENT_IOC_RESET, 0);
                ioctl((int)fd, PERF_EVENT_IOC_ENABLE, 0);
                spin(iters[r]);
                ioctl((int)fd, PERF_EVENT_IOC_DISABLE, 0);
                if (read((int)fd, &counts[r], sizeof counts[r]) != sizeof counts[r])
                    counts[r] = 0;
            }
            /* The difference of the two runs is the loop's own count. */
            double per_iter = (double)(counts[1] - counts[0]) / (double)(iters[1] - iters[0]);
            if (events[k].config == PERF_COUNT_HW_INSTRUCTIONS)
                OK(per_iter > 1.9 && per_iter < 2.1,
                   "perf %s exclude_kernel=%d: %llu and %llu for 2M and 20M "
                   "instructions (%.3f per 2-instruction iteration)",
                   events[k].name, excl, (unsigned long long)counts[0],
                   (unsigned long long)counts[1], per_iter);
            else
                printf("# perf %s exclude_kernel=%d: %llu and %llu (%.3f per iteration)\n",
                       events[k].name, excl, (unsigned long long)counts[0],
                       (unsigned long long)counts[1], per_iter);
            close((int)fd);
        }
    }
    return failures != 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "mte") == 0)
        return mode_mte();
    if (argc == 2 && strcmp(argv[1], "nomte") == 0)
        return mode_nomte();
    if (argc == 2 && strcmp(argv[1], "perf") == 0)
        return mode_perf();
    fprintf(stderr, "usage: %s mte|nomte|perf\n", argv[0]);
    return 2;
}
