/* large: the top of the large-block manager: start-up, allocation, free,
 * the queries and fork. With resize.c it owns the large lock (every public
 * function takes it once and releases it at its one exit) and the eviction
 * policy: mem says whether a block fits, cache keeps freed blocks, and here
 * cached blocks are dropped to make room. */
#include "large_internal.h"

#include <errno.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "debug.h"
#include "inspect.h"
#include "large_lock.h"
#include "mte.h"
#include "os.h"
#include "out.h"
#include "pagemap.h"
#include "reads.h"
#include "refpage.h"
#include "region.h"
#include "stats.h"

static bool warned[ST_COUNT];

static void warn_once(enum rm_stat reason, const char *text)
{
    if (config()->verbose >= 1 && !warned[reason]) {
        warned[reason] = true;
        out_diag(text, NULL, NULL);
    }
}

void large_trace(const char *op, uintptr_t addr, size_t size)
{
    if (config()->verbose < 2)
        return;
    struct out o;
    out_init(&o, 2);
    out_str(&o, "refmalloc: ");
    out_str(&o, op);
    out_str(&o, " ");
    out_hex(&o, addr);
    out_str(&o, " ");
    out_u64(&o, size);
    out_str(&o, "\n");
    out_flush(&o);
}

/* The region and the limits are set up at the first large block, not at
 * start-up: a program that never makes one (most short-lived commands) pays
 * for none of it, and one that lowers RLIMIT_AS before its first large
 * block is measured with its limit. Before a seccomp filter it is done at
 * once (large_before_sandbox): the filter may refuse what it needs. Under
 * the lock; idempotent. */
static void start_once(void)
{
    if (mem_start() && !mem_region_ok())
        warn_once(ST_fallback_region, "cannot reserve an address range for large blocks; "
                  "they go to the next allocator, filled eagerly");
}

/* ---- seccomp ---------------------------------------------------------------- */

/* The pattern files are made this long at least before a filter, since none
 * can be made after it (nor the pagemap read, nor /proc/self/maps): a 1 GiB
 * block then takes 256 mappings, and the files of the four patterns hold
 * 16 MiB. */
#define SANDBOX_CHUNK ((size_t)4 << 20)

static bool sandboxed;   /* under the lock */

void large_before_sandbox(void)
{
    large_lock();
    if (!sandboxed) {
        sandboxed = true;
        start_once();
        mem_before_sandbox();
        const struct rm_config *c = config();
        unsigned char patterns[4] = {c->pattern, 0};
        size_t n = 2;
        if (c->free_pattern_on)
            patterns[n++] = c->free_pattern;
        if (c->site_list[0])
            patterns[n++] = c->site_pattern;
        size_t chunk = SANDBOX_CHUNK < c->max_chunk ? SANDBOX_CHUNK : c->max_chunk;
        bool files = refpage_before_sandbox(patterns, n, chunk);
        pagemap_before_sandbox();
        reads_before_sandbox();
        if (c->verbose >= 1 || !files)
            out_diag(files ? "a seccomp filter is being installed: pattern files made, "
                             "/proc no longer read, freed blocks restored whole"
                           : "a seccomp filter is being installed and a pattern file "
                             "could not be made: its blocks are filled eagerly",
                     NULL, NULL);
    }
    large_unlock();
}

/* An allocation counter and its _bytes twin, which follows it in RM_STATS. */
_Static_assert(ST_large_bytes == ST_large_allocs + 1 && ST_refpage_bytes == ST_refpage_allocs + 1 &&
               ST_eager_bytes == ST_eager_allocs + 1 && ST_zero_bytes == ST_zero_allocs + 1,
               "allocation counters are followed by their byte counters");
static void count_alloc(enum rm_stat allocs, size_t bytes)
{
    stat_add(allocs, 1);
    stat_add((enum rm_stat)(allocs + 1), bytes);
}

/* ---- giving blocks back and the eviction policy ------------------------- */

void large_release(struct block *b)
{
    mem_unmap(b);
    large_trace("release", b->start, b->mapped);
    blocks_remove(b);
}

static void evict_oldest(void)
{
    large_release(cache_pop_oldest());
}

bool large_budget_allows(size_t need)
{
    mem_budget_check();
    while (!mem_budget_fits(need)) {
        if (cache_count() == 0)
            return false;
        evict_oldest();
    }
    return true;
}

uintptr_t large_reserve_range(size_t len, size_t align, bool room, size_t *got)
{
    uintptr_t at = mem_reserve_range(len, align, room, got);
    while (!at && cache_count() > 0 && len <= region_size()) {
        evict_oldest();
        at = mem_reserve_range(len, align, false, got);
    }
    return at;
}

void large_address_limit_lowering(size_t limit)
{
    large_lock();
    /* Not started yet: nothing is reserved, and the start will read the limit. */
    if (mem_region_ok() && limit != SIZE_MAX) {
        /* The reservation counts against the new limit: cached blocks go
         * first, then mem gives back what the limit leaves no room for. */
        while (cache_count() > 0)
            evict_oldest();
        size_t cut = mem_trim_for_limit(limit);
        if (cut)
            large_trace("trim", region_base() + region_size(), cut);
    }
    large_unlock();
}

void large_address_limit_changed(void)
{
    large_lock();
    mem_address_limit_reread();
    large_unlock();
}

/* ---- fresh memory ---------------------------------------------------------- */

enum fresh large_map_fresh(struct block *b, uintptr_t at, size_t len, bool zero)
{
    if ((!zero || b->tag) && config()->refpages) {
        size_t chunk = mem_chunk_for(len);
        size_t need = mem_refpage_need(len, chunk);
        enum rm_stat reason = ST_fallback_budget;
        if (large_budget_allows(need)) {
            enum refpage_result r = mem_map_refpage(b, at, len, zero ? 0 : b->pattern, chunk,
                                                    need);
            if (r == REFPAGE_OK) {
                /* Pattern pages only: a zero block's are initialized. */
                if (!zero)
                    reads_arm(b->start, at, len);
                return FRESH_REFPAGE;
            }
            reason = r == REFPAGE_NO_MEMFD ? ST_fallback_memfd : ST_fallback_map;
            if (r == REFPAGE_MAP_FAILED)
                mem_recount();   /* at the process's limit? */
        }
        stat_add(reason, 1);
        warn_once(reason, reason == ST_fallback_budget
                  ? "mapping budget reached; large blocks are now filled eagerly"
                  : reason == ST_fallback_memfd
                  ? "cannot create the pattern memfd; large blocks are filled eagerly"
                  : "mapping a pattern chunk failed; that block is filled eagerly");
    }
    if (!mem_map_anon(b, at, len))
        return FRESH_FAILED;
    return zero ? FRESH_ZERO : FRESH_EAGER;
}

static enum refmalloc_block_kind kind_of(enum fresh f)
{
    return f == FRESH_REFPAGE ? REFMALLOC_BLOCK_REFPAGE
         : f == FRESH_ZERO ? REFMALLOC_BLOCK_ZERO : REFMALLOC_BLOCK_EAGER;
}

/* ---- allocation ------------------------------------------------------------ */

/* A cached block that fits, its pattern restored; NULL if none. Blocks that
 * cannot be restored are released on the way. */
static struct block *reuse_cached(size_t len, size_t align, unsigned char pattern)
{
    struct block *b;
    while ((b = cache_take(len, align, pattern)) && !cache_restore(b))
        large_release(b);
    return b;
}

/* What large_alloc fills after the lock is released: nobody else knows a
 * fresh block yet. */
struct pending_fill {
    enum fresh f;
    bool due;
    struct block b;
};

/* large_alloc under the lock: the block, or NULL with *unavailable or
 * errno set. */
static void *alloc_locked(size_t size, size_t len, size_t align, bool zero,
                          unsigned char pattern, const struct rm_site_name *site,
                          bool *unavailable, struct pending_fill *fill)
{
    start_once();
    /* Sizes the region could never hold, or that the kernel's overcommit
     * policy refuses in one mapping (each chunk mapping would pass on its
     * own): the next allocator gives the answer glibc gives, at once. */
    if (!mem_region_ok() || len > region_size() || len > mem_overcommit_limit()) {
        *unavailable = true;
        return NULL;
    }
    struct block *b = zero ? NULL : reuse_cached(len, align, pattern);
    if (b) {
        b->state = BLOCK_LIVE;
        b->reused = true;
        b->size = b->counted = size;
        b->site = site;
        mem_live_change((long)b->refpage);
        stat_add(ST_cache_hits, 1);
        /* Counted under its kind as a fresh block is (the cache holds only
         * refpage blocks): large_allocs = refpage + eager + zero allocs. */
        RM_ASSERT(b->kind == REFMALLOC_BLOCK_REFPAGE);
        count_alloc(ST_refpage_allocs, size);
        count_alloc(ST_large_allocs, size);
        stat_add(ST_live_large_blocks, 1);
        mem_seal_slack(b, true);
        large_trace("reuse", b->start, size);
        return mem_pointer(b);
    }
    if (!zero)
        stat_add(ST_cache_misses, 1);

    /* Past RLIMIT_AS the next allocator meets the limit as the kernel says.
     * Even an eager block costs two mappings (itself and the split of the
     * reservation): with none left, the next allocator's own mmap serves it,
     * which the kernel can merge with its neighbours. */
    size_t capacity;
    uintptr_t at = 0;
    if (mem_address_limit_reached(len)) {
        /* nothing to count: the program is at its own limit */
    } else if (!large_budget_allows(MEM_EAGER_MAPPINGS)) {
        stat_add(ST_fallback_budget, 1);
        warn_once(ST_fallback_budget, "mapping budget reached; large blocks now come from "
                  "the next allocator, filled eagerly");
    } else if (!(at = large_reserve_range(len, align, false, &capacity))) {
        stat_add(ST_fallback_region, 1);
        warn_once(ST_fallback_region, "reserved address range full; large blocks go to "
                  "the next allocator, filled eagerly");
    }
    if (!at) {
        *unavailable = true;
        return NULL;
    }
    /* Room in the table before the memory: the insert below cannot fail
     * then (evictions on the way only leave tombstones). */
    if (!blocks_reserve(1)) {
        region_free(at, capacity);
        errno = ENOMEM;
        return NULL;
    }
    struct block nb = {.start = at, .size = size, .counted = size, .mapped = len,
                       .state = BLOCK_LIVE, .pattern = pattern, .site = site};
    nb.capacity = capacity;
    nb.tag = (uint8_t)mem_pick_tag(at, capacity, 0);
    enum fresh f = large_map_fresh(&nb, at, len, zero);
    if (f == FRESH_FAILED) {
        /* Even anonymous memory was refused (the process's mapping count
         * at vm.max_map_count, say): the next allocator may still succeed,
         * as glibc's does by growing its heap. */
        region_free(at, capacity);
        *unavailable = true;
        return NULL;
    }
    nb.kind = (uint8_t)kind_of(f);
    nb.zeroed = zero && f == FRESH_REFPAGE;
    b = blocks_insert(&nb);
    RM_ASSERT(b != NULL);
    mem_live_change((long)b->refpage);
    count_alloc(f == FRESH_REFPAGE ? ST_refpage_allocs
                : f == FRESH_ZERO ? ST_zero_allocs : ST_eager_allocs, size);
    count_alloc(ST_large_allocs, size);
    stat_add(ST_live_large_blocks, 1);
    large_trace("alloc", at, size);
    *fill = (struct pending_fill){.f = f, .due = true, .b = *b};
    return mem_pointer(b);
}

void *large_alloc(size_t size, size_t align, bool zero, unsigned char pattern,
                  const struct rm_site_name *site, bool *unavailable)
{
    *unavailable = false;
    size_t page = os_page_size();
    if (align < page)
        align = page;
    void *p = NULL;
    struct pending_fill fill = {.due = false};
    if (size > (SIZE_MAX >> 2)) {
        errno = ENOMEM;
    } else {
        size_t len = mem_page_round(size ? size : 1);
        if (!zero)
            reads_prepare();   /* before the lock: it may start a thread */
        large_lock();
        p = alloc_locked(size, len, align, zero, pattern, site, unavailable, &fill);
        large_unlock();
    }
    if (fill.due) {
        /* Filled outside the lock: nobody else knows this block yet. */
        mem_fill_fresh(&fill.b, fill.b.start, fill.b.mapped, fill.f);
        mem_seal_slack(&fill.b, true);
    }
    return p;
}

/* ---- free ------------------------------------------------------------------ */

void large_bad_pointer(const char *caller, const void *p, const char *why)
{
    out_diag_addr(caller, p, why);
    os_abort();
}

const char *large_live_block(const void *p, struct block **found)
{
    large_lock_assert_held();
    struct block *b = blocks_find(mte_untag(p));
    *found = NULL;
    if (!b || b->state != BLOCK_LIVE)
        return "not a live block of refmalloc (double free or corrupted pointer)";
    if (mte_tag_of(p) != b->tag)
        return "the pointer's memory tag is not the block's: a pointer from an earlier "
               "life of the block (double free or use after free)";
    *found = b;
    return NULL;
}

/* With free_pattern on: map the free pattern's reference pages over a freed
 * block, which then waits in the cache (never reused for other patterns) so
 * that reads after free see the free pattern, as in small blocks. A tagged
 * block is remapped the same way (onto its own pattern without free_pattern)
 * under a new tag, so pointers from its last life fault. */
static bool quarantine(struct block *b)
{
    if (!cache_accepts(b))
        return false;
    size_t chunk = mem_chunk_for(b->mapped);
    size_t need = mem_refpage_need(b->mapped, chunk);
    unsigned char pattern = config()->free_pattern_on ? config()->free_pattern : b->pattern;
    unsigned tag = mem_pick_tag(b->start, b->capacity, b->tag);
    /* On failure the caller releases the whole range, whatever state it is in. */
    return large_budget_allows(need) && mem_remap_refpage(b, pattern, tag, chunk, need);
}

/* Keep a freed block in the cache, evicting the oldest beyond the limits. */
static void keep(struct block *b)
{
    /* A block freed in its first life would give its written pages back
     * (cache_insert): with the cache full, it is released at once instead,
     * as glibc unmaps it, rather than evicting an older block too (1000
     * frees of sparse 1 MiB blocks took 25% longer with both). free_guard:
     * a block that cannot be protected is released, which faults too. */
    if ((b->dirty && !b->reused && !cache_has_room(b->mapped)) ||
        (config()->free_guard && !cache_guard(b))) {
        b->state = BLOCK_CACHED;   /* no longer counted live: release must not uncount it */
        large_release(b);
        return;
    }
    uintptr_t start = b->start;
    if (cache_full())
        evict_oldest();
    cache_insert(blocks_find(start));
    while (cache_bytes() > config()->cache_limit && cache_count() > 0)
        evict_oldest();
}

static void free_block(struct block *b)
{
    stat_add(ST_large_frees, 1);
    stat_sub(ST_live_large_blocks, 1);
    large_trace("free", b->start, b->size);
    if (config()->report[0]) {
        /* The report lists what was written of each freed block. */
        long written = inspect_written_pages(b);
        if (b->kind == REFMALLOC_BLOCK_REFPAGE && written >= 0) {
            stat_add(ST_freed_pages, b->mapped / os_page_size());
            stat_add(ST_freed_pages_written, (uint64_t)written);
        }
        inspect_record_freed(b, written);
    }
    /* Tagged blocks are remapped at once, like the free pattern's
     * quarantine, onto another tag: an access after free faults. */
    bool clean = config()->free_pattern_on || b->tag;
    if (clean ? quarantine(b) : cache_accepts(b)) {
        b->dirty = !clean;
        mem_live_change(-(long)b->refpage);
        keep(b);
    } else {
        large_release(b);
    }
}

void large_free(void *p, const char *caller)
{
    large_lock();
    struct block *b;
    const char *why = large_live_block(p, &b);
    if (!why)
        free_block(b);
    large_unlock();
    if (why)
        large_bad_pointer(caller, p, why);
}

/* ---- introspection ---------------------------------------------------------- */

size_t large_usable(const void *p)
{
    large_lock();
    struct block *b;
    const char *why = large_live_block(p, &b);
    size_t usable = why ? 0 : mem_usable(b);
    large_unlock();
    if (why)
        large_bad_pointer("malloc_usable_size()", p, why);
    return usable;
}

bool large_owns(const void *p)
{
    return region_contains((const void *)mte_untag(p));
}

int large_query(const void *addr, struct refmalloc_block_info *info)
{
    uintptr_t a = mte_untag(addr);
    int r = 0;
    if (region_contains((const void *)a)) {
        large_lock();
        r = inspect_query(a, info);
        large_unlock();
    }
    return r;
}

void large_each_live(inspect_fn *fn, void *ctx)
{
    large_lock();
    inspect_each_live(fn, ctx);
    large_unlock();
}

void large_live_totals(size_t *blocks, size_t *bytes)
{
    large_lock();
    inspect_live_totals(blocks, bytes);
    large_unlock();
}

void large_each_freed(inspect_fn *fn, void *ctx)
{
    large_lock();
    inspect_each_freed(fn, ctx);
    large_unlock();
}

void large_note_site(const void *p, size_t size, const void *site)
{
    if (reads_on())
        reads_site((const void *)mte_untag(p), size, site);
}

void large_copy_begin(void)
{
    reads_quiet_begin();
}

void large_copy_end(void)
{
    reads_quiet_end();
}

/* ---- fork ------------------------------------------------------------------- */

void large_fork_prepare(void)
{
    large_lock();
}

void large_fork_parent(void)
{
    large_unlock();
}

void large_fork_child(void)
{
    large_lock_reset();
    pagemap_fork_child();
    inspect_forget_freed();   /* the child reports only what it frees */
}
