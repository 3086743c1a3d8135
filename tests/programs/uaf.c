/* Reads after free of a large block (deliberate use after free): with
 * free_pattern set they see the free pattern, as small blocks do. (Without
 * it a cached block keeps the program's data until it is reused.) */
#include "common.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: uaf EXPECTED_HEX");
    unsigned expected = (unsigned)strtoul(argv[1], NULL, 16);
    size_t size = 1 << 20;
    volatile unsigned char *p = malloc(size);
    CHECK(p, "malloc");
    for (size_t i = 0; i < size; i += 4096)
        p[i] = 7;
    free((void *)p);
    for (size_t i = 0; i < size; i += 4096)
        CHECK(p[i] == expected && p[i + 1] == expected, "after free: byte %zu is %02x, not %02x",
              i, p[i], expected);
    printf("OK uaf %02x\n", expected);
    return 0;
}
