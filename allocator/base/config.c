#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "out.h"

struct rm_config rm_config_values;

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


/* ---- the table of options.inc ---------------------------------------- */

enum option_type { T_BYTE, T_BYTE_OFF, T_SIZE, T_COUNT, T_BOOL, T_INT, T_PATH };

struct option {
    const char *key;
    enum option_type type;
    size_t offset;      /* of the value in struct rm_config */
    size_t on_offset;   /* BYTE_OFF: of the bool saying it is on */
    const char *def;    /* default, in option syntax */
    const char *range;  /* "lo-hi", "lo-" or "" */
};

#define RM_ON_OFFSET_BYTE(f) 0
#define RM_ON_OFFSET_BYTE_OFF(f) offsetof(struct rm_config, f##_on)
#define RM_ON_OFFSET_SIZE(f) 0
#define RM_ON_OFFSET_COUNT(f) 0
#define RM_ON_OFFSET_BOOL(f) 0
#define RM_ON_OFFSET_INT(f) 0
#define RM_ON_OFFSET_PATH(f) 0

static const struct option option_table[] = {
#define RM_OPTION(key, field, type, def, range, shown, help) \
    {#key, T_##type, offsetof(struct rm_config, field), RM_ON_OFFSET_##type(field), def, range},
#include "options.inc"
#undef RM_OPTION
};

#define OPTION_COUNT (sizeof option_table / sizeof option_table[0])

static const struct option *option_named(struct span key)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (span_is(key, option_table[i].key))
            return &option_table[i];
    return NULL;
}

static struct span span_of(const char *s)
{
    return (struct span){s, strlen(s)};
}

/* The bounds of a range "lo-hi" or "lo-" (hi = SIZE_MAX); false for "". */
static bool range_bounds(const char *range, struct span *lo, struct span *hi)
{
    const char *dash = strchr(range, '-');
    if (!*range || !dash)
        return false;
    *lo = (struct span){range, (size_t)(dash - range)};
    *hi = span_of(dash + 1);
    return true;
}

static bool in_range(const char *range, size_t v)
{
    struct span lo, hi;
    size_t min = 0, max = SIZE_MAX;
    if (!range_bounds(range, &lo, &hi))
        return true;
    if (!parse_size(lo, &min) || (hi.n && !parse_size(hi, &max)))
        return false;  /* a bad range in options.inc: refuse every value */
    return v >= min && v <= max;
}

/* What a value of `o` should look like, for the message about a bad one. */
static const char *expectation(const struct option *o, char *buf, size_t cap)
{
    static const char *const nouns[] = {
        [T_SIZE] = "a size", [T_COUNT] = "a count", [T_INT] = "a number"};
    switch (o->type) {
    case T_BYTE: return "a byte, 0-255 or 0x00-0xff";
    case T_BYTE_OFF: return "a byte or 'off'";
    case T_BOOL: return "0 or 1";
    case T_PATH: return "a path shorter than 1024 bytes";
    case T_SIZE:
    case T_COUNT:
    case T_INT: break;
    }
    struct span lo, hi;
    char l[32], h[32];
    const char *noun = nouns[o->type];
    if (!range_bounds(o->range, &lo, &hi)) {
        if (o->type == T_SIZE)
            return "a size: bytes with an optional k, m, g or t suffix";
        return noun;
    }
    span_text(lo, l, sizeof l);
    span_text(hi, h, sizeof h);
    size_t n = 0;
    const char *parts[] = {noun, hi.n ? " between " : " of at least ", l,
                           hi.n ? " and " : "", hi.n ? h : ""};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t len = strlen(parts[i]);
        if (n + len >= cap)
            break;
        memcpy(buf + n, parts[i], len);
        n += len;
    }
    buf[n] = '\0';
    return buf;
}

/* Parse `val` for `o` and store it into *cfg; with `check`, only values
 * within the option's range. On failure *cfg is unchanged. */
static bool store(struct rm_config *cfg, const struct option *o, struct span val, bool check)
{
    char *at = (char *)cfg + o->offset;
    size_t size;
    unsigned char byte;
    bool flag;
    switch (o->type) {
    case T_BYTE:
        if (!parse_byte(val, &byte))
            return false;
        *(unsigned char *)at = byte;
        return true;
    case T_BYTE_OFF:
        if (parse_bool(val, &flag) && !flag) {
            *(bool *)((char *)cfg + o->on_offset) = false;
            return true;
        }
        if (!parse_byte(val, &byte))
            return false;
        *(unsigned char *)at = byte;
        *(bool *)((char *)cfg + o->on_offset) = true;
        return true;
    case T_SIZE:
    case T_COUNT:
        if (!parse_size(val, &size) || (check && !in_range(o->range, size)))
            return false;
        *(size_t *)at = size;
        return true;
    case T_INT:
        /* Small numbers, written like a byte (decimal or 0x hex). */
        if (!parse_byte(val, &byte) || (check && !in_range(o->range, byte)))
            return false;
        *(int *)at = byte;
        return true;
    case T_BOOL:
        if (!parse_bool(val, &flag))
            return false;
        *(bool *)at = flag;
        return true;
    case T_PATH:
        return parse_path(val, at);
    }
    return false;
}

void config_defaults(struct rm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (*option_table[i].def)
            store(cfg, &option_table[i], span_of(option_table[i].def), false);
}

static void complain_unknown(struct span key)
{
    char k[64], known[512];
    size_t n = 0;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        size_t len = strlen(option_table[i].key);
        if (n + len + 3 >= sizeof known)
            break;
        if (i) {
            memcpy(known + n, ", ", 2);
            n += 2;
        }
        memcpy(known + n, option_table[i].key, len);
        n += len;
    }
    known[n] = '\0';
    out_diag_parts((const char *const[]){"REFMALLOC_OPTIONS: unknown option '",
                                         span_text(key, k, sizeof k), "' ignored (known: ",
                                         known, ")", NULL});
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
 * value should look like (in buf, or a constant). */
static enum applied apply(struct rm_config *cfg, struct span key, struct span val,
                          const char **expect, char *buf, size_t cap)
{
    const struct option *o = option_named(key);
    if (!o) {
        complain_unknown(key);
        return UNKNOWN_KEY;
    }
    if (store(cfg, o, val, true))
        return APPLIED;
    *expect = expectation(o, buf, cap);
    return BAD_VALUE;
}

/* The last valid value of each key so far, for the message about a bad one
 * after it: one slot per known key. */
struct accepted {
    struct span key[OPTION_COUNT], val[OPTION_COUNT];
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
                char buf[128];
                enum applied r = apply(cfg, key, val, &expect, buf, sizeof buf);
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
    const char *options = os_getenv("REFMALLOC_OPTIONS");
    if (!options || !*options)
        return;
    if (os_is_secure()) {
        /* A setuid program must not let its caller pick paths or sizes. */
        return;
    }
    config_parse(&rm_config_values, options);
}
