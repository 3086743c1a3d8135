/* interpose: the malloc family as the program sees it. Each call is routed
 * by size (large blocks to allocator/, small ones to the next allocator plus
 * a fill of the pattern) and each pointer back to the allocator that made it:
 * refmalloc's region (a range check), the bootstrap buffer, or the next one. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "entry.h"
#include "export.h"
#include "first.h"
#include "next.h"
#include "os.h"
#include "refmalloc_internal.h"
#include "runtime.h"
#include "sites.h"
#include "stats.h"

/* Entry points newer (C23) or older (cfree) than glibc 2.36's headers. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
void cfree(void *p);

/* glibc's malloc alignment on x86_64 and aarch64 (the bootstrap buffer's). */
#define BASE_ALIGNMENT 16u

/* Aligned requests above this go to the region even when small: the next
 * allocator would waste up to the alignment around each of them. */
#define LARGE_ALIGNMENT (64u << 10)

/* Set while this thread is inside the next allocator's malloc_usable_size:
 * tcmalloc's allocates (through operator new) on its first call, and asking
 * it again from there would recurse without end. */
static __thread bool asking_usable;

/* The next allocator's usable size of p, or `fallback` when asked from
 * inside that very call. */
static size_t next_usable(void *p, size_t fallback)
{
    if (asking_usable)
        return fallback;
    asking_usable = true;
    size_t usable = rm_next.usable_size(p);
    asking_usable = false;
    return usable;
}

/* A block fresh from the next allocator, filled with the pattern up to its
 * usable size (a program may use all of it). memset is the last call, so the
 * compiler can make it a jump. */
static void *small_fill(void *p, size_t usable, unsigned char pattern)
{
    stat_small_alloc(usable);
    return memset(p, pattern, usable);
}

static __attribute__((noinline)) void *small_fill_asking(void *p, size_t size,
                                                         unsigned char pattern)
{
    return small_fill(p, next_usable(p, size), pattern);
}

static inline __attribute__((always_inline)) void *small_filled(void *p, size_t size,
                                                                unsigned char pattern)
{
    if (!p)
        return NULL;
    size_t usable = next_fresh_usable(p);
    return usable ? small_fill(p, usable, pattern) : small_fill_asking(p, size, pattern);
}

static void *large_or_next(size_t size, size_t align, bool zero, unsigned char pattern,
                           const struct rm_site_name *site)
{
    bool unavailable;
    void *p = large_alloc(size, align, zero, pattern, site, &unavailable);
    if (p || !unavailable)
        return p;
    /* No room in the region: the next allocator, filled eagerly. */
    if (zero) {
        p = rm_next.calloc(1, size);
    } else {
        p = align > BASE_ALIGNMENT ? rm_next.memalign(align, size) : rm_next.malloc(size);
        if (p) {
            /* An aligned block's usable size may include most of the
             * alignment (glibc's memalign(1 GiB, 1 MiB) from mmap): filling
             * it would cost up to the alignment in memory. Past a page of
             * slack, the size asked for, to its page, gets the pattern; the
             * rest keeps what the next allocator gave (fresh zero pages). */
            size_t fill = next_usable(p, size);
            size_t asked = (size + os_page_size() - 1) & ~(os_page_size() - 1);
            if (align > BASE_ALIGNMENT && fill > asked + os_page_size())
                fill = asked;
            memset(p, pattern, fill);
        }
    }
    if (p) {
        stat_add(zero ? ST_zero_allocs : ST_eager_allocs, 1);
        stat_add(zero ? ST_zero_bytes : ST_eager_bytes, size);
        stat_add(ST_large_allocs, 1);
        stat_add(ST_large_bytes, size);
    }
    return p;
}

/* track_reads: a large block's reads before writes name where it was
 * allocated. */
static void *noted(void *p, size_t size, const void *site)
{
    if (p && config()->track_reads && large_owns(p))
        large_note_site(p, size, site);
    return p;
}

void *rm_malloc_from(size_t size, const void *site)
{
    if (!runtime_ready())
        return bootstrap_alloc(size, BASE_ALIGNMENT);
    if (passthrough())
        return rm_first.malloc(size);
    const struct rm_site_name *name;
    unsigned char pattern = pattern_named(site, &name);
    if (size >= config()->threshold)
        return noted(large_or_next(size, 0, false, pattern, name), size, site);
    return small_filled(rm_next.malloc(size), size, pattern);
}

RM_EXPORT void *malloc(size_t size)
{
    return rm_malloc_from(size, __builtin_return_address(0));
}

/* A freed small block keeps its first two pointers: glibc's tcache puts
 * its next pointer and double-free key there (its bins their fd/bk), and the
 * allocator overwrites them anyway. Filling the key would hide a double free. */
#define FREE_KEEP (2 * sizeof(void *))

/* The next allocator's usable size of a pointer the program hands back, or 0
 * when glibc's own free will reject it: asking glibc's malloc_usable_size
 * about garbage reads through its header and crashes here, not in glibc's
 * check with glibc's message. */
static size_t handed_back_usable(void *p)
{
    if (rm_next.checked || (rm_next.glibc && !next_glibc_chunk_plausible(p)))
        return 0;
    return next_usable(p, 0);
}

static __attribute__((noinline)) void fill_freed(void *p)
{
    size_t usable = handed_back_usable(p);
    if (usable > FREE_KEEP)
        memset((char *)p + FREE_KEEP, config()->free_pattern, usable - FREE_KEEP);
}

/* free keeps errno (POSIX 2024, glibc since 2.33): refmalloc's munmap may
 * change it, and an allocator stacked behind refmalloc may too; glibc's own
 * free keeps it itself. Out of line, so that free's small path saves no
 * registers and ends in a jump to the next allocator's free. */
static __attribute__((noinline)) void free_large(void *p)
{
    int saved = errno;
    large_free(p, "free()");
    errno = saved;
}

static __attribute__((noinline)) void next_free_keeping_errno(void *p)
{
    int saved = errno;
    rm_next.free(p);
    errno = saved;
}

RM_EXPORT void free(void *p)
{
    if (!p || bootstrap_owns(p) || !runtime_ready())
        return;
    if (passthrough()) {
        rm_first.free(p);
        return;
    }
    if (large_owns(p)) {
        free_large(p);
        return;
    }
    if (config()->free_pattern_on)
        fill_freed(p);
    stat_small_free();
    if (rm_next.glibc)
        rm_next.free(p);
    else
        next_free_keeping_errno(p);
}

static void *calloc_from(size_t n, size_t size, const void *site)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!runtime_ready())
        return bootstrap_alloc(total, BASE_ALIGNMENT);
    if (passthrough())
        return rm_first.calloc(n, size);
    if (total >= config()->threshold) {
        const struct rm_site_name *name;
        unsigned char pattern = pattern_named(site, &name);
        return large_or_next(total, 0, true, pattern, name);
    }
    void *p = rm_next.calloc(n, size);
    if (p)
        stat_small_alloc(total);
    return p;
}

RM_EXPORT void *calloc(size_t n, size_t size)
{
    return calloc_from(n, size, __builtin_return_address(0));
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Finish a realloc that moved: copy what is owed and free the old block. */
static void *move_content(void *q, void *p, size_t old_usable, size_t size)
{
    /* Copying a large block reads its never-written pages too: the
     * allocator's reads, which track_reads must not report. */
    bool quiet = config()->track_reads && large_owns(p);
    if (quiet)
        large_copy_begin();
    memcpy(q, p, min_size(old_usable, size));
    if (quiet)
        large_copy_end();
    free(p);
    return q;
}

/* realloc by allocating anew, copying and freeing the old block. */
static void *realloc_by_copy(void *p, size_t old_usable, size_t size, const void *site)
{
    void *q = rm_malloc_from(size, site);
    return q ? move_content(q, p, old_usable, size) : NULL;
}

static void *realloc_from(void *p, size_t size, const void *site)
{
    if (!p)
        return rm_malloc_from(size, site);
    if (!runtime_ready() || bootstrap_owns(p)) {
        void *q = rm_malloc_from(size, site);
        if (q)
            memcpy(q, p, min_size(bootstrap_size(p), size));
        return q;
    }
    if (passthrough())
        return rm_first.realloc(p, size);
    if (size == 0) {
        /* glibc 2.36: realloc(p, 0) frees p and returns NULL. */
        free(p);
        return NULL;
    }
    if (large_owns(p)) {
        if (size < config()->threshold)
            return realloc_by_copy(p, large_usable(p), size, site);
        bool unavailable;
        void *q = large_realloc(p, size, &unavailable);
        if (q || !unavailable)
            return q;
        const struct rm_site_name *name;
        unsigned char pattern = pattern_named(site, &name);
        q = noted(large_or_next(size, 0, false, pattern, name), size, site);
        return q ? move_content(q, p, large_usable(p), size) : NULL;
    }
    if (asking_usable || (rm_next.glibc && !next_glibc_chunk_plausible(p)))
        return rm_next.realloc(p, size);   /* glibc reports a bad pointer */
    size_t old = next_usable(p, 0);
    if (config()->free_pattern_on)
        return realloc_by_copy(p, old, size, site);
    if (size >= config()->threshold) {
        /* Into refmalloc's range if it has room; if not, the next allocator
         * grows the block where it is (mremap for glibc's mmap'd blocks)
         * instead of a copy and a fill of the whole block at every step. */
        bool unavailable;
        const struct rm_site_name *name;
        unsigned char pattern = pattern_named(site, &name);
        void *q = noted(large_alloc(size, 0, false, pattern, name, &unavailable), size, site);
        if (q || !unavailable)
            return q ? move_content(q, p, old, size) : NULL;
    }
    void *q = rm_next.realloc(p, size);
    if (q) {
        /* Only the first min(old, size) bytes are owed to the program (moved,
         * that is all mimalloc copies); everything after them gets the
         * pattern, moved or not: a block shrunk in place keeps the old bytes
         * of its cut tail, and growing it back later would expose them. */
        size_t kept = min_size(old, size);
        size_t now = next_usable(q, 0);
        if (now > kept)
            memset((char *)q + kept, pattern_at(site), now - kept);
    }
    return q;
}

RM_EXPORT void *realloc(void *p, size_t size)
{
    return realloc_from(p, size, __builtin_return_address(0));
}

RM_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    if (p && !bootstrap_owns(p) && runtime_ready() && passthrough())
        return rm_first.reallocarray(p, n, size);
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc_from(p, total, __builtin_return_address(0));
}

/* align: a power of two. */
static void *aligned_from(size_t align, size_t size, const void *site)
{
    /* Only pointer alignment is certain from malloc: jemalloc, for one,
     * gives 8-byte alignment to 8-byte blocks. */
    if (align <= sizeof(void *))
        return rm_malloc_from(size, site);
    if (!runtime_ready())
        return bootstrap_alloc(size, align);
    const struct rm_site_name *name;
    unsigned char pattern = pattern_named(site, &name);
    if (size >= config()->threshold || align > LARGE_ALIGNMENT)
        return noted(large_or_next(size, align, false, pattern, name), size, site);
    return small_filled(rm_next.memalign(align, size), size, pattern);
}

/* glibc's memalign: a non-power-of-two alignment is rounded up. */
static void *memalign_from(size_t align, size_t size, const void *site)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < align)
        a <<= 1;
    return aligned_from(a, size, site);
}

RM_EXPORT void *memalign(size_t align, size_t size)
{
    if (runtime_ready() && passthrough())
        return rm_first.memalign(align, size);
    return memalign_from(align, size, __builtin_return_address(0));
}

/* In glibc 2.36 aligned_alloc is memalign. */
RM_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (runtime_ready() && passthrough())
        return rm_first.aligned_alloc(align, size);
    return memalign_from(align, size, __builtin_return_address(0));
}

int rm_posix_memalign_from(void **out, size_t align, size_t size, const void *site)
{
    if (runtime_ready() && passthrough())
        return rm_first.posix_memalign(out, align, size);
    if (align == 0 || align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned_from(align, size, site);
    if (!p)
        return ENOMEM;
    errno = saved;
    *out = p;
    return 0;
}

RM_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    return rm_posix_memalign_from(out, align, size, __builtin_return_address(0));
}

RM_EXPORT void *valloc(size_t size)
{
    if (runtime_ready() && passthrough())
        return rm_first.valloc(size);
    return aligned_from(os_page_size(), size, __builtin_return_address(0));
}

static void *pvalloc_from(size_t size, const void *site)
{
    size_t page = os_page_size();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_from(page, (size + page - 1) & ~(page - 1), site);
}

RM_EXPORT void *pvalloc(size_t size)
{
    if (runtime_ready() && passthrough())
        return rm_first.pvalloc(size);
    return pvalloc_from(size, __builtin_return_address(0));
}

RM_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (bootstrap_owns(p))
        return bootstrap_size(p);
    if (!runtime_ready())
        return 0;
    if (passthrough())
        return rm_first.usable_size(p);
    if (large_owns(p))
        return large_usable(p);
    return rm_next.usable_size(p);
}

RM_EXPORT void free_sized(void *p, size_t size)
{
    if (p && !bootstrap_owns(p) && runtime_ready() && passthrough())
        rm_first.free_sized(p, size);
    else
        free(p);
}

RM_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    if (p && !bootstrap_owns(p) && runtime_ready() && passthrough())
        rm_first.free_aligned_sized(p, align, size);
    else
        free(p);
}

RM_EXPORT void cfree(void *p)
{
    if (p && !bootstrap_owns(p) && runtime_ready() && passthrough())
        rm_first.cfree(p);
    else
        free(p);
}

/* glibc's own names for its allocator (libc.so.6 exports them; programs and
 * libraries call them to reach "the real malloc"). Without them here a block
 * of refmalloc's would reach glibc's __libc_free and crash. */
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

/* Called by an allocator that forwards to glibc's __libc_* (libc_malloc_debug
 * does, for its own blocks): glibc's, or it would come back to itself. */
#define FROM_ALLOCATOR(fn) \
    (rm_next.fn && next_called_by_allocator(__builtin_return_address(0)))

RM_EXPORT void *__libc_malloc(size_t size)
{
    if (runtime_ready() && FROM_ALLOCATOR(libc_malloc))
        return rm_next.libc_malloc(size);
    return rm_malloc_from(size, __builtin_return_address(0));
}

RM_EXPORT void __libc_free(void *p)
{
    if (p && !bootstrap_owns(p) && runtime_ready() && FROM_ALLOCATOR(libc_free))
        rm_next.libc_free(p);
    else
        free(p);
}

RM_EXPORT void *__libc_calloc(size_t n, size_t size)
{
    if (runtime_ready() && FROM_ALLOCATOR(libc_calloc))
        return rm_next.libc_calloc(n, size);
    return calloc_from(n, size, __builtin_return_address(0));
}

RM_EXPORT void *__libc_realloc(void *p, size_t size)
{
    if ((!p || !bootstrap_owns(p)) && runtime_ready() && FROM_ALLOCATOR(libc_realloc))
        return rm_next.libc_realloc(p, size);
    return realloc_from(p, size, __builtin_return_address(0));
}

RM_EXPORT void *__libc_memalign(size_t align, size_t size)
{
    if (runtime_ready() && FROM_ALLOCATOR(libc_memalign))
        return rm_next.libc_memalign(align, size);
    return memalign_from(align, size, __builtin_return_address(0));
}

RM_EXPORT void *__libc_valloc(size_t size)
{
    if (runtime_ready() && FROM_ALLOCATOR(libc_valloc))
        return rm_next.libc_valloc(size);
    return aligned_from(os_page_size(), size, __builtin_return_address(0));
}

RM_EXPORT void *__libc_pvalloc(size_t size)
{
    if (runtime_ready() && FROM_ALLOCATOR(libc_pvalloc))
        return rm_next.libc_pvalloc(size);
    return pvalloc_from(size, __builtin_return_address(0));
}

/* mallinfo2 and mallinfo: the next allocator's figures plus refmalloc's live
 * large blocks, counted as the mmapped blocks they are (hblks, hblkhd) and as
 * space in use (uordblks). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static void large_totals(size_t *blocks, size_t *bytes)
{
    *blocks = *bytes = 0;
    if (runtime_ready())
        large_live_totals(blocks, bytes);
}

RM_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 m = {0};
    if (runtime_ready() && passthrough())
        return rm_first.mallinfo2 ? rm_first.mallinfo2() : m;
    size_t blocks, bytes;
    large_totals(&blocks, &bytes);
    if (rm_next.mallinfo2)
        m = rm_next.mallinfo2();
    m.hblks += blocks;
    m.hblkhd += bytes;
    m.uordblks += bytes;
    return m;
}

/* Its int fields wrap as glibc's own do (glibc truncates mallinfo2's). */
RM_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo m = {0};
    if (runtime_ready() && passthrough())
        return rm_first.mallinfo ? rm_first.mallinfo() : m;
    size_t blocks, bytes;
    large_totals(&blocks, &bytes);
    if (rm_next.mallinfo)
        m = rm_next.mallinfo();
    m.hblks = (int)((size_t)(unsigned)m.hblks + blocks);
    m.hblkhd = (int)((size_t)(unsigned)m.hblkhd + bytes);
    m.uordblks = (int)((size_t)(unsigned)m.uordblks + bytes);
    return m;
}
#pragma GCC diagnostic pop
