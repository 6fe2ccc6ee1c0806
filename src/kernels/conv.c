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
KILN_CLONES static void im2col_2d_f32(const kiln_conv_geom *g, const float *x, int64_t channels, int64_t o0, int64_t cnt,
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

void kiln_im2col(const kiln_conv_geom *g, const float *x, int64_t channels, int64_t o0, int64_t cnt, float *col) {
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
