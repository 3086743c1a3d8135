/* support.c: the implementation behind refmalloc's stand-ins for glibc's
 * support/ headers, linked into each glibc malloc test the runner builds
 * (tests/glibc/runner.py). Written for refmalloc from the documented
 * behaviour of glibc's test support: failures are recorded in a page
 * shared with forked children; the driver runs the test in a child process
 * group of its own, kills that group when TIMEOUT expires, and maps the
 * result to 0 pass, 1 fail, 77 unsupported. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <support/check.h>
#include <support/support.h>
#include <support/temp_file.h>
#include <support/test-driver.h>
#include <support/xsignal.h>
#include <support/xthread.h>
#include <support/xunistd.h>

/* ---- the failure record, shared with forked children ---- */

struct failures {
    unsigned int count;
    unsigned int failed; /* stays set even if count wraps */
};
static struct failures *failures;

/* A constructor, so that the page exists before the test forks anything. */
static __attribute__((constructor)) void failures_init(void)
{
    void *p = mmap(NULL, sizeof *failures, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        printf("error: cannot map the failure record: %m\n");
        exit(1);
    }
    failures = p;
}

void support_record_failure(void)
{
    __atomic_store_n(&failures->failed, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&failures->count, 1, __ATOMIC_RELEASE);
}

void support_record_failure_reset(void)
{
    __atomic_store_n(&failures->failed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&failures->count, 0, __ATOMIC_RELAXED);
}

int support_record_failure_is_failed(void)
{
    return __atomic_load_n(&failures->failed, __ATOMIC_ACQUIRE);
}

void support_record_failure_barrier(void)
{
    if (support_record_failure_is_failed()) {
        puts("error: exiting due to previous errors");
        exit(1);
    }
}

int support_report_failure(int status)
{
    if (!support_record_failure_is_failed())
        return status;
    printf("error: %u test failures\n", __atomic_load_n(&failures->count, __ATOMIC_ACQUIRE));
    return status == 0 || status == EXIT_UNSUPPORTED ? 1 : status;
}

/* ---- check.h ---- */

static void vreport(const char *kind, const char *file, int line, const char *format,
                    va_list ap)
{
    int saved = errno; /* %m in FORMAT means the caller's errno */
    fflush(stdout);
    printf("%s: %s:%d: ", kind, file, line);
    errno = saved;
    vprintf(format, ap);
    putchar('\n');
    fflush(stdout);
}

int support_print_failure_impl(const char *file, int line, const char *format, ...)
{
    support_record_failure();
    va_list ap;
    va_start(ap, format);
    vreport("error", file, line, format, ap);
    va_end(ap);
    return 1;
}

void support_exit_failure_impl(int status, const char *file, int line, const char *format, ...)
{
    if (status != 0 && status != EXIT_UNSUPPORTED)
        support_record_failure();
    va_list ap;
    va_start(ap, format);
    vreport(status == EXIT_UNSUPPORTED ? "warning (unsupported)" : "error", file, line, format,
            ap);
    va_end(ap);
    exit(status);
}

void support_test_verify_impl(const char *file, int line, const char *expr)
{
    int saved = errno;
    support_record_failure();
    printf("error: %s:%d: not true: %s\n", file, line, expr);
    fflush(stdout);
    errno = saved;
}

void support_test_verify_exit_impl(int status, const char *file, int line, const char *expr)
{
    support_test_verify_impl(file, line, expr);
    exit(status);
}

static void print_value(const char *expr, long long value, int positive)
{
    if (!positive && value != 0)
        printf("  %s: %lld (0x%llx)\n", expr, value, (unsigned long long)value);
    else
        printf("  %s: %llu (0x%llx)\n", expr, (unsigned long long)value,
               (unsigned long long)value);
}

void support_test_compare_failure(const char *file, int line, const char *lexpr,
                                  long long lvalue, int lpositive, const char *rexpr,
                                  long long rvalue, int rpositive)
{
    support_record_failure();
    printf("error: %s:%d: value of %s != value of %s\n", file, line, lexpr, rexpr);
    print_value("left", lvalue, lpositive);
    print_value("right", rvalue, rpositive);
    fflush(stdout);
}

void support_test_compare_string(const char *file, int line, const char *lexpr,
                                 const char *left, const char *rexpr, const char *right)
{
    if (left == right || (left && right && strcmp(left, right) == 0))
        return;
    support_record_failure();
    printf("error: %s:%d: string %s != string %s\n  left: %s\n  right: %s\n", file, line, lexpr,
           rexpr, left ? left : "(null)", right ? right : "(null)");
    fflush(stdout);
}

/* ---- support.h ---- */

void write_message(const char *message)
{
    size_t n = strlen(message);
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, message, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        message += w;
        n -= (size_t)w;
    }
}

void ignore_stderr(void)
{
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0)
        return;
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* A shared block keeps its length in a header, for support_shared_free. */
struct shared_header {
    size_t length;
    max_align_t align;
};

void *support_shared_allocate(size_t size)
{
    size_t length = sizeof(struct shared_header) + size;
    struct shared_header *h =
        mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED)
        FAIL_EXIT1("support_shared_allocate (%zu): %m", size);
    h->length = length;
    return &h->align;
}

void support_shared_free(void *p)
{
    struct shared_header *h =
        (struct shared_header *)((char *)p - offsetof(struct shared_header, align));
    if (munmap(h, h->length) != 0)
        FAIL_EXIT1("support_shared_free: munmap: %m");
}

void support_need_proc(const char *reason)
{
    if (access("/proc/self", R_OK) != 0)
        FAIL_UNSUPPORTED("/proc is not available: %s", reason);
}

void oom_error(const char *function, size_t size)
{
    printf("error: %s: allocation of %zu bytes failed: %m\n", function, size);
    fflush(stdout);
    exit(1);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p && n)
        oom_error("malloc", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p && n && size)
        oom_error("calloc", n * size);
    return p;
}

void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (!p && n)
        oom_error("realloc", n);
    return p;
}

void *xposix_memalign(size_t alignment, size_t n)
{
    void *p = NULL;
    int err = posix_memalign(&p, alignment, n);
    if (err) {
        errno = err;
        oom_error("posix_memalign", n);
    }
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom_error("strdup", strlen(s) + 1);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        oom_error("strndup", n + 1);
    return p;
}

char *xasprintf(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    char *s;
    int n = vasprintf(&s, format, ap);
    va_end(ap);
    if (n < 0)
        oom_error("asprintf", 0);
    return s;
}

/* ---- xunistd.h ---- */

pid_t xfork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        FAIL_EXIT1("fork: %m");
    return pid;
}

pid_t xwaitpid(pid_t pid, int *status, int flags)
{
    pid_t r;
    do
        r = waitpid(pid, status, flags);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        FAIL_EXIT1("waitpid (%d): %m", (int)pid);
    return r;
}

int xopen(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags, mode);
    if (fd < 0)
        FAIL_EXIT1("open (\"%s\", 0x%x, 0%o): %m", path, flags, (unsigned)mode);
    return fd;
}

void xclose(int fd)
{
    if (close(fd) != 0 && errno != EINTR)
        FAIL_EXIT1("close (%d): %m", fd);
}

void xpipe(int fds[2])
{
    if (pipe(fds) != 0)
        FAIL_EXIT1("pipe: %m");
}

void xdup2(int from, int to)
{
    if (dup2(from, to) < 0)
        FAIL_EXIT1("dup2 (%d, %d): %m", from, to);
}

void xwrite(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            FAIL_EXIT1("write (%d, %zu): %m", fd, n);
        if (w == 0)
            FAIL_EXIT1("write (%d, %zu) wrote nothing", fd, n);
        p += w;
        n -= (size_t)w;
    }
}

long xsysconf(int name)
{
    errno = 0;
    long v = sysconf(name);
    if (v < 0 && errno)
        FAIL_EXIT1("sysconf (%d): %m", name);
    return v;
}

void *xmmap(void *addr, size_t length, int prot, int flags, int fd)
{
    void *p = mmap(addr, length, prot, flags, fd, 0);
    if (p == MAP_FAILED)
        FAIL_EXIT1("mmap (%p, %zu, 0x%x, 0x%x, %d): %m", addr, length, prot, flags, fd);
    return p;
}

void xmunmap(void *addr, size_t length)
{
    if (munmap(addr, length) != 0)
        FAIL_EXIT1("munmap (%p, %zu): %m", addr, length);
}

void xmprotect(void *addr, size_t length, int prot)
{
    if (mprotect(addr, length, prot) != 0)
        FAIL_EXIT1("mprotect (%p, %zu, 0x%x): %m", addr, length, prot);
}

void xunlink(const char *path)
{
    if (unlink(path) != 0)
        FAIL_EXIT1("unlink (\"%s\"): %m", path);
}

/* ---- xsignal.h ---- */

sighandler_t xsignal(int sig, sighandler_t handler)
{
    sighandler_t old = signal(sig, handler);
    if (old == SIG_ERR)
        FAIL_EXIT1("signal (%d): %m", sig);
    return old;
}

void xsigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sigaction(sig, act, old) != 0)
        FAIL_EXIT1("sigaction (%d): %m", sig);
}

void xraise(int sig)
{
    if (raise(sig) != 0)
        FAIL_EXIT1("raise (%d): %m", sig);
}

void xsigemptyset(sigset_t *set)
{
    if (sigemptyset(set) != 0)
        FAIL_EXIT1("sigemptyset: %m");
}

void xsigaddset(sigset_t *set, int sig)
{
    if (sigaddset(set, sig) != 0)
        FAIL_EXIT1("sigaddset (%d): %m", sig);
}

void xsigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (sigprocmask(how, set, old) != 0)
        FAIL_EXIT1("sigprocmask: %m");
}

/* ---- xthread.h: pthread functions return the error instead of setting errno ---- */

static void check_pthread(int err, const char *what)
{
    if (err != 0) {
        errno = err;
        FAIL_EXIT1("%s: %m", what);
    }
}

void xpthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    check_pthread(pthread_sigmask(how, set, old), "pthread_sigmask");
}

pthread_t xpthread_create(pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    check_pthread(pthread_create(&t, attr, fn, arg), "pthread_create");
    return t;
}

void *xpthread_join(pthread_t thread)
{
    void *result;
    check_pthread(pthread_join(thread, &result), "pthread_join");
    return result;
}

void xpthread_detach(pthread_t thread)
{
    check_pthread(pthread_detach(thread), "pthread_detach");
}

void xpthread_cancel(pthread_t thread)
{
    check_pthread(pthread_cancel(thread), "pthread_cancel");
}

void xpthread_kill(pthread_t thread, int sig)
{
    check_pthread(pthread_kill(thread, sig), "pthread_kill");
}

void xpthread_once(pthread_once_t *once, void (*fn)(void))
{
    check_pthread(pthread_once(once, fn), "pthread_once");
}

void xpthread_attr_init(pthread_attr_t *attr)
{
    check_pthread(pthread_attr_init(attr), "pthread_attr_init");
}

void xpthread_attr_destroy(pthread_attr_t *attr)
{
    check_pthread(pthread_attr_destroy(attr), "pthread_attr_destroy");
}

void xpthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    check_pthread(pthread_attr_setstacksize(attr, size), "pthread_attr_setstacksize");
}

void xpthread_attr_setdetachstate(pthread_attr_t *attr, int state)
{
    check_pthread(pthread_attr_setdetachstate(attr, state), "pthread_attr_setdetachstate");
}

void xpthread_barrier_init(pthread_barrier_t *b, pthread_barrierattr_t *attr, unsigned count)
{
    check_pthread(pthread_barrier_init(b, attr, count), "pthread_barrier_init");
}

void xpthread_barrier_destroy(pthread_barrier_t *b)
{
    check_pthread(pthread_barrier_destroy(b), "pthread_barrier_destroy");
}

int xpthread_barrier_wait(pthread_barrier_t *b)
{
    int r = pthread_barrier_wait(b);
    if (r == PTHREAD_BARRIER_SERIAL_THREAD)
        return 1;
    check_pthread(r, "pthread_barrier_wait");
    return 0;
}

void xpthread_barrierattr_init(pthread_barrierattr_t *attr)
{
    check_pthread(pthread_barrierattr_init(attr), "pthread_barrierattr_init");
}

void xpthread_barrierattr_destroy(pthread_barrierattr_t *attr)
{
    check_pthread(pthread_barrierattr_destroy(attr), "pthread_barrierattr_destroy");
}

void xpthread_barrierattr_setpshared(pthread_barrierattr_t *attr, int pshared)
{
    check_pthread(pthread_barrierattr_setpshared(attr, pshared), "pthread_barrierattr_setpshared");
}

void xpthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    check_pthread(pthread_mutex_init(m, attr), "pthread_mutex_init");
}

void xpthread_mutex_destroy(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}

void xpthread_mutex_lock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_lock(m), "pthread_mutex_lock");
}

void xpthread_mutex_unlock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

void xpthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    check_pthread(pthread_cond_wait(c, m), "pthread_cond_wait");
}

void xpthread_cond_signal(pthread_cond_t *c)
{
    check_pthread(pthread_cond_signal(c), "pthread_cond_signal");
}

void xpthread_cond_broadcast(pthread_cond_t *c)
{
    check_pthread(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

/* ---- temp_file.h ---- */

const char *test_dir = "/tmp";
unsigned int test_verbose;

/* Names to remove at the end; a fixed table, as the tests make one or two. */
enum { MAX_TEMP_FILES = 64 };
static char *temp_files[MAX_TEMP_FILES];
static int temp_count;
/* Only the driver's own process removes them (not forked helpers). */
static pid_t temp_owner;

void add_temp_file(const char *name)
{
    if (temp_count < MAX_TEMP_FILES)
        temp_files[temp_count++] = xstrdup(name);
    else
        printf("warning: too many temporary files; %s is left behind\n", name);
}

static void remove_temp_files(void)
{
    if (getpid() != temp_owner)
        return;
    for (int i = 0; i < temp_count; i++)
        unlink(temp_files[i]);
    temp_count = 0;
}

int create_temp_file(const char *base, char **name)
{
    char *path = xasprintf("%s/%sXXXXXX", test_dir, base);
    int fd = mkstemp(path);
    if (fd < 0) {
        printf("error: mkstemp (\"%s\"): %m\n", path);
        free(path);
        return -1;
    }
    add_temp_file(path);
    if (name)
        *name = path;
    else
        free(path);
    return fd;
}

/* ---- the driver ---- */

static pid_t test_pid;
static void (*cleanup_function)(void);

/* SIGALRM (TIMEOUT expired) or SIGINT in the supervisor: kill the test's
 * process group, reap it, fail. */
static void on_timeout(int sig)
{
    if (cleanup_function)
        cleanup_function();
    kill(-test_pid, SIGKILL);
    kill(test_pid, SIGKILL);
    int status;
    while (waitpid(test_pid, &status, 0) < 0 && errno == EINTR)
        ;
    write_message(sig == SIGALRM ? "Timed out: killed the child process\n"
                                 : "Interrupted: killed the child process\n");
    remove_temp_files();
    _exit(1);
}

static int run_test(int argc, char **argv, const struct test_config *cfg)
{
    int status = cfg->test_function_argv ? cfg->test_function_argv(argc, argv)
                                         : cfg->test_function();
    return support_report_failure(status);
}

static unsigned timeout_factor(void)
{
    const char *s = getenv("TIMEOUTFACTOR");
    if (!s || !*s)
        return 1;
    char *end;
    unsigned long f = strtoul(s, &end, 0);
    return *end == '\0' && f > 0 ? (unsigned)f : 1;
}

/* The child's end: exit status or signal against what the test expects. */
static int judge(int status, const struct test_config *cfg)
{
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (cfg->expected_signal) {
            printf("Expected signal '%s' from child, got exit status %d\n",
                   strsignal(cfg->expected_signal), code);
            return 1;
        }
        if (cfg->expected_status) {
            if (code != cfg->expected_status) {
                printf("Expected status %d, got %d\n", cfg->expected_status, code);
                return 1;
            }
            code = 0;
        }
        return support_report_failure(code);
    }
    int sig = WTERMSIG(status);
    if (!cfg->expected_signal) {
        printf("Didn't expect signal from child: got `%s'\n", strsignal(sig));
        return 1;
    }
    if (sig != cfg->expected_signal) {
        printf("Incorrect signal from child: got `%s', need `%s'\n", strsignal(sig),
               strsignal(cfg->expected_signal));
        return 1;
    }
    return support_report_failure(0);
}

int support_test_main(int argc, char **argv, const struct test_config *cfg)
{
    static const struct option options[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"test-dir", required_argument, NULL, OPT_TESTDIR},
        {NULL, 0, NULL, 0},
    };
    int direct = 0, opt;
    while ((opt = getopt_long(argc, argv, "+v", options, NULL)) != -1) {
        if (opt == 'v')
            test_verbose++;
        else if (opt == OPT_DIRECT)
            direct = 1;
        else if (opt == OPT_TESTDIR)
            test_dir = optarg;
        else if (cfg->cmdline_function)
            cfg->cmdline_function(opt);
        else {
            printf("usage: %s [--direct] [--verbose] [--test-dir=DIR]\n", argv[0]);
            exit(1);
        }
    }
    if (test_dir == NULL || strcmp(test_dir, "/tmp") == 0) {
        const char *tmp = getenv("TMPDIR");
        if (tmp && *tmp)
            test_dir = tmp;
    }
    /* The test sees its own arguments after the driver's, argv[0] first. */
    argv[optind - 1] = argv[0];
    argc -= optind - 1;
    argv += optind - 1;

    temp_owner = getpid();
    atexit(remove_temp_files);
    cleanup_function = cfg->cleanup_function;
    /* glibc's driver also calls mallopt (M_PERTURB, 42) here; this one does
     * not: the malloc under test supplies its own pattern, and a perturb in
     * glibc's malloc below it would only add a second fill to the timings. */
    if (!cfg->no_setvbuf)
        setvbuf(stdout, NULL, _IONBF, 0);
    if (cfg->prepare_function)
        cfg->prepare_function(argc, argv);

    if (direct)
        return run_test(argc, argv, cfg);

    fflush(NULL);
    test_pid = fork();
    if (test_pid < 0) {
        printf("Cannot fork test program: %m\n");
        exit(1);
    }
    if (test_pid == 0) {
        struct rlimit no_core = {0, 0};
        if (!getenv("TEST_COREDUMPS"))
            setrlimit(RLIMIT_CORE, &no_core);
        /* Its own process group, which the timeout kills whole. */
        if (setpgid(0, 0) != 0)
            printf("Failed to set the process group ID: %m\n");
        exit(run_test(argc, argv, cfg));
    }
    unsigned timeout = (unsigned)(cfg->timeout > 0 ? cfg->timeout : DEFAULT_TIMEOUT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timeout;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    alarm(timeout * timeout_factor());

    int status;
    pid_t r;
    do
        r = waitpid(test_pid, &status, 0);
    while (r < 0 && errno == EINTR);
    alarm(0);
    if (r != test_pid) {
        printf("Waiting for test program failed: %m\n");
        exit(1);
    }
    return judge(status, cfg);
}
