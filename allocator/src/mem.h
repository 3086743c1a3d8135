/* mem: the memory of large blocks and what it costs, the bottom of the
 * large-block manager. It maps fresh memory into blocks (reference pages,
 * or anonymous memory as the fallback), gives it back, places memory tags,
 * and keeps the accounts: bytes mapped, reference-page bytes (which size
 * the chunks), mappings against the budget and vm.max_map_count, the
 * address-space limit. It never evicts: it says whether something fits and
 * large.c decides what to drop. Every call is made under the large lock. */
#ifndef RM_MEM_H
#define RM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "os.h"
#include "refpage.h"

/* Mappings of a block of anonymous memory: its own and the reservation split. */
#define MEM_EAGER_MAPPINGS 2

static inline size_t mem_page_round(size_t n)
{
    size_t page = os_page_size();
    return (n + page - 1) & ~(page - 1);
}

/* ---- start-up and limits ---- */

/* Reserve the region and read the limits, the first time only: true then. */
bool mem_start(void);
bool mem_region_ok(void);
/* Largest mapping the kernel's overcommit policy allows. */
size_t mem_overcommit_limit(void);
/* Read RLIMIT_AS again (after setrlimit). */
void mem_address_limit_reread(void);
/* Would mapping `len` more bytes break the program's RLIMIT_AS? The region
 * is reserved already, so the kernel would not stop us: we must. */
bool mem_address_limit_reached(size_t len);
/* Under a new address-space limit, give back the free end of the region
 * beyond a quarter of what the limit leaves. Bytes cut. */
size_t mem_trim_for_limit(size_t limit);

/* ---- address ranges ---- */

/* Range reserved for a block of len bytes: with room to grow in place,
 * unless an address-space limit would count the room against the program. */
size_t mem_capacity_for(size_t len);
/* Address range for a block of len bytes, with room to grow (`room`) if
 * there is space: *got says how much was taken. 0 when the region has no
 * free extent that fits. */
uintptr_t mem_reserve_range(size_t len, size_t align, bool room, size_t *got);

/* ---- the mapping budget ---- */

/* A budget check begins: count it, and count the mappings for real when
 * that is due. Then mem_budget_fits() may be asked as often as needed. */
void mem_budget_check(void);
bool mem_budget_fits(size_t need);
/* Count the mappings for real now (the kernel refused one of ours). */
void mem_recount(void);

/* A seccomp filter is about to be installed: count the mappings now, and
 * never again (the budget then goes by our own count). */
void mem_before_sandbox(void);
void mem_account_mappings(long delta);

/* ---- fresh memory ---- */

enum fresh { FRESH_REFPAGE, FRESH_EAGER, FRESH_ZERO, FRESH_FAILED };

/* Chunk size for len more bytes of reference pages, and the mappings that
 * needs (the chunks and the reservation split). */
size_t mem_chunk_for(size_t len);
size_t mem_refpage_need(size_t len, size_t chunk);
/* Map [at, at+len) of block b with reference pages of `pattern` under b's
 * tag, accounting `need` mappings to it. */
enum refpage_result mem_map_refpage(struct block *b, uintptr_t at, size_t len,
                                    unsigned char pattern, size_t chunk, size_t need);
/* Map all of cached block b again with reference pages of `pattern` under
 * `tag` (quarantine). False leaves b in an unknown state: release it. */
bool mem_remap_refpage(struct block *b, unsigned char pattern, unsigned tag, size_t chunk,
                       size_t need);
/* Map [at, at+len) of block b with anonymous memory; false (the range
 * reserved again) when the kernel refuses. */
bool mem_map_anon(struct block *b, uintptr_t at, size_t len);
/* Fill what the mapping left to the caller (eager memory; a tagged block's
 * anonymous memory, whose tags must be set). */
void mem_fill_fresh(const struct block *b, uintptr_t at, size_t len, enum fresh f);
/* Give back the pages of b past len bytes (len < b->mapped). */
void mem_shrink(struct block *b, size_t len);
/* Give a block's range back to the region and undo its accounting; the
 * caller drops it from the table. */
void mem_unmap(const struct block *b);
/* Reference-page bytes of live blocks, for the statistics: a change of a
 * live block's b->refpage, or all of it as a block becomes (or stops being)
 * live. */
void mem_live_change(long delta);

/* ---- memory tags ---- */

/* A fresh memory tag for a block placed on [start, start+capacity), other
 * than its neighbours' and `old`; 0 unless mte is on. */
unsigned mem_pick_tag(uintptr_t start, size_t capacity, unsigned old);
/* The pointer the program gets for b: its start with its tag. */
void *mem_pointer(const struct block *b);
/* What malloc_usable_size says: the mapped size, or for a tagged block its
 * size up to the sealed slack. */
size_t mem_usable(const struct block *b);
/* A tagged block's bytes past its size (rounded to the granule) up to its
 * mapped end carry another tag while `sealed`, its own tag otherwise (as
 * realloc needs while it copies, moves or grows the block). */
void mem_seal_slack(const struct block *b, bool sealed);

#endif
