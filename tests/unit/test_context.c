/* context.c: the table of context names (refmalloc_set_context). Names are
 * interned (the same name, the same handle), truncated past
 * CONTEXT_NAME_MAX, refused and counted once the table is full (never a
 * crash, and known names are still found), and a reader thread that only
 * loads the current handle (as the read tracker's handler does) always
 * sees a whole, published name while another thread sets new ones. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "unit.h"

static atomic_bool stop;
static atomic_int torn;

/* Names set by main while this runs are "n<digits>": anything else read
 * through a handle is a torn or unpublished entry. */
static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        const char *name = context_name(context_current());
        if (name && (name[0] != 'n' || strlen(name) < 2))
            atomic_fetch_add(&torn, 1);
    }
    return NULL;
}

int main(void)
{
    CHECK(context_current() == 0 && context_name(0) == NULL);
    CHECK(context_set("a") == 0);
    uint32_t a = context_current();
    CHECK(a != 0 && strcmp(context_name(a), "a") == 0);
    CHECK(context_set("b") == 0 && context_current() != a);
    CHECK(context_set("a") == 0 && context_current() == a);   /* interned */
    CHECK(context_set(NULL) == 0 && context_current() == 0);
    CHECK(context_set("") == 0 && context_current() == 0);

    char long_name[CONTEXT_NAME_MAX * 3];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(context_set(long_name) == 0);
    const char *kept = context_name(context_current());
    CHECK(kept && strlen(kept) == CONTEXT_NAME_MAX && strncmp(kept, long_name, CONTEXT_NAME_MAX) == 0);
    /* A name equal to the kept prefix is the same entry. */
    uint32_t truncated = context_current();
    long_name[CONTEXT_NAME_MAX] = '\0';
    CHECK(context_set(long_name) == 0 && context_current() == truncated);
    CHECK(context_count() == 3 && context_dropped() == 0);

    CHECK(context_set(NULL) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    size_t refused = 0;
    char name[32];
    for (int i = 0; i < CONTEXTS_MAX + 100; i++) {
        snprintf(name, sizeof name, "n%d", i);
        errno = 0;
        if (context_set(name) != 0) {
            CHECK(errno == ENOSPC && context_current() == 0);
            refused++;
        }
    }
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    CHECK(atomic_load(&torn) == 0);
    CHECK(context_count() == CONTEXTS_MAX);
    CHECK(refused == 103 && context_dropped() == 103);   /* 3 names were there first */
    CHECK(context_set("a") == 0 && context_current() == a);   /* still found */
    CHECK(context_set("n0") == 0 && strcmp(context_name(context_current()), "n0") == 0);
    CHECK(context_name(CONTEXTS_MAX + 1) == NULL);
    context_fork_child();   /* only clears the lock */
    CHECK(context_set("b") == 0);
    return unit_done("test_context");
}
