/* debug: RM_ASSERT checks an invariant in a debug build (RM_DEBUG, set by
 * the CMake option REFMALLOC_SANITIZE) and costs nothing otherwise: the
 * condition is then never evaluated. A failed check prints the condition
 * and its place, then aborts. */
#ifndef RM_DEBUG_H
#define RM_DEBUG_H

#ifdef RM_DEBUG
_Noreturn void debug_fail(const char *file, int line, const char *cond);
#define RM_ASSERT(cond) ((cond) ? (void)0 : debug_fail(__FILE__, __LINE__, #cond))
#else
#define RM_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif
