/* descriptors: the file numbers refmalloc holds (the pattern memfds, the
 * pagemap) and the program's changes to them. A program may close or
 * replace numbers it does not know to be ours (closefrom, a loop over
 * /proc/self/fd, dup2 onto a number): preload/fds.c reports each change
 * through libc before it takes effect and when it has, and a holder checks its number again
 * only when the generation moved, so that glibc's malloc makes no system
 * call per allocation that refmalloc makes. A change made with a raw system
 * call goes unseen. */
#ifndef RM_DESCRIPTORS_H
#define RM_DESCRIPTORS_H

#include <stdbool.h>
#include <stdint.h>

/* fd is now one of ours: changes to it move the generation. */
void descriptors_own(int fd);

/* The program is about to close or replace the numbers [first, last]: the
 * generation moves if any of ours may be among them, and the change counts
 * as under way until descriptors_changed is called with what this returned,
 * right after the call that made it. */
bool descriptors_changing(unsigned first, unsigned last);
void descriptors_changed(bool concerned);

/* Moves at every change that may have touched one of our numbers; never 0. */
uint64_t descriptors_generation(void);

/* No change since generation `seen` was read and none under way: a number
 * checked then is still ours. (Another thread's dup2 between a check and an
 * mmap is seen here: its start moved the generation or it is under way.) */
bool descriptors_settled(uint64_t seen);

#endif
