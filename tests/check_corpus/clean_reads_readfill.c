/* A buffer filled by read(2) from a file, then read: the kernel's writes count. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    size_t n = 256 << 10;
    char *src = malloc(n), *dst = malloc(n);
    FILE *f = tmpfile();
    if (!src || !dst || !f)
        return 2;
    memset(src, 'x', n);
    int fd = fileno(f);
    if (write(fd, src, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0)
        return 2;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, dst + got, n - got);
        if (r <= 0)
            return 2;
        got += (size_t)r;
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i += 100)
        sum += (unsigned char)dst[i];
    printf("sum %lu\n", sum);
    fclose(f);
    free(src);
    free(dst);
    return 0;
}
