#include "context.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "os.h"

/* The table is made at the first context_set (os_alloc_meta, not malloc:
 * the caller may be inside anything), CONTEXTS_MAX * 256 bytes. */
typedef char name_t[CONTEXT_NAME_MAX + 1];

static struct {
    atomic_flag lock;              /* setters only: the handler never takes it */
    name_t *_Atomic names;
    _Atomic size_t count;          /* published entries: names[0..count) */
    _Atomic uint32_t current;      /* 0 none, else index + 1 */
    _Atomic uint64_t dropped;
} ctx = {.lock = ATOMIC_FLAG_INIT};

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&ctx.lock, memory_order_acquire))
        os_yield();
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&ctx.lock, memory_order_release);
}

/* Index + 1 of name (its first CONTEXT_NAME_MAX bytes), interned; 0 when
 * the table is full or cannot be made (errno set). Under the lock. */
static uint32_t intern(const char *name)
{
    name_t *names = atomic_load_explicit(&ctx.names, memory_order_acquire);
    if (!names) {
        names = os_alloc_meta(CONTEXTS_MAX * sizeof *names);
        if (!names) {
            errno = ENOMEM;
            return 0;
        }
        atomic_store_explicit(&ctx.names, names, memory_order_release);
    }
    size_t len = strnlen(name, CONTEXT_NAME_MAX);
    size_t n = atomic_load_explicit(&ctx.count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], name, len) == 0 && names[i][len] == '\0')
            return (uint32_t)i + 1;
    if (n == CONTEXTS_MAX) {
        atomic_fetch_add(&ctx.dropped, 1);
        errno = ENOSPC;
        return 0;
    }
    memcpy(names[n], name, len);
    names[n][len] = '\0';
    /* Published after its bytes: a reader that sees the handle sees the name. */
    atomic_store_explicit(&ctx.count, n + 1, memory_order_release);
    return (uint32_t)n + 1;
}

int context_set(const char *name)
{
    if (!name || !*name) {
        atomic_store_explicit(&ctx.current, 0, memory_order_release);
        return 0;
    }
    int saved = errno;
    lock();
    uint32_t handle = intern(name);
    unlock();
    atomic_store_explicit(&ctx.current, handle, memory_order_release);
    if (handle == 0)
        return -1;
    errno = saved;
    return 0;
}

uint32_t context_current(void)
{
    return atomic_load_explicit(&ctx.current, memory_order_acquire);
}

const char *context_name(uint32_t handle)
{
    name_t *names = atomic_load_explicit(&ctx.names, memory_order_acquire);
    if (handle == 0 || !names || handle > atomic_load_explicit(&ctx.count, memory_order_acquire))
        return NULL;
    return names[handle - 1];
}

size_t context_count(void)
{
    return atomic_load_explicit(&ctx.count, memory_order_acquire);
}

uint64_t context_dropped(void)
{
    return atomic_load(&ctx.dropped);
}

void context_fork_child(void)
{
    atomic_flag_clear(&ctx.lock);
}
