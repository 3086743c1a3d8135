/* test-driver.h: refmalloc's stand-in for glibc's <support/test-driver.h>:
 * the configuration a test hands to the driver (support_test_main). */
#ifndef RM_SUPPORT_TEST_DRIVER_H
#define RM_SUPPORT_TEST_DRIVER_H

#ifdef __cplusplus
extern "C" {
#endif

struct test_config {
    void (*prepare_function)(int argc, char **argv);
    int (*test_function)(void);
    int (*test_function_argv)(int argc, char **argv);
    void (*cleanup_function)(void);
    void (*cmdline_function)(int);
    const void *options;  /* unused: the tests run here take no options */
    int timeout;          /* seconds; 0 means DEFAULT_TIMEOUT */
    int expected_status;  /* exit status the test must end with */
    int expected_signal;  /* signal the test must die of, or 0 */
    char no_mallopt;      /* kept for source compatibility (the driver calls no mallopt) */
    char no_setvbuf;      /* leave stdout buffered */
    char run_command_mode;
    const char *optstring;
};

enum {
    /* The exit status of a test whose feature is missing. */
    EXIT_UNSUPPORTED = 77,
    /* Seconds a test may run unless it says otherwise (TIMEOUT). */
    DEFAULT_TIMEOUT = 20,
    OPT_DIRECT = 1000,
    OPT_TESTDIR,
};

/* Directory for temporary files ($TMPDIR, else /tmp). */
extern const char *test_dir;
/* How many -v / --verbose were given. */
extern unsigned int test_verbose;

#define verbose_printf(...)                                                                \
    do {                                                                                   \
        if (test_verbose > 0)                                                              \
            printf(__VA_ARGS__);                                                           \
    } while (0);

int support_test_main(int argc, char **argv, const struct test_config *config);

#ifdef __cplusplus
}
#endif
#endif
