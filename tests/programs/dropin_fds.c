/* Descriptors: refmalloc's own must never take 0-2 and should sit high.
 * Modes:
 *   closed OUT   run with some of 0, 1, 2 closed: large blocks (with
 *                free_pattern set, two memfds), then each of 0-2 closed at start is
 *                still closed (read(0) fails with EBADF, not the pattern).
 *                The verdict goes to OUT (stdout and stderr may be closed).
 *   emfile LIMIT set the soft RLIMIT_NOFILE to LIMIT, make large blocks, then
 *                open /dev/null until EMFILE; prints "OPENED n MEMFDS m LOWEST
 *                fd" (m memfds, the lowest at fd; -1 when none).
 *   full LIMIT   set the limit, open until EMFILE, close only fd 0: the one
 *                free number is 0. A large block must still hold the pattern
 *                (eager, no memfd) and leave fd 0 free. */
#define _GNU_SOURCE
#include "memfd_util.h"
#include <fcntl.h>
#include <sys/resource.h>

#define MiB (1024ul * 1024ul)

static char verdict[512];

static int closed(int fd)
{
    errno = 0;
    return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

/* Large blocks of several sizes, some freed (with free_pattern set, a freed
 * block is remapped onto the free pattern's file: a second memfd). */
static void large_blocks(unsigned char pat)
{
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)(i + 1) * 3 * MiB;
        unsigned char *p = malloc(n);
        CHECK(p, "malloc(%zu)", n);
        CHECK_BYTES(p, 0, n, pat, "fresh block of %zu", n);
        p[n / 2] = 1;
        unsigned char *z = calloc(1, n);
        CHECK(z && z[n - 1] == 0, "calloc(%zu)", n);
        free(z);
        if (i % 2)
            free(p);
    }
}

static void mode_closed(const char *out)
{
    int was_closed[3];
    for (int fd = 0; fd < 3; fd++)
        was_closed[fd] = closed(fd);
    large_blocks(expected_pattern());
    char buf[16];
    const char *bad = NULL;
    if (was_closed[0]) {
        errno = 0;
        ssize_t n = read(0, buf, sizeof buf);
        if (n >= 0 || errno != EBADF) {
            snprintf(verdict, sizeof verdict,
                     "FAIL read(0) returned %zd (errno %d), first byte 0x%02x: not EBADF", n,
                     errno, n > 0 ? (unsigned char)buf[0] : 0);
            bad = verdict;
        }
    }
    for (int fd = 0; fd < 3 && !bad; fd++) {
        if (was_closed[fd] && !closed(fd)) {
            snprintf(verdict, sizeof verdict, "FAIL fd %d was closed at start and is open now", fd);
            bad = verdict;
        }
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        _exit(3);
    const char *text = bad ? bad : "OK closed";
    if (write(fd, text, strlen(text)) < 0)
        _exit(3);
    close(fd);
    _exit(bad ? 1 : 0);
}

static void set_limit(unsigned long limit)
{
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0, "getrlimit");
    CHECK(limit <= r.rlim_max, "limit %lu above the hard limit %lu", limit,
          (unsigned long)r.rlim_max);
    r.rlim_cur = limit;
    CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0, "setrlimit: %s", strerror(errno));
}

static int open_until_emfile(void)
{
    int n = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) {
            CHECK(errno == EMFILE, "open: %s, not EMFILE", strerror(errno));
            return n;
        }
        n++;
    }
}

static void mode_emfile(unsigned long limit)
{
    set_limit(limit);
    if (under_refmalloc())
        large_blocks(expected_pattern());
    int lowest = -1;
    int m = memfd_fds(&lowest, 1);
    int n = open_until_emfile();
    printf("OPENED %d MEMFDS %d LOWEST %d\n", n, m, lowest);
}

static void mode_full(unsigned long limit)
{
    set_limit(limit);
    open_until_emfile();
    CHECK(close(0) == 0, "close(0)");
    size_t n = 5 * MiB;
    unsigned char *p = malloc(n);
    CHECK(p, "malloc with only fd 0 free");
    CHECK(closed(0), "fd 0 was taken by the allocator");
    CHECK_BYTES(p, 0, n, expected_pattern(), "block made with only fd 0 free");
    p[0] = 1;
    free(p);
    printf("OK full\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: dropin_fds closed OUT | emfile LIMIT | full LIMIT\n");
        return 2;
    }
    if (!strcmp(argv[1], "closed"))
        mode_closed(argv[2]);
    else if (!strcmp(argv[1], "emfile"))
        mode_emfile(strtoul(argv[2], NULL, 0));
    else if (!strcmp(argv[1], "full"))
        mode_full(strtoul(argv[2], NULL, 0));
    else
        FAIL("unknown mode %s", argv[1]);
    return 0;
}
