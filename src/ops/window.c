/* Window generators (opset 17): HannWindow, HammingWindow, BlackmanWindow,
 * and MelWeightMatrix.
 *
 * Windows: y[k] = a0 - a1 cos(2 pi k / N) + a2 cos(4 pi k / N) for k < size,
 * N = size when periodic (default) else size - 1. Element type from
 * output_datatype (default float).
 * MelWeightMatrix follows the spec's reference: num_mel_bins + 2 points
 * evenly spaced in mel (step (high - low) / (num_mel_bins + 2)), mapped to
 * spectrogram bins floor((dft_length + 1) * hz / sample_rate), triangles
 * between consecutive points; output [dft_length / 2 + 1, num_mel_bins]. */
#include <math.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

static kiln_status win_dtype(const kiln_op_ctx *c, kiln_dtype *out) {
    int64_t dt = kiln_attr_int(c->node, "output_datatype", KILN_DTYPE_FLOAT);
    switch (dt) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_DOUBLE: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        *out = (kiln_dtype)dt;
        return KILN_OK;
    default:
        return kiln_fail(KILN_ERR_INVALID, "output_datatype %lld is not a numeric type", (long long)dt);
    }
}

static kiln_status win_int(const kiln_tensor *t, const char *name, int64_t *out) {
    *out = 0;
    if (!t || t->numel != 1 || (t->dtype != KILN_DTYPE_INT32 && t->dtype != KILN_DTYPE_INT64))
        return kiln_fail(KILN_ERR_INVALID, "%s must be one int32 or int64 value", name);
    *out = kiln_tensor_get_i64(t, 0);
    return KILN_OK;
}

static kiln_status win_float(const kiln_tensor *t, const char *name, double *out) {
    *out = 0;
    if (!t || t->numel != 1 || t->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_INVALID, "%s must be one numeric value", name);
    *out = kiln_tensor_get_f64(t, 0);
    return KILN_OK;
}

static kiln_status window_exec(kiln_op_ctx *c, double a0, double a1, double a2) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    int64_t size;
    KILN_TRY(win_int(c->in[0], "size", &size));
    if (size < 0)
        return kiln_fail(KILN_ERR_INVALID, "size must be >= 0, got %lld", (long long)size);
    kiln_dtype dt;
    KILN_TRY(win_dtype(c, &dt));
    bool periodic = kiln_attr_int(c->node, "periodic", 1) != 0;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, 1, &size, &y));
    double N = periodic ? (double)size : (double)(size - 1);
    const double pi = 3.14159265358979323846;
    for (int64_t k = 0; k < size; k++) {
        /* a one-point symmetric window (N = 0) is 1 */
        double v = N > 0 ? a0 - a1 * cos(2 * pi * (double)k / N) + a2 * cos(4 * pi * (double)k / N) : 1.0;
        kiln_store_any(y->data, dt, k, v);
    }
    return KILN_OK;
}

static kiln_status hann_exec(kiln_op_ctx *c) { return window_exec(c, 0.5, 0.5, 0.0); }
static kiln_status hamming_exec(kiln_op_ctx *c) { return window_exec(c, 25.0 / 46.0, 21.0 / 46.0, 0.0); }
static kiln_status blackman_exec(kiln_op_ctx *c) { return window_exec(c, 0.42, 0.5, 0.08); }

static kiln_status mel_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 5));
    int64_t nmel, dftlen, rate;
    double lo, hi;
    KILN_TRY(win_int(c->in[0], "num_mel_bins", &nmel));
    KILN_TRY(win_int(c->in[1], "dft_length", &dftlen));
    KILN_TRY(win_int(c->in[2], "sample_rate", &rate));
    KILN_TRY(win_float(c->in[3], "lower_edge_hertz", &lo));
    KILN_TRY(win_float(c->in[4], "upper_edge_hertz", &hi));
    if (nmel < 1 || dftlen < 1 || rate < 1 || dftlen > ((int64_t)1 << 40) || nmel > ((int64_t)1 << 40))
        return kiln_fail(KILN_ERR_INVALID, "num_mel_bins, dft_length and sample_rate must be positive");
    if (!(lo >= 0 && hi >= lo && hi <= 1e12))
        return kiln_fail(KILN_ERR_INVALID, "need 0 <= lower_edge_hertz <= upper_edge_hertz");
    kiln_dtype dt;
    KILN_TRY(win_dtype(c, &dt));
    int64_t nbins = dftlen / 2 + 1;
    int64_t od[2] = {nbins, nmel};
    int64_t total;
    KILN_TRY(kiln_dims_numel(2, od, &total));
    double lmel = 2595 * log10(1 + lo / 700), hmel = 2595 * log10(1 + hi / 700);
    double mstep = (hmel - lmel) / (double)(nmel + 2);
    /* validate every point before allocating the output */
    for (int64_t i = 0; i < nmel + 2; i++) {
        double hz = 700 * (pow(10, ((double)i * mstep + lmel) / 2595) - 1);
        double b = floor((double)(dftlen + 1) * hz / (double)rate);
        if (!(b >= 0 && b < (double)nbins))
            return kiln_fail(KILN_ERR_INVALID, "mel point %lld falls in bin %g, outside [0, %lld)", (long long)i, b,
                             (long long)nbins);
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, 2, od, &y));
    for (int64_t i = 0; i < total; i++)
        kiln_store_any(y->data, dt, i, 0.0);
    for (int64_t i = 0; i < nmel; i++) {
        int64_t f[3];
        for (int t = 0; t < 3; t++) {
            double hz = 700 * (pow(10, ((double)(i + t) * mstep + lmel) / 2595) - 1);
            f[t] = (int64_t)floor((double)(dftlen + 1) * hz / (double)rate);
        }
        int64_t l2c = f[1] - f[0], c2h = f[2] - f[1];
        if (l2c == 0)
            kiln_store_any(y->data, dt, f[1] * nmel + i, 1.0);
        else
            for (int64_t j = f[0]; j <= f[1]; j++)
                kiln_store_any(y->data, dt, j * nmel + i, (double)(j - f[0]) / (double)l2c);
        if (c2h > 0)
            for (int64_t j = f[1]; j < f[2]; j++)
                kiln_store_any(y->data, dt, j * nmel + i, (double)(f[2] - j) / (double)c2h);
    }
    return KILN_OK;
}

/* Shape rules: windows are 1-D of `size`; MelWeightMatrix is
 * [dft_length / 2 + 1, num_mel_bins]; typed by output_datatype. */
static kiln_status window_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = (kiln_dtype)kiln_attr_int(x->node, "output_datatype", KILN_DTYPE_FLOAT);
    o->rank = 1;
    const kiln_tensor *s = x->n_in > 0 ? x->k[0] : NULL;
    o->dims[0] = s && s->numel == 1 ? kiln_sd_const(kiln_tensor_get_i64(s, 0)) : kiln_sd_unknown();
    return KILN_OK;
}

static kiln_status mel_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = (kiln_dtype)kiln_attr_int(x->node, "output_datatype", KILN_DTYPE_FLOAT);
    o->rank = 2;
    const kiln_tensor *bins = x->n_in > 0 ? x->k[0] : NULL, *len = x->n_in > 1 ? x->k[1] : NULL;
    o->dims[0] = len && len->numel == 1 ? kiln_sd_const(kiln_tensor_get_i64(len, 0) / 2 + 1) : kiln_sd_unknown();
    o->dims[1] = bins && bins->numel == 1 ? kiln_sd_const(kiln_tensor_get_i64(bins, 0)) : kiln_sd_unknown();
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "HannWindow", 17, 0, hann_exec, window_infer},
    {"", "HammingWindow", 17, 0, hamming_exec, window_infer},
    {"", "BlackmanWindow", 17, 0, blackman_exec, window_infer},
    {"", "MelWeightMatrix", 17, 0, mel_exec, mel_infer},
};
KILN_OP_FAMILY(window, ops);
