/* The session's memory: blocks handed out as refcounted buffers and taken
 * back when the last tensor using them goes away (liveness decides when:
 * the session drops each value after its last consumer). Freed blocks are
 * reused best-fit, so steady-state runs allocate nothing new. A mutex guards
 * the lists: a caller may destroy a run's outputs on another thread while
 * the session runs again. */
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"

typedef struct block {
    kiln_buffer buf; /* must stay first */
    size_t cap;
    struct block *next_free;
} block;

struct kiln_arena {
    pthread_mutex_t mu;
    block *free_list;
    size_t held, peak; /* bytes obtained from the system */
    size_t live_blocks;
    bool released;
};

kiln_arena *kiln_arena_create(void) {
    kiln_arena *a = kiln_calloc(1, sizeof(kiln_arena));
    if (a)
        pthread_mutex_init(&a->mu, NULL);
    return a;
}

static void free_block(kiln_arena *a, block *b) {
    a->held -= b->cap;
    free(b->buf.ptr);
    free(b);
}

/* Called with a->mu held; unlocks it (and frees the arena when the session
 * has let go and no block is out). */
static void unlock_maybe_destroy(kiln_arena *a) {
    if (!a->released || a->live_blocks) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    while (a->free_list) {
        block *b = a->free_list;
        a->free_list = b->next_free;
        free_block(a, b);
    }
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void kiln_arena_release(kiln_arena *a) {
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->released = true;
    unlock_maybe_destroy(a);
}

static void block_release(kiln_buffer *buf) {
    block *b = (block *)buf;
    kiln_arena *a = buf->owner;
    pthread_mutex_lock(&a->mu);
    a->live_blocks--;
    if (a->released) {
        free_block(a, b);
        unlock_maybe_destroy(a);
        return;
    }
    b->next_free = a->free_list;
    a->free_list = b;
    pthread_mutex_unlock(&a->mu);
}

kiln_buffer *kiln_arena_alloc(kiln_arena *a, size_t size) {
    size_t need = (size + 63) & ~(size_t)63;
    if (need == 0)
        need = 64;
    pthread_mutex_lock(&a->mu);
    block **best = NULL;
    for (block **p = &a->free_list; *p; p = &(*p)->next_free) {
        size_t cap = (*p)->cap;
        /* Best fit, but do not tie up a block more than twice as large. */
        if (cap >= need && cap / 2 <= need && (!best || cap < (*best)->cap))
            best = p;
    }
    block *b;
    if (best) {
        b = *best;
        *best = b->next_free;
    } else {
        b = kiln_calloc(1, sizeof *b);
        if (!b) {
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        b->buf.ptr = kiln_aligned_alloc(need);
        if (!b->buf.ptr) {
            free(b);
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        b->cap = need;
        a->held += need;
        if (a->held > a->peak)
            a->peak = a->held;
    }
    b->buf.refs = 1;
    b->buf.size = size;
    b->buf.release = block_release;
    b->buf.owner = a;
    b->next_free = NULL;
    a->live_blocks++;
    pthread_mutex_unlock(&a->mu);
    return &b->buf;
}

size_t kiln_arena_peak(const kiln_arena *a) {
    pthread_mutex_lock((pthread_mutex_t *)&a->mu);
    size_t p = a->peak;
    pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
    return p;
}

/* Whether b is one of an arena's blocks (kiln_tensor_make_writable). */
bool kiln_arena_owns_buffer(const kiln_buffer *b) { return b && b->release == block_release; }
