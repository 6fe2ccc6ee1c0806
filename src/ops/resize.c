/* Resize (opsets 10, 11, 13, 18, 19) and Upsample (opsets 7, 9).
 *
 * Each axis gets a table of taps (source indices and weights) for every
 * output coordinate, built once from the coordinate transformation. Nearest
 * mode is then an N-D gather (any element type, exact). Linear and cubic are
 * separable: one pass per axis that actually changes, over a float (or
 * double) work buffer, each pass a contiguous weighted sum of rows.
 *
 * Opset 10 Resize and Upsample have no coordinate_transformation_mode: they
 * map asymmetrically (x / scale) and pick nearest pixels by truncation when
 * upsampling, ceiling when downsampling (the classic Upsample behaviour).
 * Opset 11+ follows the spec's formulas; where the text is loose (align_corners
 * with non-integral scale * length), kiln follows the ONNX reference, which
 * uses length * scale as the resized length.
 *
 * Opset 18 adds `axes` (scales, sizes and roi then cover only those axes),
 * keep_aspect_ratio_policy (sizes scaled by one factor, the smallest or the
 * largest ratio) and antialias (linear and cubic widen their kernel by
 * 1 / scale when downsampling, the weights normalised). Opset 19 adds the
 * half_pixel_symmetric coordinate mode. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "kernels/reduce.h"

/* The widest antialias kernel kiln builds (scale >= 2 / this). */
#define RS_TAPS_MAX 4096

typedef enum { RM_NEAREST, RM_LINEAR, RM_CUBIC } rs_mode;
typedef enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL_NN,
               CT_TF_CROP_AND_RESIZE, CT_HALF_PIXEL_SYMMETRIC } rs_coord;
typedef enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE } rs_nearest;

typedef struct rs_params {
    rs_mode mode;
    rs_coord coord;
    rs_nearest nearest;
    double cubic_a, extrapolation;
    bool exclude_outside, antialias;
} rs_params;

typedef struct rs_axis {
    int64_t in, out;
    int taps;
    int64_t *idx; /* out * taps */
    double *w;    /* out * taps */
    float *wf;    /* the same weights in float */
    uint8_t *ext; /* out: coordinate outside the crop (tf_crop_and_resize) */
    bool identity;
} rs_axis;

static void cubic_coeffs(double r, double A, double *c) {
    double s = r + 1, t = 1 - r, u = 2 - r;
    c[0] = ((A * s - 5 * A) * s + 8 * A) * s - 4 * A;
    c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
    c[2] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[3] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
}

static int64_t clampi(int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

/* Fills one axis's taps. `scale` is the effective scale (out/in when sizes
 * were given); `out_len` is the resized length used by align_corners and
 * tf_crop_and_resize; roi_start/end only matter for the latter. */
static kiln_status axis_build(rs_axis *ax, const rs_params *p, double scale, double out_len, double roi_start,
                              double roi_end) {
    int64_t in = ax->in, out = ax->out;
    ax->taps = p->mode == RM_NEAREST ? 1 : p->mode == RM_LINEAR ? 2 : 4;
    /* antialias: the kernel's support grows by 1 / scale when shrinking */
    double aa = scale < 1 ? scale : 1;
    bool anti = p->antialias && p->mode != RM_NEAREST;
    if (anti) {
        double reach = p->mode == RM_LINEAR ? 1.0 : 2.0;
        double st = floor(-reach / aa) + 1;
        if (!(st > -(double)RS_TAPS_MAX))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "antialias with scale %g needs too wide a kernel", scale);
        ax->taps = (int)(2 - 2 * st);
    }
    size_t n = (size_t)(out ? out : 1) * (size_t)ax->taps;
    ax->idx = kiln_malloc(n * sizeof *ax->idx);
    ax->w = kiln_malloc(n * sizeof *ax->w);
    ax->wf = kiln_malloc(n * sizeof *ax->wf);
    ax->ext = kiln_calloc((size_t)(out ? out : 1), 1);
    if (!ax->idx || !ax->w || !ax->wf || !ax->ext)
        return KILN_ERR_NOMEM;
    bool identity = in == out;
    for (int64_t j = 0; j < out; j++) {
        double x = (double)j, xo;
        switch (p->coord) {
        case CT_HALF_PIXEL: xo = (x + 0.5) / scale - 0.5; break;
        case CT_PYTORCH_HALF_PIXEL: xo = out_len > 1 ? (x + 0.5) / scale - 0.5 : -0.5; break;
        case CT_ALIGN_CORNERS: xo = out_len == 1 ? 0.0 : x * (double)(in - 1) / (out_len - 1); break;
        case CT_ASYMMETRIC: xo = x / scale; break;
        case CT_TF_HALF_PIXEL_NN: xo = (x + 0.5) / scale; break;
        case CT_HALF_PIXEL_SYMMETRIC: {
            /* opset 19: half_pixel re-centred on the input's middle */
            double adj = (double)out / (scale * (double)in), ctr = (double)in / 2;
            xo = ctr * (1 - adj) + (x + 0.5) / scale - 0.5;
            break;
        }
        case CT_TF_CROP_AND_RESIZE:
        default:
            if (out_len == 1)
                xo = (roi_end - roi_start) * (double)(in - 1) / 2;
            else
                xo = x * (roi_end - roi_start) * (double)(in - 1) / (out_len - 1);
            xo += roi_start * (double)(in - 1);
            if (xo < 0 || xo > (double)(in - 1))
                ax->ext[j] = 1;
            break;
        }
        if (!isfinite(xo))
            xo = 0;
        /* keep coordinates within a few pixels of the input so the integer
         * conversions below are defined; clamping happens anyway */
        double margin = 4 + ax->taps;
        if (xo < -margin)
            xo = -margin;
        if (xo > (double)in + margin)
            xo = (double)in + margin;
        int64_t *ix = ax->idx + j * ax->taps;
        double *w = ax->w + j * ax->taps;
        double f = floor(xo), r = xo - f;
        int64_t i0 = (int64_t)f;
        if (anti) {
            /* the taps nearest xo, the left one preferred on a tie */
            int T = ax->taps;
            int64_t first = (r == 0 ? i0 : i0 + 1) - T / 2;
            double sum = 0;
            for (int k = 0; k < T; k++) {
                int64_t si = first + k;
                double t = fabs(((double)si - xo) * aa), c;
                if (p->mode == RM_LINEAR)
                    c = t < 1 ? 1 - t : 0;
                else {
                    double A = p->cubic_a;
                    c = t <= 1 ? ((A + 2) * t - (A + 3)) * t * t + 1
                        : t < 2 ? ((A * t - 5 * A) * t + 8 * A) * t - 4 * A : 0;
                }
                ix[k] = clampi(si, in);
                w[k] = c;
                sum += c;
            }
            for (int k = 0; k < T; k++)
                w[k] = sum != 0 ? w[k] / sum : 0;
            if (p->exclude_outside) {
                double s2 = 0;
                for (int k = 0; k < T; k++) {
                    if (first + k < 0 || first + k >= in)
                        w[k] = 0;
                    s2 += w[k];
                }
                for (int k = 0; k < T; k++)
                    w[k] = s2 != 0 ? w[k] / s2 : w[k];
            }
        } else if (p->mode == RM_NEAREST) {
            int64_t k;
            switch (p->nearest) {
            case NM_ROUND_PREFER_FLOOR: k = r <= 0.5 ? i0 : i0 + 1; break;
            case NM_ROUND_PREFER_CEIL: k = r < 0.5 ? i0 : i0 + 1; break;
            case NM_FLOOR: k = i0; break;
            case NM_CEIL: k = r > 0 ? i0 + 1 : i0; break;
            case NM_SIMPLE:
            default: k = scale < 1 ? (int64_t)ceil(xo) : (int64_t)xo; break;
            }
            ix[0] = clampi(k, in);
            w[0] = 1;
        } else if (p->mode == RM_LINEAR) {
            ix[0] = clampi(i0, in);
            ix[1] = clampi(i0 + 1, in);
            w[0] = 1 - r;
            w[1] = r;
        } else {
            double c[4], sum = 0;
            cubic_coeffs(r, p->cubic_a, c);
            for (int k = 0; k < 4; k++) {
                int64_t s = i0 - 1 + k;
                if (p->exclude_outside && (s < 0 || s >= in))
                    c[k] = 0;
                sum += c[k];
                ix[k] = clampi(s, in);
            }
            for (int k = 0; k < 4; k++)
                w[k] = p->exclude_outside && sum != 0 ? c[k] / sum : c[k];
        }
        if (ax->ext[j])
            identity = false;
        for (int k = 0; k < ax->taps; k++)
            if ((w[k] != 0 && ix[k] != j) || (ix[k] == j && w[k] != 1 && w[k] != 0))
                identity = false;
    }
    for (size_t i = 0; i < (size_t)out * (size_t)ax->taps; i++)
        ax->wf[i] = (float)ax->w[i];
    ax->identity = identity;
    return KILN_OK;
}

/* ---- nearest: N-D gather ---- */

typedef struct gather_job {
    const char *x;
    char *y;
    size_t esize;
    int rank;
    const rs_axis *ax;
    const int64_t *in_strides;
    const char *fill; /* extrapolation value in the element type */
} gather_job;

static void gather_range(void *arg, size_t begin, size_t end) {
    const gather_job *j = arg;
    int rk = j->rank;
    const rs_axis *last = &j->ax[rk - 1];
    int64_t n = last->out;
    int64_t pos[KILN_MAX_RANK];
    int64_t rem = (int64_t)begin;
    for (int d = rk - 2; d >= 0; d--) {
        pos[d] = rem % j->ax[d].out;
        rem /= j->ax[d].out;
    }
    for (size_t row = begin; row < end; row++) {
        int64_t base = 0;
        bool ext = false;
        for (int d = 0; d < rk - 1; d++) {
            base += j->ax[d].idx[pos[d]] * j->in_strides[d];
            ext |= j->ax[d].ext[pos[d]] != 0;
        }
        char *yp = j->y + (size_t)row * (size_t)n * j->esize;
        if (ext) {
            for (int64_t i = 0; i < n; i++)
                memcpy(yp + (size_t)i * j->esize, j->fill, j->esize);
        } else {
            switch (j->esize) {
#define GATHER_T(SZ, T)                                                      \
    case SZ: {                                                               \
        const T *xs = (const T *)j->x + base;                                \
        T *yd = (T *)yp, fv;                                                 \
        memcpy(&fv, j->fill, SZ);                                            \
        for (int64_t i = 0; i < n; i++)                                      \
            yd[i] = last->ext[i] ? fv : xs[last->idx[i]];                    \
        break;                                                               \
    }
                GATHER_T(1, uint8_t)
                GATHER_T(2, uint16_t)
                GATHER_T(4, uint32_t)
                GATHER_T(8, uint64_t)
#undef GATHER_T
            default:
                for (int64_t i = 0; i < n; i++)
                    memcpy(yp + (size_t)i * j->esize,
                           last->ext[i] ? j->fill : j->x + (size_t)(base + last->idx[i]) * j->esize, j->esize);
            }
        }
        for (int d = rk - 2; d >= 0; d--) {
            if (++pos[d] < j->ax[d].out)
                break;
            pos[d] = 0;
        }
    }
}

/* ---- linear / cubic: one pass per axis ---- */

typedef struct pass_job {
    const void *src;
    void *dst;
    bool dbl;
    int64_t outer, in, out, inner;
    const rs_axis *ax;
    double fill;
} pass_job;

#define PASS_FN(NAME, W, WS)                                                                   \
    static void NAME(const pass_job *j, size_t begin, size_t end) {                           \
        const W *src = j->src;                                                                \
        W *dst = j->dst;                                                                      \
        int T = j->ax->taps;                                                                  \
        W fill = (W)j->fill;                                                                  \
        if (j->inner == 1) {                                                                  \
            for (size_t o = begin; o < end; o++) {                                            \
                const W *s = src + (int64_t)o * j->in;                                        \
                W *d = dst + (int64_t)o * j->out;                                             \
                for (int64_t q = 0; q < j->out; q++) {                                        \
                    const int64_t *ix = j->ax->idx + q * T;                                   \
                    const W *w = j->ax->WS + q * T;                                           \
                    W acc = w[0] * s[ix[0]];                                                  \
                    for (int k = 1; k < T; k++)                                               \
                        acc += w[k] * s[ix[k]];                                               \
                    d[q] = j->ax->ext[q] ? fill : acc;                                        \
                }                                                                             \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        for (size_t t = begin; t < end; t++) {                                                \
            int64_t o = (int64_t)t / j->out, q = (int64_t)t % j->out, n = j->inner;           \
            W *d = dst + (o * j->out + q) * n;                                                \
            if (j->ax->ext[q]) {                                                              \
                for (int64_t i = 0; i < n; i++)                                               \
                    d[i] = fill;                                                              \
                continue;                                                                     \
            }                                                                                 \
            const int64_t *ix = j->ax->idx + q * T;                                           \
            const W *w = j->ax->WS + q * T;                                                   \
            const W *s0 = src + (o * j->in + ix[0]) * n;                                      \
            W w0 = (W)w[0];                                                                   \
            for (int64_t i = 0; i < n; i++)                                                   \
                d[i] = w0 * s0[i];                                                            \
            for (int k = 1; k < T; k++) {                                                     \
                const W *sk = src + (o * j->in + ix[k]) * n;                                  \
                W wk = (W)w[k];                                                               \
                if (wk == 0)                                                                  \
                    continue;                                                                 \
                for (int64_t i = 0; i < n; i++)                                               \
                    d[i] += wk * sk[i];                                                       \
            }                                                                                 \
        }                                                                                     \
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfloat-equal"
PASS_FN(pass_f32, float, wf)
PASS_FN(pass_f64, double, w)
#pragma GCC diagnostic pop

static void pass_range(void *arg, size_t begin, size_t end) {
    const pass_job *j = arg;
    if (j->dbl)
        pass_f64(j, begin, end);
    else
        pass_f32(j, begin, end);
}

/* Element type <-> work buffer. */
static void to_work(const kiln_tensor *x, void *w, bool dbl) {
    for (int64_t i = 0; i < x->numel; i++) {
        double v;
        switch (x->dtype) {
        case KILN_DTYPE_FLOAT: v = ((const float *)x->data)[i]; break;
        case KILN_DTYPE_FLOAT16: v = kiln_half_to_float(((const uint16_t *)x->data)[i]); break;
        case KILN_DTYPE_BFLOAT16: v = kiln_bf16_to_float(((const uint16_t *)x->data)[i]); break;
        default: v = kiln_tensor_get_f64(x, i); break;
        }
        if (dbl)
            ((double *)w)[i] = v;
        else
            ((float *)w)[i] = (float)v;
    }
}

/* Integers round to nearest and saturate (what image pipelines expect). */
#define SAT(T, LO, HI) (v != v ? (T)0 : v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)llrint(v))
static void from_work(const void *w, bool dbl, kiln_tensor *y) {
    for (int64_t i = 0; i < y->numel; i++) {
        double v = dbl ? ((const double *)w)[i] : ((const float *)w)[i];
        switch (y->dtype) {
        case KILN_DTYPE_FLOAT: ((float *)y->data)[i] = (float)v; break;
        case KILN_DTYPE_DOUBLE: ((double *)y->data)[i] = v; break;
        case KILN_DTYPE_FLOAT16: ((uint16_t *)y->data)[i] = kiln_float_to_half((float)v); break;
        case KILN_DTYPE_BFLOAT16: ((uint16_t *)y->data)[i] = kiln_float_to_bf16((float)v); break;
        case KILN_DTYPE_INT8: ((int8_t *)y->data)[i] = SAT(int8_t, INT8_MIN, INT8_MAX); break;
        case KILN_DTYPE_UINT8: ((uint8_t *)y->data)[i] = SAT(uint8_t, 0, UINT8_MAX); break;
        case KILN_DTYPE_INT16: ((int16_t *)y->data)[i] = SAT(int16_t, INT16_MIN, INT16_MAX); break;
        case KILN_DTYPE_UINT16: ((uint16_t *)y->data)[i] = SAT(uint16_t, 0, UINT16_MAX); break;
        case KILN_DTYPE_INT32: ((int32_t *)y->data)[i] = SAT(int32_t, INT32_MIN, INT32_MAX); break;
        case KILN_DTYPE_UINT32: ((uint32_t *)y->data)[i] = SAT(uint32_t, 0, UINT32_MAX); break;
        case KILN_DTYPE_INT64:
            ((int64_t *)y->data)[i] = v != v ? 0 : v <= -9.2233720368547758e18 ? INT64_MIN
                                      : v >= 9.2233720368547758e18 ? INT64_MAX : (int64_t)llrint(v);
            break;
        case KILN_DTYPE_UINT64:
            ((uint64_t *)y->data)[i] = v != v || v <= 0 ? 0 : v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v;
            break;
        default: break;
        }
    }
}

static void fill_bytes(kiln_dtype dt, double v, char *out) {
    memset(out, 0, 8);
    switch (dt) {
    case KILN_DTYPE_FLOAT: { float f = (float)v; memcpy(out, &f, 4); break; }
    case KILN_DTYPE_DOUBLE: memcpy(out, &v, 8); break;
    case KILN_DTYPE_FLOAT16: { uint16_t h = kiln_float_to_half((float)v); memcpy(out, &h, 2); break; }
    case KILN_DTYPE_BFLOAT16: { uint16_t h = kiln_float_to_bf16((float)v); memcpy(out, &h, 2); break; }
    case KILN_DTYPE_INT8: { int8_t t = SAT(int8_t, INT8_MIN, INT8_MAX); memcpy(out, &t, 1); break; }
    case KILN_DTYPE_UINT8: { uint8_t t = SAT(uint8_t, 0, UINT8_MAX); memcpy(out, &t, 1); break; }
    case KILN_DTYPE_INT16: { int16_t t = SAT(int16_t, INT16_MIN, INT16_MAX); memcpy(out, &t, 2); break; }
    case KILN_DTYPE_UINT16: { uint16_t t = SAT(uint16_t, 0, UINT16_MAX); memcpy(out, &t, 2); break; }
    case KILN_DTYPE_INT32: { int32_t t = SAT(int32_t, INT32_MIN, INT32_MAX); memcpy(out, &t, 4); break; }
    case KILN_DTYPE_UINT32: { uint32_t t = SAT(uint32_t, 0, UINT32_MAX); memcpy(out, &t, 4); break; }
    case KILN_DTYPE_INT64: { int64_t t = (v != v || fabs(v) > 9e18) ? 0 : (int64_t)v; memcpy(out, &t, 8); break; }
    case KILN_DTYPE_UINT64: { uint64_t t = (v != v || v < 0 || v > 1.8e19) ? 0 : (uint64_t)v; memcpy(out, &t, 8); break; }
    default: break;
    }
}

/* Runs the resize once the output shape and per-axis scales are known. */
static kiln_status resize_run(kiln_op_ctx *c, const rs_params *p, const kiln_tensor *x, const int64_t *out_dims,
                              const double *scales, const double *out_lens, const double *roi) {
    int rk = x->rank;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, rk, out_dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    if (x->numel == 0)
        return kiln_fail(KILN_ERR_INVALID, "cannot resize an empty input to a non-empty output");
    if (rk == 0) {
        memcpy(y->data, x->data, x->nbytes);
        return KILN_OK;
    }
    kiln_status st = KILN_OK;
    rs_axis ax[KILN_MAX_RANK];
    memset(ax, 0, sizeof ax);
    void *bufs[2] = {NULL, NULL};
    for (int d = 0; d < rk; d++) {
        ax[d].in = x->dims[d];
        ax[d].out = out_dims[d];
        KILN_CHECK(st, axis_build(&ax[d], p, scales[d], out_lens[d], roi ? roi[d] : 0.0, roi ? roi[rk + d] : 1.0),
                   done);
    }
    if (p->mode == RM_NEAREST) {
        int64_t strides[KILN_MAX_RANK];
        kiln_dims_strides(rk, x->dims, strides);
        char fill[8];
        fill_bytes(x->dtype, p->extrapolation, fill);
        gather_job j = {x->data, y->data, kiln_dtype_size(x->dtype), rk, ax, strides, fill};
        size_t rows = (size_t)(y->numel / out_dims[rk - 1]);
        size_t n = (size_t)out_dims[rk - 1];
        kiln_parallel_for(c, rows, n >= 8192 ? 1 : 8192 / n, gather_range, &j);
        goto done;
    }
    /* separable passes: shrinking axes first keeps the work small */
    bool dbl = x->dtype == KILN_DTYPE_DOUBLE || x->dtype == KILN_DTYPE_INT32 || x->dtype == KILN_DTYPE_UINT32 ||
               x->dtype == KILN_DTYPE_INT64 || x->dtype == KILN_DTYPE_UINT64;
    size_t wsz = dbl ? sizeof(double) : sizeof(float);
    int order[KILN_MAX_RANK], no = 0;
    for (int d = 0; d < rk; d++)
        if (!ax[d].identity)
            order[no++] = d;
    for (int a = 1; a < no; a++)
        for (int b = a; b > 0 && (double)ax[order[b]].out / (double)ax[order[b]].in <
                                     (double)ax[order[b - 1]].out / (double)ax[order[b - 1]].in; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int64_t cur[KILN_MAX_RANK];
    memcpy(cur, x->dims, sizeof(int64_t) * (size_t)rk);
    /* largest intermediate: bounded by max(input, output) per step */
    int64_t maxn = x->numel;
    for (int a = 0; a < no; a++) {
        cur[order[a]] = ax[order[a]].out;
        int64_t n;
        KILN_CHECK(st, kiln_dims_numel(rk, cur, &n), done);
        if (n > maxn)
            maxn = n;
    }
    memcpy(cur, x->dims, sizeof(int64_t) * (size_t)rk);
    if (no == 0) {
        memcpy(y->data, x->data, x->nbytes);
        goto done;
    }
    /* float32 runs straight from the input into the output; other types go
     * through a float or double work copy */
    bool direct = x->dtype == KILN_DTYPE_FLOAT;
    bufs[0] = kiln_malloc((size_t)maxn * wsz);
    bufs[1] = kiln_malloc((size_t)maxn * wsz);
    if (!bufs[0] || !bufs[1]) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    const void *from = x->data;
    if (!direct) {
        to_work(x, bufs[0], dbl);
        from = bufs[0];
    }
    int next = 1;
    for (int a = 0; a < no; a++) {
        int d = order[a];
        void *to = (direct && a == no - 1) ? y->data : bufs[next];
        pass_job j = {from, to, dbl, kiln_dims_prod(cur, 0, d), ax[d].in, ax[d].out,
                      kiln_dims_prod(cur, d + 1, rk), &ax[d], p->extrapolation};
        size_t tasks = (size_t)(j.inner == 1 ? j.outer : j.outer * j.out);
        int64_t per = j.inner == 1 ? j.out * ax[d].taps : j.inner * ax[d].taps;
        kiln_parallel_for(c, tasks, per >= 8192 ? 1 : (size_t)(8192 / (per ? per : 1)), pass_range, &j);
        cur[d] = ax[d].out;
        from = to;
        next = to == bufs[1] ? 0 : 1;
    }
    if (!direct)
        from_work(from, dbl, y);
done:
    for (int d = 0; d < rk; d++) {
        free(ax[d].idx);
        free(ax[d].w);
        free(ax[d].wf);
        free(ax[d].ext);
    }
    free(bufs[0]);
    free(bufs[1]);
    return st;
}

/* Numeric types in every mode; bool only by nearest (a pure gather). */
static kiln_status resize_check_dtype(kiln_dtype dt, const rs_params *p) {
    if (kiln_reduce_dtype_ok(dt) || (dt == KILN_DTYPE_BOOL && p->mode == RM_NEAREST))
        return KILN_OK;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "input 'X' has element type %s, which is not supported in this mode",
                     kiln_dtype_name(dt));
}

/* Attributes; version: the Resize opset (below 11: the classic Resize-10 /
 * Upsample behaviour). */
static kiln_status parse_mode(const kiln_node *node, int version, rs_params *p) {
    bool classic = version < 11;
    const char *m = kiln_attr_string(node, "mode", "nearest");
    if (!strcmp(m, "nearest"))
        p->mode = RM_NEAREST;
    else if (!strcmp(m, "linear") || (classic && !strcmp(m, "bilinear")))
        p->mode = RM_LINEAR;
    else if (!strcmp(m, "cubic") && !classic)
        p->mode = RM_CUBIC;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'mode' = '%s' is not a valid mode", m);
    p->cubic_a = -0.75;
    p->extrapolation = 0;
    p->exclude_outside = false;
    p->antialias = false;
    if (classic) {
        p->coord = CT_ASYMMETRIC;
        p->nearest = NM_SIMPLE;
        return KILN_OK;
    }
    const char *ct = kiln_attr_string(node, "coordinate_transformation_mode", "half_pixel");
    static const struct { const char *s; rs_coord v; } cts[] = {
        {"half_pixel", CT_HALF_PIXEL}, {"pytorch_half_pixel", CT_PYTORCH_HALF_PIXEL},
        {"align_corners", CT_ALIGN_CORNERS}, {"asymmetric", CT_ASYMMETRIC},
        {"tf_half_pixel_for_nn", CT_TF_HALF_PIXEL_NN}, {"tf_crop_and_resize", CT_TF_CROP_AND_RESIZE},
        {"half_pixel_symmetric", CT_HALF_PIXEL_SYMMETRIC}};
    size_t i;
    for (i = 0; i < sizeof cts / sizeof *cts; i++)
        if (!strcmp(ct, cts[i].s))
            break;
    if (i == sizeof cts / sizeof *cts || (cts[i].v == CT_HALF_PIXEL_SYMMETRIC && version < 19))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'coordinate_transformation_mode' = '%s' is not valid%s", ct,
                         i < sizeof cts / sizeof *cts ? " before opset 19" : "");
    p->coord = cts[i].v;
    const char *nm = kiln_attr_string(node, "nearest_mode", "round_prefer_floor");
    if (!strcmp(nm, "round_prefer_floor"))
        p->nearest = NM_ROUND_PREFER_FLOOR;
    else if (!strcmp(nm, "round_prefer_ceil"))
        p->nearest = NM_ROUND_PREFER_CEIL;
    else if (!strcmp(nm, "floor"))
        p->nearest = NM_FLOOR;
    else if (!strcmp(nm, "ceil"))
        p->nearest = NM_CEIL;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'nearest_mode' = '%s' is not valid", nm);
    p->cubic_a = kiln_attr_float(node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = kiln_attr_int(node, "exclude_outside", 0) != 0;
    p->extrapolation = kiln_attr_float(node, "extrapolation_value", 0.0f);
    if (version >= 18) {
        int64_t aa = kiln_attr_int(node, "antialias", 0);
        if (aa != 0 && aa != 1)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'antialias' must be 0 or 1, got %lld", (long long)aa);
        if (aa && p->mode == RM_NEAREST)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'antialias' = 1 does not apply to mode 'nearest'");
        p->antialias = aa == 1;
    }
    return KILN_OK;
}

/* Resize's shape arguments over every axis of the input: the scales or
 * sizes given for the resized axes (`axes`, from opset 18; all axes
 * otherwise), 1 and the input's length elsewhere. */
typedef enum { KP_STRETCH, KP_NOT_LARGER, KP_NOT_SMALLER } rs_policy;
typedef struct rs_args {
    int rank, naxes;
    int axes[KILN_MAX_RANK]; /* the resized axes in the order scales/sizes/roi list them */
    bool mask[KILN_MAX_RANK];
    rs_policy policy;
} rs_args;

static kiln_status parse_axes(const kiln_node *node, int version, int rank, rs_args *a) {
    a->rank = rank;
    a->policy = KP_STRETCH;
    memset(a->mask, 0, sizeof a->mask);
    size_t n = 0;
    const int64_t *ax = version >= 18 ? kiln_attr_ints(node, "axes", &n) : NULL;
    if (!ax) {
        a->naxes = rank;
        for (int d = 0; d < rank; d++) {
            a->axes[d] = d;
            a->mask[d] = true;
        }
    } else {
        if (n > (size_t)rank)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'axes' has %zu values for an input of rank %d", n, rank);
        a->naxes = (int)n;
        for (size_t i = 0; i < n; i++) {
            int64_t d = ax[i] < 0 ? ax[i] + rank : ax[i];
            if (d < 0 || d >= rank)
                return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)ax[i], rank);
            if (a->mask[d])
                return kiln_fail(KILN_ERR_INVALID, "axis %lld is repeated in 'axes'", (long long)ax[i]);
            a->mask[d] = true;
            a->axes[i] = (int)d;
        }
    }
    if (version >= 18) {
        const char *kp = kiln_attr_string(node, "keep_aspect_ratio_policy", "stretch");
        if (!strcmp(kp, "stretch"))
            a->policy = KP_STRETCH;
        else if (!strcmp(kp, "not_larger"))
            a->policy = KP_NOT_LARGER;
        else if (!strcmp(kp, "not_smaller"))
            a->policy = KP_NOT_SMALLER;
        else
            return kiln_fail(KILN_ERR_INVALID, "attribute 'keep_aspect_ratio_policy' = '%s' is not valid", kp);
    }
    return KILN_OK;
}

/* Output dims, effective scales and resized lengths (shared by exec and
 * infer). in: the input's dims. s / sf: per-axis scales (sf: their float32
 * values when the input was float32, else NULL) or sz: per-axis sizes. */
static kiln_status rs_out_shape(const rs_args *a, const int64_t *in, const double *s, const float *sf,
                                const int64_t *sz, int64_t *out, double *scales, double *out_lens) {
    int rk = a->rank;
    if (sz) {
        double ks = 0;
        bool first = true;
        for (int d = 0; d < rk; d++) {
            if (sz[d] < 0)
                return kiln_fail(KILN_ERR_INVALID, "input 'sizes' has a negative size %lld", (long long)sz[d]);
            double r = in[d] ? (double)sz[d] / (double)in[d] : 1.0;
            if (a->mask[d] && (first || (a->policy == KP_NOT_LARGER ? r < ks : r > ks))) {
                ks = r;
                first = false;
            }
        }
        for (int d = 0; d < rk; d++) {
            if (a->policy == KP_STRETCH || !a->mask[d]) {
                out[d] = a->mask[d] ? sz[d] : in[d];
                scales[d] = a->mask[d] && in[d] ? (double)sz[d] / (double)in[d] : 1.0;
                out_lens[d] = (double)out[d];
            } else {
                /* one factor for every resized axis, the size rounded half up */
                double o = ks * (double)in[d] + 0.5;
                if (!(o < 4e18))
                    return kiln_fail(KILN_ERR_INVALID, "sizes give an output that is too large");
                out[d] = (int64_t)o;
                scales[d] = ks;
                out_lens[d] = ks * (double)in[d];
            }
        }
    } else {
        for (int d = 0; d < rk; d++) {
            if (!a->mask[d]) {
                out[d] = in[d];
                scales[d] = 1;
                out_lens[d] = (double)in[d];
                continue;
            }
            if (!(s[d] > 0) || !isfinite(s[d]))
                return kiln_fail(KILN_ERR_INVALID, "scale %g for axis %d must be positive", s[d], d);
            double o = floor((double)in[d] * s[d]);
            if (o > 4e18)
                return kiln_fail(KILN_ERR_INVALID, "scale %g for axis %d gives an output that is too large", s[d], d);
            out[d] = (int64_t)o;
            scales[d] = s[d];
            /* the reference computes scale * length in float32 when scales are float32 */
            out_lens[d] = sf ? (double)(sf[d] * (float)in[d]) : s[d] * (double)in[d];
        }
    }
    int64_t n;
    return kiln_dims_numel(rk, out, &n);
}

/* Reads `scales` (n values, for the axes of a) into per-axis s / sf. */
static kiln_status read_scales(const kiln_tensor *t, const rs_args *a, double *s, float *sf, bool *is_f32) {
    if (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE && t->dtype != KILN_DTYPE_FLOAT16)
        return kiln_fail(KILN_ERR_INVALID, "input 'scales' must be floating point, is %s", kiln_dtype_name(t->dtype));
    if (t->numel != a->naxes)
        return kiln_fail(KILN_ERR_INVALID, "input 'scales' has %lld values for %d axes", (long long)t->numel,
                         a->naxes);
    *is_f32 = t->dtype == KILN_DTYPE_FLOAT;
    for (int d = 0; d < a->rank; d++) {
        s[d] = 1;
        sf[d] = 1;
    }
    for (int i = 0; i < a->naxes; i++) {
        int d = a->axes[i];
        s[d] = kiln_tensor_get_f64(t, i);
        sf[d] = (float)s[d];
    }
    return KILN_OK;
}

static kiln_status read_sizes(const kiln_tensor *t, const rs_args *a, const int64_t *in, int64_t *sz) {
    if (t->dtype != KILN_DTYPE_INT64 || t->numel != a->naxes)
        return kiln_fail(KILN_ERR_INVALID, "input 'sizes' must hold %d int64 values", a->naxes);
    for (int d = 0; d < a->rank; d++)
        sz[d] = in[d];
    for (int i = 0; i < a->naxes; i++)
        sz[a->axes[i]] = ((const int64_t *)t->data)[i];
    return KILN_OK;
}

static kiln_status resize_exec(kiln_op_ctx *c, int version) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    rs_params p;
    KILN_TRY(parse_mode(c->node, version, &p));
    KILN_TRY(resize_check_dtype(x->dtype, &p));
    int rk = x->rank;
    rs_args a;
    KILN_TRY(parse_axes(c->node, version, rk, &a));
    int64_t out_dims[KILN_MAX_RANK], sz[KILN_MAX_RANK];
    double scales[KILN_MAX_RANK], out_lens[KILN_MAX_RANK], s[KILN_MAX_RANK];
    float sf[KILN_MAX_RANK];
    bool f32;
    if (version < 11) {
        KILN_TRY(kiln_op_need_inputs(c, 2));
        KILN_TRY(read_scales(c->in[1], &a, s, sf, &f32));
        KILN_TRY(rs_out_shape(&a, x->dims, s, f32 ? sf : NULL, NULL, out_dims, scales, out_lens));
        return resize_run(c, &p, x, out_dims, scales, out_lens, NULL);
    }
    const kiln_tensor *roi_t = kiln_op_in(c, 1), *sc = kiln_op_in(c, 2), *szt = kiln_op_in(c, 3);
    double roi[2 * KILN_MAX_RANK];
    bool have_roi = false;
    if (p.coord == CT_TF_CROP_AND_RESIZE && roi_t && roi_t->numel > 0) {
        int na = a.naxes;
        if (roi_t->numel != 2 * na || (roi_t->dtype != KILN_DTYPE_FLOAT && roi_t->dtype != KILN_DTYPE_DOUBLE &&
                                       roi_t->dtype != KILN_DTYPE_FLOAT16))
            return kiln_fail(KILN_ERR_INVALID, "input 'roi' must hold 2 * %d floating-point values", na);
        for (int d = 0; d < rk; d++) {
            roi[d] = 0;
            roi[rk + d] = 1;
        }
        for (int i = 0; i < na; i++) {
            roi[a.axes[i]] = kiln_tensor_get_f64(roi_t, i);
            roi[rk + a.axes[i]] = kiln_tensor_get_f64(roi_t, na + i);
        }
        have_roi = true;
    }
    if (szt && szt->numel > 0) {
        if (sc && sc->numel > 0)
            return kiln_fail(KILN_ERR_INVALID, "only one of inputs 'scales' and 'sizes' may be given");
        KILN_TRY(read_sizes(szt, &a, x->dims, sz));
        KILN_TRY(rs_out_shape(&a, x->dims, NULL, NULL, sz, out_dims, scales, out_lens));
    } else if (sc && sc->numel > 0) {
        KILN_TRY(read_scales(sc, &a, s, sf, &f32));
        KILN_TRY(rs_out_shape(&a, x->dims, s, f32 ? sf : NULL, NULL, out_dims, scales, out_lens));
    } else {
        return kiln_fail(KILN_ERR_INVALID, "one of inputs 'scales' and 'sizes' must be given (non-empty)");
    }
    return resize_run(c, &p, x, out_dims, scales, out_lens, have_roi ? roi : NULL);
}

static kiln_status resize_v10(kiln_op_ctx *c) { return resize_exec(c, (int)c->opset); }
static kiln_status resize_v18(kiln_op_ctx *c) { return resize_exec(c, 18); }
static kiln_status resize_v19(kiln_op_ctx *c) { return resize_exec(c, 19); }

/* Upsample: opset 7 takes `scales` as an attribute, opset 9 as input 1. */
static kiln_status upsample_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    rs_params p;
    KILN_TRY(parse_mode(c->node, 10, &p));
    KILN_TRY(resize_check_dtype(x->dtype, &p));
    int rk = x->rank;
    rs_args a;
    KILN_TRY(parse_axes(c->node, 10, rk, &a));
    int64_t out_dims[KILN_MAX_RANK];
    double scales[KILN_MAX_RANK], out_lens[KILN_MAX_RANK], s[KILN_MAX_RANK];
    float sf[KILN_MAX_RANK];
    bool f32 = true;
    if (c->opset < 9) {
        size_t n;
        const float *av = kiln_attr_floats(c->node, "scales", &n);
        if (!av || n != (size_t)rk)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'scales' must hold %d values", rk);
        for (int d = 0; d < rk; d++) {
            s[d] = av[d];
            sf[d] = av[d];
        }
    } else {
        KILN_TRY(kiln_op_need_inputs(c, 2));
        KILN_TRY(read_scales(c->in[1], &a, s, sf, &f32));
    }
    KILN_TRY(rs_out_shape(&a, x->dims, s, f32 ? sf : NULL, NULL, out_dims, scales, out_lens));
    return resize_run(c, &p, x, out_dims, scales, out_lens, NULL);
}

/* ---- shape rules ---- */

/* Y: X's type; each dim from constant sizes or scales through rs_out_shape.
 * A symbolic dim stays itself where it is not resized (scale 1 or not in
 * `axes`); otherwise it is unknown. */
static kiln_status resize_infer_v(kiln_infer_ctx *x, int version, int scales_in) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int rk = X->rank;
    rs_args a;
    KILN_TRY(parse_axes(x->node, version, rk, &a));
    const kiln_tensor *sc = scales_in >= 0 && (size_t)scales_in < x->n_in ? x->k[scales_in] : NULL;
    const kiln_tensor *szt = version >= 11 && x->n_in > 3 ? x->k[3] : NULL;
    double s[KILN_MAX_RANK];
    float sf[KILN_MAX_RANK];
    int64_t sz[KILN_MAX_RANK], in[KILN_MAX_RANK], out[KILN_MAX_RANK];
    double scales[KILN_MAX_RANK], lens[KILN_MAX_RANK];
    bool f32 = false, by_sizes;
    bool sz_given = version >= 11 && kiln_infer_has(x, 3), sc_given = kiln_infer_has(x, (size_t)scales_in);
    bool sym_resized = false;
    if (sz_given && szt && szt->numel > 0)
        by_sizes = true;
    else if (sc_given && sc && sc->numel > 0 && (!sz_given || (szt && szt->numel == 0)))
        by_sizes = false;
    else {
        /* sizes computed by shape arithmetic: its (symbolic) elements */
        const kiln_shape_fact *S = kiln_infer_in(x, 3);
        bool all_axes = true;
        for (int d = 0; d < rk; d++)
            all_axes = all_axes && a.mask[d];
        if (sz_given && S->nval == rk && all_axes && a.policy == KP_STRETCH) {
            o->rank = rk;
            memcpy(o->dims, S->val, (size_t)rk * sizeof *o->dims);
            return KILN_OK;
        }
        kiln_infer_copy_shape(o, X, false);
        for (int d = 0; d < rk; d++)
            if (a.mask[d])
                o->dims[d] = kiln_sd_unknown();
        return KILN_OK;
    }
    for (int d = 0; d < rk; d++) {
        bool k = kiln_sd_is_const(&X->dims[d]);
        in[d] = k ? X->dims[d].num : 1;
        if (!k && a.mask[d])
            sym_resized = true;
    }
    if (by_sizes)
        KILN_TRY(read_sizes(szt, &a, in, sz));
    else
        KILN_TRY(read_scales(sc, &a, s, sf, &f32));
    KILN_TRY(rs_out_shape(&a, in, by_sizes ? NULL : s, f32 ? sf : NULL, by_sizes ? sz : NULL, out, scales, lens));
    o->rank = rk;
    for (int d = 0; d < rk; d++) {
        if (kiln_sd_is_const(&X->dims[d]) && !(by_sizes && a.policy != KP_STRETCH && sym_resized))
            o->dims[d] = kiln_sd_const(out[d]);
        else if (!a.mask[d] || (!by_sizes && s[d] == 1))
            o->dims[d] = X->dims[d];
        else if (by_sizes && a.policy == KP_STRETCH)
            o->dims[d] = kiln_sd_const(sz[d]);
        else
            o->dims[d] = kiln_sd_unknown();
    }
    return KILN_OK;
}
static kiln_status resize_infer(kiln_infer_ctx *x) {
    int v = (int)x->opset;
    return resize_infer_v(x, v, v < 11 ? 1 : 2);
}
static kiln_status resize_infer_v18(kiln_infer_ctx *x) { return resize_infer_v(x, 18, 2); }
static kiln_status upsample_infer(kiln_infer_ctx *x) {
    if (x->opset >= 9)
        return resize_infer_v(x, 10, 1);
    /* opset 7: scales is an attribute */
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    size_t n;
    const float *av = kiln_attr_floats(x->node, "scales", &n);
    if (X->rank < 0 || !av || n != (size_t)X->rank)
        return KILN_OK;
    o->rank = X->rank;
    for (int d = 0; d < X->rank; d++) {
        if (av[d] == 1.0f)
            o->dims[d] = X->dims[d];
        else if (kiln_sd_is_const(&X->dims[d]) && av[d] > 0 && (double)av[d] * (double)X->dims[d].num < 4e18)
            o->dims[d] = kiln_sd_const((int64_t)floor((double)av[d] * (double)X->dims[d].num));
        else
            o->dims[d] = kiln_sd_unknown();
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Resize", 10, 17, resize_v10, resize_infer},
    {"", "Resize", 18, 18, resize_v18, resize_infer_v18},
    {"", "Resize", 19, 0, resize_v19, resize_infer_v18},
    {"", "Upsample", 7, 9, upsample_exec, upsample_infer},
};
KILN_OP_FAMILY(resize, ops);
