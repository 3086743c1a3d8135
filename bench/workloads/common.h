/* Shared helpers for the refmalloc benchmark workloads (bench/core.py).
 *
 * Every workload prints exactly one JSON object on stdout:
 *   {"workload": ..., "time_ns": N, "anon_kb": N, "pss_kb": N,
 *    "refmalloc": 0|1, ...workload specific fields}
 * Time is wall time (CLOCK_MONOTONIC) around the measured work only.
 * Memory comes from /proc/self/smaps_rollup (Anonymous:, Pss:), never RSS. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct mem_snapshot {
    long anon_kb;
    long pss_kb;
};

/* Anonymous and Pss of the whole process from smaps_rollup; -1 if absent. */
static inline struct mem_snapshot read_smaps_rollup(void)
{
    struct mem_snapshot m = {-1, -1};
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return m;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "Anonymous: %ld kB", &v) == 1)
            m.anon_kb = v;
        else if (sscanf(line, "Pss: %ld kB", &v) == 1)
            m.pss_kb = v;
    }
    fclose(f);
    return m;
}

/* 1 when librefmalloc.so is loaded into this process. */
static inline int under_refmalloc(void)
{
    return dlsym(RTLD_DEFAULT, "refmalloc_version") != NULL;
}

static inline size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench: malloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

/* Prevents the compiler from dropping reads/writes whose result is unused. */
static volatile uint64_t bench_sink;

static inline void print_result(const char *workload, uint64_t time_ns,
                                struct mem_snapshot m, const char *extra)
{
    printf("{\"workload\": \"%s\", \"time_ns\": %llu, \"anon_kb\": %ld, "
           "\"pss_kb\": %ld, \"refmalloc\": %d%s%s}\n",
           workload, (unsigned long long)time_ns, m.anon_kb, m.pss_kb,
           under_refmalloc(), extra && *extra ? ", " : "", extra ? extra : "");
    fflush(stdout);
}

#endif
