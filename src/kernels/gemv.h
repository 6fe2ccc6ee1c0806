/* Matrix-vector products against a matrix packed once into 16-row panels:
 * y = init + A x for one or a few vectors x, the product a recurrent cell
 * does at every step with its recurrence weights.
 *
 * Packed layout: panel p holds 16 rows of A (which rows is the packer's
 * choice: a recurrent op puts the gates of 16 hidden units side by side),
 * stored k-major: panel[k * 16 + l] = row l of the panel, column k. Rows a
 * panel does not use are zero. Each call reads every panel once from front
 * to back, whatever the number of vectors, so the weights stream through the
 * cache once per step.
 *
 * The kernel is chosen at run time (kernels/isa.h): AVX-512, AVX2+FMA, or
 * portable C.
 */
#ifndef KILN_GEMV_H
#define KILN_GEMV_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/isa.h"

#define KILN_GEMV_PANEL 16

/* Packs `rows` (<= 16) consecutive rows of a row-major matrix (leading
 * dimension lda, k columns) into one panel of k * 16 floats. */
void kiln_gemv_pack_panel(int64_t rows, int64_t k, const float *a, int64_t lda, float *panel);

/* For vectors r < m and panels p < np:
 *   y[r*ldy + p*16 + l] = init[r*ldi + p*16 + l] + sum_k x[r*ldx + k] * a[(p*k + k')*16 + l]
 * a: np consecutive panels (each k * 16 floats). init NULL means zeros; ldi
 * may be 0 (every vector starts from the same init); init may be y. */
void kiln_sgemv_panels(int64_t m, int64_t np, int64_t k, const float *a, const float *x, int64_t ldx,
                       const float *init, int64_t ldi, float *y, int64_t ldy);

/* The instruction set the recurrent kernels (these and rnn_cell.h) run:
 * the best the CPU has, lowered by the environment variable
 * KILN_TEST_RNN_ISA=portable or avx2 (so tests run the narrower code on a
 * machine that has more). */
kiln_isa kiln_gemv_isa(void);
/* The product on the best set no wider than `isa`, for tests. */
void kiln_sgemv_panels_isa(kiln_isa isa, int64_t m, int64_t np, int64_t k, const float *a, const float *x,
                           int64_t ldx, const float *init, int64_t ldi, float *y, int64_t ldy);

#endif
