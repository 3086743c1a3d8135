#include "mem.h"

#include <string.h>

#include "config.h"
#include "debug.h"
#include "large_lock.h"
#include "mte.h"
#include "refmalloc.h"
#include "reads.h"
#include "region.h"
#include "stats.h"

static struct {
    bool started;            /* region and budget set up (or tried) */
    bool region_ok;
    size_t mapped_bytes;     /* bytes mapped in the region, any kind */
    size_t refpage_mapped;   /* reference-page bytes mapped, live or cached */
    size_t address_limit;    /* RLIMIT_AS, cached: SIZE_MAX when unlimited */
    size_t overcommit_limit; /* largest mapping the kernel's policy allows */
    size_t budget;           /* mappings we allow ourselves */
    size_t mappings;         /* mappings accounted to blocks: an upper bound,
                              * the kernel merges neighbours */
    size_t max_map_count;    /* vm.max_map_count; 0 if unknown */
    bool counted;            /* mappings counted for real once */
    size_t counted_at;       /* our mappings when last counted */
    size_t others;           /* the program's mappings when last counted */
    size_t fresh_since_count; /* budget checks since then */
    bool sandboxed;          /* a seccomp filter may forbid reading /proc */
} mem;

/* Bytes leave the accounts they entered: never below zero. */
static void take_bytes(size_t *account, size_t n)
{
    RM_ASSERT(*account >= n);
    *account -= n;
}

/* ---- the mapping budget ------------------------------------------------ */

/* Mappings left for the program's own use, which the kernel counts with
 * ours against vm.max_map_count: glibc's malloc needs one to start a run of
 * mmap'd blocks (its next ones merge with it), so a program at its own limit
 * that works under glibc must find a few. */
#define PROGRAM_MAPPINGS 64

/* What the process as a whole lets us map: the limit less the program's
 * mappings when they were last counted, less its share. */
static size_t process_allows(void)
{
    size_t max = mem.max_map_count, theirs = mem.others + PROGRAM_MAPPINGS;
    if (max == 0)
        return SIZE_MAX;
    return max > theirs ? max - theirs : 0;
}

/* Mappings we may hold: our budget, within what the process allows. */
static size_t mapping_limit(void)
{
    size_t allows = process_allows();
    return allows < mem.budget ? allows : mem.budget;
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
    size_t distance = limit > mem.counted_at ? limit - mem.counted_at : 0;
    size_t step = distance / 2 > 16 ? distance / 2 : 16;
    size_t period = mem.others + mem.counted_at;
    if (period < RECOUNT_EVERY)
        period = RECOUNT_EVERY;
    bool due = !mem.counted || mem.mappings >= mem.counted_at + step ||
               mem.fresh_since_count >= period;
    if ((!forced && !due) || mem.sandboxed)
        return;
    size_t inside;
    long total = os_count_mappings(region_base(), region_base() + region_size(), &inside);
    if (total < 0)
        return;
    mem.counted = true;
    mem.fresh_since_count = 0;
    mem.others = (size_t)total - inside;
    mem.mappings = inside;
    mem.counted_at = inside;
    stat_set(ST_mappings_in_use, mem.mappings);
}

void mem_budget_check(void)
{
    large_lock_assert_held();
    mem.fresh_since_count++;
    recount_mappings(false);
}

bool mem_budget_fits(size_t need)
{
    return mem.mappings + need <= mapping_limit();
}

void mem_recount(void)
{
    recount_mappings(true);
}

void mem_before_sandbox(void)
{
    recount_mappings(true);   /* the program's mappings, while /proc is readable */
    mem.sandboxed = true;
}

void mem_account_mappings(long delta)
{
    /* After a recount the per-block figures may add up to more than the
     * total: never below zero. */
    if (delta < 0 && (size_t)-delta > mem.mappings)
        mem.mappings = 0;
    else
        mem.mappings += (size_t)delta;
    stat_set(ST_mappings_in_use, mem.mappings);
}

/* ---- start-up and limits ------------------------------------------------ */

bool mem_start(void)
{
    large_lock_assert_held();
    if (mem.started)
        return false;
    mem.started = true;
    /* Read once here rather than per allocation: a system call glibc's
     * malloc does not make would cost time on every large request and could
     * be refused by a seccomp filter installed later. setrlimit() through
     * libc reaches large_address_limit_*(), which keep it current. */
    mem.address_limit = os_address_limit();
    mem.overcommit_limit = os_overcommit_single_limit();
    size_t want = config()->reserve, least = (size_t)1 << 30;
    if (mem.address_limit != SIZE_MAX) {
        /* Under an address-space limit take a quarter of what is left: the
         * program's own mappings need the rest. */
        size_t limit = mem.address_limit, used = os_address_used();
        size_t room = limit > used ? limit - used : 0;
        want = want < room / 4 ? want : room / 4;
        least = (size_t)64 << 20;
    }
    mem.region_ok = region_init(want, least);
    long long max = os_read_number("/proc/sys/vm/max_map_count");
    mem.max_map_count = max > 0 ? (size_t)max : 0;
    size_t budget = config()->max_mappings;
    if (budget == 0) {
        /* A quarter of the process limit: the program and its libraries
         * need the rest. */
        budget = max > 0 ? (size_t)max / 4 : 16384;
    }
    mem.budget = budget;
    stat_set(ST_mapping_budget, budget);
    return true;
}

bool mem_region_ok(void)
{
    return mem.region_ok;
}

size_t mem_overcommit_limit(void)
{
    return mem.overcommit_limit;
}

void mem_address_limit_reread(void)
{
    mem.address_limit = os_address_limit();
}

/* Bytes of address space the process uses outside the region, plus what
 * is mapped inside it: what would count if the region were not reserved. */
static size_t address_taken(void)
{
    size_t used = os_address_used(), reserved = region_size();
    size_t outside = used > reserved ? used - reserved : 0;
    return outside + mem.mapped_bytes;
}

bool mem_address_limit_reached(size_t len)
{
    size_t limit = mem.address_limit;
    return limit != SIZE_MAX && address_taken() + len > limit;
}

size_t mem_trim_for_limit(size_t limit)
{
    /* The reservation counts in the address-space size although it holds
     * nothing: under the new limit it would leave the program without room
     * for its own memory. Keep a quarter of what the limit leaves, as at
     * start-up. */
    if (!mem.region_ok || limit == SIZE_MAX)
        return 0;
    size_t taken = address_taken();
    size_t room = limit > taken ? limit - taken : 0;
    return region_trim(room / 4);
}

/* ---- address ranges ---------------------------------------------------- */

/* Room after a block lets realloc grow it in place; under an address-space
 * limit the room would count against the program, so there is none. */
size_t mem_capacity_for(size_t len)
{
    if (mem.address_limit != SIZE_MAX)
        return len;
    return len <= (SIZE_MAX >> 3) ? 2 * len : len;
}

uintptr_t mem_reserve_range(size_t len, size_t align, bool room, size_t *got)
{
    large_lock_assert_held();
    *got = room ? mem_capacity_for(len) : len;
    uintptr_t at = region_alloc(*got, align);
    if (!at && *got != len) {
        *got = len;
        at = region_alloc(len, align);
    }
    return at;
}

/* ---- fresh memory ------------------------------------------------------ */

size_t mem_chunk_for(size_t len)
{
    return refpage_chunk_for(mem.refpage_mapped, len);
}

size_t mem_refpage_need(size_t len, size_t chunk)
{
    return refpage_mappings_for(len, chunk) + 1;
}

enum refpage_result mem_map_refpage(struct block *b, uintptr_t at, size_t len,
                                    unsigned char pattern, size_t chunk, size_t need)
{
    large_lock_assert_held();
    /* The block's length once mapped: more than len when it grows. */
    size_t span = at + len - b->start;
    enum refpage_result r = refpage_map(at, len, span, pattern, b->tag, chunk);
    if (r == REFPAGE_OK) {
        b->mappings += (uint32_t)need;
        mem_account_mappings((long)need);
        mem.mapped_bytes += len;
        mem.refpage_mapped += len;
        b->refpage += len;
    }
    return r;
}

bool mem_remap_refpage(struct block *b, unsigned char pattern, unsigned tag, size_t chunk,
                       size_t need)
{
    large_lock_assert_held();
    if (refpage_map(b->start, b->mapped, b->mapped, pattern, tag, chunk) != REFPAGE_OK)
        return false;
    mem_account_mappings((long)need - (long)b->mappings);
    b->mappings = (uint32_t)need;
    b->pattern = pattern;
    b->tag = (uint8_t)tag;
    b->zeroed = false;
    return true;
}

bool mem_map_anon(struct block *b, uintptr_t at, size_t len)
{
    large_lock_assert_held();
    if (!os_map_anon_fixed((void *)at, len, b->tag != 0)) {
        os_reserve_fixed((void *)at, len);
        return false;
    }
    b->mappings += MEM_EAGER_MAPPINGS;
    mem_account_mappings(MEM_EAGER_MAPPINGS);
    mem.mapped_bytes += len;
    return true;
}

void mem_fill_fresh(const struct block *b, uintptr_t at, size_t len, enum fresh f)
{
    if (b->tag && (f == FRESH_EAGER || f == FRESH_ZERO))
        mte_fill(mte_tagged(at, b->tag), len, f == FRESH_ZERO ? 0 : b->pattern);
    else if (f == FRESH_EAGER)
        memset((void *)at, b->pattern, len);
}

void mem_live_change(long delta)
{
    if (delta == 0)
        return;
    stat_add(ST_live_refpage_bytes, (uint64_t)delta);
    uint64_t live = stat_get(ST_live_refpage_bytes);
    if (delta > 0 && live > stat_get(ST_peak_refpage_bytes))
        stat_set(ST_peak_refpage_bytes, live);
}

void mem_shrink(struct block *b, size_t len)
{
    large_lock_assert_held();
    RM_ASSERT(len < b->mapped);
    size_t cut = b->mapped - len;
    os_reserve_fixed((void *)(b->start + len), cut);
    take_bytes(&mem.mapped_bytes, cut);
    /* A mixed block's parts are not recorded: its reference pages are taken
     * to lead a reference-page block and to trail an eager one, as after
     * one growth of the other kind. */
    size_t lost = b->kind == REFMALLOC_BLOCK_REFPAGE ? (b->refpage > len ? b->refpage - len : 0)
                                                     : (cut < b->refpage ? cut : b->refpage);
    take_bytes(&mem.refpage_mapped, lost);
    mem_live_change(-(long)lost);
    b->refpage -= lost;
    b->mapped = len;
}

void mem_unmap(const struct block *b)
{
    large_lock_assert_held();
    os_reserve_fixed((void *)b->start, b->capacity);
    reads_release(b->start);
    region_free(b->start, b->capacity);
    mem_account_mappings(-(long)b->mappings);
    take_bytes(&mem.mapped_bytes, b->mapped);
    take_bytes(&mem.refpage_mapped, b->refpage);
    if (b->state == BLOCK_LIVE)
        mem_live_change(-(long)b->refpage);
}

/* ---- memory tags ------------------------------------------------------- */

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
unsigned mem_pick_tag(uintptr_t start, size_t capacity, unsigned old)
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

void *mem_pointer(const struct block *b)
{
    return mte_tagged(b->start, b->tag);
}

size_t mem_usable(const struct block *b)
{
    if (!b->tag)
        return b->mapped;
    size_t end = (b->size + MTE_GRANULE - 1) & ~(size_t)(MTE_GRANULE - 1);
    return end ? end : MTE_GRANULE;
}

void mem_seal_slack(const struct block *b, bool sealed)
{
    size_t from = mem_usable(b);
    if (!b->tag || from >= b->mapped)
        return;
    unsigned tag = sealed ? mte_slack_tag(b->tag) : b->tag;
    mte_set_tags(mte_tagged(b->start + from, tag), b->mapped - from);
}
