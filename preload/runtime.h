/* runtime: start-up of the whole library, exactly once, on the first call
 * into it from any thread (or from the constructor, whichever is first). */
#ifndef RM_RUNTIME_H
#define RM_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>

enum runtime_state { RUNTIME_COLD, RUNTIME_STARTING, RUNTIME_READY };

extern _Atomic int rm_runtime_state;

/* Start if needed. False only for a call made by start-up itself (dlsym
 * calling malloc): the caller then serves it from the bootstrap buffer. */
bool runtime_start(void);

static inline bool runtime_ready(void)
{
    return atomic_load_explicit(&rm_runtime_state, memory_order_acquire) == RUNTIME_READY ||
           runtime_start();
}

#endif
