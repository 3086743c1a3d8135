#include "pagemap.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "descriptors.h"
#include "os.h"
#include "refmalloc.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE    (1ull << 61)
#define PM_EXCLUSIVE (1ull << 56)

static enum refmalloc_page_state classify(uint64_t e)
{
    if (!(e & (PM_PRESENT | PM_SWAPPED)))
        return REFMALLOC_PAGE_UNTOUCHED;
    /* Present or swapped out, and not the file's page: a private copy. */
    return (e & PM_FILE) ? REFMALLOC_PAGE_PATTERN : REFMALLOC_PAGE_WRITTEN;
}

/* One descriptor for the life of the process, not one per scan: opening
 * /proc/self/pagemap costs more than reading a block's entries, and is a
 * system call a seccomp filter installed later may forbid. It is dropped
 * (not closed: the number may be the program's now) when the program
 * changed one of our numbers, and reopened; a child gets its own in
 * pagemap_fork_child, since the parent's reads the parent's pages. Atomics:
 * refmalloc_page_states scans without the large-block lock. A scan that
 * raced with a drop may read a number the program reused: its answer is
 * then wrong once, as it would be if the program closed it by a raw call. */
static _Atomic int kept_fd = -1;
static _Atomic uint64_t kept_generation;
/* Set by pagemap_before_sandbox: no reads any more. */
static _Atomic bool sandboxed;

static int pagemap_fd(void)
{
    if (atomic_load(&sandboxed))
        return -1;
    uint64_t now = descriptors_generation();
    int fd = atomic_load(&kept_fd);
    if (fd >= 0 && atomic_load(&kept_generation) == now)
        return fd;
    int fresh = os_pagemap_open();
    if (fresh < 0)
        return -1;
    descriptors_own(fresh);
    if (!atomic_compare_exchange_strong(&kept_fd, &fd, fresh)) {
        os_close(fresh);   /* another thread kept one first */
        return fd;
    }
    atomic_store(&kept_generation, now);
    return fresh;
}

void pagemap_fork_child(void)
{
    int fd = atomic_exchange(&kept_fd, -1);
    if (fd >= 0 && atomic_load(&kept_generation) == descriptors_generation())
        os_close(fd);
}

void pagemap_before_sandbox(void)
{
    atomic_store(&sandboxed, true);
}

typedef void (*page_fn)(uintptr_t at, enum refmalloc_page_state state, void *ctx);

/* Read the pagemap of [addr, addr + npages pages) in batches, calling fn on
 * every page in order. */
typedef void (*entry_fn)(uintptr_t at, uint64_t entry, void *ctx);

/* Read the raw pagemap entries of the range in batches, in order. */
static bool walk_entries(uintptr_t addr, size_t npages, entry_fn fn, void *ctx)
{
    enum { BATCH = 512 };
    uint64_t entries[BATCH];
    size_t page = os_page_size();
    int fd = pagemap_fd();
    if (fd < 0)
        return false;
    bool ok = true;
    for (size_t done = 0; done < npages && ok;) {
        size_t n = npages - done < BATCH ? npages - done : BATCH;
        ok = os_pagemap_read(fd, addr + done * page, n, entries);
        for (size_t i = 0; ok && i < n; i++)
            fn(addr + (done + i) * page, entries[i], ctx);
        done += n;
    }
    return ok;
}

struct classified {
    page_fn fn;
    void *ctx;
};

static void classify_entry(uintptr_t at, uint64_t entry, void *ctx)
{
    struct classified *c = ctx;
    c->fn(at, classify(entry), c->ctx);
}

static bool walk(uintptr_t addr, size_t npages, page_fn fn, void *ctx)
{
    struct classified c = {fn, ctx};
    return walk_entries(addr, npages, classify_entry, &c);
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

/* ---- PAGEMAP_SCAN ------------------------------------------------------------
 * One ioctl returns only the runs of pages in the wanted categories, where
 * pread returns 8 bytes for every page of the range. Whether the kernel has
 * it is decided once, at the first scan: an older kernel (ENOTTY, EINVAL)
 * or any other refusal makes every later scan read entries instead, as does
 * pagemap_scan=0 (to test that path). */
enum { SCAN_UNTRIED, SCAN_ON, SCAN_OFF };
static _Atomic int scan_mode = SCAN_UNTRIED;

typedef void (*scan_fn)(uintptr_t start, uintptr_t end, uint64_t categories, void *ctx);

/* Runs of [addr, addr + npages pages) matching q, in order, to fn. 1 done,
 * 0 unreadable, -1 no PAGEMAP_SCAN here (the caller reads entries). */
static int scan(uintptr_t addr, size_t npages, const struct os_scan_query *q, scan_fn fn,
                void *ctx)
{
    enum { RUNS = 64 };
    if (!config()->pagemap_scan || atomic_load(&scan_mode) == SCAN_OFF)
        return -1;
    int fd = pagemap_fd();
    if (fd < 0)
        return 0;
    struct os_page_run runs[RUNS];
    uintptr_t at = addr, end = addr + npages * os_page_size();
    while (at < end) {
        uintptr_t walked;
        long n = os_pagemap_scan(fd, at, end, q, runs, RUNS, &walked);
        if (n < 0) {
            int untried = SCAN_UNTRIED;
            /* Refused at the first try: never here. Later (it worked
             * before): unreadable this once, as a failed pread is. */
            if (atomic_compare_exchange_strong(&scan_mode, &untried, SCAN_OFF) ||
                untried == SCAN_OFF)
                return at == addr ? -1 : 0;
            return 0;
        }
        atomic_store(&scan_mode, SCAN_ON);
        for (long i = 0; i < n; i++)
            fn((uintptr_t)runs[i].start, (uintptr_t)runs[i].end, runs[i].categories, ctx);
        if (walked <= at)
            return 0;   /* no progress: never loop */
        at = walked;
    }
    return 1;
}

/* Written: present or swapped out, and not the file's page (a private
 * copy), as classify() says. */
static const struct os_scan_query written_query = {
    .inverted = OS_PAGE_IS_FILE,
    .all = OS_PAGE_IS_FILE,
    .any_of = OS_PAGE_IS_PRESENT | OS_PAGE_IS_SWAPPED,
    .shown = OS_PAGE_IS_PRESENT | OS_PAGE_IS_SWAPPED | OS_PAGE_IS_FILE,
};

/* The kernel splits runs where the shown categories change (present,
 * swapped): join adjacent ones, so that callers see the runs pread gives. */
static void scan_written(uintptr_t start, uintptr_t end, uint64_t categories, void *ctx)
{
    (void)categories;
    struct runs *r = ctx;
    if (r->len != 0 && r->start + r->len != start)
        end_run(r);
    if (r->len == 0)
        r->start = start;
    r->len += end - start;
    r->written += (long)((end - start) / os_page_size());
}

long pagemap_written(uintptr_t addr, size_t npages, pagemap_run_fn fn, void *ctx)
{
    struct runs r = {.fn = fn, .ctx = ctx};
    int scanned = scan(addr, npages, &written_query, scan_written, &r);
    if (scanned == 0)
        return -1;
    if (scanned < 0 && !walk(addr, npages, collect_run, &r))
        return -1;
    end_run(&r);
    return r.written;
}

struct states {
    uintptr_t base;
    unsigned char *out;
    bool file_pages;   /* any page classified as the file's (pattern) page */
};

static void store_state(uintptr_t at, enum refmalloc_page_state state, void *ctx)
{
    struct states *s = ctx;
    s->out[(at - s->base) / os_page_size()] = (unsigned char)state;
    s->file_pages |= state == REFMALLOC_PAGE_PATTERN;
}

/* A shared mapping (MAP_SHARED anonymous memory, a memfd, a file) has no
 * pattern page behind it: its pages are the page cache's, which the pagemap
 * shows as file pages whether written or not. A present page there is the
 * mapping's own memory: written, or only read (a read of a hole in shared
 * memory allocates a page as a write does, and the pagemap tells neither
 * apart), as any touched page of private anonymous memory. */
static void shared_written(uintptr_t start, uintptr_t end, void *ctx)
{
    struct states *s = ctx;
    size_t page = os_page_size();
    for (uintptr_t at = start & ~(uintptr_t)(page - 1); at < end; at += page) {
        unsigned char *state = &s->out[(at - s->base) / page];
        if (*state == REFMALLOC_PAGE_PATTERN)
            *state = REFMALLOC_PAGE_WRITTEN;
    }
}

/* Touched pages (present or swapped), the file's or not. */
static const struct os_scan_query touched_query = {
    .any_of = OS_PAGE_IS_PRESENT | OS_PAGE_IS_SWAPPED,
    .shown = OS_PAGE_IS_FILE,
};

static void scan_states(uintptr_t start, uintptr_t end, uint64_t categories, void *ctx)
{
    struct states *s = ctx;
    enum refmalloc_page_state state =
        categories & OS_PAGE_IS_FILE ? REFMALLOC_PAGE_PATTERN : REFMALLOC_PAGE_WRITTEN;
    for (uintptr_t at = start; at < end; at += os_page_size())
        store_state(at, state, s);
}

int pagemap_states(uintptr_t addr, size_t npages, unsigned char *out)
{
    struct states s = {addr, out, false};
    memset(out, REFMALLOC_PAGE_UNTOUCHED, npages);
    int scanned = scan(addr, npages, &touched_query, scan_states, &s);
    if (scanned == 0)
        return -1;
    if (scanned < 0 && !walk(addr, npages, store_state, &s))
        return -1;
    /* Only file pages can be shared memory: a range without any (written
     * or untouched memory only) needs no look at the mappings. */
    if (s.file_pages &&
        !os_each_shared_mapping(addr, addr + npages * os_page_size(), shared_written, &s))
        return -1;
    return 0;
}

/* Anonymous memory that reads as zeros (a calloc block): a page the program
 * only read maps the kernel's shared zero page (or huge zero page, which the
 * pagemap shows as a file page), which is present but never mapped
 * exclusively. A written page is the process's own: exclusive, or swapped
 * out. (A written page shared with a forked process is not exclusive and is
 * not counted: this count is for reports only.) */
struct zero_count {
    long written;
};

static void count_private(uintptr_t at, uint64_t e, void *ctx)
{
    (void)at;
    struct zero_count *z = ctx;
    if ((e & PM_SWAPPED) || ((e & PM_PRESENT) && !(e & PM_FILE) && (e & PM_EXCLUSIVE)))
        z->written++;
}

long pagemap_private_written(uintptr_t addr, size_t npages)
{
    struct zero_count z = {0};
    return walk_entries(addr, npages, count_private, &z) ? z.written : -1;
}
