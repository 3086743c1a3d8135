#include "refmalloc_internal.h"

#include <stdbool.h>

#include "config.h"
#include "context.h"
#include "large.h"
#include "mte.h"
#include "os.h"
#include "reads.h"
#include "report.h"
#include "stats.h"

/* The parent's pid, read before fork for the child's report; only with a
 * report to write: glibc's fork makes no getpid, and a seccomp filter
 * written for it may kill the process at one (preload/sandbox.c). */
static long forking_parent;

void rm_core_init(void)
{
    os_page_size();
    config_init();
    mte_start();
}

void rm_core_fork_prepare(bool locked)
{
    forking_parent = config()->report[0] ? os_getpid() : 0;
    if (locked) {
        large_fork_prepare();
        reads_fork_prepare();
    }
}

void rm_core_fork_parent(bool locked)
{
    if (locked) {
        reads_fork_parent();
        large_fork_parent();
    }
}

void rm_core_fork_child(void)
{
    /* Fresh locks whether held or not: no thread of the parent is here. */
    large_fork_child();
    stats_reset_events();
    report_note_fork(forking_parent);
    context_fork_child();
    reads_fork_child();   /* last: it may start a thread */
}

void rm_core_exit(void)
{
    report_at_exit();
}
