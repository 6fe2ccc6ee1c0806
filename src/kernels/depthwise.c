/* Depthwise convolution (see depthwise.h). One task handles a contiguous
 * run of (image, output channel) planes with its own scratch; consecutive
 * output channels of one input channel (a channel multiplier) reuse the
 * copy of that channel. Planes with narrow rows and large windows take a
 * channel-blocked form instead: lanes hold channels, not columns. */
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

/* Bound on one task's scratch (floats, 16 MiB): larger geometries take the
 * direct kernel of conv.h. */
#define DW_MAX_SLOT ((int64_t)1 << 22)
/* Multiply-adds a task should have at least before another thread is woken. */
#define DW_TASK_MACS 20000.0
/* Output rows are computed in whole vectors of up to this many lanes. */
#define DW_ALIGN 16
/* The channel-blocked form: rows narrower than this, windows of at least
 * this many taps. */
#define DW_CBLK_MAX_OW 9
#define DW_CBLK_MIN_TAPS 16

typedef struct dw_geo {
    int64_t IH, IW, OH, OW, KH, KW, SH, SW, DH, DW, PH, PW;
    int64_t PR;     /* padded rows: every row a window touches */
    int64_t r0, r1; /* the rows holding input (the others stay zero) */
    int64_t Lp;     /* floats per phase of a row */
    int64_t rs;     /* floats per row: SW phases */
    int64_t slot;   /* floats of scratch per task */
    /* channel-blocked form: DW_ALIGN channels side by side, [PR][Wc][lanes]
     * input, [KS][lanes] weights, [OS][lanes] output */
    bool cblk;
    int64_t Wc;     /* padded columns */
    int64_t cw, cy; /* offsets of the weights and the output in the slot */
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
    d->Lp = owr + shmax;
    d->PR = (d->OH - 1) * d->SH + (d->KH - 1) * d->DH + 1;
    d->r0 = d->PH < d->PR ? d->PH : d->PR;
    d->r1 = d->PH + d->IH < d->PR ? d->PH + d->IH : d->PR;
    if (__builtin_mul_overflow(d->SW, d->Lp, &d->rs) || __builtin_mul_overflow(d->PR, d->rs, &d->slot))
        return false;
    /* Rows narrower than a vector waste lanes in the plane form; with
     * enough taps per output, transposing DW_ALIGN channels into the lanes
     * pays off (measured: 5x5 at 7x7; not at 14x14, nor 3x3). */
    d->cblk = d->OW < DW_CBLK_MAX_OW && d->KH * d->KW >= DW_CBLK_MIN_TAPS;
    if (d->cblk) {
        d->Wc = (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1; /* each product <= 2^60 */
        int64_t xs, os = d->OH * d->OW;
        if (d->Wc > DW_MAX_SLOT || __builtin_mul_overflow(d->PR, d->Wc * DW_ALIGN, &xs) || xs > DW_MAX_SLOT)
            d->cblk = false;
        else {
            d->cw = xs;
            d->cy = xs + d->KH * d->KW * DW_ALIGN;
            d->slot = d->cy + os * DW_ALIGN;
        }
    }
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

typedef float dw_v8f __attribute__((vector_size(32)));
typedef int dw_v8i __attribute__((vector_size(32)));
#if defined(__clang__)
#define DW_EVENS(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define DW_ODDS(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#else
#define DW_EVENS(a, b) __builtin_shuffle(a, b, (dw_v8i){0, 2, 4, 6, 8, 10, 12, 14})
#define DW_ODDS(a, b) __builtin_shuffle(a, b, (dw_v8i){1, 3, 5, 7, 9, 11, 13, 15})
#endif

/* The phase-split copy of one input channel into a plane whose padding is
 * already zero: only the positions holding input are written (the same for
 * every channel). Padded column c = PW + iw lands in phase c % SW at c / SW. */
#define DW_FILL(NAME, ATTR)                                                                                 \
    ATTR static void NAME(const dw_geo *d, const float *x, float *s) {                                      \
        const int64_t SW = d->SW, Lp = d->Lp, IW = d->IW, PW = d->PW;                                       \
        if (SW == 1) {                                                                                      \
            int64_t lo = PW < Lp ? PW : Lp, hi = PW + IW < Lp ? PW + IW : Lp;                               \
            for (int64_t r = d->r0; r < d->r1; r++) {                                                       \
                /* short rows: a plain loop beats the library call */                                       \
                float *dst = s + r * d->rs + lo;                                                            \
                const float *src = x + (r - d->PH) * IW;                                                    \
                for (int64_t i = 0; i < hi - lo; i++)                                                       \
                    dst[i] = src[i];                                                                        \
            }                                                                                               \
        } else if (SW == 2) {                                                                               \
            /* x[2k] goes to phase PW % 2 at PW / 2 + k, x[2k + 1] to phase (PW + 1) % 2 */                 \
            int64_t be = PW / 2, bo = (PW + 1) / 2;                                                         \
            int64_t ne = (IW + 1) / 2, no = IW / 2;                                                         \
            ne = be >= Lp ? 0 : ne < Lp - be ? ne : Lp - be;                                                \
            no = bo >= Lp ? 0 : no < Lp - bo ? no : Lp - bo;                                                \
            int64_t nv = (ne < no ? ne : no) / 8;                                                           \
            for (int64_t r = d->r0; r < d->r1; r++) {                                                       \
                const float *src = x + (r - d->PH) * IW;                                                    \
                float *e = s + r * d->rs + (PW % 2) * Lp + be;                                              \
                float *o = s + r * d->rs + ((PW + 1) % 2) * Lp + bo;                                        \
                for (int64_t k = 0; k < nv * 8; k += 8) {                                                   \
                    dw_v8f a, b, ev, od;                                                                    \
                    memcpy(&a, src + 2 * k, sizeof a);                                                      \
                    memcpy(&b, src + 2 * k + 8, sizeof b);                                                  \
                    ev = DW_EVENS(a, b);                                                                    \
                    od = DW_ODDS(a, b);                                                                     \
                    memcpy(e + k, &ev, sizeof ev);                                                          \
                    memcpy(o + k, &od, sizeof od);                                                          \
                }                                                                                           \
                for (int64_t k = nv * 8; k < ne; k++)                                                       \
                    e[k] = src[2 * k];                                                                      \
                for (int64_t k = nv * 8; k < no; k++)                                                       \
                    o[k] = src[2 * k + 1];                                                                  \
            }                                                                                               \
        } else {                                                                                            \
            for (int64_t q = 0; q < SW; q++) {                                                              \
                int64_t off = q - PW, lo, hi;                                                               \
                dw_range(off, SW, IW, Lp, &lo, &hi);                                                        \
                for (int64_t r = d->r0; r < d->r1; r++) {                                                   \
                    const float *src = x + (r - d->PH) * IW;                                                \
                    float *dst = s + r * d->rs + q * Lp;                                                    \
                    for (int64_t i = lo; i < hi; i++)                                                       \
                        dst[i] = src[i * SW + off];                                                         \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }

typedef void (*dw_plane_fn)(const dw_geo *d, const float *s, const float *w, float bias, float *y, bool clamp,
                            float lo, float hi);
typedef void (*dw_fill_fn)(const dw_geo *d, const float *x, float *s);
typedef void (*dw_cblk_fn)(const dw_geo *d, const float *xs, const float *wp, const float *bp, float *ys, bool clamp,
                           float lo, float hi);
/* One instruction set's functions: the plane copy, the generic plane and
 * the specialised ones (dw_form's order), the channel-blocked form. */
typedef struct dw_impl {
    dw_fill_fn fill;
    dw_plane_fn plane[5];
    dw_cblk_fn cblk;
    int lanes; /* of the channel-blocked form */
} dw_impl;

/* One tap: accumulators A += weight WV * the RB x VB vectors at P. */
#define DW_TAP(A, WV, P, RB, VB)                                                                            \
    _Pragma("GCC unroll 8") for (int r_ = 0; r_ < RB; r_++)                                                 \
        _Pragma("GCC unroll 8") for (int v_ = 0; v_ < VB; v_++) A[r_][v_] =                                 \
            DW_FMA(WV, DW_LOAD((P) + r_ * srs + v_ * DW_VL), A[r_][v_])

/* The next tap's phase q and shift sh: DW columns further along the row. */
#define DW_STEP()                                                                                           \
    do {                                                                                                    \
        q += dq;                                                                                            \
        sh += dsh;                                                                                          \
        if (q >= SW) {                                                                                      \
            q -= SW;                                                                                        \
            sh++;                                                                                           \
        }                                                                                                   \
    } while (0)

/* RB output rows x VB vectors from row oh, column ow, built in registers:
 * tap kw reads phase (kw * DW) % SW at shift (kw * DW) / SW. With few
 * accumulators (RB * VB <= 4) odd taps go to a second set, so that 8
 * chains of multiply-adds hide the latency. The kernel rows stay a loop:
 * unrolled too, every tap's address would become an induction variable of
 * its own (spilled). */
#define DW_BLK(RB, VB, UNR)                                                                                 \
    do {                                                                                                    \
        enum { SPLIT_ = (RB) * (VB) <= 4 };                                                                 \
        DW_VT acc[RB][VB], acc2[RB][VB];                                                                    \
        _Pragma("GCC unroll 8") for (int r_ = 0; r_ < RB; r_++)                                             \
            _Pragma("GCC unroll 8") for (int v_ = 0; v_ < VB; v_++) {                                       \
            acc[r_][v_] = vb;                                                                               \
            acc2[r_][v_] = vz;                                                                              \
        }                                                                                                   \
        const float *rp = s + oh * srs + ow, *wr = w;                                                       \
        _Pragma("GCC unroll 1") for (int64_t kh = 0; kh < KH; kh++, rp += drs, wr += KW) {                  \
            int64_t q = 0, sh = 0, kw = 0;                                                                  \
            if (SPLIT_)                                                                                     \
                UNR for (; kw + 1 < KW; kw += 2) {                                                          \
                    DW_VT w0 = DW_SET1(wr[kw]), w1 = DW_SET1(wr[kw + 1]);                                   \
                    const float *p0 = rp + q * Lp + sh;                                                     \
                    DW_STEP();                                                                              \
                    DW_TAP(acc, w0, p0, RB, VB);                                                            \
                    DW_TAP(acc2, w1, rp + q * Lp + sh, RB, VB);                                             \
                    DW_STEP();                                                                              \
                }                                                                                           \
            UNR for (; kw < KW; kw++) {                                                                     \
                DW_VT w0 = DW_SET1(wr[kw]);                                                                 \
                DW_TAP(acc, w0, rp + q * Lp + sh, RB, VB);                                                  \
                DW_STEP();                                                                                  \
            }                                                                                               \
        }                                                                                                   \
        _Pragma("GCC unroll 8") for (int r_ = 0; r_ < RB; r_++)                                             \
            _Pragma("GCC unroll 8") for (int v_ = 0; v_ < VB; v_++) {                                       \
            DW_VT a_ = SPLIT_ ? DW_ADD(acc[r_][v_], acc2[r_][v_]) : acc[r_][v_];                            \
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

/* One output plane in groups of 4 rows (a last group of 3 moved up to end
 * at the last row: the row it computes twice gets the same values), then 2
 * and 1 rows; a group walks its columns two vectors at a time (eight for
 * single rows), the last (partial) vector stored in part.
 * KH_ .. DW_: the window, as constants in the specialised forms (whose taps
 * UNR unrolls) or read from d. */
#define DW_PLANE(NAME, ATTR, KH_, KW_, SW_, DH_, DW_, UNR)                                                   \
    ATTR static void NAME(const dw_geo *d, const float *s, const float *w, float bias, float *y, bool clamp, \
                          float lo, float hi) {                                                             \
        const int64_t OH = d->OH, OW = d->OW, KH = KH_, KW = KW_, SW = SW_, Lp = d->Lp;                     \
        const int64_t srs = d->SH * d->rs, drs = (DH_) * d->rs, dq = (DW_) % SW, dsh = (DW_) / SW;          \
        const int64_t owr = (OW + DW_VL - 1) / DW_VL * DW_VL;                                               \
        const DW_VT vb = DW_SET1(bias), vz = DW_SET1(0.0f), vlo = DW_SET1(lo), vhi = DW_SET1(hi);           \
        int64_t oh = 0;                                                                                     \
        /* a last 3 rows as a group moved up (one row twice), 2 and 1 as such */                            \
        int64_t end4 = OH >= 4 && OH % 4 == 3 ? OH : OH / 4 * 4;                                            \
        for (; oh < end4; oh += 4) {                                                                        \
            if (oh + 4 > OH)                                                                                \
                oh = OH - 4;                                                                                \
            int64_t ow = 0;                                                                                 \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(4, 2, UNR);                                                                          \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(4, 1, UNR);                                                                          \
        }                                                                                                   \
        oh = end4;                                                                                          \
        for (; oh + 2 <= OH; oh += 2) {                                                                     \
            int64_t ow = 0;                                                                                 \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(2, 2, UNR);                                                                          \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(2, 1, UNR);                                                                          \
        }                                                                                                   \
        for (; oh < OH; oh++) {                                                                             \
            int64_t ow = 0;                                                                                 \
            for (; ow + 8 * DW_VL <= owr; ow += 8 * DW_VL)                                                  \
                DW_BLK(1, 8, UNR);                                                                          \
            for (; ow + 2 * DW_VL <= owr; ow += 2 * DW_VL)                                                  \
                DW_BLK(1, 2, UNR);                                                                          \
            for (; ow < OW; ow += DW_VL)                                                                    \
                DW_BLK(1, 1, UNR);                                                                          \
        }                                                                                                   \
    }

/* Channel-blocked form: DW_VL channels in the lanes. xs [PR][Wc][VL] holds
 * the padded input planes, wp [KS][VL] the weights, bp [VL] the biases;
 * ys [OS][VL] gets the outputs. Eight output positions at a time share each
 * weight load (the last group repeats its final position). */
#define DW_CBLK(NAME, ATTR)                                                                                 \
    ATTR static void NAME(const dw_geo *d, const float *xs, const float *wp, const float *bp, float *ys,     \
                          bool clamp, float lo, float hi) {                                                 \
        const int64_t OW = d->OW, OS = d->OH * d->OW, KH = d->KH, KW = d->KW, Wc = d->Wc;                    \
        const int64_t rowstep = d->DH * Wc * DW_VL, colstep = d->DW * DW_VL;                                \
        const DW_VT vb = DW_LOAD(bp), vlo = DW_SET1(lo), vhi = DW_SET1(hi);                                 \
        for (int64_t o = 0; o < OS; o += 8) {                                                               \
            int64_t nb = OS - o < 8 ? OS - o : 8;                                                           \
            const float *pp[8];                                                                             \
            DW_VT acc[8];                                                                                   \
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                                           \
                int64_t oo = o + (i < nb ? i : nb - 1), oh = oo / OW, ow = oo % OW;                         \
                pp[i] = xs + (oh * d->SH * Wc + ow * d->SW) * DW_VL;                                        \
                acc[i] = vb;                                                                                \
            }                                                                                               \
            const float *wt = wp;                                                                           \
            _Pragma("GCC unroll 1") for (int64_t kh = 0; kh < KH; kh++) {                                   \
                int64_t off = kh * rowstep;                                                                 \
                for (int64_t kw = 0; kw < KW; kw++, off += colstep, wt += DW_VL) {                          \
                    DW_VT wv = DW_LOAD(wt);                                                                 \
                    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) acc[i] =                            \
                        DW_FMA(wv, DW_LOAD(pp[i] + off), acc[i]);                                           \
                }                                                                                           \
            }                                                                                               \
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                                           \
                DW_VT a_ = acc[i];                                                                          \
                if (clamp)                                                                                  \
                    a_ = DW_MIN(vhi, DW_MAX(vlo, a_));                                                      \
                if (i < nb)                                                                                 \
                    DW_STORE(ys + (o + i) * DW_VL, a_);                                                     \
            }                                                                                               \
        }                                                                                                   \
    }

#define DW_UNROLL_NONE
#define DW_UNROLL_5 _Pragma("GCC unroll 5")
/* The generic plane, the common windows (3x3 and 5x5, stride 1 and 2 along
 * the row, no dilation) with their taps unrolled, the plane copy and the
 * channel-blocked form. */
#define DW_VARIANTS(SFX, ATTR)                                                                              \
    DW_PLANE(dw_plane_##SFX, ATTR, d->KH, d->KW, d->SW, d->DH, d->DW, DW_UNROLL_NONE)                       \
    DW_PLANE(dw_plane_##SFX##_k3s1, ATTR, 3, 3, 1, 1, 1, DW_UNROLL_5)                                       \
    DW_PLANE(dw_plane_##SFX##_k3s2, ATTR, 3, 3, 2, 1, 1, DW_UNROLL_5)                                       \
    DW_PLANE(dw_plane_##SFX##_k5s1, ATTR, 5, 5, 1, 1, 1, DW_UNROLL_5)                                       \
    DW_PLANE(dw_plane_##SFX##_k5s2, ATTR, 5, 5, 2, 1, 1, DW_UNROLL_5)                                       \
    DW_FILL(dw_fill_##SFX, ATTR)                                                                            \
    DW_CBLK(dw_cblk_##SFX, ATTR)                                                                            \
    static const dw_impl dw_impl_##SFX = {dw_fill_##SFX,                                                    \
                                          {dw_plane_##SFX, dw_plane_##SFX##_k3s1, dw_plane_##SFX##_k3s2,     \
                                           dw_plane_##SFX##_k5s1, dw_plane_##SFX##_k5s2},                    \
                                          dw_cblk_##SFX, DW_VL};

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
#define DW_ADD(a, b) ((a) + (b))
#define DW_MAX(a, b) dw4_max(a, b)
#define DW_MIN(a, b) dw4_min(a, b)
#define DW_STORE(p, v) memcpy(p, &(v), sizeof(v))
#define DW_STOREN(p, v, n) dw4_storen(p, v, n)
DW_VARIANTS(portable, )
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_ADD
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
#define DW_ADD(a, b) _mm256_add_ps(a, b)
/* vmaxps / vminps return the second operand when either is NaN */
#define DW_MAX(a, b) _mm256_max_ps(a, b)
#define DW_MIN(a, b) _mm256_min_ps(a, b)
#define DW_STORE(p, v) _mm256_storeu_ps(p, v)
#define DW_STOREN(p, v, n) _mm256_maskstore_ps(p, _mm256_loadu_si256((const __m256i *)(dw_mask8 + 8 - (n))), v)
DW_VARIANTS(avx2, __attribute__((target("avx2,fma"))))
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_ADD
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
#define DW_ADD(a, b) _mm512_add_ps(a, b)
#define DW_MAX(a, b) _mm512_max_ps(a, b)
#define DW_MIN(a, b) _mm512_min_ps(a, b)
#define DW_STORE(p, v) _mm512_storeu_ps(p, v)
#define DW_STOREN(p, v, n) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1u), v)
DW_VARIANTS(avx512, __attribute__((target("avx512f"))))
#undef DW_VT
#undef DW_VL
#undef DW_SET1
#undef DW_LOAD
#undef DW_FMA
#undef DW_ADD
#undef DW_MAX
#undef DW_MIN
#undef DW_STORE
#undef DW_STOREN
#endif

static const dw_impl *dw_pick(kiln_isa isa) {
    switch (isa) {
#if DW_X86
    case KILN_ISA_AVX512:
        return &dw_impl_avx512;
    case KILN_ISA_AVX2:
        return &dw_impl_avx2;
#endif
    default:
        return &dw_impl_portable;
    }
}

/* Index into dw_impl.plane for geometry d. */
static int dw_form(const dw_geo *d) {
    if (d->KH != d->KW || d->DH != 1 || d->DW != 1 || (d->KH != 3 && d->KH != 5) || d->SW > 2)
        return 0;
    return (d->KH == 3 ? 1 : 3) + (d->SW == 2);
}

/* Tasks for a call: as many as threads, each with >= DW_TASK_MACS. */
static int64_t dw_tasks(const dw_geo *d, const kiln_dw_params *p, const kiln_threads *pool) {
    /* the channel-blocked form's units are blocks of at most DW_ALIGN channels */
    int64_t items = p->N * (d->cblk ? (p->M + DW_ALIGN - 1) / DW_ALIGN : p->M);
    double macs = (double)p->N * (double)p->M * (double)d->OH * (double)d->OW * (double)d->KH * (double)d->KW;
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
    return dw_tasks(&d, p, pool) * d.slot; /* slot <= 2^22, tasks <= threads */
}

typedef struct dw_job {
    const dw_geo *d;
    const kiln_dw_params *p;
    const float *x, *w, *b;
    float *y, *scratch;
    int64_t items, tasks;
    dw_fill_fn fill;
    dw_plane_fn plane;
    dw_cblk_fn cblk;
    int64_t lanes, blocks; /* channel-blocked form: lanes, blocks per image */
} dw_job;

/* Channel-blocked units: (image, block of `lanes` output channels); the
 * inputs are transposed into the lanes, the outputs back. */
static void dw_run_cblk(const dw_job *j, int64_t u0, int64_t u1, float *s) {
    const dw_geo *d = j->d;
    const kiln_dw_params *p = j->p;
    int64_t L = j->lanes, mult = p->M / p->C, is = d->IH * d->IW, os = d->OH * d->OW, ks = d->KH * d->KW;
    float lo = p->clamp ? p->lo : 0.0f, hi = p->clamp ? p->hi : 0.0f;
    float *xs = s, *wp = s + d->cw, *ys = s + d->cy, bp[DW_ALIGN];
    int64_t c0 = d->PW < d->Wc ? d->PW : d->Wc, c1 = d->PW + d->IW < d->Wc ? d->PW + d->IW : d->Wc;
    for (int64_t u = u0; u < u1; u++) {
        int64_t n = u / j->blocks, m0 = u % j->blocks * L, cnt = p->M - m0 < L ? p->M - m0 : L;
        for (int64_t l = 0; l < L; l++) {
            bp[l] = l < cnt && j->b ? j->b[m0 + l] : 0.0f;
            for (int64_t t = 0; t < ks; t++)
                wp[t * L + l] = l < cnt ? j->w[(m0 + l) * ks + t] : 0.0f;
        }
        /* lanes past cnt keep what an earlier block left: finite, never stored */
        for (int64_t l = 0; l < cnt; l++) {
            const float *src = j->x + (n * p->C + (m0 + l) / mult) * is;
            for (int64_t r = d->r0; r < d->r1; r++) {
                const float *sr = src + (r - d->PH) * d->IW;
                float *dr = xs + r * d->Wc * L + l;
                for (int64_t c = c0; c < c1; c++)
                    dr[c * L] = sr[c - d->PW];
            }
        }
        j->cblk(d, xs, wp, bp, ys, p->clamp, lo, hi);
        for (int64_t l = 0; l < cnt; l++) {
            float *yo = j->y + (n * p->M + m0 + l) * os;
            for (int64_t o = 0; o < os; o++)
                yo[o] = ys[o * L + l];
        }
    }
}

static void dw_run(void *arg, size_t begin, size_t end) {
    const dw_job *j = arg;
    const dw_geo *d = j->d;
    const kiln_dw_params *p = j->p;
    int64_t mult = p->M / p->C, is = d->IH * d->IW, os = d->OH * d->OW, ks = d->KH * d->KW;
    float lo = p->clamp ? p->lo : 0.0f, hi = p->clamp ? p->hi : 0.0f;
    for (size_t t = begin; t < end; t++) {
        int64_t i0 = (int64_t)t * j->items / j->tasks, i1 = ((int64_t)t + 1) * j->items / j->tasks;
        float *s = j->scratch + (int64_t)t * d->slot;
        if (i0 < i1)
            memset(s, 0, (size_t)d->slot * sizeof(float)); /* the padding, once */
        if (d->cblk) {
            dw_run_cblk(j, i0, i1, s);
            continue;
        }
        int64_t have = -1; /* the input plane now in s */
        for (int64_t it = i0; it < i1; it++) {
            int64_t n = it / p->M, oc = it % p->M, plane = n * p->C + oc / mult;
            if (plane != have) {
                j->fill(d, j->x + plane * is, s);
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
    kiln_isa isa = kiln_isa_pick(p->isa);
    if (d.cblk) {
        const dw_impl *impl = dw_pick(isa);
        j.cblk = impl->cblk;
        j.lanes = impl->lanes;
        j.blocks = (p->M + j.lanes - 1) / j.lanes;
        j.items = p->N * j.blocks;
    } else {
        /* 16 lanes only where 8 would not cover the row in fewer (a 7-wide
         * row fills 7 of 8 lanes, 7 of 16): on cores that split 512-bit
         * operations in two the wider form gains nothing else */
        if (isa == KILN_ISA_AVX512 && (d.OW + 7) / 8 * 8 < (d.OW + 15) / 16 * 16)
            isa = KILN_ISA_AVX2;
        const dw_impl *impl = dw_pick(isa);
        j.fill = impl->fill;
        j.plane = impl->plane[dw_form(&d)];
    }
    kiln_threads_run(pool, (size_t)j.tasks, 1, dw_run, &j);
}
