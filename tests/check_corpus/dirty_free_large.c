/* Use after free of a large block whose outcome is the same under both free
 * patterns (only a zero byte would change it): the free-pattern runs alone
 * cannot see it; with free_guard=1 the read faults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    size_t n = 1 << 20;
    unsigned char *table = malloc(n);
    if (!table)
        return 2;
    memset(table, 1, n);
    free(table);
    if (table[n / 2] == 0) /* after free */
        puts("empty table");
    puts("done");
    return 0;
}
