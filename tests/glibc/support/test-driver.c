/* test-driver.c: refmalloc's stand-in for glibc's <support/test-driver.c>.
 * Included at the end of a test; it defines main, which hands the test's
 * macros to support_test_main (support.c):
 *   TEST_FUNCTION (a function name, default do_test) or TEST_FUNCTION_ARGV,
 *   PREPARE, CLEANUP_HANDLER, EXPECTED_SIGNAL, EXPECTED_STATUS, TIMEOUT,
 *   TEST_NO_SETVBUF, TEST_NO_MALLOPT. */
#include <string.h>

#include <support/test-driver.h>

int main(int argc, char **argv)
{
    struct test_config cfg;
    memset(&cfg, 0, sizeof cfg);
#if defined(TEST_FUNCTION) && defined(TEST_FUNCTION_ARGV)
#error "TEST_FUNCTION and TEST_FUNCTION_ARGV are exclusive"
#endif
#ifdef PREPARE
    cfg.prepare_function = (PREPARE);
#endif
#if defined(TEST_FUNCTION)
    cfg.test_function = TEST_FUNCTION;
#elif defined(TEST_FUNCTION_ARGV)
    cfg.test_function_argv = TEST_FUNCTION_ARGV;
#else
    cfg.test_function = do_test;
#endif
#ifdef CLEANUP_HANDLER
    cfg.cleanup_function = CLEANUP_HANDLER;
#endif
#ifdef EXPECTED_SIGNAL
    cfg.expected_signal = (EXPECTED_SIGNAL);
#endif
#ifdef EXPECTED_STATUS
    cfg.expected_status = (EXPECTED_STATUS);
#endif
#ifdef TEST_NO_MALLOPT
    cfg.no_mallopt = 1;
#endif
#ifdef TEST_NO_SETVBUF
    cfg.no_setvbuf = 1;
#endif
#ifdef TIMEOUT
    cfg.timeout = TIMEOUT;
#endif
    return support_test_main(argc, argv, &cfg);
}
