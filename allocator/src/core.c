#include "refmalloc_internal.h"

#include <stdbool.h>

#include "config.h"
#include "large.h"
#include "mte.h"
#include "os.h"
#include "reads.h"
#include "report.h"
#include "sites.h"
#include "stats.h"

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

void rm_core_init(void)
{
    os_page_size();
    config_init();
    mte_start();
    sites_init();
}

void rm_core_start(void)
{
    large_start();
}

void rm_core_fork_prepare(void)
{
    forking_parent = config()->report[0] ? os_getpid() : 0;
    fork_locks_held = !os_single_threaded();
    if (!fork_locks_held)
        return;
    os_stdio_lock();
    sites_fork_prepare();
    large_fork_prepare();
    reads_fork_prepare();
}

void rm_core_fork_parent(void)
{
    if (!fork_locks_held)
        return;
    reads_fork_parent();
    large_fork_parent();
    sites_fork_parent();
    os_stdio_unlock();
}

void rm_core_fork_child(void)
{
    /* Fresh locks whether held or not: no thread of the parent is here. */
    large_fork_child();
    sites_fork_child();
    if (fork_locks_held)
        os_stdio_reset();
    stats_reset_events();
    report_note_fork(forking_parent);
    reads_fork_child();   /* last: it may start a thread */
}

void rm_core_exit(void)
{
    report_at_exit();
    sites_write_log();
}
