/* A linked-list node whose next pointer is never set: under 0xaa and 0x55 it
 * is a non-NULL garbage pointer the program never follows (it only tests it),
 * so both patterns print "more"; fresh zero memory, as glibc often hands out,
 * prints "end". Only the zero pattern shows the dependence. */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    int value;
};

__attribute__((noinline)) static struct node *new_node(int value)
{
    struct node *n = malloc(sizeof *n);
    if (n)
        n->value = value;
    return n;
}

int main(void)
{
    struct node *n = new_node(1);
    if (!n)
        return 2;
    puts(n->next == NULL ? "end" : "more");
    free(n);
    return 0;
}
