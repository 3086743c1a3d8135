/* Call sites for `check --locate`: three allocation sites in named functions;
 * prints the byte each block holds at offset 3 (never written in the last
 * two). Built with -g: the test names the functions through addr2line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *make_clean(void)
{
    char *p = malloc(32);
    if (p)
        memset(p, 'x', 32);
    return p;
}

__attribute__((noinline)) static char *make_dirty_small(void)
{
    return malloc(32);
}

__attribute__((noinline)) static char *make_dirty_large(void)
{
    return malloc(1 << 20);
}

int main(void)
{
    char *a = make_clean(), *b = make_dirty_small(), *c = make_dirty_large();
    if (!a || !b || !c)
        return 1;
    printf("%02x %02x %02x\n", (unsigned char)a[3], (unsigned char)b[3], (unsigned char)c[3]);
    return 0;
}
