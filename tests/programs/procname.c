/* The program named in each process report: run as "procname start", it
 * forks a child that only allocates (its report names the parent's program,
 * as the child is that program too), and forks one that execs procname
 * again with arguments holding a quote, a backslash, a newline, UTF-8 and
 * bytes that are not UTF-8 (its report names those arguments). */
#include "common.h"

#include <sys/wait.h>

static void wait_ok(pid_t child)
{
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
          "child failed");
}

int main(int argc, char **argv)
{
    free(malloc(1 << 20));
    if (argc < 2 || strcmp(argv[1], "start") != 0) {
        printf("EXECED %d\n", (int)getpid());
        return 0;
    }
    fflush(stdout);
    pid_t forked = fork();
    CHECK(forked >= 0, "fork");
    if (forked == 0) {
        free(malloc(1 << 20));
        printf("FORKED %d\n", (int)getpid());
        exit(0);
    }
    wait_ok(forked);
    fflush(stdout);
    pid_t execed = fork();
    CHECK(execed >= 0, "fork");
    if (execed == 0) {
        /* "\xc3\xa9" is UTF-8 (e acute); "\xff", a lone "\xc3" and the
         * overlong "\xc0\xaf" are not. */
        execl("/proc/self/exe", "procname-exec", "a\"b\\c\nd", "\xc3\xa9", "x\xffy\xc3",
              "\xc0\xaf", "", (char *)NULL);
        _exit(127);
    }
    wait_ok(execed);
    printf("PARENT %d\n", (int)getpid());
    return 0;
}
