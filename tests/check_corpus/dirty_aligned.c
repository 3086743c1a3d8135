/* Aligned blocks: posix_memalign and aligned_alloc, partly initialized. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static double *alloc_vector(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(double)) != 0)
        return NULL;
    return p;
}

int main(void)
{
    double *v = alloc_vector(16);
    char *page = aligned_alloc(4096, 4096);
    if (!v || !page)
        return 2;
    for (int i = 0; i < 15; i++)
        v[i] = i;
    memset(page, '-', 4096);
    double total = 0;
    for (int i = 0; i < 16; i++)
        total += v[i];
    printf("total %.6g %c\n", total, page[100]);
    free(v);
    free(page);
    return 0;
}
