/* context: the program's current context (a test id, set by the pytest
 * plugin through refmalloc_set_context), which read-before-write findings
 * are recorded under. Process-wide, not per thread: a test's reads may come
 * from any of its threads.
 *
 * Names are interned in a fixed table: an entry, once published, never
 * changes, so that the read tracker's handler thread reads the current index
 * (one atomic load) and, at report time, its name, without any lock. */
#ifndef RM_CONTEXT_H
#define RM_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

/* Distinct names kept, and the longest kept (bytes, without the NUL):
 * longer names are truncated, a name beyond the table is counted in
 * context_dropped and leaves no context current. */
#define CONTEXTS_MAX 1024
#define CONTEXT_NAME_MAX 255

/* Make name current (NULL or "": none). 0, or -1 with errno ENOSPC when the
 * table is full (then no context is current) or ENOMEM. */
int context_set(const char *name);

/* The current context's index: 0 none, else a handle for context_name.
 * Lock-free: the handler thread calls it. */
uint32_t context_current(void);

/* The name of a handle context_current returned (NULL for 0). */
const char *context_name(uint32_t handle);

/* Names interned, and names refused because the table was full. */
size_t context_count(void);
uint64_t context_dropped(void);

/* In a forked child: the table's lock may have been held by another thread. */
void context_fork_child(void);

#endif
