/* Worker threads allocate buffers and fill all but the last element. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define WORKERS 4
#define N 64

static long results[WORKERS];

__attribute__((noinline)) static int *alloc_work(void)
{
    return malloc(N * sizeof(int));
}

static void *work(void *arg)
{
    long id = (long)arg;
    int *buf = alloc_work();
    if (!buf)
        return NULL;
    for (int i = 0; i < N - 1; i++)
        buf[i] = (int)(i * id);
    long sum = 0;
    for (int i = 0; i < N; i++)
        sum += buf[i];
    results[id] = sum;
    free(buf);
    return NULL;
}

int main(void)
{
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < WORKERS; i++)
        printf("worker %d: %ld\n", i, results[i]);
    return 0;
}
