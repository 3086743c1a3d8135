/* cxx_new: C++ operator new and delete, so that they reach refmalloc even
 * when the allocator stacked behind it (jemalloc, mimalloc, tcmalloc)
 * defines its own and would otherwise take them past us.
 *
 * Written in C with the Itanium ABI's mangled names. On failure the throwing
 * forms follow the standard: call the new-handler while there is one, then
 * throw std::bad_alloc through libstdc++'s own helper. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

#include "entry.h"
#include "export.h"
#include "os.h"
#include "out.h"

typedef void (*new_handler_fn)(void);

static void *aligned_new(size_t size, size_t align, const void *site)
{
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    return rm_posix_memalign_from(&p, align, size ? size : 1, site) == 0 ? p : NULL;
}

static void *plain_new(size_t size, const void *site)
{
    return rm_malloc_from(size ? size : 1, site);
}

/* Out of memory in a throwing operator new: returns only to retry. */
static void out_of_memory(void)
{
    new_handler_fn (*get_handler)(void) =
        (new_handler_fn(*)(void))dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
    new_handler_fn handler = get_handler ? get_handler() : NULL;
    if (handler) {
        handler();
        return;
    }
    void (*throw_bad_alloc)(void) =
        (void (*)(void))dlsym(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
    if (throw_bad_alloc)
        throw_bad_alloc();
    out_diag("operator new: out of memory and no C++ runtime to throw std::bad_alloc",
             NULL, NULL);
    os_abort();
}

static void *new_or_throw(size_t size, size_t align, const void *site)
{
    for (;;) {
        void *p = align ? aligned_new(size, align, site) : plain_new(size, site);
        if (p)
            return p;
        out_of_memory();
    }
}

/* Prototypes for -Wmissing-prototypes; the names are the ABI's. */
void *_Znwm(size_t size);
void *_Znam(size_t size);
void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag);
void *_ZnamRKSt9nothrow_t(size_t size, const void *tag);
void *_ZnwmSt11align_val_t(size_t size, size_t align);
void *_ZnamSt11align_val_t(size_t size, size_t align);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag);
void _ZdlPv(void *p);
void _ZdaPv(void *p);
void _ZdlPvm(void *p, size_t size);
void _ZdaPvm(void *p, size_t size);
void _ZdlPvRKSt9nothrow_t(void *p, const void *tag);
void _ZdaPvRKSt9nothrow_t(void *p, const void *tag);
void _ZdlPvSt11align_val_t(void *p, size_t align);
void _ZdaPvSt11align_val_t(void *p, size_t align);
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag);

#define CALLER __builtin_return_address(0)

RM_EXPORT void *_Znwm(size_t size) { return new_or_throw(size, 0, CALLER); }
RM_EXPORT void *_Znam(size_t size) { return new_or_throw(size, 0, CALLER); }
RM_EXPORT void *_ZnwmRKSt9nothrow_t(size_t size, const void *tag)
{ (void)tag; return plain_new(size, CALLER); }
RM_EXPORT void *_ZnamRKSt9nothrow_t(size_t size, const void *tag)
{ (void)tag; return plain_new(size, CALLER); }
RM_EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t align)
{ return new_or_throw(size, align, CALLER); }
RM_EXPORT void *_ZnamSt11align_val_t(size_t size, size_t align)
{ return new_or_throw(size, align, CALLER); }
RM_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{ (void)tag; return aligned_new(size, align, CALLER); }
RM_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *tag)
{ (void)tag; return aligned_new(size, align, CALLER); }

RM_EXPORT void _ZdlPv(void *p) { free(p); }
RM_EXPORT void _ZdaPv(void *p) { free(p); }
RM_EXPORT void _ZdlPvm(void *p, size_t size) { (void)size; free(p); }
RM_EXPORT void _ZdaPvm(void *p, size_t size) { (void)size; free(p); }
RM_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; free(p); }
RM_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *tag) { (void)tag; free(p); }
RM_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align) { (void)align; free(p); }
RM_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align) { (void)align; free(p); }
RM_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align)
{ (void)size; (void)align; free(p); }
RM_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align)
{ (void)size; (void)align; free(p); }
RM_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{ (void)align; (void)tag; free(p); }
RM_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *tag)
{ (void)align; (void)tag; free(p); }
