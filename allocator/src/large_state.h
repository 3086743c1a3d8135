/* large_state: what the large-block manager's files share. large.c owns the
 * state (allocation, free, mapping fresh memory, accounting); cache.c keeps
 * freed blocks, resize.c grows and shrinks them, inspect.c describes them.
 * Every function here expects rm_large.lock to be held. */
#ifndef RM_LARGE_STATE_H
#define RM_LARGE_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "large.h"
#include "os.h"
#include "stats.h"

#define CACHE_SLOTS 64

/* Mappings of a block of anonymous memory: its own and the reservation split. */
#define EAGER_MAPPINGS 2

struct large_state {
    size_t mapped_bytes;     /* bytes mapped in the region, any kind */
    pthread_mutex_t lock;
    bool started;            /* region and budget set up (or tried) */
    bool region_ok;
    size_t address_limit;    /* RLIMIT_AS, cached: SIZE_MAX when unlimited */
    size_t overcommit_limit; /* largest mapping the kernel's policy allows */
    size_t budget;           /* mappings we allow ourselves */
    size_t mappings;         /* mappings accounted to blocks: an upper bound,
                              * the kernel merges neighbours */
    size_t max_map_count;    /* vm.max_map_count; 0 if unknown */
    bool counted;            /* mappings counted for real once */
    size_t counted_at;       /* our mappings when last counted */
    size_t others;           /* the program's mappings when last counted */
    size_t fresh_since_count; /* budget checks since then */
    bool sandboxed;          /* a seccomp filter may forbid reading /proc */
    size_t refpage_mapped;   /* reference-page bytes mapped, live or cached */
    uintptr_t cached[CACHE_SLOTS];  /* starts of cached blocks, oldest first */
    size_t ncached;
    size_t cache_bytes;
    struct refmalloc_block_info *freed;  /* ring of FREED_RECORDS */
    size_t nfreed;                       /* blocks ever recorded */
    bool warned[ST_COUNT];
};

extern struct large_state rm_large;

static inline size_t page_round(size_t n)
{
    size_t page = os_page_size();
    return (n + page - 1) & ~(page - 1);
}

/* large.c */
enum fresh { FRESH_REFPAGE, FRESH_EAGER, FRESH_ZERO, FRESH_FAILED };
/* Map [at, at+len) with fresh memory for block b: zero pages, reference
 * pages, or anonymous memory the caller must fill (FRESH_EAGER). */
enum fresh map_fresh(struct block *b, uintptr_t at, size_t len, bool zero);
/* Fill what map_fresh left to the caller (eager memory; a tagged block's
 * anonymous memory, whose tags must be set). */
void fill_fresh(const struct block *b, uintptr_t at, size_t len, enum fresh f);
/* A fresh memory tag for a block placed on [start, start+capacity), other
 * than its neighbours' and `old`; 0 unless mte is on. */
unsigned pick_tag(uintptr_t start, size_t capacity, unsigned old);
/* The pointer the program gets for b: its start with its tag. */
void *block_pointer(const struct block *b);
/* A tagged block's bytes past its size (rounded to the granule) up to its
 * mapped end carry another tag while `sealed`, its own tag otherwise (as
 * realloc needs while it copies, moves or grows the block). */
void seal_slack(const struct block *b, bool sealed);
/* What malloc_usable_size says: the mapped size, or for a tagged block its
 * size up to the sealed slack. */
size_t usable_size(const struct block *b);
void account_mappings(long delta);
void live_refpage_change(const struct block *b, long delta);
bool budget_allows(size_t need);
/* Would mapping `len` more bytes break the program's RLIMIT_AS? The region
 * is reserved already, so the kernel would not stop us: we must. */
bool address_limit_reached(size_t len);
size_t capacity_for(size_t len);
uintptr_t reserve_range(size_t len, size_t align, bool room, size_t *got);
/* Give a block's range back to the reservation and undo its accounting;
 * release() also drops it from the table. */
void unmap_block(const struct block *b);
void release(struct block *b);
struct block *live_block(const void *p, const char *caller);
void trace(const char *op, uintptr_t addr, size_t size);

/* cache.c */
/* A cached block that fits, its pattern restored; NULL if none. */
struct block *cache_take(size_t len, size_t align, unsigned char pattern);
/* Can b be kept after free? (reference pages only, within the cache limit) */
bool cacheable(const struct block *b);
/* Keep a freed block (evicting the oldest beyond the limits). */
void cache_put(struct block *b);
void cache_evict_oldest(void);
/* With free_pattern on: map the free pattern's reference pages over a freed
 * block, which then waits in the cache (never reused for other patterns) so
 * that reads after free see the free pattern, as in small blocks. A tagged
 * block is remapped the same way (onto its own pattern without free_pattern)
 * under a new tag, so pointers from its last life fault. */
bool quarantine(struct block *b);

/* inspect.c */
long written_pages(const struct block *b);
void block_info(const struct block *b, long written, struct refmalloc_block_info *info);
void record_freed(const struct block *b, long written);

#endif
