/* Fork against refmalloc's locks (issue 11, items 1 and 2).
 *
 *   forkdeadlock signal N   an itimer fires every 5 ms and its handler forks
 *                           while main forks N times (glibc's tst-mallocfork2:
 *                           fork is async-signal-safe, so a fork interrupted
 *                           by a handler that forks must not deadlock)
 *   forkdeadlock stdio SEC  4 threads fork, 8 threads getline() a 1 MiB line
 *                           (large reallocs), 1 thread runs fflush(NULL), for
 *                           SEC seconds (glibc's tst-malloc-fork-deadlock, bug
 *                           19431: the stdio list lock against malloc's lock)
 *
 * A deadlock shows as a hang: the test's timeout catches it. Prints OK. */
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"

static volatile sig_atomic_t handler_forks;

static void reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            FAIL("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("child %d ended with status %#x", (int)pid, status);
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        reap(pid);
        handler_forks++;
    }
    errno = saved;
}

static int fork_from_signals(int rounds)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        FAIL("sigaction: %s", strerror(errno));
    struct itimerval every = {{0, 5000}, {0, 5000}};
    if (setitimer(ITIMER_REAL, &every, NULL) != 0)
        FAIL("setitimer: %s", strerror(errno));
    /* A large block first: refmalloc's large-block state is set up. */
    free(malloc(1 << 20));
    for (int i = 0; i < rounds; i++) {
        pid_t pid = fork();
        if (pid < 0)
            FAIL("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(0);
        reap(pid);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("OK signal forks=%d handler_forks=%d\n", rounds, (int)handler_forks);
    return 0;
}

static volatile int stop;
static char line_path[] = "/tmp/refmalloc-forkdeadlock-XXXXXX";

static void *forker(void *arg)
{
    (void)arg;
    while (!stop) {
        pid_t pid = fork();
        if (pid < 0)
            FAIL("fork: %s", strerror(errno));
        if (pid == 0) {
            /* The child's malloc must work: its locks are free. */
            free(malloc(1 << 20));
            free(malloc(64));
            _exit(0);
        }
        reap(pid);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    FILE *f = fopen(line_path, "r");
    if (!f)
        FAIL("fopen: %s", strerror(errno));
    while (!stop) {
        char *line = NULL;
        size_t cap = 0;
        rewind(f);
        if (getline(&line, &cap, f) < (1 << 20))
            FAIL("getline came short");
        free(line);
    }
    fclose(f);
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!stop)
        fflush(NULL);
    return NULL;
}

static int fork_against_stdio(int seconds)
{
    int fd = mkstemp(line_path);
    if (fd < 0)
        FAIL("mkstemp: %s", strerror(errno));
    FILE *w = fdopen(fd, "w");
    for (int i = 0; i < (1 << 20); i++)
        fputc('x', w);
    fputc('\n', w);
    fclose(w);

    enum { FORKERS = 4, READERS = 8 };
    pthread_t t[FORKERS + READERS + 1];
    int n = 0;
    for (int i = 0; i < FORKERS; i++)
        pthread_create(&t[n++], NULL, forker, NULL);
    for (int i = 0; i < READERS; i++)
        pthread_create(&t[n++], NULL, reader, NULL);
    pthread_create(&t[n++], NULL, flusher, NULL);
    struct timespec d = {seconds, 0};
    nanosleep(&d, NULL);
    stop = 1;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    unlink(line_path);
    printf("OK stdio seconds=%d\n", seconds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "signal") == 0)
        return fork_from_signals(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "stdio") == 0)
        return fork_against_stdio(atoi(argv[2]));
    fprintf(stderr, "usage: forkdeadlock signal N | stdio SECONDS\n");
    return 2;
}
