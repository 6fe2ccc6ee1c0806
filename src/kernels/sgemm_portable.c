/* SGEMM micro-kernels written with GCC vector extensions: 4 x 24 sub-tiles
 * of an 8 x 48 tile (12 accumulators of 8 floats: two NEON or SSE registers
 * each, one AVX register). The same source is compiled as the portable
 * kernel and, on x86, as the AVX2+FMA one. This file is built with
 * -ffp-contract=fast so a*b+c becomes a fused multiply-add where the target
 * has one; it needs no C library header (the builtins stand in for memcpy). */
#include "kernels/sgemm_kernels.h"

typedef float sg_v8 __attribute__((vector_size(32)));
typedef int sg_i8 __attribute__((vector_size(32)));

/* Keeps a loaded B vector in a (32-byte, AVX) register: without it GCC
 * folds the load into every multiply-add that uses it, three times the
 * loads. Only where the function's target has AVX. */
#define SG_IN_REG_AVX(v) __asm__("" : "+x"(v))
#define SG_IN_REG_NONE(v) ((void)0)
#if defined(__AVX__)
#define SG_IN_REG_DEFAULT SG_IN_REG_AVX
#else
#define SG_IN_REG_DEFAULT SG_IN_REG_NONE
#endif

#define SG_SUB_MR 4
#define SG_SUB_NR 24
#define SG_SUB_NV 3

/* Offsets the tail's pointers to a sub-tile at (r0, c0). */
static inline sg_tail sg_sub_tail(const sg_tail *t, int r0, int c0) {
    sg_tail s = *t;
    if (s.row_bias)
        s.row_bias += r0;
    if (s.col_bias)
        s.col_bias += c0;
    if (s.res)
        s.res += (size_t)r0 * s.ldr + (size_t)c0;
    if (r0 || c0) /* the first sub-tile prefetches the next tile's A panel */
        s.next_a = NULL;
    return s;
}

/* NAME: kernel name; ATTR: function attributes (target); IN_REG: see above */
#define SG_DEFINE_V8(NAME, ATTR, IN_REG)                                                                              \
    static inline ATTR __attribute__((always_inline)) sg_v8 NAME##_ld(const float *p) {                      \
        sg_v8 v;                                                                                             \
        __builtin_memcpy(&v, p, sizeof v);                                                                             \
        return v;                                                                                            \
    }                                                                                                        \
    static inline ATTR __attribute__((always_inline)) void NAME##_st(float *p, sg_v8 v) {                    \
        __builtin_memcpy(p, &v, sizeof v);                                                                             \
    }                                                                                                        \
    static inline ATTR __attribute__((always_inline)) sg_v8 NAME##_clamp(sg_v8 v, float lo, float hi) {      \
        sg_v8 l = (sg_v8){0} + lo, h = (sg_v8){0} + hi;                                                      \
        sg_i8 below = v < l, above = v > h; /* false for NaN: it passes through */                           \
        sg_i8 vi = (sg_i8)v;                                                                                 \
        vi = (below & (sg_i8)l) | (~below & vi);                                                             \
        vi = (above & (sg_i8)h) | (~above & vi);                                                             \
        return (sg_v8)vi;                                                                                    \
    }                                                                                                        \
    static inline ATTR __attribute__((always_inline)) void NAME##_body(                                      \
        const int MR, size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int nr,             \
        const sg_tail *t) {                                                                                  \
        /* with one row, split k over more accumulators to hide the add latency */                          \
        enum { U = 2 };                                                                                      \
        const int us = MR == 1 ? 2 : 1;                                                                      \
        sg_v8 acc[U][SG_SUB_MR][SG_SUB_NV];                                                                  \
        __builtin_memset(acc, 0, sizeof acc);                                                                \
        size_t p = 0;                                                                                        \
        if (us > 1)                                                                                          \
            for (; p + (size_t)us <= kc; p += (size_t)us) {                                                  \
                _Pragma("GCC unroll 2") for (int u = 0; u < us; u++) {                                       \
                    sg_v8 b[SG_SUB_NV];                                                                      \
                    _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) b[v] =                       \
                        NAME##_ld(pb + (p + u) * SG_NR + 8 * v);                                             \
                    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                                   \
                        float a = pa[(p + u) * SG_MR + r];                                                   \
                        _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) acc[u][r][v] += a * b[v]; \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        const float *pf = t->next_a;                                                                         \
        for (; p < kc; p++) {                                                                                \
            if (pf)                                                                                          \
                __builtin_prefetch(pf + p * SG_MR);                                                          \
            sg_v8 b[SG_SUB_NV];                                                                              \
            _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) {                                    \
                b[v] = NAME##_ld(pb + p * SG_NR + 8 * v);                                                    \
                IN_REG(b[v]);                                                                                \
            }                                                                                                \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                                           \
                float a = pa[p * SG_MR + r];                                                                 \
                _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) acc[0][r][v] += a * b[v];        \
            }                                                                                                \
        }                                                                                                    \
        if (us > 1) {                                                                                        \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                                           \
                _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) acc[0][r][v] += acc[1][r][v];    \
            }                                                                                                \
        }                                                                                                    \
        if (nr == SG_SUB_NR) {                                                                               \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                                           \
                float *cr = c + (size_t)r * ldc;                                                             \
                _Pragma("GCC unroll 3") for (int v = 0; v < SG_SUB_NV; v++) {                                \
                    sg_v8 x = acc[0][r][v];                                                                  \
                    if (!t->first)                                                                           \
                        x += NAME##_ld(cr + 8 * v);                                                          \
                    else if (t->beta != 0.0f)                                                                \
                        x += t->beta * NAME##_ld(cr + 8 * v);                                                \
                    if (t->last) {                                                                           \
                        if (t->row_bias)                                                                     \
                            x += t->row_bias[r];                                                             \
                        if (t->col_bias)                                                                     \
                            x += NAME##_ld(t->col_bias + 8 * v);                                             \
                        if (t->res)                                                                          \
                            x += NAME##_ld(t->res + (size_t)r * t->ldr + 8 * v);                             \
                        if (t->clamp)                                                                        \
                            x = NAME##_clamp(x, t->lo, t->hi);                                               \
                    }                                                                                        \
                    NAME##_st(cr + 8 * v, x);                                                                \
                }                                                                                            \
            }                                                                                                \
        } else {                                                                                             \
            float tmp[SG_SUB_MR][SG_SUB_NR];                                                                 \
            __builtin_memcpy(tmp, acc[0], sizeof tmp);                                                       \
            for (int r = 0; r < MR; r++)                                                                     \
                for (int j = 0; j < nr; j++)                                                                 \
                    c[(size_t)r * ldc + (size_t)j] = sg_finish(tmp[r][j], c, r, j, ldc, t);                  \
        }                                                                                                    \
    }                                                                                                        \
    ATTR void NAME(size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int mr, int nr,         \
                   const sg_tail *t) {                                                                       \
        for (int r0 = 0; r0 < mr; r0 += SG_SUB_MR)                                                           \
            for (int c0 = 0; c0 < nr; c0 += SG_SUB_NR) {                                                     \
                int rows = mr - r0 < SG_SUB_MR ? mr - r0 : SG_SUB_MR;                                        \
                int cols = nr - c0 < SG_SUB_NR ? nr - c0 : SG_SUB_NR;                                        \
                sg_tail s = sg_sub_tail(t, r0, c0);                                                          \
                const float *a = pa + r0, *b = pb + c0;                                                      \
                float *cc = c + (size_t)r0 * ldc + (size_t)c0;                                               \
                switch (rows) {                                                                              \
                case 4: NAME##_body(4, kc, a, b, cc, ldc, cols, &s); break;                                  \
                case 3: NAME##_body(3, kc, a, b, cc, ldc, cols, &s); break;                                  \
                case 2: NAME##_body(2, kc, a, b, cc, ldc, cols, &s); break;                                  \
                default: NAME##_body(1, kc, a, b, cc, ldc, cols, &s); break;                                 \
                }                                                                                            \
            }                                                                                                \
    }

SG_DEFINE_V8(kiln_sgemm_kernel_portable, , SG_IN_REG_DEFAULT)
#ifdef SG_HAVE_X86
SG_DEFINE_V8(kiln_sgemm_kernel_avx2, __attribute__((target("avx2,fma"))), SG_IN_REG_AVX)
#endif
