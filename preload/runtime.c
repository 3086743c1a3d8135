#include "runtime.h"

#include <pthread.h>

#include "first.h"
#include "next.h"
#include "os.h"
#include "refmalloc_internal.h"
#include "sites.h"

_Atomic int rm_runtime_state = RUNTIME_COLD;

/* Set while this thread runs start-up: its own malloc calls must not wait
 * for start-up to finish. */
static __thread bool starting_here;

/* Around fork: hold every lock of the library so that the child starts
 * with none held by a thread that does not exist there, in glibc's order:
 * the stdio list lock first, then the allocator's (glibc bug 19431): the
 * call sites' (a thread inside fopen holds the list lock and may wait in
 * malloc for it), then the core's. The sites' and the core's locks are never
 * held together. A process that never made a thread takes none, as glibc's
 * fork does: no other thread can hold them, and a fork from a signal
 * handler that interrupted this very fork (fork is async-signal-safe) must
 * not wait for a lock its own thread holds. Whether threads exist never
 * changes back, so prepare's answer holds for the parent and child handlers
 * too. */
static bool fork_locks_held;

static void fork_prepare(void)
{
    fork_locks_held = !os_single_threaded();
    if (fork_locks_held) {
        os_stdio_lock();
        sites_fork_prepare();
    }
    rm_core_fork_prepare(fork_locks_held);
}

static void fork_parent(void)
{
    rm_core_fork_parent(fork_locks_held);
    if (fork_locks_held) {
        sites_fork_parent();
        os_stdio_unlock();
    }
}

static void fork_child(void)
{
    rm_core_fork_child();
    sites_fork_child();
    if (fork_locks_held)
        os_stdio_reset();
}

bool runtime_start(void)
{
    int expected = RUNTIME_COLD;
    if (atomic_compare_exchange_strong(&rm_runtime_state, &expected, RUNTIME_STARTING)) {
        starting_here = true;
        rm_core_init();
        sites_init();
        if (!next_init() || !first_detect())
            os_abort();
        /* glibc's pthread_atfork may allocate: next is resolved by now. */
        atomic_store_explicit(&rm_runtime_state, RUNTIME_READY, memory_order_release);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        starting_here = false;
        return true;
    }
    if (starting_here)
        return false;
    while (atomic_load_explicit(&rm_runtime_state, memory_order_acquire) != RUNTIME_READY)
        os_yield();
    return true;
}

__attribute__((constructor)) static void runtime_constructor(void)
{
    runtime_start();
}

__attribute__((destructor)) static void runtime_destructor(void)
{
    rm_core_exit();
    sites_write_log();
}
