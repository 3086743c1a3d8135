#include "blocks.h"

#include "os.h"

static struct {
    struct block *slots;
    size_t cap;           /* power of two */
    size_t count;
} table;

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
        if (table.slots[i].start == start)
            return &table.slots[i];
        if (table.slots[i].start == 0)
            return NULL;
    }
}

static bool grow(void)
{
    size_t cap = table.cap ? table.cap * 2 : 256;
    struct block *slots = os_alloc_meta(cap * sizeof(struct block));
    if (!slots)
        return false;
    for (size_t i = 0; i < table.cap; i++) {
        if (table.slots[i].start == 0)
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
    return true;
}

struct block *blocks_insert(const struct block *b)
{
    if ((table.count + 1) * 2 > table.cap && !grow())
        return NULL;
    size_t i = slot_of(b->start, table.cap);
    while (table.slots[i].start != 0)
        i = (i + 1) & (table.cap - 1);
    table.slots[i] = *b;
    table.count++;
    return &table.slots[i];
}

void blocks_remove(struct block *b)
{
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t mask = table.cap - 1;
    size_t hole = (size_t)(b - table.slots);
    for (size_t i = (hole + 1) & mask; table.slots[i].start != 0; i = (i + 1) & mask) {
        size_t home = slot_of(table.slots[i].start, table.cap);
        /* Move entry i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            table.slots[hole] = table.slots[i];
            hole = i;
        }
    }
    table.slots[hole].start = 0;
    table.count--;
}

void blocks_each(void (*fn)(struct block *b, void *ctx), void *ctx)
{
    for (size_t i = 0; i < table.cap; i++)
        if (table.slots[i].start != 0)
            fn(&table.slots[i], ctx);
}
