/* A block grown by realloc (in place and moved), its new tail written before
 * anything reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    size_t n = 64 << 10;
    unsigned char *p = malloc(n);
    if (!p)
        return 2;
    memset(p, 1, n);
    unsigned long sum = 0;
    for (int step = 0; step < 6; step++) {
        size_t m = n * 3;
        unsigned char *q = realloc(p, m);
        if (!q)
            return 2;
        memset(q + n, 2, m - n);
        for (size_t i = 0; i < m; i += 64)
            sum += q[i];
        p = q;
        n = m;
    }
    printf("sum %lu\n", sum);
    free(p);
    return 0;
}
