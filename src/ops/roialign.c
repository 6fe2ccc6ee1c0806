/* RoiAlign (opset 10, 16): X [N, C, H, W], rois [R, 4] as (x1, y1, x2, y2)
 * in input-image coordinates, batch_indices [R] (int64) -> Y [R, C, oh, ow].
 * Each output bin averages (mode avg) bilinear samples on a
 * sampling_ratio^2 grid (adaptive ceil(roi_size / out_size) when 0).
 * coordinate_transformation_mode (opset 16, default half_pixel) shifts roi
 * coordinates by -0.5; output_half_pixel (opset 10's only behaviour) does
 * not and forces rois to at least 1x1. Samples beyond one pixel outside the
 * image count as 0. mode max takes, per bin, the largest weighted corner
 * term of any sample (the widely deployed onnxruntime convention). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

static double roi_sample(const kiln_tensor *x, int64_t off, int64_t H, int64_t W, double y, double xx, bool maxm) {
    if (!(y >= -1.0 && y <= (double)H && xx >= -1.0 && xx <= (double)W)) /* NaN included */
        return 0.0;
    if (y <= 0)
        y = 0;
    if (xx <= 0)
        xx = 0;
    int64_t yl = (int64_t)y, xl = (int64_t)xx, yh, xh;
    if (yl >= H - 1) {
        yh = yl = H - 1;
        y = (double)yl;
    } else {
        yh = yl + 1;
    }
    if (xl >= W - 1) {
        xh = xl = W - 1;
        xx = (double)xl;
    } else {
        xh = xl + 1;
    }
    double ly = y - (double)yl, lx = xx - (double)xl, hy = 1 - ly, hx = 1 - lx;
    double v1 = hy * hx * kiln_load_f64(x->data, x->dtype, off + yl * W + xl);
    double v2 = hy * lx * kiln_load_f64(x->data, x->dtype, off + yl * W + xh);
    double v3 = ly * hx * kiln_load_f64(x->data, x->dtype, off + yh * W + xl);
    double v4 = ly * lx * kiln_load_f64(x->data, x->dtype, off + yh * W + xh);
    if (maxm) {
        double m = v1 > v2 ? v1 : v2;
        m = m > v3 ? m : v3;
        return m > v4 ? m : v4;
    }
    return v1 + v2 + v3 + v4;
}

typedef struct roi_geom {
    int64_t b, gh, gw;
    double x1, y1, bh, bw;
} roi_geom;

typedef struct roi_job {
    const kiln_tensor *x;
    kiln_tensor *y;
    const roi_geom *geo;
    int64_t C, oh, ow;
    bool maxm;
} roi_job;

/* One (roi, channel) pair per item. */
static void roi_range(void *arg, size_t begin, size_t end) {
    const roi_job *j = arg;
    int64_t C = j->C, H = j->x->dims[2], W = j->x->dims[3];
    for (size_t it = begin; it < end; it++) {
        int64_t r = (int64_t)it / C, ch = (int64_t)it % C;
        const roi_geom *q = &j->geo[r];
        int64_t xoff = (q->b * C + ch) * H * W;
        double count = (double)(q->gh * q->gw > 1 ? q->gh * q->gw : 1);
        for (int64_t ph = 0; ph < j->oh; ph++)
            for (int64_t pw = 0; pw < j->ow; pw++) {
                double acc = 0.0;
                bool first = true;
                for (int64_t iy = 0; iy < q->gh; iy++) {
                    double yy = q->y1 + (double)ph * q->bh + ((double)iy + 0.5) * q->bh / (double)q->gh;
                    for (int64_t ix = 0; ix < q->gw; ix++) {
                        double xx = q->x1 + (double)pw * q->bw + ((double)ix + 0.5) * q->bw / (double)q->gw;
                        double v = roi_sample(j->x, xoff, H, W, yy, xx, j->maxm);
                        if (j->maxm) {
                            acc = first || v > acc ? v : acc;
                            first = false;
                        } else {
                            acc += v;
                        }
                    }
                }
                kiln_store_f64(j->y->data, j->y->dtype, ((r * C + ch) * j->oh + ph) * j->ow + pw,
                               j->maxm ? acc : acc / count);
            }
    }
}

static kiln_status roialign_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    static const kiln_dtype ft[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ft, 4));
    KILN_TRY(kiln_op_need_dtype(c, 1, ft, 4));
    const kiln_tensor *x = c->in[0], *rois = c->in[1], *bi = c->in[2];
    if (x->rank != 4)
        return kiln_fail(KILN_ERR_INVALID, "X must be 4-D [N, C, H, W], got rank %d", x->rank);
    if (rois->rank != 2 || rois->dims[1] != 4)
        return kiln_fail(KILN_ERR_INVALID, "rois must have shape [num_rois, 4]");
    if (bi->rank != 1 || bi->dims[0] != rois->dims[0] ||
        (bi->dtype != KILN_DTYPE_INT64 && bi->dtype != KILN_DTYPE_INT32))
        return kiln_fail(KILN_ERR_INVALID, "batch_indices must be an integer vector of num_rois values");
    const char *ms = kiln_attr_string(c->node, "mode", "avg");
    bool maxm;
    if (!strcmp(ms, "avg"))
        maxm = false;
    else if (!strcmp(ms, "max"))
        maxm = true;
    else
        return kiln_fail(KILN_ERR_INVALID, "mode '%s' is not avg or max", ms);
    bool half = false;
    if (c->opset >= 16) {
        const char *ct = kiln_attr_string(c->node, "coordinate_transformation_mode", "half_pixel");
        if (!strcmp(ct, "half_pixel"))
            half = true;
        else if (strcmp(ct, "output_half_pixel"))
            return kiln_fail(KILN_ERR_INVALID, "coordinate_transformation_mode '%s' is not half_pixel or "
                             "output_half_pixel", ct);
    }
    int64_t oh = kiln_attr_int(c->node, "output_height", 1), ow = kiln_attr_int(c->node, "output_width", 1);
    int64_t sr = kiln_attr_int(c->node, "sampling_ratio", 0);
    double scale = kiln_attr_float(c->node, "spatial_scale", 1.0f);
    if (oh < 1 || ow < 1 || sr < 0 || sr > 4096)
        return kiln_fail(KILN_ERR_INVALID, "output_height/output_width must be >= 1 and sampling_ratio >= 0");
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], R = rois->dims[0];
    int64_t od[4] = {R, C, oh, ow};
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, 4, od, &y));
    for (int64_t r = 0; r < R; r++) {
        int64_t b = kiln_tensor_get_i64(bi, r);
        if (b < 0 || b >= N)
            return kiln_fail(KILN_ERR_INVALID, "batch_indices[%lld] = %lld is outside [0, %lld)", (long long)r,
                             (long long)b, (long long)N);
    }
    if (y->numel == 0)
        return KILN_OK;
    if (H == 0 || W == 0) {
        for (int64_t i = 0; i < y->numel; i++)
            kiln_store_f64(y->data, y->dtype, i, 0.0);
        return KILN_OK;
    }
    double off = half ? 0.5 : 0.0;
    roi_geom *geo = kiln_calloc((size_t)R, sizeof *geo);
    if (!geo)
        return KILN_ERR_NOMEM;
    for (int64_t r = 0; r < R; r++) {
        roi_geom *q = &geo[r];
        q->b = kiln_tensor_get_i64(bi, r);
        q->x1 = kiln_load_f64(rois->data, rois->dtype, r * 4) * scale - off;
        q->y1 = kiln_load_f64(rois->data, rois->dtype, r * 4 + 1) * scale - off;
        double x2 = kiln_load_f64(rois->data, rois->dtype, r * 4 + 2) * scale - off;
        double y2 = kiln_load_f64(rois->data, rois->dtype, r * 4 + 3) * scale - off;
        double rw = x2 - q->x1, rh = y2 - q->y1;
        if (!half) {
            rw = rw > 1.0 ? rw : 1.0;
            rh = rh > 1.0 ? rh : 1.0;
        }
        q->bh = rh / (double)oh;
        q->bw = rw / (double)ow;
        double gh = sr > 0 ? (double)sr : ceil(rh / (double)oh), gw = sr > 0 ? (double)sr : ceil(rw / (double)ow);
        /* an empty or inverted roi samples nothing (output 0); adaptive grids
         * are bounded so a huge roi cannot stall the run */
        gh = gh > 0 ? gh : 0;
        gw = gw > 0 ? gw : 0;
        if (!(gh <= 4096 && gw <= 4096)) {
            free(geo);
            return kiln_fail(KILN_ERR_INVALID, "roi %lld needs a %g x %g sampling grid", (long long)r, gh, gw);
        }
        q->gh = (int64_t)gh;
        q->gw = (int64_t)gw;
    }
    roi_job job = {x, y, geo, C, oh, ow, maxm};
    kiln_parallel_for(c, (size_t)(R * C), 1, roi_range, &job);
    free(geo);
    return KILN_OK;
}

/* Shape rule: [num_rois, C, output_height, output_width]. */
static kiln_status roialign_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *R = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    o->rank = 4;
    o->dims[0] = R->rank == 2 ? R->dims[0] : kiln_sd_unknown();
    o->dims[1] = X->rank == 4 ? X->dims[1] : kiln_sd_unknown();
    o->dims[2] = kiln_sd_const(kiln_attr_int(x->node, "output_height", 1));
    o->dims[3] = kiln_sd_const(kiln_attr_int(x->node, "output_width", 1));
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "RoiAlign", 10, 0, roialign_exec, roialign_infer},
};
KILN_OP_FAMILY(roialign, ops);
