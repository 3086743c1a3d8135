/* refmalloc_internal: the narrow entry the interposition layer (preload/)
 * uses to start, fork and finish the allocator core, instead of driving each
 * allocator module by hand. Not installed: internal to the library. */
#ifndef REFMALLOC_INTERNAL_H
#define REFMALLOC_INTERNAL_H

/* Start-up, first part: page size, options, memory tagging, call sites.
 * Runs before the next allocator is resolved. */
void rm_core_init(void);

/* Start-up, second part: the large-block manager, once the next allocator
 * is resolved. */
void rm_core_start(void);

/* pthread_atfork handlers: every lock of the library is held across fork in
 * glibc's order (the stdio list lock, then sites, then large), and none when
 * the process never made a thread. */
void rm_core_fork_prepare(void);
void rm_core_fork_parent(void);
void rm_core_fork_child(void);

/* At exit: the report and the call-site log. */
void rm_core_exit(void);

#endif
