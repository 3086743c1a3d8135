/* Prints random numbers (from /dev/urandom) between deterministic lines: not a
 * dependence on the pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    unsigned r[4] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(r, sizeof r, 1, f) != 1)
        return 2;
    fclose(f);
    char *buf = malloc(64);
    if (!buf)
        return 2;
    strcpy(buf, "deterministic");
    printf("header %s\n", buf);
    for (int i = 0; i < 4; i++)
        printf("random %u\n", r[i]);
    puts("footer");
    free(buf);
    return 0;
}
