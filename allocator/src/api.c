/* api: the public functions of refmalloc.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "context.h"
#include "large.h"
#include "mte.h"
#include "os.h"
#include "pagemap.h"
#include "refmalloc.h"
#include "report.h"
#include "stats.h"

#ifndef REFMALLOC_VERSION
#define REFMALLOC_VERSION "0"
#endif

#define RM_API __attribute__((visibility("default")))

RM_API int refmalloc_get_stats(struct refmalloc_stats *out, size_t size)
{
    uint64_t values[1 + ST_COUNT];
    stats_flush_thread();
    values[0] = REFMALLOC_STATS_VERSION;
    for (int i = 0; i < ST_COUNT; i++)
        values[1 + i] = stat_get((enum rm_stat)i);
    memcpy(out, values, size < sizeof values ? size : sizeof values);
    return 0;
}

RM_API int refmalloc_query(const void *addr, struct refmalloc_block_info *info)
{
    return large_query(addr, info);
}

RM_API long refmalloc_page_states(const void *addr, size_t len, unsigned char *states)
{
    size_t page = os_page_size();
    uintptr_t a = mte_untag(addr);
    uintptr_t start = a & ~(uintptr_t)(page - 1);
    uintptr_t end = a + len;
    if (end < a || !states) {
        errno = EINVAL;
        return -1;
    }
    size_t npages = len == 0 ? 0 : (end - start + page - 1) / page;
    if (pagemap_states(start, npages, states) != 0)
        return -1;
    return (long)npages;
}

RM_API int refmalloc_write_report(const char *path)
{
    return report_write(path ? path : config()->report);
}

RM_API unsigned char refmalloc_pattern(void)
{
    return config()->pattern;
}

RM_API const char *refmalloc_version(void)
{
    return REFMALLOC_VERSION;
}

RM_API int refmalloc_set_context(const char *name)
{
    return context_set(name);
}
