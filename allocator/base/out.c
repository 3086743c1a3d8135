#include "out.h"

#include <errno.h>
#include <string.h>

#include "os.h"

void out_init(struct out *o, int fd)
{
    o->fd = fd;
    o->failed = false;
    o->len = 0;
}

bool out_flush(struct out *o)
{
    if (o->len > 0 && !o->failed && !os_write_all(o->fd, o->buf, o->len))
        o->failed = true;
    o->len = 0;
    return !o->failed;
}

void out_mem(struct out *o, const char *s, size_t n)
{
    while (n > 0) {
        if (o->len == sizeof o->buf)
            out_flush(o);
        size_t room = sizeof o->buf - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

void out_str(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

/* Digits of v at the end of buf[24]; returns where they start. */
static const char *digits(char buf[24], uint64_t v, unsigned base)
{
    size_t i = 23;
    buf[i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    return buf + i;
}

const char *out_format_u64(char buf[24], uint64_t v)
{
    return digits(buf, v, 10);
}

void out_u64(struct out *o, uint64_t v)
{
    char buf[24];
    out_str(o, digits(buf, v, 10));
}

void out_hex(struct out *o, uint64_t v)
{
    char buf[24];
    out_str(o, "0x");
    out_str(o, digits(buf, v, 16));
}

static const char hexdigit[] = "0123456789abcdef";

static void json_escape(struct out *o, unsigned code)
{
    char esc[6] = {'\\', 'u', hexdigit[(code >> 12) & 15], hexdigit[(code >> 8) & 15],
                   hexdigit[(code >> 4) & 15], hexdigit[code & 15]};
    out_mem(o, esc, 6);
}

/* The bytes of an unfinished sequence that will not be finished: each one
 * as a lone surrogate, U+DC00 + byte, as Python's surrogateescape decodes
 * it (os.fsencode gives the byte back; other readers show U+FFFD). */
static void json_give_up(struct out *o, struct out_utf8 *u)
{
    for (unsigned i = 0; i < u->have; i++)
        json_escape(o, 0xdc00 + u->seq[i]);
    u->have = u->need = 0;
}

void out_json_bytes(struct out *o, struct out_utf8 *u, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (u->need) {
            /* The second byte's range excludes overlong forms, surrogates
             * and code points past U+10FFFF (RFC 3629's table). */
            unsigned lo = 0x80, hi = 0xbf, lead = u->seq[0];
            if (u->have == 1) {
                lo = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
                hi = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
            }
            if (c >= lo && c <= hi) {
                u->seq[u->have++] = (unsigned char)c;
                if (--u->need == 0) {
                    out_mem(o, (const char *)u->seq, u->have);   /* valid UTF-8 */
                    u->have = 0;
                }
                continue;
            }
            json_give_up(o, u);   /* and c starts afresh */
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            out_mem(o, esc, 2);
        } else if (c < 0x20) {
            json_escape(o, c);
        } else if (c < 0x80) {
            out_mem(o, (const char *)&s[i], 1);
        } else if (c >= 0xc2 && c <= 0xf4) {
            u->seq[0] = (unsigned char)c;
            u->have = 1;
            u->need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
        } else {
            json_escape(o, 0xdc00 + c);   /* never a valid first byte */
        }
    }
}

void out_json_bytes_end(struct out *o, struct out_utf8 *u)
{
    json_give_up(o, u);
}

void out_json_str(struct out *o, const char *s)
{
    struct out_utf8 u = {0};
    out_mem(o, "\"", 1);
    out_json_bytes(o, &u, s, strlen(s));
    out_json_bytes_end(o, &u);
    out_mem(o, "\"", 1);
}

void out_diag_parts(const char *const parts[])
{
    struct out o;
    out_init(&o, 2);
    out_str(&o, "refmalloc: ");
    for (; *parts; parts++)
        out_str(&o, *parts);
    out_str(&o, "\n");
    out_flush(&o);
}

void out_diag(const char *a, const char *b, const char *c)
{
    out_diag_parts((const char *const[]){a, b ? b : "", c ? c : "", NULL});
}

const char *out_errno_text(int err, char buf[24])
{
    static const struct {
        int err;
        const char *text;
    } known[] = {
        {EACCES, "permission denied"},
        {EPERM, "operation not permitted"},
        {ENOENT, "no such file or directory"},
        {ENOTDIR, "a path component is not a directory"},
        {EROFS, "read-only file system"},
        {ENOSPC, "no space left on device"},
        {EDQUOT, "disk quota exceeded"},
        {EISDIR, "is a directory"},
        {ELOOP, "too many symbolic links"},
        {ENAMETOOLONG, "file name too long"},
        {EEXIST, "the file exists"},
        {EINVAL, "invalid argument"},
        {ENOMEM, "out of memory"},
        {EIO, "input/output error"},
        {EMFILE, "too many open files"},
        {ENFILE, "too many open files in the system"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].err == err)
            return known[i].text;
    char num[24];
    const char *digits = out_format_u64(num, (uint64_t)(unsigned)err);
    memcpy(buf, "errno ", 6);
    memcpy(buf + 6, digits, strlen(digits) + 1);   /* an int: at most 10 digits */
    return buf;
}

void out_diag_not_written(const char *what, const char *path, int err)
{
    char num[24];
    const char *why = ": cannot create it: ", *reason = out_errno_text(err, num);
    if (err == EEXIST) {
        why = ": the file exists (never overwritten)";
        reason = "";
    } else if (err == ELOOP) {
        why = ": it is a symbolic link (never followed)";
        reason = "";
    }
    out_diag_parts((const char *const[]){what, " not written to ", path, why, reason, NULL});
}

void out_diag_addr(const char *what, const void *addr, const char *why)
{
    struct out o;
    out_init(&o, 2);
    out_str(&o, "refmalloc: ");
    out_str(&o, what);
    out_str(&o, ": invalid pointer ");
    out_hex(&o, (uint64_t)(uintptr_t)addr);
    out_str(&o, ": ");
    out_str(&o, why);
    out_str(&o, "\n");
    out_flush(&o);
}

/* Expand "%p" to the pid and "%%" to "%". False if it does not fit. */
bool out_expand_path(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char num[24];
        const char *piece = p;
        size_t len = 1;
        if (p[0] == '%' && p[1] == 'p') {
            piece = out_format_u64(num, (uint64_t)os_getpid());
            len = strlen(piece);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            p++;
        }
        if (n + len >= cap)
            return false;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return true;
}
