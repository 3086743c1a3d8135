/* Struct padding written to a file: every field set, the padding never. */
#include <stdio.h>
#include <stdlib.h>

struct record {
    char tag;     /* 7 bytes of padding follow */
    double value;
    short id;     /* 6 bytes of padding follow */
};

__attribute__((noinline)) static struct record *new_record(void)
{
    return malloc(sizeof(struct record));
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    struct record *r = new_record();
    if (!r)
        return 2;
    r->tag = 'R';
    r->value = 1.5;
    r->id = 7;
    FILE *f = fopen(argv[1], "wb");
    if (!f)
        return 2;
    fwrite(r, sizeof *r, 1, f);
    fclose(f);
    puts("record written");
    free(r);
    return 0;
}
