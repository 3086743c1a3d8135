/* stats: the counters behind refmalloc_get_stats() and the report.
 * One list (REFMALLOC_STATS in refmalloc.h) gives the public struct, the
 * enum, the JSON names and Python's fields, so they cannot drift apart. */
#ifndef RM_STATS_H
#define RM_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "refmalloc.h"

/* The counters of refmalloc.h: X(name, kind, text), kind EVENT, GAUGE or
 * FALLBACK (an EVENT shown among the fallbacks). */
#define RM_STATS(X) REFMALLOC_STATS(X)

enum rm_stat {
#define RM_STAT_ENUM(name, kind, text) ST_##name,
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

/* In a forked child: zero the EVENT counters (and the forking thread's
 * pending ones), so that parent and child reports add up. */
void stats_reset_events(void);

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
