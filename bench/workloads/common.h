/* Shared helpers for the refmalloc benchmark workloads (bench/core.py).
 *
 * Every workload prints exactly one JSON object on stdout:
 *   {"workload": ..., "time_ns": N, "anon_kb": N, "pss_kb": N,
 *    "refmalloc": 0|1, ...workload specific fields}
 * Time is wall time (CLOCK_MONOTONIC) around the measured work only.
 * Memory comes from /proc/self/smaps_rollup (Anonymous:, Pss:), never RSS. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

/* The suite's helpers (timing, smaps_rollup, xorshift, xmalloc). */
#include "../programs/bench.h"

/* 1 when librefmalloc.so is loaded into this process. */
static inline int under_refmalloc(void)
{
    return dlsym(RTLD_DEFAULT, "refmalloc_version") != NULL;
}

static inline void print_result(const char *workload, uint64_t time_ns,
                                struct mem m, const char *extra)
{
    printf("{\"workload\": \"%s\", \"time_ns\": %llu, \"anon_kb\": %ld, "
           "\"pss_kb\": %ld, \"refmalloc\": %d%s%s}\n",
           workload, (unsigned long long)time_ns, m.anon_kb, m.pss_kb,
           under_refmalloc(), extra && *extra ? ", " : "", extra ? extra : "");
    fflush(stdout);
}

/* The dense workloads: `rounds` times malloc a block, write it whole, free
 * it. Memory is sampled before the last free (one block live), and that
 * sampling is left out of the time. */
static inline int run_dense(const char *workload, int rounds, size_t block)
{
    struct mem m = {-1, -1};
    uint64_t sum = 0, t_mem = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < rounds; i++) {
        unsigned char *p = xmalloc(block);
        memset(p, (i & 0x7f) + 1, block);
        sum += ((volatile unsigned char *)p)[block - 1];
        if (i == rounds - 1) {
            uint64_t a = now_ns();
            m = mem_now();
            t_mem = now_ns() - a;
        }
        free(p);
    }
    uint64_t t1 = now_ns();
    bench_sink = sum;
    char extra[96];
    snprintf(extra, sizeof extra, "\"rounds\": %d, \"block_bytes\": %zu", rounds, block);
    print_result(workload, (t1 - t0) - t_mem, m, extra);
    return 0;
}

#endif
