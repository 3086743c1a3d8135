#include "runtime.h"

#include <pthread.h>

#include "first.h"
#include "next.h"
#include "os.h"
#include "refmalloc_internal.h"

_Atomic int rm_runtime_state = RUNTIME_COLD;

/* Set while this thread runs start-up: its own malloc calls must not wait
 * for start-up to finish. */
static __thread bool starting_here;

bool runtime_start(void)
{
    int expected = RUNTIME_COLD;
    if (atomic_compare_exchange_strong(&rm_runtime_state, &expected, RUNTIME_STARTING)) {
        starting_here = true;
        rm_core_init();
        if (!next_init() || !first_detect())
            os_abort();
        rm_core_start();
        /* glibc's pthread_atfork may allocate: next is resolved by now. */
        atomic_store_explicit(&rm_runtime_state, RUNTIME_READY, memory_order_release);
        pthread_atfork(rm_core_fork_prepare, rm_core_fork_parent, rm_core_fork_child);
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
}
