/* 64 blocks of 1 GiB live at once, written sparsely (argv[1]: one byte every
 * N pages, default 1000). Pattern on sampled pages, few mappings, little
 * anonymous memory. */
#include "common.h"

#define GiB (1024ul * 1024ul * 1024ul)

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned char PAT = expected_pattern();
    size_t every = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000;
    int nblocks = argc > 2 ? atoi(argv[2]) : 64;
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    size_t ps = page_size();
    size_t npages = GiB / ps;
    long anon0 = smaps_rollup_kb("Anonymous");
    long maps0 = count_maps();
    unsigned char *blk[256];
    size_t written = 0;
    for (int b = 0; b < nblocks; b++) {
        blk[b] = malloc(GiB);
        if (!blk[b])
            FAIL("malloc(1 GiB) #%d returned NULL (errno %d)", b, errno);
        CHECK(malloc_usable_size(blk[b]) >= GiB, "usable");
        for (size_t pg = (size_t)b % every; pg < npages; pg += every) {
            blk[b][pg * ps + 17] = (unsigned char)(b + 1);
            written++;
        }
    }
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("live", &s);
    long maps1 = count_maps();
    long anon1 = smaps_rollup_kb("Anonymous");
    long pss = smaps_rollup_kb("Pss");
    printf("blocks=%d written_pages=%zu maps %ld -> %ld anonymous %ld -> %ld kB pss %ld kB\n",
           nblocks, written, maps0, maps1, anon0, anon1, pss);
    CHECK(s.live_large_blocks == (uint64_t)nblocks, "live_large_blocks %" PRIu64, s.live_large_blocks);
    CHECK(s.refpage_allocs >= (uint64_t)nblocks, "refpage_allocs %" PRIu64 " < %d (eager fallback?)",
          s.refpage_allocs, nblocks);
    CHECK(s.eager_allocs == 0 && s.fallback_budget == 0 && s.fallback_region == 0,
          "fallbacks used for 64 GiB of sparse blocks");
    CHECK(s.mappings_in_use <= 4096, "mappings_in_use %" PRIu64 " > 4096", s.mappings_in_use);
    CHECK(maps1 - maps0 <= 4096 + 64, "/proc/self/maps grew by %ld lines", maps1 - maps0);
    /* Anonymous memory: the written pages (4 KiB each) plus slack, far below 64 GiB. */
    long allowed_kb = (long)(written * ps / 1024) * 2 + 64 * 1024;
    CHECK(anon1 - anon0 <= allowed_kb, "anonymous memory grew by %ld kB, allowed %ld kB",
          anon1 - anon0, allowed_kb);
    /* Sample pages: whole page checked, and the written bytes read back. */
    for (int b = 0; b < nblocks; b++) {
        for (size_t k = 0; k < 40; k++) {
            size_t pg = (k * 6151 + (size_t)b * 97) % npages;
            int was_written = pg % every == (size_t)b % every;
            unsigned char *page = blk[b] + pg * ps;
            if (was_written) {
                CHECK(page[17] == (unsigned char)(b + 1), "written byte lost block %d page %zu", b, pg);
                CHECK_BYTES(page, 0, 17, PAT, "block %d page %zu before written byte", b, pg);
                CHECK_BYTES(page, 18, ps, PAT, "block %d page %zu after written byte", b, pg);
            } else {
                CHECK_BYTES(page, 0, ps, PAT, "block %d page %zu", b, pg);
            }
        }
        size_t pg = (size_t)b % every;       /* a written page */
        CHECK(blk[b][pg * ps + 17] == (unsigned char)(b + 1), "written byte block %d", b);
        CHECK_BYTES(blk[b], GiB - ps, GiB, PAT, "block %d last page", b);
    }
    long anon2 = smaps_rollup_kb("Anonymous");
    CHECK(anon2 - anon1 <= 16 * 1024, "reading sampled pages grew anonymous memory by %ld kB",
          anon2 - anon1);
    for (int b = 0; b < nblocks; b++)
        free(blk[b]);
    get_stats(&s);
    print_stats("freed", &s);
    CHECK(s.live_large_blocks == 0, "live blocks after free");
    long anon3 = smaps_rollup_kb("Anonymous");
    printf("anonymous after free %ld kB\n", anon3);
    CHECK(anon3 - anon0 <= 64 * 1024, "anonymous memory not released after free: %ld kB",
          anon3 - anon0);
    printf("OK sparse\n");
    return 0;
}
