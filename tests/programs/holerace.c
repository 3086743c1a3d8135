/* Issue 11, item 20: a mapping of the program's own must never be placed in,
 * then overwritten by, refmalloc's reserved range. realloc moves large blocks
 * with mremap; a move that left its old place unmapped, even for a moment,
 * let another thread's mmap(NULL) land there before refmalloc reserved the
 * place again with MAP_FIXED, destroying that thread's mapping (its bytes
 * then read as zero or it faults).
 *
 * One thread grows and shrinks large blocks by realloc (moves); the other
 * maps small anonymous mappings, stamps them and checks the stamps of the
 * last ones while the first thread runs. Prints "OK holerace N" (mappings
 * checked). */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <time.h>

#define MiB (1024ul * 1024ul)

static atomic_bool stop;

static void *mover(void *arg)
{
    (void)arg;
    enum { N = 8 };
    unsigned char *b[N] = {0};
    for (unsigned round = 0; !atomic_load(&stop); round++) {
        int i = (int)(round % N);
        size_t want = (1 + (round * 7 + (unsigned)i) % 24) * MiB;
        unsigned char *p = realloc(b[i], want);
        CHECK(p != NULL, "realloc(%zu)", want);
        p[0] = (unsigned char)round;
        p[want - 1] = (unsigned char)round;
        b[i] = p;
        if (round % 5 == 0) {   /* a neighbour that is in the way of growing in place */
            unsigned char *q = malloc(2 * MiB);
            CHECK(q != NULL, "malloc");
            q[0] = 1;
            free(b[(i + 1) % N]);
            b[(i + 1) % N] = q;
        }
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, mover, NULL) == 0, "pthread_create");
    enum { KEEP = 64, LEN = 64 * 1024 };
    unsigned long *keep[KEEP] = {0};
    unsigned long checked = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned long k = 0;; k++) {
        int slot = (int)(k % KEEP);
        if (keep[slot])
            CHECK(munmap(keep[slot], LEN) == 0, "munmap");
        unsigned long *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
        CHECK(m != MAP_FAILED, "mmap");
        for (size_t w = 0; w < LEN / sizeof *m; w += 512)
            m[w] = k ^ (unsigned long)w;
        keep[slot] = m;
        for (int s = 0; s < KEEP; s++) {
            if (!keep[s])
                continue;
            unsigned long stamp = (unsigned long)s <= (unsigned long)slot
                                      ? k - (unsigned long)(slot - s)
                                      : k - (unsigned long)(slot + KEEP - s);
            for (size_t w = 0; w < LEN / sizeof *m; w += 512)
                CHECK(keep[s][w] == (stamp ^ (unsigned long)w),
                      "mapping %p (stamp %lu) word %zu reads %#lx: overwritten", (void *)keep[s],
                      stamp, w, keep[s][w]);
            checked++;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
            break;
    }
    atomic_store(&stop, true);
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    printf("OK holerace %lu\n", checked);
    return 0;
}
