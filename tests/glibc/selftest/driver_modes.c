/* driver_modes.c: checks of refmalloc's glibc-support shim itself, so that a
 * glibc test that fails cannot pass through it. Built once per MODE
 * (-DMODE=n) by tests/test_glibc_malloc.py, which knows the exit status and
 * output each mode must give. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <support/check.h>
#include <support/support.h>
#include <support/xunistd.h>

#if MODE == 7 || MODE == 8
#define EXPECTED_SIGNAL SIGABRT
#endif
#if MODE == 6
#define TIMEOUT 1
#endif

static int do_test(void)
{
    switch (MODE) {
    case 0: /* passes */
        TEST_VERIFY(1);
        TEST_COMPARE(1u, 1);
        return 0;
    case 1: /* a TEST_VERIFY failure fails the test though it returns 0 */
        TEST_VERIFY(0 == 1);
        return 0;
    case 2: /* -1 and UINT_MAX differ */
        TEST_COMPARE(-1, 0xffffffffu);
        return 0;
    case 3: { /* a failure recorded in a child fails the parent */
        pid_t pid = xfork();
        if (pid == 0) {
            TEST_VERIFY(0 == 1);
            _exit(0);
        }
        int status;
        xwaitpid(pid, &status, 0);
        return 0;
    }
    case 4:
        FAIL_UNSUPPORTED("mode %d", 4);
    case 5:
        FAIL_EXIT1("mode %d", 5);
    case 6: { /* hangs, with a child: the driver kills both at TIMEOUT */
        if (xfork() == 0) {
            printf("helper %d\n", (int)getpid());
            pause();
            _exit(0);
        }
        pause();
        return 0;
    }
    case 7: /* dies of the expected signal: passes */
        abort();
    case 8: /* the expected signal never comes: fails */
        return 0;
    case 9: /* dies of a signal nobody expected */
        raise(SIGSEGV);
        return 0;
    }
    return 1;
}

#include <support/test-driver.c>
