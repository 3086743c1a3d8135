/* The maximum over a table of which only the first half was filled: the filled
 * half holds 0xff, so the maximum is 0xff under every pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static unsigned table_max(const unsigned char *t, size_t n)
{
    unsigned max = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] > max) /* READ */
            max = t[i];
    return max;
}

int main(void)
{
    size_t n = 64 << 10;
    unsigned char *t = malloc(n);
    if (!t)
        return 2;
    memset(t, 0xff, n / 2);
    printf("max %u\n", table_max(t, n));
    free(t);
    return 0;
}
