#include "inspect.h"

#include "large_lock.h"
#include "os.h"
#include "pagemap.h"

long inspect_written_pages(const struct block *b)
{
    size_t npages = b->mapped / os_page_size();
    if (b->kind == REFMALLOC_BLOCK_ZERO)
        return pagemap_private_written(b->start, npages);   /* untouched zeros */
    if (b->kind != REFMALLOC_BLOCK_REFPAGE)
        return (long)npages;   /* eager blocks were filled whole */
    return pagemap_written(b->start, npages, NULL, NULL);
}

static void block_info(const struct block *b, long written, struct refmalloc_block_info *info)
{
    size_t npages = b->mapped / os_page_size();
    *info = (struct refmalloc_block_info){
        .start = (void *)b->start, .size = b->size, .usable = b->mapped, .pages = npages,
        .pages_written = written < 0 ? 0 : (size_t)written,
        .pages_pattern = written < 0 ? 0 : npages - (size_t)written,
        .kind = b->kind, .pattern = b->pattern};
}

/* The last FREED_RECORDS freed blocks, for the report: how much of each the
 * program wrote. Kept in memory of its own, made on the first free. */
#define FREED_RECORDS 4096

struct freed_record {
    struct refmalloc_block_info info;
    const struct rm_site_name *site;
};

static struct {
    struct freed_record *ring;           /* FREED_RECORDS of them */
    size_t count;                        /* blocks ever recorded */
} freed;

void inspect_record_freed(const struct block *b, long written)
{
    large_lock_assert_held();
    if (!freed.ring) {
        freed.ring = os_alloc_meta(FREED_RECORDS * sizeof *freed.ring);
        if (!freed.ring)
            return;
    }
    struct freed_record *r = &freed.ring[freed.count++ % FREED_RECORDS];
    block_info(b, written, &r->info);
    r->site = b->site;
}

void inspect_each_freed(inspect_fn *fn, void *ctx)
{
    large_lock_assert_held();
    size_t n = freed.count < FREED_RECORDS ? freed.count : FREED_RECORDS;
    for (size_t i = freed.count - n; freed.ring && i < freed.count; i++)
        fn(&freed.ring[i % FREED_RECORDS].info, freed.ring[i % FREED_RECORDS].site, ctx);
}

void inspect_forget_freed(void)
{
    freed.count = 0;
}

static bool describe(const struct block *b, struct refmalloc_block_info *info)
{
    long written = inspect_written_pages(b);
    block_info(b, written, info);
    return written >= 0;
}

struct find_ctx {
    uintptr_t addr;
    struct block *found;
};

static void find_containing(struct block *b, void *ctx)
{
    struct find_ctx *f = ctx;
    if (b->state == BLOCK_LIVE && f->addr - b->start < b->mapped)
        f->found = b;
}

int inspect_query(uintptr_t addr, struct refmalloc_block_info *info)
{
    large_lock_assert_held();
    struct find_ctx f = {addr, NULL};
    blocks_each(find_containing, &f);
    if (!f.found)
        return 0;
    return describe(f.found, info) ? 1 : -1;
}

struct each_ctx {
    inspect_fn *fn;
    void *ctx;
};

static void visit_live(struct block *b, void *ctx)
{
    struct each_ctx *e = ctx;
    struct refmalloc_block_info info;
    if (b->state == BLOCK_LIVE) {
        describe(b, &info);
        e->fn(&info, b->site, e->ctx);
    }
}

void inspect_each_live(inspect_fn *fn, void *ctx)
{
    large_lock_assert_held();
    struct each_ctx e = {fn, ctx};
    blocks_each(visit_live, &e);
}

struct totals_ctx {
    size_t blocks, bytes;
};

static void add_live(struct block *b, void *ctx)
{
    struct totals_ctx *t = ctx;
    if (b->state == BLOCK_LIVE) {
        t->blocks++;
        t->bytes += b->mapped;
    }
}

void inspect_live_totals(size_t *blocks, size_t *bytes)
{
    large_lock_assert_held();
    struct totals_ctx t = {0, 0};
    blocks_each(add_live, &t);
    *blocks = t.blocks;
    *bytes = t.bytes;
}
