/* region.c: first fit, alignment, coalescing on free (with the block
 * before, after, both), extension in place, trimming the free tail, and a
 * free list that outgrows its first page of metadata. */
#include <stdint.h>

#include "os.h"
#include "region.h"
#include "unit.h"

static size_t page;

static uintptr_t at(size_t pages)
{
    return region_base() + pages * page;
}

int main(void)
{
    page = os_page_size();
    size_t npages = 2048;
    CHECK(region_init(npages * page, npages * page));
    CHECK(region_size() == npages * page);
    CHECK(region_base() % page == 0);
    CHECK(region_contains((void *)region_base()));
    CHECK(region_contains((void *)(at(npages) - 1)));
    CHECK(!region_contains((void *)at(npages)));
    CHECK(!region_contains((void *)(region_base() - 1)));

    /* First fit, from the bottom. */
    uintptr_t a = region_alloc(page, page), b = region_alloc(page, page);
    uintptr_t c = region_alloc(page, page), d = region_alloc(page, page);
    CHECK(a == at(0) && b == at(1) && c == at(2) && d == at(3));
    CHECK(region_alloc((npages + 1) * page, page) == 0);   /* larger than the region */

    /* Freeing a and c leaves holes; b joins both of its neighbours. */
    region_free(a, page);
    region_free(c, page);
    CHECK(region_alloc(page, page) == a);   /* the first hole */
    region_free(a, page);
    region_free(b, page);                   /* joins a (before) and c (after) */
    CHECK(region_alloc(3 * page, page) == a);
    region_free(a, 3 * page);

    /* Joining only the extent after it, both, only the one before it. */
    region_free(d, page);                   /* everything is free again */
    CHECK(region_alloc(npages * page, page) == at(0));
    region_free(at(0), npages * page);
    uintptr_t x = region_alloc(4 * page, page);
    CHECK(x == at(0));
    region_free(x + 2 * page, 2 * page);    /* joins the free tail after it */
    CHECK(region_alloc((npages - 2) * page, page) == at(2));
    region_free(at(2), (npages - 2) * page);
    region_free(x, page);                   /* x + page is still taken */
    region_free(x + page, page);            /* joins the extents before and after */
    CHECK(region_alloc(npages * page, page) == at(0));
    region_free(at(0), npages * page);
    uintptr_t p = region_alloc(page, page), q = region_alloc(page, page);
    uintptr_t r = region_alloc(page, page);
    region_free(p, page);
    region_free(q, page);                   /* joins p before it only: r is taken */
    CHECK(region_alloc(2 * page, page) == p);
    CHECK(region_alloc(page, page) == r + page);
    region_free(r + page, page);
    region_free(p, 2 * page);
    region_free(r, page);
    CHECK(region_alloc(npages * page, page) == at(0));
    region_free(at(0), npages * page);

    /* Alignment: the start is a multiple of align, the bytes skipped stay free. */
    uintptr_t one = region_alloc(page, page);
    size_t align = 64 * page;
    uintptr_t aligned = region_alloc(page, align);
    CHECK(aligned != 0 && aligned % align == 0 && aligned > one);
    CHECK(region_alloc(page, page) == one + page);   /* the gap before `aligned` */
    region_free(one + page, page);
    region_free(aligned, page);
    region_free(one, page);

    /* Extension in place, into free bytes only. */
    uintptr_t e = region_alloc(page, page);
    uintptr_t f = region_alloc(page, page);
    CHECK(!region_extend(e, page, 2 * page));       /* f is in the way */
    CHECK(region_extend(f, page, 3 * page));
    CHECK(region_alloc(page, page) == f + 3 * page);
    region_free(f + 3 * page, page);
    CHECK(!region_extend(f, 3 * page, (npages + 1) * page));   /* past the end */
    region_free(e, page);
    region_free(f, 3 * page);

    /* Many holes: the free list grows past its first page of metadata. */
    size_t n = 1200;
    for (size_t i = 0; i < n; i++)
        CHECK(region_alloc(page, page) == at(i));
    for (size_t i = 0; i < n; i += 2)
        region_free(at(i), page);
    for (size_t i = 0; i < n; i += 2)      /* each hole is found again, in order */
        CHECK(region_alloc(page, page) == at(i));
    for (size_t i = 0; i < n; i++)
        region_free(at(i), page);
    CHECK(region_alloc(npages * page, page) == at(0));
    region_free(at(0), npages * page);

    /* Trimming gives back the free tail beyond `keep` bytes (rounded up to
     * a page): the range ends there. */
    uintptr_t g = region_alloc(16 * page, page);
    CHECK(region_trim(npages * page) == 0);          /* keeps all it has */
    size_t cut = region_trim(100 * page + 1);
    CHECK(cut == (npages - 16 - 101) * page);
    CHECK(region_size() == 117 * page);
    CHECK(!region_contains((void *)at(117)));
    CHECK(region_contains((void *)at(116)));
    CHECK(region_alloc(102 * page, page) == 0);
    uintptr_t h = region_alloc(101 * page, page);
    CHECK(h == at(16));
    CHECK(region_trim(0) == 0);                      /* the tail is taken */
    region_free(h, 101 * page);
    region_free(g, 16 * page);
    CHECK(region_trim(0) == 117 * page);             /* everything */
    CHECK(region_size() == 0);
    CHECK(region_alloc(page, page) == 0);
    return unit_done("region");
}
