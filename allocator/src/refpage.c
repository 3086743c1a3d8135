#include "refpage.h"


#include "config.h"
#include "descriptors.h"
#include "mte.h"
#include "os.h"
#include "out.h"
#include "stats.h"

/* The memfd of one pattern byte and memory tag (0: untagged). A file is
 * never grown (it is sealed): a bigger chunk means a new file; mappings of
 * the old one keep its pages alive until they go. */
struct pattern_file {
    bool open;
    int fd;
    size_t len;
    uint64_t dev, ino;    /* identity, to notice a closed or reused number */
    uint64_t checked;     /* descriptors_generation() when the identity was checked */
};

static struct {
    /* Zero-initialized, so the rows of tags never used stay untouched bss. */
    struct pattern_file files[256][MTE_TAGS];
    size_t bytes;         /* sum of len over open files */
    /* A seccomp filter may be installed (refpage_before_sandbox): no new
     * file, no identity check (fstat) from now on. */
    bool sandboxed;
} engine;

/* The smallest file: a block smaller than this maps a file of its own
 * size rounded up to a power of two (filling the file is the cost). */
#define MIN_CHUNK ((size_t)1 << 20)
/* The least chunk of a block that needs one this big: the chunk grows with
 * the live total, and each growth makes (and fills) a new file, so starting
 * at 1 MiB, a run of 16 MiB blocks filled files of 1, 2 and 4 MiB (7 MiB,
 * 112 pwrite64 and 623 mmap for 64 blocks) where one of 4 MiB serves the
 * run up to 1 GiB live with a quarter of the mappings. */
#define BASE_CHUNK ((size_t)4 << 20)

static size_t pow2_at_least(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

size_t refpage_chunk_for(size_t live, size_t len)
{
    /* A 512th of the live total, a power of two between 4 MiB and max_chunk.
     * Filling a file costs about 310 us per MiB here (pwrite into shmem: the
     * floor, mmap+memset is slower), one more mapping about 1.5 us: a MiB of
     * file is worth 200 mappings, so chunks grow late. 64 GiB of 64 MiB
     * blocks -> 32 MiB chunks -> about 3100 mappings (under 4096); 8 GiB
     * live fills files of 4+8+16 MiB (a 256th filled 60 MiB). Each step
     * doubles, so the files superseded but still mapped add up to less than
     * the current one: at most 63 MiB of pattern memory in all. */
    size_t max = config()->max_chunk;
    size_t want = pow2_at_least((live + len) / 512);
    if (want < BASE_CHUNK)
        want = BASE_CHUNK;
    if (want > max)
        want = max;
    size_t page = os_page_size();
    return want < page ? page : want;
}

size_t refpage_mappings_for(size_t len, size_t chunk)
{
    /* At most: a block need not start at a multiple of the chunk. */
    return (len + chunk - 1) / chunk + 1;
}

/* Forget a file whose number is no longer ours; never close it, since the
 * number may now name one of the program's own files. */
static void forget(struct pattern_file *f)
{
    engine.bytes -= f->len;
    *f = (struct pattern_file){0};
    stat_add(ST_memfd_recreated, 1);
    if (config()->verbose >= 1)
        out_diag("the pattern memfd was closed or replaced by the program; "
                 "making a new one", NULL, NULL);
}

static bool still_ours(struct pattern_file *f)
{
    uint64_t now = descriptors_generation();
    if (f->checked == now)
        return true;
    if (engine.sandboxed)
        return false;   /* cannot tell without fstat: give the number up */
    uint64_t dev, ino;
    if (!os_fd_identity(f->fd, &dev, &ino) || dev != f->dev || ino != f->ino)
        return false;
    f->checked = now;
    return true;
}

/* Fill a new file with the pattern and, for a tag, set the allocation tag
 * of every granule through a shared PROT_MTE mapping: the tags stay with the
 * file's pages, and every private mapping of them (and every copy made on a
 * write) carries them. Sealing then stops any further store of data or tags,
 * which uncopied private pages would otherwise see. */
static bool fill_and_seal(int fd, size_t len, unsigned char pattern, unsigned tag)
{
    if (tag == 0) {
        if (!os_memfd_fill(fd, len, pattern))
            return false;
    } else {
        void *shared = os_memfd_map_shared(fd, len, true);
        if (!shared)
            return false;
        mte_fill(mte_tagged((uintptr_t)shared, tag), len, pattern);
        os_free_meta(shared, len);
    }
    return os_memfd_seal(fd);
}

static struct pattern_file *file_for(unsigned char pattern, unsigned tag, size_t chunk)
{
    struct pattern_file *f = &engine.files[pattern][tag];
    if (f->open && !still_ours(f))
        forget(f);
    /* In a sandbox the file made beforehand serves every chunk size: a
     * smaller file only means more mappings. */
    if (f->open && (f->len >= chunk || engine.sandboxed))
        return f;
    if (engine.sandboxed)
        return NULL;

    uint64_t now = descriptors_generation();
    int fd = os_memfd_create("refmalloc-pattern");
    if (fd < 0)
        return NULL;
    descriptors_own(fd);
    /* Identity taken at once and checked again once sealed: the number
     * could be swapped by another thread meanwhile (see mapped_ours). */
    uint64_t dev, ino, dev2, ino2;
    if (!os_fd_identity(fd, &dev, &ino) || !fill_and_seal(fd, chunk, pattern, tag) ||
        !os_fd_identity(fd, &dev2, &ino2) || dev2 != dev || ino2 != ino) {
        os_close(fd);
        return NULL;
    }
    if (f->open) {
        os_close(f->fd);
        engine.bytes -= f->len;
    }
    *f = (struct pattern_file){true, fd, chunk, dev, ino, now};
    engine.bytes += chunk;
    stat_set(ST_chunk_bytes, chunk);
    stat_set(ST_pattern_bytes, engine.bytes);
    return f;
}

/* Another thread of the program may dup2 its own file onto our number
 * between still_ours() and an mmap, and back again: the range would then map
 * the program's file. Checked after mapping, on the descriptor and (where
 * the kernel can say, Linux 6.11+) on what each chunk maps; if either is not
 * our file, the range (ours, in the reserved region) is emptied and the file
 * forgotten, never closed, and the caller makes the block another way. */
static bool mapped_ours(struct pattern_file *f, uintptr_t addr, size_t len)
{
    if (descriptors_settled(f->checked))
        return true;   /* no change since the identity was checked, none under way */
    bool ours = !engine.sandboxed && still_ours(f) && os_mapping_is(addr, len, f->len, f->dev, f->ino) != 0;
    if (ours)
        return true;
    os_reserve_fixed((void *)addr, len);
    forget(f);
    return false;
}

enum refpage_result refpage_map(uintptr_t addr, size_t len, size_t span, unsigned char pattern,
                                unsigned tag, size_t chunk)
{
    /* No file longer than a quarter of the block: filling it is the cost
     * (about 0.25 ms per MiB), four mappings of it cost a few us more to
     * map and about 0.07 us each at every reuse (mprotect and the pagemap
     * scan walk each one). The MAP_REFPAGE series' loop over one 4,000 KiB
     * block ran 2.45 us per cycle over 1000 cycles with a 4 MiB file, 1.9
     * with a 1 MiB one (1.34 and 1.6 us per cycle over 20000). Once the
     * live total asks for more than the least chunk, the chunk it asks for:
     * the quarter rule would keep 64 GiB of 64 MiB blocks on 16 MiB files
     * (4643 mappings). A block growing past the smallest file asks for the
     * whole chunk too: a doubling run (realloc) would otherwise fill a file
     * per size on the way, 1, 2 and 4 MiB (7 MiB, ~2 ms) where 1 and 4 do. */
    bool growing = span > len && span > MIN_CHUNK;
    size_t need = growing || chunk > BASE_CHUNK ? chunk : pow2_at_least(len) / 4;
    if (need < MIN_CHUNK)
        need = MIN_CHUNK;
    struct pattern_file *f = file_for(pattern, tag, need < chunk ? need : chunk);
    if (!f)
        return REFPAGE_NO_MEMFD;
    /* The file tiles the address space: an address maps the file at its
     * own offset modulo the file's length (a power of two). Blocks placed
     * next to each other then map consecutive offsets of one file, and the
     * kernel merges their mappings into one: a run of blocks costs one
     * mapping per file length, not one (or two) per block. */
    for (uintptr_t at = addr, end = addr + len; at < end;) {
        size_t off = at & (f->len - 1);
        size_t n = f->len - off < end - at ? f->len - off : end - at;
        if (!os_map_file_fixed((void *)at, n, f->fd, off, tag != 0)) {
            /* The number may have been closed by a raw system call, which
             * fds.c cannot count: check the identity next time. */
            f->checked = 0;
            return REFPAGE_MAP_FAILED;
        }
        at += n;
    }
    return mapped_ours(f, addr, len) ? REFPAGE_OK : REFPAGE_MAP_FAILED;
}

bool refpage_before_sandbox(const unsigned char *patterns, size_t n, size_t chunk)
{
    bool ready = true;
    for (size_t i = 0; i < n; i++)
        ready &= file_for(patterns[i], 0, chunk) != NULL;
    engine.sandboxed = true;
    return ready;
}

size_t refpage_pattern_bytes(void)
{
    return engine.bytes;
}
