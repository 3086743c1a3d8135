/* xsignal.h: refmalloc's stand-in for glibc's <support/xsignal.h>. */
#ifndef RM_SUPPORT_XSIGNAL_H
#define RM_SUPPORT_XSIGNAL_H

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

sighandler_t xsignal(int sig, sighandler_t handler);
void xsigaction(int sig, const struct sigaction *act, struct sigaction *old);
void xraise(int sig);
void xsigemptyset(sigset_t *set);
void xsigaddset(sigset_t *set, int sig);
void xsigprocmask(int how, const sigset_t *set, sigset_t *old);
void xpthread_sigmask(int how, const sigset_t *set, sigset_t *old);

#ifdef __cplusplus
}
#endif
#endif
