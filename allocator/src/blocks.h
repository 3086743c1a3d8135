/* blocks: the table of large blocks, keyed by the address handed out.
 * Open addressing in memory of its own; callers hold the large-block lock. */
#ifndef RM_BLOCKS_H
#define RM_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "refmalloc_internal.h"   /* struct rm_site_name */

enum block_state { BLOCK_LIVE = 1, BLOCK_CACHED = 2 };


struct block {
    uintptr_t start;      /* 0: empty slot */
    size_t size;          /* bytes requested */
    size_t mapped;        /* bytes mapped from start: the usable size */
    size_t capacity;      /* bytes of address range reserved from start */
    size_t refpage;       /* bytes of it mapped with reference pages */
    size_t counted;       /* bytes counted in the _bytes stats: its largest size */
    const struct rm_site_name *site;   /* who allocated it; NULL: not recorded */
    uint32_t mappings;    /* VMAs accounted to this block */
    uint8_t kind;         /* enum refmalloc_block_kind */
    uint8_t state;
    uint8_t pattern;
    uint8_t tag;          /* memory tag of its pages and pointer; 0: untagged */
    bool mixed;           /* reference pages with eager (anonymous) parts */
    bool zeroed;          /* tagged calloc: its reference pages hold zeros */
    bool dirty;           /* cached with its written pages not yet restored */
    bool reused;          /* handed out again from the cache at least once */
};

struct block *blocks_find(uintptr_t start);
/* Insert a copy of *b; returns the stored entry or NULL (no memory). An
 * insert may move every entry; a removal moves none. */
struct block *blocks_insert(const struct block *b);
void blocks_remove(struct block *b);
/* Make sure n inserts will not fail (this may move every entry). */
bool blocks_reserve(size_t n);
/* Call fn on every block; fn must not insert or remove. */
void blocks_each(void (*fn)(struct block *b, void *ctx), void *ctx);

#endif
