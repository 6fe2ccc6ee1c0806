/* Depthwise convolution through a phase-split padded plane (see
 * depthwise.h). One task handles a contiguous run of (image, output channel)
 * planes with its own scratch plane; consecutive output channels of one
 * input channel (a channel multiplier) reuse the copy. */
/* The plane copies: see conv.c on GCC 12's -O2 vectorisation model. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "kernels/depthwise.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DW_X86 1
#else
#define DW_X86 0
#endif

/* Bound on one padded plane (floats): larger geometries take the generic
 * direct kernel. */
#define DW_MAX_SLOT ((int64_t)1 << 26)
/* Multiply-adds a task should have at least before another thread is woken. */
#define DW_TASK_MACS 20000.0
/* Scratch rows are padded to a multiple of the widest vector. */
#define DW_ALIGN 16

typedef struct dw_geo {
    int64_t IH, IW, OH, OW, KH, KW, SH, SW, DH, DW, PH, PW;
    int64_t PR;   /* padded rows: every row a window touches */
    int64_t Lp;   /* floats per phase of a row */
    int64_t rs;   /* floats per row: SW phases */
    int64_t slot; /* floats per plane: PR * rs */
} dw_geo;

static bool dw_geo_make(const kiln_conv_geom *g, dw_geo *d) {
    if (g->nsp < 1 || g->nsp > 2)
        return false;
    int L = g->nsp - 1;
    d->IH = d->OH = d->KH = d->SH = d->DH = 1;
    d->PH = 0;
    if (g->nsp == 2) {
        d->IH = g->in[0];
        d->OH = g->out[0];
        d->KH = g->k[0];
        d->SH = g->stride[0];
        d->DH = g->dil[0];
        d->PH = g->pb[0];
    }
    d->IW = g->in[L];
    d->OW = g->out[L];
    d->KW = g->k[L];
    d->SW = g->stride[L];
    d->DW = g->dil[L];
    d->PW = g->pb[L];
    if (d->OH < 1 || d->OW < 1 || d->IH < 1 || d->IW < 1)
        return false;
    /* every factor is <= KILN_CONV_MAX_DIM (2^30): products of two fit */
    int64_t shmax = (d->KW - 1) * d->DW / d->SW;
    int64_t owr = (d->OW + DW_ALIGN - 1) / DW_ALIGN * DW_ALIGN;
    d->Lp = (owr + shmax + DW_ALIGN - 1) / DW_ALIGN * DW_ALIGN;
    d->PR = (d->OH - 1) * d->SH + (d->KH - 1) * d->DH + 1;
    if (__builtin_mul_overflow(d->SW, d->Lp, &d->rs) || __builtin_mul_overflow(d->PR, d->rs, &d->slot))
        return false;
    return d->slot <= DW_MAX_SLOT;
}

bool kiln_depthwise_suits(const kiln_conv_geom *g) {
    dw_geo d;
    return dw_geo_make(g, &d);
}

/* Range [lo, hi) of i in [0, n) with 0 <= off + i * s < lim. */
static void dw_range(int64_t off, int64_t s, int64_t lim, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = lim - 1 - off < 0 ? 0 : (lim - 1 - off) / s + 1;
    l = l < n ? l : n;
    h = h < n ? h : n;
    *lo = l;
    *hi = h > l ? h : l;
}

/* The padded, phase-split copy of one input channel. */
static void dw_fill(const dw_geo *d, const float *x, float *s) {
    int64_t SW = d->SW, Lp = d->Lp;
    for (int64_t r = 0; r < d->PR; r++) {
        float *row = s + r * d->rs;
        int64_t ih = r - d->PH;
        if (ih < 0 || ih >= d->IH) {
            memset(row, 0, (size_t)d->rs * sizeof(float));
            continue;
        }
        const float *src = x + ih * d->IW;
        for (int64_t q = 0; q < SW; q++) {
            float *dst = row + q * Lp;
            int64_t off = q - d->PW, lo, hi;
            dw_range(off, SW, d->IW, Lp, &lo, &hi);
            /* short runs: plain loops beat the library calls' overhead */
            for (int64_t i = 0; i < lo; i++)
                dst[i] = 0.0f;
            if (SW == 1)
                for (int64_t i = lo; i < hi; i++)
                    dst[i] = src[i + off];
            else if (SW == 2)
                for (int64_t i = lo; i < hi; i++)
                    dst[i] = src[2 * i + off];
            else
                for (int64_t i = lo; i < hi; i++)
                    dst[i] = src[i * SW + off];
            for (int64_t i = hi; i < Lp; i++)
                dst[i] = 0.0f;
        }
    }
}

typedef void (*dw_plane_fn)(const dw_geo *d, const float *s, const float *w, float bias, float *y, bool clamp,
                            float lo, float hi);

/* RB output rows x VB vectors from row oh, column ow, in registers; the taps
 * walk the phases: tap kw reads phase (kw * DW) % SW at shift (kw * DW) / SW. */
#define DW_BLK(RB, VB)                                                                                      \
    do {                                                                                                    \
        DW_VT acc[RB][VB];                                                                                  \
        _Pragma("GCC unroll 4") for (int r_ = 0; r_ < RB; r_++)                                             \
            _Pragma("GCC unroll 4") for (int v_ = 0; v_ < VB; v_++) acc[r_][v_] = vb;                       \
        const float *base = s + oh * srs + ow;                                                              \
        for (int64_t kh = 0; kh < KH; kh++) {                                                               \
            const float *rp = base + kh * drs;                                                              \
            const float *wr = w + kh * KW;                                                                  \
            int64_t q = 0, sh = 0;                                                                          \
            for (int64_t kw = 0; kw < KW; kw++) {                                                           \
                DW_VT wv = DW_SET1(wr[kw]);                                                                 \
                const float *p = rp + q * Lp + sh;                                                          \
                _Pragma("GCC unroll 4") for (int r_ = 0; r_ < RB; r_++)                                     \
                    _Pragma("GCC unroll 4") for (int v_ = 0; v_ < VB; v_++) acc[r_][v_] =                   \
                        DW_FMA(wv, DW_LOAD(p + r_ * srs + v_ * DW_VL), acc[r_][v_]);                        \
                q += dq;                                                                                    \
                sh += dsh;                                                                                  \
                if (q >= SW) {                                                                              \
                    q -= SW;                                                                                \
                    sh++;                                                                                   \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        _Pragma("GCC unroll 4") for (int r_ = 0; r_ < RB; r_++)                                             \
            _Pragma("GCC unroll 4") for (int v_ = 0; v_ < VB; v_++) {                                       \
            DW_VT a_ = acc[r_][v_];                                                                         \
            if (clamp)                                                                                      \
                a_ = DW_MIN(vhi, DW_MAX(vlo, a_));                                                          \
            float *yo_ = y + (oh + r_) * OW + ow + v_ * DW_VL;                                              \
            int64_t n_ = OW - (ow + v_ * DW_VL);                                                            \
            if (n_ >= DW_VL)                                                                                \
                DW_STORE(yo_, a_);                                                                          \
            else if (n_ > 0)                                                                                \
                DW_STOREN(yo_, a_, n_);                                                                     \
        }                                                                                                   \
    } while (0)

/* One output plane: 4-row groups, then 2, then single rows; a row group
 * walks its columns two vectors at a time (four for single rows), the last
 * (partial) vector stored in part. */
#define DW_PLANE(NAME, ATTR)                                                                                \
    ATTR static void NAME(const dw_geo *d, const float *s, const float *w, float bias, float *y, bool clamp, \
                          float lo, float hi) {                                                             \
        const int64_t OH = d->OH, OW = d->OW, KH = d->KH, KW = d->KW, SW = d->SW, Lp = d->Lp;               \
        const int64_t srs = d->SH * d->rs, drs = d->DH * d->rs, dq = d->DW % SW, dsh = d->DW / SW;          \
        const int64_t owr = (OW + DW_VL - 1) / DW_VL * DW_VL;                                               \
        const DW_VT vb = DW_SET1(bias), vlo = DW_SET1(lo), vhi = DW_SET1(hi);                               \
        int64_t oh = 0;                                                                                     \
        for (; oh + 4 <= OH; oh += 4) {                                                                     \
            int64_t ow = 0;                                                                                 \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(4, 2);                                                                               \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(4, 1);                                                                               \
        }                                                                                                   \
        for (; oh + 2 <= OH; oh += 2) {                                                                     \
            int64_t ow = 0;                                                                                 \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(2, 2);                                                                               \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(2, 1);                                                                               \
        }                                                                                                   \
        for (; oh < OH; oh++) {                                                                             \
            int64_t ow = 0;                                                                                 \
            for (; ow + 4 * DW_VL <= owr; ow += 4 * DW_VL)                                                  \
                DW_BLK(1, 4);                                                                               \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(1, 2);                                                                               \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(1, 1);                                                                               \
        }                                                                                                   \
    }

/* ---- portable: 4-lane vector extensions (SSE2 / NEON or scalar code) ---- */
typedef float dw_v4f __attribute__((vector_size(16)));
typedef int dw_v4i __attribute__((vector_size(16)));

static inline dw_v4f dw4_load(const float *p) {
    dw_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* max(a, b) / min(a, b) returning b when b is NaN (a is a bound) */
static inline dw_v4f dw4_max(dw_v4f a, dw_v4f b) {
    dw_v4i m = b < a;
    return (dw_v4f)(((dw_v4i)b & ~m) | ((dw_v4i)a & m));
}
static inline dw_v4f dw4_min(dw_v4f a, dw_v4f b) {
    dw_v4i m = b > a;
    return (dw_v4f)(((dw_v4i)b & ~m) | ((dw_v4i)a & m));
}
static inline void dw4_storen(float *p, dw_v4f v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p[i] = v[i];
}

#define DW_VT dw_v4f
#define DW_VL 4
#define DW_SET1(x) ((dw_v4f){0} + (x))
#define DW_LOAD(p) dw4_load(p)
#define DW_FMA(a, b, c) ((c) + (a) * (b))
#define DW_MAX(a, b) dw4_max(a, b)
#define DW_MIN(a, b) dw4_min(a, b)
#define DW_STORE(p, v) memcpy(p, &(v), sizeof(v))
#define DW_STOREN(p, v, n) dw4_storen(p, v, n)
DW_PLANE(dw_plane_portable, )
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_MAX
#undef DW_MIN
#undef DW_STORE
#undef DW_STOREN

#if DW_X86
/* ---- AVX2 + FMA: 8 lanes ---- */
static const int32_t dw_mask8[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#define DW_VT __m256
#define DW_VL 8
#define DW_SET1(x) _mm256_set1_ps(x)
#define DW_LOAD(p) _mm256_loadu_ps(p)
#define DW_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
/* vmaxps / vminps return the second operand when either is NaN */
#define DW_MAX(a, b) _mm256_max_ps(a, b)
#define DW_MIN(a, b) _mm256_min_ps(a, b)
#define DW_STORE(p, v) _mm256_storeu_ps(p, v)
#define DW_STOREN(p, v, n) _mm256_maskstore_ps(p, _mm256_loadu_si256((const __m256i *)(dw_mask8 + 8 - (n))), v)
DW_PLANE(dw_plane_avx2, __attribute__((target("avx2,fma"))))
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_MAX
#undef DW_MIN
#undef DW_STORE
#undef DW_STOREN

/* ---- AVX-512: 16 lanes ---- */
#define DW_VT __m512
#define DW_VL 16
#define DW_SET1(x) _mm512_set1_ps(x)
#define DW_LOAD(p) _mm512_loadu_ps(p)
#define DW_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define DW_MAX(a, b) _mm512_max_ps(a, b)
#define DW_MIN(a, b) _mm512_min_ps(a, b)
#define DW_STORE(p, v) _mm512_storeu_ps(p, v)
#define DW_STOREN(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1u), v)
DW_PLANE(dw_plane_avx512, __attribute__((target("avx512f"))))
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_MAX
#undef DW_MIN
#undef DW_STORE
#undef DW_STOREN
#endif

static dw_plane_fn dw_pick(kiln_isa want) {
    switch (kiln_isa_pick(want)) {
#if DW_X86
    case KILN_ISA_AVX512:
        return dw_plane_avx512;
    case KILN_ISA_AVX2:
        return dw_plane_avx2;
#endif
    default:
        return dw_plane_portable;
    }
}

/* Tasks for a call: as many as threads, each with >= DW_TASK_MACS. */
static int64_t dw_tasks(const dw_geo *d, const kiln_dw_params *p, const kiln_threads *pool) {
    int64_t items = p->N * p->M;
    double macs = (double)items * (double)d->OH * (double)d->OW * (double)d->KH * (double)d->KW;
    int64_t t = kiln_threads_count(pool);
    double by_work = macs / DW_TASK_MACS;
    if ((double)t > by_work)
        t = (int64_t)by_work;
    if (t > items)
        t = items;
    return t < 1 ? 1 : t;
}

int64_t kiln_depthwise_scratch(const kiln_conv_geom *g, const kiln_dw_params *p, const kiln_threads *pool) {
    dw_geo d;
    if (!dw_geo_make(g, &d))
        return 0;
    return dw_tasks(&d, p, pool) * d.slot; /* slot <= 2^26, tasks <= threads */
}

typedef struct dw_job {
    const dw_geo *d;
    const kiln_dw_params *p;
    const float *x, *w, *b;
    float *y, *scratch;
    int64_t items, tasks;
    dw_plane_fn plane;
} dw_job;

static void dw_run(void *arg, size_t begin, size_t end) {
    const dw_job *j = arg;
    const dw_geo *d = j->d;
    const kiln_dw_params *p = j->p;
    int64_t mult = p->M / p->C, is = d->IH * d->IW, os = d->OH * d->OW, ks = d->KH * d->KW;
    float lo = p->clamp ? p->lo : 0.0f, hi = p->clamp ? p->hi : 0.0f;
    for (size_t t = begin; t < end; t++) {
        int64_t i0 = (int64_t)t * j->items / j->tasks, i1 = ((int64_t)t + 1) * j->items / j->tasks;
        float *s = j->scratch + (int64_t)t * d->slot;
        int64_t have = -1; /* the input plane now in s */
        for (int64_t it = i0; it < i1; it++) {
            int64_t n = it / p->M, oc = it % p->M, plane = n * p->C + oc / mult;
            if (plane != have) {
                dw_fill(d, j->x + plane * is, s);
                have = plane;
            }
            j->plane(d, s, j->w + oc * ks, j->b ? j->b[oc] : 0.0f, j->y + it * os, p->clamp, lo, hi);
        }
    }
}

void kiln_depthwise_f32(const kiln_conv_geom *g, const kiln_dw_params *p, const float *x, const float *w,
                        const float *b, float *y, float *scratch, kiln_threads *pool) {
    dw_geo d;
    if (!dw_geo_make(g, &d) || p->N * p->M == 0)
        return;
    dw_job j = {.d = &d, .p = p, .x = x, .w = w, .b = b, .y = y, .scratch = scratch, .items = p->N * p->M};
    j.tasks = dw_tasks(&d, p, pool);
    j.plane = dw_pick(p->isa);
    kiln_threads_run(pool, (size_t)j.tasks, 1, dw_run, &j);
}
