/* startup: start an empty program ITER times (posix_spawn of this program
 * with "child", which returns at once from main) and wait for each: the
 * time is what every process pays before and after main, the preloaded
 * library's loading, constructor and destructor among it (the environment,
 * LD_PRELOAD too, is inherited).
 * usage: startup ITER */
#include <spawn.h>
#include <sys/wait.h>

#include "bench.h"

extern char **environ;

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "child") == 0)
        return 0;
    if (argc != 2) {
        fprintf(stderr, "usage: startup ITER\n");
        return 2;
    }
    size_t iter = parse_size(argv[1]);
    char *child_argv[] = {argv[0], "child", NULL};
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < iter; i++) {
        pid_t pid;
        int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, child_argv, environ);
        if (err) {
            fprintf(stderr, "startup: posix_spawn: %s\n", strerror(err));
            return 1;
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "startup: child %zu failed (status %#x)\n", i, status);
            return 1;
        }
    }
    uint64_t t = now_ns() - t0;
    result_add("\"iterations\": %zu", iter);
    result_print(t, mem_now());
    return 0;
}
