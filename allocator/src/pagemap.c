#include "pagemap.h"

#include <stdbool.h>

#include "os.h"
#include "refmalloc.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE    (1ull << 61)

static enum refmalloc_page_state classify(uint64_t e)
{
    if (!(e & (PM_PRESENT | PM_SWAPPED)))
        return REFMALLOC_PAGE_UNTOUCHED;
    /* Present or swapped out, and not the file's page: a private copy. */
    return (e & PM_FILE) ? REFMALLOC_PAGE_PATTERN : REFMALLOC_PAGE_WRITTEN;
}

typedef void (*page_fn)(uintptr_t at, enum refmalloc_page_state state, void *ctx);

/* Read the pagemap of [addr, addr + npages pages) in batches, calling fn on
 * every page in order. */
static bool walk(uintptr_t addr, size_t npages, page_fn fn, void *ctx)
{
    enum { BATCH = 512 };
    uint64_t entries[BATCH];
    size_t page = os_page_size();
    int fd = os_pagemap_open();
    if (fd < 0)
        return false;
    bool ok = true;
    for (size_t done = 0; done < npages && ok;) {
        size_t n = npages - done < BATCH ? npages - done : BATCH;
        ok = os_pagemap_read(fd, addr + done * page, n, entries);
        for (size_t i = 0; ok && i < n; i++)
            fn(addr + (done + i) * page, classify(entries[i]), ctx);
        done += n;
    }
    os_close(fd);
    return ok;
}

struct runs {
    pagemap_run_fn fn;
    void *ctx;
    long written;
    uintptr_t start;
    size_t len;
};

static void end_run(struct runs *r)
{
    if (r->len != 0 && r->fn)
        r->fn(r->start, r->len, r->ctx);
    r->len = 0;
}

static void collect_run(uintptr_t at, enum refmalloc_page_state state, void *ctx)
{
    struct runs *r = ctx;
    if (state != REFMALLOC_PAGE_WRITTEN) {
        end_run(r);
        return;
    }
    r->written++;
    if (r->len == 0)
        r->start = at;
    r->len += os_page_size();
}

long pagemap_written(uintptr_t addr, size_t npages, pagemap_run_fn fn, void *ctx)
{
    struct runs r = {.fn = fn, .ctx = ctx};
    if (!walk(addr, npages, collect_run, &r))
        return -1;
    end_run(&r);
    return r.written;
}

struct states {
    uintptr_t base;
    unsigned char *out;
};

static void store_state(uintptr_t at, enum refmalloc_page_state state, void *ctx)
{
    struct states *s = ctx;
    s->out[(at - s->base) / os_page_size()] = (unsigned char)state;
}

int pagemap_states(uintptr_t addr, size_t npages, unsigned char *out)
{
    struct states s = {addr, out};
    return walk(addr, npages, store_state, &s) ? 0 : -1;
}
