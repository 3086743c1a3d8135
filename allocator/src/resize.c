/* resize: realloc of large blocks. They grow in place into the room after
 * them, move without copying where the kernel allows, shrink by giving pages
 * back; the bytes they gain always hold the pattern. */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "large_internal.h"
#include "large_lock.h"
#include "mte.h"
#include "pagemap.h"
#include "reads.h"
#include "region.h"
#include "stats.h"

/* Map [b->start + b->mapped, + grow) freshly, filling eager parts. */
static bool map_tail(struct block *b, size_t grow)
{
    uintptr_t at = b->start + b->mapped;
    enum fresh f = large_map_fresh(b, at, grow, false);
    if (f == FRESH_FAILED)
        return false;
    mem_fill_fresh(b, at, grow, f);
    if (f == FRESH_REFPAGE)
        mem_live_change((long)grow);
    if ((b->kind == REFMALLOC_BLOCK_REFPAGE) != (f == FRESH_REFPAGE))
        b->mixed = true;
    b->mapped += grow;
    return true;
}

struct copy {
    uintptr_t delta;    /* new start - old start */
    unsigned tag;       /* both blocks' */
};

static void copy_run(uintptr_t start, size_t len, void *ctx)
{
    const struct copy *c = ctx;
    memcpy(mte_tagged(start + c->delta, c->tag), mte_tagged(start, c->tag), len);
}

/* Build nb (start and capacity set) as a copy of old grown to len bytes, on
 * fresh memory. When both are pattern reference pages only the pages the
 * program wrote are copied: the others hold the pattern on both sides. */
static bool copy_into(struct block *nb, const struct block *old, size_t len)
{
    bool pure = old->kind == REFMALLOC_BLOCK_REFPAGE && !old->mixed && !old->zeroed;
    nb->mapped = 0;
    nb->mappings = 0;
    nb->refpage = 0;
    nb->mixed = false;
    /* Zero pages for an impure block, as all of it is copied; a tagged
     * block's zero pages would be reference pages: it asks for the pattern. */
    enum fresh f = large_map_fresh(nb, nb->start, len, !pure && !nb->tag);
    if (f == FRESH_FAILED)
        return false;
    nb->mapped = len;
    nb->zeroed = false;
    struct copy c = {nb->start - old->start, nb->tag};
    if (f == FRESH_REFPAGE) {
        nb->kind = REFMALLOC_BLOCK_REFPAGE;
        mem_live_change((long)len);
        if (!pure || pagemap_written(old->start, old->mapped / os_page_size(), copy_run, &c) < 0)
            copy_run(old->start, old->mapped, &c);
    } else {
        nb->kind = REFMALLOC_BLOCK_EAGER;
        if (f == FRESH_ZERO)
            memset((void *)(nb->start + old->mapped), nb->pattern, len - old->mapped);
        else
            mem_fill_fresh(nb, nb->start, len, f);   /* the head is overwritten next */
        copy_run(old->start, old->mapped, &c);
    }
    return true;
}

/* Grow block old to len bytes at a new address, described in *moved. Its
 * pages move without copying where the kernel moves several mappings at once
 * (Linux 6.17+); elsewhere only the written pages are copied. False leaves
 * old where it was. Neither touches the block table. */
static bool move_block(const struct block *old, size_t len, struct block *moved)
{
    size_t capacity;
    uintptr_t to = large_reserve_range(len, os_page_size(), true, &capacity);
    if (!to)
        return false;
    struct block nb = *old;
    nb.start = to;
    nb.capacity = capacity;
    if (config()->mremap && os_move_fixed((void *)old->start, old->mapped, (void *)to)) {
        os_reserve_fixed((void *)old->start, old->capacity);
        /* mremap drops the userfaultfd registration of what it moves. */
        reads_moved(old->start, to, old->mapped);
        if (!map_tail(&nb, len - old->mapped)) {
            os_move_fixed((void *)to, old->mapped, (void *)old->start);
            reads_moved(to, old->start, old->mapped);
            os_reserve_fixed((void *)to, capacity);
            region_free(to, capacity);
            return false;
        }
        region_free(old->start, old->capacity);
    } else {
        /* The copy reads the old block: the allocator's reads, not the program's. */
        reads_quiet_begin();
        bool copied = copy_into(&nb, old, len);
        reads_quiet_end();
        if (!copied) {
            region_free(to, capacity);
            return false;
        }
        reads_moved(old->start, nb.start, 0);
        mem_unmap(old);
    }
    *moved = nb;
    return true;
}

/* A tagged block growing in place up to a block with the same tag (tags are
 * picked against the neighbours of a block's range, and growing extends the
 * range) would let an overflow into it pass: it moves instead. */
static bool would_touch_same_tag(const struct block *b, size_t len)
{
    if (!b->tag || len != b->capacity)
        return false;
    const struct block *above = blocks_find(b->start + len);
    return above && above->tag == b->tag;
}

/* Shrink b to len bytes (len <= b->mapped) and size bytes. */
static void shrink(struct block *b, size_t len, size_t size)
{
    if (len < b->mapped)
        mem_shrink(b, len);
    /* Bytes past the new end may hold old data: a later grow must find the
     * pattern there. */
    if (size < b->size)
        memset((char *)mem_pointer(b) + size, b->pattern, len - size);
    b->size = size;
    stat_add(ST_realloc_in_place, 1);
    large_trace("shrink", b->start, size);
}

/* Grow *bp to len bytes, in place or moved (*bp is then the moved block);
 * NULL with *unavailable set when refmalloc has no room for it. */
static void *grow(struct block **bp, size_t len, size_t size, bool *unavailable)
{
    struct block *b = *bp;
    void *result = NULL;
    if (!large_budget_allows(MEM_EAGER_MAPPINGS) || mem_address_limit_reached(len - b->mapped)) {
        /* Growing needs a mapping or two more: past the budget (or the
         * address-space limit) the block moves to the next allocator. */
        *unavailable = true;
        return NULL;
    }
    if (len > b->capacity) {
        size_t want = mem_capacity_for(len);
        if (region_extend(b->start, b->capacity, want))
            b->capacity = want;
        else if (region_extend(b->start, b->capacity, len))
            b->capacity = len;
    }
    if (len <= b->capacity && !would_touch_same_tag(b, len)) {
        result = map_tail(b, len - b->mapped) ? mem_pointer(b) : NULL;
        if (result)
            stat_add(ST_realloc_in_place, 1);
    } else {
        /* Room in the table first: once the pages have moved, the new entry
         * must go in. Evictions on the way only leave tombstones, so b stays. */
        uintptr_t start = b->start;
        struct block moved;
        if (blocks_reserve(1) && move_block(b = blocks_find(start), len, &moved)) {
            blocks_remove(b);
            b = blocks_insert(&moved);
            result = mem_pointer(b);
            stat_add(ST_realloc_moved, 1);
        }
    }
    if (result) {
        b->size = size;
        large_trace("grow", b->start, size);
    } else {
        /* No room of ours (the range is full, a mapping was refused): the
         * next allocator may have some, as malloc of this size would use. */
        *unavailable = true;
    }
    *bp = b;
    return result;
}

/* A block's bytes in the _bytes counters are its largest size: a realloc
 * that grows it past that counts the difference, in large_bytes and in the
 * counter of the kind it was counted under when allocated (the _allocs
 * counters stay: still one block). A block that grew onto reference pages
 * after a fallback (or the reverse) keeps its kind; shrinking and growing
 * back counts nothing. A realloc the next allocator serves is a new block
 * there. */
static void count_growth(struct block *b, uint8_t kind)
{
    if (b->size <= b->counted)
        return;
    enum rm_stat bytes = kind == REFMALLOC_BLOCK_REFPAGE ? ST_refpage_bytes
                       : kind == REFMALLOC_BLOCK_ZERO ? ST_zero_bytes : ST_eager_bytes;
    stat_add(ST_large_bytes, b->size - b->counted);
    stat_add(bytes, b->size - b->counted);
    b->counted = b->size;
}

void *large_realloc(void *p, size_t size, bool *unavailable)
{
    *unavailable = false;
    void *result = NULL;
    const char *why = NULL;
    if (size > (SIZE_MAX >> 2)) {
        errno = ENOMEM;
    } else {
        size_t len = mem_page_round(size ? size : 1);
        large_lock();
        struct block *b;
        why = large_live_block(p, &b);
        if (!why) {
            /* Open the slack while the block changes: copies and moves read
             * it, growing writes the pattern there. */
            mem_seal_slack(b, false);
            uint8_t kind = b->kind;
            if (len <= b->mapped) {
                shrink(b, len, size);
                result = p;
            } else {
                result = grow(&b, len, size, unavailable);
            }
            if (result)
                count_growth(b, kind);   /* b: the block now, moved or not */
            mem_seal_slack(b, true);   /* the block now, moved or not */
        }
        large_unlock();
    }
    if (why)
        large_bad_pointer("realloc()", p, why);
    return result;
}
