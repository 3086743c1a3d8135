#include "next.h"

#include <dlfcn.h>
#include <link.h>
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

/* The version glibc gives `name` on this architecture, NULL if unknown.
 * libc_malloc_debug.so defines the malloc family only as non-default
 * versions (malloc@GLIBC_2.2.5, not @@): a plain dlsym skips them and finds
 * libc's, which would bypass MALLOC_CHECK_ and friends. */
static const char *glibc_version(const char *name)
{
    if (!strcmp(name, "mallinfo2"))
        return "GLIBC_2.33";
    if (!strcmp(name, "reallocarray"))
        return "GLIBC_2.26";
#if defined(__x86_64__)
    return "GLIBC_2.2.5";
#elif defined(__aarch64__)
    return "GLIBC_2.17";
#else
    return NULL;
#endif
}

struct link_map *next_libc_object(void)
{
    return os_object_of(dlsym(RTLD_DEFAULT, "gnu_get_libc_version"));
}

void *next_libc_function(void **slot, const char *name)
{
    if (!*slot)
        *slot = dlsym(RTLD_NEXT, name);
    return *slot;
}

/* Of two definitions, the one whose object comes first in the search order
 * (the order of the link map list for the objects loaded at start-up). */
static void *earlier(void *a, void *b)
{
    struct link_map *ma = os_object_of(a), *mb = os_object_of(b);
    for (struct link_map *m = ma; m && mb; m = m->l_next)
        if (m == mb)
            return a;
    return ma && mb ? b : a;
}

void *next_lookup(void *handle, const char *name)
{
    void *plain = dlsym(handle, name);
    const char *version = glibc_version(name);
    /* dlvsym rejects unversioned definitions (jemalloc's, mimalloc's,
     * tcmalloc's) and goes on to libc's: when both answer, take the nearer. */
    void *versioned = version ? dlvsym(handle, name, version) : NULL;
    if (!versioned || versioned == plain)
        return plain;
    if (!plain)
        return versioned;
    return earlier(versioned, plain);
}

static void *lookup(const char *name)
{
    return next_lookup(RTLD_NEXT, name);
}

/* Is the object defining `fn` libc_malloc_debug.so? */
static bool from_malloc_debug(void *fn)
{
    struct link_map *m = os_object_of(fn);
    if (!m || !m->l_name)
        return false;
    const char *name = strrchr(m->l_name, '/');
    name = name ? name + 1 : m->l_name;
    return !strncmp(name, "libc_malloc_debug.so", 20);
}

/* Is the object defining `fn` glibc's libc.so or libc_malloc_debug.so? */
static bool from_glibc(void *fn)
{
    struct link_map *m = os_object_of(fn);
    return (m && m == next_libc_object()) || from_malloc_debug(fn);
}

/* MALLOC_CHECK_ (or the glibc.malloc.check tunable) set to non-zero. */
static bool malloc_check_asked(void)
{
    const char *v = os_getenv("MALLOC_CHECK_");
    if (v && *v && strcmp(v, "0"))
        return true;
    const char *t = os_getenv("GLIBC_TUNABLES");
    const char *c = t ? strstr(t, "glibc.malloc.check=") : NULL;
    return c && c[19] && c[19] != '0';
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

static struct link_map *allocators[2];

void next_note_allocator(void *sym)
{
    struct link_map *m = os_object_of(sym);
    if (!m || m == next_libc_object())
        return;   /* libc calls its own __libc_* directly, never ours */
    for (size_t i = 0; i < sizeof allocators / sizeof *allocators; i++)
        if (!allocators[i] || allocators[i] == m) {
            allocators[i] = m;
            return;
        }
}

bool next_called_by_allocator(const void *code)
{
    if (!allocators[0])
        return false;
    struct link_map *m = os_object_of((void *)code);
    return m && (m == allocators[0] || m == allocators[1]);
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
    rm_next.mallinfo2 = (struct mallinfo2(*)(void))lookup("mallinfo2");
    rm_next.mallinfo = (struct mallinfo(*)(void))lookup("mallinfo");
    *(void **)&rm_next.libc_malloc = lookup("__libc_malloc");
    *(void **)&rm_next.libc_free = lookup("__libc_free");
    *(void **)&rm_next.libc_calloc = lookup("__libc_calloc");
    *(void **)&rm_next.libc_realloc = lookup("__libc_realloc");
    *(void **)&rm_next.libc_memalign = lookup("__libc_memalign");
    *(void **)&rm_next.libc_valloc = lookup("__libc_valloc");
    *(void **)&rm_next.libc_pvalloc = lookup("__libc_pvalloc");
    next_note_allocator((void *)rm_next.malloc);
    rm_next.glibc = from_glibc((void *)rm_next.free);
    rm_next.checked = from_malloc_debug((void *)rm_next.free) && malloc_check_asked();
#if defined(__x86_64__)
    rm_next.header_usable = rm_next.glibc && !from_malloc_debug((void *)rm_next.free);
#endif
    if (rm_next.malloc && rm_next.free && rm_next.calloc && rm_next.realloc &&
        rm_next.memalign && rm_next.usable_size)
        return true;
    out_diag("the next allocator lacks malloc, free, calloc, realloc, memalign or "
             "malloc_usable_size; refmalloc cannot run", NULL, NULL);
    return false;
}
