/* Only the exit status depends on an uninitialized flag. */
#include <stdlib.h>

struct options {
    int verbose;
    int strict;
};

__attribute__((noinline)) static struct options *parse_options(void)
{
    struct options *o = malloc(sizeof *o);
    if (o)
        o->verbose = 0; /* strict forgotten */
    return o;
}

int main(void)
{
    struct options *o = parse_options();
    if (!o)
        return 2;
    int status = (o->strict & 1) ? 4 : 0;
    free(o);
    return status;
}
