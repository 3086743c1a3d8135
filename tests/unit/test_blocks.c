/* blocks.c: the table of large blocks. Lookups after inserts and removals,
 * entries that stay put when others are removed or after blocks_reserve,
 * the walk, and churn that fills the table with tombstones (lookups must
 * still end, the table must not grow without bound). */
#include <stdint.h>

#include "blocks.h"
#include "unit.h"

#define PAGE ((uintptr_t)4096)   /* block starts only need to be page-like */
#define BASE ((uintptr_t)1 << 40)

static uintptr_t start_of(size_t i)
{
    return BASE + i * PAGE;
}

static void count_each(struct block *b, void *ctx)
{
    size_t *n = ctx;
    (*n)++;
    CHECK(b->state == BLOCK_LIVE && b->size == (b->start - BASE) / PAGE);
}

int main(void)
{
    CHECK(blocks_find(start_of(0)) == NULL);   /* before any insert */

    size_t n = 3000;
    for (size_t i = 0; i < n; i++) {
        struct block b = {.start = start_of(i), .size = i, .mapped = PAGE,
                          .state = BLOCK_LIVE, .pattern = (uint8_t)i};
        struct block *in = blocks_insert(&b);
        CHECK(in && in->start == b.start && in->size == i);
    }
    for (size_t i = 0; i < n; i++) {
        struct block *b = blocks_find(start_of(i));
        CHECK(b && b->size == i && b->pattern == (uint8_t)i);
    }
    CHECK(blocks_find(start_of(n)) == NULL);
    CHECK(blocks_find(start_of(0) + 1) == NULL);   /* the tombstone value */

    /* Removing one entry moves no other. */
    struct block *keep = blocks_find(start_of(1));
    for (size_t i = 0; i < n; i += 2)
        blocks_remove(blocks_find(start_of(i)));
    CHECK(keep->start == start_of(1) && keep->size == 1);
    for (size_t i = 0; i < n; i++) {
        struct block *b = blocks_find(start_of(i));
        CHECK(i % 2 ? b && b->size == i : b == NULL);
    }
    size_t seen = 0;
    blocks_each(count_each, &seen);
    CHECK(seen == n / 2);

    /* After blocks_reserve(k), k inserts move no entry. */
    CHECK(blocks_reserve(64));
    keep = blocks_find(start_of(1));
    for (size_t i = 0; i < 64; i++) {
        struct block b = {.start = start_of(n + i), .size = n + i, .state = BLOCK_LIVE};
        CHECK(blocks_insert(&b) != NULL);
    }
    CHECK(keep == blocks_find(start_of(1)));
    for (size_t i = 0; i < 64; i++)
        blocks_remove(blocks_find(start_of(n + i)));

    /* Churn: every insert and remove leaves tombstones; a rehash clears
     * them, and lookups of absent keys still end. */
    for (size_t round = 0; round < 50000; round++) {
        uintptr_t s = start_of(2 * n + round);
        struct block b = {.start = s, .size = (s - BASE) / PAGE, .state = BLOCK_LIVE};
        CHECK(blocks_insert(&b) != NULL);
        CHECK(blocks_find(s) != NULL);
        blocks_remove(blocks_find(s));
        CHECK(blocks_find(s) == NULL);
    }
    seen = 0;
    blocks_each(count_each, &seen);
    CHECK(seen == n / 2);
    for (size_t i = 1; i < n; i += 2)
        CHECK(blocks_find(start_of(i)) != NULL);
    return unit_done("blocks");
}
