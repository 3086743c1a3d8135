/* refmalloc public API: statistics and introspection.
 *
 * These functions are exported by librefmalloc.so. A program (or the Python
 * bindings) can look them up with dlsym(RTLD_DEFAULT, "refmalloc_get_stats")
 * to find out whether it runs under refmalloc at all. */
#ifndef REFMALLOC_H
#define REFMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REFMALLOC_STATS_VERSION 3

/* Counters since start-up. "large" blocks are those at or above the
 * threshold, owned by refmalloc; "small" ones are served by the next
 * allocator and filled with the pattern. All values are plain snapshots.
 *
 * REFMALLOC_STATS(X) lists them once, in struct order: X(name, kind, text),
 * kind EVENT (counted since start-up, or since fork in a child), GAUGE (the
 * state now) or FALLBACK (an event the summary lists under fallbacks). The
 * library, the Python bindings and the reports are all built from it; to add
 * a counter, add a line at the end (and bump REFMALLOC_STATS_VERSION). */
#define REFMALLOC_STATS(X) \
    X(small_allocs, EVENT, "blocks from the next allocator") \
    X(small_bytes, EVENT, "bytes of those blocks") \
    X(large_allocs, EVENT, "large blocks handed out, any kind: refpage + eager + zero") \
    X(large_bytes, EVENT, "bytes of those blocks (a block realloc grew: its largest size)") \
    X(refpage_allocs, EVENT, "large blocks built from reference pages (reused ones included)") \
    X(refpage_bytes, EVENT, "bytes of those blocks") \
    X(eager_allocs, EVENT, "large blocks of the fallback: anonymous memory + memset " \
                           "(in the region, or from the next allocator)") \
    X(eager_bytes, EVENT, "bytes of those blocks") \
    X(zero_allocs, EVENT, "large callocs: fresh anonymous zero pages") \
    X(zero_bytes, EVENT, "bytes of those blocks") \
    X(cache_hits, EVENT, "large mallocs served from freed blocks") \
    X(cache_misses, EVENT, "large mallocs the cache could not serve") \
    X(cache_bytes, GAUGE, "bytes currently held in the cache") \
    X(small_frees, EVENT, "frees of small blocks") \
    X(large_frees, EVENT, "frees of large blocks") \
    X(realloc_in_place, EVENT, "large reallocs that kept their address") \
    X(realloc_moved, EVENT, "large reallocs that moved (mremap or copy of written pages)") \
    X(live_refpage_bytes, GAUGE, "bytes of live blocks backed by reference pages") \
    X(peak_refpage_bytes, GAUGE, "the most live_refpage_bytes has been") \
    X(live_large_blocks, GAUGE, "live blocks in refmalloc's own range (fallbacks handed " \
                                "to the next allocator are not tracked)") \
    X(mappings_in_use, GAUGE, "mappings (VMAs) refmalloc accounts for") \
    X(mapping_budget, GAUGE, "the most it uses for new blocks: beyond it they come from " \
                             "the next allocator, filled eagerly") \
    X(chunk_bytes, GAUGE, "current reference chunk size") \
    X(pattern_bytes, GAUGE, "memory held by pattern memfds now") \
    X(fallback_budget, FALLBACK, "mapping budget reached") \
    X(fallback_memfd, FALLBACK, "memfd could not be created") \
    X(fallback_region, FALLBACK, "reserved address range exhausted or absent") \
    X(fallback_map, FALLBACK, "mmap of a reference chunk failed") \
    X(memfd_recreated, FALLBACK, "memfd found closed or replaced, made anew") \
    X(freed_pages, EVENT, "pages of refpage blocks examined at free (only when a " \
                          "report is configured: it costs a pagemap scan per free)") \
    X(freed_pages_written, EVENT, "of those, pages the program had written") \
    X(restored_by_dontneed, EVENT, "cached blocks restored (when reused) by MADV_DONTNEED") \
    X(restored_by_fill, EVENT, "cached blocks restored by re-filling their written pages") \
    X(reads_first_touches, EVENT, "track_reads: first touches of pages of tracked blocks") \
    X(reads_before_write, EVENT, "of those, first touches that were reads (read before write)") \
    X(reads_dropped, EVENT, "read-before-write findings not kept: the table was full") \
    X(cache_given_back, EVENT, "cached blocks whose written pages went back to the kernel " \
                               "while waiting (MADV_DONTNEED): first lives, and reused " \
                               "blocks beyond cache_resident")

struct refmalloc_stats {
    uint64_t version;              /* REFMALLOC_STATS_VERSION */
#define REFMALLOC_STATS_FIELD(name, kind, text) uint64_t name;
    REFMALLOC_STATS(REFMALLOC_STATS_FIELD)
#undef REFMALLOC_STATS_FIELD
};

/* Copy the counters into *out (at most size bytes). Returns 0. */
int refmalloc_get_stats(struct refmalloc_stats *out, size_t size);

enum refmalloc_block_kind {
    REFMALLOC_BLOCK_REFPAGE = 1,   /* reference pages (may have eager parts) */
    REFMALLOC_BLOCK_EAGER = 2,     /* anonymous memory filled with memset */
    REFMALLOC_BLOCK_ZERO = 3,      /* large calloc */
};

struct refmalloc_block_info {
    void *start;                   /* address malloc returned */
    size_t size;                   /* requested size */
    size_t usable;                 /* malloc_usable_size */
    size_t pages;                  /* pages spanned by the usable size */
    size_t pages_written;          /* pages privately copied (written) */
    size_t pages_pattern;          /* pages still showing the reference page or never touched */
    int kind;                      /* enum refmalloc_block_kind */
    unsigned char pattern;
};

/* Does addr lie inside a live large block? 1 and *info filled if so,
 * 0 if not, -1 with errno if /proc/self/pagemap could not be read. */
int refmalloc_query(const void *addr, struct refmalloc_block_info *info);

/* Page by page, what the program did with [addr, addr + len): one byte per
 * page overlapping the range, REFMALLOC_PAGE_UNTOUCHED (never mapped in),
 * REFMALLOC_PAGE_PATTERN (still the shared pattern page) or
 * REFMALLOC_PAGE_WRITTEN (a private copy: written; in anonymous memory, any
 * page touched; in a shared mapping (MAP_SHARED anonymous memory, a memfd, a
 * file), any page present, read or written: the kernel does not tell them
 * apart there, and no page of it is a pattern page). Works on any range.
 * Returns the number of pages, or -1 with errno. */
enum refmalloc_page_state {
    REFMALLOC_PAGE_UNTOUCHED = 0,
    REFMALLOC_PAGE_PATTERN = 1,
    REFMALLOC_PAGE_WRITTEN = 2,
};
long refmalloc_page_states(const void *addr, size_t len, unsigned char *states);

/* Write the JSON report now. path NULL: the configured report path ("%p"
 * expands to the pid). The file is created new (O_EXCL, O_NOFOLLOW), mode
 * 0600. Returns 0, or -1 with errno: EEXIST (the file exists), ELOOP (a
 * symbolic link, never followed), ENAMETOOLONG (too long once expanded),
 * or the reason the file could not be created. */
int refmalloc_write_report(const char *path);

/* Name the program's current context, e.g. the test now running (the pytest
 * plugin's --refmalloc-reads passes each test's node id): read-before-write
 * findings (track_reads=1) record the context current when the read
 * happened, and are kept apart per context. Process-wide, not per thread.
 * NULL or "" clears it. The name is copied (at most 255 bytes kept; longer
 * ones are truncated) into a table of 1024 distinct names; a new name once
 * it is full leaves no context current and is counted in the report's
 * reads.contexts_dropped. Returns 0, or -1 with errno ENOSPC (table full)
 * or ENOMEM. */
int refmalloc_set_context(const char *name);

/* The pattern byte of fresh blocks, and the library version string. */
unsigned char refmalloc_pattern(void);
const char *refmalloc_version(void);

#ifdef __cplusplus
}
#endif
#endif
