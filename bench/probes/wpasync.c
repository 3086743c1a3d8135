/* wpasync: what userfaultfd async write-protect (UFFD_FEATURE_WP_ASYNC,
 * Linux 6.7+) would cost and save in restoring a cached block, measured
 * outside the library (issue 14, "written-since-restore").
 *
 * A 4,096,000-byte MAP_PRIVATE mapping of a pattern memfd is written whole
 * once (the block was dense), then reused `cycles` times: restore (re-fill
 * the written pages), then the program writes `touch` pages. mode 0 is the
 * library's policy: PAGEMAP_SCAN for present, non-file pages (every page
 * ever written, since the private copies stay). mode 1 registers the range
 * with UFFDIO_REGISTER_MODE_WP in async mode, asks PAGEMAP_SCAN for
 * PAGE_IS_WRITTEN (written since last protected), re-fills those and
 * protects them again (UFFDIO_WRITEPROTECT per run: the re-fill itself
 * unprotects them). Prints microseconds per cycle and pages re-filled.
 *
 *   cc -O2 -o wpasync bench/probes/wpasync.c
 *   ./wpasync MODE TOUCH [CYCLES]     e.g. ./wpasync 1 1; ./wpasync 1 1000
 *
 * Needs userfaultfd (root or vm.unprivileged_userfaultfd=1) for mode 1. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/linux/fs.h (6.7) and userfaultfd.h, for older headers. */
struct scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t inverted, mask, anyof, shown;
};
struct region {
    uint64_t start, end, categories;
};
#define PAGEMAP_SCAN_IOCTL _IOWR('f', 16, struct scan_arg)
#define IS_WRITTEN (1ull << 1)
#define IS_FILE (1ull << 2)
#define IS_PRESENT (1ull << 3)
#define IS_SWAPPED (1ull << 4)
#define FEATURE_WP_HUGETLBFS_SHMEM (1ull << 12)
#define FEATURE_WP_UNPOPULATED (1ull << 13)
#define FEATURE_WP_ASYNC (1ull << 15)

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void protect(int uffd, uint64_t start, uint64_t len)
{
    struct uffdio_writeprotect w = {.range = {start, len}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w) != 0)
        die("UFFDIO_WRITEPROTECT");
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: wpasync MODE(0|1) TOUCH [CYCLES]\n"), 2;
    int wp = atoi(argv[1]);
    size_t touch = strtoul(argv[2], NULL, 0);
    int cycles = argc > 3 ? atoi(argv[3]) : 1000;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 4096000 / page * page, np = len / page;
    int fd = memfd_create("pattern", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
        die("memfd");
    char *file = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (file == MAP_FAILED || p == MAP_FAILED)
        die("mmap");
    memset(file, 0xaa, len);
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), uffd = -1;
    if (pm < 0)
        die("pagemap");
    memset(p, 1, len);   /* once dense */
    if (wp) {
        uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
        struct uffdio_api api = {.api = UFFD_API, .features = FEATURE_WP_ASYNC |
                                 FEATURE_WP_HUGETLBFS_SHMEM | FEATURE_WP_UNPOPULATED};
        struct uffdio_register r = {.range = {(uintptr_t)p, len}, .mode = UFFDIO_REGISTER_MODE_WP};
        if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &r))
            die("userfaultfd WP_ASYNC");
    }
    struct region v[64];
    long scans = 0, filled = 0;
    double t0 = now_ns();
    for (int c = 0; c < cycles; c++) {
        struct scan_arg a = {.size = sizeof a, .start = (uintptr_t)p, .end = (uintptr_t)p + len,
                             .vec = (uintptr_t)v, .vec_len = 64};
        if (wp) {
            a.mask = IS_WRITTEN;
            a.shown = IS_WRITTEN;
        } else {
            a.inverted = a.mask = IS_FILE;
            a.anyof = IS_PRESENT | IS_SWAPPED;
            a.shown = IS_PRESENT;
        }
        for (;;) {
            long n = ioctl(pm, PAGEMAP_SCAN_IOCTL, &a);
            if (n < 0)
                die("PAGEMAP_SCAN");
            scans++;
            for (long i = 0; i < n; i++) {
                memset((void *)(uintptr_t)v[i].start, 0xaa, v[i].end - v[i].start);
                filled += (long)((v[i].end - v[i].start) / page);
                if (wp && c > 0)
                    protect(uffd, v[i].start, v[i].end - v[i].start);
            }
            if (a.walk_end >= a.end)
                break;
            a.start = a.walk_end;
        }
        if (wp && c == 0)
            protect(uffd, (uintptr_t)p, len);
        for (size_t i = 0; i < touch && i < np; i++)
            p[i * page] = 1;
    }
    double t = now_ns() - t0;
    printf("mode=%d touch=%zu: %.2f us/cycle, %.1f scans/cycle, %.1f pages re-filled/cycle\n", wp,
           touch, t / cycles / 1e3, (double)scans / cycles, (double)filled / cycles);
    return 0;
}
