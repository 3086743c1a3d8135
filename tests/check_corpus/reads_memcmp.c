/* Two blocks compared before either is written: equal under every pattern, so
 * the output never changes; only the read tracker sees the read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    size_t n = 256 << 10;
    unsigned char *a = malloc(n), *b = malloc(n);
    if (!a || !b)
        return 2;
    int same = memcmp(a, b, n) == 0; /* READ */
    printf("%s\n", same ? "same" : "different");
    free(a);
    free(b);
    return 0;
}
