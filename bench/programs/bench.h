/* Shared helpers of the benchmark programs of the suite (python -m bench).
 *
 * Every program prints one JSON object on stdout (the last line starting with
 * '{'): time in ns of the measured work only (CLOCK_MONOTONIC), memory in kB
 * from /proc/self/smaps_rollup (Anonymous:, Pss:; never RSS) at the peak
 * (all blocks live) and at exit (after the frees), whether refmalloc is
 * loaded and which allocator libraries are mapped into the process. */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "refmalloc.h"

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct mem {
    long anon_kb, pss_kb;
};

static inline struct mem mem_now(void)
{
    struct mem m = {-1, -1};
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return m;
    char line[256];
    long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Anonymous: %ld kB", &v) == 1)
            m.anon_kb = v;
        else if (sscanf(line, "Pss: %ld kB", &v) == 1)
            m.pss_kb = v;
    }
    fclose(f);
    return m;
}

/* Number of mappings (lines of /proc/self/maps). */
static inline long maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
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
        exit(3);
    }
    return p;
}

static inline size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    switch (*end) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    default: break;
    }
    return (size_t)v;
}

static volatile uint64_t bench_sink;

/* ---- the JSON result ---------------------------------------------------- */

static char result_buf[8192];
static size_t result_len;

static inline void result_add(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (result_len < sizeof result_buf) {
        result_buf[result_len] = result_len ? ',' : '{';
        result_len++;
        int n = vsnprintf(result_buf + result_len, sizeof result_buf - result_len, fmt, ap);
        if (n > 0)
            result_len += (size_t)n;
    }
    va_end(ap);
}

static inline void result_mem(const char *prefix, struct mem m)
{
    result_add("\"%sanon_kb\": %ld, \"%spss_kb\": %ld", prefix, m.anon_kb, prefix, m.pss_kb);
}

/* Allocator libraries mapped into this process, as a JSON list. */
static inline void result_libs(void)
{
    static const char *names[] = {"librefmalloc", "libjemalloc", "libmimalloc", "libtcmalloc",
                                  "scudo", NULL};
    int found[8] = {0};
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        for (int i = 0; names[i]; i++)
            if (strstr(line, names[i]))
                found[i] = 1;
    if (f)
        fclose(f);
    char list[256] = "[";
    for (int i = 0; names[i]; i++)
        if (found[i]) {
            if (list[1])
                strcat(list, ", ");
            strcat(list, "\"");
            strcat(list, names[i]);
            strcat(list, "\"");
        }
    strcat(list, "]");
    result_add("\"libs\": %s", list);
}

/* refmalloc's counters, when it is loaded. */
static inline void result_refmalloc(void)
{
    int (*get)(struct refmalloc_stats *, size_t) =
        (int (*)(struct refmalloc_stats *, size_t))dlsym(RTLD_DEFAULT, "refmalloc_get_stats");
    result_add("\"refmalloc\": %d", get != NULL);
    if (!get)
        return;
    struct refmalloc_stats s;
    memset(&s, 0, sizeof s);
    get(&s, sizeof s);
    result_add("\"rm_stats\": {\"refpage_allocs\": %llu, \"eager_allocs\": %llu, "
               "\"cache_hits\": %llu, \"mappings_in_use\": %llu, \"peak_refpage_bytes\": %llu, "
               "\"pattern_bytes\": %llu, \"chunk_bytes\": %llu, \"fallback_budget\": %llu, "
               "\"restored_by_fill\": %llu, \"restored_by_dontneed\": %llu, "
               "\"realloc_in_place\": %llu, \"realloc_moved\": %llu, \"small_allocs\": %llu}",
               (unsigned long long)s.refpage_allocs, (unsigned long long)s.eager_allocs,
               (unsigned long long)s.cache_hits, (unsigned long long)s.mappings_in_use,
               (unsigned long long)s.peak_refpage_bytes, (unsigned long long)s.pattern_bytes,
               (unsigned long long)s.chunk_bytes, (unsigned long long)s.fallback_budget,
               (unsigned long long)s.restored_by_fill, (unsigned long long)s.restored_by_dontneed,
               (unsigned long long)s.realloc_in_place, (unsigned long long)s.realloc_moved,
               (unsigned long long)s.small_allocs);
}

/* Print the result: workload fields added by the caller, then time, exit
 * memory, libraries and refmalloc's counters. */
static inline void result_print(uint64_t time_ns, struct mem peak)
{
    struct mem end = mem_now();
    result_add("\"time_ns\": %llu", (unsigned long long)time_ns);
    result_mem("peak_", peak);
    result_mem("exit_", end);
    result_libs();
    result_refmalloc();
    printf("%s}\n", result_buf);
    fflush(stdout);
}

#endif
