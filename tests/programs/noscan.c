/* noscan PROGRAM [ARGS...]: run PROGRAM under a seccomp filter that makes
 * the PAGEMAP_SCAN ioctl fail with ENOTTY, as on a kernel older than 6.7,
 * to force refmalloc's pread fallback by the kernel's answer (not by the
 * pagemap_scan option). The filter is installed before exec, so the
 * library loads under it and sees no seccomp call. NOSCAN_PRELOAD, when
 * set, becomes PROGRAM's LD_PRELOAD. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "noscan: unknown architecture"
#endif

/* _IOWR('f', 16, struct pm_scan_arg), a 96-byte struct (linux/fs.h, 6.7). */
struct pm_scan_arg_size {
    uint64_t words[12];
};
#define PAGEMAP_SCAN_NR _IOWR('f', 16, struct pm_scan_arg_size)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: noscan PROGRAM [ARGS...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)PAGEMAP_SCAN_NR, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("noscan: seccomp");
        return 2;
    }
    const char *preload = getenv("NOSCAN_PRELOAD");
    if (preload)
        setenv("LD_PRELOAD", preload, 1);
    execvp(argv[1], argv + 1);
    perror("noscan: exec");
    return 127;
}
