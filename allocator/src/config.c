#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "out.h"

struct rm_config rm_config_values;

void config_defaults(struct rm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->pattern = 0xaa;
    cfg->free_pattern = 0xdd;
    cfg->threshold = 128u << 10;
    cfg->cache_limit = 64u << 20;
    cfg->reserve = (size_t)1 << 40;
    cfg->max_chunk = 32u << 20;
    cfg->refpages = true;
    cfg->mremap = true;
    cfg->site_pattern = 0x55;
}

/* A value is the text between '=' and the next ',' (not NUL terminated). */
struct span {
    const char *p;
    size_t n;
};

static bool span_is(struct span s, const char *word)
{
    return strlen(word) == s.n && memcmp(s.p, word, s.n) == 0;
}

static bool parse_uint(struct span s, unsigned base, uint64_t *out, size_t *used)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *out = v;
    *used = i;
    return i > 0;
}

static bool parse_byte(struct span s, unsigned char *out)
{
    uint64_t v;
    size_t used;
    unsigned base = 10;
    if (s.n > 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X')) {
        s.p += 2;
        s.n -= 2;
        base = 16;
    }
    if (!parse_uint(s, base, &v, &used) || used != s.n || v > 255)
        return false;
    *out = (unsigned char)v;
    return true;
}

static bool parse_size(struct span s, size_t *out)
{
    uint64_t v;
    size_t used;
    if (!parse_uint(s, 10, &v, &used))
        return false;
    unsigned shift = 0;
    if (used + 1 == s.n) {
        switch (s.p[used] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        default: return false;
        }
    } else if (used != s.n) {
        return false;
    }
    if (shift && v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)(v << shift);
    return true;
}

static bool parse_bool(struct span s, bool *out)
{
    if (span_is(s, "1") || span_is(s, "yes") || span_is(s, "true") || span_is(s, "on"))
        *out = true;
    else if (span_is(s, "0") || span_is(s, "no") || span_is(s, "false") || span_is(s, "off"))
        *out = false;
    else
        return false;
    return true;
}

static bool parse_path(struct span s, char out[RM_REPORT_PATH_MAX])
{
    if (s.n == 0 || s.n >= RM_REPORT_PATH_MAX)
        return false;
    memcpy(out, s.p, s.n);
    out[s.n] = '\0';
    return true;
}

/* Copy a span into a NUL-terminated stack buffer for messages. */
static const char *span_text(struct span s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(buf, s.p, n);
    buf[n] = '\0';
    return buf;
}

/* A bad value changes nothing: the key keeps the last valid value given
 * before it in the list (`earlier`, n == 0 if none), else its default. The
 * message says which. */
static void complain(struct span key, struct span val, const char *expect, struct span earlier)
{
    char k[64], v[128], e[128];
    struct out o;
    out_init(&o, 2);
    out_str(&o, "refmalloc: REFMALLOC_OPTIONS: bad value '");
    out_str(&o, span_text(val, v, sizeof v));
    out_str(&o, "' for '");
    out_str(&o, span_text(key, k, sizeof k));
    out_str(&o, "' (expected ");
    out_str(&o, expect);
    if (earlier.n) {
        out_str(&o, "); keeping ");
        out_str(&o, k);
        out_str(&o, "=");
        out_str(&o, span_text(earlier, e, sizeof e));
        out_str(&o, "\n");
    } else {
        out_str(&o, "); using the default\n");
    }
    out_flush(&o);
}

enum applied { APPLIED, BAD_VALUE, UNKNOWN_KEY };

/* Set one key; on BAD_VALUE *cfg is unchanged and *expect says what the
 * value should look like. */
static enum applied apply(struct rm_config *cfg, struct span key, struct span val,
                          const char **expect_out)
{
    bool ok = true;
    const char *expect = "";
    size_t size;
    if (span_is(key, "pattern")) {
        expect = "a byte, 0-255 or 0x00-0xff";
        ok = parse_byte(val, &cfg->pattern);
    } else if (span_is(key, "free_pattern")) {
        expect = "a byte or 'off'";
        bool on;
        if (parse_bool(val, &on) && !on)
            cfg->free_pattern_on = false;
        else if ((ok = parse_byte(val, &cfg->free_pattern)))
            cfg->free_pattern_on = true;
    } else if (span_is(key, "threshold")) {
        expect = "a size of at least 1, like 128k";
        ok = parse_size(val, &size) && size > 0 && size <= ((size_t)1 << 40);
        if (ok)
            cfg->threshold = size;
    } else if (span_is(key, "cache")) {
        expect = "a size like 64m, or 0";
        ok = parse_size(val, &cfg->cache_limit);
    } else if (span_is(key, "max_mappings")) {
        expect = "a count of at least 16";
        ok = parse_size(val, &size) && size >= 16;
        if (ok)
            cfg->max_mappings = size;
    } else if (span_is(key, "reserve")) {
        expect = "a size between 1g and 64t";
        ok = parse_size(val, &size) && size >= ((size_t)1 << 30) && size <= ((size_t)64 << 40);
        if (ok)
            cfg->reserve = size;
    } else if (span_is(key, "max_chunk")) {
        expect = "a size between 64k and 1g";
        ok = parse_size(val, &size) && size >= (64u << 10) && size <= (1u << 30);
        if (ok)
            cfg->max_chunk = size;
    } else if (span_is(key, "refpages")) {
        expect = "0 or 1";
        ok = parse_bool(val, &cfg->refpages);
    } else if (span_is(key, "mremap")) {
        expect = "0 or 1";
        ok = parse_bool(val, &cfg->mremap);
    } else if (span_is(key, "mte")) {
        expect = "0 or 1";
        ok = parse_bool(val, &cfg->mte);
    } else if (span_is(key, "free_guard")) {
        expect = "0 or 1";
        ok = parse_bool(val, &cfg->free_guard);
    } else if (span_is(key, "verbose")) {
        expect = "0, 1 or 2";
        unsigned char v;
        ok = parse_byte(val, &v) && v <= 2;
        if (ok)
            cfg->verbose = v;
    } else if (span_is(key, "report")) {
        expect = "a path shorter than 1024 bytes";
        ok = parse_path(val, cfg->report);
    } else if (span_is(key, "sites")) {
        expect = "a path shorter than 1024 bytes";
        ok = parse_path(val, cfg->sites_log);
    } else if (span_is(key, "site_list")) {
        expect = "a path shorter than 1024 bytes";
        ok = parse_path(val, cfg->site_list);
    } else if (span_is(key, "site_pattern")) {
        expect = "a byte, 0-255 or 0x00-0xff";
        ok = parse_byte(val, &cfg->site_pattern);
    } else {
        char k[64];
        out_diag("REFMALLOC_OPTIONS: unknown option '", span_text(key, k, sizeof k),
                 "' ignored (known: pattern, free_pattern, threshold, cache, report, "
                 "verbose, max_mappings, reserve, refpages, mremap, max_chunk, mte, free_guard, "
                 "sites, site_list, site_pattern)");
        return UNKNOWN_KEY;
    }
    *expect_out = expect;
    return ok ? APPLIED : BAD_VALUE;
}

/* The last valid value of each key so far, for the message about a bad one
 * after it. Known keys only, so a few slots are enough. */
struct accepted {
    struct span key[24], val[24];
    size_t n;
};

static struct span *accepted_slot(struct accepted *a, struct span key)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->key[i].n == key.n && memcmp(a->key[i].p, key.p, key.n) == 0)
            return &a->val[i];
    return NULL;
}

static void accept(struct accepted *a, struct span key, struct span val)
{
    struct span *slot = accepted_slot(a, key);
    if (!slot && a->n < sizeof a->key / sizeof a->key[0]) {
        a->key[a->n] = key;
        slot = &a->val[a->n++];
    }
    if (slot)
        *slot = val;
}

void config_parse(struct rm_config *cfg, const char *options)
{
    struct accepted accepted = {.n = 0};
    const char *p = options;
    while (p && *p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (end > p) {
            if (!eq) {
                struct span item = {p, (size_t)(end - p)};
                char k[64];
                out_diag("REFMALLOC_OPTIONS: '", span_text(item, k, sizeof k),
                         "' is not key=value; ignored");
            } else {
                struct span key = {p, (size_t)(eq - p)};
                struct span val = {eq + 1, (size_t)(end - eq - 1)};
                const char *expect = "";
                enum applied r = apply(cfg, key, val, &expect);
                if (r == APPLIED) {
                    accept(&accepted, key, val);
                } else if (r == BAD_VALUE) {
                    struct span *earlier = accepted_slot(&accepted, key);
                    complain(key, val, expect, earlier ? *earlier : (struct span){NULL, 0});
                }
            }
        }
        p = *end ? end + 1 : end;
    }
}

void config_init(void)
{
    config_defaults(&rm_config_values);
    const char *options = getenv("REFMALLOC_OPTIONS");
    if (!options || !*options)
        return;
    if (os_is_secure()) {
        /* A setuid program must not let its caller pick paths or sizes. */
        return;
    }
    config_parse(&rm_config_values, options);
}
