/* A small fixed thread pool: the caller's thread takes the first range, the
 * workers the others, and the call returns when all are done.
 *
 * Waits spin briefly before blocking: a session runs its parallel ops back
 * to back and most take tens of microseconds, about what a condition
 * variable wakeup costs. generation and pending are still written under the
 * mutex; the spins only read them (atomically) as a hint. */
#include <stdlib.h>

#include "exec/exec.h"

struct kiln_threads {
    int n; /* total, caller included */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long generation;
    int pending;
    bool stop;
    /* current job */
    kiln_range_fn fn;
    void *arg;
    size_t total, chunk;
};

/* ~50 microseconds of pause instructions on current x86 cores */
#define POOL_SPINS 1000

static inline void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct worker_arg {
    kiln_threads *t;
    int index;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg *wa = p;
    kiln_threads *t = wa->t;
    int idx = wa->index;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        for (int s = 0; s < POOL_SPINS && __atomic_load_n(&t->generation, __ATOMIC_ACQUIRE) == seen &&
                        !__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE);
             s++)
            pool_pause();
        pthread_mutex_lock(&t->mu);
        while (!t->stop && t->generation == seen)
            pthread_cond_wait(&t->start, &t->mu);
        if (t->stop) {
            pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        seen = t->generation;
        kiln_range_fn fn = t->fn;
        void *arg = t->arg;
        size_t b = (size_t)idx * t->chunk, e = b + t->chunk;
        if (e > t->total)
            e = t->total;
        pthread_mutex_unlock(&t->mu);
        if (b < e)
            fn(arg, b, e);
        pthread_mutex_lock(&t->mu);
        if (__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL) == 0)
            pthread_cond_signal(&t->done);
        pthread_mutex_unlock(&t->mu);
    }
}

kiln_threads *kiln_threads_create(int n) {
    kiln_threads *t = kiln_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n < 1 ? 1 : n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->start, NULL);
    pthread_cond_init(&t->done, NULL);
    if (t->n > 1) {
        t->workers = kiln_calloc((size_t)t->n - 1, sizeof(pthread_t));
        if (!t->workers) {
            free(t);
            return NULL;
        }
        for (int i = 1; i < t->n; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) {
                /* filled before the thread starts: the worker reads it at once */
                wa->t = t;
                wa->index = i;
            }
            if (!wa || pthread_create(&t->workers[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                t->n = i; /* run with the threads we got */
                break;
            }
        }
    }
    return t;
}

void kiln_threads_destroy(kiln_threads *t) {
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->stop, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->mu);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->workers[i - 1], NULL);
    free(t->workers);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->start);
    pthread_cond_destroy(&t->done);
    free(t);
}

int kiln_threads_count(const kiln_threads *t) { return t ? t->n : 1; }

void kiln_threads_run(kiln_threads *t, size_t n, size_t grain, kiln_range_fn fn, void *arg) {
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    int parts = t ? t->n : 1;
    if ((size_t)parts > n / grain)
        parts = (int)(n / grain);
    if (parts <= 1) {
        fn(arg, 0, n);
        return;
    }
    size_t chunk = (n + (size_t)parts - 1) / (size_t)parts;
    pthread_mutex_lock(&t->mu);
    t->fn = fn;
    t->arg = arg;
    t->total = n;
    t->chunk = chunk;
    __atomic_store_n(&t->pending, t->n - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&t->generation, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->mu);
    fn(arg, 0, chunk < n ? chunk : n);
    for (int s = 0; s < POOL_SPINS && __atomic_load_n(&t->pending, __ATOMIC_ACQUIRE) > 0; s++)
        pool_pause();
    pthread_mutex_lock(&t->mu);
    while (t->pending > 0)
        pthread_cond_wait(&t->done, &t->mu);
    pthread_mutex_unlock(&t->mu);
}
