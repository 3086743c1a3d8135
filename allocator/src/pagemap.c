#include "pagemap.h"

#include <stdbool.h>

#include "os.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE    (1ull << 61)

static bool is_written(uint64_t e)
{
    /* Present or swapped out, and not the file's page: a private copy. */
    return (e & (PM_PRESENT | PM_SWAPPED)) && !(e & PM_FILE);
}

long pagemap_written(uintptr_t addr, size_t npages, pagemap_run_fn fn, void *ctx)
{
    enum { BATCH = 512 };
    uint64_t entries[BATCH];
    size_t page = os_page_size();
    long written = 0;
    uintptr_t run_start = 0;
    size_t run_len = 0;
    int fd = os_pagemap_open();
    if (fd < 0)
        return -1;
    for (size_t done = 0; done < npages;) {
        size_t n = npages - done < BATCH ? npages - done : BATCH;
        if (!os_pagemap_read(fd, addr + done * page, n, entries)) {
            os_close(fd);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            uintptr_t at = addr + (done + i) * page;
            if (is_written(entries[i])) {
                written++;
                if (run_len == 0)
                    run_start = at;
                run_len += page;
            } else if (run_len != 0) {
                if (fn)
                    fn(run_start, run_len, ctx);
                run_len = 0;
            }
        }
        done += n;
    }
    os_close(fd);
    if (run_len != 0 && fn)
        fn(run_start, run_len, ctx);
    return written;
}
