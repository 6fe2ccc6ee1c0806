/* GEMM. float32: kiln's packed kernel (kernels/sgemm.h). float64: CBLAS
 * when available, else a cache-blocked kernel written with GCC vector
 * extensions (4 rows x 2 vectors of accumulators held in registers, packed A
 * and B panels) so it vectorises at -O2 on any target. */
#include "kernels/gemm.h"
#include "kernels/sgemm.h"

#include <pthread.h>
#include <string.h>

#ifdef KILN_HAVE_BLAS
#include <cblas.h>
#endif

#define MR 6

/* Portable kernel, instantiated for float (8 lanes) and double (4 lanes).
 * Blocks: MC x KC of A, KC x NC of B, packed on the stack (72 KiB: small
 * enough for callers' threads). */
#define KILN_GEMM_PORTABLE(NAME, T, VL, MC, KC, NC)                                                          \
    typedef T NAME##_vec __attribute__((vector_size(VL * sizeof(T))));                                       \
    enum { NAME##_NR = 2 * VL };                                                                            \
    static void NAME(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T *a, int64_t lda,     \
                     const T *b, int64_t ldb, T beta, T *c, int64_t ldc) {                                   \
        for (int64_t i = 0; i < m; i++) {                                                                    \
            T *cr = c + i * ldc;                                                                             \
            if (beta == (T)0)                                                                                \
                memset(cr, 0, (size_t)n * sizeof(T));                                                        \
            else if (beta != (T)1)                                                                           \
                for (int64_t j = 0; j < n; j++)                                                              \
                    cr[j] *= beta;                                                                           \
        }                                                                                                    \
        if (k == 0 || alpha == (T)0)                                                                         \
            return;                                                                                          \
        T ap[(MC + MR - 1) / MR * MR * KC] __attribute__((aligned(64)));                                     \
        T bp[KC * NC] __attribute__((aligned(64)));                                                          \
        for (int64_t jc = 0; jc < n; jc += NC) {                                                             \
            int64_t nc = n - jc < NC ? n - jc : NC;                                                          \
            int64_t ncp = (nc + NAME##_NR - 1) / NAME##_NR * NAME##_NR;                                      \
            for (int64_t pc = 0; pc < k; pc += KC) {                                                         \
                int64_t kc = k - pc < KC ? k - pc : KC;                                                      \
                /* pack B block as kc rows of ncp columns, zero-padded */                                   \
                for (int64_t p = 0; p < kc; p++) {                                                           \
                    T *dst = bp + p * ncp;                                                                   \
                    if (!tb)                                                                                 \
                        memcpy(dst, b + (pc + p) * ldb + jc, (size_t)nc * sizeof(T));                        \
                    else                                                                                     \
                        for (int64_t j = 0; j < nc; j++)                                                     \
                            dst[j] = b[(jc + j) * ldb + pc + p];                                             \
                    for (int64_t j = nc; j < ncp; j++)                                                       \
                        dst[j] = 0;                                                                          \
                }                                                                                            \
                for (int64_t ic = 0; ic < m; ic += MC) {                                                     \
                    int64_t mc = m - ic < MC ? m - ic : MC;                                                  \
                    int64_t mcp = (mc + MR - 1) / MR * MR;                                                   \
                    /* pack A (times alpha) as MR-row panels: panel[p][r] */                                 \
                    for (int64_t i = 0; i < mcp; i++) {                                                      \
                        T *dst = ap + (i / MR) * MR * kc + (i % MR);                                         \
                        if (i >= mc)                                                                         \
                            for (int64_t p = 0; p < kc; p++)                                                 \
                                dst[p * MR] = 0;                                                             \
                        else if (!ta) {                                                                      \
                            const T *src = a + (ic + i) * lda + pc;                                          \
                            for (int64_t p = 0; p < kc; p++)                                                 \
                                dst[p * MR] = alpha * src[p];                                                \
                        } else                                                                               \
                            for (int64_t p = 0; p < kc; p++)                                                 \
                                dst[p * MR] = alpha * a[(pc + p) * lda + ic + i];                            \
                    }                                                                                        \
                    for (int64_t jr = 0; jr < ncp; jr += NAME##_NR)                                          \
                        for (int64_t ir = 0; ir < mcp; ir += MR) {                                           \
                            NAME##_vec acc[MR][2];                                                           \
                            memset(acc, 0, sizeof acc);                                                      \
                            const T *pa = ap + ir * kc, *pb = bp + jr;                                       \
                            for (int64_t p = 0; p < kc; p++) {                                               \
                                NAME##_vec b0, b1;                                                           \
                                memcpy(&b0, pb + p * ncp, sizeof b0);                                        \
                                memcpy(&b1, pb + p * ncp + VL, sizeof b1);                                   \
                                for (int r = 0; r < MR; r++) {                                               \
                                    T av = pa[p * MR + r];                                                   \
                                    acc[r][0] += av * b0;                                                    \
                                    acc[r][1] += av * b1;                                                    \
                                }                                                                            \
                            }                                                                                \
                            int64_t rows = mc - ir < MR ? mc - ir : MR;                                      \
                            int64_t cols = nc - jr < NAME##_NR ? nc - jr : NAME##_NR;                        \
                            for (int64_t r = 0; r < rows; r++) {                                             \
                                T tmp[NAME##_NR];                                                            \
                                memcpy(tmp, acc[r], sizeof tmp);                                             \
                                T *cr = c + (ic + ir + r) * ldc + jc + jr;                                   \
                                for (int64_t j = 0; j < cols; j++)                                           \
                                    cr[j] += tmp[j];                                                         \
                            }                                                                                \
                        }                                                                                    \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#ifndef KILN_HAVE_BLAS
KILN_GEMM_PORTABLE(dgemm_portable, double, 4, 48, 64, 96)
#endif

/* float32: kiln's packed kernel (kernels/sgemm.h) with or without BLAS; it
 * picks its instruction set from the CPU, where BLAS builds may not (an
 * OpenBLAS that does not know the CPU falls back to older kernels). */
void kiln_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0)
        return;
    kiln_sgemm_full(NULL, ta, tb, (size_t)m, (size_t)n, (size_t)k, alpha, a, (size_t)lda, b, (size_t)ldb, beta, c,
                    (size_t)ldc, NULL);
}

void kiln_dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
                const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    if (m <= 0 || n <= 0)
        return;
#ifdef KILN_HAVE_BLAS
    if (k == 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0 ? 0.0 : beta * c[i * ldc + j];
        return;
    }
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
#else
    dgemm_portable(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;
static void gemm_init_once(void) {
#if defined(KILN_HAVE_BLAS) && defined(OPENBLAS_VERSION)
    openblas_set_num_threads(1);
#endif
}
void kiln_gemm_init(void) { pthread_once(&gemm_once, gemm_init_once); }

/* Parallel split: contiguous blocks of rows (or of columns when C is wide and
 * short), each a single-threaded GEMM on a sub-matrix. */
typedef struct gemm_job {
    bool dbl, ta, tb, by_rows;
    int64_t m, n, k, lda, ldb, ldc, block;
    double alpha, beta;
    const void *a, *b;
    void *c;
} gemm_job;

static void gemm_range(void *arg, size_t begin, size_t end) {
    const gemm_job *j = arg;
    int64_t lo = (int64_t)begin * j->block, hi = (int64_t)end * j->block;
    int64_t lim = j->by_rows ? j->m : j->n;
    if (hi > lim)
        hi = lim;
    if (lo >= hi)
        return;
    int64_t aoff = 0, boff = 0, coff, m = j->m, n = j->n;
    if (j->by_rows) {
        aoff = j->ta ? lo : lo * j->lda;
        coff = lo * j->ldc;
        m = hi - lo;
    } else {
        boff = j->tb ? lo * j->ldb : lo;
        coff = lo;
        n = hi - lo;
    }
    if (j->dbl)
        kiln_dgemm(j->ta, j->tb, m, n, j->k, j->alpha, (const double *)j->a + aoff, j->lda,
                   (const double *)j->b + boff, j->ldb, j->beta, (double *)j->c + coff, j->ldc);
    else
        kiln_sgemm(j->ta, j->tb, m, n, j->k, (float)j->alpha, (const float *)j->a + aoff, j->lda,
                   (const float *)j->b + boff, j->ldb, (float)j->beta, (float *)j->c + coff, j->ldc);
}

static void gemm_par(kiln_threads *pool, gemm_job *j) {
    kiln_gemm_init();
    int threads = kiln_threads_count(pool);
    double flops = (double)j->m * (double)j->n * (double)(j->k ? j->k : 1);
    if (threads <= 1 || flops < 262144.0 || (j->m < 8 && j->n < 64)) {
        j->by_rows = true;
        j->block = j->m;
        gemm_range(j, 0, 1);
        return;
    }
    j->by_rows = j->m >= 4 * threads || j->m >= j->n;
    int64_t len = j->by_rows ? j->m : j->n;
    int64_t align = j->by_rows ? 4 : 16;
    int64_t parts = threads;
    int64_t block = (len + parts - 1) / parts;
    block = (block + align - 1) / align * align;
    j->block = block;
    kiln_threads_run(pool, (size_t)((len + block - 1) / block), 1, gemm_range, j);
}

void kiln_sgemm_par(kiln_threads *pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0)
        return;
    kiln_sgemm_full(pool, ta, tb, (size_t)m, (size_t)n, (size_t)k, alpha, a, (size_t)lda, b, (size_t)ldb, beta, c,
                    (size_t)ldc, NULL);
}

void kiln_dgemm_par(kiln_threads *pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                    const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c,
                    int64_t ldc) {
    if (m <= 0 || n <= 0)
        return;
    gemm_job j = {true, ta, tb, true, m, n, k, lda, ldb, ldc, m, alpha, beta, a, b, c};
    gemm_par(pool, &j);
}

#define KILN_IGEMM(T)                                                                                      \
    do {                                                                                                   \
        const T *A = a, *B = b;                                                                            \
        T *Cm = c;                                                                                         \
        for (int64_t i = 0; i < m; i++) {                                                                  \
            T *cr = Cm + i * ldc;                                                                          \
            if (!accumulate)                                                                               \
                for (int64_t j = 0; j < n; j++)                                                            \
                    cr[j] = 0;                                                                             \
            for (int64_t p = 0; p < k; p++) {                                                              \
                uint64_t av = (uint64_t)(ta ? A[p * lda + i] : A[i * lda + p]);                            \
                if (!tb) {                                                                                 \
                    const T *br = B + p * ldb;                                                             \
                    for (int64_t j = 0; j < n; j++)                                                        \
                        cr[j] = (T)((uint64_t)cr[j] + av * (uint64_t)br[j]);                               \
                } else                                                                                     \
                    for (int64_t j = 0; j < n; j++)                                                        \
                        cr[j] = (T)((uint64_t)cr[j] + av * (uint64_t)B[j * ldb + p]);                      \
            }                                                                                              \
        }                                                                                                  \
    } while (0)

void kiln_igemm(kiln_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                const void *b, int64_t ldb, void *c, int64_t ldc, bool accumulate) {
    switch (dt) {
    case KILN_DTYPE_INT32: KILN_IGEMM(int32_t); break;
    case KILN_DTYPE_INT64: KILN_IGEMM(int64_t); break;
    case KILN_DTYPE_UINT32: KILN_IGEMM(uint32_t); break;
    case KILN_DTYPE_UINT64: KILN_IGEMM(uint64_t); break;
    default: break;
    }
}

bool kiln_gemm_dims_ok(int64_t m, int64_t n, int64_t k) {
#ifdef KILN_HAVE_BLAS
    return m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX;
#else
    return m >= 0 && n >= 0 && k >= 0;
#endif
}
