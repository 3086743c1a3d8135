/* Zeroed blocks read without being written: calloc's zeros are initialized. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    unsigned long sum = 0;
    for (size_t n = 4096; n <= (4u << 20); n *= 4) {
        unsigned char *p = calloc(n, 1);
        if (!p)
            return 2;
        for (size_t i = 0; i < n; i += 512)
            sum += p[i];
        free(p);
    }
    printf("sum %lu\n", sum);
    return 0;
}
