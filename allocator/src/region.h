/* region: the one reserved address range that holds every large block.
 * Ownership of a pointer is a range check; inside, free extents are kept
 * address-ordered and coalesced. All calls except region_contains() must be
 * made under the large-block lock. */
#ifndef RM_REGION_H
#define RM_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reserve up to `want` bytes, halving on failure down to `least`. */
bool region_init(size_t want, size_t least);
bool region_contains(const void *p);
size_t region_size(void);
uintptr_t region_base(void);

/* A free extent of len bytes whose start is a multiple of align; 0 if none. */
uintptr_t region_alloc(size_t len, size_t align);
void region_free(uintptr_t start, size_t len);
/* Give the kernel back the free end of the range beyond `keep` bytes of it
 * (the range shrinks: what is cut is no longer ours). Bytes cut. */
size_t region_trim(size_t keep);
/* Take [start + len, start + new_len) if it is free. */
bool region_extend(uintptr_t start, size_t len, size_t new_len);

#endif
