#include "next.h"

#include <dlfcn.h>
#include <stdalign.h>
#include <stdint.h>

#include "out.h"

struct next_allocator rm_next;

/* dlsym needs little (an error buffer at most): 64 KiB is plenty. */
#define BOOTSTRAP_BYTES (64u << 10)
#define BOOTSTRAP_HEADER 16u

static struct {
    alignas(64) unsigned char buf[BOOTSTRAP_BYTES];
    size_t used;
} bootstrap;

void *bootstrap_alloc(size_t size, size_t align)
{
    if (align < BOOTSTRAP_HEADER)
        align = BOOTSTRAP_HEADER;
    if (size > BOOTSTRAP_BYTES || align > BOOTSTRAP_BYTES)
        return NULL;
    size_t need = (size + BOOTSTRAP_HEADER + align + 15) & ~(size_t)15;
    size_t at = __atomic_fetch_add(&bootstrap.used, need, __ATOMIC_RELAXED);
    if (at + need > BOOTSTRAP_BYTES)
        return NULL;
    uintptr_t p = (uintptr_t)bootstrap.buf + at + BOOTSTRAP_HEADER;
    p = (p + align - 1) & ~(uintptr_t)(align - 1);
    /* The size sits just before the block; static memory is already zero,
     * so calloc callers need no clearing. */
    *(size_t *)(p - BOOTSTRAP_HEADER) = size;
    return (void *)p;
}

bool bootstrap_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)bootstrap.buf;
    return a >= base && a < base + BOOTSTRAP_BYTES;
}

size_t bootstrap_size(const void *p)
{
    return *(const size_t *)((const unsigned char *)p - BOOTSTRAP_HEADER);
}

static void *lookup(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

bool next_init(void)
{
    rm_next.malloc = (void *(*)(size_t))lookup("malloc");
    rm_next.free = (void (*)(void *))lookup("free");
    rm_next.calloc = (void *(*)(size_t, size_t))lookup("calloc");
    rm_next.realloc = (void *(*)(void *, size_t))lookup("realloc");
    rm_next.memalign = (void *(*)(size_t, size_t))lookup("memalign");
    if (!rm_next.memalign)
        rm_next.memalign = (void *(*)(size_t, size_t))lookup("aligned_alloc");
    rm_next.usable_size = (size_t(*)(void *))lookup("malloc_usable_size");
    if (rm_next.malloc && rm_next.free && rm_next.calloc && rm_next.realloc &&
        rm_next.memalign && rm_next.usable_size)
        return true;
    out_diag("the next allocator lacks malloc, free, calloc, realloc, memalign or "
             "malloc_usable_size; refmalloc cannot run", NULL, NULL);
    return false;
}
