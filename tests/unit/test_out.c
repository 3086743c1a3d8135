/* out.c's JSON strings from bytes: escapes, valid UTF-8 kept (also when a
 * sequence is split between two pieces), every byte of an invalid or
 * unfinished sequence as a lone surrogate \udcXX; and os.c's shared-mapping
 * query, which page_states relies on. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "os.h"
#include "out.h"
#include "unit.h"

/* The JSON string out_json_bytes makes of the pieces (NULL-terminated). */
static const char *json_of(const char *const pieces[], const size_t lens[])
{
    static char text[512];
    int fds[2];
    if (pipe(fds) != 0)
        return "";
    struct out o;
    struct out_utf8 u = {0};
    out_init(&o, fds[1]);
    for (int i = 0; pieces[i]; i++)
        out_json_bytes(&o, &u, pieces[i], lens[i]);
    out_json_bytes_end(&o, &u);
    out_flush(&o);
    close(fds[1]);
    ssize_t n = read(fds[0], text, sizeof text - 1);
    close(fds[0]);
    text[n < 0 ? 0 : n] = '\0';
    return text;
}

static const char *json1(const char *s)
{
    return json_of((const char *const[]){s, NULL}, (const size_t[]){strlen(s)});
}

struct found {
    uintptr_t start, end;
    int count;
};

static void note(uintptr_t start, uintptr_t end, void *ctx)
{
    struct found *f = ctx;
    if (f->count++ == 0)
        f->start = start;
    f->end = end;
}

int main(void)
{
    CHECK(strcmp(json1("a\"b\\c\nd\x7f"), "a\\\"b\\\\c\\u000ad\x7f") == 0);
    CHECK(strcmp(json1("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                 "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == 0);
    /* A sequence split between two reads is still one character. */
    CHECK(strcmp(json_of((const char *const[]){"x\xe2\x82", "\xacy", NULL},
                         (const size_t[]){3, 2}),
                 "x\xe2\x82\xacy") == 0);
    CHECK(strcmp(json1("\xff"), "\\udcff") == 0);
    CHECK(strcmp(json1("\xc0\xaf"), "\\udcc0\\udcaf") == 0);          /* overlong */
    CHECK(strcmp(json1("\xed\xa0\x80"), "\\udced\\udca0\\udc80") == 0); /* a surrogate */
    CHECK(strcmp(json1("\xf4\x90\x80\x80"), "\\udcf4\\udc90\\udc80\\udc80") == 0); /* > U+10FFFF */
    CHECK(strcmp(json1("\xc3("), "\\udcc3(") == 0);   /* cut short by an ASCII byte */
    CHECK(strcmp(json1("ab\xe2\x82"), "ab\\udce2\\udc82") == 0);   /* unfinished at the end */
    /* A NUL inside the bytes is a control character like the others. */
    CHECK(strcmp(json_of((const char *const[]){"a\0b", NULL}, (const size_t[]){3}),
                 "a\\u0000b") == 0);

    /* One shared mapping between two private ones: only it is reported,
     * clipped to the range asked for. */
    size_t page = os_page_size();
    char *p = mmap(NULL, 6 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(mmap(p + 2 * page, 2 * page, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + 2 * page);
    uintptr_t base = (uintptr_t)p;
    /* PROCMAP_QUERY where the kernel has it, then the text of maps. */
    bool (*const ways[2])(uintptr_t, uintptr_t, os_range_fn *, void *) = {
        os_each_shared_mapping, os_each_shared_mapping_in_text};
    for (int w = 0; w < 2; w++) {
        struct found f = {0};
        CHECK(ways[w](base, base + 6 * page, note, &f));
        CHECK(f.count == 1 && f.start == base + 2 * page && f.end == base + 4 * page);
        f = (struct found){0};
        CHECK(ways[w](base + 3 * page, base + 5 * page, note, &f));
        CHECK(f.count == 1 && f.start == base + 3 * page && f.end == base + 4 * page);
        f = (struct found){0};
        CHECK(ways[w](base + 4 * page, base + 6 * page, note, &f));
        CHECK(f.count == 0);
    }
    munmap(p, 6 * page);
    return unit_done("test_out");
}
