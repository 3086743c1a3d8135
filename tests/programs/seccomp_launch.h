/* seccomp_launch: the body of a launcher that runs PROGRAM [ARGS...] under
 * a seccomp filter installed before exec (noufd.c, noscan.c), so that the
 * library loads under it and makes no seccomp call itself. The filter gets
 * this architecture's check in front (other architectures are allowed
 * through). The environment variable preload_var, when set, becomes
 * PROGRAM's LD_PRELOAD: refmalloc loads into PROGRAM only, not into the
 * launcher. */
#ifndef SECCOMP_LAUNCH_H
#define SECCOMP_LAUNCH_H

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define LAUNCH_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define LAUNCH_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_launch: unknown architecture"
#endif

/* Load the syscall number into the accumulator, after the architecture check. */
#define LAUNCH_PROLOGUE                                                           \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),      \
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LAUNCH_ARCH, 1, 0),                    \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                             \
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

static int launch_filtered(const char *name, int argc, char **argv, struct sock_filter *filter,
                           size_t n, const char *preload_var)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", name);
        return 2;
    }
    struct sock_fprog prog = {(unsigned short)n, filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "%s: seccomp: %s\n", name, strerror(errno));
        return 2;
    }
    const char *preload = getenv(preload_var);
    if (preload)
        setenv("LD_PRELOAD", preload, 1);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "%s: exec %s: %s\n", name, argv[1], strerror(errno));
    return 127;
}

#endif
