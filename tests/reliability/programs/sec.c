/* Security properties not covered by tests/programs/memfd.c (issue 6). Modes:
 *   execfds     after large blocks, refmalloc_query (pagemap) and a report
 *               written through the API, exec this program again (without
 *               LD_PRELOAD) as `listfds`: it must hold no descriptor but 0-2.
 *   listfds     print every descriptor above 2; exit 1 if there is one.
 *   sharedmap   no writable shared mapping of the memfd is possible, neither
 *               through its descriptor nor by reopening /proc/self/fd/N;
 *               a private writable mapping does not change the pattern seen
 *               by blocks. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MiB (1024ul * 1024ul)

static int list_fds(int print)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d, "opendir");
    int n = 0, dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dfd)
            continue;
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(path, link, sizeof link - 1);
        link[l > 0 ? l : 0] = 0;
        if (print)
            printf("fd %d -> %s\n", fd, link);
        n++;
    }
    closedir(d);
    return n;
}

static int find_memfd(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l <= 0)
            continue;
        link[l] = 0;
        if (is_memfd_link(link))
            return fd;
    }
    return -1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        FAIL("usage: sec MODE");
    if (!strcmp(argv[1], "listfds")) {
        int n = list_fds(1);
        if (n)
            FAIL("the exec'd program holds %d descriptor(s) it did not open", n);
        printf("OK no inherited descriptors\n");
        return 0;
    }
    unsigned char PAT = expected_pattern();
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    if (!strcmp(argv[1], "execfds")) {
        unsigned char *a = malloc(8 * MiB), *b = calloc(1, 3 * MiB);
        CHECK(a && b, "malloc");
        memset(a, 1, 4096);
        query_fn q = (query_fn)dlsym(RTLD_DEFAULT, "refmalloc_query");
        CHECK(q, "refmalloc_query");
        struct refmalloc_block_info info;
        CHECK(q(a, &info) == 1 && info.pages_written >= 1, "query");
        int (*wr)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT,
                                                               "refmalloc_write_report");
        CHECK(wr, "refmalloc_write_report");
        if (argc > 2)
            CHECK(wr(argv[2]) == 0, "write report %s: %s", argv[2], strerror(errno));
        CHECK(find_memfd() >= 0, "no memfd in the parent");
        printf("parent descriptors above 2: %d\n", list_fds(1));
        pid_t c = fork();
        CHECK(c >= 0, "fork");
        if (c == 0) {
            unsetenv("LD_PRELOAD");
            execl("/proc/self/exe", argv[0], "listfds", (char *)NULL);
            _exit(127);
        }
        int st;
        CHECK(waitpid(c, &st, 0) == c, "waitpid");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec'd child status 0x%x", st);
        free(a);
        free(b);
        printf("OK execfds\n");
        return 0;
    }
    if (!strcmp(argv[1], "sharedmap")) {
        unsigned char *a = malloc(4 * MiB);
        CHECK(a, "malloc");
        int fd = find_memfd();
        CHECK(fd >= 0, "no memfd");
        struct stat st;
        CHECK(fstat(fd, &st) == 0, "fstat");
        size_t len = (size_t)st.st_size;
        errno = 0;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(m == MAP_FAILED && errno == EPERM, "writable shared mapping of the memfd: %s",
              m == MAP_FAILED ? strerror(errno) : "succeeded");
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int fd2 = open(path, O_RDWR);
        if (fd2 >= 0) {
            errno = 0;
            CHECK(write(fd2, "x", 1) < 0 && errno == EPERM, "write through a reopened memfd");
            m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
            CHECK(m == MAP_FAILED, "writable shared mapping through a reopened memfd");
            CHECK(ftruncate(fd2, 0) < 0, "truncate through a reopened memfd");
            close(fd2);
        }
        unsigned char *pm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        CHECK(pm != MAP_FAILED, "private mapping: %s", strerror(errno));
        memset(pm, 0x01, len);
        munmap(pm, len);
        unsigned char *b = malloc(6 * MiB);
        CHECK(b, "malloc");
        CHECK_BYTES(b, 0, 6 * MiB, PAT, "fresh block after a private write to the memfd");
        CHECK_BYTES(a, 0, 4 * MiB, PAT, "old block after a private write to the memfd");
        free(a);
        free(b);
        printf("OK sharedmap\n");
        return 0;
    }
    FAIL("unknown mode %s", argv[1]);
}
