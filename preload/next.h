/* next: the allocator behind refmalloc (glibc's, or one preloaded after it),
 * found with dlsym(RTLD_NEXT). While dlsym runs it may itself call malloc;
 * those requests are served from a static bootstrap buffer. */
#ifndef RM_NEXT_H
#define RM_NEXT_H

#include <link.h>
#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>

struct next_allocator {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    size_t (*usable_size)(void *);
    struct mallinfo2 (*mallinfo2)(void);   /* may be NULL */
    struct mallinfo (*mallinfo)(void);     /* may be NULL */
    /* glibc's own __libc_* (for the allocators that call them) */
    void *(*libc_malloc)(size_t);
    void (*libc_free)(void *);
    void *(*libc_calloc)(size_t, size_t);
    void *(*libc_realloc)(void *, size_t);
    void *(*libc_memalign)(size_t, size_t);
    void *(*libc_valloc)(size_t);
    void *(*libc_pvalloc)(size_t);
    /* glibc's own malloc (libc.so.6 or libc_malloc_debug.so): its chunk
     * layout is known, see next_glibc_chunk_plausible. */
    bool glibc;
    /* libc_malloc_debug.so with MALLOC_CHECK_ on: its malloc_usable_size
     * aborts on the bad pointers its free would report, with another
     * message, so refmalloc asks it nothing about a pointer being freed. */
    bool checked;
    /* glibc's own libc.so.6 malloc on x86_64 (no memory tagging there): the
     * usable size of a block it just returned is read from the chunk header,
     * see next_fresh_usable, instead of a call per malloc. */
    bool header_usable;
};

extern struct next_allocator rm_next;

/* The usable size of a block the next allocator has just returned, when its
 * chunk layout is known. glibc keeps the chunk size, with three flag bits,
 * in the word before the block: a chunk in a heap also lends the block the
 * first word of the next chunk (prev_size, unused while this one is in use),
 * an mmapped one (flag 2) does not. 0 when not known: ask the allocator. */
static inline size_t next_fresh_usable(const void *p)
{
    if (!rm_next.header_usable)
        return 0;
    size_t head = ((const size_t *)p)[-1];
    return (head & ~(size_t)7) - (head & 2 ? 2 : 1) * sizeof(size_t);
}

/* glibc's libc.so (the loaded object that defines sym: os_object_of). */
struct link_map *next_libc_object(void);

/* The next definition of libc function `name` after refmalloc (for the
 * non-allocator calls refmalloc interposes), looked up once into *slot. */
void *next_libc_function(void **slot, const char *name);

/* dlsym(handle, name), also finding glibc's non-default versioned
 * definitions (libc_malloc_debug.so's), whichever is first in the order. */
void *next_lookup(void *handle, const char *name);

/* Remember an allocator object other than libc (the next one, or the one
 * loaded first) that calls glibc's __libc_* names for its own blocks, as
 * libc_malloc_debug.so does: refmalloc's __libc_* must not take those calls.
 * `sym` is any of its functions. */
void next_note_allocator(void *sym);
/* Is `code` (a return address) inside such an allocator? */
bool next_called_by_allocator(const void *code);

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
