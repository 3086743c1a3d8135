/* xunistd.h: refmalloc's stand-in for glibc's <support/xunistd.h>: system
 * calls that exit 1 with a message instead of returning an error. */
#ifndef RM_SUPPORT_XUNISTD_H
#define RM_SUPPORT_XUNISTD_H

#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

pid_t xfork(void);
pid_t xwaitpid(pid_t pid, int *status, int flags);
int xopen(const char *path, int flags, mode_t mode);
void xclose(int fd);
void xpipe(int fds[2]);
void xdup2(int from, int to);
void xwrite(int fd, const void *buf, size_t n);
long xsysconf(int name);
void *xmmap(void *addr, size_t length, int prot, int flags, int fd);
void xmunmap(void *addr, size_t length);
void xmprotect(void *addr, size_t length, int prot);
void xunlink(const char *path);

#ifdef __cplusplus
}
#endif
#endif
