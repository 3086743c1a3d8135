/* large: the large-block manager's core: start-up, accounting against the
 * mapping budget, fresh memory (reference pages, or anonymous memory as the
 * fallback), allocation and free. Its state, rm_large, is shared with
 * cache.c, resize.c and inspect.c through large_state.h. */
#include "large_state.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "config.h"
#include "mte.h"
#include "os.h"
#include "out.h"
#include "pagemap.h"
#include "refpage.h"
#include "region.h"
#include "stats.h"


struct large_state rm_large = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void warn_once(enum rm_stat reason, const char *text)
{
    if (config()->verbose >= 1 && !rm_large.warned[reason]) {
        rm_large.warned[reason] = true;
        out_diag(text, NULL, NULL);
    }
}

void trace(const char *op, uintptr_t addr, size_t size)
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

/* Mappings left for the program's own use, which the kernel counts with
 * ours against vm.max_map_count: glibc's malloc needs one to start a run of
 * mmap'd blocks (its next ones merge with it), so a program at its own limit
 * that works under glibc must find a few. */
#define PROGRAM_MAPPINGS 64

/* What the process as a whole lets us map: the limit less the program's
 * mappings when they were last counted, less its share. */
static size_t process_allows(void)
{
    size_t max = rm_large.max_map_count, theirs = rm_large.others + PROGRAM_MAPPINGS;
    if (max == 0)
        return SIZE_MAX;
    return max > theirs ? max - theirs : 0;
}

/* Mappings we may hold: our budget, within what the process allows. */
static size_t mapping_limit(void)
{
    size_t allows = process_allows();
    return allows < rm_large.budget ? allows : rm_large.budget;
}

/* Count the mappings for real, the region's and the program's: ours are
 * an upper bound (blocks placed side by side share mappings, so it is far
 * too high), and the program's change without our knowing. Reading
 * /proc/self/maps is slow (its cost grows with the mappings), so only: at
 * the first large block, after as many budget checks as there were mappings
 * (at least RECOUNT_EVERY: the cost per check stays flat), when our own have
 * grown by half the distance to the limit, and (forced) when the kernel
 * refused one of ours. */
#define RECOUNT_EVERY 1024

static void recount_mappings(bool forced)
{
    size_t limit = mapping_limit();
    size_t distance = limit > rm_large.counted_at ? limit - rm_large.counted_at : 0;
    size_t step = distance / 2 > 16 ? distance / 2 : 16;
    size_t period = rm_large.others + rm_large.counted_at;
    if (period < RECOUNT_EVERY)
        period = RECOUNT_EVERY;
    bool due = !rm_large.counted || rm_large.mappings >= rm_large.counted_at + step ||
               rm_large.fresh_since_count >= period;
    if ((!forced && !due) || rm_large.sandboxed)
        return;
    size_t inside;
    long total = os_count_mappings(region_base(), region_base() + region_size(), &inside);
    if (total < 0)
        return;
    rm_large.counted = true;
    rm_large.fresh_since_count = 0;
    rm_large.others = (size_t)total - inside;
    rm_large.mappings = inside;
    rm_large.counted_at = inside;
    stat_set(ST_mappings_in_use, rm_large.mappings);
}

static void start_once(void)
{
    if (rm_large.started)
        return;
    rm_large.started = true;
    /* Read once here rather than per allocation: a system call glibc's
     * malloc does not make would cost time on every large request and could
     * be refused by a seccomp filter installed later. setrlimit() through
     * libc reaches large_address_limit_*(), which keep it current. */
    rm_large.address_limit = os_address_limit();
    rm_large.overcommit_limit = os_overcommit_single_limit();
    size_t want = config()->reserve, least = (size_t)1 << 30;
    if (rm_large.address_limit != SIZE_MAX) {
        /* Under an address-space limit take a quarter of what is left: the
         * program's own mappings need the rest. */
        size_t limit = rm_large.address_limit, used = os_address_used();
        size_t room = limit > used ? limit - used : 0;
        want = want < room / 4 ? want : room / 4;
        least = (size_t)64 << 20;
    }
    rm_large.region_ok = region_init(want, least);
    long long max = os_read_number("/proc/sys/vm/max_map_count");
    rm_large.max_map_count = max > 0 ? (size_t)max : 0;
    size_t budget = config()->max_mappings;
    if (budget == 0) {
        /* A quarter of the process limit: the program and its libraries
         * need the rest. */
        budget = max > 0 ? (size_t)max / 4 : 16384;
    }
    rm_large.budget = budget;
    stat_set(ST_mapping_budget, budget);
    if (!rm_large.region_ok)
        warn_once(ST_fallback_region, "cannot reserve an address range for large blocks; "
                  "they go to the next allocator, filled eagerly");
}

void large_start(void)
{
    pthread_mutex_lock(&rm_large.lock);
    start_once();
    pthread_mutex_unlock(&rm_large.lock);
}

/* ---- seccomp ---------------------------------------------------------------- */

/* The pattern files are made this long at least before a filter, since none
 * can be made after it (nor the pagemap read, nor /proc/self/maps): a 1 GiB block then takes 256 mappings, and the
 * files of the four patterns hold 16 MiB. */
#define SANDBOX_CHUNK ((size_t)4 << 20)

void large_before_sandbox(void)
{
    pthread_mutex_lock(&rm_large.lock);
    if (!rm_large.sandboxed) {
        recount_mappings(true);   /* the program's mappings, while /proc is readable */
        rm_large.sandboxed = true;
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
        if (c->verbose >= 1 || !files)
            out_diag(files ? "a seccomp filter is being installed: pattern files made, "
                             "/proc no longer read, freed blocks restored whole"
                           : "a seccomp filter is being installed and a pattern file "
                             "could not be made: its blocks are filled eagerly",
                     NULL, NULL);
    }
    pthread_mutex_unlock(&rm_large.lock);
}

/* Bytes of address space the process uses outside the region, plus what
 * is mapped inside it: what would count if the region were not reserved. */
static size_t address_taken(void)
{
    size_t used = os_address_used(), reserved = region_size();
    size_t outside = used > reserved ? used - reserved : 0;
    return outside + rm_large.mapped_bytes;
}

bool address_limit_reached(size_t len)
{
    size_t limit = rm_large.address_limit;
    return limit != SIZE_MAX && address_taken() + len > limit;
}

void large_address_limit_lowering(size_t limit)
{
    pthread_mutex_lock(&rm_large.lock);
    start_once();
    if (rm_large.region_ok && limit != SIZE_MAX) {
        /* The reservation counts in the address-space size although it
         * holds nothing: under the new limit it would leave the program
         * without room for its own memory. Keep a quarter of what the limit
         * leaves, as at start-up; cached blocks go first. */
        while (rm_large.ncached > 0)
            cache_evict_oldest();
        size_t taken = address_taken();
        size_t room = limit > taken ? limit - taken : 0;
        size_t cut = region_trim(room / 4);
        if (cut)
            trace("trim", region_base() + region_size(), cut);
    }
    pthread_mutex_unlock(&rm_large.lock);
}

void large_address_limit_changed(void)
{
    pthread_mutex_lock(&rm_large.lock);
    rm_large.address_limit = os_address_limit();
    pthread_mutex_unlock(&rm_large.lock);
}

void account_mappings(long delta)
{
    /* After a recount the per-block figures may add up to more than the
     * total: never below zero. */
    if (delta < 0 && (size_t)-delta > rm_large.mappings)
        rm_large.mappings = 0;
    else
        rm_large.mappings += (size_t)delta;
    stat_set(ST_mappings_in_use, rm_large.mappings);
}

/* Reference-page bytes of live blocks, for the statistics. The mapped total
 * (live and cached), which sizes the chunks, is rm_large.refpage_mapped. */
void live_refpage_change(const struct block *b, long delta)
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

void unmap_block(const struct block *b)
{
    os_reserve_fixed((void *)b->start, b->capacity);
    region_free(b->start, b->capacity);
    account_mappings(-(long)b->mappings);
    rm_large.mapped_bytes -= b->mapped;
    if (b->kind == REFMALLOC_BLOCK_REFPAGE)
        rm_large.refpage_mapped -= b->mapped;
    if (b->state == BLOCK_LIVE)
        live_refpage_change(b, -(long)b->mapped);
}

void release(struct block *b)
{
    unmap_block(b);
    trace("release", b->start, b->mapped);
    blocks_remove(b);
}

/* Make room for `need` more mappings by dropping cached blocks. */
bool budget_allows(size_t need)
{
    rm_large.fresh_since_count++;
    recount_mappings(false);
    while (rm_large.mappings + need > mapping_limit()) {
        if (rm_large.ncached == 0)
            return false;
        cache_evict_oldest();
    }
    return true;
}

/* ---- mapping fresh memory ------------------------------------------------ */

/* Map [at, at+len) with fresh memory for block b: zero pages, reference
 * pages, or anonymous memory the caller must fill (FRESH_EAGER). A tagged
 * block's zero pages come from the zero byte's reference pages, which carry
 * the tag as the pattern's do. */
enum fresh map_fresh(struct block *b, uintptr_t at, size_t len, bool zero)
{
    if ((!zero || b->tag) && config()->refpages) {
        size_t chunk = refpage_chunk_for(rm_large.refpage_mapped, len);
        size_t need = refpage_mappings_for(len, chunk) + 1;
        enum rm_stat reason = ST_fallback_budget;
        if (budget_allows(need)) {
            enum refpage_result r = refpage_map(at, len, zero ? 0 : b->pattern, b->tag, chunk);
            if (r == REFPAGE_OK) {
                b->mappings += (uint32_t)need;
                account_mappings((long)need);
                rm_large.mapped_bytes += len;
                return FRESH_REFPAGE;
            }
            reason = r == REFPAGE_NO_MEMFD ? ST_fallback_memfd : ST_fallback_map;
            if (r == REFPAGE_MAP_FAILED)
                recount_mappings(true);   /* at the process's limit? */
        }
        stat_add(reason, 1);
        warn_once(reason, reason == ST_fallback_budget
                  ? "mapping budget reached; large blocks are now filled eagerly"
                  : reason == ST_fallback_memfd
                  ? "cannot create the pattern memfd; large blocks are filled eagerly"
                  : "mapping a pattern chunk failed; that block is filled eagerly");
    }
    if (!os_map_anon_fixed((void *)at, len, b->tag != 0)) {
        os_reserve_fixed((void *)at, len);
        return FRESH_FAILED;
    }
    b->mappings += EAGER_MAPPINGS;
    account_mappings(EAGER_MAPPINGS);
    rm_large.mapped_bytes += len;
    return zero ? FRESH_ZERO : FRESH_EAGER;
}

void fill_fresh(const struct block *b, uintptr_t at, size_t len, enum fresh f)
{
    if (b->tag && (f == FRESH_EAGER || f == FRESH_ZERO))
        mte_fill(mte_tagged(at, b->tag), len, f == FRESH_ZERO ? 0 : b->pattern);
    else if (f == FRESH_EAGER)
        memset((void *)at, b->pattern, len);
}

/* ---- memory tags ------------------------------------------------------------- */

struct below {
    uintptr_t start;
    unsigned tag;
};

static void find_below(struct block *b, void *ctx)
{
    struct below *w = ctx;
    if (b->start + b->capacity == w->start)
        w->tag = b->tag;
}

/* A tag for a block on [start, start+capacity) that neither the block whose
 * range ends at start nor the one starting right after it has, nor `old`:
 * an overflow across the boundary, or an access through a pointer from the
 * block's previous life, then faults. The block below is found by a walk of
 * the table: tagging is a debugging mode and large blocks are few. */
unsigned pick_tag(uintptr_t start, size_t capacity, unsigned old)
{
    if (!mte_on())
        return 0;
    unsigned exclude = 1u << old;
    const struct block *above = blocks_find(start + capacity);
    if (above)
        exclude |= 1u << above->tag;
    struct below w = {start, 0};
    blocks_each(find_below, &w);
    exclude |= 1u << w.tag;
    return mte_pick(exclude);
}

void *block_pointer(const struct block *b)
{
    return mte_tagged(b->start, b->tag);
}

size_t usable_size(const struct block *b)
{
    if (!b->tag)
        return b->mapped;
    size_t end = (b->size + MTE_GRANULE - 1) & ~(size_t)(MTE_GRANULE - 1);
    return end ? end : MTE_GRANULE;
}

void seal_slack(const struct block *b, bool sealed)
{
    size_t from = usable_size(b);
    if (!b->tag || from >= b->mapped)
        return;
    unsigned tag = sealed ? mte_slack_tag(b->tag) : b->tag;
    mte_set_tags(mte_tagged(b->start + from, tag), b->mapped - from);
}

static enum refmalloc_block_kind kind_of(enum fresh f)
{
    return f == FRESH_REFPAGE ? REFMALLOC_BLOCK_REFPAGE
         : f == FRESH_ZERO ? REFMALLOC_BLOCK_ZERO : REFMALLOC_BLOCK_EAGER;
}

/* ---- allocation ------------------------------------------------------------ */

/* Room after a block lets realloc grow it in place; under an address-space
 * limit the room would count against the program, so there is none. */
size_t capacity_for(size_t len)
{
    if (rm_large.address_limit != SIZE_MAX)
        return len;
    return len <= (SIZE_MAX >> 3) ? 2 * len : len;
}

/* Address range for a block of len bytes, with room to grow (`room`) if
 * there is space: *got says how much was reserved. 0 when the region is
 * full. A fresh block gets none: most are never resized, and blocks placed
 * side by side share mappings; one that grows gets room when it moves. */
uintptr_t reserve_range(size_t len, size_t align, bool room, size_t *got)
{
    *got = room ? capacity_for(len) : len;
    uintptr_t at = region_alloc(*got, align);
    if (!at) {
        *got = len;
        at = region_alloc(len, align);
    }
    while (!at && rm_large.ncached > 0 && len <= region_size()) {
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

    pthread_mutex_lock(&rm_large.lock);
    start_once();
    /* Sizes the region could never hold, or that the kernel's overcommit
     * policy refuses in one mapping (each chunk mapping would pass on its
     * own): the next allocator gives the answer glibc gives, at once. */
    if (!rm_large.region_ok || len > region_size() || len > rm_large.overcommit_limit) {
        pthread_mutex_unlock(&rm_large.lock);
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
        void *reused = block_pointer(b);
        seal_slack(b, true);
        trace("reuse", b->start, size);
        pthread_mutex_unlock(&rm_large.lock);
        return reused;
    }
    if (!zero)
        stat_add(ST_cache_misses, 1);

    /* Past RLIMIT_AS the next allocator meets the limit as the kernel says.
     * Even an eager block costs two mappings (itself and the split of the
     * reservation): with none left, the next allocator's own mmap serves it,
     * which the kernel can merge with its neighbours. */
    size_t capacity;
    uintptr_t at = 0;
    if (address_limit_reached(len)) {
        /* nothing to count: the program is at its own limit */
    } else if (!budget_allows(EAGER_MAPPINGS)) {
        stat_add(ST_fallback_budget, 1);
        warn_once(ST_fallback_budget, "mapping budget reached; large blocks now come from "
                  "the next allocator, filled eagerly");
    } else if (!(at = reserve_range(len, align, false, &capacity))) {
        stat_add(ST_fallback_region, 1);
        warn_once(ST_fallback_region, "reserved address range full; large blocks go to "
                  "the next allocator, filled eagerly");
    }
    if (!at) {
        pthread_mutex_unlock(&rm_large.lock);
        *unavailable = true;
        return NULL;
    }
    struct block nb = {.start = at, .size = size, .mapped = len, .state = BLOCK_LIVE,
                       .pattern = pattern};
    nb.capacity = capacity;
    nb.tag = (uint8_t)pick_tag(at, capacity, 0);
    enum fresh f = map_fresh(&nb, at, len, zero);
    if (f == FRESH_FAILED) {
        /* Even anonymous memory was refused (the process's mapping count
         * at vm.max_map_count, say): the next allocator may still succeed,
         * as glibc's does by growing its heap. */
        region_free(at, capacity);
        pthread_mutex_unlock(&rm_large.lock);
        *unavailable = true;
        return NULL;
    }
    nb.kind = (uint8_t)kind_of(f);
    nb.zeroed = zero && f == FRESH_REFPAGE;
    b = blocks_insert(&nb);
    if (!b) {
        os_reserve_fixed((void *)at, len);
        region_free(at, capacity);
        account_mappings(-(long)nb.mappings);
        rm_large.mapped_bytes -= len;
        pthread_mutex_unlock(&rm_large.lock);
        errno = ENOMEM;
        return NULL;
    }
    if (f == FRESH_REFPAGE)
        rm_large.refpage_mapped += len;
    live_refpage_change(b, (long)len);
    count_alloc(f == FRESH_REFPAGE ? ST_refpage_allocs
                : f == FRESH_ZERO ? ST_zero_allocs : ST_eager_allocs, size);
    count_alloc(ST_large_allocs, size);
    stat_add(ST_live_large_blocks, 1);
    trace("alloc", at, size);
    nb = *b;
    pthread_mutex_unlock(&rm_large.lock);
    /* Filled outside the lock: nobody else knows this block yet. */
    fill_fresh(&nb, at, len, f);
    seal_slack(&nb, true);
    return block_pointer(&nb);
}

/* ---- free ------------------------------------------------------------------ */

_Noreturn static void bad_pointer(const char *caller, const void *p, const char *why)
{
    out_diag_addr(caller, p, why);
    os_abort();
}

/* Look up a live block or abort: the program has a bug we must not hide. */
struct block *live_block(const void *p, const char *caller)
{
    struct block *b = blocks_find(mte_untag(p));
    const char *why = NULL;
    if (!b || b->state != BLOCK_LIVE)
        why = "not a live block of refmalloc (double free or corrupted pointer)";
    else if (mte_tag_of(p) != b->tag)
        why = "the pointer's memory tag is not the block's: a pointer from an earlier "
              "life of the block (double free or use after free)";
    if (why) {
        pthread_mutex_unlock(&rm_large.lock);
        bad_pointer(caller, p, why);
    }
    return b;
}

void large_free(void *p, const char *caller)
{
    pthread_mutex_lock(&rm_large.lock);
    struct block *b = live_block(p, caller);
    stat_add(ST_large_frees, 1);
    stat_sub(ST_live_large_blocks, 1);
    trace("free", b->start, b->size);
    if (config()->report[0]) {
        /* The report lists what was written of each freed block. */
        long written = written_pages(b);
        if (b->kind == REFMALLOC_BLOCK_REFPAGE && written >= 0) {
            stat_add(ST_freed_pages, b->mapped / os_page_size());
            stat_add(ST_freed_pages_written, (uint64_t)written);
        }
        record_freed(b, written);
    }
    /* Tagged blocks are remapped at once, like the free pattern's
     * quarantine, onto another tag: an access after free faults. */
    bool clean = config()->free_pattern_on || b->tag;
    bool keep = clean ? quarantine(b) : cacheable(b);
    if (keep) {
        b->dirty = !clean;
        live_refpage_change(b, -(long)b->mapped);
        cache_put(b);
    } else {
        release(b);
    }
    pthread_mutex_unlock(&rm_large.lock);
}

/* ---- introspection ---------------------------------------------------------- */

size_t large_usable(const void *p)
{
    pthread_mutex_lock(&rm_large.lock);
    struct block *b = live_block(p, "malloc_usable_size()");
    size_t usable = usable_size(b);
    pthread_mutex_unlock(&rm_large.lock);
    return usable;
}

bool large_owns(const void *p)
{
    return region_contains((const void *)mte_untag(p));
}

/* ---- fork ------------------------------------------------------------------- */

void large_fork_prepare(void)
{
    pthread_mutex_lock(&rm_large.lock);
}

void large_fork_parent(void)
{
    pthread_mutex_unlock(&rm_large.lock);
}

void large_fork_child(void)
{
    pthread_mutex_init(&rm_large.lock, NULL);
    pagemap_fork_child();
    rm_large.nfreed = 0;   /* the child reports only what it frees */
}
