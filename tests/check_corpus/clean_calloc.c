/* calloc'd memory, small and large, read without writing: zero under any pattern. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    unsigned *small = calloc(16, sizeof(unsigned));
    unsigned char *large = calloc(1, 8u << 20);
    if (!small || !large)
        return 2;
    unsigned long sum = 0;
    for (int i = 0; i < 16; i++)
        sum += small[i];
    for (size_t i = 0; i < (8u << 20); i += 512)
        sum += large[i];
    printf("sum %lu\n", sum);
    free(small);
    free(large);
    return 0;
}
