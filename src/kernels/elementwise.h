/* Shared pieces of the elementwise operators: a row walker for two-input
 * broadcasting with any element types, float16/bfloat16 widening, grains. */
#ifndef KILN_ELEMENTWISE_H
#define KILN_ELEMENTWISE_H

#include "kernels/broadcast.h"

/* Elements per parallel chunk for cheap and for transcendental kernels. */
#define KILN_EW_GRAIN_CHEAP 32768
#define KILN_EW_GRAIN_MATH 4096

/* Rows per chunk so that a chunk holds about `elems` elements. */
static inline size_t kiln_ew_row_grain(const kiln_bcast *b, size_t elems) {
    size_t len = b->row_len > 0 ? (size_t)b->row_len : 1;
    return len >= elems ? 1 : elems / len;
}

/* Walks rows [begin, end) of a two-input broadcast `b`: inputs XA (type TA)
 * and YA (type TB), output ZA (type TZ). EXPR sees `a` and `c`. The four loop
 * variants keep the inner loops free of index arithmetic. */
#define KILN_EW_BIN_ROWS(b, begin, end, TA, XA, TB, YA, TZ, ZA, EXPR)              \
    do {                                                                           \
        const TA *ew_xa_ = (const TA *)(XA);                                       \
        const TB *ew_ya_ = (const TB *)(YA);                                       \
        TZ *ew_za_ = (TZ *)(ZA);                                                   \
        int64_t ew_n_ = (b)->row_len;                                              \
        for (size_t ew_r_ = (begin); ew_r_ < (end); ew_r_++) {                     \
            int64_t ew_off_[2];                                                    \
            kiln_bcast_row((b), (int64_t)ew_r_, ew_off_);                          \
            const TA *xp = ew_xa_ + ew_off_[0];                                    \
            const TB *yp = ew_ya_ + ew_off_[1];                                    \
            TZ *zp = ew_za_ + (int64_t)ew_r_ * ew_n_;                              \
            if ((b)->step[0] && (b)->step[1])                                      \
                for (int64_t i = 0; i < ew_n_; i++) {                              \
                    TA a = xp[i];                                                  \
                    TB c = yp[i];                                                  \
                    zp[i] = (TZ)(EXPR);                                            \
                }                                                                  \
            else if ((b)->step[0]) {                                               \
                TB c = yp[0];                                                      \
                for (int64_t i = 0; i < ew_n_; i++) {                              \
                    TA a = xp[i];                                                  \
                    zp[i] = (TZ)(EXPR);                                            \
                }                                                                  \
            } else if ((b)->step[1]) {                                             \
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
