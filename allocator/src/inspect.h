/* inspect: what the program did with its large blocks: descriptions of
 * live blocks (pages written, from the pagemap) and the records of the last
 * blocks freed, which inspect owns. Every call is made under the large
 * lock; large.c takes it for the public queries. */
#ifndef RM_INSPECT_H
#define RM_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "refmalloc.h"

/* A block described, with the code that allocated it (NULL: not recorded). */
typedef void inspect_fn(const struct refmalloc_block_info *info,
                        const struct rm_site_name *site, void *ctx);

/* Pages of b the program wrote, -1 if the pagemap cannot be read. */
long inspect_written_pages(const struct block *b);
/* Keep a record of b, about to be freed, with its pages written. */
void inspect_record_freed(const struct block *b, long written);
/* Visit the records of the last blocks freed, oldest first. */
void inspect_each_freed(inspect_fn *fn, void *ctx);
/* In a forked child: it reports only what it frees. */
void inspect_forget_freed(void);
/* Describe the live block containing addr (untagged, in the region): 1,
 * -1 when its pagemap cannot be read, 0 when no live block contains it. */
int inspect_query(uintptr_t addr, struct refmalloc_block_info *info);
void inspect_each_live(inspect_fn *fn, void *ctx);
void inspect_live_totals(size_t *blocks, size_t *bytes);

#endif
