#include "large.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "config.h"
#include "os.h"
#include "out.h"
#include "pagemap.h"
#include "refpage.h"
#include "region.h"
#include "stats.h"

#define CACHE_SLOTS 64

/* Mappings of a block of anonymous memory: its own and the reservation split. */
#define EAGER_MAPPINGS 2

/* A freed block is restored by re-filling its written pages (no fault when
 * it is reused) when they are at least 1/DENSE_RATIO of it or few enough to
 * fill cheaply; otherwise by MADV_DONTNEED (the pages go back to the kernel,
 * reads see the pattern, each write faults again). */
#define DENSE_RATIO 8
#define CHEAP_FILL_BYTES (256u << 10)

static struct {
    pthread_mutex_t lock;
    bool started;            /* region and budget set up (or tried) */
    bool region_ok;
    size_t budget;           /* mappings we allow ourselves */
    size_t mappings;         /* mappings accounted to blocks */
    size_t refpage_mapped;   /* reference-page bytes mapped, live or cached */
    uintptr_t cached[CACHE_SLOTS];  /* starts of cached blocks, oldest first */
    size_t ncached;
    size_t cache_bytes;
    struct refmalloc_block_info *freed;  /* ring of FREED_RECORDS */
    size_t nfreed;                       /* blocks ever recorded */
    bool warned[ST_COUNT];
} large = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t page_round(size_t n)
{
    size_t page = os_page_size();
    return (n + page - 1) & ~(page - 1);
}

static void warn_once(enum rm_stat reason, const char *text)
{
    if (config()->verbose >= 1 && !large.warned[reason]) {
        large.warned[reason] = true;
        out_diag(text, NULL, NULL);
    }
}

static void trace(const char *op, uintptr_t addr, size_t size)
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

static void start_once(void)
{
    if (large.started)
        return;
    large.started = true;
    large.region_ok = region_init(config()->reserve);
    size_t budget = config()->max_mappings;
    if (budget == 0) {
        long long max = os_read_number("/proc/sys/vm/max_map_count");
        /* A quarter of the process limit: the program and its libraries
         * need the rest. */
        budget = max > 0 ? (size_t)max / 4 : 16384;
    }
    large.budget = budget;
    stat_set(ST_mapping_budget, budget);
    if (!large.region_ok)
        warn_once(ST_fallback_region, "cannot reserve an address range for large blocks; "
                  "they go to the next allocator, filled eagerly");
}

static void account_mappings(long delta)
{
    large.mappings += (size_t)delta;
    stat_set(ST_mappings_in_use, large.mappings);
}

/* Reference-page bytes of live blocks, for the statistics. The mapped total
 * (live and cached), which sizes the chunks, is large.refpage_mapped. */
static void live_refpage_change(const struct block *b, long delta)
{
    if (b->kind != REFMALLOC_BLOCK_REFPAGE || delta == 0)
        return;
    stat_add(ST_live_refpage_bytes, (uint64_t)delta);
    uint64_t live = stat_get(ST_live_refpage_bytes);
    if (delta > 0 && live > stat_get(ST_peak_refpage_bytes))
        stat_set(ST_peak_refpage_bytes, live);
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

/* ---- giving blocks back ------------------------------------------------ */

static void release(struct block *b)
{
    os_reserve_fixed((void *)b->start, b->capacity);
    region_free(b->start, b->capacity);
    account_mappings(-(long)b->mappings);
    if (b->kind == REFMALLOC_BLOCK_REFPAGE)
        large.refpage_mapped -= b->mapped;
    if (b->state == BLOCK_LIVE)
        live_refpage_change(b, -(long)b->mapped);
    trace("release", b->start, b->mapped);
    blocks_remove(b);
}

static void cache_remove_at(size_t i)
{
    struct block *b = blocks_find(large.cached[i]);
    large.cache_bytes -= b->mapped;
    stat_set(ST_cache_bytes, large.cache_bytes);
    memmove(&large.cached[i], &large.cached[i + 1],
            (large.ncached - i - 1) * sizeof(uintptr_t));
    large.ncached--;
}

static void cache_evict_oldest(void)
{
    struct block *b = blocks_find(large.cached[0]);
    cache_remove_at(0);
    release(b);
}

/* Make room for `need` more mappings by dropping cached blocks. */
static bool budget_allows(size_t need)
{
    while (large.mappings + need > large.budget && large.ncached > 0)
        cache_evict_oldest();
    return large.mappings + need <= large.budget;
}

/* ---- mapping fresh memory ------------------------------------------------ */

enum fresh { FRESH_REFPAGE, FRESH_EAGER, FRESH_ZERO, FRESH_FAILED };

/* Map [at, at+len) with fresh memory for block b: zero pages, reference
 * pages, or anonymous memory the caller must fill (FRESH_EAGER). */
static enum fresh map_fresh(struct block *b, uintptr_t at, size_t len, bool zero)
{
    if (!zero && config()->refpages) {
        size_t chunk = refpage_chunk_for(large.refpage_mapped, len);
        size_t need = refpage_mappings_for(len, chunk) + 1;
        enum rm_stat reason = ST_fallback_budget;
        if (budget_allows(need)) {
            enum refpage_result r = refpage_map(at, len, b->pattern, chunk);
            if (r == REFPAGE_OK) {
                b->mappings += (uint32_t)need;
                account_mappings((long)need);
                return FRESH_REFPAGE;
            }
            reason = r == REFPAGE_NO_MEMFD ? ST_fallback_memfd : ST_fallback_map;
        }
        stat_add(reason, 1);
        warn_once(reason, reason == ST_fallback_budget
                  ? "mapping budget reached; large blocks are now filled eagerly"
                  : reason == ST_fallback_memfd
                  ? "cannot create the pattern memfd; large blocks are filled eagerly"
                  : "mapping a pattern chunk failed; that block is filled eagerly");
    }
    if (!os_map_anon_fixed((void *)at, len)) {
        os_reserve_fixed((void *)at, len);
        return FRESH_FAILED;
    }
    b->mappings += EAGER_MAPPINGS;
    account_mappings(EAGER_MAPPINGS);
    return zero ? FRESH_ZERO : FRESH_EAGER;
}

static enum refmalloc_block_kind kind_of(enum fresh f)
{
    return f == FRESH_REFPAGE ? REFMALLOC_BLOCK_REFPAGE
         : f == FRESH_ZERO ? REFMALLOC_BLOCK_ZERO : REFMALLOC_BLOCK_EAGER;
}

/* ---- allocation ------------------------------------------------------------ */

static struct block *cache_take(size_t len, size_t align, unsigned char pattern)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < large.ncached; i++) {
        struct block *b = blocks_find(large.cached[i]);
        /* Reuse only a close fit: a much bigger block would pin memory. */
        if (b->pattern == pattern && b->mapped >= len && b->mapped - len <= len / 4 &&
            (b->start & (align - 1)) == 0 &&
            (best == SIZE_MAX || b->mapped < blocks_find(large.cached[best])->mapped))
            best = i;
    }
    if (best == SIZE_MAX)
        return NULL;
    struct block *b = blocks_find(large.cached[best]);
    cache_remove_at(best);
    return b;
}

/* Room after a block lets realloc grow it in place. */
static size_t capacity_for(size_t len)
{
    return len <= (SIZE_MAX >> 3) ? 2 * len : len;
}

/* Address range for a block of len bytes, with room to grow if there is
 * space: *got says how much was reserved. 0 when the region is full. */
static uintptr_t reserve_range(size_t len, size_t align, size_t *got)
{
    *got = capacity_for(len);
    uintptr_t at = region_alloc(*got, align);
    if (!at) {
        *got = len;
        at = region_alloc(len, align);
    }
    while (!at && large.ncached > 0) {
        cache_evict_oldest();
        at = region_alloc(len, align);
    }
    return at;
}

void *large_alloc(size_t size, size_t align, bool zero, unsigned char pattern,
                  bool *unavailable)
{
    *unavailable = false;
    size_t page = os_page_size();
    if (align < page)
        align = page;
    if (size > (SIZE_MAX >> 2)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = page_round(size ? size : 1);

    pthread_mutex_lock(&large.lock);
    start_once();
    if (!large.region_ok) {
        pthread_mutex_unlock(&large.lock);
        *unavailable = true;
        return NULL;
    }
    struct block *b = zero ? NULL : cache_take(len, align, pattern);
    if (b) {
        b->state = BLOCK_LIVE;
        b->size = size;
        live_refpage_change(b, (long)b->mapped);
        stat_add(ST_cache_hits, 1);
        count_alloc(ST_large_allocs, size);
        stat_add(ST_live_large_blocks, 1);
        uintptr_t start = b->start;
        trace("reuse", start, size);
        pthread_mutex_unlock(&large.lock);
        return (void *)start;
    }
    if (!zero)
        stat_add(ST_cache_misses, 1);

    /* Even an eager block costs two mappings (itself and the split of the
     * reservation). With none left, the next allocator's own mmap serves it,
     * which the kernel can merge with its neighbours. */
    if (!budget_allows(EAGER_MAPPINGS)) {
        stat_add(ST_fallback_budget, 1);
        warn_once(ST_fallback_budget, "mapping budget reached; large blocks are now filled "
                  "eagerly");
        pthread_mutex_unlock(&large.lock);
        *unavailable = true;
        return NULL;
    }
    size_t capacity;
    uintptr_t at = reserve_range(len, align, &capacity);
    if (!at) {
        stat_add(ST_fallback_region, 1);
        warn_once(ST_fallback_region, "reserved address range full; large blocks go to "
                  "the next allocator, filled eagerly");
        pthread_mutex_unlock(&large.lock);
        *unavailable = true;
        return NULL;
    }
    struct block nb = {.start = at, .size = size, .mapped = len, .state = BLOCK_LIVE,
                       .pattern = pattern};
    nb.capacity = capacity;
    enum fresh f = map_fresh(&nb, at, len, zero);
    if (f == FRESH_FAILED) {
        region_free(at, capacity);
        pthread_mutex_unlock(&large.lock);
        errno = ENOMEM;
        return NULL;
    }
    nb.kind = (uint8_t)kind_of(f);
    b = blocks_insert(&nb);
    if (!b) {
        os_reserve_fixed((void *)at, len);
        region_free(at, capacity);
        account_mappings(-(long)nb.mappings);
        pthread_mutex_unlock(&large.lock);
        errno = ENOMEM;
        return NULL;
    }
    if (f == FRESH_REFPAGE)
        large.refpage_mapped += len;
    live_refpage_change(b, (long)len);
    count_alloc(f == FRESH_REFPAGE ? ST_refpage_allocs
                : f == FRESH_ZERO ? ST_zero_allocs : ST_eager_allocs, size);
    count_alloc(ST_large_allocs, size);
    stat_add(ST_live_large_blocks, 1);
    trace("alloc", at, size);
    pthread_mutex_unlock(&large.lock);
    /* Filled outside the lock: nobody else knows this block yet. */
    if (f == FRESH_EAGER)
        memset((void *)at, pattern, len);
    return (void *)at;
}

/* ---- free ------------------------------------------------------------------ */

_Noreturn static void bad_pointer(const char *caller, const void *p)
{
    out_diag_addr(caller, p, "not a live block of refmalloc (double free or corrupted pointer)");
    os_abort();
}

/* Look up a live block or abort: the program has a bug we must not hide. */
static struct block *live_block(const void *p, const char *caller)
{
    struct block *b = blocks_find((uintptr_t)p);
    if (!b || b->state != BLOCK_LIVE) {
        pthread_mutex_unlock(&large.lock);
        bad_pointer(caller, p);
    }
    return b;
}

static void fill_run(uintptr_t start, size_t len, void *ctx)
{
    memset((void *)start, *(const unsigned char *)ctx, len);
}

/* Pages of b the program wrote, -1 if the pagemap cannot be read. */
static long written_pages(const struct block *b)
{
    size_t npages = b->mapped / os_page_size();
    if (b->kind != REFMALLOC_BLOCK_REFPAGE)
        return (long)npages;   /* anonymous blocks were filled or zeroed whole */
    return pagemap_written(b->start, npages, NULL, NULL);
}

static void block_info(const struct block *b, long written, struct refmalloc_block_info *info)
{
    size_t npages = b->mapped / os_page_size();
    *info = (struct refmalloc_block_info){
        .start = (void *)b->start, .size = b->size, .usable = b->mapped, .pages = npages,
        .pages_written = written < 0 ? 0 : (size_t)written,
        .pages_pattern = written < 0 ? 0 : npages - (size_t)written,
        .kind = b->kind, .pattern = b->pattern};
}

/* Bring a freed reference-page block with `written` written pages back to
 * the pattern, choosing how by their number. False if it cannot be cached. */
static bool restore_pattern(struct block *b, long written)
{
    size_t npages = b->mapped / os_page_size();
    if (written < 0 || b->kind != REFMALLOC_BLOCK_REFPAGE || b->mixed ||
        b->mapped > config()->cache_limit)
        return false;
    if (written == 0)
        return true;
    if ((size_t)written * DENSE_RATIO >= npages ||
        (size_t)written * os_page_size() <= CHEAP_FILL_BYTES) {
        pagemap_written(b->start, npages, fill_run, &b->pattern);
        stat_add(ST_restored_by_fill, 1);
    } else {
        os_dontneed((void *)b->start, b->mapped);
        stat_add(ST_restored_by_dontneed, 1);
    }
    return true;
}

/* The last FREED_RECORDS freed blocks, for the report: how much of each the
 * program wrote. Kept in memory of its own, made on the first free. */
#define FREED_RECORDS 4096

static void record_freed(const struct block *b, long written)
{
    if (!large.freed) {
        large.freed = os_alloc_meta(FREED_RECORDS * sizeof *large.freed);
        if (!large.freed)
            return;
    }
    block_info(b, written, &large.freed[large.nfreed++ % FREED_RECORDS]);
}

void large_each_freed(void (*fn)(const struct refmalloc_block_info *info, void *ctx), void *ctx)
{
    pthread_mutex_lock(&large.lock);
    size_t n = large.nfreed < FREED_RECORDS ? large.nfreed : FREED_RECORDS;
    for (size_t i = large.nfreed - n; large.freed && i < large.nfreed; i++)
        fn(&large.freed[i % FREED_RECORDS], ctx);
    pthread_mutex_unlock(&large.lock);
}

static void cache_put(struct block *b)
{
    uintptr_t start = b->start;
    size_t mapped = b->mapped;
    if (large.ncached == CACHE_SLOTS)
        cache_evict_oldest();
    b = blocks_find(start);
    b->state = BLOCK_CACHED;
    large.cached[large.ncached++] = start;
    large.cache_bytes += mapped;
    while (large.cache_bytes > config()->cache_limit && large.ncached > 0)
        cache_evict_oldest();
    stat_set(ST_cache_bytes, large.cache_bytes);
}

void large_free(void *p, const char *caller)
{
    pthread_mutex_lock(&large.lock);
    struct block *b = live_block(p, caller);
    stat_add(ST_large_frees, 1);
    stat_sub(ST_live_large_blocks, 1);
    trace("free", b->start, b->size);
    long written = written_pages(b);
    if (b->kind == REFMALLOC_BLOCK_REFPAGE && written >= 0) {
        stat_add(ST_freed_pages, b->mapped / os_page_size());
        stat_add(ST_freed_pages_written, (uint64_t)written);
    }
    record_freed(b, written);
    if (restore_pattern(b, written)) {
        live_refpage_change(b, -(long)b->mapped);
        cache_put(b);
    } else {
        release(b);
    }
    pthread_mutex_unlock(&large.lock);
}

/* ---- realloc --------------------------------------------------------------- */

/* Map [b->start + b->mapped, + grow) freshly, filling eager parts. */
static bool map_tail(struct block *b, size_t grow)
{
    uintptr_t at = b->start + b->mapped;
    enum fresh f = map_fresh(b, at, grow, false);
    if (f == FRESH_FAILED)
        return false;
    if (f == FRESH_EAGER)
        memset((void *)at, b->pattern, grow);
    if (f == FRESH_REFPAGE) {
        large.refpage_mapped += grow;
        live_refpage_change(b, (long)grow);
    }
    if ((b->kind == REFMALLOC_BLOCK_REFPAGE) != (f == FRESH_REFPAGE))
        b->mixed = true;
    b->mapped += grow;
    return true;
}

static void copy_run(uintptr_t start, size_t len, void *ctx)
{
    const uintptr_t *delta = ctx;
    memcpy((void *)(start + *delta), (const void *)start, len);
}

/* Build nb (start and capacity set) as a copy of old grown to len bytes, on
 * fresh memory. When both are reference pages only the pages the program
 * wrote are copied: the others hold the pattern on both sides. */
static bool copy_into(struct block *nb, const struct block *old, size_t len)
{
    bool pure = old->kind == REFMALLOC_BLOCK_REFPAGE && !old->mixed;
    nb->mapped = 0;
    nb->mappings = 0;
    nb->mixed = false;
    enum fresh f = map_fresh(nb, nb->start, len, !pure);
    if (f == FRESH_FAILED)
        return false;
    nb->mapped = len;
    uintptr_t delta = nb->start - old->start;
    if (f == FRESH_REFPAGE) {
        nb->kind = REFMALLOC_BLOCK_REFPAGE;
        large.refpage_mapped += len;
        live_refpage_change(nb, (long)len);
        if (pagemap_written(old->start, old->mapped / os_page_size(), copy_run, &delta) < 0)
            memcpy((void *)nb->start, (const void *)old->start, old->mapped);
    } else {
        nb->kind = REFMALLOC_BLOCK_EAGER;
        memcpy((void *)nb->start, (const void *)old->start, old->mapped);
        memset((void *)(nb->start + old->mapped), nb->pattern, len - old->mapped);
    }
    return true;
}

/* Give up a block's range and accounting once its content lives elsewhere. */
static void drop_range(const struct block *b)
{
    os_reserve_fixed((void *)b->start, b->capacity);
    region_free(b->start, b->capacity);
    account_mappings(-(long)b->mappings);
    if (b->kind == REFMALLOC_BLOCK_REFPAGE) {
        large.refpage_mapped -= b->mapped;
        live_refpage_change(b, -(long)b->mapped);
    }
}

/* Grow block old (already out of the table) to len bytes at a new address.
 * Its pages move without copying where the kernel moves several mappings at
 * once (Linux 6.17+); elsewhere only the written pages are copied. NULL
 * leaves old where it was. */
static struct block *move_block(const struct block *old, size_t len)
{
    size_t capacity;
    uintptr_t to = reserve_range(len, os_page_size(), &capacity);
    if (!to)
        return NULL;
    struct block nb = *old;
    nb.start = to;
    nb.capacity = capacity;
    if (os_move_fixed((void *)old->start, old->mapped, (void *)to)) {
        os_reserve_fixed((void *)old->start, old->capacity);
        if (!map_tail(&nb, len - old->mapped)) {
            os_move_fixed((void *)to, old->mapped, (void *)old->start);
            os_reserve_fixed((void *)to, capacity);
            region_free(to, capacity);
            return NULL;
        }
        region_free(old->start, old->capacity);
    } else {
        if (!copy_into(&nb, old, len)) {
            region_free(to, capacity);
            return NULL;
        }
        drop_range(old);
    }
    return blocks_insert(&nb);
}

void *large_realloc(void *p, size_t size, bool *unavailable)
{
    *unavailable = false;
    if (size > (SIZE_MAX >> 2)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = page_round(size ? size : 1);
    pthread_mutex_lock(&large.lock);
    struct block *b = live_block(p, "realloc()");
    if (len <= b->mapped) {
        if (len < b->mapped) {
            size_t cut = b->mapped - len;
            os_reserve_fixed((void *)(b->start + len), cut);
            if (b->kind == REFMALLOC_BLOCK_REFPAGE) {
                large.refpage_mapped -= cut;
                live_refpage_change(b, -(long)cut);
            }
            b->mapped = len;
        }
        /* Bytes past the new end may hold old data: a later grow must find
         * the pattern there. */
        if (size < b->size)
            memset((void *)(b->start + size), b->pattern, len - size);
        b->size = size;
        stat_add(ST_realloc_in_place, 1);
        trace("shrink", b->start, size);
        pthread_mutex_unlock(&large.lock);
        return p;
    }
    if (!budget_allows(EAGER_MAPPINGS)) {
        /* Growing needs a mapping or two more: past the budget the block
         * moves to the next allocator instead. */
        pthread_mutex_unlock(&large.lock);
        *unavailable = true;
        return NULL;
    }
    if (len > b->capacity) {
        size_t want = capacity_for(len);
        if (region_extend(b->start, b->capacity, want))
            b->capacity = want;
        else if (region_extend(b->start, b->capacity, len))
            b->capacity = len;
    }
    void *result;
    if (len <= b->capacity) {
        result = map_tail(b, len - b->mapped) ? p : NULL;
        if (result)
            stat_add(ST_realloc_in_place, 1);
    } else {
        struct block old = *b;
        blocks_remove(b);
        b = move_block(&old, len);
        if (!b)
            b = blocks_insert(&old);   /* a slot is free: this cannot fail */
        else
            stat_add(ST_realloc_moved, 1);
        result = b->start != old.start ? (void *)b->start : NULL;
    }
    if (result) {
        b->size = size;
        trace("grow", b->start, size);
    } else {
        errno = ENOMEM;
    }
    pthread_mutex_unlock(&large.lock);
    return result;
}

/* ---- introspection ---------------------------------------------------------- */

size_t large_usable(const void *p)
{
    pthread_mutex_lock(&large.lock);
    struct block *b = live_block(p, "malloc_usable_size()");
    size_t usable = b->mapped;
    pthread_mutex_unlock(&large.lock);
    return usable;
}

bool large_owns(const void *p)
{
    return region_contains(p);
}

static bool describe(const struct block *b, struct refmalloc_block_info *info)
{
    long written = written_pages(b);
    block_info(b, written, info);
    return written >= 0;
}

struct find_ctx {
    uintptr_t addr;
    struct block *found;
};

static void find_containing(struct block *b, void *ctx)
{
    struct find_ctx *f = ctx;
    if (b->state == BLOCK_LIVE && f->addr - b->start < b->mapped)
        f->found = b;
}

int large_query(const void *addr, struct refmalloc_block_info *info)
{
    if (!region_contains(addr))
        return 0;
    pthread_mutex_lock(&large.lock);
    struct find_ctx f = {(uintptr_t)addr, NULL};
    blocks_each(find_containing, &f);
    int r = 0;
    if (f.found)
        r = describe(f.found, info) ? 1 : -1;
    pthread_mutex_unlock(&large.lock);
    return r;
}

struct each_ctx {
    void (*fn)(const struct refmalloc_block_info *info, void *ctx);
    void *ctx;
};

static void visit_live(struct block *b, void *ctx)
{
    struct each_ctx *e = ctx;
    struct refmalloc_block_info info;
    if (b->state == BLOCK_LIVE) {
        describe(b, &info);
        e->fn(&info, e->ctx);
    }
}

void large_each_live(void (*fn)(const struct refmalloc_block_info *info, void *ctx), void *ctx)
{
    struct each_ctx e = {fn, ctx};
    pthread_mutex_lock(&large.lock);
    blocks_each(visit_live, &e);
    pthread_mutex_unlock(&large.lock);
}

/* ---- fork ------------------------------------------------------------------- */

void large_fork_prepare(void)
{
    pthread_mutex_lock(&large.lock);
}

void large_fork_parent(void)
{
    pthread_mutex_unlock(&large.lock);
}

void large_fork_child(void)
{
    pthread_mutex_init(&large.lock, NULL);
}
