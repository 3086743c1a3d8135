/* fds: the calls by which a program closes or replaces descriptors it may
 * not know to be refmalloc's (closefrom, loops over /proc/self/fd, dup2 onto
 * a number). Each is reported before it takes effect and once it has, so that refmalloc's
 * own descriptors are checked again only after a change that may touch them
 * (allocator/base/descriptors.h). */
#include <stdbool.h>
#include <unistd.h>

#include "export.h"
#include "next.h"
#include "descriptors.h"

typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*close_range_fn)(unsigned, unsigned, int);
typedef void (*closefrom_fn)(int);

static void *next_close, *next_dup2, *next_dup3, *next_close_range, *next_closefrom;

RM_EXPORT int close(int fd)
{
    bool ours = descriptors_changing((unsigned)fd, (unsigned)fd);
    int rc = ((close_fn)next_libc_function(&next_close, "close"))(fd);
    descriptors_changed(ours);
    return rc;
}

RM_EXPORT int dup2(int from, int to)
{
    bool ours = descriptors_changing((unsigned)to, (unsigned)to);
    int rc = ((dup2_fn)next_libc_function(&next_dup2, "dup2"))(from, to);
    descriptors_changed(ours);
    return rc;
}

RM_EXPORT int dup3(int from, int to, int flags)
{
    bool ours = descriptors_changing((unsigned)to, (unsigned)to);
    int rc = ((dup3_fn)next_libc_function(&next_dup3, "dup3"))(from, to, flags);
    descriptors_changed(ours);
    return rc;
}

RM_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    bool ours = descriptors_changing(first, last);
    int rc = ((close_range_fn)next_libc_function(&next_close_range, "close_range"))(first, last,
                                                                                     flags);
    descriptors_changed(ours);
    return rc;
}

RM_EXPORT void closefrom(int lowfd)
{
    bool ours = descriptors_changing((unsigned)lowfd, ~0u);
    ((closefrom_fn)next_libc_function(&next_closefrom, "closefrom"))(lowfd);
    descriptors_changed(ours);
}
