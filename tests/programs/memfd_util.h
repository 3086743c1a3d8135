/* Test helpers around refmalloc's pattern memfd: list the memfd descriptors
 * of this process, and refuse memfd_create with a seccomp filter. */
#ifndef RM_TEST_MEMFD_UTIL_H
#define RM_TEST_MEMFD_UTIL_H

#include "common.h"

#include <dirent.h>
#include <dlfcn.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* The descriptors whose /proc/self/fd link names a memfd, lowest first, up
 * to max of them into out; returns how many there are in all. */
static inline int memfd_fds(int *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d, "opendir /proc/self/fd: %s", strerror(errno));
    int n = 0, dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == dfd)
            continue;
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len < 0)
            continue;
        link[len] = 0;
        if (!is_memfd_link(link))
            continue;
        /* Insert in order, keeping the lowest max. */
        int i = n < max ? n : max;
        while (i > 0 && out[i - 1] > fd) {
            if (i < max)
                out[i] = out[i - 1];
            i--;
        }
        if (i < max)
            out[i] = fd;
        n++;
    }
    closedir(d);
    return n;
}

/* From now on memfd_create fails with EPERM in this process and its children. */
static inline void refuse_memfd_create(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s",
          strerror(errno));
    /* Through libc's own syscall(), not the preloaded one: refmalloc makes
     * its pattern files before a filter it sees (preload/sandbox.c), and
     * this filter exists to force the path for a memfd that cannot be made,
     * as under a filter installed by a raw system call or inherited. */
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    CHECK(libc != NULL, "dlopen libc.so.6: %s", dlerror());
    long (*libc_syscall)(long, ...) = (long (*)(long, ...))dlsym(libc, "syscall");
    CHECK(libc_syscall != NULL, "dlsym syscall: %s", dlerror());
    CHECK(libc_syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0, "seccomp: %s",
          strerror(errno));
    errno = 0;
    int fd = (int)syscall(SYS_memfd_create, "probe", 0);
    CHECK(fd < 0 && errno == EPERM, "memfd_create not refused (fd %d errno %d)", fd, errno);
}

#endif
