/* large: blocks at or above the threshold. They live in the reserved region,
 * are backed by reference pages (or, as a fallback, anonymous memory filled
 * with the pattern), are cached after free, and grow in place by mapping
 * more chunks. One lock guards everything here. */
#ifndef RM_LARGE_H
#define RM_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "inspect.h"
#include "refmalloc.h"
#include "refmalloc_internal.h"   /* the block API preload/ calls */

int large_query(const void *addr, struct refmalloc_block_info *info);

/* Visit every live block (the lock is held during the walk). */
void large_each_live(inspect_fn *fn, void *ctx);

/* Visit the last blocks freed, oldest first (the lock is held). */
void large_each_freed(inspect_fn *fn, void *ctx);

void large_fork_prepare(void);
void large_fork_parent(void);
void large_fork_child(void);

#endif
