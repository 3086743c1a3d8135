#include "runtime.h"

#include <pthread.h>
#include <sched.h>

#include "config.h"
#include "first.h"
#include "large.h"
#include "mte.h"
#include "next.h"
#include "os.h"
#include "report.h"
#include "sites.h"
#include "stats.h"

_Atomic int rm_runtime_state = RUNTIME_COLD;

/* Set while this thread runs start-up: its own malloc calls must not wait
 * for start-up to finish. */
static __thread bool starting_here;

/* Around fork: hold every lock of the library so that the child starts
 * with none held by a thread that does not exist there, in glibc's order:
 * the stdio list lock first, then the allocator's (glibc bug 19431). A
 * process that never made a thread takes none, as glibc's fork does: no
 * other thread can hold them, and a fork from a signal handler that
 * interrupted this very fork (fork is async-signal-safe) must not wait for
 * a lock its own thread holds. Whether threads exist never changes back, so
 * prepare's answer holds for the parent and child handlers too. */
static bool fork_locks_held;

/* The parent's pid, read before fork for the child's report; only with a
 * report to write: glibc's fork makes no getpid, and a seccomp filter
 * written for it may kill the process at one (preload/sandbox.c). */
static long forking_parent;

static void fork_prepare(void)
{
    forking_parent = config()->report[0] ? os_getpid() : 0;
    fork_locks_held = !os_single_threaded();
    if (!fork_locks_held)
        return;
    os_stdio_lock();
    sites_fork_prepare();
    large_fork_prepare();
}

static void fork_parent(void)
{
    if (!fork_locks_held)
        return;
    large_fork_parent();
    sites_fork_parent();
    os_stdio_unlock();
}

static void fork_child(void)
{
    /* Fresh locks whether held or not: no thread of the parent is here. */
    large_fork_child();
    sites_fork_child();
    if (fork_locks_held)
        os_stdio_reset();
    stats_reset_events();
    report_note_fork(forking_parent);
}

bool runtime_start(void)
{
    int expected = RUNTIME_COLD;
    if (atomic_compare_exchange_strong(&rm_runtime_state, &expected, RUNTIME_STARTING)) {
        starting_here = true;
        os_page_size();
        config_init();
        mte_start();
        sites_init();
        if (!next_init() || !first_detect())
            os_abort();
        large_start();
        /* glibc's pthread_atfork may allocate: next is resolved by now. */
        atomic_store_explicit(&rm_runtime_state, RUNTIME_READY, memory_order_release);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        starting_here = false;
        return true;
    }
    if (starting_here)
        return false;
    while (atomic_load_explicit(&rm_runtime_state, memory_order_acquire) != RUNTIME_READY)
        sched_yield();
    return true;
}

__attribute__((constructor)) static void runtime_constructor(void)
{
    runtime_start();
}

__attribute__((destructor)) static void runtime_destructor(void)
{
    report_at_exit();
    sites_write_log();
}
