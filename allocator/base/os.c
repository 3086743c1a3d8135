/* os: the single place where refmalloc talks to the kernel. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <dirent.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>

/* Memory tagging (arm64 MTE): constants from the kernel's uapi, for
 * headers older than the feature. Elsewhere PROT_MTE is 0: never used. */
#if defined(__aarch64__)
#ifndef PROT_MTE
#define PROT_MTE 0x20
#endif
#ifndef HWCAP2_MTE
#define HWCAP2_MTE (1UL << 18)
#endif
#ifndef PR_SET_TAGGED_ADDR_CTRL
#define PR_SET_TAGGED_ADDR_CTRL 55
#define PR_GET_TAGGED_ADDR_CTRL 56
#define PR_TAGGED_ADDR_ENABLE (1UL << 0)
#endif
#ifndef PR_MTE_TCF_SHIFT
#define PR_MTE_TCF_SHIFT 1
#define PR_MTE_TCF_SYNC (1UL << PR_MTE_TCF_SHIFT)
#define PR_MTE_TCF_MASK (3UL << PR_MTE_TCF_SHIFT)
#define PR_MTE_TAG_SHIFT 3
#endif
#else
#define PROT_MTE 0
#endif

/* refmalloc's own descriptors are closed behind the program's close(),
 * which preload/fds.c interposes to count the program's descriptor changes:
 * glibc's alias, so that ours are not counted. */
extern int __close(int fd);

static void close_own(int fd)
{
    __close(fd);
}

static int data_prot(bool tagged)
{
    return PROT_READ | PROT_WRITE | (tagged ? PROT_MTE : 0);
}

size_t os_page_size(void)
{
    static size_t cached;
    if (cached == 0) {
        long v = sysconf(_SC_PAGESIZE);
        cached = v > 0 ? (size_t)v : 4096u;   /* sysconf never fails for this on Linux */
    }
    return cached;
}

void *os_reserve(size_t len)
{
    void *p = mmap(NULL, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

bool os_reserve_fixed(void *addr, size_t len)
{
    /* Replacing a range with a fresh PROT_NONE mapping drops its pages and
     * its VMAs in one call while keeping the address range ours. */
    return mmap(addr, len, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                -1, 0) != MAP_FAILED;
}

void os_unreserve(void *addr, size_t len)
{
    munmap(addr, len);
}

bool os_map_file_fixed(void *addr, size_t len, int fd, size_t offset, bool tagged)
{
    return mmap(addr, len, data_prot(tagged), MAP_PRIVATE | MAP_FIXED,
                fd, (off_t)offset) != MAP_FAILED;
}

bool os_map_anon_fixed(void *addr, size_t len, bool tagged)
{
    return mmap(addr, len, data_prot(tagged),
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

bool os_move_fixed(void *from, size_t len, void *to)
{
    /* Since Linux 6.17 a move without resize may span several VMAs; older
     * kernels refuse (EFAULT) and the caller copies instead. DONTUNMAP
     * (Linux 5.13+ for file mappings) leaves `from` mapped, emptied: it is
     * never a hole where another thread's mmap could land before the caller
     * reserves it again (and then overwrite the program's mapping). */
    return mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) !=
           MAP_FAILED;
}

bool os_protect_none(void *addr, size_t len, bool tagged)
{
    /* PROT_MTE kept: clearing it would drop VM_MTE from the mapping. */
    return mprotect(addr, len, tagged ? PROT_MTE : PROT_NONE) == 0;
}

bool os_protect_data(void *addr, size_t len, bool tagged)
{
    return mprotect(addr, len, data_prot(tagged)) == 0;
}

void os_dontneed(void *addr, size_t len)
{
    madvise(addr, len, MADV_DONTNEED);
}

void *os_alloc_meta(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void os_free_meta(void *addr, size_t len)
{
    munmap(addr, len);
}

/* The lowest number for refmalloc's long-lived descriptors: three quarters
 * of the way up to min(RLIMIT_NOFILE soft limit, 1024), never below 3.
 * - Below the soft limit, or F_DUPFD fails (EINVAL); well below it, so that
 *   a program moving its own descriptors near the top (bash keeps one at
 *   255 under the limit) does not meet ours.
 * - High above the numbers programs use, so that one counting or reusing
 *   low descriptors (EMFILE loops, leak checks, dup2 onto "free" numbers)
 *   sees nothing, and the number is never 0-2.
 * - At most 768: the kernel sizes a process's descriptor table for its
 *   highest number (and fork copies it). Measured here (Linux 6.18): with a
 *   descriptor at 768 or 1023 FDSize is 1024 and fork+wait takes 190-205 us
 *   (215 us with none above 3); at 19999 FDSize is 32768 and fork+wait takes
 *   330 us. Under a 1M limit a descriptor near the top would cost 8 MiB of
 *   table in every process. Read per call: the program may change it. */
static int high_fd_floor(void)
{
    struct rlimit r;
    rlim_t soft = getrlimit(RLIMIT_NOFILE, &r) == 0 ? r.rlim_cur : 1024;
    rlim_t cap = soft < 1024 ? soft : 1024;
    rlim_t floor = cap / 4 * 3;
    return floor > 3 ? (int)floor : 3;
}

/* Move fd to a number >= the floor (else at least >= 3): a descriptor of
 * ours at 0-2 would be the program's closed stdin, stdout or stderr (read(0)
 * would read the pattern instead of failing with EBADF). -1 with errno,
 * fd closed, when no number >= 3 is free. */
static int move_fd_high(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, high_fd_floor());
    if (high < 0 && fd < 3)
        high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (high < 0 && fd >= 3)
        return fd;
    int saved = errno;
    close_own(fd);
    errno = saved;
    return high;
}

int os_memfd_create(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd < 0 ? fd : move_fd_high(fd);
}

bool os_memfd_fill(int fd, size_t len, unsigned char pattern)
{
    /* pwrite from a small patterned buffer: no page fault per page, as a
     * memset through a shared mapping would take. */
    enum { PIECE = 64 << 10 };
    unsigned char *piece = os_alloc_meta(PIECE);
    if (!piece)
        return false;
    memset(piece, pattern, PIECE);
    bool ok = true;
    for (size_t off = 0; ok && off < len;) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        ssize_t w = pwrite(fd, piece, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    os_free_meta(piece, PIECE);
    return ok;
}

void *os_memfd_map_shared(int fd, size_t len, bool tagged)
{
    if (ftruncate(fd, (off_t)len) != 0)
        return NULL;
    void *p = mmap(NULL, len, data_prot(tagged), MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

bool os_memfd_seal(int fd)
{
    return fcntl(fd, F_ADD_SEALS,
                 F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0;
}

bool os_fd_identity(int fd, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return true;
}

/* PROCMAP_QUERY (linux/fs.h, Linux 6.11), for older headers. */
struct rm_procmap_query {
    uint64_t size, query_flags, query_addr;
    uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
    uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    uint64_t vma_name_addr, build_id_addr;
};
#define RM_PROCMAP_QUERY _IOWR('f', 17, struct rm_procmap_query)

int os_mapping_is(uintptr_t addr, size_t len, size_t step, uint64_t dev, uint64_t ino)
{
    static bool unsupported;
    if (unsupported)
        return -1;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int result = 1;
    /* One query per piece, tiled as refpage_map tiles them. */
    for (uintptr_t at = addr, end = addr + len; result == 1 && at < end;
         at = (at & ~(uintptr_t)(step - 1)) + step) {
        struct rm_procmap_query q = {.size = sizeof q, .query_addr = at};
        if (ioctl(fd, RM_PROCMAP_QUERY, &q) != 0) {
            if (errno == ENOTTY || errno == EINVAL)
                unsupported = true;   /* an older kernel: never ask again */
            result = errno == ENOENT ? 0 : -1;
        } else {
            result = q.inode == ino && q.dev_major == major((dev_t)dev) &&
                     q.dev_minor == minor((dev_t)dev);
        }
    }
    close_own(fd);
    return result;
}

/* The shared mappings in [lo, hi) from /proc/self/maps text (kernels
 * without PROCMAP_QUERY): "start-end perms ..." per line, perms' fourth
 * letter 's' for a shared mapping. */
static bool shared_from_text(int fd, uintptr_t lo, uintptr_t hi, os_range_fn *fn, void *ctx)
{
    char buf[16384];
    enum { START, END, PERMS, REST } field = START;
    uintptr_t start = 0, end = 0;
    unsigned perm = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        if (n == 0)
            return true;
        for (ssize_t i = 0; i < n; i++) {
            unsigned c = (unsigned char)buf[i];
            unsigned digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 16;
            if (c == '\n') {
                field = START;
                start = end = 0;
                perm = 0;
            } else if (field == START) {
                if (digit < 16)
                    start = start * 16 + digit;
                else
                    field = END;   /* the '-' */
            } else if (field == END) {
                if (digit < 16)
                    end = end * 16 + digit;
                else
                    field = PERMS;   /* the ' ' */
            } else if (field == PERMS) {
                if (++perm == 4) {
                    field = REST;
                    if (c == 's' && start < hi && end > lo)
                        fn(start < lo ? lo : start, end > hi ? hi : end, ctx);
                }
            }
        }
    }
}

bool os_each_shared_mapping_in_text(uintptr_t lo, uintptr_t hi, os_range_fn *fn, void *ctx)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = shared_from_text(fd, lo, hi, fn, ctx);
    close_own(fd);
    return ok;
}

bool os_each_shared_mapping(uintptr_t lo, uintptr_t hi, os_range_fn *fn, void *ctx)
{
    enum { COVERING_OR_NEXT = 0x10, VMA_SHARED = 0x08 };   /* PROCMAP_QUERY_* */
    static bool unsupported;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = true;
    /* One query per shared mapping: the kernel skips the private ones. */
    for (uintptr_t at = lo; !unsupported && at < hi;) {
        struct rm_procmap_query q = {.size = sizeof q, .query_addr = at,
                                     .query_flags = COVERING_OR_NEXT | VMA_SHARED};
        if (ioctl(fd, RM_PROCMAP_QUERY, &q) != 0) {
            if (errno == ENOTTY || errno == EINVAL)
                unsupported = true;   /* before Linux 6.11: read the text */
            else
                ok = errno == ENOENT;   /* none at or after at */
            break;
        }
        if (q.vma_start >= hi)
            break;
        fn(q.vma_start < lo ? lo : q.vma_start, q.vma_end > hi ? hi : q.vma_end, ctx);
        at = q.vma_end;
    }
    if (unsupported)
        ok = shared_from_text(fd, lo, hi, fn, ctx);
    close_own(fd);
    return ok;
}

void os_close(int fd)
{
    close_own(fd);
}

bool os_read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t used = 0;
    while (used + 1 < cap) {
        ssize_t n = read(fd, buf + used, cap - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    close_own(fd);
    buf[used] = '\0';
    return used > 0;
}

size_t os_readlink(const char *path, char *buf, size_t cap)
{
    ssize_t n = readlink(path, buf, cap - 1);
    size_t len = n < 0 ? 0 : (size_t)n;
    buf[len] = '\0';
    return len;
}

bool os_read_pieces(const char *path, char *buf, size_t cap, os_piece_fn *fn, void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = true;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        fn(buf, (size_t)n, ctx);
    }
    close_own(fd);
    return ok;
}

long long os_read_number(const char *path)
{
    char buf[32];
    if (!os_read_text(path, buf, sizeof buf))
        return -1;
    long long v = 0;
    for (const char *p = buf; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    return v;
}

char *os_read_file_meta(const char *path, size_t *len)
{
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer, at
     * start-up, forever. Only a regular file is read. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    int err = EINVAL;
    if (fstat(fd, &st) != 0) {
        err = errno;
    } else if (S_ISREG(st.st_mode)) {
        size_t size = (size_t)st.st_size, used = 0;
        buf = os_alloc_meta(size + 1);
        err = buf ? 0 : ENOMEM;
        while (buf && used < size) {
            ssize_t n = read(fd, buf + used, size - used);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                err = n < 0 ? errno : EIO;   /* shrank under us: EIO */
                os_free_meta(buf, size + 1);
                buf = NULL;
                break;
            }
            used += (size_t)n;
        }
        *len = size;
    }
    close_own(fd);
    if (!buf)
        errno = err;
    return buf;
}

int os_create_new(const char *path)
{
    /* 0600: reports and site logs reveal addresses of the program's memory. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* O_EXCL refuses a symbolic link, even a dangling one, as EEXIST:
         * tell the caller it is a link, which was not followed. */
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
            errno = ELOOP;
        else
            errno = EEXIST;
    }
    return fd;
}

bool os_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int os_pagemap_open(void)
{
    /* Kept open, so moved out of the program's low numbers as a memfd is. */
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? fd : move_fd_high(fd);
}

bool os_pagemap_read(int fd, uintptr_t addr, size_t npages, uint64_t *out)
{
    size_t want = npages * sizeof(uint64_t);
    off_t off = (off_t)(addr / os_page_size() * sizeof(uint64_t));
    char *dst = (char *)out;
    bool ok = true;
    while (want > 0) {
        ssize_t n = pread(fd, dst, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = false;
            break;
        }
        dst += n;
        off += n;
        want -= (size_t)n;
    }
    return ok;
}

/* PAGEMAP_SCAN's ABI (include/uapi/linux/fs.h, Linux 6.7), for headers
 * older than the kernel: the ioctl is _IOWR('f', 16, struct pm_scan_arg). */
struct rm_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
_Static_assert(sizeof(struct rm_pm_scan_arg) == 96, "struct pm_scan_arg is 96 bytes");
_Static_assert(sizeof(struct os_page_run) == 24, "struct page_region is 24 bytes");
#define RM_PAGEMAP_SCAN _IOWR('f', 16, struct rm_pm_scan_arg)

long os_pagemap_scan(int fd, uintptr_t start, uintptr_t end, const struct os_scan_query *q,
                     struct os_page_run *out, size_t cap, uintptr_t *walked)
{
    struct rm_pm_scan_arg a = {
        .size = sizeof a, .start = start, .end = end,
        .vec = (uint64_t)(uintptr_t)out, .vec_len = cap,
        .category_inverted = q->inverted, .category_mask = q->all,
        .category_anyof_mask = q->any_of, .return_mask = q->shown,
    };
    long n;
    do
        n = ioctl(fd, RM_PAGEMAP_SCAN, &a);
    while (n < 0 && errno == EINTR);
    *walked = n < 0 ? start : (uintptr_t)a.walk_end;
    return n;
}

long os_count_mappings(uintptr_t lo, uintptr_t hi, size_t *inside)
{
    *inside = 0;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[16384];
    long count = 0;
    bool line_start = true;
    uintptr_t start = 0;
    bool in_address = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (line_start) {
                start = 0;
                in_address = true;
                line_start = false;
            }
            if (in_address) {
                unsigned d = (unsigned char)c;
                if (d >= '0' && d <= '9')
                    start = start * 16 + (d - '0');
                else if (d >= 'a' && d <= 'f')
                    start = start * 16 + (d - 'a' + 10);
                else {
                    in_address = false;
                    count++;
                    *inside += start >= lo && start < hi;
                }
            }
            if (c == '\n')
                line_start = true;
        }
    }
    close_own(fd);
    return count;
}

size_t os_address_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)r.rlim_cur;
}

size_t os_address_used(void)
{
    long long pages = os_read_number("/proc/self/statm");
    return pages > 0 ? (size_t)pages * os_page_size() : 0;
}

size_t os_overcommit_single_limit(void)
{
    if (os_read_number("/proc/sys/vm/overcommit_memory") != 0)
        return SIZE_MAX;
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return SIZE_MAX;
    unsigned __int128 total = ((unsigned __int128)si.totalram + si.totalswap) * si.mem_unit;
    return total > SIZE_MAX ? SIZE_MAX : (size_t)total;
}

long os_getpid(void)
{
    return (long)getpid();
}

bool os_single_threaded(void)
{
    return __libc_single_threaded;
}

/* Exported by glibc since 2.2.5 (libio), declared in no public header. Weak:
 * a C library without them leaves stdio out of refmalloc's fork order. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

void os_stdio_lock(void)
{
    if (_IO_list_lock)
        _IO_list_lock();
}

void os_stdio_unlock(void)
{
    if (_IO_list_unlock)
        _IO_list_unlock();
}

void os_stdio_reset(void)
{
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

bool os_is_secure(void)
{
    return getauxval(AT_SECURE) != 0;
}

enum os_mte os_mte_start(void)
{
#if defined(__aarch64__)
    if (!(getauxval(AT_HWCAP2) & HWCAP2_MTE))
        return OS_MTE_ABSENT;
    /* Per thread, inherited by the threads it creates: set at start-up, in
     * the thread that runs constructors, before the program makes any. */
    int current = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
    if (current < 0)
        return OS_MTE_NO_ABI;
    if (((unsigned long)current & PR_TAGGED_ADDR_ENABLE) &&
        ((unsigned long)current & PR_MTE_TCF_MASK))
        return OS_MTE_PROGRAM_SET;
    /* Synchronous checks: the fault names the faulting instruction. Tags
     * 1-15 for IRG; refmalloc picks its own and never hands out tag 0. */
    unsigned long ctrl = PR_TAGGED_ADDR_ENABLE | PR_MTE_TCF_SYNC |
                         (0xfffeUL << PR_MTE_TAG_SHIFT);
    return prctl(PR_SET_TAGGED_ADDR_CTRL, ctrl, 0, 0, 0) == 0 ? OS_MTE_ON : OS_MTE_NO_ABI;
#else
    return OS_MTE_ABSENT;
#endif
}

_Noreturn void os_abort(void)
{
    abort();
}

const char *os_getenv(const char *name)
{
    return getenv(name);
}

void os_yield(void)
{
    sched_yield();
}

bool os_dladdr(const void *addr, Dl_info *info)
{
    return dladdr(addr, info) != 0;
}

bool os_dladdr1(const void *addr, Dl_info *info, void **extra, int flags)
{
    return dladdr1(addr, info, extra, flags) != 0;
}

struct object_search {
    uintptr_t addr;
    uintptr_t base;
    const char *name;    /* NULL: not found */
};

static int object_holding(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object_search *s = data;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->addr >= start && s->addr - start < ph->p_memsz) {
            s->base = info->dlpi_addr;
            s->name = info->dlpi_name ? info->dlpi_name : "";
            return 1;
        }
    }
    return 0;
}

struct link_map *os_object_of(const void *addr)
{
    if (!addr)
        return NULL;
    struct object_search s = {.addr = (uintptr_t)addr};
    if (dl_iterate_phdr(object_holding, &s) && s.name)
        for (struct link_map *m = _r_debug.r_map; m; m = m->l_next)
            if (m->l_addr == s.base && !strcmp(m->l_name ? m->l_name : "", s.name))
                return m;
    Dl_info info;
    struct link_map *map = NULL;
    return dladdr1(addr, &info, (void **)&map, RTLD_DL_LINKMAP) ? map : NULL;
}

/* ---- userfaultfd (track_reads) ------------------------------------------- */

int os_uffd_open(int *err)
{
    /* Not UFFD_USER_MODE_ONLY: a fault the kernel takes inside a system call
     * (write(2) of a block, read(2) into one) must be served too, or that
     * call would fail with EFAULT. Blocking reads: the handler thread has
     * nothing else to do. */
    int flags = O_CLOEXEC;
    int fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd < 0 && errno == EPERM) {
        /* Without vm.unprivileged_userfaultfd the device node, if the
         * process may open it, gives the same descriptor. */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
            int saved = errno;
            close_own(dev);
            errno = fd < 0 ? EPERM : saved;
        } else {
            errno = EPERM;
        }
    }
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    fd = move_fd_high(fd);
    if (fd < 0)
        *err = errno;
    return fd;
}

bool os_uffd_api(int fd, uint64_t features, uint64_t *have)
{
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0)
        return false;
    *have = api.features;
    return (api.features & features) == features &&
           (api.ioctls & (1ull << _UFFDIO_REGISTER)) != 0;
}

uint64_t os_uffd_features_wanted(void)
{
    return UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_THREAD_ID;
}

bool os_uffd_register_minor(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_register r = {.range = {.start = addr, .len = len},
                                .mode = UFFDIO_REGISTER_MODE_MINOR};
    return ioctl(fd, UFFDIO_REGISTER, &r) == 0 && (r.ioctls & (1ull << _UFFDIO_CONTINUE)) != 0;
}

bool os_uffd_unregister(int fd, uintptr_t addr, size_t len)
{
    struct uffdio_range r = {.start = addr, .len = len};
    return ioctl(fd, UFFDIO_UNREGISTER, &r) == 0;
}

int os_uffd_next(int fd, struct os_uffd_event *ev)
{
    struct uffd_msg msg;
    ssize_t n = read(fd, &msg, sizeof msg);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n != (ssize_t)sizeof msg)
        return -1;   /* not a userfaultfd any more (the number was reused) */
    if (msg.event != UFFD_EVENT_PAGEFAULT)
        return 0;
    ev->addr = msg.arg.pagefault.address;
    ev->write = (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
    ev->tid = msg.arg.pagefault.feat.ptid;
    return 1;
}

bool os_uffd_continue(int fd, uintptr_t page, size_t len)
{
    for (;;) {
        struct uffdio_continue c = {.range = {.start = page, .len = len}};
        if (ioctl(fd, UFFDIO_CONTINUE, &c) == 0)
            return true;
        /* EEXIST: mapped meanwhile (another thread's fault on the same page
         * was served first), which wakes nobody: wake the waiters. EAGAIN:
         * the mappings changed under us; try again. */
        if (errno == EEXIST) {
            struct uffdio_range r = {.start = page, .len = len};
            ioctl(fd, UFFDIO_WAKE, &r);
            return true;
        }
        if (errno != EAGAIN && errno != EINTR)
            return false;
    }
}

bool os_thread_syscall(long tid, long *nr, uintptr_t *sp, uintptr_t *pc)
{
    char path[64] = "/proc/self/task/";
    char digits[24];
    size_t n = strlen(path), dl = 0;
    for (unsigned long v = (unsigned long)tid; dl == 0 || v; v /= 10)
        digits[dl++] = (char)('0' + v % 10);
    while (dl)
        path[n++] = digits[--dl];
    memcpy(path + n, "/syscall", sizeof "/syscall");
    char text[256];
    if (!os_read_text(path, text, sizeof text))
        return false;
    /* "-1 SP PC" for a thread stopped outside a system call (a user-mode
     * fault); "NR ARG1 ... ARG6 SP PC" inside one; "running" otherwise. */
    const char *p = text;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (*p < '0' || *p > '9')
        return false;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    *nr = neg ? -v : v;
    /* The last two fields are the user SP and PC (for a system call: where
     * it was made). */
    uintptr_t fields[2] = {0, 0};
    for (const char *q = p; *q;) {
        while (*q == ' ' || *q == '\n')
            q++;
        if (q[0] != '0' || q[1] != 'x')
            break;
        uintptr_t x = 0;
        for (q += 2;; q++) {
            int c = *q;
            int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (h < 0)
                break;
            x = x * 16 + (uintptr_t)h;
        }
        fields[0] = fields[1];
        fields[1] = x;
    }
    *sp = fields[0];
    *pc = fields[1];
    return true;
}

bool os_read_memory(uintptr_t addr, void *buf, size_t len)
{
    /* process_vm_readv fails with EFAULT where a plain load would crash. */
    struct iovec local = {buf, len}, remote = {(void *)addr, len};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len;
}

bool os_thread_start(void *(*fn)(void *), void *arg)
{
    /* Every signal blocked in the new thread: the program's handlers run in
     * its own threads, never in ours (which may not run program code). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t t;
    bool ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, (size_t)64 << 10);
        ok = pthread_create(&t, &attr, fn, arg) == 0;
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

int os_pin_threads_here(void)
{
    int cpu = sched_getcpu();
    if (cpu < 0)
        return -1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    /* Every thread there is now; threads made later inherit their maker's
     * set. A thread started while this walks may keep its old set. */
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    char buf[4096];
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long at = 0; at < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(buf + at);
            at += d->d_reclen;
            long tid = 0;
            const char *c = d->d_name;
            for (; *c >= '0' && *c <= '9'; c++)
                tid = tid * 10 + (*c - '0');
            if (tid > 0 && !*c)
                sched_setaffinity((pid_t)tid, sizeof one, &one);
        }
    }
    close_own(dir);
    return cpu;
}

long os_gettid(void)
{
    return (long)syscall(SYS_gettid);
}
