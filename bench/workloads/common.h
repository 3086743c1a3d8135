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

#endif
