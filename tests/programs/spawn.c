/* Holds a large block (so refmalloc's memfd exists), then lets /bin/sh list
 * the fds of a freshly exec'd ls: none may be a memfd. */
#include "common.h"

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned char *p = malloc(8 << 20);
    if (!p)
        FAIL("malloc");
    p[0] = 1;
    opaque(p);
    int rc = system("ls -l /proc/self/fd/ 2>&1; echo LISTED");
    free(p);
    return rc;
}
