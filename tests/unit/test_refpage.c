/* refpage.c: the chunk size (a power of two, a 512th of the reference-page
 * bytes, between 4 MiB and max_chunk, never below a page), the mappings a
 * block needs with it, and one real mapping: reads see the pattern, a write
 * changes its page only. */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "os.h"
#include "refpage.h"
#include "unit.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static int is_pow2(size_t v)
{
    return v && !(v & (v - 1));
}

int main(void)
{
    size_t page = os_page_size();
    config_defaults(&rm_config_values);
    size_t max = rm_config_values.max_chunk;
    CHECK(is_pow2(max) && max >= MiB);

    CHECK(refpage_chunk_for(0, page) == 4 * MiB);       /* at least 4 MiB: no ladder */
    CHECK(refpage_chunk_for(0, 256 * MiB) == 4 * MiB);  /* of 1, 2, 4 MiB files */
    CHECK(refpage_chunk_for(0, 2 * GiB) == 4 * MiB);    /* a 512th */
    CHECK(refpage_chunk_for(GiB, 3 * GiB) == 8 * MiB);  /* of live + new */
    CHECK(refpage_chunk_for(0, 5 * 512 * MiB) == 8 * MiB);   /* rounded up */
    CHECK(refpage_chunk_for(8 * GiB, 0) == 16 * MiB);   /* 8 GiB live: 16 MiB, not 32 */
    CHECK(refpage_chunk_for(64 * GiB, GiB) == max);      /* capped */
    CHECK(refpage_chunk_for(SIZE_MAX / 2, 0) == max);

    /* A power of two that never shrinks as the live total grows. */
    size_t prev = 0;
    for (size_t live = 0; live <= 128 * GiB; live += GiB / 4) {
        size_t c = refpage_chunk_for(live, 16 * MiB);
        CHECK(is_pow2(c) && c >= prev && c >= MiB && c <= max);
        prev = c;
    }

    /* max_chunk wins over the 4 MiB floor, a page over both. */
    rm_config_values.max_chunk = 64 * 1024 > page ? 64 * 1024 : page;
    CHECK(refpage_chunk_for(0, GiB) == rm_config_values.max_chunk);
    rm_config_values.max_chunk = page / 2;
    CHECK(refpage_chunk_for(0, GiB) == page);
    rm_config_values.max_chunk = max;

    /* Mappings: one per chunk, plus one for a start between chunks. */
    CHECK(refpage_mappings_for(MiB, MiB) == 2);
    CHECK(refpage_mappings_for(1, MiB) == 2);
    CHECK(refpage_mappings_for(MiB + 1, MiB) == 3);
    CHECK(refpage_mappings_for(64 * GiB, refpage_chunk_for(0, 64 * GiB)) ==
          64 * GiB / max + 1);

    /* One mapping, for real: 3 chunks of the pattern over a reservation. */
    size_t chunk = refpage_chunk_for(0, 3 * MiB), len = 3 * chunk;
    unsigned char *p = os_reserve(len);
    CHECK(p != NULL);
    if (p) {
        CHECK(refpage_map((uintptr_t)p, len, len, 0x5c, 0, chunk) == REFPAGE_OK);
        CHECK(p[0] == 0x5c && p[chunk] == 0x5c && p[len - 1] == 0x5c);
        p[chunk + 7] = 1;
        CHECK(p[chunk + 6] == 0x5c && p[chunk + 7] == 1 && p[chunk + page] == 0x5c);
        CHECK(p[7] == 0x5c && p[2 * chunk + 7] == 0x5c);   /* the file is unchanged */
        CHECK(refpage_pattern_bytes() >= chunk);
        os_unreserve(p, len);
    }
    /* File sizes: a fresh 8 MiB block maps a file a quarter its size, 2 MiB
     * (four mappings); a tail grown past it maps the whole 4 MiB chunk
     * rather than another file per size. */
    size_t big = 4 * MiB;
    unsigned char *q = os_reserve(4 * big);
    CHECK(q != NULL);
    if (q) {
        size_t before = refpage_pattern_bytes();
        CHECK(refpage_map((uintptr_t)q, 2 * big, 2 * big, 0x33, 0, big) == REFPAGE_OK);
        CHECK(refpage_pattern_bytes() == before + 2 * MiB);
        CHECK(refpage_map((uintptr_t)q + 2 * big, 2 * MiB, 2 * big, 0x33, 0, big) == REFPAGE_OK);
        CHECK(refpage_pattern_bytes() == before + big);   /* the 2 MiB file replaced */
        CHECK(q[0] == 0x33 && q[2 * big] == 0x33 && q[2 * big + 2 * MiB - 1] == 0x33);
        os_unreserve(q, 4 * big);
    }
    /* Once the live total asks for a bigger chunk, a block maps the whole
     * chunk, not a quarter of itself: 64 GiB of 64 MiB blocks would
     * otherwise map 16 MiB files, 4096 mappings and more. */
    size_t wide = refpage_chunk_for(64 * GiB, 64 * MiB);
    CHECK(wide == max);
    unsigned char *r = os_reserve(64 * MiB);
    CHECK(r != NULL);
    if (r) {
        size_t before = refpage_pattern_bytes();
        CHECK(refpage_map((uintptr_t)r, 64 * MiB, 64 * MiB, 0x44, 0, wide) == REFPAGE_OK);
        CHECK(refpage_pattern_bytes() == before + wide);
        CHECK(r[0] == 0x44 && r[64 * MiB - 1] == 0x44);
        os_unreserve(r, 64 * MiB);
    }
    return unit_done("refpage");
}
