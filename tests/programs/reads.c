/* track_reads on the allocator's paths: reads.c MODE, run with
 * track_reads=1 and a report; tests/test_reads.py reads the findings.
 *   reuse   a block written whole, freed, reused from the cache and read:
 *           its pages are never-written again in the new life
 *   fork    a child reads a page its parent never wrote (exit, so that the
 *           child writes a report)
 *   move    a block grown by realloc far enough to move, then read in its
 *           old part where it was never written
 *   copy    realloc of a never-written large block down to a small one: the
 *           allocator's copy reads it, the program does not
 *   stress  threads allocating, shrinking (the allocator writes the cut
 *           tail under its lock), growing and reading, to see no deadlock
 *   cpus    the CPUs main and a thread started before the first large block
 *           may run on, once that block is mapped (track_reads_one_cpu) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned char sink;

static void *stress(void *arg)
{
    for (int i = 0; i < 100; i++) {
        unsigned char *p = malloc(1 << 20);
        if (!p)
            abort();
        p[i * 17] = 1;
        p = realloc(p, (1 << 20) - 100000 - i);
        p = realloc(p, 3 << 20);
        if (!p)
            abort();
        sink = p[(size_t)i * 4096];
        free(p);
    }
    return arg;
}

static pthread_barrier_t mapped;

static int cpus_allowed(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
}

static void *count_cpus(void *arg)
{
    pthread_barrier_wait(&mapped);
    *(int *)arg = cpus_allowed();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    size_t n = 1 << 20;
    if (strcmp(mode, "reuse") == 0) {
        unsigned char *p = malloc(n);
        memset(p, 1, n);
        free(p);
        unsigned char *q = malloc(n);
        printf("reused %d\n", p == q);
        sink = q[5 * 4096];
        free(q);
    } else if (strcmp(mode, "fork") == 0) {
        unsigned char *p = malloc(n);
        memset(p, 1, n / 2);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            sink = p[n - 4096];
            exit(0);
        }
        waitpid(pid, NULL, 0);
        free(p);
    } else if (strcmp(mode, "move") == 0) {
        unsigned char *p = malloc(n), *keep = malloc(n);
        memset(p, 1, 4096);
        unsigned char *q = realloc(p, 64 * n);
        printf("moved %d\n", p != q);
        sink = q[7 * 4096];
        free(q);
        free(keep);
    } else if (strcmp(mode, "copy") == 0) {
        unsigned char *p = malloc(n);
        p = realloc(p, 100);
        memset(p, 1, 100);
        free(p);
    } else if (strcmp(mode, "stress") == 0) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, stress, NULL);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
    } else if (strcmp(mode, "cpus") == 0) {
        int before = cpus_allowed(), thread = 0;
        pthread_t t;
        pthread_barrier_init(&mapped, NULL, 2);
        pthread_create(&t, NULL, count_cpus, &thread);
        unsigned char *p = malloc(n);
        p[0] = 1;
        pthread_barrier_wait(&mapped);
        pthread_join(t, NULL);
        printf("cpus before=%d main=%d thread=%d\n", before, cpus_allowed(), thread);
        free(p);
    } else {
        fprintf(stderr, "reads: unknown mode %s\n", mode);
        return 2;
    }
    puts("ok");
    return 0;
}
