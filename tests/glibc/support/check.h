/* check.h: refmalloc's stand-in for glibc's <support/check.h>, written for
 * running glibc's malloc tests outside the glibc tree. Failures are counted
 * in a page shared with forked children (support.c), so a child's failure
 * fails the test as it does in glibc's test driver. */
#ifndef RM_SUPPORT_CHECK_H
#define RM_SUPPORT_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Record a failure, print it and evaluate to 1. */
#define FAIL(...) support_print_failure_impl(__FILE__, __LINE__, __VA_ARGS__)
/* Record a failure, print it and return 1 from the current function. */
#define FAIL_RET(...) return support_print_failure_impl(__FILE__, __LINE__, __VA_ARGS__)
/* Print and exit with STATUS (recorded as a failure unless 0 or 77). */
#define FAIL_EXIT(status, ...) support_exit_failure_impl(status, __FILE__, __LINE__, __VA_ARGS__)
#define FAIL_EXIT1(...) support_exit_failure_impl(1, __FILE__, __LINE__, __VA_ARGS__)
#define FAIL_UNSUPPORTED(...) support_exit_failure_impl(77, __FILE__, __LINE__, __VA_ARGS__)

/* Record a failure (and go on) when EXPR is false. */
#define TEST_VERIFY(expr)                                                                  \
    ({                                                                                     \
        if (!(expr))                                                                       \
            support_test_verify_impl(__FILE__, __LINE__, #expr);                           \
    })
/* Record a failure and exit 1 when EXPR is false. */
#define TEST_VERIFY_EXIT(expr)                                                             \
    ({                                                                                     \
        if (!(expr))                                                                       \
            support_test_verify_exit_impl(1, __FILE__, __LINE__, #expr);                   \
    })

/* Compare two integers of any integer types by value and sign (so that -1
 * and (unsigned) -1 differ), recording a failure that prints both. The
 * values are compared as long long, with their signs apart (x > 0 rather
 * than x < 0, which warns for an unsigned type). */
#define TEST_COMPARE(left, right)                                                          \
    ({                                                                                     \
        __typeof__(+(left)) rm_l_ = (left);                                                \
        __typeof__(+(right)) rm_r_ = (right);                                              \
        _Static_assert((__typeof__(+(left)))1.5 == 1, "TEST_COMPARE needs integers");      \
        _Static_assert((__typeof__(+(right)))1.5 == 1, "TEST_COMPARE needs integers");     \
        _Static_assert(sizeof rm_l_ <= sizeof(long long), "left wider than long long");   \
        _Static_assert(sizeof rm_r_ <= sizeof(long long), "right wider than long long");  \
        int rm_lpos_ = rm_l_ > 0, rm_rpos_ = rm_r_ > 0;                                    \
        if (rm_lpos_ != rm_rpos_ || (long long)rm_l_ != (long long)rm_r_)                  \
            support_test_compare_failure(__FILE__, __LINE__, #left, (long long)rm_l_,      \
                                         rm_lpos_, #right, (long long)rm_r_, rm_rpos_);    \
    })

/* Compare two strings (either may be NULL). */
#define TEST_COMPARE_STRING(left, right)                                                   \
    support_test_compare_string(__FILE__, __LINE__, #left, (left), #right, (right))

#define support_static_assert _Static_assert

int support_print_failure_impl(const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
void support_exit_failure_impl(int status, const char *file, int line, const char *format, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
void support_test_verify_impl(const char *file, int line, const char *expr);
void support_test_verify_exit_impl(int status, const char *file, int line, const char *expr)
    __attribute__((noreturn));
void support_test_compare_failure(const char *file, int line, const char *lexpr,
                                  long long lvalue, int lpositive, const char *rexpr,
                                  long long rvalue, int rpositive);
void support_test_compare_string(const char *file, int line, const char *lexpr,
                                 const char *left, const char *rexpr, const char *right);

/* The shared failure record. */
void support_record_failure(void);
void support_record_failure_reset(void);
int support_record_failure_is_failed(void);
void support_record_failure_barrier(void);
/* STATUS, or 1 when failures were recorded and STATUS is 0 or 77. */
int support_report_failure(int status);

#ifdef __cplusplus
}
#endif
#endif
