#include "descriptors.h"

#include <stdatomic.h>

/* The span of numbers ever ours, not each number: our numbers sit close
 * together (high, above the program's usual ones: see os_memfd_create), so
 * the span is narrow, and a change outside it cannot concern us. The span
 * only widens: a number we gave up stays in it, which at worst costs one
 * needless identity check. Atomics, because close() in any thread reads it
 * while another thread, under the large-block lock, adds a number. */
static _Atomic unsigned owned_lo = ~0u, owned_hi = 0;
static _Atomic uint64_t generation = 1;

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

void descriptors_changing(unsigned first, unsigned last)
{
    if (first <= atomic_load(&owned_hi) && last >= atomic_load(&owned_lo))
        atomic_fetch_add(&generation, 1);
}

uint64_t descriptors_generation(void)
{
    return atomic_load(&generation);
}
