/* Use after free: a small block fully written, freed, then read. Only the
 * free-pattern differential sees it (fresh blocks are all written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *make_name(void)
{
    char *s = malloc(40);
    if (s) {
        memset(s, 0, 40);
        strcpy(s, "a name long enough to pass the header");
    }
    return s;
}

int main(void)
{
    char *s = make_name();
    if (!s)
        return 2;
    free(s);
    printf("%.12s\n", s + 20); /* after free */
    return 0;
}
