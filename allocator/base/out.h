/* out: text output without malloc, for diagnostics and the JSON report.
 * A fixed buffer that is flushed to a descriptor when full. */
#ifndef RM_OUT_H
#define RM_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct out {
    int fd;
    bool failed;
    size_t len;
    char buf[2048];
};

void out_init(struct out *o, int fd);
void out_str(struct out *o, const char *s);
void out_mem(struct out *o, const char *s, size_t n);
void out_u64(struct out *o, uint64_t v);
void out_hex(struct out *o, uint64_t v);        /* 0x... */
/* Decimal digits of v in buf, NUL terminated; returns their start. */
const char *out_format_u64(char buf[24], uint64_t v);
/* A JSON string's contents from bytes given in pieces (a sequence may span
 * two), without the quotes: '"', '\\' and control characters escaped, valid
 * UTF-8 as it is, and every other byte B as the lone surrogate \udcBB
 * (Python's surrogateescape: os.fsencode gives the bytes back). Start with
 * a zeroed struct out_utf8; out_json_bytes_end after the last piece. */
struct out_utf8 {
    unsigned char seq[4];
    unsigned have, need;
};
void out_json_bytes(struct out *o, struct out_utf8 *u, const char *s, size_t n);
void out_json_bytes_end(struct out *o, struct out_utf8 *u);
void out_json_str(struct out *o, const char *s); /* quoted, escaped as above */
bool out_flush(struct out *o);

/* Expand "%p" in a path to the pid and "%%" to "%". False if too long. */
bool out_expand_path(const char *in, char *out, size_t cap);

/* One diagnostic line on stderr: "refmalloc: " + the pieces + "\n",
 * written with a single write so lines from threads do not interleave. */
void out_diag(const char *a, const char *b, const char *c);
/* "<what> not written to <path>: <why>", why from errno err of
 * os_create_new: exists, a symbolic link, or "cannot create it: <reason>". */
void out_diag_not_written(const char *what, const char *path, int err);
/* The same from a NULL-terminated list of pieces. */
void out_diag_parts(const char *const parts[]);
/* A short reason for an errno value ("permission denied"), without
 * strerror (which may allocate or take locale locks): the ones a file open
 * is likely to meet, else "errno N" written into buf. */
const char *out_errno_text(int err, char buf[24]);
void out_diag_addr(const char *what, const void *addr, const char *why);

#endif
