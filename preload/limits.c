/* limits: setrlimit and prlimit as the program calls them. refmalloc's
 * reserved range counts in the address-space size although it holds
 * nothing until blocks are mapped: when the program lowers RLIMIT_AS, the
 * unused part of the range is given back first, so that the program keeps
 * the room for its own memory that it has under plain glibc, and the new
 * limit is then read once for the large-block manager. */
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include "export.h"
#include "next.h"
#include "os.h"
#include "refmalloc_internal.h"
#include "runtime.h"

typedef int (*setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);
typedef int (*prlimit_fn)(pid_t, __rlimit_resource_t, const struct rlimit *, struct rlimit *);

static void *next_setrlimit, *next_prlimit;

static bool self(pid_t pid)
{
    return pid == 0 || pid == (pid_t)os_getpid();
}

static void before(__rlimit_resource_t resource, const struct rlimit *r)
{
    if (resource == RLIMIT_AS && r && runtime_ready())
        large_address_limit_lowering(r->rlim_cur == RLIM_INFINITY ? SIZE_MAX
                                                                  : (size_t)r->rlim_cur);
}

static void after(__rlimit_resource_t resource)
{
    if (resource == RLIMIT_AS && runtime_ready()) {
        int saved = errno;
        large_address_limit_changed();
        errno = saved;
    }
}

RM_EXPORT int setrlimit(__rlimit_resource_t resource, const struct rlimit *r)
{
    before(resource, r);
    int rc = ((setrlimit_fn)next_libc_function(&next_setrlimit, "setrlimit"))(resource, r);
    after(resource);
    return rc;
}

RM_EXPORT int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *r,
                      struct rlimit *old)
{
    if (self(pid))
        before(resource, r);
    int rc = ((prlimit_fn)next_libc_function(&next_prlimit, "prlimit"))(pid, resource, r, old);
    if (self(pid))
        after(resource);
    return rc;
}

/* On 64-bit glibc the 64 variants are the same functions under a second
 * name; a program built with _FILE_OFFSET_BITS=64 calls these. */
_Static_assert(sizeof(struct rlimit) == sizeof(struct rlimit64), "rlimit64 is rlimit");

RM_EXPORT int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *r)
{
    return setrlimit(resource, (const struct rlimit *)r);
}

RM_EXPORT int prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *r,
                        struct rlimit64 *old)
{
    return prlimit(pid, resource, (const struct rlimit *)r, (struct rlimit *)old);
}
