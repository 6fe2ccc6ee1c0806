/* GridSample: input [N, C, D1..Dk], grid [N, O1..Ok, k] of normalised
 * coordinates in [-1, 1], listed from the last spatial axis to the first
 * ((x, y) for images); output [N, C, O1..Ok]. Opset 16 takes 4-D input and
 * modes bilinear / nearest / bicubic; opset 20 any number of spatial axes
 * and renames the modes linear / nearest / cubic (22 adds bfloat16).
 *
 * Follows the ONNX reference (torch grid_sample's convention): align_corners
 * maps -1/1 to the centres of the corner pixels, otherwise to their outer
 * edges. A coordinate outside the borders is first clamped (border) or
 * reflected (reflection); nearest rounds half to even before that. The taps
 * (1, 2 or 4 per axis, cubic with A = -0.75) then read 0 outside the input
 * (zeros), the clamped pixel (border) or the reflected one (reflection). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

#define GS_MAX_SP (KILN_MAX_RANK - 2)

typedef enum { GS_LINEAR, GS_NEAREST, GS_CUBIC } gs_mode;
typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_pad;

static double gs_unnorm(double v, int64_t size, bool ac) {
    return ac ? (v + 1) / 2 * (double)(size - 1) : ((v + 1) * (double)size - 1) / 2;
}

/* Reflects v by the nearer border until it lies within [lo, hi]. */
static double gs_reflect(double v, double lo, double hi) {
    double rng = hi - lo;
    if (!(rng > 0))
        return lo;
    if (v < lo) {
        double dx = lo - v, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2.0) == 0 ? lo + r : hi - r;
    }
    if (v > hi) {
        double dx = v - hi, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2.0) == 0 ? hi - r : lo + r;
    }
    return v;
}

typedef struct gs_geom {
    int nsp;
    int64_t in[GS_MAX_SP], out_size;
    double lo[GS_MAX_SP], hi[GS_MAX_SP]; /* borders per axis */
    gs_mode mode;
    gs_pad pad;
    bool ac;
} gs_geom;

/* Index of tap i along axis d, or -1 for a zero. */
static int64_t gs_tap(const gs_geom *g, int d, double i) {
    int64_t n = g->in[d];
    if (g->pad == GS_ZEROS)
        return i >= 0 && i < (double)n ? (int64_t)i : -1;
    if (g->pad == GS_REFLECTION)
        i = gs_reflect(i, g->lo[d], g->hi[d]);
    /* border, and reflection's result (which may lie half a pixel out) */
    double k = trunc(i);
    return k < 0 ? 0 : k > (double)(n - 1) ? n - 1 : (int64_t)k;
}

static void gs_cubic(double x, double *c) {
    const double A = -0.75;
    x = fabs(x);
    double s = x + 1, t = 1 - x, u = 2 - x;
    c[0] = ((A * s - 5 * A) * s + 8 * A) * s - 4 * A;
    c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
    c[2] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[3] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
}

typedef struct gs_job {
    const kiln_tensor *x, *g;
    kiln_tensor *y;
    const gs_geom *geo;
} gs_job;

/* One (image, channel) plane per item. */
static void gs_range(void *arg, size_t begin, size_t end) {
    const gs_job *j = arg;
    const gs_geom *g = j->geo;
    const kiln_tensor *x = j->x, *gr = j->g;
    int nsp = g->nsp, T = g->mode == GS_NEAREST ? 1 : g->mode == GS_LINEAR ? 2 : 4;
    int64_t C = x->dims[1], plane = 1, str[GS_MAX_SP];
    for (int d = nsp - 1; d >= 0; d--) {
        str[d] = plane;
        plane *= g->in[d];
    }
    int64_t combos = 1;
    for (int d = 0; d < nsp; d++)
        combos *= T;
    for (size_t it = begin; it < end; it++) {
        int64_t n = (int64_t)it / C, ch = (int64_t)it % C, base = (n * C + ch) * plane;
        for (int64_t o = 0; o < g->out_size; o++) {
            int64_t idx[GS_MAX_SP][4];
            double w[GS_MAX_SP][4];
            for (int d = 0; d < nsp; d++) {
                /* the grid lists the last axis first; coordinates in float32 as the reference */
                double v = kiln_load_f64(gr->data, gr->dtype, (n * g->out_size + o) * nsp + (nsp - 1 - d));
                float c = (float)gs_unnorm(v, g->in[d], g->ac);
                if (g->mode == GS_NEAREST)
                    c = nearbyintf(c);
                if (c < g->lo[d] || c > g->hi[d]) {
                    if (g->pad == GS_BORDER)
                        c = c < 0 ? 0.0f : c > (float)(g->in[d] - 1) ? (float)(g->in[d] - 1) : c;
                    else if (g->pad == GS_REFLECTION)
                        c = (float)gs_reflect(c, g->lo[d], g->hi[d]);
                }
                if (!isfinite(c))
                    c = -2.0f; /* NaN or inf: outside, read as the padding mode says */
                if (c < -(float)(1 << 30))
                    c = -(float)(1 << 30);
                if (c > (float)(1 << 30))
                    c = (float)(1 << 30);
                if (g->mode == GS_NEAREST) {
                    idx[d][0] = gs_tap(g, d, trunc(c));
                    w[d][0] = 1;
                    continue;
                }
                double f0 = floor(c), fr = c - f0;
                if (g->mode == GS_LINEAR) {
                    idx[d][0] = gs_tap(g, d, f0);
                    idx[d][1] = gs_tap(g, d, f0 + 1);
                    w[d][0] = 1 - fr;
                    w[d][1] = fr;
                } else {
                    gs_cubic(fr, w[d]);
                    for (int k = 0; k < 4; k++)
                        idx[d][k] = gs_tap(g, d, f0 - 1 + k);
                }
            }
            double acc = 0;
            int kp[GS_MAX_SP] = {0};
            for (int64_t t = 0; t < combos; t++) {
                double wt = 1;
                int64_t off = 0;
                bool zero = false;
                for (int d = 0; d < nsp; d++) {
                    int64_t i = idx[d][kp[d]];
                    if (i < 0) {
                        zero = true;
                        break;
                    }
                    wt *= w[d][kp[d]];
                    off += i * str[d];
                }
                if (!zero && wt != 0)
                    acc += wt * kiln_load_f64(x->data, x->dtype, base + off);
                for (int d = nsp - 1; d >= 0; d--) {
                    if (++kp[d] < T)
                        break;
                    kp[d] = 0;
                }
            }
            kiln_store_f64(j->y->data, j->y->dtype, (n * C + ch) * g->out_size + o, acc);
        }
    }
}

static kiln_status gs_run(kiln_op_ctx *c, int version) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    static const kiln_dtype ft[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ft, 4));
    KILN_TRY(kiln_op_need_dtype(c, 1, ft, 4));
    const kiln_tensor *x = c->in[0], *gr = c->in[1];
    bool v20 = version >= 20;
    const char *ms = kiln_attr_string(c->node, "mode", v20 ? "linear" : "bilinear");
    const char *ps = kiln_attr_string(c->node, "padding_mode", "zeros");
    gs_geom g;
    memset(&g, 0, sizeof g);
    g.ac = kiln_attr_int(c->node, "align_corners", 0) != 0;
    if (!strcmp(ms, v20 ? "linear" : "bilinear"))
        g.mode = GS_LINEAR;
    else if (!strcmp(ms, "nearest"))
        g.mode = GS_NEAREST;
    else if (!strcmp(ms, v20 ? "cubic" : "bicubic"))
        g.mode = GS_CUBIC;
    else
        return kiln_fail(KILN_ERR_INVALID, "mode '%s' is not %s", ms,
                         v20 ? "linear, nearest or cubic" : "bilinear, nearest or bicubic (before opset 20)");
    if (!strcmp(ps, "zeros"))
        g.pad = GS_ZEROS;
    else if (!strcmp(ps, "border"))
        g.pad = GS_BORDER;
    else if (!strcmp(ps, "reflection"))
        g.pad = GS_REFLECTION;
    else
        return kiln_fail(KILN_ERR_INVALID, "padding_mode '%s' is not zeros, border or reflection", ps);
    if (!v20 && x->rank != 4)
        return kiln_fail(KILN_ERR_INVALID, "input must be 4-D [N, C, H, W] before opset 20, got rank %d", x->rank);
    if (x->rank < 3)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 3 [N, C, D1, ...], got rank %d", x->rank);
    g.nsp = x->rank - 2;
    if (gr->rank != x->rank || gr->dims[0] != x->dims[0] || gr->dims[x->rank - 1] != g.nsp)
        return kiln_fail(KILN_ERR_INVALID, "grid must have shape [N, D1_out, ..., %d] with N = %lld", g.nsp,
                         (long long)x->dims[0]);
    int64_t od[KILN_MAX_RANK];
    od[0] = x->dims[0];
    od[1] = x->dims[1];
    g.out_size = 1;
    for (int d = 0; d < g.nsp; d++) {
        g.in[d] = x->dims[2 + d];
        od[2 + d] = gr->dims[1 + d];
        g.out_size *= od[2 + d];
        g.lo[d] = g.ac ? 0.0 : -0.5;
        g.hi[d] = g.ac ? (double)g.in[d] - 1 : (double)g.in[d] - 0.5;
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    for (int d = 0; d < g.nsp; d++)
        if (g.in[d] == 0) {
            memset(y->data, 0, y->nbytes); /* nothing to sample: zeros */
            return KILN_OK;
        }
    gs_job job = {x, gr, y, &g};
    kiln_parallel_for(c, (size_t)(x->dims[0] * x->dims[1]), 1, gs_range, &job);
    return KILN_OK;
}

static kiln_status gs_v16(kiln_op_ctx *c) { return gs_run(c, 16); }
static kiln_status gs_v20(kiln_op_ctx *c) { return gs_run(c, 20); }

/* Y: X's type, [N, C] of X then the grid's output dims. */
static kiln_status gs_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *G = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int r = X->rank >= 0 ? X->rank : G->rank;
    if (r < 3 || (X->rank >= 0 && G->rank >= 0 && X->rank != G->rank))
        return KILN_OK;
    o->rank = r;
    o->dims[0] = X->rank >= 0 ? X->dims[0] : G->dims[0];
    o->dims[1] = X->rank >= 0 ? X->dims[1] : kiln_sd_unknown();
    for (int d = 2; d < r; d++)
        o->dims[d] = G->rank >= 0 ? G->dims[d - 1] : kiln_sd_unknown();
    return KILN_OK;
}

/* AffineGrid (opset 20): theta [N, 2, 3] with size [N, C, H, W], or
 * [N, 3, 4] with [N, C, D, H, W]; output [N, H, W, 2] / [N, D, H, W, 3],
 * theta applied to each pixel's normalised (x, y[, z], 1) (centres at
 * -1 + (2i + 1) / n, or -1 + 2i / (n - 1) with align_corners). */
static kiln_status affine_dims(int64_t nsz, const int64_t *sz, int64_t *od, int *orank) {
    if (nsz != 4 && nsz != 5)
        return kiln_fail(KILN_ERR_INVALID, "input 'size' must hold 4 (2-D) or 5 (3-D) values, got %lld",
                         (long long)nsz);
    int nsp = (int)nsz - 2;
    od[0] = sz[0];
    for (int d = 0; d < nsp; d++)
        od[1 + d] = sz[2 + d];
    od[1 + nsp] = nsp;
    *orank = nsp + 2;
    for (int d = 0; d < (int)nsz; d++)
        if (sz[d] < 0)
            return kiln_fail(KILN_ERR_INVALID, "input 'size' has a negative value %lld", (long long)sz[d]);
    return KILN_OK;
}

static kiln_status affine_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    static const kiln_dtype ft[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ft, 4));
    const kiln_tensor *th = c->in[0], *st = c->in[1];
    if (st->dtype != KILN_DTYPE_INT64 || st->rank != 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'size' must be a 1-D int64 tensor");
    const int64_t *sz = st->data;
    int64_t od[KILN_MAX_RANK];
    int orank = 0;
    KILN_TRY(affine_dims(st->numel, sz, od, &orank));
    int nsp = orank - 2;
    if (th->rank != 3 || th->dims[0] != sz[0] || th->dims[1] != nsp || th->dims[2] != nsp + 1)
        return kiln_fail(KILN_ERR_INVALID, "theta must be [N, %d, %d] with N = %lld", nsp, nsp + 1, (long long)sz[0]);
    bool ac = kiln_attr_int(c->node, "align_corners", 0) != 0;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, th->dtype, orank, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    int64_t P = 1;
    for (int d = 0; d < nsp; d++)
        P *= od[1 + d];
    for (int64_t n = 0; n < sz[0]; n++) {
        double t[3][4];
        for (int i = 0; i < nsp; i++)
            for (int k = 0; k <= nsp; k++)
                t[i][k] = kiln_load_f64(th->data, th->dtype, (n * nsp + i) * (nsp + 1) + k);
        int64_t pos[3] = {0, 0, 0};
        for (int64_t p = 0; p < P; p++) {
            /* homogeneous coordinates: x (last axis) first */
            double h[4];
            for (int k = 0; k < nsp; k++) {
                int d = nsp - 1 - k;
                int64_t len = od[1 + d];
                h[k] = ac ? (len > 1 ? -1 + 2.0 * (double)pos[d] / (double)(len - 1) : -1)
                          : -1 + (2.0 * (double)pos[d] + 1) / (double)len;
            }
            h[nsp] = 1;
            for (int i = 0; i < nsp; i++) {
                double v = 0;
                for (int k = 0; k <= nsp; k++)
                    v += t[i][k] * h[k];
                kiln_store_f64(y->data, y->dtype, (n * P + p) * nsp + i, v);
            }
            for (int d = nsp - 1; d >= 0; d--) {
                if (++pos[d] < od[1 + d])
                    break;
                pos[d] = 0;
            }
        }
    }
    return KILN_OK;
}

static kiln_status affine_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = kiln_infer_in(x, 0)->dt;
    const kiln_shape_fact *S = kiln_infer_in(x, 1);
    if (S->nval == 4 || S->nval == 5) {
        int nsp = S->nval - 2;
        o->rank = nsp + 2;
        o->dims[0] = S->val[0];
        for (int d = 0; d < nsp; d++)
            o->dims[1 + d] = S->val[2 + d];
        o->dims[1 + nsp] = kiln_sd_const(nsp);
    } else if (S->rank == 1 && kiln_sd_is_const(&S->dims[0])) {
        int64_t n = S->dims[0].num;
        if (n != 4 && n != 5)
            return kiln_fail(KILN_ERR_INVALID, "input 'size' must hold 4 or 5 values");
        o->rank = (int)n;
        for (int d = 0; d < (int)n - 1; d++)
            o->dims[d] = kiln_sd_unknown();
        o->dims[n - 1] = kiln_sd_const(n - 2);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "GridSample", 16, 19, gs_v16, gs_infer},
    {"", "GridSample", 20, 0, gs_v20, gs_infer},
    {"", "AffineGrid", 20, 0, affine_exec, affine_infer},
};
KILN_OP_FAMILY(gridsample, ops);
