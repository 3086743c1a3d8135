/* first: an allocator loaded before refmalloc (LD_PRELOAD="libjemalloc.so.2
 * librefmalloc.so", or a program exporting its own malloc). Its malloc wins
 * the global scope, so refmalloc only sees the calls it lacks (reallocarray,
 * pvalloc, __libc_free...) with pointers it never made. Then refmalloc says so
 * in one line and passes every call to that allocator: no pattern, no large
 * blocks. */
#ifndef RM_FIRST_H
#define RM_FIRST_H

#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>

struct first_allocator {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable_size)(void *);
    void (*free_sized)(void *, size_t);
    void (*free_aligned_sized)(void *, size_t, size_t);
    void (*cfree)(void *);
    struct mallinfo2 (*mallinfo2)(void);   /* may be NULL */
    struct mallinfo (*mallinfo)(void);     /* may be NULL */
};

extern struct first_allocator rm_first;

/* Set at start-up, before the runtime is ready, never changed after. */
extern bool rm_passthrough;

/* Find who defines malloc first; if not refmalloc, resolve rm_first (one
 * line on stderr unless it is glibc's own, i.e. refmalloc was dlopen'ed)
 * and set rm_passthrough. False (with a message) if that allocator lacks
 * malloc, free or realloc. */
bool first_detect(void);

static inline bool passthrough(void)
{
    return __builtin_expect(rm_passthrough, 0);
}

#endif
