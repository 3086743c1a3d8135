/* The pattern memfd. Modes:
 *   seals      the memfd is sealed WRITE|SHRINK|GROW|SEAL and close-on-exec.
 *   closefrom  close_range(3, ~0) while large blocks live, then more large
 *              blocks: pattern, old blocks intact, memfd_recreated >= 1. The
 *              old number is then reused by a file full of 'Z'.
 *   dup2       dup2 a file full of 'Z' over the memfd's number: new large
 *              blocks show the pattern, never 'Z', the file is untouched and
 *              the descriptor still names it. */
#define _GNU_SOURCE
#include "memfd_util.h"
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define MiB (1024ul * 1024ul)

static unsigned char PAT;
static size_t T;

/* Lowest fd whose /proc/self/fd link names a memfd, or -1; all of them
 * counted in *count, the lowest one's link copied to name. */
static int find_memfd(int *count, char *name, size_t namelen)
{
    int fd;
    int n = memfd_fds(&fd, 1);
    if (count)
        *count = n;
    if (n == 0)
        return -1;
    if (name) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, name, namelen - 1);
        name[len < 0 ? 0 : len] = 0;
    }
    return fd;
}

static unsigned char *big(size_t n, const char *what)
{
    unsigned char *p = malloc(n);
    if (!p)
        FAIL("%s: malloc(%zu) NULL", what, n);
    CHECK_BYTES(p, 0, malloc_usable_size(p), PAT, "%s: malloc(%zu)", what, n);
    return p;
}

static void check_no_byte(const unsigned char *p, size_t n, unsigned char bad, const char *what)
{
    if (memchr(p, bad, n))
        FAIL("%s: found byte 0x%02x (foreign file mapped?) at offset %zu", what, bad,
             (size_t)((const unsigned char *)memchr(p, bad, n) - p));
}

static void mode_seals(void)
{
    int cnt;
    CHECK(find_memfd(&cnt, NULL, 0) < 0, "a memfd exists before the first large block");
    unsigned char *p = big(4 * MiB, "seals");
    char name[256];
    int fd = find_memfd(&cnt, name, sizeof name);
    CHECK(fd >= 0, "no memfd after a large malloc");
    printf("memfd fd=%d link=%s count=%d\n", fd, name, cnt);
    int seals = fcntl(fd, F_GET_SEALS);
    CHECK(seals >= 0, "F_GET_SEALS: %s", strerror(errno));
    int want = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    CHECK((seals & want) == want, "seals 0x%x lack some of 0x%x", seals, want);
    int fl = fcntl(fd, F_GETFD);
    CHECK(fl >= 0 && (fl & FD_CLOEXEC), "memfd lacks FD_CLOEXEC (flags 0x%x)", fl);
    struct stat st;
    CHECK(fstat(fd, &st) == 0, "fstat");
    CHECK(st.st_size > 0 && st.st_size % (off_t)page_size() == 0, "memfd size %lld",
          (long long)st.st_size);
    /* Its content is the pattern, and it cannot be changed. */
    unsigned char buf[4096];
    CHECK(pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf, "pread memfd");
    CHECK_BYTES(buf, 0, sizeof buf, PAT, "memfd content");
    errno = 0;
    CHECK(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM, "pwrite on memfd: errno %d", errno);
    CHECK(ftruncate(fd, 0) < 0 && errno == EPERM, "ftruncate on memfd: errno %d", errno);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0, "seals can still be added");
    struct refmalloc_stats s;
    get_stats(&s);
    print_stats("seals", &s);
    CHECK(s.refpage_allocs >= 1, "large block not built from reference pages");
    CHECK(s.pattern_bytes >= (uint64_t)st.st_size, "pattern_bytes %" PRIu64 " < memfd size %lld",
          s.pattern_bytes, (long long)st.st_size);
    free(p);
    printf("OK seals\n");
}

static int make_z_file(size_t size, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "/tmp/refmalloc-test-Z-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    unsigned char *buf = malloc(1 * MiB);
    CHECK(buf, "malloc buffer");
    memset(buf, 'Z', 1 * MiB);
    for (size_t off = 0; off < size; off += 1 * MiB)
        CHECK(pwrite(fd, buf, 1 * MiB, (off_t)off) == (ssize_t)(1 * MiB), "write Z");
    free(buf);
    return fd;
}

static void check_z_file(int fd, size_t size, const char *what)
{
    struct stat st;
    CHECK(fstat(fd, &st) == 0, "fstat Z file");
    CHECK((size_t)st.st_size == size, "%s: Z file size %lld, expected %zu", what,
          (long long)st.st_size, size);
    unsigned char *buf = malloc(1 * MiB);
    for (size_t off = 0; off < size; off += 1 * MiB) {
        CHECK(pread(fd, buf, 1 * MiB, (off_t)off) == (ssize_t)(1 * MiB), "read Z");
        CHECK_BYTES(buf, 0, 1 * MiB, 'Z', "%s: Z file changed at offset %zu", what, off);
    }
    free(buf);
}

/* Large blocks of sizes never seen before (so not from the cache), all checked. */
static void fresh_large_round(unsigned char **out, int n, size_t base, const char *what)
{
    for (int i = 0; i < n; i++) {
        size_t sz = base + (size_t)i * 3 * MiB + 4096 * (size_t)(i + 1);
        out[i] = big(sz, what);
        check_no_byte(out[i], sz, 'Z', what);
        out[i][sz / 2] = 0x42;
    }
}

static void mode_closefrom(void)
{
    unsigned char *old[3];
    size_t oldsz[3] = {T, 2 * MiB, 20 * MiB};
    for (int i = 0; i < 3; i++) {
        old[i] = big(oldsz[i], "before close");
        old[i][0] = (unsigned char)(0x60 + i);
    }
    int cnt;
    int memfd = find_memfd(&cnt, NULL, 0);
    CHECK(memfd >= 0, "no memfd after large mallocs");
    struct refmalloc_stats s0, s1;
    get_stats(&s0);
    print_stats("before", &s0);

    CHECK(syscall(SYS_close_range, 3u, ~0u, 0u) == 0, "close_range: %s", strerror(errno));
    CHECK(find_memfd(&cnt, NULL, 0) < 0, "memfd still open after close_range");

    unsigned char *fresh[5];
    fresh_large_round(fresh, 5, 40 * MiB, "after close_range");
    for (int i = 0; i < 3; i++) {
        CHECK(old[i][0] == (unsigned char)(0x60 + i), "old block %d lost its content", i);
        CHECK_BYTES(old[i], 1, oldsz[i], PAT, "old block %d after close_range", i);
    }
    /* Grow an old block (more chunks mapped). */
    old[2] = realloc(old[2], 90 * MiB);
    CHECK(old[2] && old[2][0] == 0x62, "realloc old block");
    CHECK_BYTES(old[2], 1, 90 * MiB, PAT, "old block grown after close_range");
    get_stats(&s1);
    print_stats("after", &s1);
    CHECK(s1.memfd_recreated >= 1, "memfd_recreated = %" PRIu64 " after close_range",
          s1.memfd_recreated);
    int nfd = find_memfd(&cnt, NULL, 0);
    CHECK(nfd >= 0, "no memfd after recreation");
    int seals = fcntl(nfd, F_GET_SEALS);
    CHECK((seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
          (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
          "recreated memfd seals 0x%x", seals);
    for (int i = 0; i < 5; i++)
        free(fresh[i]);

    /* Close everything again and let the program reuse the lowest numbers with a
     * file full of 'Z' (the library's old number is among them). */
    CHECK(syscall(SYS_close_range, 3u, ~0u, 0u) == 0, "close_range 2");
    char path[64];
    size_t zsize = s1.chunk_bytes > 64 * MiB ? 64 * MiB : (s1.chunk_bytes ? s1.chunk_bytes : 4 * MiB);
    int zfds[4];
    zfds[0] = make_z_file(zsize, path, sizeof path);
    for (int i = 1; i < 4; i++)
        zfds[i] = dup(zfds[0]);
    printf("Z file %s size %zu on fds %d %d %d %d\n", path, zsize, zfds[0], zfds[1], zfds[2], zfds[3]);
    struct stat zst;
    CHECK(fstat(zfds[0], &zst) == 0, "fstat");
    fresh_large_round(fresh, 5, 110 * MiB, "after close_range + Z file");
    for (int i = 0; i < 5; i++)
        free(fresh[i]);
    for (int i = 0; i < 4; i++) {
        struct stat st;
        CHECK(fstat(zfds[i], &st) == 0 && st.st_ino == zst.st_ino && st.st_dev == zst.st_dev,
              "fd %d no longer names the Z file", zfds[i]);
    }
    check_z_file(zfds[0], zsize, "after close_range");
    unlink(path);
    for (int i = 0; i < 3; i++)
        free(old[i]);
    printf("OK closefrom\n");
}

static void mode_dup2(void)
{
    unsigned char *a = big(3 * MiB, "first");
    int cnt;
    char name[256];
    int memfd = find_memfd(&cnt, name, sizeof name);
    CHECK(memfd >= 0, "no memfd after a large malloc");
    struct refmalloc_stats s0;
    get_stats(&s0);
    size_t zsize = s0.chunk_bytes > 64 * MiB ? 64 * MiB : (s0.chunk_bytes ? s0.chunk_bytes : 4 * MiB);
    if (zsize < 4 * MiB)
        zsize = 4 * MiB;
    char path[64];
    int zfd = make_z_file(zsize, path, sizeof path);
    struct stat zst;
    CHECK(fstat(zfd, &zst) == 0, "fstat");
    printf("memfd %d (%s) chunk_bytes=%" PRIu64 " replaced by %s\n", memfd, name,
           s0.chunk_bytes, path);
    CHECK(dup2(zfd, memfd) == memfd, "dup2: %s", strerror(errno));
    close(zfd);

    unsigned char *fresh[6];
    fresh_large_round(fresh, 6, 5 * MiB, "after dup2");
    /* Grow the first block too: more chunks are mapped. */
    a = realloc(a, 70 * MiB);
    CHECK(a, "realloc");
    CHECK_BYTES(a, 0, 70 * MiB, PAT, "grown block after dup2");
    struct stat st;
    CHECK(fstat(memfd, &st) == 0, "fstat fd %d: %s", memfd, strerror(errno));
    CHECK(st.st_ino == zst.st_ino && st.st_dev == zst.st_dev,
          "fd %d no longer names the program's file (library took it back?)", memfd);
    check_z_file(memfd, zsize, "after dup2");
    struct refmalloc_stats s1;
    get_stats(&s1);
    print_stats("after", &s1);
    CHECK(s1.memfd_recreated >= 1, "memfd_recreated = %" PRIu64 " after dup2", s1.memfd_recreated);
    for (int i = 0; i < 6; i++)
        free(fresh[i]);
    free(a);
    unlink(path);
    printf("OK dup2\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    PAT = expected_pattern();
    T = test_threshold();
    if (!under_refmalloc())
        FAIL("not running under refmalloc");
    if (argc < 2)
        FAIL("usage: memfd MODE");
    if (!strcmp(argv[1], "seals"))
        mode_seals();
    else if (!strcmp(argv[1], "closefrom"))
        mode_closefrom();
    else if (!strcmp(argv[1], "dup2"))
        mode_dup2();
    else
        FAIL("unknown mode");
    return 0;
}
