/* Every byte written before it is read: small, large, realloc'd, aligned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    size_t big = 3u << 20;
    unsigned char *a = malloc(100), *b = malloc(big);
    void *c = NULL;
    if (!a || !b || posix_memalign(&c, 256, 1000) != 0)
        return 2;
    memset(a, 1, 100);
    for (size_t i = 0; i < big; i++)
        b[i] = (unsigned char)i;
    memset(c, 3, 1000);
    a = realloc(a, 300);
    if (!a)
        return 2;
    memset(a + 100, 2, 200);
    unsigned long sum = 0;
    for (int i = 0; i < 300; i++)
        sum += a[i];
    for (size_t i = 0; i < big; i += 97)
        sum += b[i];
    sum += ((unsigned char *)c)[999];
    printf("sum %lu\n", sum);
    free(a);
    free(b);
    free(c);
    return 0;
}
