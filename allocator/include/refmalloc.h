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

#define REFMALLOC_STATS_VERSION 1

/* Counters since start-up. "large" blocks are those at or above the
 * threshold, owned by refmalloc; "small" ones are served by the next
 * allocator and filled with the pattern. All values are plain snapshots. */
struct refmalloc_stats {
    uint64_t version;              /* REFMALLOC_STATS_VERSION */
    uint64_t small_allocs;         /* blocks from the next allocator */
    uint64_t small_bytes;
    uint64_t large_allocs;         /* large blocks handed out, any kind */
    uint64_t large_bytes;
    uint64_t refpage_allocs;       /* ... built from reference pages */
    uint64_t refpage_bytes;
    uint64_t eager_allocs;         /* ... fallback: anonymous memory + memset (in the
                                      region, or from the next allocator) */
    uint64_t eager_bytes;
    uint64_t zero_allocs;          /* ... large calloc: fresh anonymous zero pages */
    uint64_t zero_bytes;
    uint64_t cache_hits;           /* large mallocs served from freed blocks */
    uint64_t cache_misses;
    uint64_t cache_bytes;          /* bytes currently held in the cache */
    uint64_t small_frees;
    uint64_t large_frees;
    uint64_t realloc_in_place;     /* large reallocs that kept their address */
    uint64_t realloc_moved;        /* ... that moved (mremap or copy of written pages) */
    uint64_t live_refpage_bytes;   /* bytes of live blocks backed by reference pages */
    uint64_t peak_refpage_bytes;
    uint64_t live_large_blocks;    /* live blocks in refmalloc's own range (fallbacks
                                      handed to the next allocator are not tracked) */
    uint64_t mappings_in_use;      /* mappings (VMAs) refmalloc accounts for */
    uint64_t mapping_budget;       /* the most it uses for new blocks: beyond it they come
                                      from the next allocator, filled eagerly */
    uint64_t chunk_bytes;          /* current reference chunk size */
    uint64_t pattern_bytes;        /* memory held by pattern memfds now */
    uint64_t fallback_budget;      /* eager fallbacks: mapping budget reached */
    uint64_t fallback_memfd;       /* ... memfd could not be created */
    uint64_t fallback_region;      /* ... reserved address range exhausted or absent */
    uint64_t fallback_map;         /* ... mmap of a chunk failed */
    uint64_t memfd_recreated;      /* memfd found closed or replaced, made anew */
    uint64_t freed_pages;          /* pages of refpage blocks examined at free (only
                                      when a report is configured: it costs a
                                      pagemap scan per free) */
    uint64_t freed_pages_written;  /* ... of which the program had written */
    uint64_t restored_by_dontneed; /* cached blocks restored (when reused) by MADV_DONTNEED */
    uint64_t restored_by_fill;     /* ... by re-filling their written pages */
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
 * page touched). Works on any range. Returns the number of pages, or -1
 * with errno. */
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

/* The pattern byte of fresh blocks, and the library version string. */
unsigned char refmalloc_pattern(void);
const char *refmalloc_version(void);

#ifdef __cplusplus
}
#endif
#endif
