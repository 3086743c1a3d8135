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

/* Allocate a large block of `size` bytes aligned to `align` (a power of two),
 * zero-filled if `zero`, else holding `pattern` (which also fills what realloc
 * later adds). NULL with *unavailable set when the region cannot take it (the
 * caller uses the next allocator), NULL with errno ENOMEM when the kernel
 * refuses memory. `site` (NULL when sites are not recorded) stays with the
 * block, through realloc, for the report. */
void *large_alloc(size_t size, size_t align, bool zero, unsigned char pattern,
                  const struct rm_site_name *site, bool *unavailable);

bool large_owns(const void *p);

/* Free a block; aborts with a message naming `caller` on a pointer that is
 * not a live block. */
void large_free(void *p, const char *caller);

/* Resize; NULL leaves p untouched. NULL with *unavailable set: refmalloc
 * has no room for it (budget, range, mappings refused): the caller moves the
 * block to the next allocator. */
void *large_realloc(void *p, size_t size, bool *unavailable);

size_t large_usable(const void *p);

int large_query(const void *addr, struct refmalloc_block_info *info);

/* Visit every live block (the lock is held during the walk). */
void large_each_live(inspect_fn *fn, void *ctx);

/* Live blocks and their usable bytes (for mallinfo), without the pagemap
 * reads large_each_live makes. */
void large_live_totals(size_t *blocks, size_t *bytes);

/* Visit the last blocks freed, oldest first (the lock is held). */
void large_each_freed(inspect_fn *fn, void *ctx);

/* Set up the region and read the limits (at start-up: later a seccomp
 * filter may refuse what this needs). Idempotent. */
void large_start(void);

/* Around setrlimit(RLIMIT_AS): before, give back the unused reservation the
 * new limit has no room for; after, read the limit again. */
void large_address_limit_lowering(size_t limit);
void large_address_limit_changed(void);

/* A seccomp filter is about to be installed (preload/sandbox.c), which may
 * kill the process at a system call glibc's malloc does not make: do now
 * what would need one later (the pattern files, the pagemap descriptor, the
 * count of the program's mappings), and never again. */
void large_before_sandbox(void);

void large_fork_prepare(void);
void large_fork_parent(void);
void large_fork_child(void);

#endif
