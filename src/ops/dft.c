/* DFT and STFT (opset 17). Signals carry a trailing dimension of 1 (real)
 * or 2 (real, imaginary); outputs are always complex ([..., 2]).
 *
 * DFT: along `axis` (an attribute, default 1, in opset 17; input 2, default
 * -2, from opset 20; never the trailing component axis), with the optional
 * dft_length input zero-padding or truncating the signal. inverse scales by
 * 1/n like numpy.fft.ifft. onesided keeps bins 0..n/2 (real or complex
 * input alike); with inverse it reads such a onesided spectrum and returns
 * the real signal ([..., 1], n = 2 * (bins - 1) by default) as
 * numpy.fft.irfft.
 * STFT: signal [batch, length, 1|2], frame_step, optional window [W] and
 * frame_length (equal to W when both are given); frames start every
 * frame_step samples while a full frame fits. onesided (default 1) keeps
 * bins 0..n/2 and is ignored for complex input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fft.h"
#include "kernels/valio.h"
#include "ops/op.h"

static const kiln_dtype dft_types[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};

/* A plan for length n and its real/imaginary work rows. */
static kiln_status fft_work(kiln_fft_plan *p, int64_t n, bool inverse, double **re, double **im) {
    if (kiln_fft_plan_init(p, n, inverse) != KILN_OK)
        return KILN_ERR_NOMEM;
    *re = kiln_malloc((size_t)n * sizeof(double));
    *im = kiln_malloc((size_t)n * sizeof(double));
    if (!*re || !*im) {
        free(*re);
        free(*im);
        kiln_fft_plan_free(p);
        return KILN_ERR_NOMEM;
    }
    return KILN_OK;
}

static kiln_status dft_scalar(const kiln_tensor *t, const char *name, int64_t *out) {
    *out = 0;
    if (t->numel != 1 || (t->dtype != KILN_DTYPE_INT32 && t->dtype != KILN_DTYPE_INT64))
        return kiln_fail(KILN_ERR_INVALID, "%s must be one int32 or int64 value", name);
    *out = kiln_tensor_get_i64(t, 0);
    return KILN_OK;
}

/* DFT geometry (shared by exec and infer): the axis, the transform length
 * n and the output length along the axis; cout: the output's trailing
 * component count (1 for the real signal of an inverse onesided DFT). */
typedef struct dft_geom {
    int axis;
    bool inverse, onesided;
    int64_t n, nout, cout;
} dft_geom;

static kiln_status dft_geometry(const kiln_node *node, int rank, int64_t axis_len, int64_t cin, int64_t axis_v,
                                bool have_len, int64_t len, dft_geom *g) {
    int64_t a = axis_v < 0 ? axis_v + rank : axis_v;
    if (a < 0 || a >= rank - 1)
        return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range (the last axis holds the components)",
                         (long long)axis_v);
    g->axis = (int)a;
    g->inverse = kiln_attr_int(node, "inverse", 0) != 0;
    g->onesided = kiln_attr_int(node, "onesided", 0) != 0;
    bool irfft = g->inverse && g->onesided;
    if (irfft && cin != 2)
        return kiln_fail(KILN_ERR_INVALID, "an inverse onesided DFT needs complex input ([..., 2])");
    /* the inverse of a onesided spectrum of m bins is 2 * (m - 1) long by default */
    g->n = have_len ? len : irfft ? 2 * (axis_len - 1) : axis_len;
    if (g->n < 1 || g->n > ((int64_t)1 << 40))
        return kiln_fail(KILN_ERR_INVALID, "dft_length %lld is out of range", (long long)g->n);
    g->nout = g->onesided && !g->inverse ? g->n / 2 + 1 : g->n;
    g->cout = irfft ? 1 : 2;
    return KILN_OK;
}

/* version 17: axis attribute (default 1); 20: axis input 2 (default -2). */
static kiln_status dft_run(kiln_op_ctx *c, int version) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    KILN_TRY(kiln_op_need_dtype(c, 0, dft_types, 4));
    const kiln_tensor *x = c->in[0], *lt = kiln_op_in(c, 1), *at = version >= 20 ? kiln_op_in(c, 2) : NULL;
    int r = x->rank;
    if (r < 2 || (x->dims[r - 1] != 1 && x->dims[r - 1] != 2)) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID, "input must be [batch, signal dims..., 1 or 2], got %s",
                         kiln_dims_str(r, x->dims, s, sizeof s));
    }
    int64_t cin = x->dims[r - 1];
    int64_t axis_v = version >= 20 ? -2 : kiln_attr_int(c->node, "axis", 1), len = 0;
    if (at)
        KILN_TRY(dft_scalar(at, "axis", &axis_v));
    if (lt)
        KILN_TRY(dft_scalar(lt, "dft_length", &len));
    int64_t a0 = axis_v < 0 ? axis_v + r : axis_v;
    dft_geom g;
    KILN_TRY(dft_geometry(c->node, r, a0 >= 0 && a0 < r ? x->dims[a0] : 0, cin, axis_v, lt != NULL, len, &g));
    int axis = g.axis;
    bool inverse = g.inverse, irfft = g.inverse && g.onesided;
    int64_t L = x->dims[axis], n = g.n, nout = g.nout;
    int64_t od[KILN_MAX_RANK];
    memcpy(od, x->dims, sizeof(int64_t) * (size_t)r);
    od[axis] = nout;
    od[r - 1] = g.cout;
    int64_t outer, inner;
    KILN_TRY(kiln_dims_numel(axis, x->dims, &outer));
    KILN_TRY(kiln_dims_numel(r - 1 - axis - 1, x->dims + axis + 1, &inner));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    kiln_fft_plan p;
    double *re, *im;
    KILN_TRY(fft_work(&p, n, inverse, &re, &im));
    /* irfft reads bins 0..n/2 and mirrors them (Hermitian symmetry) */
    int64_t take = irfft ? n / 2 + 1 : n;
    if (L < take)
        take = L;
    double scale = inverse ? 1.0 / (double)n : 1.0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t j = 0; j < n; j++)
                re[j] = im[j] = 0.0;
            for (int64_t j = 0; j < take; j++) {
                int64_t xi = ((o * L + j) * inner + i) * cin;
                re[j] = kiln_load_f64(x->data, x->dtype, xi);
                if (cin == 2)
                    im[j] = kiln_load_f64(x->data, x->dtype, xi + 1);
            }
            if (irfft)
                for (int64_t j = 1; j < take; j++)
                    if (n - j > j) {
                        re[n - j] = re[j];
                        im[n - j] = -im[j];
                    }
            kiln_fft_run(&p, re, im);
            for (int64_t k = 0; k < nout; k++) {
                int64_t yi = ((o * nout + k) * inner + i) * g.cout;
                kiln_store_f64(y->data, y->dtype, yi, re[k] * scale);
                if (g.cout == 2)
                    kiln_store_f64(y->data, y->dtype, yi + 1, im[k] * scale);
            }
        }
    free(re);
    free(im);
    kiln_fft_plan_free(&p);
    return KILN_OK;
}

static kiln_status dft_v17(kiln_op_ctx *c) { return dft_run(c, 17); }
static kiln_status dft_v20(kiln_op_ctx *c) { return dft_run(c, 20); }

/* DFT's shape: the input's with the axis resized and the components last. */
static kiln_status dft_infer(kiln_infer_ctx *x, int version) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int r = X->rank;
    if (r < 2 || !kiln_sd_is_const(&X->dims[r - 1]))
        return KILN_OK;
    int64_t axis_v = version >= 20 ? -2 : kiln_attr_int(x->node, "axis", 1), len = 0, v[1];
    int cnt;
    bool have_len = kiln_infer_has(x, 1);
    if (version >= 20 && kiln_infer_has(x, 2)) {
        if (!kiln_infer_ints(x, 2, NULL, v, &cnt, 1) || cnt != 1)
            return KILN_OK;
        axis_v = v[0];
    }
    if (have_len) {
        if (!kiln_infer_ints(x, 1, NULL, v, &cnt, 1) || cnt != 1)
            return KILN_OK;
        len = v[0];
    }
    int64_t a0 = axis_v < 0 ? axis_v + r : axis_v;
    bool len_known = a0 >= 0 && a0 < r && kiln_sd_is_const(&X->dims[a0]);
    dft_geom g;
    KILN_TRY(dft_geometry(x->node, r, len_known ? X->dims[a0].num : 2, X->dims[r - 1].num, axis_v, have_len, len,
                          &g));
    kiln_infer_copy_shape(o, X, false);
    o->dims[g.axis] = len_known || have_len ? kiln_sd_const(g.nout) : kiln_sd_unknown();
    if (!have_len && !g.onesided && !len_known)
        o->dims[g.axis] = X->dims[g.axis]; /* the same length, symbolic */
    o->dims[r - 1] = kiln_sd_const(g.cout);
    return KILN_OK;
}
static kiln_status dft_infer_v17(kiln_infer_ctx *x) { return dft_infer(x, 17); }
static kiln_status dft_infer_v20(kiln_infer_ctx *x) { return dft_infer(x, 20); }

static kiln_status stft_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    KILN_TRY(kiln_op_need_dtype(c, 0, dft_types, 4));
    const kiln_tensor *x = c->in[0], *st = c->in[1], *w = kiln_op_in(c, 2), *fl = kiln_op_in(c, 3);
    if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2))
        return kiln_fail(KILN_ERR_INVALID, "signal must be [batch, length, 1 or 2]");
    int64_t B = x->dims[0], L = x->dims[1], cin = x->dims[2];
    int64_t step, n = -1;
    KILN_TRY(dft_scalar(st, "frame_step", &step));
    if (step < 1)
        return kiln_fail(KILN_ERR_INVALID, "frame_step must be positive, got %lld", (long long)step);
    if (w) {
        if (w->rank != 1)
            return kiln_fail(KILN_ERR_INVALID, "window must be 1-D");
        if (!kiln_is_float_dtype(w->dtype))
            return kiln_fail(KILN_ERR_INVALID, "window must be floating point");
        n = w->dims[0];
    }
    if (fl) {
        int64_t v;
        KILN_TRY(dft_scalar(fl, "frame_length", &v));
        if (n >= 0 && v != n)
            return kiln_fail(KILN_ERR_INVALID, "frame_length %lld differs from the window length %lld", (long long)v,
                             (long long)n);
        n = v;
    }
    if (n < 0)
        return kiln_fail(KILN_ERR_INVALID, "one of window and frame_length is required");
    if (n < 1 || n > L)
        return kiln_fail(KILN_ERR_INVALID, "frame length %lld must be in [1, signal length %lld]", (long long)n,
                         (long long)L);
    bool onesided = kiln_attr_int(c->node, "onesided", 1) != 0 && cin == 1;
    int64_t bins = onesided ? n / 2 + 1 : n, frames = (L - n) / step + 1;
    int64_t od[4] = {B, frames, bins, 2};
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, 4, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    kiln_fft_plan p;
    double *re, *im;
    KILN_TRY(fft_work(&p, n, false, &re, &im));
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < frames; f++) {
            for (int64_t j = 0; j < n; j++) {
                int64_t xi = (b * L + f * step + j) * cin;
                double wv = w ? kiln_load_f64(w->data, w->dtype, j) : 1.0;
                re[j] = kiln_load_f64(x->data, x->dtype, xi) * wv;
                im[j] = cin == 2 ? kiln_load_f64(x->data, x->dtype, xi + 1) * wv : 0.0;
            }
            kiln_fft_run(&p, re, im);
            for (int64_t k = 0; k < bins; k++) {
                int64_t yi = ((b * frames + f) * bins + k) * 2;
                kiln_store_f64(y->data, y->dtype, yi, re[k]);
                kiln_store_f64(y->data, y->dtype, yi + 1, im[k]);
            }
        }
    free(re);
    free(im);
    kiln_fft_plan_free(&p);
    return KILN_OK;
}

static kiln_status stft_infer(kiln_infer_ctx *x) {
    if (x->n_out > 0)
        x->out[0].dt = kiln_infer_in(x, 0)->dt;
    return KILN_OK;
}

/* Opset 20 moved DFT's axis to an input (default -2). */
static const kiln_op_desc ops[] = {
    {"", "DFT", 17, 19, dft_v17, dft_infer_v17},
    {"", "DFT", 20, 0, dft_v20, dft_infer_v20},
    {"", "STFT", 17, 0, stft_exec, stft_infer},
};
KILN_OP_FAMILY(dft, ops);
