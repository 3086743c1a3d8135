/* sites: which code asked for memory. For `refmalloc check --locate` the
 * library records every allocation's call site (the return address, named
 * by module and offset) and can give the allocations of chosen sites another
 * pattern, so that bisecting over sites finds the one whose uninitialized
 * bytes change a program's behaviour. Off unless sites= or site_list= is set. */
#ifndef RM_SITES_H
#define RM_SITES_H

#include <stdbool.h>

#include "config.h"
#include "refmalloc_internal.h"   /* struct rm_site_name */

extern bool rm_sites_active;   /* owned by sites.c, set once at start-up */

void sites_init(void);

/* The pattern for an allocation made from return address `site`, and in
 * *name the site's name for a large block to keep (NULL if none). */
unsigned char sites_pattern(const void *site, const struct rm_site_name **name);

static inline unsigned char pattern_at(const void *site)
{
    const struct rm_site_name *name;
    return rm_sites_active ? sites_pattern(site, &name) : config()->pattern;
}

/* The same, with the site's name (NULL unless sites are recorded). */
static inline unsigned char pattern_named(const void *site, const struct rm_site_name **name)
{
    *name = NULL;
    return rm_sites_active ? sites_pattern(site, name) : config()->pattern;
}

/* At exit: write the sites seen to the configured log. */
void sites_write_log(void);

void sites_fork_prepare(void);
void sites_fork_parent(void);
void sites_fork_child(void);

#endif
