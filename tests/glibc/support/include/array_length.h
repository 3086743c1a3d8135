/* array_length.h: refmalloc's stand-in for glibc's internal <array_length.h>. */
#ifndef RM_ARRAY_LENGTH_H
#define RM_ARRAY_LENGTH_H

/* Elements of an array (not a pointer: the static assertion refuses one). */
#define array_length(a)                                                                    \
    (sizeof(a) / sizeof((a)[0]) +                                                          \
     0 * sizeof(struct {                                                                   \
         _Static_assert(!__builtin_types_compatible_p(__typeof__(a), __typeof__(&(a)[0])), \
                        "array_length of a pointer");                                      \
         int rm_dummy;                                                                     \
     }))
#define array_end(a) (&(a)[array_length(a)])

#endif
