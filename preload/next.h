/* next: the allocator behind refmalloc (glibc's, or one preloaded after it),
 * found with dlsym(RTLD_NEXT). While dlsym runs it may itself call malloc;
 * those requests are served from a static bootstrap buffer. */
#ifndef RM_NEXT_H
#define RM_NEXT_H

#include <stdbool.h>
#include <stddef.h>

struct next_allocator {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    size_t (*usable_size)(void *);
    /* glibc's own malloc (libc.so.6 or libc_malloc_debug.so): its chunk
     * layout is known, see next_glibc_chunk_plausible. */
    bool glibc;
};

extern struct next_allocator rm_next;

/* Resolve the next allocator; false (with a message) if it is incomplete. */
bool next_init(void);

/* For a glibc next allocator: does the pointer pass the cheap checks
 * glibc's free makes before it trusts the chunk header (alignment, size
 * field, no wrap-around)? False means glibc's free reports it. */
bool next_glibc_chunk_plausible(const void *p);

/* The bootstrap buffer: never freed, recognised by address. */
void *bootstrap_alloc(size_t size, size_t align);
bool bootstrap_owns(const void *p);
size_t bootstrap_size(const void *p);

#endif
