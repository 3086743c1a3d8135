/* os: every system call refmalloc makes lives behind these functions.
 * None of them allocates through malloc, so they are safe to call from
 * inside the allocator, during start-up and in a forked child. */
#ifndef RM_OS_H
#define RM_OS_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

size_t os_page_size(void);

/* Address-space reservations: PROT_NONE, no commit charge. */
void *os_reserve(size_t len);
bool os_reserve_fixed(void *addr, size_t len);   /* give pages back, keep the range */
void os_unreserve(void *addr, size_t len);       /* give the range back */

/* Private mappings placed inside a reservation; `tagged` adds PROT_MTE
 * (arm64 memory tagging; only when os_mte_start() said OS_MTE_ON). */
bool os_map_file_fixed(void *addr, size_t len, int fd, size_t offset, bool tagged);
bool os_map_anon_fixed(void *addr, size_t len, bool tagged);
bool os_move_fixed(void *from, size_t len, void *to);  /* mremap, no resize */
/* Give [addr, addr+len) the protection of fresh data (read and write,
 * PROT_MTE if tagged), whatever the program set with mprotect. */
bool os_protect_data(void *addr, size_t len, bool tagged);
/* No access at all (free_guard: a freed block faults until reused). */
bool os_protect_none(void *addr, size_t len, bool tagged);
void os_dontneed(void *addr, size_t len);

/* Metadata memory for the allocator's own tables (zeroed). */
void *os_alloc_meta(size_t len);
void os_free_meta(void *addr, size_t len);

/* The pattern memfd. */
/* Close-on-exec, sealable, at a high number (never 0-2); -1 with errno. */
int os_memfd_create(const char *name);
bool os_memfd_fill(int fd, size_t len, unsigned char pattern);   /* by pwrite */
/* Size the file and map it shared, to fill or tag it through memory; the
 * caller unmaps it (os_free_meta) before sealing. NULL on failure. */
void *os_memfd_map_shared(int fd, size_t len, bool tagged);
bool os_memfd_seal(int fd);   /* no more writes, no resizing, no more seals */
bool os_fd_identity(int fd, uint64_t *dev, uint64_t *ino);
/* Do the mappings of [addr, addr+len), one piece per multiple of step (a
 * power of two) as refpage_map places them, all map the file (dev, ino)?
 * 1 yes, 0 no, -1 when the kernel cannot tell (PROCMAP_QUERY: Linux 6.11+). */
int os_mapping_is(uintptr_t addr, size_t len, size_t step, uint64_t dev, uint64_t ino);
/* Call fn on each part of [lo, hi) mapped shared (MAP_SHARED: anonymous
 * shared memory, a memfd, a file), from PROCMAP_QUERY where the kernel has
 * it (6.11+), else /proc/self/maps. False when neither could be read. */
typedef void os_range_fn(uintptr_t start, uintptr_t end, void *ctx);
bool os_each_shared_mapping(uintptr_t lo, uintptr_t hi, os_range_fn *fn, void *ctx);
/* The same from the text of /proc/self/maps only (what older kernels get;
 * the unit test reads it here too). */
bool os_each_shared_mapping_in_text(uintptr_t lo, uintptr_t hi, os_range_fn *fn, void *ctx);
void os_close(int fd);

/* Files. */
/* Up to cap-1 bytes of a small file, NUL terminated; false when unreadable. */
bool os_read_text(const char *path, char *buf, size_t cap);
long long os_read_number(const char *path);       /* -1 when unreadable */
/* The target of a symbolic link (/proc/self/exe), NUL terminated, cut at
 * cap-1 bytes; its length, 0 when unreadable. */
size_t os_readlink(const char *path, char *buf, size_t cap);
/* A file of any length (/proc/self/cmdline) read through buf, fn called on
 * each piece in order; false when it could not be opened or read. */
typedef void os_piece_fn(const char *piece, size_t len, void *ctx);
bool os_read_pieces(const char *path, char *buf, size_t cap, os_piece_fn *fn, void *ctx);
/* A whole regular file in metadata memory (never freed); NULL on failure,
 * with errno: open's, or EINVAL for anything but a regular file (a FIFO, a
 * device, a directory: never read, never waited for). */
char *os_read_file_meta(const char *path, size_t *len);
/* A new file, mode 0600 (O_EXCL|O_NOFOLLOW); -1 with errno: EEXIST when the
 * path exists, ELOOP when it is a symbolic link (never followed, even when
 * it dangles), else the open's. */
int os_create_new(const char *path);
bool os_write_all(int fd, const void *buf, size_t len);
/* /proc/self/pagemap, opened per use: the program may close descriptors it
 * does not know about. Entries for npages pages from addr; false on failure. */
int os_pagemap_open(void);
bool os_pagemap_read(int fd, uintptr_t addr, size_t npages, uint64_t *out);

/* PAGEMAP_SCAN (Linux 6.7+): the runs of [start, end) whose page categories
 * match, at most cap of them, into out; *walked is where the kernel stopped
 * (end, or earlier when out is full). Returns the count, or -1 with errno
 * (ENOTTY or EINVAL: no such ioctl). Categories are OS_PAGE_IS_*; a page
 * matches when, with the `inverted` bits flipped, it has every bit of `all`
 * and (if any_of is not 0) at least one bit of any_of; run->categories holds
 * its categories within `shown`. */
#define OS_PAGE_IS_WPALLOWED (1ull << 0)
#define OS_PAGE_IS_WRITTEN   (1ull << 1)
#define OS_PAGE_IS_FILE      (1ull << 2)
#define OS_PAGE_IS_PRESENT   (1ull << 3)
#define OS_PAGE_IS_SWAPPED   (1ull << 4)
struct os_page_run {
    uint64_t start, end, categories;
};
struct os_scan_query {
    uint64_t inverted, all, any_of, shown;
};
long os_pagemap_scan(int fd, uintptr_t start, uintptr_t end, const struct os_scan_query *q,
                     struct os_page_run *out, size_t cap, uintptr_t *walked);

/* Mappings of the process, from /proc/self/maps, and in *inside those that
 * start in [lo, hi); -1 when it cannot be read. */
long os_count_mappings(uintptr_t lo, uintptr_t hi, size_t *inside);

/* Address space: the RLIMIT_AS soft limit (SIZE_MAX when unlimited) and
 * the size of every mapping of the process (VmSize; 0 if unreadable). */
size_t os_address_limit(void);
size_t os_address_used(void);
/* What a single private writable mapping may cost under the kernel's
 * overcommit policy: SIZE_MAX unless vm.overcommit_memory is 0 (heuristic),
 * where one mapping larger than RAM + swap is refused. Read once. */
size_t os_overcommit_single_limit(void);

/* Process. */
long os_getpid(void);
/* No thread was ever created (glibc's __libc_single_threaded): a fork then
 * has no other thread that could hold a lock. */
bool os_single_threaded(void);
/* glibc's lock of the list of stdio streams (recursive), which glibc's fork
 * takes before its malloc locks: refmalloc takes it first too, so that a
 * thread in fflush(NULL) waiting for a stream held by a thread waiting for
 * refmalloc's lock cannot close a cycle with a forking thread. reset: in a
 * child, where its holder may not exist. */
void os_stdio_lock(void);
void os_stdio_unlock(void);
void os_stdio_reset(void);
bool os_is_secure(void);                           /* AT_SECURE: setuid/setgid */
/* Memory tagging: is it there, and are tag checks on for this thread
 * (synchronous, set here unless the program chose a mode itself)? */
enum os_mte { OS_MTE_ON, OS_MTE_PROGRAM_SET, OS_MTE_ABSENT, OS_MTE_NO_ABI };
enum os_mte os_mte_start(void);
_Noreturn void os_abort(void);

/* userfaultfd, for track_reads (reads.c). Minor-fault mode on the private
 * mappings of the pattern memfds: the first touch of each page of a
 * registered range waits for os_uffd_continue. */
struct os_uffd_event {
    uintptr_t addr;   /* the faulting address */
    long tid;         /* the thread that waits */
    bool write;
};
/* A descriptor that serves kernel-mode faults too (never
 * UFFD_USER_MODE_ONLY), close-on-exec, never 0-2; -1 with *err. */
int os_uffd_open(int *err);
uint64_t os_uffd_features_wanted(void);
/* Handshake asking for `features`: false when the kernel lacks one of them
 * (*have says what it offers). */
bool os_uffd_api(int fd, uint64_t features, uint64_t *have);
bool os_uffd_register_minor(int fd, uintptr_t addr, size_t len);
bool os_uffd_unregister(int fd, uintptr_t addr, size_t len);
/* Wait for the next event: 1 a page fault in *ev, 0 nothing to serve, -1
 * the descriptor is unusable. */
int os_uffd_next(int fd, struct os_uffd_event *ev);
/* Map the pattern page at `page` and wake the waiting threads. */
bool os_uffd_continue(int fd, uintptr_t page, size_t len);
/* What thread tid is doing while it waits (/proc/self/task/TID/syscall):
 * *nr -1 and *pc the faulting instruction for a user-mode fault, else the
 * system call's number (and *pc where it was made); *sp the user stack
 * pointer. */
bool os_thread_syscall(long tid, long *nr, uintptr_t *sp, uintptr_t *pc);
/* Copy len bytes of this process's memory at addr; false where unmapped. */
bool os_read_memory(uintptr_t addr, void *buf, size_t len);
/* A detached thread running fn(arg), every signal blocked in it. */
bool os_thread_start(void *(*fn)(void *), void *arg);
/* Bind every thread of the process to the CPU the caller runs on: the CPU
 * number, or -1 when it could not be found or the threads not listed. */
int os_pin_threads_here(void);
long os_gettid(void);

/* The libc environment: an environment variable (NULL when unset), give the
 * processor to another thread, and the module and symbol holding an address
 * (dladdr; takes the dynamic loader's lock). os_dladdr1 also gives what
 * `flags` asks for in *extra (RTLD_DL_LINKMAP: the module's link_map,
 * RTLD_DL_SYMENT: the symbol's ELF entry). */
const char *os_getenv(const char *name);
void os_yield(void);
bool os_dladdr(const void *addr, Dl_info *info);
bool os_dladdr1(const void *addr, Dl_info *info, void **extra, int flags);

/* The loaded object (of the main namespace) holding addr, found by its
 * program headers (dl_iterate_phdr) without the symbol-table search that
 * makes dladdr cost tens of thousands of instructions a call; dladdr1's
 * answer for an address in another namespace. NULL if none holds it. */
struct link_map *os_object_of(const void *addr);

#endif
