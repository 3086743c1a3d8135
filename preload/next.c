#include "next.h"

#include <dlfcn.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "os.h"
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

/* Is the object defining `fn` glibc's libc.so or libc_malloc_debug.so? */
static bool from_glibc(void *fn)
{
    Dl_info here, libc;
    void *version = dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
    if (!fn || !dladdr(fn, &here))
        return false;
    if (version && dladdr(version, &libc) && libc.dli_fbase == here.dli_fbase)
        return true;
    const char *name = here.dli_fname ? strrchr(here.dli_fname, '/') : NULL;
    name = name ? name + 1 : here.dli_fname;
    return name && !strncmp(name, "libc_malloc_debug.so", 20);
}

/* glibc's malloc/malloc.c: the chunk header (prev_size, size) sits just
 * before the block; the size's low three bits are flags. */
#define CHUNK_SIZE_T sizeof(size_t)
#define CHUNK_ALIGN (2 * CHUNK_SIZE_T)
#define CHUNK_MINSIZE (4 * CHUNK_SIZE_T)
#define CHUNK_IS_MMAPPED 0x2u
#define CHUNK_FLAGS 0x7u

bool next_glibc_chunk_plausible(const void *p)
{
    uintptr_t mem = (uintptr_t)p;
    if (mem % CHUNK_ALIGN)
        return false;   /* "free(): invalid pointer" */
    const size_t *header = (const size_t *)p - 2;
    uintptr_t chunk = (uintptr_t)header;
    size_t size = header[1] & ~(size_t)CHUNK_FLAGS;
    if (size < CHUNK_MINSIZE || size % CHUNK_ALIGN || chunk > UINTPTR_MAX - size)
        return false;   /* "free(): invalid size" / "invalid pointer" */
    if (header[1] & CHUNK_IS_MMAPPED) {
        /* munmap_chunk's check: the mapping is page aligned. */
        size_t prev = header[0];
        size_t page_mask = os_page_size() - 1;
        if (((chunk - prev) | (prev + size)) & page_mask)
            return false;   /* "munmap_chunk(): invalid pointer" */
    }
    return true;
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
    rm_next.glibc = from_glibc((void *)rm_next.free);
    if (rm_next.malloc && rm_next.free && rm_next.calloc && rm_next.realloc &&
        rm_next.memalign && rm_next.usable_size)
        return true;
    out_diag("the next allocator lacks malloc, free, calloc, realloc, memalign or "
             "malloc_usable_size; refmalloc cannot run", NULL, NULL);
    return false;
}
