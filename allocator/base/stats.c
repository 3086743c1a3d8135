#include "stats.h"

#include "refmalloc.h"

_Atomic uint64_t rm_stat_values[ST_COUNT];
__thread struct rm_thread_stats rm_thread_stats;

const char *const rm_stat_names[ST_COUNT] = {
#define RM_STAT_NAME(name, kind, text) #name,
    RM_STATS(RM_STAT_NAME)
#undef RM_STAT_NAME
};

/* refmalloc_get_stats copies the counters in enum order after the version. */
#define RM_STAT_CHECK(name, kind, text) \
    _Static_assert(offsetof(struct refmalloc_stats, name) == \
                   sizeof(uint64_t) * (1 + ST_##name), "stats layout: " #name);
RM_STATS(RM_STAT_CHECK)
#undef RM_STAT_CHECK
_Static_assert(sizeof(struct refmalloc_stats) == sizeof(uint64_t) * (1 + ST_COUNT),
               "stats layout: size");

void stats_flush_thread(void)
{
    struct rm_thread_stats *t = &rm_thread_stats;
    stat_add(ST_small_allocs, t->allocs);
    stat_add(ST_small_bytes, t->bytes);
    stat_add(ST_small_frees, t->frees);
    t->allocs = t->bytes = t->frees = 0;
    t->events = 0;
}

void stats_reset_events(void)
{
    rm_thread_stats = (struct rm_thread_stats){0};
#define EVENT 1
#define FALLBACK 1
#define GAUGE 0
#define RM_STAT_RESET(name, kind, text) \
    if (kind)                     \
        stat_set(ST_##name, 0);
    RM_STATS(RM_STAT_RESET)
#undef RM_STAT_RESET
#undef EVENT
#undef FALLBACK
#undef GAUGE
}
