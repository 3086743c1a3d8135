#include "blocks.h"

#include "debug.h"
#include "os.h"

/* A removed entry leaves a tombstone, so that removing one block never moves
 * another: callers may hold a block pointer while the cache evicts others.
 * Only an insert (which may rehash) moves entries. */
#define TOMBSTONE ((uintptr_t)1)   /* never a block start: those are page aligned */

static struct {
    struct block *slots;
    size_t cap;           /* power of two */
    size_t count;         /* live entries */
    size_t tombstones;
} table;

/* The table's counts (debug builds): live entries and tombstones leave at
 * least half the slots empty, so that every probe ends; in a small table
 * (a walk costs little) both counts are checked against the slots. */
static void check_table(void)
{
#ifdef RM_DEBUG
    RM_ASSERT((table.count + table.tombstones) * 2 <= table.cap);
    if (table.cap > 1024)
        return;
    size_t live = 0, dead = 0;
    for (size_t i = 0; i < table.cap; i++) {
        live += table.slots[i].start > TOMBSTONE;
        dead += table.slots[i].start == TOMBSTONE;
    }
    RM_ASSERT(live == table.count && dead == table.tombstones);
#endif
}

static size_t slot_of(uintptr_t start, size_t cap)
{
    /* Block starts are page aligned: mix the high bits down. */
    uint64_t h = (uint64_t)start * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

struct block *blocks_find(uintptr_t start)
{
    if (table.cap == 0)
        return NULL;
    for (size_t i = slot_of(start, table.cap);; i = (i + 1) & (table.cap - 1)) {
        /* Tombstones are skipped: they neither match nor end the chain. */
        if (table.slots[i].start == start)
            return &table.slots[i];
        if (table.slots[i].start == 0)
            return NULL;
    }
}

/* Rehash into a table with room for `more` entries: twice as large, or as
 * large when tombstones are what fills it. */
static bool grow(size_t more)
{
    size_t cap = table.cap == 0 ? 256
               : (table.count + more) * 4 > table.cap ? table.cap * 2 : table.cap;
    struct block *slots = os_alloc_meta(cap * sizeof(struct block));
    if (!slots)
        return false;
    for (size_t i = 0; i < table.cap; i++) {
        if (table.slots[i].start <= TOMBSTONE)
            continue;
        size_t j = slot_of(table.slots[i].start, cap);
        while (slots[j].start != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = table.slots[i];
    }
    if (table.slots)
        os_free_meta(table.slots, table.cap * sizeof(struct block));
    table.slots = slots;
    table.cap = cap;
    table.tombstones = 0;
    return true;
}

bool blocks_reserve(size_t n)
{
    return (table.count + table.tombstones + n) * 2 <= table.cap || grow(n);
}

struct block *blocks_insert(const struct block *b)
{
    if (!blocks_reserve(1))
        return NULL;
    size_t i = slot_of(b->start, table.cap);
    while (table.slots[i].start > TOMBSTONE)
        i = (i + 1) & (table.cap - 1);
    if (table.slots[i].start == TOMBSTONE)
        table.tombstones--;
    table.slots[i] = *b;
    table.count++;
    check_table();
    return &table.slots[i];
}

void blocks_remove(struct block *b)
{
    RM_ASSERT(b->start > TOMBSTONE && table.count > 0);
    b->start = TOMBSTONE;
    table.count--;
    table.tombstones++;
    check_table();
}

void blocks_each(void (*fn)(struct block *b, void *ctx), void *ctx)
{
    for (size_t i = 0; i < table.cap; i++)
        if (table.slots[i].start > TOMBSTONE)
            fn(&table.slots[i], ctx);
}
