/* realloc moving large blocks: two blocks grown in turn, so neither has room
 * after it, written sparsely. After every move the content is intact, the
 * grown tail holds the pattern, and refmalloc_query counts exactly the pages
 * the program wrote: unwritten pages were neither copied nor touched, by the
 * kernel's move (mremap=1) or by the copy of written pages (mremap=0). */
#include "common.h"

static unsigned char PAT;

typedef int (*query_fn)(const void *, struct refmalloc_block_info *);

int main(void)
{
    PAT = expected_pattern();
    query_fn query = (query_fn)dlsym(RTLD_DEFAULT, "refmalloc_query");
    CHECK(query, "refmalloc_query not exported");
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = 64 * page;
    unsigned char *blk[2];
    size_t written[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        blk[b] = malloc(size);
        CHECK(blk[b], "malloc");
    }
    for (int round = 0; round < 6; round++) {
        for (int b = 0; b < 2; b++) {
            /* Write one byte on every 16th page of the part added last. */
            for (size_t off = round ? size / 2 : 0; off < size; off += 16 * page, written[b]++)
                blk[b][off] = (unsigned char)(b + 1);
            unsigned char *old = blk[b];
            blk[b] = realloc(old, 2 * size);
            CHECK(blk[b], "realloc to %zu", 2 * size);
            for (size_t off = 0; off < size; off += page) {
                unsigned char want = off % (16 * page) == 0 ? (unsigned char)(b + 1) : PAT;
                CHECK(blk[b][off] == want, "round %d block %d: byte at %zu is %02x not %02x",
                      round, b, off, blk[b][off], want);
            }
            CHECK_BYTES(blk[b], size, 2 * size, PAT, "round %d block %d grown tail", round, b);
            struct refmalloc_block_info info;
            CHECK(query(blk[b], &info) == 1, "query");
            CHECK(info.pages_written == written[b], "round %d block %d: %zu pages written, %zu "
                  "counted", round, b, written[b], info.pages_written);
        }
        size *= 2;
    }
    struct refmalloc_stats s;
    get_stats(&s);
    CHECK(s.realloc_moved > 0, "no realloc moved a block");
    printf("OK move moved=%" PRIu64 " in_place=%" PRIu64 "\n", s.realloc_moved,
           s.realloc_in_place);
    return 0;
}
