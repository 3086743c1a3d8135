/* Pre-tagged large blocks against tagging up front (issue 7's measurement),
 * run on the emulated MTE machine by python -m bench.mte:
 *
 *   mte_prefault MODE [MIB] [PERCENT]
 *
 * allocates a block of MIB MiB (default 256), writes one byte in PERCENT % of
 * its pages (default 1), and prints one line
 *   RESULT MODE ns=N instructions=N anon_kib=N pss_kib=N tag=T
 * for the allocation and the writes together. Modes:
 *   malloc    malloc() (under refmalloc with mte=1: a block on tagged
 *             reference pages; without mte=1: untagged reference pages)
 *   stg       mmap PROT_MTE, then STG over every granule (tags only, data 0)
 *   stgp      mmap PROT_MTE, then STGP: the tag and the pattern 0xaa stored
 *             together, which is what a block holding both costs up front
 *   anon      mmap without MTE, nothing stored (the floor)
 * Instructions come from perf_event_open (user and kernel); "na" where the
 * emulated CPU has no counter. */
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef PROT_MTE
#define PROT_MTE 0x20
#endif

#define TAG 3ul

static int instruction_counter(void)
{
    struct perf_event_attr attr = {.type = PERF_TYPE_HARDWARE, .size = sizeof attr,
                                   .config = PERF_COUNT_HW_INSTRUCTIONS, .disabled = 1};
    return (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

static long long smaps_kib(const char *field)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atoll(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((target("arch=armv8.5-a+memtag")))
static void tag_only(char *p, size_t len)
{
    for (char *g = p, *end = p + len; g < end; g += 32)
        __asm__ volatile("st2g %0, [%0]" : : "r"(g) : "memory");
}

__attribute__((target("arch=armv8.5-a+memtag")))
static void tag_and_fill(char *p, size_t len)
{
    uint64_t word = 0xaaaaaaaaaaaaaaaaull;
    for (char *g = p, *end = p + len; g < end; g += 16)
        __asm__ volatile("stgp %1, %1, [%0]" : : "r"(g), "r"(word) : "memory");
}

static char *tagged_mapping(size_t len)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_MTE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (char *)((uintptr_t)p | TAG << 56);
}

static int enable_checks(void)
{
    int ctrl = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
    if (ctrl >= 0 && (ctrl & PR_MTE_TCF_MASK))
        return 0;   /* refmalloc set them already */
    return prctl(PR_SET_TAGGED_ADDR_CTRL,
                 PR_TAGGED_ADDR_ENABLE | PR_MTE_TCF_SYNC | (0xfffeul << PR_MTE_TAG_SHIFT),
                 0, 0, 0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "malloc";
    size_t len = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;
    int percent = argc > 3 ? atoi(argv[3]) : 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), npages = len / page;
    size_t stride = percent > 0 ? (size_t)(100 / percent) : npages + 1;
    if (strcmp(mode, "stg") == 0 || strcmp(mode, "stgp") == 0) {
        if (enable_checks() != 0) {
            perror("PR_SET_TAGGED_ADDR_CTRL");
            return 2;
        }
    }

    int counter = instruction_counter();
    long long instructions = -1;
    if (counter >= 0) {
        ioctl(counter, PERF_EVENT_IOC_RESET, 0);
        ioctl(counter, PERF_EVENT_IOC_ENABLE, 0);
    }
    double t0 = now_ns();
    char *p = NULL;
    if (strcmp(mode, "malloc") == 0) {
        p = malloc(len);
    } else if (strcmp(mode, "stg") == 0) {
        if ((p = tagged_mapping(len)))
            tag_only(p, len);
    } else if (strcmp(mode, "stgp") == 0) {
        if ((p = tagged_mapping(len)))
            tag_and_fill(p, len);
    } else if (strcmp(mode, "anon") == 0) {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p = p == MAP_FAILED ? NULL : p;
    } else {
        fprintf(stderr, "mte_prefault: unknown mode %s (malloc, stg, stgp, anon)\n", mode);
        return 2;
    }
    if (!p) {
        perror(mode);
        return 1;
    }
    for (size_t i = 0; i < npages; i += stride)
        p[i * page] = 1;
    double t1 = now_ns();
    if (counter >= 0) {
        ioctl(counter, PERF_EVENT_IOC_DISABLE, 0);
        if (read(counter, &instructions, sizeof instructions) != sizeof instructions)
            instructions = -1;
    }
    char icount[32] = "na";
    if (instructions > 0)
        snprintf(icount, sizeof icount, "%lld", instructions);
    printf("RESULT %s ns=%.0f instructions=%s anon_kib=%lld pss_kib=%lld tag=%lu\n", mode,
           t1 - t0, icount, smaps_kib("Anonymous"), smaps_kib("Pss"),
           (unsigned long)((uintptr_t)p >> 56) & 0xf);
    return 0;
}
