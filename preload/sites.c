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
    const char *module;     /* copies in the name arena (or static "?") */
    const char *symbol;     /* NULL: dladdr named none */
    uintptr_t offset;       /* ret - module base */
    uint64_t count;
    bool alternate;         /* gets site_pattern */
    const struct rm_site_name *name;   /* in the arena, for large blocks; NULL: none */
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

/* Site names, copied out of the loader's strings when a site is first seen:
 * dladdr's file name and symbol live in the dynamic loader's memory and in
 * the module's string table, which dlclose() unmaps, and the log is written
 * at exit. An append-only arena of metadata chunks, at most NAMES_MAX bytes
 * in all. Truncation rule: a name keeps at most NAME_LEN_MAX bytes; once the
 * arena is full a new site is unnamed (module "?", offset = the address, no
 * symbol), as when dladdr knows nothing about it. Modules repeat over many
 * sites, so the few most recent module copies are shared. Used under
 * sites.lock. */
enum {
    NAME_LEN_MAX = 1024,
    NAMES_CHUNK = 64 << 10,
    NAMES_MAX = 16 << 20,
    RECENT_MODULES = 16,
};

static struct {
    char *chunk;
    size_t used, total;
    const char *recent[RECENT_MODULES];
    unsigned next_recent;
} names;

/* n bytes of the arena, at an offset that is a multiple of `align`. */
static char *name_alloc(size_t n, size_t align)
{
    size_t at = (names.used + align - 1) & ~(align - 1);
    if (!names.chunk || at + n > NAMES_CHUNK) {
        if (names.total + NAMES_CHUNK > NAMES_MAX)
            return NULL;
        char *chunk = os_alloc_meta(NAMES_CHUNK);   /* page-aligned */
        if (!chunk)
            return NULL;
        names.chunk = chunk;
        names.total += NAMES_CHUNK;
        at = 0;
    }
    names.used = at + n;
    return names.chunk + at;
}

static const char *name_copy(const char *s, size_t n)
{
    char *copy = name_alloc(n + 1, 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

static const char *module_copy(const char *module)
{
    size_t n = strnlen(module, NAME_LEN_MAX);
    for (unsigned i = 0; i < RECENT_MODULES && names.recent[i]; i++)
        if (strlen(names.recent[i]) == n && memcmp(names.recent[i], module, n) == 0)
            return names.recent[i];
    const char *copy = name_copy(module, n);
    if (copy) {
        names.recent[names.next_recent] = copy;
        names.next_recent = (names.next_recent + 1) % RECENT_MODULES;
    }
    return copy;
}

/* The site as dladdr names it, its strings copied; unnamed when it cannot
 * be named or the arena is full. */
static struct site site_named(uintptr_t ret, const Dl_info *info, bool found)
{
    struct site s = {.ret = ret, .module = "?", .symbol = NULL, .offset = ret, .count = 1};
    const char *module = found && info->dli_fname ? module_copy(info->dli_fname) : NULL;
    if (!module)
        return s;
    const char *symbol = NULL;
    if (info->dli_sname) {
        symbol = name_copy(info->dli_sname, strnlen(info->dli_sname, NAME_LEN_MAX));
        if (!symbol)
            return s;
    }
    s.module = module;
    s.symbol = symbol;
    s.offset = ret - (uintptr_t)info->dli_fbase;
    return s;
}

/* The site's name as a record that never moves (the slots do, on growth): a
 * large block keeps a pointer to it. NULL when the arena is full. */
static const struct rm_site_name *name_record(const struct site *s)
{
    struct rm_site_name *r =
        (struct rm_site_name *)(void *)name_alloc(sizeof *r, _Alignof(struct rm_site_name));
    if (r)
        *r = (struct rm_site_name){s->module, s->symbol, s->offset};
    return r;
}

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
            char num[24];
            const char *why = errno == EINVAL ? "not a regular file (a FIFO, device or "
                                                "directory is never read)"
                                              : out_errno_text(errno, num);
            out_diag_parts((const char *const[]){"site_list: cannot read ", c->site_list,
                                                 ": ", why, "; no site gets site_pattern",
                                                 NULL});
        } else {
            parse_list(text, len);
        }
    }
    rm_sites_active = true;
}

/* Compared as the log names it: truncated to NAME_LEN_MAX bytes. */
static bool listed(const char *module, uintptr_t offset)
{
    size_t n = strnlen(module, NAME_LEN_MAX);
    for (size_t i = 0; i < sites.nlist; i++)
        if (sites.list[i].offset == offset && sites.list[i].module_len == n &&
            memcmp(sites.list[i].module, module, n) == 0)
            return true;
    return false;
}

unsigned char sites_pattern(const void *site, const struct rm_site_name **name)
{
    uintptr_t ret = (uintptr_t)site;
    *name = NULL;
    pthread_mutex_lock(&sites.lock);
    struct site *s = sites.cap ? find_slot(sites.slots, sites.cap, ret) : NULL;
    if (s && s->ret == ret) {
        s->count++;
        bool alternate = s->alternate;
        *name = s->name;
        pthread_mutex_unlock(&sites.lock);
        return alternate ? config()->site_pattern : config()->pattern;
    }
    pthread_mutex_unlock(&sites.lock);

    /* First sight: name it. dladdr takes the loader's lock, so ours must not
     * be held (a thread inside dlopen may be waiting in malloc for it). */
    Dl_info info;
    bool found = os_dladdr(site, &info);

    pthread_mutex_lock(&sites.lock);
    if ((sites.count + 1) * 2 > sites.cap && !grow()) {
        /* Not recorded: no copies, the loader's strings are valid now. */
        bool named = found && info.dli_fname;
        bool alternate = named ? listed(info.dli_fname, ret - (uintptr_t)info.dli_fbase)
                               : listed("?", ret);
        pthread_mutex_unlock(&sites.lock);
        return alternate ? config()->site_pattern : config()->pattern;
    }
    s = find_slot(sites.slots, sites.cap, ret);
    if (s->ret == ret) {
        s->count++;             /* another thread named it meanwhile */
    } else {
        *s = site_named(ret, &info, found);
        s->alternate = listed(s->module, s->offset);
        s->name = name_record(s);
        sites.count++;
    }
    bool alternate = s->alternate;
    *name = s->name;
    pthread_mutex_unlock(&sites.lock);
    return alternate ? config()->site_pattern : config()->pattern;
}

void sites_write_log(void)
{
    const char *path = config()->sites_log;
    if (!*path)
        return;
    char full[RM_REPORT_PATH_MAX + 32];
    bool fits = out_expand_path(path, full, sizeof full);
    int fd = fits ? os_create_new(full) : -1;
    if (fd < 0) {
        out_diag_not_written("sites log", path, fits ? errno : ENAMETOOLONG);
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
