/* temp_file.h: refmalloc's stand-in for glibc's <support/temp_file.h>:
 * temporary files removed when the test driver ends. */
#ifndef RM_SUPPORT_TEMP_FILE_H
#define RM_SUPPORT_TEMP_FILE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Create a file named after BASE in the test directory ($TMPDIR or /tmp),
 * open for reading and writing; its malloc'ed name goes to *NAME unless
 * NAME is NULL. Returns the descriptor, or -1 with errno set. */
int create_temp_file(const char *base, char **name);
/* Remove NAME when the driver ends. */
void add_temp_file(const char *name);

#ifdef __cplusplus
}
#endif
#endif
