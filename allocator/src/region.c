#include "region.h"

#include <string.h>

#include "debug.h"
#include "os.h"

struct extent {
    uintptr_t start;
    size_t len;
};

static struct {
    uintptr_t base, end;        /* written once by region_init */
    struct extent *free;        /* sorted by start, never adjacent */
    size_t count, cap;
} region;

/* The invariant of the free list (debug builds): sorted by start, inside
 * the range, none empty, none touching the next (those are joined). */
static void check_free_list(void)
{
#ifdef RM_DEBUG
    for (size_t i = 0; i < region.count; i++) {
        const struct extent *e = &region.free[i];
        RM_ASSERT(e->len > 0 && e->start >= region.base && e->start + e->len <= region.end);
        RM_ASSERT(i == 0 || e[-1].start + e[-1].len < e->start);
    }
    RM_ASSERT(region.count <= region.cap);
#endif
}

bool region_init(size_t want, size_t least)
{
    for (size_t len = want; len >= least && len > 0; len /= 2) {
        void *p = os_reserve(len);
        if (!p)
            continue;
        size_t cap = os_page_size() / sizeof(struct extent);
        region.free = os_alloc_meta(cap * sizeof(struct extent));
        if (!region.free) {
            os_free_meta(p, len);
            return false;
        }
        region.cap = cap;
        region.count = 1;
        len &= ~(os_page_size() - 1);
        region.free[0] = (struct extent){(uintptr_t)p, len};
        region.base = (uintptr_t)p;
        __atomic_store_n(&region.end, (uintptr_t)p + len, __ATOMIC_RELEASE);
        return true;
    }
    return false;
}

bool region_contains(const void *p)
{
    uintptr_t end = __atomic_load_n(&region.end, __ATOMIC_ACQUIRE);
    uintptr_t a = (uintptr_t)p;
    return a >= region.base && a < end;
}

size_t region_size(void)
{
    return region.end - region.base;
}

uintptr_t region_base(void)
{
    return region.base;
}

static bool reserve_slot(void)
{
    if (region.count < region.cap)
        return true;
    size_t cap = region.cap * 2;
    struct extent *bigger = os_alloc_meta(cap * sizeof(struct extent));
    if (!bigger)
        return false;
    memcpy(bigger, region.free, region.count * sizeof(struct extent));
    os_free_meta(region.free, region.cap * sizeof(struct extent));
    region.free = bigger;
    region.cap = cap;
    return true;
}

static void remove_at(size_t i)
{
    memmove(&region.free[i], &region.free[i + 1],
            (region.count - i - 1) * sizeof(struct extent));
    region.count--;
}

static bool insert_at(size_t i, uintptr_t start, size_t len)
{
    if (!reserve_slot())
        return false;
    memmove(&region.free[i + 1], &region.free[i],
            (region.count - i) * sizeof(struct extent));
    region.free[i] = (struct extent){start, len};
    region.count++;
    return true;
}

/* Index of the first free extent starting at or after addr. */
static size_t lower_bound(uintptr_t addr)
{
    size_t lo = 0, hi = region.count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (region.free[mid].start < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Remove [start, start+len) from free extent i, which contains it. */
static bool carve(size_t i, uintptr_t start, size_t len)
{
    struct extent e = region.free[i];
    uintptr_t end = start + len, e_end = e.start + e.len;
    if (start > e.start && end < e_end) {
        /* The middle: keep the head in place, add the tail after it. */
        if (!insert_at(i + 1, end, e_end - end))
            return false;
        region.free[i].len = start - e.start;
    } else if (start > e.start) {
        region.free[i].len = start - e.start;
    } else if (end < e_end) {
        region.free[i] = (struct extent){end, e_end - end};
    } else {
        remove_at(i);
    }
    return true;
}

uintptr_t region_alloc(size_t len, size_t align)
{
    /* First fit keeps blocks low and the big free tail in one piece. */
    for (size_t i = 0; i < region.count; i++) {
        struct extent e = region.free[i];
        uintptr_t start = (e.start + align - 1) & ~(uintptr_t)(align - 1);
        if (start < e.start || start - e.start > e.len || e.len - (start - e.start) < len)
            continue;
        uintptr_t got = carve(i, start, len) ? start : 0;
        check_free_list();
        return got;
    }
    return 0;
}

void region_free(uintptr_t start, size_t len)
{
    RM_ASSERT(len > 0 && start >= region.base && start + len <= region.end);
    size_t i = lower_bound(start);
    bool join_prev = i > 0 && region.free[i - 1].start + region.free[i - 1].len == start;
    bool join_next = i < region.count && start + len == region.free[i].start;
    if (join_prev && join_next) {
        region.free[i - 1].len += len + region.free[i].len;
        remove_at(i);
    } else if (join_prev) {
        region.free[i - 1].len += len;
    } else if (join_next) {
        region.free[i].start = start;
        region.free[i].len += len;
    } else if (!insert_at(i, start, len)) {
        /* No memory for the table: the range stays reserved but unused. */
    }
    check_free_list();
}

size_t region_trim(size_t keep)
{
    if (region.count == 0)
        return 0;
    struct extent *last = &region.free[region.count - 1];
    if (last->start + last->len != region.end || last->len <= keep)
        return 0;
    size_t cut = (last->len - keep) & ~(os_page_size() - 1);
    if (cut == 0)
        return 0;
    uintptr_t end = region.end - cut;
    /* The range shrinks before the kernel may hand the cut part to anyone:
     * a pointer there is never taken for one of ours. */
    __atomic_store_n(&region.end, end, __ATOMIC_RELEASE);
    os_unreserve((void *)end, cut);
    last->len -= cut;
    if (last->len == 0)
        region.count--;
    check_free_list();
    return cut;
}

bool region_extend(uintptr_t start, size_t len, size_t new_len)
{
    uintptr_t end = start + len;
    size_t i = lower_bound(end);
    if (i == region.count || region.free[i].start != end ||
        region.free[i].len < new_len - len)
        return false;
    bool taken = carve(i, end, new_len - len);
    check_free_list();
    return taken;
}
