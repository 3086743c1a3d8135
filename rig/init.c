/* /init of the emulated arm64 machine of the rig package (rig/).
 *
 * Built static (aarch64-linux-gnu-gcc -static -O2) and put at /init of the
 * initramfs. It mounts /proc, /dev (devtmpfs), /sys and /dev/shm, puts
 * /dev/console on fds 0, 1 and 2, then runs the commands of /rig/commands one
 * after the other and powers the machine off.
 *
 * /rig/commands: one command per line, four fields separated by one TAB:
 *
 *     NAME <TAB> TIMEOUT <TAB> ENV <TAB> ARGV
 *
 *   NAME     [A-Za-z0-9_.:+-]+, the name in the RIG-* lines
 *   TIMEOUT  whole seconds the command may run (0: no limit), after which
 *            every process but init is killed with SIGKILL
 *   ENV      the command's environment, VAR=value words separated by one
 *            space (may be empty); PATH=/bin is added unless ENV sets PATH
 *   ARGV     the argument words separated by one space; ARGV[0] is the path
 *            that is executed (no PATH search)
 *
 * In ENV and ARGV words every byte may be written %XX (two hex digits); rig/initramfs.py
 * writes '%', space, TAB, newline and every byte outside 0x21..0x7e that way.
 *
 * Console protocol (each marker at the start of its own line):
 *
 *     RIG-START commands=N
 *     RIG-BEGIN NAME
 *     ... whatever the command and the kernel print ...
 *     RIG-TIMEOUT NAME seconds=T          (only when the limit was reached)
 *     RIG-END NAME exit=N seconds=S.SSS   or   RIG-END NAME signal=N seconds=S.SSS
 *     RIG-DONE
 *
 * When a command has ended, whatever it left running (children, daemons) is
 * killed with SIGKILL and reaped, so that the next command starts alone.
 *
 * On any failure of the rig itself (a mount, a missing /rig/commands, a
 * malformed line, a program that cannot be executed) it prints
 * "RIG-ERROR <what>" and powers off: the machine never ends silently.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COMMANDS "/rig/commands"

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (int)w;
    }
}

static void power_off(void) __attribute__((noreturn));
static void power_off(void)
{
    sync();
    reboot(RB_POWER_OFF);
    say("RIG-ERROR reboot(RB_POWER_OFF): %s", strerror(errno));
    /* pid 1 exiting panics the kernel; panic=-1 and qemu's -no-reboot end it. */
    _exit(1);
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    say("RIG-ERROR %s", buf);
    power_off();
}

static void mount_fs(const char *type, const char *dir, int required)
{
    mkdir(dir, 0755);
    if (mount(type, dir, type, 0, NULL) == 0 || errno == EBUSY)
        return;
    if (required)
        die("mount %s on %s: %s", type, dir, strerror(errno));
    say("RIG-NOTE mount %s on %s: %s", type, dir, strerror(errno));
}

static void open_console(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0) {
        /* Nothing can be said without a console: the kernel's panic on pid
         * 1's exit is the message, and rig/machine.py reports the missing RIG-DONE. */
        _exit(2);
    }
    for (int i = 0; i < 3; i++)
        if (fd != i && dup2(fd, i) < 0)
            _exit(2);
    if (fd > 2)
        close(fd);
}

static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            die("read %s: out of memory", path);
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            continue;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in place; returns 0, or -1 on a malformed escape. */
static int unescape(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        int hi = hexval(in[1]), lo = hi < 0 ? -1 : hexval(in[2]);
        if (hi < 0 || lo < 0)
            return -1;
        *out++ = (char)(hi * 16 + lo);
        in += 2;
    }
    *out = '\0';
    return 0;
}

/* Splits s at each `sep` into a NULL-terminated array of decoded words
 * (room for `extra` more entries before the NULL). An empty s gives none. */
static char **split_words(char *s, char sep, size_t extra, size_t *count, int lineno)
{
    size_t n = *s ? 1 : 0;
    for (char *p = s; *p; p++)
        n += *p == sep;
    char **v = calloc(n + extra + 1, sizeof *v);
    if (!v)
        die("line %d of %s: out of memory", lineno, COMMANDS);
    size_t i = 0;
    for (char *p = s; n && p;) {
        char *next = strchr(p, sep);
        if (next)
            *next++ = '\0';
        if (unescape(p) < 0)
            die("line %d of %s: malformed %%XX escape", lineno, COMMANDS);
        v[i++] = p;
        p = next;
    }
    *count = i;
    return v;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_command(char *line, int lineno)
{
    char *field[4];
    char *p = line;
    for (int i = 0; i < 4; i++) {
        field[i] = p;
        char *tab = i < 3 ? strchr(p, '\t') : NULL;
        if (i < 3 && !tab)
            die("line %d of %s: expected 4 TAB-separated fields", lineno, COMMANDS);
        if (tab) {
            *tab = '\0';
            p = tab + 1;
        }
    }
    if (strchr(field[3], '\t'))
        die("line %d of %s: expected 4 TAB-separated fields", lineno, COMMANDS);
    const char *name = field[0];
    if (!*name)
        die("line %d of %s: empty name", lineno, COMMANDS);
    char *end;
    long timeout = strtol(field[1], &end, 10);
    if (!*field[1] || *end || timeout < 0)
        die("line %d of %s: bad timeout '%s'", lineno, COMMANDS, field[1]);

    size_t nenv, nargv;
    char **envp = split_words(field[2], ' ', 1, &nenv, lineno);
    char **argv = split_words(field[3], ' ', 0, &nargv, lineno);
    if (nargv == 0 || !argv[0][0])
        die("line %d of %s: empty argv", lineno, COMMANDS);
    int has_path = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (!strchr(envp[i], '='))
            die("line %d of %s: env word '%s' has no '='", lineno, COMMANDS, envp[i]);
        has_path |= strncmp(envp[i], "PATH=", 5) == 0;
    }
    if (!has_path)
        envp[nenv++] = "PATH=/bin";

    /* The child reports a failed exec through this pipe (closed on success). */
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        die("pipe2: %s", strerror(errno));

    say("RIG-BEGIN %s", name);
    double start = now();
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = fork();
    if (pid < 0)
        die("fork for %s: %s", name, strerror(errno));
    if (pid == 0) {
        close(errpipe[0]);
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        execve(argv[0], argv, envp);
        int e = errno;
        ssize_t w = write(errpipe[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    setpgid(pid, pid); /* whichever of parent and child runs first */
    close(errpipe[1]);
    int exec_errno = 0;
    ssize_t r;
    do
        r = read(errpipe[0], &exec_errno, sizeof exec_errno);
    while (r < 0 && errno == EINTR);
    close(errpipe[0]);
    if (r == (ssize_t)sizeof exec_errno) {
        waitpid(pid, NULL, 0);
        die("exec %s for %s: %s", argv[0], name, strerror(exec_errno));
    }

    int status = 0, timed_out = 0;
    for (;;) {
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w == pid)
            break;
        if (w > 0)
            continue; /* an orphan reparented to init */
        if (w < 0 && errno != EINTR)
            die("waitpid for %s: %s", name, strerror(errno));
        if (w < 0)
            continue;
        struct timespec ts = {1, 0};
        if (timeout > 0 && !timed_out) {
            double left = start + (double)timeout - now();
            if (left <= 0) {
                say("RIG-TIMEOUT %s seconds=%ld", name, timeout);
                kill(-1, SIGKILL); /* every process but init */
                timed_out = 1;
                continue;
            }
            if (left < 1) {
                ts.tv_sec = 0;
                ts.tv_nsec = (long)(left * 1e9) + 1;
                if (ts.tv_nsec > 999999999)
                    ts.tv_nsec = 999999999;
            }
        }
        sigtimedwait(&chld, NULL, &ts);
    }
    double seconds = now() - start;
    /* What the command left running goes with it: every process but init. */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (WIFEXITED(status))
        say("RIG-END %s exit=%d seconds=%.3f", name, WEXITSTATUS(status), seconds);
    else if (WIFSIGNALED(status))
        say("RIG-END %s signal=%d seconds=%.3f", name, WTERMSIG(status), seconds);
    else
        die("%s: unexpected wait status 0x%x", name, status);
    free(envp);
    free(argv);
}

static void on_sigchld(int sig)
{
    (void)sig;
}

int main(void)
{
    /* A handler, so that SIGCHLD is never discarded for pid 1 (it is blocked
     * and taken with sigtimedwait while a command runs). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigaction(SIGCHLD, &sa, NULL);

    /* The kernel opens /dev/console from the initramfs for pid 1; open it
     * again from devtmpfs so that fds 0, 1 and 2 are all there in any case. */
    mkdir("/dev", 0755);
    if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0 && errno != EBUSY) {
        int e = errno;
        open_console();
        die("mount devtmpfs on /dev: %s", strerror(e));
    }
    open_console();
    mount_fs("proc", "/proc", 1);
    mount_fs("sysfs", "/sys", 0);
    mkdir("/dev/shm", 01777);
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777") < 0)
        say("RIG-NOTE mount tmpfs on /dev/shm: %s", strerror(errno));
    mkdir("/tmp", 01777);
    chmod("/tmp", 01777);

    char *text = read_file(COMMANDS);
    int count = 0;
    for (char *p = text; *p; p++)
        count += *p == '\n';
    say("RIG-START commands=%d", count);
    int lineno = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            die("line %d of %s: no final newline", lineno + 1, COMMANDS);
        *nl = '\0';
        lineno++;
        if (*line)
            run_command(line, lineno);
        line = nl + 1;
    }
    say("RIG-DONE");
    power_off();
}
