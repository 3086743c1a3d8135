/* A minimal harness for the C unit tests: CHECK records a failure with its
 * line and goes on; unit_done() prints the count and gives the exit status.
 * Built by CMake (tests/unit/test_*.c -> unit_test_*, run by ctest and by
 * tests/test_unit_c.py), linked against allocator/ alone. */
#ifndef RM_UNIT_H
#define RM_UNIT_H

#include <stdio.h>

static int unit_failures, unit_checks;

#define CHECK(cond)                                                              \
    do {                                                                         \
        unit_checks++;                                                           \
        if (!(cond)) {                                                           \
            unit_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

static inline int unit_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

#endif
