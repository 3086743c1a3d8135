/* Unit test of the option parser (allocator/base/config.c), driven by
 * tests/test_config_unit.py:
 *   test_config table          the options and stats tables as the compiler sees them
 *   test_config parse OPTIONS  the configuration after the defaults and OPTIONS
 * Messages of the parser go to stderr as in the library. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "refmalloc.h"

static void print_table(void)
{
#define RM_OPTION(key, field, type, def, range, shown, help) \
    printf("option\t%s\t%s\t%s\t%s\t%s\t%s\n", #key, #type, def, range, shown, help);
#include "options.inc"
#undef RM_OPTION
#define STAT(name, kind, text) \
    printf("stat\t%s\t%s\t%s\t%zu\n", #name, #kind, text, offsetof(struct refmalloc_stats, name));
    REFMALLOC_STATS(STAT)
#undef STAT
    printf("stats_size\t%zu\n", sizeof(struct refmalloc_stats));
}

#define PRINT_BYTE(key, c, f) printf("%s=0x%02x\n", key, (c)->f);
#define PRINT_BYTE_OFF(key, c, f)                  \
    if ((c)->f##_on)                               \
        printf("%s=0x%02x\n", key, (c)->f);        \
    else                                           \
        printf("%s=off\n", key);
#define PRINT_SIZE(key, c, f) printf("%s=%zu\n", key, (c)->f);
#define PRINT_COUNT(key, c, f) printf("%s=%zu\n", key, (c)->f);
#define PRINT_BOOL(key, c, f) printf("%s=%d\n", key, (int)(c)->f);
#define PRINT_INT(key, c, f) printf("%s=%d\n", key, (c)->f);
#define PRINT_PATH(key, c, f) printf("%s=%s\n", key, (c)->f);

static void print_config(const struct rm_config *c)
{
#define RM_OPTION(key, field, type, def, range, shown, help) PRINT_##type(#key, c, field)
#include "options.inc"
#undef RM_OPTION
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "table") == 0) {
        print_table();
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "parse") == 0) {
        struct rm_config c;
        memset(&c, 0x5a, sizeof c);  /* config_defaults must set every member */
        config_defaults(&c);
        config_parse(&c, argv[2]);
        fflush(stdout);
        print_config(&c);
        return 0;
    }
    fprintf(stderr, "usage: %s table | parse OPTIONS\n", argv[0]);
    return 2;
}
