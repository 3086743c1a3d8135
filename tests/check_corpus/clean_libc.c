/* Blocks allocated inside libc: strdup, asprintf, getline, qsort, fopen, printf. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char *words[64];
    int n = 0;
    FILE *f = tmpfile();
    if (!f)
        return 2;
    for (int i = 0; i < 40; i++)
        fprintf(f, "word%02d-%s\n", (i * 37) % 40, i % 2 ? "odd" : "even");
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (n < 64 && (len = getline(&line, &cap, f)) > 0) {
        line[len - 1] = '\0';
        words[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    qsort(words, (size_t)n, sizeof words[0], cmp);
    for (int i = 0; i < n; i++) {
        char *out = NULL;
        if (asprintf(&out, "%d:%s", i, words[i]) < 0)
            return 2;
        puts(out);
        free(out);
        free(words[i]);
    }
    return 0;
}
