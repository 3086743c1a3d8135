/* fork + exec: the child prints, the parent waits and prints its status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    char *msg = malloc(32);
    if (!msg)
        return 2;
    strcpy(msg, "from the child");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        execl("/bin/echo", "echo", msg, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    free(msg);
    return 0;
}
