#include "report.h"

#include <errno.h>
#include <string.h>

#include "config.h"
#include "large.h"
#include "os.h"
#include "out.h"
#include "stats.h"

#ifndef REFMALLOC_VERSION
#define REFMALLOC_VERSION "0"
#endif

/* Expand "%p" to the pid and "%%" to "%". False if it does not fit. */
static bool expand_path(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char num[24];
        const char *piece = p;
        size_t len = 1;
        if (p[0] == '%' && p[1] == 'p') {
            struct out o;   /* borrow the formatter via a buffer copy */
            out_init(&o, -1);
            out_u64(&o, (uint64_t)os_getpid());
            memcpy(num, o.buf, o.len);
            piece = num;
            len = o.len;
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

struct blocks_json {
    struct out *o;
    unsigned count;
};

static void block_json(const struct refmalloc_block_info *b, void *ctx)
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
    out_str(o, "\"}");
}

static void write_json(struct out *o)
{
    const struct rm_config *c = config();
    stats_flush_thread();
    out_str(o, "{\n  \"refmalloc\": \"" REFMALLOC_VERSION "\",\n  \"pid\": ");
    out_u64(o, (uint64_t)os_getpid());
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
    out_str(o, "\n  },\n  \"live_blocks\": [");
    struct blocks_json j = {o, 0};
    large_each_live(block_json, &j);
    out_str(o, j.count ? "\n  ]\n}\n" : "]\n}\n");
}

int report_write(const char *path)
{
    char full[RM_REPORT_PATH_MAX + 32];
    if (!path || !*path || !expand_path(path, full, sizeof full)) {
        errno = EINVAL;
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
    if (report_write(path) != 0) {
        const char *why = errno == EEXIST ? ": the file exists (never overwritten)"
                        : errno == ELOOP ? ": it is a symbolic link (not followed)"
                        : ": cannot create it";
        out_diag("report not written to ", path, why);
    }
}
