/* Reports what the program observes, for the option tests:
 *   SMALL xx     byte value of a fresh malloc(100) (or "mixed")
 *   LARGE xx     byte value of a fresh malloc(2 MiB)
 *   REFPAT xx    refmalloc_pattern()
 *   AT-1 small|large, AT small|large   malloc(T-1) / malloc(T) for T = argv[1]
 *   SECURE n     getauxval(AT_SECURE)
 *   FREED xx     bytes 16..199 of a freed 200-byte block (or "mixed")
 * Nothing goes to stderr, so the test sees only the library's messages there. */
#include "common.h"
#include <sys/auxv.h>

static const char *uniform(const unsigned char *p, size_t from, size_t n)
{
    for (size_t i = from + 1; i < n; i++)
        if (p[i] != p[from])
            return "mixed";
    return rm_fmt("%02x", p[from]);
}

static const char *kind_of(size_t n)
{
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    void *p = malloc(n);
    opaque(p);
    get_stats(&s1);
    free(p);
    return s1.large_allocs > s0.large_allocs ? "large" : "small";
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t T = argc > 1 ? strtoul(argv[1], NULL, 0) : 131072;
    printf("SECURE %lu\n", getauxval(AT_SECURE));
    unsigned char *s = malloc(100);
    printf("SMALL %s\n", uniform(s, 0, malloc_usable_size(s)));
    free(s);
    unsigned char *l = malloc(2 << 20);
    printf("LARGE %s\n", uniform(l, 0, 2 << 20));
    free(l);
    unsigned char (*pat)(void) = (unsigned char (*)(void))dlsym(RTLD_DEFAULT, "refmalloc_pattern");
    if (!pat) {
        printf("REFPAT none\n");
        return 3;
    }
    printf("REFPAT %02x\n", pat());
    printf("AT-1 %s\n", kind_of(T - 1));
    printf("AT %s\n", kind_of(T));
    /* Freed small block: bytes after the next allocator's free-list pointers. */
    unsigned char *f = malloc(200);
    unsigned char *g = malloc(200);   /* keeps f from merging with the top */
    memset(f, 0x01, 200);
    opaque(f);
    opaque(g);
    free(f);
    char buf[16];
    snprintf(buf, sizeof buf, "%s", uniform(f, 16, 200));
    printf("FREED %s\n", buf);
    free(g);
    return 0;
}
