/* mte: arm64 Memory Tagging for large blocks (option mte=1). A block's
 * pages carry allocation tag T (1-15) from its reference chunk, so tagging
 * costs nothing per block; the pointer handed out carries T in bits 56-59.
 * Neighbours and successive lives of a block get different tags, so an
 * overflow into the next block, a stale pointer and a use after free fault.
 * On other machines, and on arm64 without MTE, the option is refused at
 * start-up and every tag here is 0. */
#ifndef RM_MTE_H
#define RM_MTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTE_TAG_SHIFT 56
#define MTE_TAGS 16

/* Turn tagging on if config()->mte asks for it and the machine can; a
 * refusal is one line on stderr. Runs once, at start-up. */
void mte_start(void);

/* Are large blocks tagged in this process? */
bool mte_on(void);

/* The address without its tag. On arm64 the top byte never takes part in
 * addressing (TBI), so stripping it is always right there. */
static inline uintptr_t mte_untag(const void *p)
{
#if defined(__aarch64__)
    return (uintptr_t)p & ~((uintptr_t)0xff << MTE_TAG_SHIFT);
#else
    return (uintptr_t)p;
#endif
}

static inline unsigned mte_tag_of(const void *p)
{
#if defined(__aarch64__)
    return (unsigned)((uintptr_t)p >> MTE_TAG_SHIFT) & 0xf;
#else
    (void)p;
    return 0;
#endif
}

static inline void *mte_tagged(uintptr_t addr, unsigned tag)
{
    return (void *)(addr | ((uintptr_t)tag << MTE_TAG_SHIFT));
}

/* A tag for a block: never 0, never one in the `exclude` bit mask (the
 * neighbours' tags and the block's previous one), rotating through the rest
 * so that consecutive blocks differ. Only when tagging is on; callers hold
 * the large-block lock. */
unsigned mte_pick(unsigned exclude);

/* Set the tags of [p, p+len) to p's tag (len a multiple of 32; memory mapped
 * with PROT_MTE), writing `fill` into every byte in the same stores. */
void mte_fill(void *p, size_t len, unsigned char fill);

/* Set the tags of [p, p+len) to p's tag, leaving the data alone (p and len
 * multiples of the 16-byte granule). A reference page is copied first, as
 * for a data store. */
void mte_set_tags(void *p, size_t len);

#define MTE_GRANULE 16

/* The tag of the granules past a block's size in its last page: any tag
 * but the block's own (and never 0), so that an overflow faults there too. */
static inline unsigned mte_slack_tag(unsigned tag)
{
    return tag % (MTE_TAGS - 1) + 1;
}

#endif
