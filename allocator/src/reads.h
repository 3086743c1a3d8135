/* reads: read-before-write tracking of large reference-page blocks
 * (track_reads=1). Each block's reference-page mappings are registered with
 * a userfaultfd in minor-fault mode: the first touch of each page raises an
 * event saying read or write, served by a handler thread with
 * UFFDIO_CONTINUE. A page whose first touch is a read was never written:
 * the reading instruction (or system call), the block and its allocation
 * site are recorded, with the program's context then (context.h: the
 * test running), deduplicated by (site, reader, context), in fixed tables.
 *
 * The handler thread takes no lock of the program's or the allocator's: a
 * thread may fault inside printf or inside the allocator with the large
 * lock held (a memset of a block's tail). It uses only this module's tables
 * (their own short spin lock, never held by code that touches a tracked
 * block) and system calls. Without userfaultfd one stderr line says why and
 * the run goes on untracked. */
#ifndef RM_READS_H
#define RM_READS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "out.h"

/* track_reads is set and tracking has not been given up. */
bool reads_on(void);

/* A large block is about to be made: open the descriptor and start the
 * handler thread the first time. Called without the large lock, since
 * pthread_create allocates (a large allocation of its own would wait for a
 * lock its thread holds). */
void reads_prepare(void);

/* [at, at+len) of the block starting at `block` now maps fresh pattern
 * pages: register it. at == block begins a new life of the block (its site
 * is forgotten until reads_site); at > block extends it (realloc's tail). */
void reads_arm(uintptr_t block, uintptr_t at, size_t len);
/* The block at `from` moved to `to`: its site goes with it, and the first
 * `len` bytes at `to` are registered again (mremap drops the registration;
 * 0 when the new block registered itself). */
void reads_moved(uintptr_t from, uintptr_t to, size_t len);
/* The block's range is given back. */
void reads_release(uintptr_t block);
/* The program got the block at p of `size` bytes from return address site. */
void reads_site(const void *p, size_t size, const void *site);

/* Around the allocator's own copies of whole blocks (realloc moving one to
 * the next allocator or onto fresh memory): the calling thread's reads are
 * the allocator's, not the program's. */
void reads_quiet_begin(void);
void reads_quiet_end(void);

/* A seccomp filter may be installed: stop tracking (the handler's ioctl
 * could be refused, which would leave a faulting thread waiting forever). */
void reads_before_sandbox(void);

void reads_fork_prepare(void);
void reads_fork_parent(void);
/* In a child: the ranges are no longer registered (the parent's descriptor
 * serves the parent's memory): open a descriptor and register them again. */
void reads_fork_child(void);

/* The "reads" member of the JSON report (after a comma). */
void reads_report_json(struct out *o);

#endif
