/* A parent that allocates, then forks a child that allocates large blocks:
 * the child's report names its parent and counts only its own events. */
#include "common.h"

#include <sys/wait.h>

int main(void)
{
    for (int i = 0; i < 3; i++)
        free(malloc(1 << 20));
    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        for (int i = 0; i < 5; i++)
            free(malloc(1 << 20));
        printf("CHILD %d PARENT %d\n", (int)getpid(), (int)getppid());
        fflush(stdout);
        exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
          "child failed");
    return 0;
}
