/* pagecost: the kernel costs a reference-page block cannot avoid, measured
 * outside the library (issue 14's "physical" limits), median of REPS runs:
 *   - the first write to an anonymous page (what glibc's fresh memory pays),
 *   - the first write to a MAP_PRIVATE page of a memfd (copy-on-write of the
 *     file's page: what a reference-page block pays instead),
 *   - filling a pattern file with pwrite (per MiB: paid once per file),
 *   - one MAP_FIXED mapping of the file (per chunk of a block).
 *
 *   cc -O2 -o /tmp/pagecost bench/probes/pagecost.c && /tmp/pagecost
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define REPS 5
#define SPAN ((size_t)256 << 20)   /* pages faulted per run: 65536 */
#define FILE_LEN ((size_t)4 << 20) /* a pattern file of the default first chunk */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, REPS, sizeof *v, by_value);
    return v[REPS / 2];
}

static int pattern_file(void)
{
    int fd = memfd_create("pagecost", MFD_CLOEXEC);
    static char buf[1 << 16];
    memset(buf, 0xaa, sizeof buf);
    if (fd < 0 || ftruncate(fd, (off_t)FILE_LEN) != 0)
        exit(1);
    for (size_t off = 0; off < FILE_LEN; off += sizeof buf)
        if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf)
            exit(1);
    return fd;
}

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = SPAN / page;
    double anon[REPS], cow[REPS], fill[REPS], map[REPS];
    for (int r = 0; r < REPS; r++) {
        char *a = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t0 = now_ns();
        for (size_t o = 0; o < SPAN; o += page)
            a[o] = 1;
        anon[r] = (now_ns() - t0) / (double)pages;
        munmap(a, SPAN);

        t0 = now_ns();
        int fd = pattern_file();
        fill[r] = (now_ns() - t0) / (double)(FILE_LEN >> 20);

        char *b = mmap(NULL, SPAN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        t0 = now_ns();
        for (size_t o = 0; o < SPAN; o += FILE_LEN)
            if (mmap(b + o, FILE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) ==
                MAP_FAILED)
                return 1;
        map[r] = (now_ns() - t0) / (double)(SPAN / FILE_LEN);
        t0 = now_ns();
        for (size_t o = 0; o < SPAN; o += page)
            b[o] = 1;
        cow[r] = (now_ns() - t0) / (double)pages;
        munmap(b, SPAN);
        close(fd);
    }
    double an = median(anon), cw = median(cow);
    printf("first write, anonymous page:        %6.0f ns/page\n", an);
    printf("first write, private memfd page:    %6.0f ns/page (+%.0f ns, %.2fx)\n", cw, cw - an,
           cw / an);
    printf("pattern file fill (pwrite):         %6.0f us/MiB\n", median(fill) / 1e3);
    printf("one MAP_FIXED mapping of the file:  %6.2f us\n", median(map) / 1e3);
    return 0;
}
