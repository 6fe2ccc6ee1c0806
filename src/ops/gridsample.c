/* GridSample (opset 16): 4-D input [N, C, H, W], grid [N, Ho, Wo, 2] of
 * (x, y) in [-1, 1]; output [N, C, Ho, Wo]. Follows the convention the spec
 * points to (torch grid_sample): align_corners maps -1/1 to the centres of
 * the corner pixels, otherwise to their outer edges. Bilinear and nearest
 * apply the padding mode to the sampling coordinate; bicubic (A = -0.75)
 * applies it to each of the 4x4 taps. Nearest rounds half to even. Opset 20
 * renamed the modes linear/cubic; both spellings are accepted. */
#include <math.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef enum { GS_BILINEAR, GS_NEAREST, GS_BICUBIC } gs_mode;
typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_pad;

static double gs_unnorm(double v, int64_t size, bool ac) {
    return ac ? (v + 1) / 2 * (double)(size - 1) : ((v + 1) * (double)size - 1) / 2;
}

static double gs_reflect(double v, double twice_lo, double twice_hi) {
    if (twice_lo == twice_hi)
        return 0.0;
    double mn = twice_lo / 2, span = (twice_hi - twice_lo) / 2;
    v = fabs(v - mn);
    double extra = fmod(v, span);
    double flips = floor(v / span);
    return fmod(flips, 2.0) == 0.0 ? extra + mn : span - extra + mn;
}

static double gs_clip(double v, int64_t size) {
    double hi = (double)(size - 1);
    return v < 0 ? 0 : v > hi ? hi : v;
}

static double gs_pad_coord(double v, int64_t size, gs_pad pad, bool ac) {
    if (pad == GS_BORDER)
        return gs_clip(v, size);
    if (pad == GS_REFLECTION) {
        v = ac ? gs_reflect(v, 0, 2.0 * (double)(size - 1)) : gs_reflect(v, -1, 2.0 * (double)size - 1);
        return gs_clip(v, size);
    }
    return v;
}

typedef struct gs_plane {
    const void *data;
    kiln_dtype dt;
    int64_t off, H, W;
} gs_plane;

/* Pixel value, 0 outside the image. Coordinates arrive as doubles so huge
 * values from the grid are compared before any integer conversion. */
static double gs_pix(const gs_plane *p, double y, double x) {
    if (!(y >= 0 && y <= (double)(p->H - 1) && x >= 0 && x <= (double)(p->W - 1)))
        return 0.0;
    return kiln_load_f64(p->data, p->dt, p->off + (int64_t)y * p->W + (int64_t)x);
}

static double gs_cc1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static double gs_cc2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

static double gs_sample(const gs_plane *p, double gx, double gy, gs_mode mode, gs_pad pad, bool ac) {
    double x = gs_unnorm(gx, p->W, ac), y = gs_unnorm(gy, p->H, ac);
    if (mode == GS_BICUBIC) {
        double x0 = floor(x), y0 = floor(y), tx = x - x0, ty = y - y0;
        const double A = -0.75;
        double cx[4] = {gs_cc2(tx + 1, A), gs_cc1(tx, A), gs_cc1(1 - tx, A), gs_cc2(2 - tx, A)};
        double cy[4] = {gs_cc2(ty + 1, A), gs_cc1(ty, A), gs_cc1(1 - ty, A), gs_cc2(2 - ty, A)};
        double acc = 0;
        for (int i = 0; i < 4; i++) {
            double row = 0;
            double yy = gs_pad_coord(y0 - 1 + i, p->H, pad, ac);
            for (int j = 0; j < 4; j++) {
                double xx = gs_pad_coord(x0 - 1 + j, p->W, pad, ac);
                row += cx[j] * gs_pix(p, yy, xx);
            }
            acc += cy[i] * row;
        }
        return acc;
    }
    x = gs_pad_coord(x, p->W, pad, ac);
    y = gs_pad_coord(y, p->H, pad, ac);
    if (mode == GS_NEAREST)
        return gs_pix(p, nearbyint(y), nearbyint(x));
    double x0 = floor(x), y0 = floor(y), wx = x - x0, wy = y - y0;
    return gs_pix(p, y0, x0) * (1 - wx) * (1 - wy) + gs_pix(p, y0, x0 + 1) * wx * (1 - wy) +
           gs_pix(p, y0 + 1, x0) * (1 - wx) * wy + gs_pix(p, y0 + 1, x0 + 1) * wx * wy;
}

typedef struct gs_job {
    const kiln_tensor *x, *g;
    kiln_tensor *y;
    gs_mode mode;
    gs_pad pad;
    bool ac;
} gs_job;

/* One (image, channel) plane per item. */
static void gs_range(void *arg, size_t begin, size_t end) {
    const gs_job *j = arg;
    const kiln_tensor *x = j->x, *g = j->g;
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3], Ho = g->dims[1], Wo = g->dims[2];
    for (size_t it = begin; it < end; it++) {
        int64_t n = (int64_t)it / C, ch = (int64_t)it % C;
        gs_plane p = {x->data, x->dtype, (n * C + ch) * H * W, H, W};
        for (int64_t i = 0; i < Ho * Wo; i++) {
            double gx = kiln_load_f64(g->data, g->dtype, (n * Ho * Wo + i) * 2);
            double gy = kiln_load_f64(g->data, g->dtype, (n * Ho * Wo + i) * 2 + 1);
            double v = H > 0 && W > 0 ? gs_sample(&p, gx, gy, j->mode, j->pad, j->ac) : 0.0;
            kiln_store_f64(j->y->data, j->y->dtype, (n * C + ch) * Ho * Wo + i, v);
        }
    }
}

static kiln_status gs_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    static const kiln_dtype ft[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ft, 4));
    KILN_TRY(kiln_op_need_dtype(c, 1, ft, 4));
    const kiln_tensor *x = c->in[0], *g = c->in[1];
    const char *ms = kiln_attr_string(c->node, "mode", "bilinear");
    const char *ps = kiln_attr_string(c->node, "padding_mode", "zeros");
    bool ac = kiln_attr_int(c->node, "align_corners", 0) != 0;
    gs_mode mode;
    if (!strcmp(ms, "bilinear") || !strcmp(ms, "linear"))
        mode = GS_BILINEAR;
    else if (!strcmp(ms, "nearest"))
        mode = GS_NEAREST;
    else if (!strcmp(ms, "bicubic") || !strcmp(ms, "cubic"))
        mode = GS_BICUBIC;
    else
        return kiln_fail(KILN_ERR_INVALID, "mode '%s' is not bilinear, nearest or bicubic", ms);
    gs_pad pad;
    if (!strcmp(ps, "zeros"))
        pad = GS_ZEROS;
    else if (!strcmp(ps, "border"))
        pad = GS_BORDER;
    else if (!strcmp(ps, "reflection"))
        pad = GS_REFLECTION;
    else
        return kiln_fail(KILN_ERR_INVALID, "padding_mode '%s' is not zeros, border or reflection", ps);
    if (x->rank != 4)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input must be 4-D [N, C, H, W], got rank %d", x->rank);
    if (g->rank != 4 || g->dims[0] != x->dims[0] || g->dims[3] != 2)
        return kiln_fail(KILN_ERR_INVALID, "grid must have shape [N, H_out, W_out, 2] with N = %lld",
                         (long long)x->dims[0]);
    int64_t N = x->dims[0], C = x->dims[1], Ho = g->dims[1], Wo = g->dims[2];
    int64_t od[4] = {N, C, Ho, Wo};
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, 4, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    gs_job job = {x, g, y, mode, pad, ac};
    kiln_parallel_for(c, (size_t)(N * C), 1, gs_range, &job);
    return KILN_OK;
}

/* Shape rule: [N, C] of X, then the grid's spatial dims. */
static kiln_status gs_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *G = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 3 || G->rank != X->rank)
        return KILN_OK;
    o->rank = X->rank;
    o->dims[0] = X->dims[0];
    o->dims[1] = X->dims[1];
    for (int d = 2; d < X->rank; d++)
        o->dims[d] = G->dims[d - 1];
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "GridSample", 16, 19, gs_exec, gs_infer},
};
KILN_OP_FAMILY(gridsample, ops);
