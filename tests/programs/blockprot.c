/* Protection of freed and reused large blocks. Modes:
 *   reuse KIND VIA  a large block, half its pages written, gets KIND of
 *                   protection from the program (guard: PROT_NONE on its
 *                   first page; read: PROT_READ on all; readexec:
 *                   PROT_READ|PROT_EXEC on all) and is freed; then a block
 *                   of the same size comes from VIA (malloc, or realloc of a
 *                   small block): it must hold the pattern and be writable
 *                   everywhere. Prints "REUSED 1" when it is the same block.
 *   uaf-read        a large block written, freed, then read: prints the byte
 *                   read (with free_guard=1 the read faults instead).
 *   uaf-write       the same with a write after free. */
#include "common.h"
#include <sys/mman.h>

#define SIZE ((size_t)1 << 20)

static unsigned char *fresh(size_t n, const char *what)
{
    unsigned char *p = malloc(n);
    CHECK(p, "%s: malloc(%zu)", what, n);
    return p;
}

static void write_pages(unsigned char *p, size_t from, size_t to, unsigned char v)
{
    for (size_t i = from; i < to; i += page_size())
        p[i] = v;
}

static void mode_reuse(const char *kind, const char *via)
{
    size_t page = page_size();
    unsigned char *p = fresh(SIZE, "first");
    write_pages(p, SIZE / 2, SIZE, 0x11);
    int rc;
    if (!strcmp(kind, "guard"))
        rc = mprotect(p, page, PROT_NONE);
    else if (!strcmp(kind, "read"))
        rc = mprotect(p, SIZE, PROT_READ);
    else if (!strcmp(kind, "readexec"))
        rc = mprotect(p, SIZE, PROT_READ | PROT_EXEC);
    else
        FAIL("unknown kind %s", kind);
    CHECK(rc == 0, "mprotect %s: %s", kind, strerror(errno));
    free(p);

    unsigned char *q;
    if (!strcmp(via, "malloc")) {
        q = fresh(SIZE, "second");
    } else {
        CHECK(!strcmp(via, "realloc"), "unknown way %s", via);
        unsigned char *s = fresh(64, "small");
        memset(s, 0x33, 64);
        q = realloc(s, SIZE);
        CHECK(q, "realloc(small, %zu)", SIZE);
        for (size_t i = 0; i < 64; i++)
            CHECK(q[i] == 0x33, "realloc lost byte %zu", i);
        memset(q, expected_pattern(), 64);
    }
    printf("REUSED %d\n", q == p);
    fflush(stdout);
    size_t usable = malloc_usable_size(q);
    CHECK_BYTES(q, 0, usable, expected_pattern(), "reused block after %s", kind);
    write_pages(q, 0, usable, 0x42);
    q[usable - 1] = 0x43;
    for (size_t i = 0; i < usable; i += page)
        CHECK(q[i] == 0x42, "write to page %zu of the reused block lost", i / page);
    free(q);
    printf("OK reuse %s %s\n", kind, via);
}

static void mode_uaf(int write)
{
    volatile unsigned char *p = fresh(SIZE, "uaf");
    write_pages((unsigned char *)p, 0, SIZE, 0x11);
    free((void *)p);
    printf("FREED\n");
    fflush(stdout);
    if (write)
        p[SIZE / 2] = 0x22;
    unsigned char v = p[SIZE / 2];
    printf("ALIVE %02x\n", v);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && !strcmp(argv[1], "reuse"))
        mode_reuse(argv[2], argv[3]);
    else if (argc == 2 && !strcmp(argv[1], "uaf-read"))
        mode_uaf(0);
    else if (argc == 2 && !strcmp(argv[1], "uaf-write"))
        mode_uaf(1);
    else
        FAIL("usage: blockprot reuse KIND VIA | uaf-read | uaf-write");
    return 0;
}
