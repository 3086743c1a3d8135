/* malloc-size.h: refmalloc's stand-in for glibc's internal <malloc-size.h>,
 * only the alignment constants tst-mallocalign1 checks against. glibc's
 * MALLOC_ALIGNMENT on x86_64 and aarch64 is 16, which is the alignment of
 * max_align_t there: malloc must return at least that. */
#ifndef RM_MALLOC_SIZE_H
#define RM_MALLOC_SIZE_H

#include <stddef.h>

#define MALLOC_ALIGNMENT (_Alignof(max_align_t) < 2 * sizeof(size_t) ? 2 * sizeof(size_t) \
                                                                     : _Alignof(max_align_t))
#define MALLOC_ALIGN_MASK (MALLOC_ALIGNMENT - 1)

#endif
