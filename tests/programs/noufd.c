/* noufd PROGRAM [ARGS...]: run PROGRAM under a seccomp filter that refuses
 * userfaultfd(2) and /dev/userfaultfd's USERFAULTFD_IOC_NEW with EPERM, as a
 * container runtime's default profile does, to force track_reads' unavailable
 * path. NOUFD_PRELOAD, when set, becomes PROGRAM's LD_PRELOAD. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "seccomp_launch.h"

int main(int argc, char **argv)
{
    struct sock_filter filter[] = {
        LAUNCH_PROLOGUE,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)USERFAULTFD_IOC_NEW, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return launch_filtered("noufd", argc, argv, filter, sizeof filter / sizeof filter[0],
                           "NOUFD_PRELOAD");
}
