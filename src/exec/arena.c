/* The session's memory: blocks handed out as refcounted buffers and taken
 * back when the last tensor using them goes away (liveness decides when:
 * the session drops each value after its last consumer). Freed blocks are
 * reused best-fit, so steady-state runs allocate nothing new. */
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"

typedef struct block {
    kiln_buffer buf; /* must stay first */
    size_t cap;
    struct block *next_free;
} block;

struct kiln_arena {
    block *free_list;
    size_t held, peak; /* bytes obtained from the system */
    size_t live_blocks;
    bool released;
};

kiln_arena *kiln_arena_create(void) { return kiln_calloc(1, sizeof(kiln_arena)); }

static void free_block(kiln_arena *a, block *b) {
    a->held -= b->cap;
    free(b->buf.ptr);
    free(b);
}

static void maybe_destroy(kiln_arena *a) {
    if (!a->released || a->live_blocks)
        return;
    while (a->free_list) {
        block *b = a->free_list;
        a->free_list = b->next_free;
        free_block(a, b);
    }
    free(a);
}

void kiln_arena_release(kiln_arena *a) {
    if (!a)
        return;
    a->released = true;
    maybe_destroy(a);
}

static void block_release(kiln_buffer *buf) {
    block *b = (block *)buf;
    kiln_arena *a = buf->owner;
    a->live_blocks--;
    if (a->released) {
        free_block(a, b);
        maybe_destroy(a);
        return;
    }
    b->next_free = a->free_list;
    a->free_list = b;
}

kiln_buffer *kiln_arena_alloc(kiln_arena *a, size_t size) {
    size_t need = (size + 63) & ~(size_t)63;
    if (need == 0)
        need = 64;
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
        if (!b)
            return NULL;
        b->buf.ptr = kiln_aligned_alloc(need);
        if (!b->buf.ptr) {
            free(b);
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
    return &b->buf;
}

size_t kiln_arena_peak(const kiln_arena *a) { return a->peak; }

/* Whether b is one of an arena's blocks (kiln_tensor_make_writable). */
bool kiln_arena_owns_buffer(const kiln_buffer *b) { return b && b->release == block_release; }
