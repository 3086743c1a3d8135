#include "descriptors.h"

#include <stdatomic.h>
#include <stdbool.h>

/* The span of numbers ever ours, not each number: our numbers sit close
 * together (high, above the program's usual ones: see os_memfd_create), so
 * the span is narrow, and a change outside it cannot concern us. The span
 * only widens: a number we gave up stays in it, which at worst costs one
 * needless identity check. Atomics, because close() in any thread reads it
 * while another thread, under the large-block lock, adds a number. */
static _Atomic unsigned owned_lo = ~0u, owned_hi = 0;
static _Atomic uint64_t generation = 1;
/* Changes that may concern us begun and not yet ended: while one is under
 * way, an identity checked a moment ago may be stale by the next call. */
static _Atomic unsigned in_flight;

void descriptors_own(int fd)
{
    if (fd < 0)
        return;
    unsigned n = (unsigned)fd;
    unsigned lo = atomic_load(&owned_lo), hi = atomic_load(&owned_hi);
    while (n < lo && !atomic_compare_exchange_weak(&owned_lo, &lo, n)) {
    }
    while (n > hi && !atomic_compare_exchange_weak(&owned_hi, &hi, n)) {
    }
}

bool descriptors_changing(unsigned first, unsigned last)
{
    if (first > atomic_load(&owned_hi) || last < atomic_load(&owned_lo))
        return false;
    atomic_fetch_add(&in_flight, 1);
    atomic_fetch_add(&generation, 1);
    return true;
}

void descriptors_changed(bool concerned)
{
    if (!concerned)
        return;
    /* Moved again once done: a check made while it was under way (and
     * recorded with the first move) is not trusted afterwards. */
    atomic_fetch_add(&generation, 1);
    atomic_fetch_sub(&in_flight, 1);
}

uint64_t descriptors_generation(void)
{
    return atomic_load(&generation);
}

bool descriptors_settled(uint64_t seen)
{
    return atomic_load(&in_flight) == 0 && atomic_load(&generation) == seen;
}
