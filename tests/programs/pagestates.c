/* refmalloc_page_states and the report's freed blocks and memory figures.
 *
 *   states   a large block with pages read, written and untouched: the states
 *            match page by page; a written page of anonymous memory is WRITTEN
 *   report   free three large blocks written on 0, 3 and all pages, then exit
 *            (the test reads the report)
 *   runs     blocks of 300 pages written in fixed patterns (none, first page,
 *            every other page: 150 runs, three of every seven, all) and
 *            anonymous memory: one line per block with its states (U, P, W)
 *            and refmalloc_query's written count; then the every-other block
 *            freed, taken back from the cache and checked to hold the pattern.
 *            Only writes, no reads (fault-around would make the output vary):
 *            the test compares it between PAGEMAP_SCAN and pread. */
#include "common.h"

#include <sys/mman.h>

typedef long (*page_states_fn)(const void *, size_t, unsigned char *);

static page_states_fn page_states(void)
{
    page_states_fn fn = (page_states_fn)dlsym(RTLD_DEFAULT, "refmalloc_page_states");
    CHECK(fn, "refmalloc_page_states not exported");
    return fn;
}

static void mode_states(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 64;
    volatile unsigned char *p = malloc(n * page);
    CHECK(p, "malloc");
    CHECK(((uintptr_t)p & (page - 1)) == 0, "large block not page aligned");
    unsigned char sink = 0;
    for (size_t i = 0; i < n; i += 4)       /* read every 4th page */
        sink ^= p[i * page];
    for (size_t i = 1; i < n; i += 8)       /* write every 8th page from 1 */
        p[i * page + 7] = 1;
    unsigned char st[64];
    long got = page_states()((const void *)p, n * page, st);
    CHECK(got == (long)n, "page_states returned %ld, expected %zu", got, n);
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 1)
            CHECK(st[i] == REFMALLOC_PAGE_WRITTEN, "page %zu written, state %u", i, st[i]);
        else if (i % 4 == 0)
            CHECK(st[i] == REFMALLOC_PAGE_PATTERN, "page %zu read, state %u", i, st[i]);
        else
            /* fault-around may map unread neighbours in: still the pattern */
            CHECK(st[i] != REFMALLOC_PAGE_WRITTEN, "page %zu untouched, state %u", i, st[i]);
    }
    /* A range starting mid-page covers the pages it overlaps. */
    CHECK(page_states()((const void *)(p + page + 1), page, st) == 2, "unaligned range");
    CHECK(st[0] == REFMALLOC_PAGE_WRITTEN, "unaligned range: first page state %u", st[0]);
    /* Anonymous memory: a touched page counts as written. */
    unsigned char *anon = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED, "mmap");
    anon[0] = 1;
    CHECK(page_states()(anon, 2 * page, st) == 2, "anon range");
    CHECK(st[0] == REFMALLOC_PAGE_WRITTEN && st[1] == REFMALLOC_PAGE_UNTOUCHED,
          "anon states %u %u", st[0], st[1]);
    printf("OK states %u\n", sink);
}

static void mode_report(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 40;
    size_t written[3] = {0, 3, 40};
    for (int b = 0; b < 3; b++) {
        unsigned char *p = malloc(n * page + b);   /* sizes tell the blocks apart */
        CHECK(p, "malloc");
        for (size_t i = 0; i < written[b]; i++)
            p[i * page] = 1;
        printf("FREED %zu %zu\n", n * page + b, written[b]);
        free(p);
    }
}

typedef int (*query_fn)(const void *, struct refmalloc_block_info *);

static void print_states(const char *name, const void *p, size_t n)
{
    static unsigned char st[300];
    char text[301];
    CHECK(n <= sizeof st, "too many pages");
    CHECK(page_states()(p, n * (size_t)sysconf(_SC_PAGESIZE), st) == (long)n, "page_states");
    for (size_t i = 0; i < n; i++)
        text[i] = st[i] == REFMALLOC_PAGE_WRITTEN ? 'W' : st[i] == REFMALLOC_PAGE_PATTERN ? 'P' : 'U';
    text[n] = '\0';
    struct refmalloc_block_info info = {0};
    query_fn q = (query_fn)dlsym(RTLD_DEFAULT, "refmalloc_query");
    CHECK(q, "refmalloc_query not exported");
    long written = q(p, &info) == 1 ? (long)info.pages_written : -1;
    printf("%s %ld %s\n", name, written, text);
}

static int every_other(size_t i) { return i % 2 == 0; }
static int three_of_seven(size_t i) { return i % 7 < 3; }
static int first_only(size_t i) { return i == 0; }
static int none(size_t i) { (void)i; return 0; }
static int all(size_t i) { (void)i; return 1; }

static void mode_runs(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 300;
    struct { const char *name; int (*writes)(size_t); } kinds[] = {
        {"none", none}, {"first", first_only}, {"other", every_other},
        {"three7", three_of_seven}, {"all", all},
    };
    unsigned char *blocks[5];
    for (int k = 0; k < 5; k++) {
        /* sizes differ, so that the cache gives back the block asked for */
        blocks[k] = malloc(n * page - (size_t)k * 8);
        CHECK(blocks[k], "malloc");
        for (size_t i = 0; i < n; i++)
            if (kinds[k].writes(i))
                blocks[k][i * page + 5] = 1;
    }
    for (int k = 0; k < 5; k++)
        print_states(kinds[k].name, blocks[k], n);
    unsigned char *anon = mmap(NULL, 30 * page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED, "mmap");
    for (size_t i = 0; i < 30; i += 3)
        anon[i * page] = 1;
    print_states("anon", anon, 30);
    /* The cache restores the block from its written runs (more than one
     * scan's worth): every byte is the pattern again. */
    size_t size = n * page - 16;
    free(blocks[2]);
    unsigned char *again = malloc(size);
    CHECK(again == blocks[2], "the freed block was not reused");
    for (size_t i = 0; i < size; i++)
        CHECK(again[i] == 0xAA, "reused block: byte %zu is %#x", i, again[i]);
    printf("RESTORED\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "states"))
        mode_states();
    else if (argc > 1 && !strcmp(argv[1], "report"))
        mode_report();
    else if (argc > 1 && !strcmp(argv[1], "runs"))
        mode_runs();
    else
        FAIL("usage: pagestates states|report|runs");
    return 0;
}
