/* A small fixed thread pool. A job's range [0, n) is cut into chunks of at
 * least `grain` items (a few per thread); the caller and the workers claim
 * chunks one at a time from a shared counter, and the call returns when
 * every claimed chunk is done. A worker that wakes late finds fewer chunks
 * (or none) left: the caller has done them, so a job never waits for a
 * wakeup, and a run on two threads is never much slower than on one.
 *
 * The job word packs the job's generation (high 32 bits) and the next
 * unclaimed chunk (low 32 bits). A claim is a compare-and-swap on it, so a
 * worker that read the descriptor of an older job can never claim a chunk of
 * a newer one. Descriptors alternate between two slots: the caller writes a
 * slot only after it has published the job after the one that used it, and
 * the fields are atomics, so a stale read is harmless (its claim fails).
 *
 * Idle workers spin briefly before blocking: a session runs its parallel ops
 * back to back, most of them tens of microseconds long. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec/exec.h"

typedef struct job_slot {
    kiln_range_fn _Atomic fn;
    void *_Atomic arg;
    _Atomic size_t total, chunk;
    _Atomic uint32_t chunks;
    _Atomic uint32_t remaining; /* claimed-or-not chunks not yet finished */
} job_slot;

struct kiln_threads {
    int n; /* total, caller included */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    _Atomic uint64_t word; /* generation << 32 | next chunk */
    _Atomic int sleepers;  /* workers blocked (or about to block) on start */
    _Atomic bool caller_waiting;
    _Atomic bool stop;
    job_slot slot[2];
};

/* ~50 microseconds of pause instructions on current x86 cores */
#define POOL_SPINS 1000
/* chunks per thread: enough that a late worker leaves little imbalance */
#define POOL_CHUNKS_PER_THREAD 4

static inline void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Set while this thread runs a chunk: a kiln_threads_run from inside a job
 * (a kernel calling another) runs on the calling thread, since publishing a
 * new job would strand the unclaimed chunks of the one in progress. */
static _Thread_local bool in_job;

/* Claims and runs chunks of generation gen until none are left or the job
 * word has moved on to another generation. */
static void run_chunks(kiln_threads *t, uint32_t gen) {
    job_slot *s = &t->slot[gen & 1];
    for (;;) {
        uint64_t w = atomic_load_explicit(&t->word, memory_order_acquire);
        if ((uint32_t)(w >> 32) != gen)
            return;
        uint32_t k = (uint32_t)w;
        kiln_range_fn fn = atomic_load_explicit(&s->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&s->arg, memory_order_relaxed);
        size_t total = atomic_load_explicit(&s->total, memory_order_relaxed);
        size_t chunk = atomic_load_explicit(&s->chunk, memory_order_relaxed);
        uint32_t chunks = atomic_load_explicit(&s->chunks, memory_order_relaxed);
        if (k >= chunks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&t->word, &w, w + 1, memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* the claim succeeded against generation gen: the descriptor read
         * above was gen's (the caller rewrites this slot only two jobs on) */
        size_t b = (size_t)k * chunk, e = b + chunk < total ? b + chunk : total;
        in_job = true;
        fn(arg, b, e);
        in_job = false;
        /* seq_cst pairs with the caller's store of caller_waiting before
         * its load of remaining: one of the two sees the other */
        if (atomic_fetch_sub_explicit(&s->remaining, 1, memory_order_seq_cst) == 1 &&
            atomic_load_explicit(&t->caller_waiting, memory_order_seq_cst)) {
            pthread_mutex_lock(&t->mu);
            pthread_cond_signal(&t->done);
            pthread_mutex_unlock(&t->mu);
        }
    }
}

static void *worker_main(void *p) {
    kiln_threads *t = p;
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = seen;
        for (int s = 0; s < POOL_SPINS; s++) {
            gen = (uint32_t)(atomic_load_explicit(&t->word, memory_order_acquire) >> 32);
            if (gen != seen || atomic_load_explicit(&t->stop, memory_order_acquire))
                break;
            pool_pause();
        }
        if (gen == seen && !atomic_load_explicit(&t->stop, memory_order_acquire)) {
            pthread_mutex_lock(&t->mu);
            atomic_fetch_add_explicit(&t->sleepers, 1, memory_order_seq_cst);
            while (!atomic_load_explicit(&t->stop, memory_order_seq_cst) &&
                   (uint32_t)(atomic_load_explicit(&t->word, memory_order_seq_cst) >> 32) == seen)
                pthread_cond_wait(&t->start, &t->mu);
            atomic_fetch_sub_explicit(&t->sleepers, 1, memory_order_seq_cst);
            pthread_mutex_unlock(&t->mu);
        }
        if (atomic_load_explicit(&t->stop, memory_order_acquire))
            return NULL;
        gen = (uint32_t)(atomic_load_explicit(&t->word, memory_order_acquire) >> 32);
        run_chunks(t, gen);
        seen = gen;
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
        for (int i = 1; i < t->n; i++)
            if (pthread_create(&t->workers[i - 1], NULL, worker_main, t) != 0) {
                t->n = i; /* run with the threads we got */
                break;
            }
    }
    return t;
}

void kiln_threads_destroy(kiln_threads *t) {
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    atomic_store_explicit(&t->stop, true, memory_order_seq_cst);
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
    size_t parts = t && !in_job ? (size_t)t->n : 1;
    if (parts > n / grain)
        parts = n / grain;
    if (parts <= 1) {
        fn(arg, 0, n);
        return;
    }
    /* chunks: a few per thread, each at least grain long */
    size_t chunks = parts * POOL_CHUNKS_PER_THREAD;
    if (chunks > n / grain)
        chunks = n / grain;
    size_t chunk = (n + chunks - 1) / chunks;
    chunks = (n + chunk - 1) / chunk;
    uint64_t w = atomic_load_explicit(&t->word, memory_order_relaxed);
    uint32_t gen = (uint32_t)(w >> 32) + 1;
    job_slot *s = &t->slot[gen & 1];
    atomic_store_explicit(&s->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&s->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&s->total, n, memory_order_relaxed);
    atomic_store_explicit(&s->chunk, chunk, memory_order_relaxed);
    atomic_store_explicit(&s->chunks, (uint32_t)chunks, memory_order_relaxed);
    atomic_store_explicit(&s->remaining, (uint32_t)chunks, memory_order_relaxed);
    atomic_store_explicit(&t->word, (uint64_t)gen << 32, memory_order_seq_cst); /* publish */
    if (atomic_load_explicit(&t->sleepers, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->start);
        pthread_mutex_unlock(&t->mu);
    }
    run_chunks(t, gen);
    /* every chunk is claimed: wait for those still running elsewhere */
    for (int i = 0; i < POOL_SPINS && atomic_load_explicit(&s->remaining, memory_order_acquire) > 0; i++)
        pool_pause();
    if (atomic_load_explicit(&s->remaining, memory_order_acquire) > 0) {
        pthread_mutex_lock(&t->mu);
        atomic_store_explicit(&t->caller_waiting, true, memory_order_seq_cst);
        while (atomic_load_explicit(&s->remaining, memory_order_seq_cst) > 0)
            pthread_cond_wait(&t->done, &t->mu);
        atomic_store_explicit(&t->caller_waiting, false, memory_order_relaxed);
        pthread_mutex_unlock(&t->mu);
    }
}
