/* AVX-512 SGEMM micro-kernel: an 8 x 48 tile in 24 zmm accumulators (8
 * rows of A broadcast from the packed panel, 3 vectors of B), partial
 * columns by masked loads/stores and narrower tiles by fewer vectors.
 * Compiled with target attributes and called only when the CPU has
 * AVX-512F (kernels/sgemm.c checks). */
#include "kernels/sgemm_kernels.h"

#ifdef SG_HAVE_X86
#include <immintrin.h>

#define SG512 __attribute__((target("avx512f"), always_inline)) static inline
#define SG_NV (SG_NR / 16)

SG512 __m512 sg512_finish(__m512 v, float *cr, __mmask16 mk, int r, const float *cb, size_t j, const sg_tail *t) {
    if (!t->first)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, cr));
    else if (t->beta != 0.0f)
        v = _mm512_fmadd_ps(_mm512_set1_ps(t->beta), _mm512_maskz_loadu_ps(mk, cr), v);
    if (t->last) {
        if (t->row_bias)
            v = _mm512_add_ps(v, _mm512_set1_ps(t->row_bias[r]));
        if (cb)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, cb + j));
        if (t->res)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, t->res + (size_t)r * t->ldr + j));
        if (t->clamp) {
            /* constant first: max/min return the second operand for NaN, so NaN passes through */
            v = _mm512_max_ps(_mm512_set1_ps(t->lo), v);
            v = _mm512_min_ps(_mm512_set1_ps(t->hi), v);
        }
    }
    return v;
}

/* One k step into accumulator set u (MR rows x NV vectors). */
#define SG512_STEP(u, p)                                                                                     \
    do {                                                                                                     \
        __m512 b[SG_NV];                                                                                     \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(pb + (p) * SG_NR + 16 * v); \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                               \
            __m512 a = _mm512_set1_ps(pa[(p) * SG_MR + r]);                                                  \
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[u][r][v] =                              \
                _mm512_fmadd_ps(a, b[v], acc[u][r][v]);                                                      \
        }                                                                                                    \
    } while (0)

/* MR rows (1..8) by NV vectors of 16 columns (1..3) */
SG512 void sg512_body(const int MR, const int NV, size_t kc, const float *pa, const float *pb, float *c, size_t ldc,
                      int nr, const sg_tail *t) {
    /* few accumulators (one row, or two narrow ones): split k over more
     * sets to hide the FMA latency */
    enum { U = 4 };
    const int us = MR * NV >= 6 ? 1 : (MR * NV >= 3 ? 2 : 4);
    __m512 acc[U][SG_MR][SG_NV];
    _Pragma("GCC unroll 4") for (int u = 0; u < us; u++) {
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[u][r][v] = _mm512_setzero_ps();
        }
    }
    size_t p = 0;
    if (us > 1)
        for (; p + (size_t)us <= kc; p += (size_t)us) {
            _Pragma("GCC unroll 4") for (int u = 0; u < us; u++) SG512_STEP(u, p + u);
        }
    const char *pf = (const char *)t->next_a;
    if (pf)
        for (; p < kc; p++) {
            _mm_prefetch(pf + p * SG_MR * sizeof(float), _MM_HINT_T0);
            SG512_STEP(0, p);
        }
    for (; p < kc; p++)
        SG512_STEP(0, p);
    _Pragma("GCC unroll 4") for (int u = 1; u < us; u++) {
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[0][r][v] =
                _mm512_add_ps(acc[0][r][v], acc[u][r][v]);
        }
    }
    __mmask16 mk[SG_NV];
    _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {
        int left = nr - 16 * v;
        mk[v] = left >= 16 ? (__mmask16)0xffff : (left > 0 ? (__mmask16)((1u << left) - 1) : 0);
    }
    const float *cb = t->col_bias;
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        float *cr = c + (size_t)r * ldc;
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {
            __m512 x = sg512_finish(acc[0][r][v], cr + 16 * v, mk[v], r, cb, (size_t)(16 * v), t);
            _mm512_mask_storeu_ps(cr + 16 * v, mk[v], x);
        }
    }
}

#define SG512_ROWS(R)                                                                                        \
    do {                                                                                                     \
        if (nv == 3)                                                                                         \
            sg512_body(R, 3, kc, pa, pb, c, ldc, nr, t);                                                     \
        else if (nv == 2)                                                                                    \
            sg512_body(R, 2, kc, pa, pb, c, ldc, nr, t);                                                     \
        else                                                                                                 \
            sg512_body(R, 1, kc, pa, pb, c, ldc, nr, t);                                                     \
    } while (0)

__attribute__((target("avx512f"))) void kiln_sgemm_kernel_avx512(size_t kc, const float *pa, const float *pb,
                                                                  float *c, size_t ldc, int mr, int nr,
                                                                  const sg_tail *t) {
    int nv = (nr + 15) / 16;
    switch (mr) {
    case 8: SG512_ROWS(8); break;
    case 7: SG512_ROWS(7); break;
    case 6: SG512_ROWS(6); break;
    case 5: SG512_ROWS(5); break;
    case 4: SG512_ROWS(4); break;
    case 3: SG512_ROWS(3); break;
    case 2: SG512_ROWS(2); break;
    default: SG512_ROWS(1); break;
    }
}
#endif
