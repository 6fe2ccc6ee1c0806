/* ConvInteger and QLinearConv (opset 10): integer convolution of uint8/int8
 * data with zero points, accumulated exactly in int64 (the spec's int32
 * accumulator; no overflow for realistic kernels). Padding contributes
 * nothing (as if holding the zero point). ConvInteger outputs int32;
 * QLinearConv adds the int32 bias B, rescales by x_scale * w_scale / y_scale
 * (w_scale and w_zero_point per output channel or scalar), rounds half to
 * even and saturates to y_zero_point's type. Geometry (strides, pads,
 * dilations, auto_pad, group) follows Conv. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/valio.h"
#include "ops/op.h"

static bool qc_int8ish(kiln_dtype dt) { return dt == KILN_DTYPE_UINT8 || dt == KILN_DTYPE_INT8; }

static int64_t qc_load(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_DTYPE_UINT8 ? ((const uint8_t *)t->data)[i] : ((const int8_t *)t->data)[i];
}

/* zero point / scale: scalar, or one value per index `k` of `n`. */
static kiln_status qc_param(const kiln_tensor *t, const char *name, int64_t n) {
    if (!t || (t->numel == 1 && t->rank <= 1) || (t->rank == 1 && t->dims[0] == n))
        return KILN_OK;
    return kiln_fail(KILN_ERR_INVALID, "%s must be a scalar or hold %lld values, has %lld", name, (long long)n,
                     (long long)t->numel);
}

static int64_t qc_zp(const kiln_tensor *t, int64_t k) {
    return t ? qc_load(t, t->numel == 1 ? 0 : k) : 0;
}

/* acc[n][m][o] = sum over group channels and window of (x - xz) * (w - wz[m]). */
static kiln_status qc_conv(kiln_op_ctx *c, const kiln_tensor *X, const kiln_tensor *W, const kiln_tensor *xz,
                           const kiln_tensor *wz, int64_t **acc_out, kiln_conv_geom *g, int64_t *dims) {
    if (!qc_int8ish(X->dtype) || !qc_int8ish(W->dtype))
        return kiln_fail(KILN_ERR_INVALID, "x and w must be uint8 or int8 (got %s, %s)", kiln_dtype_name(X->dtype),
                         kiln_dtype_name(W->dtype));
    if ((xz && xz->dtype != X->dtype) || (wz && wz->dtype != W->dtype))
        return kiln_fail(KILN_ERR_INVALID, "zero points must have the type of their tensor");
    if (X->rank < 3 || X->rank > KILN_MAX_RANK || W->rank != X->rank)
        return kiln_fail(KILN_ERR_INVALID, "x must have rank >= 3 and w the same rank (got %d, %d)", X->rank,
                         W->rank);
    int64_t G = kiln_attr_int(c->node, "group", 1);
    int64_t N = X->dims[0], C = X->dims[1], M = W->dims[0];
    if (G < 1 || C % G != 0 || M % G != 0 || W->dims[1] * G != C)
        return kiln_fail(KILN_ERR_INVALID, "w does not match %lld input channels with group %lld", (long long)C,
                         (long long)G);
    if (xz && xz->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "x_zero_point must be a scalar");
    KILN_TRY(qc_param(wz, "w_zero_point", M));
    memset(g, 0, sizeof *g);
    g->nsp = X->rank - 2;
    for (int d = 0; d < g->nsp; d++) {
        g->in[d] = X->dims[d + 2];
        g->k[d] = W->dims[d + 2];
    }
    size_t nks;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &nks);
    if (ks) {
        if (nks != (size_t)g->nsp)
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values, expected %d", nks, g->nsp);
        for (int d = 0; d < g->nsp; d++)
            if (ks[d] != g->k[d])
                return kiln_fail(KILN_ERR_INVALID, "kernel_shape[%d] differs from w's dimension", d);
    }
    KILN_TRY(kiln_conv_read_attrs(g, c->node, true));
    KILN_TRY(kiln_conv_forward_shape(g, false));
    KILN_TRY(kiln_conv_sizes(g));
    dims[0] = N;
    dims[1] = M;
    for (int d = 0; d < g->nsp; d++)
        dims[d + 2] = g->out[d];
    int64_t total;
    KILN_TRY(kiln_dims_numel(X->rank, dims, &total));
    size_t bytes;
    if (kiln_mul_overflow_size((size_t)total, sizeof(int64_t), &bytes))
        return kiln_fail(KILN_ERR_INVALID, "output is too large");
    int64_t *acc = kiln_calloc(bytes ? bytes : 1, 1);
    if (!acc)
        return KILN_ERR_NOMEM;
    int64_t CG = C / G, MG = M / G, xzv = qc_zp(xz, 0);
    int nsp = g->nsp;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t grp = m / MG, wzv = qc_zp(wz, m);
            for (int64_t o = 0; o < g->out_size; o++) {
                int64_t oc[KILN_CONV_MAX_SP], r = o;
                for (int d = nsp - 1; d >= 0; d--) {
                    oc[d] = r % g->out[d];
                    r /= g->out[d];
                }
                int64_t s = 0;
                for (int64_t kk = 0; kk < g->k_size; kk++) {
                    int64_t off = 0, rk = kk;
                    bool inside = true;
                    int64_t kc[KILN_CONV_MAX_SP];
                    for (int d = nsp - 1; d >= 0; d--) {
                        kc[d] = rk % g->k[d];
                        rk /= g->k[d];
                    }
                    for (int d = 0; d < nsp && inside; d++) {
                        int64_t ip = oc[d] * g->stride[d] - g->pb[d] + kc[d] * g->dil[d];
                        if (ip < 0 || ip >= g->in[d])
                            inside = false;
                        off = off * g->in[d] + ip;
                    }
                    if (!inside)
                        continue;
                    for (int64_t ci = 0; ci < CG; ci++) {
                        int64_t xv = qc_load(X, (n * C + grp * CG + ci) * g->in_size + off) - xzv;
                        int64_t wv = qc_load(W, (m * CG + ci) * g->k_size + kk) - wzv;
                        s += xv * wv;
                    }
                }
                acc[(n * M + m) * g->out_size + o] = s;
            }
        }
    *acc_out = acc;
    return KILN_OK;
}

static kiln_status convinteger_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *W = c->in[1];
    kiln_conv_geom g;
    int64_t dims[KILN_MAX_RANK], *acc;
    KILN_TRY(qc_conv(c, X, W, kiln_op_in(c, 2), kiln_op_in(c, 3), &acc, &g, dims));
    kiln_tensor *y;
    kiln_status st = kiln_op_output(c, 0, KILN_DTYPE_INT32, X->rank, dims, &y);
    if (st == KILN_OK)
        for (int64_t i = 0; i < y->numel; i++) /* int32 accumulator: wraps like it */
            ((int32_t *)y->data)[i] = (int32_t)(uint32_t)(uint64_t)acc[i];
    free(acc);
    return st;
}

static kiln_status qlinearconv_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 8));
    for (size_t i = 0; i < 8; i++)
        if (!c->in[i])
            return kiln_fail(KILN_ERR_INVALID, "input %zu is required", i);
    const kiln_tensor *X = c->in[0], *xs = c->in[1], *xz = c->in[2], *W = c->in[3], *ws = c->in[4],
                      *wz = c->in[5], *ys = c->in[6], *yz = c->in[7], *B = kiln_op_in(c, 8);
    if (!qc_int8ish(yz->dtype) || yz->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "y_zero_point must be one uint8 or int8 value");
    if (!kiln_is_float_dtype(xs->dtype) || !kiln_is_float_dtype(ws->dtype) || !kiln_is_float_dtype(ys->dtype) ||
        xs->numel != 1 || ys->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "x_scale and y_scale must be float scalars, w_scale float");
    int64_t M = W->rank >= 1 ? W->dims[0] : 0;
    KILN_TRY(qc_param(ws, "w_scale", M));
    if (B && (B->dtype != KILN_DTYPE_INT32 || B->rank != 1 || B->dims[0] != M))
        return kiln_fail(KILN_ERR_INVALID, "B must be an int32 vector of %lld values", (long long)M);
    kiln_conv_geom g;
    int64_t dims[KILN_MAX_RANK], *acc;
    KILN_TRY(qc_conv(c, X, W, xz, wz, &acc, &g, dims));
    kiln_tensor *y;
    kiln_status st = kiln_op_output(c, 0, yz->dtype, X->rank, dims, &y);
    if (st == KILN_OK) {
        double xsv = kiln_load_f64(xs->data, xs->dtype, 0), ysv = kiln_load_f64(ys->data, ys->dtype, 0);
        double yzv = (double)qc_load(yz, 0);
        double lo = yz->dtype == KILN_DTYPE_UINT8 ? 0 : -128, hi = yz->dtype == KILN_DTYPE_UINT8 ? 255 : 127;
        for (int64_t i = 0; i < y->numel; i++) {
            int64_t m = (i / (g.out_size ? g.out_size : 1)) % M;
            double wsv = kiln_load_f64(ws->data, ws->dtype, ws->numel == 1 ? 0 : m);
            int64_t a = acc[i] + (B ? ((const int32_t *)B->data)[m] : 0);
            double v = nearbyint((double)a * (xsv * wsv / ysv)) + yzv;
            v = v != v ? yzv : v < lo ? lo : v > hi ? hi : v;
            if (yz->dtype == KILN_DTYPE_UINT8)
                ((uint8_t *)y->data)[i] = (uint8_t)v;
            else
                ((int8_t *)y->data)[i] = (int8_t)v;
        }
    }
    free(acc);
    return st;
}

static const kiln_op_desc ops[] = {
    {"", "ConvInteger", 10, 0, convinteger_exec},
    {"", "QLinearConv", 10, 0, qlinearconv_exec},
};
KILN_OP_FAMILY(qconv, ops);
