/* stats: the counters behind refmalloc_get_stats() and the report.
 * One list (RM_STATS) gives the enum, the JSON names and the public struct
 * layout check, so the three cannot drift apart. */
#ifndef RM_STATS_H
#define RM_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RM_STATS(X) \
    X(small_allocs) X(small_bytes) X(large_allocs) X(large_bytes) \
    X(refpage_allocs) X(refpage_bytes) X(eager_allocs) X(eager_bytes) \
    X(zero_allocs) X(zero_bytes) X(cache_hits) X(cache_misses) X(cache_bytes) \
    X(small_frees) X(large_frees) X(realloc_in_place) X(realloc_moved) \
    X(live_refpage_bytes) X(peak_refpage_bytes) X(live_large_blocks) \
    X(mappings_in_use) X(mapping_budget) X(chunk_bytes) X(pattern_bytes) \
    X(fallback_budget) X(fallback_memfd) X(fallback_region) X(fallback_map) \
    X(memfd_recreated) X(freed_pages) X(freed_pages_written) \
    X(restored_by_dontneed) X(restored_by_fill)

enum rm_stat {
#define RM_STAT_ENUM(name) ST_##name,
    RM_STATS(RM_STAT_ENUM)
#undef RM_STAT_ENUM
    ST_COUNT
};

extern _Atomic uint64_t rm_stat_values[ST_COUNT];
extern const char *const rm_stat_names[ST_COUNT];

static inline void stat_add(enum rm_stat s, uint64_t v)
{
    atomic_fetch_add_explicit(&rm_stat_values[s], v, memory_order_relaxed);
}

static inline void stat_sub(enum rm_stat s, uint64_t v)
{
    atomic_fetch_sub_explicit(&rm_stat_values[s], v, memory_order_relaxed);
}

static inline void stat_set(enum rm_stat s, uint64_t v)
{
    atomic_store_explicit(&rm_stat_values[s], v, memory_order_relaxed);
}

static inline uint64_t stat_get(enum rm_stat s)
{
    return atomic_load_explicit(&rm_stat_values[s], memory_order_relaxed);
}

/* Small-block counters are kept per thread and folded into the shared ones
 * every RM_STATS_BATCH events: a shared atomic on every malloc would make
 * threads fight over one cache line. Totals may lag by that much per thread. */
#define RM_STATS_BATCH 256

struct rm_thread_stats {
    uint32_t events;
    uint64_t allocs, bytes, frees;
};

extern __thread struct rm_thread_stats rm_thread_stats;

void stats_flush_thread(void);

static inline void stat_small_alloc(size_t bytes)
{
    struct rm_thread_stats *t = &rm_thread_stats;
    t->allocs++;
    t->bytes += bytes;
    if (++t->events >= RM_STATS_BATCH)
        stats_flush_thread();
}

static inline void stat_small_free(void)
{
    struct rm_thread_stats *t = &rm_thread_stats;
    t->frees++;
    if (++t->events >= RM_STATS_BATCH)
        stats_flush_thread();
}

#endif
