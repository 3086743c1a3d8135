/* A buffer written whole to a scratch file, of which only a header was filled:
 * the never-written bytes leave the process (an information leak) though the
 * program's output never shows them. (/dev/null would not do: the kernel never
 * reads what is written there.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    size_t n = 128 << 10;
    char *buf = malloc(n);
    FILE *scratch = tmpfile();
    if (!buf || !scratch)
        return 2;
    strcpy(buf, "header\n");
    ssize_t put = write(fileno(scratch), buf, n); /* READ */
    fclose(scratch);
    printf("wrote %s\n", put == (ssize_t)n ? "all" : "part");
    free(buf);
    return 0;
}
