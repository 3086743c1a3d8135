/* libc-diag.h: refmalloc's stand-in for glibc's internal <libc-diag.h>:
 * push, pop and silence GCC warnings around code that provokes them on
 * purpose (malloc(-1) and the like). */
#ifndef RM_LIBC_DIAG_H
#define RM_LIBC_DIAG_H

#define RM_DIAG_PRAGMA(x) _Pragma(#x)
#define DIAG_PUSH_NEEDS_COMMENT RM_DIAG_PRAGMA(GCC diagnostic push)
#define DIAG_POP_NEEDS_COMMENT RM_DIAG_PRAGMA(GCC diagnostic pop)
/* VERSION is the GCC version that first warned; any GCC here is newer. */
#define DIAG_IGNORE_NEEDS_COMMENT(version, option) RM_DIAG_PRAGMA(GCC diagnostic ignored option)
#define DIAG_IGNORE_Os_NEEDS_COMMENT(version, option) DIAG_IGNORE_NEEDS_COMMENT(version, option)
#define DIAG_PUSH_NEEDS_COMMENT_CLANG
#define DIAG_POP_NEEDS_COMMENT_CLANG
#define DIAG_IGNORE_NEEDS_COMMENT_CLANG(version, option)

#endif
