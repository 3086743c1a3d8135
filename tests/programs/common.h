/* Shared helpers for the refmalloc test programs.
 *
 * Every program checks its own invariants and exits 1 with a "FAIL ..." line
 * on stderr at the first violation, so a pytest assertion on the exit code is
 * a real check. Expected values come from the environment set by the test
 * (TEST_PATTERN, TEST_THRESHOLD), never from the library under test. */
#ifndef RM_TEST_COMMON_H
#define RM_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "refmalloc.h"

static inline void rm_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
static inline void rm_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

#define FAIL(...) rm_fail(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond))                                                          \
            FAIL("check `%s` failed: %s", #cond, rm_fmt(__VA_ARGS__));        \
    } while (0)

static inline const char *rm_fmt(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline const char *rm_fmt(const char *fmt, ...)
{
    static __thread char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

static inline unsigned long env_ul(const char *name, unsigned long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || *end)
        FAIL("bad value for %s: %s", name, s);
    return v;
}

/* The pattern byte the test expects fresh memory to hold. */
static inline unsigned char expected_pattern(void)
{
    static int have;
    static unsigned char pat;
    if (!have) {
        pat = (unsigned char)env_ul("TEST_PATTERN", 0xaa);
        have = 1;
    }
    return pat;
}

/* The large-block threshold the test configured (default 128 KiB). */
static inline size_t test_threshold(void)
{
    return env_ul("TEST_THRESHOLD", 128 * 1024);
}

static inline size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Index of the first byte in [off, n) of p that is not `pat`, or (size_t)-1. */
static inline size_t find_mismatch(const void *p, size_t off, size_t n,
                                   unsigned char pat)
{
    const unsigned char *c = (const unsigned char *)p;
    size_t i = off;
    uint64_t w = 0x0101010101010101ull * pat;
    while (i < n && ((uintptr_t)(c + i) & 7))
        if (c[i++] != pat)
            return i - 1;
    for (; i + 64 <= n; i += 64) {
        const uint64_t *q = (const uint64_t *)(c + i);
        if ((q[0] ^ w) | (q[1] ^ w) | (q[2] ^ w) | (q[3] ^ w) | (q[4] ^ w) |
            (q[5] ^ w) | (q[6] ^ w) | (q[7] ^ w))
            break;
    }
    for (; i < n; i++)
        if (c[i] != pat)
            return i;
    return (size_t)-1;
}

/* Fail unless bytes [off, n) of p all equal pat. */
#define CHECK_BYTES(p, off, n, pat, ...)                                      \
    do {                                                                      \
        const unsigned char *cb_p_ = (const unsigned char *)(p);              \
        size_t cb_n_ = (n);                                                   \
        unsigned char cb_pat_ = (unsigned char)(pat);                         \
        size_t cb_i_ = find_mismatch(cb_p_, (off), cb_n_, cb_pat_);           \
        if (cb_i_ != (size_t)-1)                                              \
            FAIL("%s: byte %zu of [%zu, %zu) at %p is 0x%02x, expected "      \
                 "0x%02x",                                                    \
                 rm_fmt(__VA_ARGS__), cb_i_, (size_t)(off), cb_n_,           \
                 (void *)(cb_p_ + cb_i_), cb_p_[cb_i_], cb_pat_);             \
    } while (0)

/* Deterministic content for realloc checks: never equal to the pattern
 * (or to 0) so a lost copy is always visible. */
static inline unsigned char content_byte(size_t i, unsigned seed)
{
    unsigned char b = (unsigned char)((i * 131u + seed * 29u + (i >> 8)) & 0xff);
    static int have;
    static unsigned char pat;
    if (!have) {
        pat = expected_pattern();
        have = 1;
    }
    while (b == pat || b == 0)
        b = (unsigned char)(b + 7);
    return b;
}

static inline void fill_content(void *p, size_t n, unsigned seed)
{
    unsigned char *c = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        c[i] = content_byte(i, seed);
}

#define CHECK_CONTENT(p, n, seed, ...)                                        \
    do {                                                                      \
        const unsigned char *cc_p_ = (const unsigned char *)(p);              \
        for (size_t cc_i_ = 0; cc_i_ < (size_t)(n); cc_i_++)                  \
            if (cc_p_[cc_i_] != content_byte(cc_i_, (seed)))                  \
                FAIL("%s: content byte %zu of %zu is 0x%02x, expected 0x%02x", \
                     rm_fmt(__VA_ARGS__), cc_i_, (size_t)(n), cc_p_[cc_i_],  \
                     content_byte(cc_i_, (seed)));                            \
    } while (0)

typedef int (*get_stats_fn)(struct refmalloc_stats *, size_t);
typedef int (*query_fn)(const void *, struct refmalloc_block_info *);

/* Statistics via dlsym(RTLD_DEFAULT): fails when not running under refmalloc. */
static inline void get_stats(struct refmalloc_stats *s)
{
    get_stats_fn f = (get_stats_fn)dlsym(RTLD_DEFAULT, "refmalloc_get_stats");
    if (!f)
        FAIL("refmalloc_get_stats not found with dlsym: not running under refmalloc");
    memset(s, 0, sizeof *s);
    if (f(s, sizeof *s) != 0)
        FAIL("refmalloc_get_stats returned non-zero");
    if (s->version != REFMALLOC_STATS_VERSION)
        FAIL("stats version %" PRIu64 ", expected %d", s->version,
             REFMALLOC_STATS_VERSION);
}

static inline int under_refmalloc(void)
{
    return dlsym(RTLD_DEFAULT, "refmalloc_get_stats") != NULL;
}

static inline void print_stats(const char *tag, const struct refmalloc_stats *s)
{
    printf("STATS %s large_allocs=%" PRIu64 " refpage_allocs=%" PRIu64
           " eager_allocs=%" PRIu64 " zero_allocs=%" PRIu64
           " cache_hits=%" PRIu64 " mappings_in_use=%" PRIu64
           " mapping_budget=%" PRIu64 " chunk_bytes=%" PRIu64
           " fallback_budget=%" PRIu64 " fallback_memfd=%" PRIu64
           " fallback_region=%" PRIu64 " fallback_map=%" PRIu64
           " memfd_recreated=%" PRIu64 " live_large_blocks=%" PRIu64 "\n",
           tag, s->large_allocs, s->refpage_allocs, s->eager_allocs,
           s->zero_allocs, s->cache_hits, s->mappings_in_use,
           s->mapping_budget, s->chunk_bytes, s->fallback_budget,
           s->fallback_memfd, s->fallback_region, s->fallback_map,
           s->memfd_recreated, s->live_large_blocks);
    fflush(stdout);
}

/* Keep the compiler from assuming anything about memory behind p. */
static inline void opaque(void *p)
{
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* A /proc/<pid>/fd link of a memfd reads "/memfd:NAME (deleted)". */
static inline int is_memfd_link(const char *link)
{
    if (*link == '/')
        link++;
    return !strncmp(link, "memfd:", 6);
}

/* Number of lines of /proc/self/maps (one per VMA). */
static inline long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        FAIL("open /proc/self/maps: %s", strerror(errno));
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

/* A field (in kB) of a "Name: value kB" file of /proc/self, e.g. smaps_rollup's
 * "Anonymous" or status's "VmSize". */
static inline long proc_self_kb(const char *file, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    if (!f)
        FAIL("open %s: %s", path, strerror(errno));
    char line[256];
    size_t fl = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    if (v < 0)
        FAIL("field %s not in %s", field, path);
    return v;
}

static inline long smaps_rollup_kb(const char *field)
{
    return proc_self_kb("smaps_rollup", field);
}

#endif
