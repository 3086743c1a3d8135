#include "sites.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "os.h"
#include "out.h"

bool rm_sites_active;

struct site {
    uintptr_t ret;          /* 0: empty slot */
    const char *module;     /* from dladdr: owned by the dynamic loader */
    const char *symbol;
    uintptr_t offset;       /* ret - module base */
    uint64_t count;
    bool alternate;         /* gets site_pattern */
};

/* A line of the site list: module and offset. */
struct listed {
    const char *module;
    size_t module_len;
    uintptr_t offset;
};

static struct {
    pthread_mutex_t lock;
    struct site *slots;
    size_t cap, count;      /* cap: a power of two */
    struct listed *list;
    size_t nlist;
} sites = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t slot_of(uintptr_t ret, size_t cap)
{
    return (size_t)(((uint64_t)ret * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static struct site *find_slot(struct site *slots, size_t cap, uintptr_t ret)
{
    size_t i = slot_of(ret, cap);
    while (slots[i].ret != 0 && slots[i].ret != ret)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static bool grow(void)
{
    size_t cap = sites.cap ? sites.cap * 2 : 1024;
    struct site *slots = os_alloc_meta(cap * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < sites.cap; i++)
        if (sites.slots[i].ret)
            *find_slot(slots, cap, sites.slots[i].ret) = sites.slots[i];
    if (sites.slots)
        os_free_meta(sites.slots, sites.cap * sizeof *sites.slots);
    sites.slots = slots;
    sites.cap = cap;
    return true;
}

/* Parse lines in the log's own format, "count<TAB>module<TAB>0xoffset<TAB>
 * symbol", so that a subset of a log is a list. The text stays in place. */
static void parse_list(char *text, size_t len)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    sites.list = os_alloc_meta(lines * sizeof *sites.list);
    if (!sites.list)
        return;
    for (char *line = text; line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end)
            end = text + len;
        char *module = memchr(line, '\t', (size_t)(end - line));
        char *tab = module ? memchr(module + 1, '\t', (size_t)(end - module - 1)) : NULL;
        if (tab && line[0] != '#' && tab + 3 < end && tab[1] == '0' && tab[2] == 'x') {
            module++;
            uintptr_t off = 0;
            for (char *p = tab + 3; p < end; p++) {
                unsigned c = (unsigned char)*p, d;
                if (c >= '0' && c <= '9')
                    d = c - '0';
                else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                    d = (c | 0x20) - 'a' + 10;
                else
                    break;
                off = off * 16 + d;
            }
            sites.list[sites.nlist++] = (struct listed){module, (size_t)(tab - module), off};
        }
        line = end + 1;
    }
}

void sites_init(void)
{
    const struct rm_config *c = config();
    if (!c->sites_log[0] && !c->site_list[0])
        return;
    if (c->site_list[0]) {
        size_t len;
        char *text = os_read_file_meta(c->site_list, &len);
        if (!text) {
            out_diag("site_list: cannot read ", c->site_list, "; no site gets site_pattern");
        } else {
            parse_list(text, len);
        }
    }
    rm_sites_active = true;
}

static bool listed(const char *module, uintptr_t offset)
{
    size_t n = strlen(module);
    for (size_t i = 0; i < sites.nlist; i++)
        if (sites.list[i].offset == offset && sites.list[i].module_len == n &&
            memcmp(sites.list[i].module, module, n) == 0)
            return true;
    return false;
}

unsigned char sites_pattern(const void *site)
{
    uintptr_t ret = (uintptr_t)site;
    pthread_mutex_lock(&sites.lock);
    struct site *s = sites.cap ? find_slot(sites.slots, sites.cap, ret) : NULL;
    if (s && s->ret == ret) {
        s->count++;
        bool alternate = s->alternate;
        pthread_mutex_unlock(&sites.lock);
        return alternate ? config()->site_pattern : config()->pattern;
    }
    pthread_mutex_unlock(&sites.lock);

    /* First sight: name it. dladdr takes the loader's lock, so ours must not
     * be held (a thread inside dlopen may be waiting in malloc for it). */
    Dl_info info;
    struct site fresh = {.ret = ret, .module = "?", .symbol = NULL, .offset = ret, .count = 1};
    if (dladdr(site, &info) && info.dli_fname) {
        fresh.module = info.dli_fname;
        fresh.symbol = info.dli_sname;
        fresh.offset = ret - (uintptr_t)info.dli_fbase;
    }
    fresh.alternate = listed(fresh.module, fresh.offset);

    pthread_mutex_lock(&sites.lock);
    if ((sites.count + 1) * 2 > sites.cap && !grow()) {
        pthread_mutex_unlock(&sites.lock);
        return fresh.alternate ? config()->site_pattern : config()->pattern;
    }
    s = find_slot(sites.slots, sites.cap, ret);
    if (s->ret == ret) {
        s->count++;             /* another thread named it meanwhile */
    } else {
        *s = fresh;
        sites.count++;
    }
    bool alternate = s->alternate;
    pthread_mutex_unlock(&sites.lock);
    return alternate ? config()->site_pattern : config()->pattern;
}

void sites_write_log(void)
{
    const char *path = config()->sites_log;
    if (!*path)
        return;
    char full[RM_REPORT_PATH_MAX + 32];
    int fd = out_expand_path(path, full, sizeof full) ? os_create_new(full) : -1;
    if (fd < 0) {
        out_diag("sites log not written to ", path,
                 errno == EEXIST ? ": the file exists (never overwritten)" : ": cannot create it");
        return;
    }
    struct out o;
    out_init(&o, fd);
    out_str(&o, "# refmalloc call sites: count, module, offset, symbol\n");
    pthread_mutex_lock(&sites.lock);
    for (size_t i = 0; i < sites.cap; i++) {
        const struct site *s = &sites.slots[i];
        if (!s->ret)
            continue;
        out_u64(&o, s->count);
        out_str(&o, "\t");
        out_str(&o, s->module);
        out_str(&o, "\t");
        out_hex(&o, s->offset);
        out_str(&o, "\t");
        out_str(&o, s->symbol ? s->symbol : "-");
        out_str(&o, "\n");
    }
    pthread_mutex_unlock(&sites.lock);
    out_flush(&o);
    os_close(fd);
}

void sites_fork_prepare(void)
{
    pthread_mutex_lock(&sites.lock);
}

void sites_fork_parent(void)
{
    pthread_mutex_unlock(&sites.lock);
}

void sites_fork_child(void)
{
    pthread_mutex_init(&sites.lock, NULL);
}
