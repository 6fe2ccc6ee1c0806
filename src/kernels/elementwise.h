/* Shared pieces of the elementwise operators: a row walker for two-input
 * broadcasting with any element types, float16/bfloat16 widening, grains. */
#ifndef KILN_ELEMENTWISE_H
#define KILN_ELEMENTWISE_H

#include "kernels/broadcast.h"

/* Elements per parallel chunk for cheap and for transcendental kernels. */
#define KILN_EW_GRAIN_CHEAP 32768
#define KILN_EW_GRAIN_MATH 4096

/* Work items of a broadcast: rows, with long rows cut into pieces of at most
 * KILN_EW_PIECE elements, so that one long row (same-shape operands merge
 * into a single row) still spreads over the threads. */
#define KILN_EW_PIECE 16384

typedef struct kiln_ew_part {
    const kiln_bcast *b;
    int64_t pieces;    /* per row */
    int64_t piece_len; /* elements per piece (the last one may be shorter) */
} kiln_ew_part;

static inline void kiln_ew_part_init(kiln_ew_part *p, const kiln_bcast *b) {
    p->b = b;
    p->pieces = b->row_len > KILN_EW_PIECE ? (b->row_len + KILN_EW_PIECE - 1) / KILN_EW_PIECE : 1;
    p->piece_len = p->pieces > 1 ? KILN_EW_PIECE : b->row_len;
}

/* Number of work items. */
static inline size_t kiln_ew_part_count(const kiln_ew_part *p) { return (size_t)(p->b->n_rows * p->pieces); }

/* Items per parallel chunk so that a chunk holds about `elems` elements. */
static inline size_t kiln_ew_part_grain(const kiln_ew_part *p, size_t elems) {
    size_t len = p->piece_len > 0 ? (size_t)p->piece_len : 1;
    return len >= elems ? 1 : elems / len;
}

/* Input offsets (off[0..n_in)) and output offset of item t; returns its
 * length. */
static inline int64_t kiln_ew_part_locate(const kiln_ew_part *p, size_t t, int64_t *off, int64_t *zoff) {
    const kiln_bcast *b = p->b;
    int64_t r = (int64_t)t / p->pieces, c0 = ((int64_t)t % p->pieces) * p->piece_len;
    kiln_bcast_row(b, r, off);
    for (int i = 0; i < b->n_in; i++)
        off[i] += b->step[i] ? c0 : 0;
    *zoff = r * b->row_len + c0;
    int64_t len = b->row_len - c0;
    return len < p->piece_len ? len : p->piece_len;
}

/* Walks work items [begin, end) of a two-input broadcast split by `P` (a
 * kiln_ew_part *): inputs XA (type TA) and YA (type TB), output ZA (type
 * TZ). EXPR sees `a` and `c`. The four loop variants keep the inner loops
 * free of index arithmetic. */
#define KILN_EW_BIN_ROWS(P, begin, end, TA, XA, TB, YA, TZ, ZA, EXPR)              \
    do {                                                                           \
        const TA *ew_xa_ = (const TA *)(XA);                                       \
        const TB *ew_ya_ = (const TB *)(YA);                                       \
        TZ *ew_za_ = (TZ *)(ZA);                                                   \
        const kiln_bcast *ew_b_ = (P)->b;                                          \
        for (size_t ew_t_ = (begin); ew_t_ < (end); ew_t_++) {                     \
            int64_t ew_off_[2], ew_zo_;                                            \
            int64_t ew_n_ = kiln_ew_part_locate((P), ew_t_, ew_off_, &ew_zo_);     \
            const TA *xp = ew_xa_ + ew_off_[0];                                    \
            const TB *yp = ew_ya_ + ew_off_[1];                                    \
            TZ *zp = ew_za_ + ew_zo_;                                              \
            if (ew_b_->step[0] && ew_b_->step[1])                                  \
                for (int64_t i = 0; i < ew_n_; i++) {                              \
                    TA a = xp[i];                                                  \
                    TB c = yp[i];                                                  \
                    zp[i] = (TZ)(EXPR);                                            \
                }                                                                  \
            else if (ew_b_->step[0]) {                                             \
                TB c = yp[0];                                                      \
                for (int64_t i = 0; i < ew_n_; i++) {                              \
                    TA a = xp[i];                                                  \
                    zp[i] = (TZ)(EXPR);                                            \
                }                                                                  \
            } else if (ew_b_->step[1]) {                                           \
                TA a = xp[0];                                                      \
                for (int64_t i = 0; i < ew_n_; i++) {                              \
                    TB c = yp[i];                                                  \
                    zp[i] = (TZ)(EXPR);                                            \
                }                                                                  \
            } else {                                                               \
                TA a = xp[0];                                                      \
                TB c = yp[0];                                                      \
                for (int64_t i = 0; i < ew_n_; i++)                                \
                    zp[i] = (TZ)(EXPR);                                            \
            }                                                                      \
        }                                                                          \
    } while (0)

/* Whether a dtype is float16 or bfloat16 (computed through float32). */
static inline bool kiln_ew_is_half(kiln_dtype dt) {
    return dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16;
}

/* Converts n half/bfloat16 values to float and back. */
void kiln_ew_half_to_float(kiln_dtype dt, const uint16_t *src, float *dst, size_t n);
void kiln_ew_float_to_half(kiln_dtype dt, const float *src, uint16_t *dst, size_t n);

/* A float32 copy of a float16/bfloat16 tensor: *out is a shell with the same
 * shape owning new memory; release with kiln_tensor_clear. */
kiln_status kiln_ew_widen(const kiln_tensor *t, kiln_tensor *out);
/* A float32 shell with the given shape and fresh (uninitialised) memory. */
kiln_status kiln_ew_float_scratch(int rank, const int64_t *dims, kiln_tensor *out);

#endif
