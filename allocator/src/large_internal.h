/* large_internal: the top layer of the large-block manager, shared by its
 * two files: large.c (start-up, allocation, free, the queries, fork) and
 * resize.c (realloc). These own the large lock and the eviction policy:
 * when mem says a block does not fit (budget, region), they drop cached
 * blocks. Every function here expects the lock to be held. */
#ifndef RM_LARGE_INTERNAL_H
#define RM_LARGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "large.h"
#include "mem.h"

/* Make room for `need` more mappings by evicting cached blocks. */
bool large_budget_allows(size_t need);
/* mem_reserve_range(), evicting cached blocks while the region is full. */
uintptr_t large_reserve_range(size_t len, size_t align, bool room, size_t *got);
/* Map [at, at+len) with fresh memory for block b: zero pages, reference
 * pages, or anonymous memory the caller must fill (FRESH_EAGER). A tagged
 * block's zero pages come from the zero byte's reference pages, which carry
 * the tag as the pattern's do. */
enum fresh large_map_fresh(struct block *b, uintptr_t at, size_t len, bool zero);
/* Give a block's memory back and drop it from the table. */
void large_release(struct block *b);
/* The live block p points to in *b, NULL; otherwise why it is none (the
 * caller unlocks, then aborts with large_bad_pointer). */
const char *large_live_block(const void *p, struct block **b);
_Noreturn void large_bad_pointer(const char *caller, const void *p, const char *why);
void large_trace(const char *op, uintptr_t addr, size_t size);

#endif
