#include "report.h"

#include <errno.h>
#include <string.h>

#include "config.h"
#include "large.h"
#include "os.h"
#include "out.h"
#include "reads.h"
#include "stats.h"

#ifndef REFMALLOC_VERSION
#define REFMALLOC_VERSION "0"
#endif

/* The value in kB of "Key:" in smaps_rollup text, in bytes; 0 if absent. */
static uint64_t rollup_bytes(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *line = text; *line; ) {
        if (strncmp(line, key, n) == 0) {
            uint64_t kb = 0;
            for (const char *p = line + n; *p && *p != '\n'; p++)
                if (*p >= '0' && *p <= '9')
                    kb = kb * 10 + (uint64_t)(*p - '0');
            return kb * 1024;
        }
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    return 0;
}

/* The process's memory as the kernel accounts it: never bare RSS, which
 * counts every shared pattern page fault-around maps in. */
static void memory_json(struct out *o)
{
    char text[4096];
    out_str(o, ",\n  \"memory\": ");
    if (!os_read_text("/proc/self/smaps_rollup", text, sizeof text)) {
        out_str(o, "null");
        return;
    }
    out_str(o, "{\"anonymous\": ");
    out_u64(o, rollup_bytes(text, "Anonymous:"));
    out_str(o, ", \"pss\": ");
    out_u64(o, rollup_bytes(text, "Pss:"));
    out_str(o, "}");
}

/* The program: "exe" from /proc/self/exe, "argv" from /proc/self/cmdline
 * (its arguments, each NUL terminated; after an exec the new program's, in
 * a forked child the parent's, as it runs the same program). Both are read
 * at exit, streamed: an argument list has no length limit to fit a buffer. */
struct argv_json {
    struct out *o;
    struct out_utf8 u;
    unsigned count;   /* arguments begun */
    bool open;        /* inside an argument's string */
};

static void argv_piece(const char *piece, size_t len, void *ctx)
{
    struct argv_json *a = ctx;
    for (size_t i = 0; i < len;) {
        if (!a->open) {
            out_str(a->o, a->count++ ? ", \"" : "\"");
            a->open = true;
        }
        const char *nul = memchr(piece + i, '\0', len - i);
        size_t end = nul ? (size_t)(nul - piece) : len;
        out_json_bytes(a->o, &a->u, piece + i, end - i);
        i = end;
        if (nul) {
            out_json_bytes_end(a->o, &a->u);
            out_str(a->o, "\"");
            a->open = false;
            i++;
        }
    }
}

static void program_json(struct out *o)
{
    char buf[4096];
    out_str(o, ",\n  \"exe\": ");
    if (os_readlink("/proc/self/exe", buf, sizeof buf))
        out_json_str(o, buf);
    else
        out_str(o, "null");
    /* Written as read: an unreadable file (a seccomp filter, /proc not
     * mounted) gives [], a read failing midway the arguments read so far. */
    out_str(o, ",\n  \"argv\": [");
    struct argv_json a = {.o = o};
    (void)os_read_pieces("/proc/self/cmdline", buf, sizeof buf, argv_piece, &a);
    if (a.open) {
        /* A program that rewrote its arguments (setproctitle) may leave
         * the last one without its NUL. */
        out_json_bytes_end(o, &a.u);
        out_str(o, "\"");
    }
    out_str(o, "]");
}

static long forked_from;   /* 0: not a forked child */

void report_note_fork(long parent)
{
    forked_from = parent;
}

struct blocks_json {
    struct out *o;
    unsigned count;
};

static void block_json(const struct refmalloc_block_info *b, const struct rm_site_name *site,
                       void *ctx)
{
    static const char *const kinds[] = {"?", "refpage", "eager", "zero"};
    struct blocks_json *j = ctx;
    struct out *o = j->o;
    out_str(o, j->count++ ? ",\n    " : "\n    ");
    out_str(o, "{\"address\": ");
    out_u64(o, (uint64_t)(uintptr_t)b->start);
    out_str(o, ", \"size\": ");
    out_u64(o, b->size);
    out_str(o, ", \"usable\": ");
    out_u64(o, b->usable);
    out_str(o, ", \"pages\": ");
    out_u64(o, b->pages);
    out_str(o, ", \"pages_written\": ");
    out_u64(o, b->pages_written);
    out_str(o, ", \"kind\": \"");
    out_str(o, kinds[b->kind >= 1 && b->kind <= 3 ? b->kind : 0]);
    out_str(o, "\"");
    if (site) {
        /* As the sites log names it, so a report's blocks and the log join. */
        out_str(o, ", \"site\": {\"module\": ");
        out_json_str(o, site->module);
        out_str(o, ", \"offset\": \"");
        out_hex(o, site->offset);
        out_str(o, "\", \"symbol\": ");
        if (site->symbol)
            out_json_str(o, site->symbol);
        else
            out_str(o, "null");
        out_str(o, "}");
    }
    out_str(o, "}");
}

typedef void (*block_walk_fn)(inspect_fn *fn, void *);

static void blocks_json(struct out *o, const char *name, block_walk_fn walk)
{
    out_str(o, ",\n  ");
    out_json_str(o, name);
    out_str(o, ": [");
    struct blocks_json j = {o, 0};
    walk(block_json, &j);
    out_str(o, j.count ? "\n  ]" : "]");
}

static void write_json(struct out *o)
{
    const struct rm_config *c = config();
    stats_flush_thread();
    out_str(o, "{\n  \"refmalloc\": \"" REFMALLOC_VERSION "\",\n  \"pid\": ");
    out_u64(o, (uint64_t)os_getpid());
    out_str(o, ",\n  \"forked_from\": ");
    if (forked_from)
        out_u64(o, (uint64_t)forked_from);
    else
        out_str(o, "null");
    program_json(o);
    out_str(o, ",\n  \"pattern\": ");
    out_u64(o, c->pattern);
    out_str(o, ",\n  \"free_pattern\": ");
    if (c->free_pattern_on)
        out_u64(o, c->free_pattern);
    else
        out_str(o, "null");
    out_str(o, ",\n  \"threshold\": ");
    out_u64(o, c->threshold);
    out_str(o, ",\n  \"page_size\": ");
    out_u64(o, os_page_size());
    out_str(o, ",\n  \"stats\": {");
    for (int i = 0; i < ST_COUNT; i++) {
        out_str(o, i ? ",\n    " : "\n    ");
        out_json_str(o, rm_stat_names[i]);
        out_str(o, ": ");
        out_u64(o, stat_get((enum rm_stat)i));
    }
    out_str(o, "\n  }");
    memory_json(o);
    blocks_json(o, "live_blocks", large_each_live);
    blocks_json(o, "freed_blocks", large_each_freed);
    reads_report_json(o);
    out_str(o, "\n}\n");
}

int report_write(const char *path)
{
    char full[RM_REPORT_PATH_MAX + 32];
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    if (!out_expand_path(path, full, sizeof full)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = os_create_new(full);
    if (fd < 0)
        return -1;
    struct out o;
    out_init(&o, fd);
    write_json(&o);
    bool ok = out_flush(&o);
    os_close(fd);
    if (!ok) {
        errno = EIO;
        return -1;
    }
    return 0;
}

void report_at_exit(void)
{
    const char *path = config()->report;
    if (!*path)
        return;
    if (report_write(path) != 0)
        out_diag_not_written("report", path, errno);
}
