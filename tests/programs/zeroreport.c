/* Large calloc blocks for the report: one never touched, one read whole and
 * written on three pages. Prints WRITTEN <size> <pages written>. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t big = 80u << 20, read_size = 40u << 20;
    unsigned char *untouched = calloc(1, big);
    unsigned char *read_whole = calloc(1, read_size);
    if (!untouched || !read_whole)
        return 1;
    unsigned sum = 0;
    for (size_t i = 0; i < read_size; i += page)
        sum += ((volatile unsigned char *)read_whole)[i];
    for (size_t k = 0; k < 3; k++)
        ((volatile unsigned char *)read_whole)[k * 1000 * page] = 1;
    printf("WRITTEN %zu 0\nWRITTEN %zu 3\nSUM %u\n", big, read_size, sum);
    return sum != 0;
}
