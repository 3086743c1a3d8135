/* A forked child reads what its parent wrote before the fork. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    size_t n = 1 << 20;
    unsigned char *p = malloc(n);
    if (!p)
        return 2;
    memset(p, 7, n);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        unsigned long sum = 0;
        for (size_t i = 0; i < n; i += 256)
            sum += p[i];
        printf("child sum %lu\n", sum);
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(p);
    return 0;
}
