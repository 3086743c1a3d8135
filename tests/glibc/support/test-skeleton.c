/* test-skeleton.c: the old-style entry for glibc tests that end with
 * `#define TEST_FUNCTION do_test ()` and `#include "../test-skeleton.c"`.
 * There TEST_FUNCTION is an expression, not a function name: wrap it in a
 * function and go through test-driver.c. The headers are those such tests
 * expect to get from the skeleton. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <support/check.h>
#include <support/support.h>
#include <support/temp_file.h>
#include <support/xsignal.h>

static int rm_skeleton_test(int argc, char **argv)
{
    (void)argc;
    (void)argv;
#ifdef TEST_FUNCTION
    return TEST_FUNCTION;
#undef TEST_FUNCTION
#else
    return do_test(argc, argv);
#endif
}
#define TEST_FUNCTION_ARGV rm_skeleton_test

#ifdef PREPARE
static void rm_skeleton_prepare(int argc, char **argv)
{
    PREPARE(argc, argv);
}
#undef PREPARE
#define PREPARE rm_skeleton_prepare
#endif

#ifdef CLEANUP_HANDLER
static void rm_skeleton_cleanup(void)
{
    CLEANUP_HANDLER;
}
#undef CLEANUP_HANDLER
#define CLEANUP_HANDLER rm_skeleton_cleanup
#endif

#include <support/test-driver.c>

#ifdef _PTHREAD_H
#include <support/xthread.h>
#endif
