/* Dense matrix multiply: row-major C = alpha * op(A) * op(B) + beta * C.
 *
 * op(A) is M x K, op(B) is K x N; lda/ldb/ldc are row strides of the stored
 * matrices. With beta == 0, C is write-only (may hold garbage or NaN).
 * kiln_sgemm/kiln_dgemm run on the calling thread (CBLAS when kiln is built
 * with KILN_HAVE_BLAS, a cache-blocked portable kernel otherwise); the _par
 * forms split the work over the session's threads.
 */
#ifndef KILN_GEMM_H
#define KILN_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"
#include "kernels/par.h"

void kiln_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void kiln_dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

/* Same contract, parallelised over row or column blocks of C. */
void kiln_sgemm_par(kiln_threads *pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void kiln_dgemm_par(kiln_threads *pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                    const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c,
                    int64_t ldc);

/* kiln parallelises outside BLAS; this pins OpenBLAS to one thread per call
 * so the two thread pools never oversubscribe the cores (idempotent). */
void kiln_gemm_init(void);



/* Integer matrix multiply with wrapping arithmetic (C = op(A) * op(B), or
 * C += when accumulate): int32, int64, uint32, uint64; single thread. */
void kiln_igemm(kiln_dtype dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc, bool accumulate);
/* Whether dims fit the CBLAS int interface (always true without BLAS). */
bool kiln_gemm_dims_ok(int64_t m, int64_t n, int64_t k);
#endif
