/* export: the mark of the functions refmalloc puts in the global scope (the
 * library is built with hidden visibility: nothing else is seen). */
#ifndef RM_EXPORT_H
#define RM_EXPORT_H

#define RM_EXPORT __attribute__((visibility("default")))

#endif
