/* A program that confines itself with a seccomp filter of the kind written
 * for glibc's malloc: an allow-list of the system calls glibc's malloc and
 * the program itself make, every other call killing the process (SIGSYS).
 * Under refmalloc it must run as under glibc (issue 11, item 20): every
 * large path after the filter — fresh blocks of growing size (bigger
 * pattern chunks), thousands of them (periodic mapping recounts), reuse
 * from the cache (pagemap scans), realloc, calloc, free, descriptors the
 * program closes and replaces, a forked child doing the same — may use
 * only the allowed calls.
 *
 *   sandbox prctl|syscall [plain]
 *       install the filter through prctl(PR_SET_SECCOMP) or syscall(SYS_seccomp)
 *       (libseccomp's way); `plain`: run under glibc, no pattern to check
 * Prints "OK sandbox" and exits 0. */
#include "common.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MiB (1024ul * 1024ul)

static bool plain;   /* under glibc: fresh blocks hold no pattern */

static const int allowed[] = {
    /* glibc's malloc */
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise, SYS_mprotect, SYS_futex,
    SYS_getrandom,
    /* the program: output, its descriptors, fork and wait, exit */
    SYS_write, SYS_close, SYS_dup2, SYS_dup3, SYS_clone, SYS_clone3, SYS_wait4,
    SYS_rt_sigprocmask, SYS_exit, SYS_exit_group, SYS_set_robust_list,
};

#define NALLOWED (sizeof allowed / sizeof allowed[0])

static void install(const char *how)
{
    struct sock_filter f[4 + NALLOWED + 2];
    size_t n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < NALLOWED; i++)   /* equal: jump to the ALLOW at the end */
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i],
                                              (unsigned char)(NALLOWED - i), 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {(unsigned short)n, f};
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s",
          strerror(errno));
    int rc = strcmp(how, "prctl") == 0
                 ? prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0)
                 : (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    CHECK(rc == 0, "installing the filter (%s): %s", how, strerror(errno));
}

static void say(const char *s)
{
    CHECK(write(1, s, strlen(s)) == (ssize_t)strlen(s), "write");
}

static void workload(unsigned char pat)
{
    enum { LIVE = 48 };
    unsigned char *live[LIVE] = {0};
    /* Growing blocks: 1 MiB to 64 MiB, 600 MiB live at the end. */
    for (int i = 0; i < LIVE; i++) {
        size_t n = (1 + (size_t)i * 64 / LIVE) * MiB + (size_t)i * 4096;
        live[i] = malloc(n);
        CHECK(live[i] != NULL, "malloc(%zu)", n);
        if (!plain)
            CHECK_BYTES(live[i], 0, n, pat, "fresh block %d", i);
        live[i][n / 2] = 1;
    }
    /* Descriptors the program closes and replaces. */
    CHECK(dup2(1, 200) == 200, "dup2");
    CHECK(close(200) == 0, "close");
    /* Reuse from the cache, realloc, calloc. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < LIVE; i += 3) {
            free(live[i]);
            size_t n = (2 + (size_t)i) * MiB;
            live[i] = malloc(n);
            CHECK(live[i] != NULL, "reuse malloc(%zu)", n);
            if (!plain)
                CHECK_BYTES(live[i], 0, n, pat, "reused block %d", i);
            live[i][0] = 2;
        }
        for (int i = 1; i < LIVE; i += 3) {
            live[i] = realloc(live[i], (size_t)(3 + i + round) * MiB);
            CHECK(live[i] != NULL, "realloc");
        }
        unsigned char *z = calloc(1, 9 * MiB);
        CHECK(z != NULL, "calloc");
        CHECK_BYTES(z, 0, 9 * MiB, 0, "calloc block");
        free(z);
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    /* Thousands of fresh blocks, for the periodic recount of mappings. */
    for (int i = 0; i < 3000; i++) {
        unsigned char *p = malloc(256 * 1024 + (size_t)i * 4096);
        CHECK(p != NULL, "small large block %d", i);
        CHECK(plain || p[100] == pat, "small large block %d holds 0x%02x", i, p[100]);
        live[i % LIVE] = p;
        if (i % LIVE == LIVE - 1)
            for (int j = 0; j < LIVE; j++)
                free(live[j]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        FAIL("usage: sandbox prctl|syscall [plain]");
    plain = argc == 3 && strcmp(argv[2], "plain") == 0;
    unsigned char pat = expected_pattern();
    install(argv[1]);
    workload(pat);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        workload(pat);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child ended with status 0x%x", status);
    say("OK sandbox\n");
    return 0;
}
