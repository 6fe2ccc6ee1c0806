/* kiln's own single-precision GEMM with pre-packed operands and a fused
 * epilogue: row-major C[m,n] = act(A[m,k] * B[k,n] + beta*C + bias + R).
 *
 * The weight side of a layer is packed once (per session) into panels the
 * micro-kernels read directly; the other side is packed per call into a
 * per-thread workspace. Conv multiplies packed W[M, C*kh*kw] by its im2col
 * columns [C*kh*kw, OH*OW] (kiln_sgemm_packed_a); MatMul / Gemm with
 * constant weights multiply activations [m,k] by packed W[k,n]
 * (kiln_sgemm_packed_b).
 *
 * Packed layouts (the same for every instruction set, so a buffer packed
 * once serves whichever kernel runs):
 *   A: ceil(m/8) panels of 8 rows; panel i holds, for p = 0..k-1, the 8
 *      values A[8i + r, p] (r = 0..7) contiguously, rows past m zero.
 *      Panel i starts at float offset 8*k*i.
 *   B: ceil(n/48) panels of 48 columns; panel j holds, for p = 0..k-1, the
 *      48 values B[p, 48j + c] contiguously, columns past n zero. Panel j
 *      starts at float offset 48*k*j. A producer (im2col) may write this
 *      layout directly and call kiln_sgemm_packed_ab.
 * Buffers should be 64-byte aligned (any alignment is correct).
 *
 * (8 rows: convolutions' output channels are multiples of 8; 48 columns:
 * three AVX-512 vectors, narrower edge tiles use fewer.)
 *
 * Micro-kernels: AVX-512 (8x48 tile), AVX2+FMA (4x24 sub-tiles), portable C
 * with vector extensions (4x24); chosen at run time from the CPU, or forced
 * with kiln_sgemm_set_isa / the environment variable KILN_SGEMM_ISA
 * (portable, avx2, avx512). Results agree across them within float rounding.
 *
 * Work is split over the pool's threads by blocks of C when the product is
 * large enough to pay for waking them; small products run on the calling
 * thread. A thread that packs an operand per call keeps a 1.1 MB workspace
 * until it exits (without one, it falls back to one-panel blocks). With beta == 0, C is write-only. C must not overlap A, B, the
 * bias vectors or R.
 */
#ifndef KILN_KERNELS_SGEMM_H
#define KILN_KERNELS_SGEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/par.h"

/* Applied to each tile while it is in registers, after the last k step:
 * C = clamp(A*B + beta*C + row_bias[i] + col_bias[j] + residual[i,j]). */
typedef struct kiln_sgemm_epilogue {
    const float *row_bias; /* m values (Conv: one per output channel), or NULL */
    const float *col_bias; /* n values (Gemm / MatMul bias), or NULL */
    const float *residual; /* m x n with row stride ldr, or NULL */
    size_t ldr;
    bool clamp; /* C = min(max(C, lo), hi): fused Relu (0, +inf) / Clip */
    float lo, hi;
} kiln_sgemm_epilogue;

typedef enum kiln_sgemm_isa {
    KILN_SGEMM_ISA_AUTO = 0, /* the best the CPU supports */
    KILN_SGEMM_ISA_PORTABLE,
    KILN_SGEMM_ISA_AVX2,
    KILN_SGEMM_ISA_AVX512,
} kiln_sgemm_isa;

/* The kernel in use (never AUTO). */
kiln_sgemm_isa kiln_sgemm_get_isa(void);
/* Picks the kernels for later calls (process-wide); false (and no change)
 * when the CPU or the build lacks that instruction set. */
bool kiln_sgemm_set_isa(kiln_sgemm_isa isa);
const char *kiln_sgemm_isa_name(kiln_sgemm_isa isa);

/* Floats in a packed A (m x k) / packed B (k x n); 0 when m, n or k is 0.
 * SIZE_MAX when the count overflows. */
size_t kiln_sgemm_pack_a_size(size_t m, size_t k);
size_t kiln_sgemm_pack_b_size(size_t k, size_t n);

/* Packs alpha * A, A being m x k (trans: stored k x m, A[i,p] = a[p*lda + i]). */
void kiln_sgemm_pack_a(bool trans, size_t m, size_t k, float alpha, const float *a, size_t lda, float *dst);
/* Packs alpha * B, B being k x n (trans: stored n x k, B[p,j] = b[j*ldb + p]). */
void kiln_sgemm_pack_b(bool trans, size_t k, size_t n, float alpha, const float *b, size_t ldb, float *dst);

/* C = act(packed A * B + beta*C + ...), B k x n row-major with row stride ldb.
 * ep may be NULL. */
void kiln_sgemm_packed_a(kiln_threads *pool, size_t m, size_t n, size_t k, const float *pa, const float *b,
                         size_t ldb, float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep);
/* C = act(A * packed B + beta*C + ...), A m x k row-major with row stride lda. */
void kiln_sgemm_packed_b(kiln_threads *pool, size_t m, size_t n, size_t k, const float *a, size_t lda,
                         const float *pb, float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep);
/* Both operands packed. */
void kiln_sgemm_packed_ab(kiln_threads *pool, size_t m, size_t n, size_t k, const float *pa, const float *pb,
                          float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep);
/* Neither packed: C = act(alpha * op(A) * op(B) + beta*C + ...), both packed
 * per call. */
void kiln_sgemm_full(kiln_threads *pool, bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                     const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                     const kiln_sgemm_epilogue *ep);

#endif
