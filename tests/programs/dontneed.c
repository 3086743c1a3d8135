/* dontneed: a 1 MiB block (large: above the default threshold), written
 * whole with 0x01, then madvise(MADV_DONTNEED) over four of its pages.
 * Prints the byte read back in a dropped page and the one just after them:
 * on a reference-page block the dropped pages show the pattern again (the
 * private copies go, the pattern file shows through); on anonymous memory
 * (glibc's mmap'd blocks, the eager fallback) they read zero. */
#include <sys/mman.h>

#include "common.h"

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 1 << 20;
    unsigned char *p = malloc(size);
    if (!p)
        FAIL("malloc(%zu) failed", size);
    memset(p, 0x01, size);
    unsigned char *from = (unsigned char *)(((uintptr_t)p + page - 1) / page * page) + 2 * page;
    if (madvise(from, 4 * page, MADV_DONTNEED) != 0)
        FAIL("madvise: %s", strerror(errno));
    CHECK(from + 5 * page <= p + size, "range outside the block");
    for (size_t i = 1; i < 4 * page; i++)
        CHECK(from[i] == from[0], "dropped byte %zu is %02x, byte 0 is %02x", i, from[i], from[0]);
    printf("%02x %02x %02x\n", from[0], from[4 * page], from[-1]);
    free(p);
    return 0;
}
