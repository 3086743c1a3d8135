/* support.h: refmalloc's stand-in for glibc's <support/support.h> (the part
 * glibc's malloc tests use): allocation that cannot fail, shared memory for
 * forked helpers, async-signal-safe messages. */
#ifndef RM_SUPPORT_SUPPORT_H
#define RM_SUPPORT_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write MESSAGE to standard output with write(2) (usable in signal handlers). */
void write_message(const char *message);
/* Send standard error to /dev/null (for tests that expect an abort message). */
void ignore_stderr(void);
/* Memory shared with forked children (MAP_SHARED), and its release. */
void *support_shared_allocate(size_t size);
void support_shared_free(void *p);
/* Exit 77 unless /proc is mounted. */
void support_need_proc(const char *reason);

/* The x* functions exit 1 with a message instead of failing. */
void *xmalloc(size_t n) __attribute__((malloc, alloc_size(1)));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, alloc_size(1, 2)));
void *xrealloc(void *p, size_t n) __attribute__((alloc_size(2)));
void *xposix_memalign(size_t alignment, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2), malloc));
/* An ENOMEM exit from the x* allocators. */
void oom_error(const char *function, size_t size) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif
#endif
