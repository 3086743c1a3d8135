/* config: REFMALLOC_OPTIONS, parsed once at start-up without allocating.
 * config.c owns the values; everyone else reads them through config(). */
#ifndef RM_CONFIG_H
#define RM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define RM_REPORT_PATH_MAX 1024

/* The C type of each option type of options.inc. BYTE_OFF keeps the byte
 * and whether it is on. */
#define RM_FIELD_BYTE(f) unsigned char f;
#define RM_FIELD_BYTE_OFF(f) unsigned char f; bool f##_on;
#define RM_FIELD_SIZE(f) size_t f;
#define RM_FIELD_COUNT(f) size_t f;
#define RM_FIELD_BOOL(f) bool f;
#define RM_FIELD_INT(f) int f;
#define RM_FIELD_PATH(f) char f[RM_REPORT_PATH_MAX];

/* One member per option of options.inc (see there for what each means). */
struct rm_config {
#define RM_OPTION(key, field, type, def, range, shown, help) RM_FIELD_##type(field)
#include "options.inc"
#undef RM_OPTION
};

extern struct rm_config rm_config_values;

static inline const struct rm_config *config(void)
{
    return &rm_config_values;
}

/* Read REFMALLOC_OPTIONS (unless AT_SECURE). Messages go to stderr. */
void config_init(void);

/* The option parser itself, exposed for the unit test (tests/c/test_config.c):
 * config_defaults sets every option to its default from options.inc,
 * config_parse applies `options` on top of what *cfg holds. */
void config_parse(struct rm_config *cfg, const char *options);
void config_defaults(struct rm_config *cfg);

#endif
