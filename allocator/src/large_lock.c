#include "large_lock.h"

#include <pthread.h>
#include <stdint.h>

#include "debug.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

#ifdef RM_DEBUG
#include <stdatomic.h>

/* The holder's pthread_self(), 0 when free. */
static _Atomic uintptr_t owner;

static uintptr_t self(void)
{
    return (uintptr_t)pthread_self();
}

void large_lock_assert_held(void)
{
    RM_ASSERT(atomic_load(&owner) == self());
}
#endif

void large_lock(void)
{
#ifdef RM_DEBUG
    RM_ASSERT(atomic_load(&owner) != self());   /* not recursive */
#endif
    pthread_mutex_lock(&lock);
#ifdef RM_DEBUG
    atomic_store(&owner, self());
#endif
}

void large_unlock(void)
{
#ifdef RM_DEBUG
    RM_ASSERT(atomic_load(&owner) == self());
    atomic_store(&owner, 0);
#endif
    pthread_mutex_unlock(&lock);
}

void large_lock_reset(void)
{
    pthread_mutex_init(&lock, NULL);
#ifdef RM_DEBUG
    atomic_store(&owner, 0);
#endif
}
