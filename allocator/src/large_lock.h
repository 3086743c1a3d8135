/* large_lock: the one lock of the large-block manager. large.c and resize.c
 * take it in their public functions; every function of mem, cache, inspect,
 * region, blocks and refpage runs under it. In a debug build (RM_DEBUG) it
 * knows its owner: taking it twice, releasing it from another thread, or a
 * layer running without it aborts with a message. */
#ifndef RM_LARGE_LOCK_H
#define RM_LARGE_LOCK_H

void large_lock(void);
void large_unlock(void);

#ifdef RM_DEBUG
/* Abort unless the calling thread holds the lock. */
void large_lock_assert_held(void);
#else
static inline void large_lock_assert_held(void)
{
}
#endif

/* In a forked child: the lock, held by the forking thread at fork, is new
 * and free again. */
void large_lock_reset(void);

#endif
