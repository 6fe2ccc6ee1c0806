/* Convolution geometry (output shapes, auto_pad), im2col, col2im
 * and the direct depthwise kernel. */
/* Copy and zero loops with runtime trip counts: GCC 12's -O2 "very cheap"
 * model would leave them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "kernels/conv.h"

#include <math.h>
#include <string.h>

kiln_status kiln_conv_forward_shape(kiln_conv_geom *g, bool ceil_mode) {
    for (int d = 0; d < g->nsp; d++) {
        int64_t in = g->in[d], s = g->stride[d];
        if (in > KILN_CONV_MAX_DIM)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "spatial dimension %d of size %lld is too large", d, (long long)in);
        int64_t ek = (g->k[d] - 1) * g->dil[d] + 1; /* both <= KILN_CONV_MAX_DIM */
        switch (g->autopad) {
        case KILN_AUTOPAD_SAME_UPPER:
        case KILN_AUTOPAD_SAME_LOWER: {
            int64_t out = (in + s - 1) / s;
            int64_t total = (out > 0 ? (out - 1) * s : 0) + ek - in;
            if (total < 0)
                total = 0;
            g->pb[d] = g->autopad == KILN_AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            g->pe[d] = total - g->pb[d];
            g->out[d] = out;
            break;
        }
        case KILN_AUTOPAD_VALID:
            g->pb[d] = g->pe[d] = 0;
            /* fall through */
        case KILN_AUTOPAD_NOTSET: {
            int64_t padded = in + g->pb[d] + g->pe[d];
            if (padded < ek)
                return kiln_fail(KILN_ERR_INVALID,
                                 "spatial dimension %d: padded input %lld is smaller than the (dilated) kernel %lld", d,
                                 (long long)padded, (long long)ek);
            int64_t out = (padded - ek) / s + 1;
            if (ceil_mode && g->autopad == KILN_AUTOPAD_NOTSET) {
                out = (padded - ek + s - 1) / s + 1;
                /* the last window must start inside the input or its begin pad */
                if ((out - 1) * s >= in + g->pb[d])
                    out--;
            }
            g->out[d] = out;
            break;
        }
        }
    }
    return kiln_conv_sizes(g);
}

kiln_status kiln_conv_sizes(kiln_conv_geom *g) {
    KILN_TRY(kiln_dims_numel(g->nsp, g->in, &g->in_size));
    KILN_TRY(kiln_dims_numel(g->nsp, g->out, &g->out_size));
    KILN_TRY(kiln_dims_numel(g->nsp, g->k, &g->k_size));
    return KILN_OK;
}

/* Range of i in [0, seg) with 0 <= off + i * s < lim. */
static void valid_range(int64_t off, int64_t s, int64_t lim, int64_t seg, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = lim - 1 - off < 0 ? 0 : (lim - 1 - off) / s + 1;
    if (l > seg)
        l = seg;
    if (h > seg)
        h = seg;
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
}

/* Walks the (channel, kernel offset, output position) space of a tile; for
 * each row segment along the last spatial dim calls BODY with: dst (col row
 * segment), src (input row or NULL when the row is in the padding), base
 * (input column of the segment's first position), s (stride), seg, lo, hi. */
#define CONV_WALK(BODY)                                                                               \
    do {                                                                                              \
        int nsp = g->nsp, L = nsp - 1;                                                                \
        int64_t instr[KILN_CONV_MAX_SP];                                                              \
        instr[L] = 1;                                                                                 \
        for (int d = L - 1; d >= 0; d--)                                                              \
            instr[d] = instr[d + 1] * g->in[d + 1];                                                   \
        int64_t OW = g->out[L], IW = g->in[L], s = g->stride[L];                                      \
        for (int64_t ch = 0; ch < channels; ch++)                                                     \
            for (int64_t kk = 0; kk < g->k_size; kk++) {                                              \
                int64_t kpos[KILN_CONV_MAX_SP], r = kk;                                               \
                for (int d = L; d >= 0; d--) {                                                        \
                    kpos[d] = r % g->k[d];                                                            \
                    r /= g->k[d];                                                                     \
                }                                                                                     \
                ROWPTR_T dst = col + (ch * g->k_size + kk) * cnt;                                     \
                IMGPTR_T img = x + ch * g->in_size;                                                   \
                int64_t p = o0, end = o0 + cnt;                                                       \
                while (p < end) {                                                                     \
                    int64_t ow = p % OW, rest = p / OW;                                               \
                    int64_t seg = OW - ow < end - p ? OW - ow : end - p;                              \
                    bool inside = true;                                                               \
                    int64_t off = 0;                                                                  \
                    for (int d = L - 1; d >= 0; d--) {                                                \
                        int64_t od = rest % g->out[d];                                                \
                        rest /= g->out[d];                                                            \
                        int64_t id = od * g->stride[d] - g->pb[d] + kpos[d] * g->dil[d];              \
                        if (id < 0 || id >= g->in[d])                                                 \
                            inside = false;                                                           \
                        off += id * instr[d];                                                         \
                    }                                                                                 \
                    int64_t base = ow * s - g->pb[L] + kpos[L] * g->dil[L];                           \
                    int64_t lo = 0, hi = 0;                                                           \
                    if (inside)                                                                       \
                        valid_range(base, s, IW, seg, &lo, &hi);                                      \
                    IMGPTR_T src = img + (inside ? off : 0);                                          \
                    BODY;                                                                             \
                    dst += seg;                                                                       \
                    p += seg;                                                                         \
                }                                                                                     \
            }                                                                                         \
    } while (0)

#define IM2COL_BODY(T)                                                                   \
    CONV_WALK({                                                                          \
        for (int64_t i = 0; i < lo; i++)                                                 \
            dst[i] = 0;                                                                  \
        if (s == 1) {                                                                    \
            if (hi > lo)                                                                 \
                memcpy(dst + lo, src + base + lo, (size_t)(hi - lo) * sizeof(T));        \
        } else                                                                           \
            for (int64_t i = lo; i < hi; i++)                                            \
                dst[i] = src[base + i * s];                                              \
        for (int64_t i = hi; i < seg; i++)                                               \
            dst[i] = 0;                                                                  \
    })

/* 2-D im2col without the generic walk's per-segment divisions: segments
 * are output rows (often only 7..56 positions), so their bookkeeping is
 * most of the cost. Same layout and zero padding as the generic form. */
static void im2col_2d_f32(const kiln_conv_geom *g, const float *x, int64_t channels, int64_t o0, int64_t cnt,
                          float *col) {
    int64_t IH = g->in[0], IW = g->in[1], OW = g->out[1], KH = g->k[0], KW = g->k[1];
    int64_t SH = g->stride[0], SW = g->stride[1], DH = g->dil[0], DW = g->dil[1], PH = g->pb[0], PW = g->pb[1];
    int64_t oh0 = o0 / OW, ow0 = o0 % OW;
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = x + c * IH * IW;
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                float *dst = col + ((c * KH + kh) * KW + kw) * cnt;
                int64_t p = 0, oh = oh0, ow = ow0;
                while (p < cnt) {
                    int64_t seg = OW - ow < cnt - p ? OW - ow : cnt - p;
                    int64_t ih = oh * SH - PH + kh * DH, lo = 0, hi = 0;
                    int64_t base = ow * SW - PW + kw * DW;
                    if (ih >= 0 && ih < IH)
                        valid_range(base, SW, IW, seg, &lo, &hi);
                    const float *row = xc + (ih >= 0 && ih < IH ? ih : 0) * IW;
                    for (int64_t i = 0; i < lo; i++)
                        dst[i] = 0;
                    if (SW == 1)
                        for (int64_t i = lo; i < hi; i++)
                            dst[i] = row[base + i];
                    else
                        for (int64_t i = lo; i < hi; i++)
                            dst[i] = row[base + i * SW];
                    for (int64_t i = hi; i < seg; i++)
                        dst[i] = 0;
                    dst += seg;
                    p += seg;
                    ow = 0;
                    oh++;
                }
            }
    }
}

KILN_CLONES void kiln_im2col(const kiln_conv_geom *g, const float *x, int64_t channels, int64_t o0, int64_t cnt, float *col) {
    if (g->nsp == 2) {
        im2col_2d_f32(g, x, channels, o0, cnt, col);
        return;
    }
#define ROWPTR_T float *
#define IMGPTR_T const float *
    IM2COL_BODY(float);
#undef ROWPTR_T
#undef IMGPTR_T
}

void kiln_im2col_f64(const kiln_conv_geom *g, const double *x, int64_t channels, int64_t o0, int64_t cnt,
                     double *col) {
#define ROWPTR_T double *
#define IMGPTR_T const double *
    IM2COL_BODY(double);
#undef ROWPTR_T
#undef IMGPTR_T
}

void kiln_col2im(const kiln_conv_geom *g, const float *col, int64_t channels, int64_t o0, int64_t cnt, float *y) {
    float *x = y;
#define ROWPTR_T const float *
#define IMGPTR_T float *
    CONV_WALK({
        for (int64_t i = lo; i < hi; i++)
            src[base + i * s] += dst[i];
    });
#undef ROWPTR_T
#undef IMGPTR_T
}

/* y[i] += a * x[i]: written with vector extensions so it vectorises at -O2
 * (GCC's -O2 cost model leaves loops needing a scalar tail alone). */
typedef float conv_v8f __attribute__((vector_size(32)));
static void axpy_f32(float *y, const float *x, float a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        conv_v8f vx, vy;
        memcpy(&vx, x + i, sizeof vx);
        memcpy(&vy, y + i, sizeof vy);
        vy += a * vx;
        memcpy(y + i, &vy, sizeof vy);
    }
    for (; i < n; i++)
        y[i] += a * x[i];
}
static void axpy_f64(double *y, const double *x, double a, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

#define DEPTHWISE_BODY(T, AXPY)                                                                            \
    int64_t IH = 1, OH = 1, KH = 1, SH = 1, DH = 1, PH = 0, L = g->nsp - 1;                         \
    if (g->nsp == 2) {                                                                              \
        IH = g->in[0];                                                                              \
        OH = g->out[0];                                                                             \
        KH = g->k[0];                                                                               \
        SH = g->stride[0];                                                                          \
        DH = g->dil[0];                                                                             \
        PH = g->pb[0];                                                                              \
    }                                                                                               \
    int64_t IW = g->in[L], OW = g->out[L], KW = g->k[L], SW = g->stride[L], DW = g->dil[L], PW = g->pb[L]; \
    for (int64_t oh = 0; oh < OH; oh++) {                                                           \
        T *yr = y + oh * OW;                                                                        \
        for (int64_t ow = 0; ow < OW; ow++)                                                         \
            yr[ow] = bias;                                                                          \
        for (int64_t kh = 0; kh < KH; kh++) {                                                       \
            int64_t ih = oh * SH - PH + kh * DH;                                                    \
            if (ih < 0 || ih >= IH)                                                                 \
                continue;                                                                           \
            const T *xr = x + ih * IW;                                                              \
            for (int64_t kw = 0; kw < KW; kw++) {                                                   \
                T wv = w[kh * KW + kw];                                                             \
                int64_t off = kw * DW - PW, lo, hi;                                                 \
                valid_range(off, SW, IW, OW, &lo, &hi);                                             \
                if (SW == 1 && hi > lo)                                                             \
                    AXPY(yr + lo, xr + lo + off, wv, hi - lo);                                      \
                else if (SW != 1)                                                                   \
                    for (int64_t ow = lo; ow < hi; ow++)                                            \
                        yr[ow] += wv * xr[ow * SW + off];                                           \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    do {} while (0)

/* ---- 3x3 depthwise fast path (2-D, dilation 1, stride 1 or 2) ----
 * Each output vector accumulates its nine products in registers and is
 * stored once, bias and clamp included; the interior columns (whose windows
 * lie inside the row) need no bounds checks, the border columns and the
 * columns a full vector load would overrun go through a checked scalar. */
typedef float dw_v16f __attribute__((vector_size(64)));
typedef int dw_v16i __attribute__((vector_size(64)));
typedef float dw_v8f __attribute__((vector_size(32)));
typedef int dw_v8i __attribute__((vector_size(32)));
typedef float dw_v4f __attribute__((vector_size(16)));
typedef int dw_v4i __attribute__((vector_size(16)));

#if defined(__clang__)
#define DW_EVENS16(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define DW_EVENS8(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define DW_EVENS4(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#else
#define DW_EVENS16(a, b) \
    __builtin_shuffle(a, b, (dw_v16i){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
#define DW_EVENS8(a, b) __builtin_shuffle(a, b, (dw_v8i){0, 2, 4, 6, 8, 10, 12, 14})
#define DW_EVENS4(a, b) __builtin_shuffle(a, b, (dw_v4i){0, 2, 4, 6})
#endif

/* min(max(v, lo), hi) per lane; NaN passes through like Clip and Relu. */
#define DW_CLAMP(VF, VI, v, vlo, vhi)                                   \
    do {                                                                \
        VI m_ = (v) < (vlo);                                            \
        v = (VF)(((VI)(v) & ~m_) | ((VI)(vlo) & m_));                   \
        m_ = (v) > (vhi);                                               \
        v = (VF)(((VI)(v) & ~m_) | ((VI)(vhi) & m_));                   \
    } while (0)

/* Outputs [*ow, ...) in steps of V while the widest read stays < IW. */
#define DW_VEC(V, VF, VI, EVENS)                                                                      \
    do {                                                                                              \
        VF vb = (VF){0} + bias, vlo = (VF){0} + lo, vhi = (VF){0} + hi;                              \
        for (; ow + V <= ow_end && (ow + V - 1) * SW - PW + 2 + (SW == 2 ? 1 : 0) < IW; ow += V) {   \
            VF acc = vb;                                                                              \
            for (int64_t kh = kh0; kh < kh1; kh++) {                                                  \
                const float *xr = x + (ih0 + kh) * IW + ow * SW - PW;                                 \
                const float *wr = w + kh * 3;                                                         \
                for (int kw = 0; kw < 3; kw++) {                                                      \
                    VF xv;                                                                            \
                    if (SW == 1)                                                                      \
                        memcpy(&xv, xr + kw, sizeof xv);                                              \
                    else {                                                                            \
                        VF a, b;                                                                      \
                        memcpy(&a, xr + kw, sizeof a);                                                \
                        memcpy(&b, xr + kw + V, sizeof b);                                            \
                        xv = EVENS(a, b);                                                             \
                    }                                                                                 \
                    acc += wr[kw] * xv;                                                               \
                }                                                                                     \
            }                                                                                         \
            if (clamp)                                                                                \
                DW_CLAMP(VF, VI, acc, vlo, vhi);                                                      \
            memcpy(yr + ow, &acc, sizeof acc);                                                        \
        }                                                                                             \
    } while (0)

static inline float dw_clamp1(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

static void dw_scalar(const float *x, const float *w, float bias, float *yr, int64_t IW, int64_t SW, int64_t PW,
                      int64_t ih0, int64_t kh0, int64_t kh1, int64_t ow, int64_t ow_end, float lo, float hi) {
    for (; ow < ow_end; ow++) {
        float acc = bias;
        for (int64_t kh = kh0; kh < kh1; kh++)
            for (int64_t kw = 0; kw < 3; kw++) {
                int64_t iw = ow * SW - PW + kw;
                if (iw >= 0 && iw < IW)
                    acc += w[kh * 3 + kw] * x[(ih0 + kh) * IW + iw];
            }
        yr[ow] = dw_clamp1(acc, lo, hi);
    }
}

#define DW_ROWS                                                                          \
    for (int64_t oh = 0; oh < OH; oh++) {                                                \
        float *yr = y + oh * OW;                                                         \
        int64_t ih0 = oh * SH - PH, kh0 = ih0 < 0 ? -ih0 : 0;                           \
        int64_t kh1 = IH - ih0 < 3 ? IH - ih0 : 3;                                       \
        if (kh1 < kh0)                                                                   \
            kh1 = kh0;                                                                   \
        dw_scalar(x, w, bias, yr, IW, SW, PW, ih0, kh0, kh1, 0, lo_ow, lo, hi);          \
        int64_t ow = lo_ow, ow_end = hi_ow;                                              \
        DW_VEC(16, dw_v16f, dw_v16i, DW_EVENS16);                                        \
        DW_VEC(8, dw_v8f, dw_v8i, DW_EVENS8);                                            \
        DW_VEC(4, dw_v4f, dw_v4i, DW_EVENS4);                                            \
        dw_scalar(x, w, bias, yr, IW, SW, PW, ih0, kh0, kh1, ow, OW, lo, hi);            \
    }

static void dw3x3_s1(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y, float lo,
                     float hi, bool clamp, int64_t lo_ow, int64_t hi_ow) {
    int64_t IH = g->in[0], OH = g->out[0], SH = g->stride[0], PH = g->pb[0];
    int64_t IW = g->in[1], OW = g->out[1], PW = g->pb[1];
    const int64_t SW = 1;
    DW_ROWS
}
static void dw3x3_s2(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y, float lo,
                     float hi, bool clamp, int64_t lo_ow, int64_t hi_ow) {
    int64_t IH = g->in[0], OH = g->out[0], SH = g->stride[0], PH = g->pb[0];
    int64_t IW = g->in[1], OW = g->out[1], PW = g->pb[1];
    const int64_t SW = 2;
    DW_ROWS
}

/* Padded-plane form: the channel is copied once into a zero-bordered plane
 * wide enough that every output vector, the partial last one included, loads
 * in bounds; then no column needs a check. */
static bool dw3x3_ok(const kiln_conv_geom *g) {
    return g->nsp == 2 && g->k[0] == 3 && g->k[1] == 3 && g->dil[0] == 1 && g->dil[1] == 1 &&
           (g->stride[1] == 1 || g->stride[1] == 2) && g->stride[0] <= 2 && g->out[0] <= 4096 &&
           g->out[1] <= 4096 && g->in[0] <= 8192 && g->in[1] <= 8192 && g->pb[0] <= 2 && g->pb[1] <= 2;
}

static void dw_pad_geom(const kiln_conv_geom *g, int64_t *rows, int64_t *width) {
    int64_t s = g->stride[1];
    int64_t rh = g->in[0] + g->pb[0], need = (g->out[0] - 1) * g->stride[0] + 3;
    int64_t wd = g->in[1] + g->pb[1], wneed = (g->out[1] + 15) * s + 3;
    *rows = rh > need ? rh : need;
    wd = wd > wneed ? wd : wneed;
    *width = (wd + 15) / 16 * 16;
}

int64_t kiln_conv_depthwise_scratch(const kiln_conv_geom *g) {
    if (!dw3x3_ok(g))
        return 0;
    int64_t r, w;
    dw_pad_geom(g, &r, &w);
    return r * w;
}

#define DW_PVEC(V, VF, VI, EVENS, COUNT, WV)                                                          \
    do {                                                                                              \
        VF acc = vb;                                                                                  \
        _Pragma("GCC unroll 3") for (int kh = 0; kh < 3; kh++) {                                      \
            const float *xr = xp + (oh * SH + kh) * PWD + ow * SW;                                    \
            _Pragma("GCC unroll 3") for (int kw = 0; kw < 3; kw++) {                                  \
                VF xv;                                                                                \
                if (SW == 1)                                                                          \
                    memcpy(&xv, xr + kw, sizeof xv);                                                  \
                else {                                                                                \
                    VF a, b;                                                                          \
                    memcpy(&a, xr + kw, sizeof a);                                                    \
                    memcpy(&b, xr + kw + V, sizeof b);                                                \
                    xv = EVENS(a, b);                                                                 \
                }                                                                                     \
                acc += WV[kh * 3 + kw] * xv;                                                          \
            }                                                                                         \
        }                                                                                             \
        if (clamp) {                                                                                  \
            VF vlo = (VF){0} + lo, vhi = (VF){0} + hi;                                                \
            DW_CLAMP(VF, VI, acc, vlo, vhi);                                                          \
        }                                                                                             \
        if ((COUNT) == V)                                                                             \
            memcpy(yr + ow, &acc, sizeof acc);                                                        \
        else                                                                                          \
            memcpy(yr + ow, &acc, (size_t)(COUNT) * sizeof(float));                                   \
    } while (0)

#define DW_PADDED_ROWS                                                                                \
    dw_v16f w16[9];                                                                                   \
    dw_v8f w8[9];                                                                                     \
    dw_v4f w4[9];                                                                                     \
    for (int q = 0; q < 9; q++) {                                                                     \
        w16[q] = (dw_v16f){0} + w[q];                                                                 \
        w8[q] = (dw_v8f){0} + w[q];                                                                   \
        w4[q] = (dw_v4f){0} + w[q];                                                                   \
    }                                                                                                 \
    for (int64_t oh = 0; oh < OH; oh++) {                                                             \
        float *yr = y + oh * OW;                                                                      \
        dw_v16f vb = (dw_v16f){0} + bias;                                                             \
        int64_t ow = 0;                                                                               \
        for (; ow + 16 <= OW; ow += 16)                                                               \
            DW_PVEC(16, dw_v16f, dw_v16i, DW_EVENS16, 16, w16);                                       \
        int64_t r = OW - ow;                                                                          \
        if (r > 8)                                                                                    \
            DW_PVEC(16, dw_v16f, dw_v16i, DW_EVENS16, r, w16);                                        \
        else if (r > 4) {                                                                             \
            dw_v8f vb8 = (dw_v8f){0} + bias;                                                          \
            {                                                                                         \
                dw_v8f vb = vb8;                                                                      \
                DW_PVEC(8, dw_v8f, dw_v8i, DW_EVENS8, r, w8);                                         \
            }                                                                                         \
        } else if (r > 0) {                                                                           \
            dw_v4f vb4 = (dw_v4f){0} + bias;                                                          \
            {                                                                                         \
                dw_v4f vb = vb4;                                                                      \
                DW_PVEC(4, dw_v4f, dw_v4i, DW_EVENS4, r, w4);                                         \
            }                                                                                         \
        }                                                                                             \
    }

static void dw3x3_pad_s1(const float *xp, int64_t PWD, const float *w, float bias, float *y, int64_t OH,
                         int64_t OW, int64_t SH, float lo, float hi, bool clamp) {
    const int64_t SW = 1;
    DW_PADDED_ROWS
}
static void dw3x3_pad_s2(const float *xp, int64_t PWD, const float *w, float bias, float *y, int64_t OH,
                         int64_t OW, int64_t SH, float lo, float hi, bool clamp) {
    const int64_t SW = 2;
    DW_PADDED_ROWS
}

void kiln_conv_depthwise_padded(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y,
                                float lo, float hi, float *scratch) {
    int64_t rows, width, IH = g->in[0], IW = g->in[1], PH = g->pb[0], PW = g->pb[1];
    dw_pad_geom(g, &rows, &width);
    for (int64_t r = 0; r < rows; r++) {
        float *dst = scratch + r * width;
        int64_t ih = r - PH;
        if (ih < 0 || ih >= IH) {
            memset(dst, 0, (size_t)width * sizeof(float));
            continue;
        }
        /* short runs: plain loops beat the library calls' overhead here */
        for (int64_t i = 0; i < PW; i++)
            dst[i] = 0;
        const float *src = x + ih * IW;
        for (int64_t i = 0; i < IW; i++)
            dst[PW + i] = src[i];
        for (int64_t i = PW + IW; i < width; i++)
            dst[i] = 0;
    }
    bool clamp = !(lo == -INFINITY && hi == INFINITY);
    if (g->stride[1] == 1)
        dw3x3_pad_s1(scratch, width, w, bias, y, g->out[0], g->out[1], g->stride[0], lo, hi, clamp);
    else
        dw3x3_pad_s2(scratch, width, w, bias, y, g->out[0], g->out[1], g->stride[0], lo, hi, clamp);
}

void kiln_conv_depthwise_act(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y,
                             float lo, float hi) {
    bool clamp = !(lo == -INFINITY && hi == INFINITY);
    if (g->nsp == 2 && g->k[0] == 3 && g->k[1] == 3 && g->dil[0] == 1 && g->dil[1] == 1 &&
        (g->stride[1] == 1 || g->stride[1] == 2) && g->stride[0] <= 2 && g->out[1] >= 4) {
        int64_t s = g->stride[1], p = g->pb[1], IW = g->in[1], OW = g->out[1];
        /* interior: ow * s - p >= 0 and ow * s - p + 2 < IW */
        int64_t lo_ow = (p + s - 1) / s, hi_ow = IW - 3 + p < 0 ? 0 : (IW - 3 + p) / s + 1;
        if (hi_ow > OW)
            hi_ow = OW;
        if (lo_ow > hi_ow)
            lo_ow = hi_ow;
        if (s == 1)
            dw3x3_s1(g, x, w, bias, y, lo, hi, clamp, lo_ow, hi_ow);
        else
            dw3x3_s2(g, x, w, bias, y, lo, hi, clamp, lo_ow, hi_ow);
        return;
    }
    kiln_conv_depthwise(g, x, w, bias, y);
    if (clamp)
        for (int64_t i = 0; i < g->out_size; i++)
            y[i] = dw_clamp1(y[i], lo, hi);
}

void kiln_conv_depthwise(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y) {
    DEPTHWISE_BODY(float, axpy_f32);
}

void kiln_conv_depthwise_f64(const kiln_conv_geom *g, const double *x, const double *w, double bias, double *y) {
    DEPTHWISE_BODY(double, axpy_f64);
}

static float widen_one(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_DTYPE_DOUBLE     ? (float)((const double *)t->data)[i]
           : t->dtype == KILN_DTYPE_BFLOAT16 ? kiln_bf16_to_float(((const uint16_t *)t->data)[i])
                                             : kiln_half_to_float(((const uint16_t *)t->data)[i]);
}

kiln_status kiln_conv_widen(const kiln_tensor *x, const kiln_tensor *w, const kiln_tensor *b, int64_t y_numel,
                            const char *what, float **scratch, float *parts[4]) {
    const kiln_tensor *src[3] = {x, w, b};
    size_t sizes[4] = {(size_t)x->numel, (size_t)w->numel, b ? (size_t)b->numel : 0, (size_t)y_numel};
    size_t total = 0;
    for (int i = 0; i < 4; i++)
        if (__builtin_add_overflow(total, sizes[i], &total))
            return kiln_fail(KILN_ERR_INVALID, "%s scratch size overflows", what);
    if (kiln_mul_overflow_size(total, sizeof(float), &total))
        return kiln_fail(KILN_ERR_INVALID, "%s scratch size overflows", what);
    float *s = kiln_malloc(total);
    if (!s)
        return KILN_ERR_NOMEM;
    parts[0] = s;
    for (int i = 1; i < 4; i++)
        parts[i] = parts[i - 1] + sizes[i - 1];
    for (int t = 0; t < 3; t++)
        for (int64_t i = 0; src[t] && i < src[t]->numel; i++)
            parts[t][i] = widen_one(src[t], i);
    *scratch = s;
    return KILN_OK;
}

void kiln_conv_narrow(const float *src, kiln_tensor *y) {
    for (int64_t i = 0; i < y->numel; i++) {
        if (y->dtype == KILN_DTYPE_DOUBLE)
            ((double *)y->data)[i] = src[i];
        else if (y->dtype == KILN_DTYPE_BFLOAT16)
            ((uint16_t *)y->data)[i] = kiln_float_to_bf16(src[i]);
        else
            ((uint16_t *)y->data)[i] = kiln_float_to_half(src[i]);
    }
}
