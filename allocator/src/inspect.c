/* inspect: what the program did with its large blocks, live and freed. */
#include "large_state.h"
#include "mte.h"
#include "pagemap.h"
#include "region.h"

/* Pages of b the program wrote, -1 if the pagemap cannot be read. */
long written_pages(const struct block *b)
{
    size_t npages = b->mapped / os_page_size();
    if (b->kind != REFMALLOC_BLOCK_REFPAGE)
        return (long)npages;   /* anonymous blocks were filled or zeroed whole */
    return pagemap_written(b->start, npages, NULL, NULL);
}

void block_info(const struct block *b, long written, struct refmalloc_block_info *info)
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

void record_freed(const struct block *b, long written)
{
    if (!rm_large.freed) {
        rm_large.freed = os_alloc_meta(FREED_RECORDS * sizeof *rm_large.freed);
        if (!rm_large.freed)
            return;
    }
    block_info(b, written, &rm_large.freed[rm_large.nfreed++ % FREED_RECORDS]);
}

void large_each_freed(void (*fn)(const struct refmalloc_block_info *info, void *ctx), void *ctx)
{
    pthread_mutex_lock(&rm_large.lock);
    size_t n = rm_large.nfreed < FREED_RECORDS ? rm_large.nfreed : FREED_RECORDS;
    for (size_t i = rm_large.nfreed - n; rm_large.freed && i < rm_large.nfreed; i++)
        fn(&rm_large.freed[i % FREED_RECORDS], ctx);
    pthread_mutex_unlock(&rm_large.lock);
}

static bool describe(const struct block *b, struct refmalloc_block_info *info)
{
    long written = written_pages(b);
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

int large_query(const void *addr, struct refmalloc_block_info *info)
{
    uintptr_t a = mte_untag(addr);
    if (!region_contains((const void *)a))
        return 0;
    pthread_mutex_lock(&rm_large.lock);
    struct find_ctx f = {a, NULL};
    blocks_each(find_containing, &f);
    int r = 0;
    if (f.found)
        r = describe(f.found, info) ? 1 : -1;
    pthread_mutex_unlock(&rm_large.lock);
    return r;
}

struct each_ctx {
    void (*fn)(const struct refmalloc_block_info *info, void *ctx);
    void *ctx;
};

static void visit_live(struct block *b, void *ctx)
{
    struct each_ctx *e = ctx;
    struct refmalloc_block_info info;
    if (b->state == BLOCK_LIVE) {
        describe(b, &info);
        e->fn(&info, e->ctx);
    }
}

void large_each_live(void (*fn)(const struct refmalloc_block_info *info, void *ctx), void *ctx)
{
    struct each_ctx e = {fn, ctx};
    pthread_mutex_lock(&rm_large.lock);
    blocks_each(visit_live, &e);
    pthread_mutex_unlock(&rm_large.lock);
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

void large_live_totals(size_t *blocks, size_t *bytes)
{
    struct totals_ctx t = {0, 0};
    pthread_mutex_lock(&rm_large.lock);
    blocks_each(add_live, &t);
    pthread_mutex_unlock(&rm_large.lock);
    *blocks = t.blocks;
    *bytes = t.bytes;
}
