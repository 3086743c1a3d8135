/* A small block read before it is written: printed as a number. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static unsigned char *alloc_counter(void)
{
    return malloc(24);
}

int main(void)
{
    unsigned char *p = alloc_counter();
    if (!p)
        return 2;
    p[0] = 1;
    printf("counter=%u\n", p[0] + p[9]);
    free(p);
    return 0;
}
