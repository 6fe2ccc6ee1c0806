/* AVX-512 SGEMM micro-kernel: a 12 x 32 tile in 24 zmm accumulators, A
 * broadcast from the packed panel, partial columns by masked loads/stores.
 * Compiled with target attributes and called only when the CPU has
 * AVX-512F (kernels/sgemm.c checks). */
#include "kernels/sgemm_kernels.h"

#ifdef SG_HAVE_X86
#include <immintrin.h>

#define SG512 __attribute__((target("avx512f"), always_inline)) static inline

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

/* MR rows (1..12) by NV vectors of 16 columns (1: tiles of at most 16) */
SG512 void sg512_body(const int MR, const int NV, size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int nr,
                      const sg_tail *t) {
    /* one or two rows: split k over more accumulators to hide the FMA latency */
    enum { U = 4 };
    const int us = MR == 1 ? 4 : (MR == 2 ? 2 : 1);
    __m512 acc[U][SG_MR][2];
    _Pragma("GCC unroll 4") for (int u = 0; u < us; u++) {
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
            acc[u][r][0] = _mm512_setzero_ps();
            acc[u][r][1] = _mm512_setzero_ps(); /* unused when NV == 1: the compiler drops it */
        }
    }
    size_t p = 0;
    if (us > 1)
        for (; p + (size_t)us <= kc; p += (size_t)us) {
            _Pragma("GCC unroll 4") for (int u = 0; u < us; u++) {
                __m512 b0 = _mm512_loadu_ps(pb + (p + u) * SG_NR);
                __m512 b1 = NV > 1 ? _mm512_loadu_ps(pb + (p + u) * SG_NR + 16) : b0;
                _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
                    __m512 a = _mm512_set1_ps(pa[(p + u) * SG_MR + r]);
                    acc[u][r][0] = _mm512_fmadd_ps(a, b0, acc[u][r][0]);
                    if (NV > 1)
                        acc[u][r][1] = _mm512_fmadd_ps(a, b1, acc[u][r][1]);
                }
            }
        }
    const char *pf = (const char *)t->next_a;
    if (pf)
        for (; p < kc; p++) {
            _mm_prefetch(pf + p * SG_MR * sizeof(float), _MM_HINT_T0);
            __m512 b0 = _mm512_loadu_ps(pb + p * SG_NR);
            __m512 b1 = NV > 1 ? _mm512_loadu_ps(pb + p * SG_NR + 16) : b0;
            _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
                __m512 a = _mm512_set1_ps(pa[p * SG_MR + r]);
                acc[0][r][0] = _mm512_fmadd_ps(a, b0, acc[0][r][0]);
                if (NV > 1)
                    acc[0][r][1] = _mm512_fmadd_ps(a, b1, acc[0][r][1]);
            }
        }
    for (; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(pb + p * SG_NR);
        __m512 b1 = NV > 1 ? _mm512_loadu_ps(pb + p * SG_NR + 16) : b0;
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(pa[p * SG_MR + r]);
            acc[0][r][0] = _mm512_fmadd_ps(a, b0, acc[0][r][0]);
            if (NV > 1)
                acc[0][r][1] = _mm512_fmadd_ps(a, b1, acc[0][r][1]);
        }
    }
    _Pragma("GCC unroll 4") for (int u = 1; u < us; u++) {
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
            acc[0][r][0] = _mm512_add_ps(acc[0][r][0], acc[u][r][0]);
            if (NV > 1)
                acc[0][r][1] = _mm512_add_ps(acc[0][r][1], acc[u][r][1]);
        }
    }
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
    const float *cb = t->col_bias;
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
        float *cr = c + (size_t)r * ldc;
        __m512 v0 = sg512_finish(acc[0][r][0], cr, m0, r, cb, 0, t);
        _mm512_mask_storeu_ps(cr, m0, v0);
        if (NV > 1 && m1) {
            __m512 v1 = sg512_finish(acc[0][r][1], cr + 16, m1, r, cb, 16, t);
            _mm512_mask_storeu_ps(cr + 16, m1, v1);
        }
    }
}

__attribute__((target("avx512f"))) void kiln_sgemm_kernel_avx512(size_t kc, const float *pa, const float *pb,
                                                                  float *c, size_t ldc, int mr, int nr,
                                                                  const sg_tail *t) {
    int nv = nr > 16 ? 2 : 1;
    switch (mr) {
    case 12:
        if (nv > 1)
            sg512_body(12, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(12, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 11:
        if (nv > 1)
            sg512_body(11, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(11, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 10:
        if (nv > 1)
            sg512_body(10, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(10, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 9:
        if (nv > 1)
            sg512_body(9, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(9, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 8:
        if (nv > 1)
            sg512_body(8, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(8, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 7:
        if (nv > 1)
            sg512_body(7, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(7, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 6:
        if (nv > 1)
            sg512_body(6, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(6, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 5:
        if (nv > 1)
            sg512_body(5, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(5, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 4:
        if (nv > 1)
            sg512_body(4, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(4, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 3:
        if (nv > 1)
            sg512_body(3, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(3, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    case 2:
        if (nv > 1)
            sg512_body(2, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(2, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    default:
        if (nv > 1)
            sg512_body(1, 2, kc, pa, pb, c, ldc, nr, t);
        else
            sg512_body(1, 1, kc, pa, pb, c, ldc, nr, t);
        break;
    }
}
#endif
