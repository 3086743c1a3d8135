#include "reads.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "config.h"
#include "context.h"
#include "os.h"
#include "stats.h"

/* Blocks registered at once, and distinct findings kept: fixed tables made
 * at the first registration, so that the handler never allocates. A block
 * beyond RANGES_MAX is not tracked (its pages fault like any other); a
 * finding beyond FINDINGS_MAX is counted in reads_dropped. Findings are
 * kept per context (a test suite's every test may repeat one read), so
 * the table is sized for thousands: about 200 bytes each, in pages that
 * cost nothing until a finding lands there. */
#define RANGES_MAX 8192
#define FINDINGS_MAX 4096
#define QUIET_SLOTS 16
/* Words read from the reader's stack pointer: a leaf function of libc
 * (memcmp, memcpy, write) keeps its return address there, which names the
 * program's line that called it. The report names only those words that
 * are addresses in a module. */
#define STACK_WORDS 16
/* How long a thread waits for another to open the descriptor, in yields. */
#define OPEN_WAIT_YIELDS 100000

enum state {
    ST_UNTRIED,       /* no block registered yet */
    ST_OPENING,       /* one thread is opening the descriptor (reads_prepare) */
    ST_TRACKING,      /* descriptor open, handler running */
    ST_UNAVAILABLE,   /* userfaultfd refused: why in reason */
    ST_STOPPED,       /* given up (seccomp filter, descriptor lost) */
};

struct range {
    uintptr_t start, end;   /* registered bytes of the block: [start, end) */
    uintptr_t site;         /* return address of the allocation; 0 unknown */
    size_t size;            /* the program's size; 0 unknown */
};

struct finding {
    uintptr_t site;         /* allocation site (0 unknown) */
    uintptr_t pc;           /* reading instruction, or where the syscall was made */
    long syscall;           /* -1: a user-mode read */
    long tid;               /* first reader */
    uint32_t context;       /* the program's context then (context.h): 0 none */
    uintptr_t block;        /* first block read */
    size_t block_size, page;   /* its size and the page's offset in it */
    uint64_t count;         /* pages first touched by this reader */
    uintptr_t stack[STACK_WORDS];   /* the first reader's stack, from its SP */
};

static struct {
    _Atomic int state;
    int fd;
    const char *reason;
    atomic_flag lock;       /* the tables; never held while touching a block */
    struct range *ranges;   /* sorted by start */
    size_t nranges;
    struct finding *findings;
    size_t nfindings;
    uint64_t blocks;        /* block lives registered */
    uint64_t untracked;     /* blocks not registered (table full, kernel refused) */
    _Atomic long quiet[QUIET_SLOTS];
} rd = {.fd = -1, .lock = ATOMIC_FLAG_INIT};

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&rd.lock, memory_order_acquire))
        os_yield();
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&rd.lock, memory_order_release);
}

bool reads_on(void)
{
    int s = atomic_load_explicit(&rd.state, memory_order_relaxed);
    return config()->track_reads && (s == ST_UNTRIED || s == ST_OPENING || s == ST_TRACKING);
}

/* ---- the tables ----------------------------------------------------------- */

/* Index of the first range starting above addr. */
static size_t upper(uintptr_t addr)
{
    size_t lo = 0, hi = rd.nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rd.ranges[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct range *range_at(uintptr_t block)
{
    size_t i = upper(block);
    return i > 0 && rd.ranges[i - 1].start == block ? &rd.ranges[i - 1] : NULL;
}

static struct range *range_holding(uintptr_t addr)
{
    size_t i = upper(addr);
    return i > 0 && addr < rd.ranges[i - 1].end ? &rd.ranges[i - 1] : NULL;
}

static struct range *range_insert(uintptr_t block)
{
    if (rd.nranges == RANGES_MAX)
        return NULL;
    size_t i = upper(block);
    memmove(&rd.ranges[i + 1], &rd.ranges[i], (rd.nranges - i) * sizeof *rd.ranges);
    rd.nranges++;
    rd.ranges[i] = (struct range){.start = block, .end = block};
    return &rd.ranges[i];
}

static void range_remove(uintptr_t block)
{
    struct range *r = range_at(block);
    if (!r)
        return;
    size_t i = (size_t)(r - rd.ranges);
    memmove(&rd.ranges[i], &rd.ranges[i + 1], (rd.nranges - i - 1) * sizeof *rd.ranges);
    rd.nranges--;
}

/* ---- the handler ---------------------------------------------------------- */

static bool quiet(long tid)
{
    for (int i = 0; i < QUIET_SLOTS; i++)
        if (atomic_load_explicit(&rd.quiet[i], memory_order_acquire) == tid)
            return true;
    return false;
}

static void record(uintptr_t addr, long tid, long nr, uintptr_t pc, const uintptr_t *stack,
                   uint32_t context)
{
    lock();
    const struct range *r = range_holding(addr);
    uintptr_t site = r ? r->site : 0;
    struct finding *f = NULL;
    for (size_t i = 0; i < rd.nfindings && !f; i++)
        if (rd.findings[i].site == site && rd.findings[i].pc == pc &&
            rd.findings[i].syscall == nr && rd.findings[i].context == context)
            f = &rd.findings[i];
    if (!f && rd.nfindings < FINDINGS_MAX) {
        size_t page = os_page_size();
        f = &rd.findings[rd.nfindings++];
        *f = (struct finding){.site = site, .pc = pc, .syscall = nr, .tid = tid,
                                .context = context};
        memcpy(f->stack, stack, sizeof f->stack);
        if (r) {
            f->block = r->start;
            f->block_size = r->size ? r->size : r->end - r->start;
            f->page = (addr - r->start) & ~(page - 1);
        }
    }
    if (f)
        f->count++;
    else
        stat_add(ST_reads_dropped, 1);
    unlock();
}

/* Serves every event of descriptor fd: no malloc, no stdio, no lock but
 * the tables' (see reads.h). */
static void *handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t page = os_page_size();
    for (;;) {
        struct os_uffd_event ev;
        int got = os_uffd_next(fd, &ev);
        if (got < 0)
            break;
        if (got == 0)
            continue;
        stat_add(ST_reads_first_touches, 1);
        if (!ev.write && !quiet(ev.tid)) {
            /* Read while the thread waits: afterwards it has moved on (and
             * the program may be in its next context). */
            uint32_t context = context_current();
            long nr = -1;
            uintptr_t pc = 0, sp = 0, stack[STACK_WORDS] = {0};
            if (!os_thread_syscall(ev.tid, &nr, &sp, &pc))
                nr = -2;   /* unknown reader */
            else if (sp && !os_read_memory(sp, stack, sizeof stack))
                memset(stack, 0, sizeof stack);
            stat_add(ST_reads_before_write, 1);
            record(ev.addr, ev.tid, nr, pc, stack, context);
        }
        if (!os_uffd_continue(fd, ev.addr & ~(uintptr_t)(page - 1), page))
            break;
    }
    /* The descriptor is unusable (the program closed its number): its
     * ranges were unregistered when the file went, and nothing waits. */
    atomic_store(&rd.state, ST_STOPPED);
    rd.reason = "the userfaultfd descriptor was closed by the program";
    return NULL;
}

/* ---- opening ---------------------------------------------------------------- */

static void give_up(int state, const char *reason, const char *detail)
{
    atomic_store(&rd.state, state);
    rd.reason = reason;
    out_diag("track_reads: ", reason, detail);
}

static bool tables_ready(void)
{
    if (!rd.ranges)
        rd.ranges = os_alloc_meta(RANGES_MAX * sizeof *rd.ranges);
    if (!rd.findings)
        rd.findings = os_alloc_meta(FINDINGS_MAX * sizeof *rd.findings);
    return rd.ranges && rd.findings;
}

/* Open a descriptor and start its handler: true when tracking. */
static bool open_tracker(void)
{
    int err = 0;
    int fd = os_uffd_open(&err);
    if (fd < 0) {
        /* The reason outlives this call: the report names it at exit. */
        static char why[96];
        char buf[24];
        const char *text = err == EPERM || err == EACCES
            ? "userfaultfd not permitted (needs root, vm.unprivileged_userfaultfd=1 "
              "or access to /dev/userfaultfd)"
            : err == ENOSYS ? "userfaultfd not available (kernel or seccomp)" : NULL;
        if (!text) {
            const char *e = out_errno_text(err, buf);
            static const char head[] = "userfaultfd could not be opened: ";
            size_t n = strlen(e) < sizeof why - sizeof head ? strlen(e) : sizeof why - sizeof head;
            memcpy(why, head, sizeof head - 1);
            memcpy(why + sizeof head - 1, e, n);
            why[sizeof head - 1 + n] = '\0';
            text = why;
        }
        give_up(ST_UNAVAILABLE, text, "; reads are not tracked");
        return false;
    }
    uint64_t have = 0;
    if (!os_uffd_api(fd, os_uffd_features_wanted(), &have)) {
        os_close(fd);
        give_up(ST_UNAVAILABLE, "the kernel's userfaultfd lacks minor faults on shared memory "
                "or thread ids", "; reads are not tracked");
        return false;
    }
    /* Before the handler starts, which inherits the binding. */
    if (config()->track_reads_one_cpu)
        os_pin_threads_here();
    if (!tables_ready() || !os_thread_start(handler, (void *)(intptr_t)fd)) {
        os_close(fd);
        give_up(ST_UNAVAILABLE, "no memory or thread for the read tracker",
                "; reads are not tracked");
        return false;
    }
    rd.fd = fd;
    atomic_store(&rd.state, ST_TRACKING);
    return true;
}

/* Set in the thread opening the descriptor: pthread_create's own
 * allocations come back here and must not wait for themselves. */
static __thread bool opening_here;

void reads_prepare(void)
{
    if (!config()->track_reads)
        return;
    int untried = ST_UNTRIED;
    if (atomic_compare_exchange_strong(&rd.state, &untried, ST_OPENING)) {
        opening_here = true;
        open_tracker();   /* sets the state; says why when it fails */
        opening_here = false;
        return;
    }
    /* Another thread is opening it: wait a while, so that the first blocks
     * of a program's other threads are tracked too (they went untracked, up
     * to a sixth of them in a four-thread test on a busy machine). Bounded:
     * the opener's pthread_create may wait for a lock this caller holds (the
     * loader's, inside dlopen); then this block goes untracked instead. */
    for (int i = 0; i < OPEN_WAIT_YIELDS && !opening_here &&
                    atomic_load(&rd.state) == ST_OPENING; i++)
        os_yield();
}

static bool tracking(void)
{
    return config()->track_reads && atomic_load(&rd.state) == ST_TRACKING;
}

/* ---- the allocator's calls --------------------------------------------------- */

void reads_arm(uintptr_t block, uintptr_t at, size_t len)
{
    if (len == 0)
        return;
    if (!tracking()) {
        if (config()->track_reads && at == block && atomic_load(&rd.state) == ST_OPENING) {
            lock();
            rd.untracked++;   /* mapped while the descriptor was still being opened */
            unlock();
        }
        return;
    }
    /* Registered outside the tables' lock: the ioctl waits for the mmap
     * lock, and the handler may need the tables meanwhile. */
    bool ok = os_uffd_register_minor(rd.fd, at, len);
    lock();
    struct range *r = range_at(block);
    if (at == block && r) {
        r->site = 0;
        r->size = 0;
        r->end = block;
    }
    if (!r && ok)
        r = range_insert(block);
    if (r && ok) {
        if (at == block)
            rd.blocks++;
        if (at + len > r->end)
            r->end = at + len;
    } else {
        rd.untracked++;
        if (r && at == block)
            range_remove(block);
        if (ok)
            os_uffd_unregister(rd.fd, at, len);   /* no room to name it: never wait on it */
    }
    unlock();
}

void reads_moved(uintptr_t from, uintptr_t to, size_t len)
{
    if (!config()->track_reads || atomic_load(&rd.state) != ST_TRACKING)
        return;
    bool ok = len == 0 || os_uffd_register_minor(rd.fd, to, len);
    lock();
    struct range *old = range_at(from);
    struct range keep = old ? *old : (struct range){0};
    range_remove(from);
    struct range *r = range_at(to);
    if (!r && ok && old)
        r = range_insert(to);
    if (r) {
        r->site = keep.site;
        r->size = keep.size;
        if (to + len > r->end)
            r->end = to + len;
    } else if (len && ok) {
        os_uffd_unregister(rd.fd, to, len);
    }
    unlock();
}

void reads_release(uintptr_t block)
{
    if (!config()->track_reads || !rd.ranges)
        return;
    lock();
    range_remove(block);
    unlock();
}

void reads_site(const void *p, size_t size, const void *site)
{
    if (!config()->track_reads || !rd.ranges)
        return;
    lock();
    struct range *r = range_at((uintptr_t)p);
    if (r) {
        r->site = (uintptr_t)site;
        r->size = size;
    }
    unlock();
}

void reads_quiet_begin(void)
{
    if (!config()->track_reads || atomic_load(&rd.state) != ST_TRACKING)
        return;
    long tid = os_gettid();
    for (int i = 0; i < QUIET_SLOTS; i++) {
        long none = 0;
        if (atomic_compare_exchange_strong(&rd.quiet[i], &none, tid))
            return;
    }
}

void reads_quiet_end(void)
{
    if (!config()->track_reads)
        return;
    long tid = os_gettid();
    for (int i = 0; i < QUIET_SLOTS; i++) {
        long mine = tid;
        if (atomic_compare_exchange_strong(&rd.quiet[i], &mine, 0))
            return;
    }
}

/* Unregister every range: afterwards no fault waits for the handler. */
static void unregister_all(int fd)
{
    for (size_t i = 0; i < rd.nranges; i++)
        os_uffd_unregister(fd, rd.ranges[i].start, rd.ranges[i].end - rd.ranges[i].start);
}

void reads_before_sandbox(void)
{
    if (!config()->track_reads || atomic_load(&rd.state) != ST_TRACKING) {
        int s = atomic_load(&rd.state);
        if (config()->track_reads && (s == ST_UNTRIED || s == ST_OPENING))
            give_up(ST_STOPPED, "a seccomp filter is being installed", "; reads are not tracked");
        return;
    }
    lock();
    unregister_all(rd.fd);
    rd.nranges = 0;
    unlock();
    give_up(ST_STOPPED, "a seccomp filter is being installed",
            "; reads are no longer tracked");
}

void reads_fork_prepare(void)
{
    if (config()->track_reads)
        lock();
}

void reads_fork_parent(void)
{
    if (config()->track_reads)
        unlock();
}

void reads_fork_child(void)
{
    if (!config()->track_reads)
        return;
    atomic_flag_clear(&rd.lock);
    for (int i = 0; i < QUIET_SLOTS; i++)
        atomic_store(&rd.quiet[i], 0);
    /* The child reports its own reads, as it reports its own frees. */
    rd.nfindings = 0;
    rd.blocks = 0;
    rd.untracked = 0;
    if (atomic_load(&rd.state) != ST_TRACKING)
        return;
    /* The inherited descriptor names the parent's address space: never
     * register with it here. The child's copies of the ranges are no
     * longer registered (no UFFD_FEATURE_EVENT_FORK): register them with a
     * descriptor of its own, served by a thread of its own. */
    os_close(rd.fd);
    rd.fd = -1;
    atomic_store(&rd.state, ST_UNTRIED);
    if (rd.nranges == 0)
        return;
    reads_prepare();
    if (!tracking())
        return;
    size_t kept = 0;
    for (size_t i = 0; i < rd.nranges; i++) {
        struct range r = rd.ranges[i];
        if (os_uffd_register_minor(rd.fd, r.start, r.end - r.start))
            rd.ranges[kept++] = r;
        else
            rd.untracked++;
    }
    rd.nranges = kept;
}

/* ---- the report --------------------------------------------------------------- */

static void place_json(struct out *o, uintptr_t addr, bool ret)
{
    Dl_info info;
    /* A return address names the call before it: look up addr - 1. */
    if (!addr || !os_dladdr((const void *)(ret ? addr - 1 : addr), &info) || !info.dli_fname) {
        if (!addr) {
            out_str(o, "null");
            return;
        }
        out_str(o, "{\"module\": \"?\", \"offset\": ");
        out_u64(o, addr);
        out_str(o, ", \"symbol\": null}");
        return;
    }
    out_str(o, "{\"module\": ");
    out_json_str(o, info.dli_fname);
    out_str(o, ", \"offset\": ");
    out_u64(o, addr - (uintptr_t)info.dli_fbase);
    out_str(o, ", \"symbol\": ");
    if (info.dli_sname)
        out_json_str(o, info.dli_sname);
    else
        out_str(o, "null");
    out_str(o, "}");
}

void reads_report_json(struct out *o)
{
    out_str(o, ",\n  \"reads\": ");
    if (!config()->track_reads) {
        out_str(o, "null");
        return;
    }
    int s = atomic_load(&rd.state);
    out_str(o, "{\"tracked\": ");
    out_str(o, s == ST_TRACKING || s == ST_UNTRIED || s == ST_OPENING ? "true" : "false");
    out_str(o, ", \"state\": \"");
    out_str(o, s == ST_TRACKING ? "tracking" : s == ST_UNTRIED || s == ST_OPENING ? "no block tracked"
               : s == ST_UNAVAILABLE ? "unavailable" : "stopped");
    out_str(o, "\", \"reason\": ");
    if (rd.reason)
        out_json_str(o, rd.reason);
    else
        out_str(o, "null");
    lock();
    out_str(o, ", \"blocks\": ");
    out_u64(o, rd.blocks);
    out_str(o, ", \"untracked_blocks\": ");
    out_u64(o, rd.untracked);
    out_str(o, ", \"first_touches\": ");
    out_u64(o, stat_get(ST_reads_first_touches));
    out_str(o, ", \"reads_before_write\": ");
    out_u64(o, stat_get(ST_reads_before_write));
    out_str(o, ", \"dropped\": ");
    out_u64(o, stat_get(ST_reads_dropped));
    out_str(o, ", \"contexts\": ");
    out_u64(o, context_count());
    out_str(o, ", \"contexts_dropped\": ");
    out_u64(o, context_dropped());
    out_str(o, ",\n    \"findings\": [");
    /* Copied out first: dladdr takes the loader's lock, never under ours. */
    size_t n = rd.nfindings;
    unlock();
    for (size_t i = 0; i < n; i++) {
        lock();
        struct finding f = rd.findings[i];
        unlock();
        out_str(o, i ? ",\n      " : "\n      ");
        out_str(o, "{\"count\": ");
        out_u64(o, f.count);
        out_str(o, ", \"syscall\": ");
        if (f.syscall >= 0)
            out_u64(o, (uint64_t)f.syscall);
        else
            out_str(o, "null");
        out_str(o, ", \"unknown_reader\": ");
        out_str(o, f.syscall == -2 ? "true" : "false");
        out_str(o, ", \"tid\": ");
        out_u64(o, (uint64_t)f.tid);
        out_str(o, ", \"block_address\": ");
        out_u64(o, f.block);
        out_str(o, ", \"block_size\": ");
        out_u64(o, f.block_size);
        out_str(o, ", \"page\": ");
        out_u64(o, f.page);
        out_str(o, ", \"context\": ");
        const char *name = context_name(f.context);
        if (name)
            out_json_str(o, name);
        else
            out_str(o, "null");
        out_str(o, ",\n       \"read\": ");
        place_json(o, f.pc, false);
        out_str(o, ",\n       \"alloc\": ");
        place_json(o, f.site, true);
        /* Candidate callers of the reading function: words of its stack
         * that dladdr places in a module (return addresses, or data). */
        out_str(o, ",\n       \"callers\": [");
        unsigned shown = 0;
        for (int k = 0; k < STACK_WORDS; k++) {
            Dl_info info;
            if (f.stack[k] < 4096 || !os_dladdr((const void *)(f.stack[k] - 1), &info) ||
                !info.dli_fname)
                continue;
            out_str(o, shown++ ? ", " : "");
            place_json(o, f.stack[k], true);
        }
        out_str(o, "]");
        out_str(o, "}");
    }
    out_str(o, n ? "\n    ]}" : "]}");
}
