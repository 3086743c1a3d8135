/* cache: freed large blocks kept for reuse, oldest first. It owns the list,
 * its byte count and which blocks keep their written pages (the others give
 * them back with MADV_DONTNEED); it neither maps nor unmaps: large.c decides
 * what to keep and what to evict (cache_pop_oldest hands a block back for
 * it to release). Every call is made under the large lock. */
#ifndef RM_CACHE_H
#define RM_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "blocks.h"

#define CACHE_SLOTS 64

size_t cache_count(void);
size_t cache_bytes(void);
bool cache_full(void);
/* Could a block of `bytes` be kept without evicting one? */
bool cache_has_room(size_t bytes);
/* Can b be kept after free? (reference pages only, within the cache limit) */
bool cache_accepts(const struct block *b);
/* Keep b (live until now): it becomes BLOCK_CACHED; blocks in their first
 * life, and reused ones beyond cache_resident, give their written pages
 * back. The cache must not be full. */
void cache_insert(struct block *b);
/* Take the oldest block out of the cache (it must not be empty). */
struct block *cache_pop_oldest(void);
/* Take out the closest fit for len bytes at align holding `pattern`; NULL
 * if none. Its pattern is restored by cache_restore(). */
struct block *cache_take(size_t len, size_t align, unsigned char pattern);
/* Give a block taken out of the cache the protection of fresh memory and
 * its pattern back; false if either fails (release it then). */
bool cache_restore(struct block *b);
/* free_guard: make a block about to be cached inaccessible; false if the
 * kernel refuses (release it then). */
bool cache_guard(struct block *b);

#endif
