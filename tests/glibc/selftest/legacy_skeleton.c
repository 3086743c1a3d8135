/* legacy_skeleton.c: the old-style entry ("../test-skeleton.c" with an
 * expression as TEST_FUNCTION) reaches the shim's skeleton and keeps the
 * expression's value as the exit status. */
#include <stdio.h>

static int do_test(void)
{
    puts("legacy skeleton ran");
    return 77;
}

#define TEST_FUNCTION do_test()
#include "../test-skeleton.c"
