/* noscan PROGRAM [ARGS...]: run PROGRAM under a seccomp filter that makes
 * the PAGEMAP_SCAN ioctl fail with ENOTTY, as on a kernel older than 6.7,
 * to force refmalloc's pread fallback by the kernel's answer (not by the
 * pagemap_scan option). NOSCAN_PRELOAD, when set, becomes PROGRAM's
 * LD_PRELOAD. */
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "seccomp_launch.h"

/* _IOWR('f', 16, struct pm_scan_arg), a 96-byte struct (linux/fs.h, 6.7). */
struct pm_scan_arg_size {
    uint64_t words[12];
};
#define PAGEMAP_SCAN_NR _IOWR('f', 16, struct pm_scan_arg_size)

int main(int argc, char **argv)
{
    struct sock_filter filter[] = {
        LAUNCH_PROLOGUE,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)PAGEMAP_SCAN_NR, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOTTY),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return launch_filtered("noscan", argc, argv, filter, sizeof filter / sizeof filter[0],
                           "NOSCAN_PRELOAD");
}
