/* fork safety. Modes:
 *   fork     parent holds large blocks, a thread allocates all the time, the
 *            main thread forks N children; each child allocates, checks the
 *            pattern, checks the inherited blocks, writes and frees them, exits 0.
 *   exec     parent holds a large block (so refmalloc's memfd exists), a
 *            child exec's `fork listfds` without LD_PRELOAD: it must hold no memfd.
 *   listfds  print /proc/self/fd links; fail on any "memfd:" link. */
#include "common.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;
static volatile int stop;

static void *churn(void *arg)
{
    (void)arg;
    unsigned long i = 0;
    while (!stop) {
        size_t n = (i % 3 == 0) ? T + (i % 17) * 40000 : 16 + (i % 500) * 7;
        unsigned char *p = malloc(n);
        if (!p)
            FAIL("churn malloc(%zu)", n);
        CHECK_BYTES(p, 0, n, PAT, "churn thread malloc(%zu)", n);
        p[0] = 1;
        p[n - 1] = 2;
        if (i % 5 == 0) {
            p = realloc(p, n * 2);
            CHECK(p && p[0] == 1, "churn realloc");
        }
        free(p);
        i++;
    }
    return NULL;
}

/* Count /proc/<pid>/fd links whose target starts with "memfd:"; print them. */
static int count_memfds(const char *dir, int print)
{
    DIR *d = opendir(dir);
    if (!d)
        FAIL("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], link[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l < 0)
            continue;
        link[l] = 0;
        if (print)
            printf("fd %s -> %s\n", e->d_name, link);
        if (is_memfd_link(link))
            n++;
    }
    closedir(d);
    return n;
}

static void child_work(unsigned char **blocks, size_t *sizes, int nb, int k)
{
    alarm(20);   /* a deadlock after fork shows as SIGALRM, not a hang */
    for (int b = 0; b < nb; b++) {
        CHECK(blocks[b][0] == (unsigned char)(0x30 + b), "child %d: inherited block %d", k, b);
        CHECK_BYTES(blocks[b], 1, 4096, PAT, "child %d inherited block %d", k, b);
        blocks[b][0] = 0x77;                 /* private to the child */
        memset(blocks[b] + 4096, 0x66, 8192);
    }
    size_t sizes2[] = {T, 1 * MiB, 10 * MiB + 3, 100, 5000};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 5; i++) {
            unsigned char *p = malloc(sizes2[i]);
            CHECK(p, "child malloc");
            CHECK_BYTES(p, 0, malloc_usable_size(p), PAT, "child %d malloc(%zu)", k, sizes2[i]);
            memset(p, 0x55, sizes2[i]);
            p = realloc(p, sizes2[i] * 3);
            CHECK(p && p[0] == 0x55, "child realloc content");
            CHECK_BYTES(p, sizes2[i], malloc_usable_size(p), PAT, "child realloc tail");
            free(p);
        }
    for (int b = 0; b < nb; b++)
        free(blocks[b]);
    unsigned char *z = calloc(1, 2 * MiB);
    CHECK(z, "child calloc");
    CHECK_BYTES(z, 0, 2 * MiB, 0, "child calloc");
    free(z);
    (void)sizes;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    const char *mode = argc > 1 ? argv[1] : "fork";

    if (!strcmp(mode, "listfds")) {
        int n = count_memfds("/proc/self/fd", 1);
        if (n)
            FAIL("exec'd process holds %d memfd descriptor(s) (not close-on-exec)", n);
        printf("OK no memfd after exec\n");
        return 0;
    }
    if (!under_refmalloc())
        FAIL("not running under refmalloc");

    size_t sizes[] = {T, 1 * MiB, 3 * MiB + 5, 16 * MiB};
    unsigned char *blocks[4];
    for (int b = 0; b < 4; b++) {
        blocks[b] = malloc(sizes[b]);
        CHECK(blocks[b], "malloc");
        CHECK_BYTES(blocks[b], 0, sizes[b], PAT, "parent block %d", b);
        blocks[b][0] = (unsigned char)(0x30 + b);
    }

    if (!strcmp(mode, "exec")) {
        int have = count_memfds("/proc/self/fd", 0);
        CHECK(have >= 1, "parent holds no memfd after large mallocs (refpages not used?)");
        /* Also while another thread allocates: fork + exec from the main thread. */
        pthread_t th;
        pthread_create(&th, NULL, churn, NULL);
        for (int k = 0; k < 3; k++) {
            pid_t pid = fork();
            if (pid < 0)
                FAIL("fork: %s", strerror(errno));
            if (pid == 0) {
                unsetenv("LD_PRELOAD");
                execl("/proc/self/exe", argv[0], "listfds", (char *)NULL);
                _exit(127);
            }
            int st;
            CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec'd child status 0x%x", st);
        }
        stop = 1;
        pthread_join(th, NULL);
        printf("OK exec parent memfds=%d\n", have);
        return 0;
    }

    int nchildren = argc > 2 ? atoi(argv[2]) : 20;
    pthread_t th;
    pthread_create(&th, NULL, churn, NULL);
    for (int k = 0; k < nchildren; k++) {
        pid_t pid = fork();
        if (pid < 0)
            FAIL("fork: %s", strerror(errno));
        if (pid == 0) {
            child_work(blocks, sizes, 4, k);
            exit(0);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (WIFSIGNALED(st))
                FAIL("child %d killed by signal %d%s", k, WTERMSIG(st),
                     WTERMSIG(st) == SIGALRM ? " (deadlock after fork?)" : "");
            FAIL("child %d exit status %d", k, WEXITSTATUS(st));
        }
        /* Parent allocates between forks too. */
        void *p = malloc(T + (size_t)k * 4096);
        CHECK_BYTES(p, 0, T, PAT, "parent malloc between forks");
        free(p);
    }
    stop = 1;
    pthread_join(th, NULL);
    for (int b = 0; b < 4; b++) {
        CHECK(blocks[b][0] == (unsigned char)(0x30 + b), "parent block %d changed by child", b);
        CHECK_BYTES(blocks[b], 1, sizes[b], PAT, "parent block %d after children", b);
        free(blocks[b]);
    }
    printf("OK fork children=%d\n", nchildren);
    return 0;
}
