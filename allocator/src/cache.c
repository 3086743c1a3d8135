/* A block written on at least 1/DENSE_RATIO of its pages, or on few enough
 * to fill cheaply, is restored by re-filling those pages (no fault when it
 * is reused); a sparser one by MADV_DONTNEED (the pages go back to the
 * kernel, reads see the pattern, each write faults again). */
#include "cache.h"

#include <string.h>

#include "config.h"
#include "debug.h"
#include "large_lock.h"
#include "os.h"
#include "pagemap.h"
#include "reads.h"
#include "refmalloc.h"
#include "stats.h"

#define DENSE_RATIO 8
#define CHEAP_FILL_BYTES (256u << 10)

static struct {
    uintptr_t start[CACHE_SLOTS];   /* starts of cached blocks, oldest first */
    size_t count;
    size_t bytes;                   /* their mapped bytes */
} cache;

size_t cache_count(void)
{
    return cache.count;
}

size_t cache_bytes(void)
{
    return cache.bytes;
}

bool cache_full(void)
{
    return cache.count == CACHE_SLOTS;
}

bool cache_has_room(size_t bytes)
{
    return cache.count < CACHE_SLOTS && cache.bytes + bytes <= config()->cache_limit;
}

bool cache_accepts(const struct block *b)
{
    return b->kind == REFMALLOC_BLOCK_REFPAGE && !b->mixed &&
           b->mapped <= config()->cache_limit;
}

/* Written pages of cached blocks are memory glibc would have given back at
 * free (it unmaps large blocks). A block in its first life gives them back:
 * most are never asked for again at their size (python held 19 MiB more than
 * glibc at its peak, sqlite3 2 MiB). Of blocks the program did reuse, the one
 * freed last keeps them, since a loop freeing a block and asking for the
 * same size again is the case the cache exists for and a re-fill costs less
 * than faulting each page in again; the next newest keep them within
 * cache_resident, counted by mapped bytes (the written ones are not known
 * without a scan). A block that gives them back waits as a fresh one: its
 * reuse needs no restore. */
static void limit_resident(void)
{
    size_t held = 0;
    for (size_t i = cache.count; i-- > 0;) {
        struct block *b = blocks_find(cache.start[i]);
        if (!b->dirty)
            continue;
        if (b->reused && i == cache.count - 1)
            continue;
        if (b->reused && held + b->mapped <= config()->cache_resident) {
            held += b->mapped;
            continue;
        }
        os_dontneed((void *)b->start, b->mapped);
        b->dirty = false;
        stat_add(ST_cache_given_back, 1);
    }
}

void cache_insert(struct block *b)
{
    large_lock_assert_held();
    RM_ASSERT(cache.count < CACHE_SLOTS);
    b->state = BLOCK_CACHED;
    cache.start[cache.count++] = b->start;
    cache.bytes += b->mapped;
    stat_set(ST_cache_bytes, cache.bytes);
    limit_resident();
}

static struct block *remove_at(size_t i)
{
    large_lock_assert_held();
    RM_ASSERT(i < cache.count);
    struct block *b = blocks_find(cache.start[i]);
    RM_ASSERT(b && b->state == BLOCK_CACHED && cache.bytes >= b->mapped);
    cache.bytes -= b->mapped;
    stat_set(ST_cache_bytes, cache.bytes);
    memmove(&cache.start[i], &cache.start[i + 1], (cache.count - i - 1) * sizeof(uintptr_t));
    cache.count--;
    return b;
}

struct block *cache_pop_oldest(void)
{
    return remove_at(0);
}

struct block *cache_take(size_t len, size_t align, unsigned char pattern)
{
    size_t best = SIZE_MAX, best_mapped = 0;
    for (size_t i = 0; i < cache.count; i++) {
        const struct block *b = blocks_find(cache.start[i]);
        /* Reuse only a close fit: a much bigger block would pin memory. */
        if (b->pattern == pattern && b->mapped >= len && b->mapped - len <= len / 4 &&
            (b->start & (align - 1)) == 0 && (best == SIZE_MAX || b->mapped < best_mapped)) {
            best = i;
            best_mapped = b->mapped;
        }
    }
    return best == SIZE_MAX ? NULL : remove_at(best);
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

bool cache_restore(struct block *b)
{
    /* Restored now rather than at free: a block evicted unused costs
     * nothing but its release. The program may have changed the protection
     * of its pages (a guard page, PROT_READ, PROT_EXEC for a JIT), and
     * refilling them needs write access: a reused block gets the protection
     * of a fresh one first. */
    if (!os_protect_data((void *)b->start, b->mapped, b->tag != 0))
        return false;
    if (reads_on()) {
        /* track_reads: every page back to "never touched", the written and
         * the only-read ones alike, so that the block's next life reports
         * its own first touches; a refill would make them written pages. */
        os_dontneed((void *)b->start, b->mapped);
        reads_arm(b->start, b->start, b->mapped);
        stat_add(ST_restored_by_dontneed, 1);
        b->dirty = false;
        return true;
    }
    if (b->dirty && !restore_pattern(b))
        return false;
    b->dirty = false;
    return true;
}

bool cache_guard(struct block *b)
{
    /* free_guard: an access after free faults, as in glibc where a large
     * block is unmapped at free; cache_restore gives the protection back. */
    return os_protect_none((void *)b->start, b->mapped, b->tag != 0);
}
