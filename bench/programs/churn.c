/* churn: THREADS threads, each doing OPS malloc/free through its own pool of
 * SLOTS live slots with sizes 8..MAX (xorshift, fixed seeds): a slot picked at
 * random is freed and refilled, so lifetimes are random as in larson. Every
 * tenth block is handed to the next thread's pool instead (freed by another
 * thread). Each new block gets its first and last byte written.
 * usage: churn THREADS MAX OPS */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

#define SLOTS 1000
#define MAXT 64

static size_t max_size, ops;
static int nthreads;
static struct pool {
    pthread_mutex_t lock;
    unsigned char *slot[SLOTS];
    char pad[64];
} pools[MAXT];

static void *worker(void *arg)
{
    long id = (long)arg;
    uint64_t s = 0x9e3779b97f4a7c15u ^ ((uint64_t)id * 0x2545f4914f6cdd1du), sum = 0;
    struct pool *mine = &pools[id], *next = &pools[(id + 1) % nthreads];
    for (size_t i = 0; i < ops; i++) {
        uint64_t r = xorshift64(&s);
        size_t n = 8 + (size_t)((r >> 32) % (max_size - 8 + 1));
        unsigned char *p = xmalloc(n);
        p[0] = (unsigned char)i;
        p[n - 1] = (unsigned char)i;
        struct pool *into = (nthreads > 1 && i % 10 == 0) ? next : mine;
        size_t k = (size_t)(r % SLOTS);
        pthread_mutex_lock(&into->lock);
        unsigned char *old = into->slot[k];
        into->slot[k] = p;
        pthread_mutex_unlock(&into->lock);
        if (old) {
            sum += old[0];
            free(old);
        }
    }
    bench_sink += sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: churn THREADS MAX OPS\n");
        return 2;
    }
    nthreads = atoi(argv[1]);
    max_size = parse_size(argv[2]);
    ops = parse_size(argv[3]);
    if (nthreads < 1 || nthreads > MAXT || max_size < 8)
        return 2;
    for (int i = 0; i < nthreads; i++)
        pthread_mutex_init(&pools[i].lock, NULL);
    pthread_t th[MAXT];
    uint64_t t0 = now_ns();
    for (long i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    uint64_t t = now_ns() - t0;
    struct mem peak = mem_now();
    uint64_t t1 = now_ns();
    for (int i = 0; i < nthreads; i++)
        for (int k = 0; k < SLOTS; k++)
            free(pools[i].slot[k]);
    t += now_ns() - t1;
    result_add("\"threads\": %d, \"max_size\": %zu, \"ops_per_thread\": %zu", nthreads,
               max_size, ops);
    result_print(t, peak);
    return 0;
}
