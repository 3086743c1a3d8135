/* A small shared library for dlsite.c (built with -shared -fPIC): its
 * function allocates, so the block's call site lies in this library, which
 * the program unloads before it exits. */
#include <stdlib.h>
#include <string.h>

/* The byte at offset 3 of a fresh 32-byte block: never written, so it is
 * the pattern the library gives this call site. */
__attribute__((noinline)) int dlsite_fresh_byte(void)
{
    unsigned char *p = malloc(32);
    if (!p)
        return -1;
    memset(p, 'x', 3);
    int byte = p[3];
    free(p);
    return byte;
}
