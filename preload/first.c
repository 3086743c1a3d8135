#include "first.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "next.h"
#include "os.h"
#include "out.h"

struct first_allocator rm_first;
bool rm_passthrough;

/* The object of the first allocator. */
static struct link_map *first_object;

/* The first allocator's handle: its own (dlsym on it searches it, then its
 * dependencies), or the global scope when it is the program. */
static void *first_handle = RTLD_DEFAULT;

/* The first allocator's own definition of `name`, or NULL when it has none
 * (the lookup then finds refmalloc's or glibc's). */
static void *own(const char *name)
{
    void *p = next_lookup(first_handle, name);
    return p && os_object_of(p) == first_object ? p : NULL;
}

/* Does the program itself define `name`? A program built without PIE that
 * takes a function's address exports an undefined symbol with the address
 * of its PLT stub, which the global lookup returns: that is no definition. */
static bool program_defines(void *sym, const char *name)
{
    Dl_info info;
    const ElfW(Sym) *entry = NULL;
    return os_dladdr1(sym, &info, (void **)&entry, RTLD_DL_SYMENT) && entry &&
           entry->st_shndx != SHN_UNDEF && info.dli_saddr == sym && info.dli_sname &&
           !strcmp(info.dli_sname, name);
}

/* The first object loaded before refmalloc (the program excepted) that
 * defines malloc itself, or NULL; *handle gets its handle. */
static struct link_map *preloaded_before(struct link_map *self, void **handle)
{
    struct link_map *head = self;
    while (head->l_prev)
        head = head->l_prev;
    for (struct link_map *m = head->l_next; m && m != self; m = m->l_next) {
        void *h = dlopen(m->l_name, RTLD_LAZY | RTLD_NOLOAD);
        void *p = h ? next_lookup(h, "malloc") : NULL;
        if (p && os_object_of(p) == m) {
            *handle = h;
            return m;
        }
        if (h)
            dlclose(h);
    }
    return NULL;
}

/* What the first allocator lacks, composed from what it has. */
static void *composed_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = rm_first.malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

static void *composed_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return rm_first.realloc(p, total);
}

static void *memalign_by_posix(size_t align, size_t size)
{
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    int err = rm_first.posix_memalign(&p, align, size);
    if (err) {
        errno = err;
        return NULL;
    }
    return p;
}

static int composed_posix_memalign(void **out, size_t align, size_t size)
{
    if (align == 0 || align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = rm_first.memalign(align, size);
    if (!p)
        return ENOMEM;
    errno = saved;
    *out = p;
    return 0;
}

static void *composed_valloc(size_t size)
{
    return rm_first.memalign(os_page_size(), size);
}

static void *composed_pvalloc(size_t size)
{
    size_t page = os_page_size();
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return rm_first.memalign(page, (size + page - 1) & ~(page - 1));
}

static size_t composed_usable_size(void *p)
{
    (void)p;
    return 0;   /* nothing to ask: the allocator does not tell */
}

static void composed_free_sized(void *p, size_t size)
{
    (void)size;
    rm_first.free(p);
}

static void composed_free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align;
    (void)size;
    rm_first.free(p);
}

#define OWN(field, name, fallback)                        \
    do {                                                  \
        *(void **)&rm_first.field = own(name);            \
        if (!rm_first.field)                              \
            rm_first.field = fallback;                    \
    } while (0)

static bool resolve(void)
{
    OWN(malloc, "malloc", NULL);
    OWN(free, "free", NULL);
    OWN(realloc, "realloc", NULL);
    if (!rm_first.malloc || !rm_first.free || !rm_first.realloc)
        return false;
    OWN(calloc, "calloc", composed_calloc);
    OWN(reallocarray, "reallocarray", composed_reallocarray);
    OWN(posix_memalign, "posix_memalign", NULL);
    OWN(memalign, "memalign", NULL);
    OWN(aligned_alloc, "aligned_alloc", NULL);
    if (!rm_first.memalign)
        rm_first.memalign = rm_first.aligned_alloc;
    if (!rm_first.memalign && rm_first.posix_memalign)
        rm_first.memalign = memalign_by_posix;
    if (!rm_first.memalign)
        return false;
    if (!rm_first.aligned_alloc)
        rm_first.aligned_alloc = rm_first.memalign;
    if (!rm_first.posix_memalign)
        rm_first.posix_memalign = composed_posix_memalign;
    OWN(valloc, "valloc", composed_valloc);
    OWN(pvalloc, "pvalloc", composed_pvalloc);
    OWN(usable_size, "malloc_usable_size", composed_usable_size);
    OWN(free_sized, "free_sized", composed_free_sized);
    OWN(free_aligned_sized, "free_aligned_sized", composed_free_aligned_sized);
    OWN(cfree, "cfree", rm_first.free);
    /* Statistics: its own, else glibc's (what the program saw without us). */
    OWN(mallinfo2, "mallinfo2", rm_next.mallinfo2);
    OWN(mallinfo, "mallinfo", rm_next.mallinfo);
    return true;
}

/* A function of this very object, to tell refmalloc's own address range. */
static void marker(void)
{
}

bool first_detect(void)
{
    void *m = next_lookup(RTLD_DEFAULT, "malloc");
    Dl_info who;
    struct link_map *self_map = os_object_of((void *)marker);
    first_object = os_object_of(m);
    if (!first_object || !self_map || first_object == self_map || !os_dladdr(m, &who))
        return true;
    const char *name = who.dli_fname && *who.dli_fname ? who.dli_fname : "the program";
    struct link_map *program = self_map;
    while (program->l_prev)
        program = program->l_prev;
    if (first_object == program && !program_defines(m, "malloc")) {
        struct link_map *before = preloaded_before(self_map, &first_handle);
        if (!before)
            return true;   /* refmalloc's malloc is the first after all */
        name = before->l_name;
        first_object = os_object_of(next_lookup(first_handle, "malloc"));
    }
    if (!resolve()) {
        out_diag("malloc comes first from ", name,
                 ", loaded before refmalloc, and it lacks free, realloc or memalign; "
                 "refmalloc cannot run (put refmalloc first in LD_PRELOAD)");
        return false;
    }
    next_note_allocator(rm_first.malloc);
    rm_passthrough = true;
    /* glibc's own first: refmalloc was loaded by dlopen, not preloaded, and
     * the program's allocator is glibc's as it should be. Nothing to say. */
    if (first_object != next_libc_object())
        out_diag("malloc comes first from ", name,
                 ", loaded before refmalloc: refmalloc passes every call to it (no "
                 "pattern); put refmalloc first in LD_PRELOAD to use it");
    return true;
}
