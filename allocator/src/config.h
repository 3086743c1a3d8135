/* config: REFMALLOC_OPTIONS, parsed once at start-up without allocating.
 * config.c owns the values; everyone else reads them through config(). */
#ifndef RM_CONFIG_H
#define RM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define RM_REPORT_PATH_MAX 1024

struct rm_config {
    unsigned char pattern;        /* fill byte of fresh blocks */
    bool free_pattern_on;
    unsigned char free_pattern;   /* fill byte of freed small blocks */
    size_t threshold;             /* requests >= threshold are large */
    size_t cache_limit;           /* bytes of freed large blocks kept */
    size_t max_mappings;          /* 0: derive from vm.max_map_count */
    size_t reserve;               /* reserved address range for large blocks */
    size_t max_chunk;             /* largest reference chunk */
    bool refpages;                /* false: every large block is eager */
    bool mremap;                  /* false: realloc moves blocks by copying */
    bool mte;                     /* asked for: tag large blocks (arm64 MTE) */
    bool free_guard;              /* freed cached large blocks are PROT_NONE */
    int verbose;
    char report[RM_REPORT_PATH_MAX];
    char sites_log[RM_REPORT_PATH_MAX];   /* call sites written at exit */
    char site_list[RM_REPORT_PATH_MAX];   /* sites whose blocks get site_pattern */
    unsigned char site_pattern;
};

extern struct rm_config rm_config_values;

static inline const struct rm_config *config(void)
{
    return &rm_config_values;
}

/* Read REFMALLOC_OPTIONS (unless AT_SECURE). Messages go to stderr. */
void config_init(void);

/* The option parser itself, exposed for the unit test of bad input:
 * applies `options` on top of the defaults into *cfg. */
void config_parse(struct rm_config *cfg, const char *options);
void config_defaults(struct rm_config *cfg);

#endif
