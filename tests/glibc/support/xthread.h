/* xthread.h: refmalloc's stand-in for glibc's <support/xthread.h>: pthread
 * calls that exit 1 with a message when they fail. */
#ifndef RM_SUPPORT_XTHREAD_H
#define RM_SUPPORT_XTHREAD_H

#include <pthread.h>
#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

pthread_t xpthread_create(pthread_attr_t *attr, void *(*fn)(void *), void *arg);
void *xpthread_join(pthread_t thread);
void xpthread_detach(pthread_t thread);
void xpthread_cancel(pthread_t thread);
void xpthread_kill(pthread_t thread, int sig);
void xpthread_once(pthread_once_t *once, void (*fn)(void));
void xpthread_attr_init(pthread_attr_t *attr);
void xpthread_attr_destroy(pthread_attr_t *attr);
void xpthread_attr_setstacksize(pthread_attr_t *attr, size_t size);
void xpthread_attr_setdetachstate(pthread_attr_t *attr, int state);
void xpthread_barrier_init(pthread_barrier_t *b, pthread_barrierattr_t *attr, unsigned count);
void xpthread_barrier_destroy(pthread_barrier_t *b);
/* Returns 1 in the one thread pthread_barrier_wait calls "serial", else 0. */
int xpthread_barrier_wait(pthread_barrier_t *b);
void xpthread_barrierattr_init(pthread_barrierattr_t *attr);
void xpthread_barrierattr_destroy(pthread_barrierattr_t *attr);
void xpthread_barrierattr_setpshared(pthread_barrierattr_t *attr, int pshared);
void xpthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr);
void xpthread_mutex_destroy(pthread_mutex_t *m);
void xpthread_mutex_lock(pthread_mutex_t *m);
void xpthread_mutex_unlock(pthread_mutex_t *m);
void xpthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
void xpthread_cond_signal(pthread_cond_t *c);
void xpthread_cond_broadcast(pthread_cond_t *c);
void xpthread_sigmask(int how, const sigset_t *set, sigset_t *old);

#ifdef __cplusplus
}
#endif
#endif
