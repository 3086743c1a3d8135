#include "debug.h"

#ifdef RM_DEBUG
#include "os.h"
#include "out.h"

void debug_fail(const char *file, int line, const char *cond)
{
    struct out o;
    out_init(&o, 2);
    out_str(&o, "refmalloc: invariant broken at ");
    out_str(&o, file);
    out_str(&o, ":");
    out_u64(&o, (uint64_t)line);
    out_str(&o, ": ");
    out_str(&o, cond);
    out_str(&o, "\n");
    out_flush(&o);
    os_abort();
}
#else
/* ISO C wants something in every translation unit. */
typedef int debug_unused;
#endif
