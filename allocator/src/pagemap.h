/* pagemap: which pages of a range the program has written, from
 * /proc/self/pagemap. In a private mapping of the pattern file a page that
 * is still the shared file page holds the pattern; a page that is anonymous
 * was copied on a write (or, in anonymous memory, touched at all). */
#ifndef RM_PAGEMAP_H
#define RM_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

/* Called for each run of written pages [start, start + len). */
typedef void (*pagemap_run_fn)(uintptr_t start, size_t len, void *ctx);

/* Count the written pages of [addr, addr + npages pages); call fn (if not
 * NULL) on each run of them. Returns the count, or -1 if unreadable. */
long pagemap_written(uintptr_t addr, size_t npages, pagemap_run_fn fn, void *ctx);

/* Pages of [addr, addr + npages pages), anonymous memory that reads as
 * zeros, that the program wrote: its own private pages, not the kernel's
 * zero page a read maps. -1 if unreadable. */
long pagemap_private_written(uintptr_t addr, size_t npages);

/* One enum refmalloc_page_state per page into out. Returns 0, or -1 if unreadable. */
int pagemap_states(uintptr_t addr, size_t npages, unsigned char *out);

/* In a child after fork: close the parent's descriptor (the next scan opens
 * the child's own). */
void pagemap_fork_child(void);

/* A seccomp filter is about to be installed, which may forbid pread: the
 * pagemap is unreadable from now on (callers then treat every page as
 * written: restore or copy blocks whole). */
void pagemap_before_sandbox(void);

#endif
