/* cache: freed large blocks kept for reuse, their pattern restored at free.
 * A block written on at least 1/DENSE_RATIO of its pages, or on few enough to
 * fill cheaply, is restored by re-filling those pages (no fault when it is
 * reused); a sparser one by MADV_DONTNEED (the pages go back to the kernel,
 * reads see the pattern, each write faults again). */
#include <string.h>

#include "config.h"
#include "large_state.h"
#include "pagemap.h"
#include "refpage.h"

#define DENSE_RATIO 8
#define CHEAP_FILL_BYTES (256u << 10)

static void cache_remove_at(size_t i)
{
    struct block *b = blocks_find(rm_large.cached[i]);
    rm_large.cache_bytes -= b->mapped;
    stat_set(ST_cache_bytes, rm_large.cache_bytes);
    memmove(&rm_large.cached[i], &rm_large.cached[i + 1],
            (rm_large.ncached - i - 1) * sizeof(uintptr_t));
    rm_large.ncached--;
}

void cache_evict_oldest(void)
{
    struct block *b = blocks_find(rm_large.cached[0]);
    cache_remove_at(0);
    release(b);
}

/* Runs of written pages found by one pagemap scan, kept to re-fill them
 * without a second scan unless there were more than fit. */
#define RESTORE_RUNS 64

struct written_runs {
    size_t count;
    struct {
        uintptr_t start;
        size_t len;
    } run[RESTORE_RUNS];
};

static void keep_run(uintptr_t start, size_t len, void *ctx)
{
    struct written_runs *w = ctx;
    if (w->count < RESTORE_RUNS) {
        w->run[w->count].start = start;
        w->run[w->count].len = len;
    }
    w->count++;
}

static void fill_run(uintptr_t start, size_t len, void *ctx)
{
    memset((void *)start, *(const unsigned char *)ctx, len);
}

/* Bring a cached block's written pages back to the pattern, choosing how by
 * their number. False if the pagemap cannot be read. */
static bool restore_pattern(struct block *b)
{
    size_t npages = b->mapped / os_page_size();
    struct written_runs w = {0};
    long written = pagemap_written(b->start, npages, keep_run, &w);
    if (written < 0)
        return false;
    if (written == 0)
        return true;
    if ((size_t)written * DENSE_RATIO >= npages ||
        (size_t)written * os_page_size() <= CHEAP_FILL_BYTES) {
        if (w.count > RESTORE_RUNS)
            pagemap_written(b->start, npages, fill_run, &b->pattern);
        else
            for (size_t i = 0; i < w.count; i++)
                fill_run(w.run[i].start, w.run[i].len, &b->pattern);
        stat_add(ST_restored_by_fill, 1);
    } else {
        os_dontneed((void *)b->start, b->mapped);
        stat_add(ST_restored_by_dontneed, 1);
    }
    return true;
}

struct block *cache_take(size_t len, size_t align, unsigned char pattern)
{
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < rm_large.ncached; i++) {
            struct block *b = blocks_find(rm_large.cached[i]);
            /* Reuse only a close fit: a much bigger block would pin memory. */
            if (b->pattern == pattern && b->mapped >= len && b->mapped - len <= len / 4 &&
                (b->start & (align - 1)) == 0 &&
                (best == SIZE_MAX || b->mapped < blocks_find(rm_large.cached[best])->mapped))
                best = i;
        }
        if (best == SIZE_MAX)
            return NULL;
        struct block *b = blocks_find(rm_large.cached[best]);
        cache_remove_at(best);
        /* Restored now rather than at free: a block evicted unused costs
         * nothing but its release. The program may have changed the
         * protection of its pages (a guard page, PROT_READ, PROT_EXEC for a
         * JIT), and refilling them needs write access: a reused block gets
         * the protection of a fresh one first. */
        if (os_protect_data((void *)b->start, b->mapped, b->tag != 0) &&
            (!b->dirty || restore_pattern(b))) {
            b->dirty = false;
            return b;
        }
        release(b);
    }
}

bool cacheable(const struct block *b)
{
    return b->kind == REFMALLOC_BLOCK_REFPAGE && !b->mixed &&
           b->mapped <= config()->cache_limit;
}

void cache_put(struct block *b)
{
    /* free_guard: an access after free faults, as in glibc where a large
     * block is unmapped at free; cache_take gives the protection back. A
     * block that cannot be protected is released, which faults too. */
    if (config()->free_guard && !os_protect_none((void *)b->start, b->mapped, b->tag != 0)) {
        b->state = BLOCK_CACHED;   /* no longer counted live: release must not uncount it */
        release(b);
        return;
    }
    uintptr_t start = b->start;
    size_t mapped = b->mapped;
    if (rm_large.ncached == CACHE_SLOTS)
        cache_evict_oldest();
    b = blocks_find(start);
    b->state = BLOCK_CACHED;
    rm_large.cached[rm_large.ncached++] = start;
    rm_large.cache_bytes += mapped;
    while (rm_large.cache_bytes > config()->cache_limit && rm_large.ncached > 0)
        cache_evict_oldest();
    stat_set(ST_cache_bytes, rm_large.cache_bytes);
}

bool quarantine(struct block *b)
{
    if (!cacheable(b))
        return false;
    size_t chunk = refpage_chunk_for(rm_large.refpage_mapped, b->mapped);
    size_t need = refpage_mappings_for(b->mapped, chunk) + 1;
    unsigned char pattern = config()->free_pattern_on ? config()->free_pattern : b->pattern;
    unsigned tag = pick_tag(b->start, b->capacity, b->tag);
    if (!budget_allows(need) ||
        refpage_map(b->start, b->mapped, pattern, tag, chunk) != REFPAGE_OK)
        return false;   /* the caller releases the whole range, whatever state it is in */
    account_mappings((long)need - (long)b->mappings);
    b->mappings = (uint32_t)need;
    b->pattern = pattern;
    b->tag = (uint8_t)tag;
    b->zeroed = false;
    return true;
}
