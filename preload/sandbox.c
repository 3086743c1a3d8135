/* sandbox: the calls by which a program installs a seccomp filter, through
 * prctl(PR_SET_SECCOMP) or the seccomp system call through syscall() (as
 * libseccomp's seccomp_load does). A filter written for glibc's malloc may
 * kill the process at the first system call glibc's malloc does not make:
 * refmalloc makes, before the filter takes effect, what it would otherwise
 * make later (large_before_sandbox in refmalloc_internal.h), and only
 * system calls glibc's malloc makes too from then on. A filter installed by a raw
 * system call, or inherited from the parent, is not seen: an inherited one
 * already allowed refmalloc's start-up. */
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "export.h"
#include "next.h"
#include "refmalloc_internal.h"
#include "runtime.h"

typedef int (*prctl_fn)(int, unsigned long, unsigned long, unsigned long, unsigned long);
typedef long (*syscall_fn)(long, long, long, long, long, long, long);

static void *next_prctl, *next_syscall;

static void before_filter(void)
{
    if (runtime_ready())
        large_before_sandbox();
}

/* Variadic, like glibc's: a caller passes only the arguments its option
 * needs; the rest are read from registers as glibc's own wrapper reads them. */
RM_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a[4];
    for (int i = 0; i < 4; i++)
        a[i] = va_arg(ap, unsigned long);
    va_end(ap);
    if (option == PR_SET_SECCOMP && a[0] == SECCOMP_MODE_FILTER)
        before_filter();
    return ((prctl_fn)next_libc_function(&next_prctl, "prctl"))(option, a[0], a[1], a[2], a[3]);
}

RM_EXPORT long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_seccomp && a[0] == SECCOMP_SET_MODE_FILTER)
        before_filter();
    return ((syscall_fn)next_libc_function(&next_syscall, "syscall"))(number, a[0], a[1], a[2],
                                                                      a[3], a[4], a[5]);
}
