/* The pattern memfd's number swapped by another thread between refmalloc's
 * identity check and its mmap. A thread loops dup2(Z file, memfd number) and
 * dup2(saved copy of the memfd, memfd number); the main thread mallocs fresh
 * large blocks (run with cache=0) and checks that none shows a byte of the
 * Z file. Usage: fdrace SECONDS. Prints "OK fdrace blocks=N recreated=M". */
#define _GNU_SOURCE
#include "memfd_util.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MiB (1024ul * 1024ul)

static atomic_int stop;
static int zfd;

static uint64_t recreated(void)
{
    struct refmalloc_stats s;
    get_stats(&s);
    return s.memfd_recreated;
}

static void *swapper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int n;
        if (memfd_fds(&n, 1) == 0)
            continue;
        /* Swap a file only once refmalloc has made it (sealed): the race under
         * test is between its identity check and its mmap, not its creation. */
        if (!(fcntl(n, F_GET_SEALS) & F_SEAL_SEAL))
            continue;
        usleep(1000);
        int saved = fcntl(n, F_DUPFD_CLOEXEC, 100);
        if (saved < 0)
            continue;
        uint64_t before = recreated();
        for (int k = 0; k < 2000 && !atomic_load(&stop); k++) {
            dup2(zfd, n);
            dup2(saved, n);
        }
        close(saved);
        /* refmalloc gave n up (it noticed a swap): n is a copy of ours now. */
        if (recreated() != before)
            close(n);
    }
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: fdrace SECONDS");
    CHECK(under_refmalloc(), "not running under refmalloc");
    double seconds = atof(argv[1]);
    char path[] = "/tmp/refmalloc-fdrace-XXXXXX";
    zfd = mkstemp(path);
    CHECK(zfd >= 0, "mkstemp: %s", strerror(errno));
    unlink(path);
    unsigned char *z = malloc(4 * MiB);
    CHECK(z, "malloc");
    memset(z, 'Z', 4 * MiB);
    CHECK(write(zfd, z, 4 * MiB) == (ssize_t)(4 * MiB), "write Z");
    free(z);
    free(malloc(2 * MiB));   /* the first memfd, for the swapper to find */

    pthread_t t;
    CHECK(pthread_create(&t, NULL, swapper, NULL) == 0, "pthread_create");
    unsigned char pat = expected_pattern();
    size_t page = page_size();
    long blocks = 0;
    double end = now() + seconds;
    while (now() < end) {
        size_t n = MiB + (size_t)(blocks % 64) * 16 * page;
        unsigned char *p = malloc(n);
        CHECK(p, "malloc(%zu)", n);
        for (size_t i = 0; i < n; i += page)
            if (p[i] != pat) {
                atomic_store(&stop, 1);
                FAIL("block %ld of %zu bytes: byte %zu is 0x%02x, not the pattern 0x%02x%s",
                     blocks, n, i, p[i], pat, p[i] == 'Z' ? " (the program's file was mapped)" : "");
            }
        free(p);
        blocks++;
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("OK fdrace blocks=%ld recreated=%" PRIu64 "\n", blocks, recreated());
    return 0;
}
