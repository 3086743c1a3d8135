/* realloc's grown tail (past the old block's usable size) is never written but is
 * written out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *grow(char *buf, size_t n)
{
    return realloc(buf, n);
}

int main(void)
{
    char *buf = malloc(8);
    if (!buf)
        return 2;
    memcpy(buf, "abcdefgh", 8);
    buf = grow(buf, 200);
    if (!buf)
        return 2;
    fwrite(buf, 1, 8, stdout);
    fwrite(buf + 150, 1, 4, stdout);
    putchar('\n');
    free(buf);
    return 0;
}
