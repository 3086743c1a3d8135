/* entry: the allocation paths with an explicit call site, for entry points
 * that wrap others (operator new), so that the site recorded is the caller's
 * and not refmalloc's own. */
#ifndef RM_ENTRY_H
#define RM_ENTRY_H

#include <stddef.h>

void *rm_malloc_from(size_t size, const void *site);
int rm_posix_memalign_from(void **out, size_t align, size_t size, const void *site);

#endif
