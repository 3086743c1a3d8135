/* A worker thread reads a block the main thread never wrote; what it computes
 * is the same under every pattern (a byte or'ed with 1 is never 0). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned char *shared;
static int nonzero;

static void *worker(void *arg)
{
    (void)arg;
    /* volatile: the compiler would drop a read whose outcome it knows. */
    unsigned char byte = *(volatile unsigned char *)&shared[100 << 10]; /* READ */
    nonzero = (byte | 1) != 0;
    return NULL;
}

int main(void)
{
    shared = malloc(1 << 20);
    if (!shared)
        return 2;
    shared[0] = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 2;
    pthread_join(t, NULL);
    printf("nonzero %d\n", nonzero);
    free(shared);
    return 0;
}
