/* report: the JSON report, written without malloc. */
#ifndef RM_REPORT_H
#define RM_REPORT_H

/* Write the report to path ("%p" -> pid), creating it new. 0 or -1/errno. */
int report_write(const char *path);

/* In a forked child: the report says which process it was forked from
 * (its counters of events start at the fork). */
void report_note_fork(long parent);

/* At exit: write the configured report, if any, saying so on failure. */
void report_at_exit(void);

#endif
