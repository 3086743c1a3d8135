/* refpage: reference pages. Per pattern byte (and, with mte=1, per memory
 * tag), a sealed memfd holding one chunk of pattern pages; a block is covered by MAP_PRIVATE|MAP_FIXED
 * mappings of that chunk, so reads share the pattern pages and the first
 * write to a page copies it. Callers hold the large-block lock. */
#ifndef RM_REFPAGE_H
#define RM_REFPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Chunk size for mapping `len` more bytes when `live` bytes are already
 * backed by reference pages: it grows with the live total, so that many
 * gigabytes need only thousands of mappings. */
size_t refpage_chunk_for(size_t live, size_t len);

/* How many mappings refpage_map(len) creates with that chunk at most (the
 * kernel merges them with neighbours mapping the same file: often fewer). */
size_t refpage_mappings_for(size_t len, size_t chunk);

enum refpage_result {
    REFPAGE_OK,
    REFPAGE_NO_MEMFD,     /* memfd could not be created or filled */
    REFPAGE_MAP_FAILED,   /* a chunk mapping failed; [addr, len) is in an unknown state */
};

/* Cover [addr, addr+len) with pattern chunks of the given size; with a tag
 * (1-15, mte on) the chunks are mapped PROT_MTE and every granule carries it.
 * span (>= len): the block's length once mapped; more than len when the
 * block grows (the file is then sized by the chunk, not by len). */
enum refpage_result refpage_map(uintptr_t addr, size_t len, size_t span, unsigned char pattern,
                                unsigned tag, size_t chunk);

/* Bytes of pattern memory held by the current memfds. */
size_t refpage_pattern_bytes(void);

/* A seccomp filter is about to be installed, which may kill the process at
 * any system call glibc's malloc does not make: make the files of the n
 * patterns now (at least `chunk` long, unless one exists), then make no
 * file and check no identity any more. A file whose number the program
 * touches afterwards is given up, and blocks of its pattern are made another
 * way (untagged files only: mte=1 blocks are made another way too). False
 * if a file could not be made. */
bool refpage_before_sandbox(const unsigned char *patterns, size_t n, size_t chunk);

#endif
