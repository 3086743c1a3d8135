/* refmalloc_internal: everything of the allocator core (allocator/src) the
 * interposition layer (preload/) may use. preload/ sees this header,
 * allocator/include/refmalloc.h and the base layer (allocator/base: the OS
 * calls, diagnostics, options, stats, descriptors); allocator/src is private
 * to the core, which the include paths of CMakeLists.txt enforce. Not
 * installed: internal to the library. */
#ifndef REFMALLOC_INTERNAL_H
#define REFMALLOC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Life cycle ---- */

/* Start-up: page size, options, memory tagging. Runs before the next
 * allocator is resolved; the large-block manager sets itself up at its
 * first block (large.c, start_once). */
void rm_core_init(void);

/* Around fork (preload/runtime.c owns the order of every lock: the stdio
 * list lock, then the call sites', then these). With `locked` false the
 * process never made a thread and no lock is taken; the child's handler
 * renews the locks either way. */
void rm_core_fork_prepare(bool locked);
void rm_core_fork_parent(bool locked);
void rm_core_fork_child(void);

/* At exit: the report. */
void rm_core_exit(void);

/* ---- Large blocks: at or above the threshold, one lock guards them ---- */

/* The code that asked for a block, as the call-site log names it
 * (preload/sites.c makes these when sites= or site_list= is set). Immutable
 * and never freed once made, so a block keeps a bare pointer and the report
 * reads it under the large lock alone, without the sites lock (whose order
 * is before it). */
struct rm_site_name {
    const char *module;     /* "?" when dladdr named none */
    const char *symbol;     /* NULL: no symbol */
    uintptr_t offset;       /* from the module's base (the address when "?") */
};

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

/* Live blocks and their usable bytes (for mallinfo), without the pagemap
 * reads a walk of the blocks makes. */
void large_live_totals(size_t *blocks, size_t *bytes);

/* Around setrlimit(RLIMIT_AS): before, give back the unused reservation the
 * new limit has no room for; after, read the limit again. */
void large_address_limit_lowering(size_t limit);
void large_address_limit_changed(void);

/* A seccomp filter is about to be installed (preload/sandbox.c), which may
 * kill the process at a system call glibc's malloc does not make: do now
 * what would need one later (the pattern files, the pagemap descriptor, the
 * count of the program's mappings), and never again. */
void large_before_sandbox(void);

/* track_reads: the program got large block p of `size` bytes from return
 * address site (its reads before writes name that site); and around a copy
 * of a whole large block that the allocator makes for realloc, whose reads
 * are not the program's. */
void large_note_site(const void *p, size_t size, const void *site);
void large_copy_begin(void);
void large_copy_end(void);

#endif
