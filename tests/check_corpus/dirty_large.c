/* A large (reference-page) block: most of it written, one page never. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (4u << 20)

__attribute__((noinline)) static unsigned char *alloc_image(void)
{
    return malloc(SIZE);
}

int main(void)
{
    unsigned char *img = alloc_image();
    if (!img)
        return 2;
    memset(img, 0, SIZE / 2);
    unsigned long sum = 0;
    for (size_t i = 0; i < SIZE; i += 4096)
        sum += img[i];
    printf("checksum %lu\n", sum);
    free(img);
    return 0;
}
