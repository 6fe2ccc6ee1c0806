/* Linear quantization: QuantizeLinear, DequantizeLinear (opset 10: scalar
 * scale / zero point; opset 13+: also 1-D per-axis along `axis`, default 1),
 * DynamicQuantizeLinear (opset 11). QLinearMatMul lives with MatMul.
 * Quantization rounds half to even and saturates to the output type's range
 * (uint8 when no zero point is given). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

static bool q_is_int8ish(kiln_dtype dt) { return dt == KILN_DTYPE_UINT8 || dt == KILN_DTYPE_INT8; }

static double q_sat(double v, kiln_dtype dt) {
    double lo = dt == KILN_DTYPE_INT8 ? -128 : dt == KILN_DTYPE_UINT8 ? 0 : -2147483648.0;
    double hi = dt == KILN_DTYPE_INT8 ? 127 : dt == KILN_DTYPE_UINT8 ? 255 : 2147483647.0;
    if (v != v)
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

static void q_store(void *data, kiln_dtype dt, int64_t i, double v) {
    v = q_sat(v, dt);
    if (dt == KILN_DTYPE_UINT8)
        ((uint8_t *)data)[i] = (uint8_t)v;
    else if (dt == KILN_DTYPE_INT8)
        ((int8_t *)data)[i] = (int8_t)v;
    else
        ((int32_t *)data)[i] = (int32_t)v;
}

/* Resolves the scale / zero-point layout: *per is the axis extent (1 for
 * per-tensor), *inner the stride of that axis in x. */
static kiln_status q_layout(const kiln_op_ctx *c, const kiln_tensor *x, const kiln_tensor *s, const kiln_tensor *zp,
                            int64_t *per, int64_t *inner) {
    *per = 1;
    *inner = 1;
    if (zp && (zp->rank != s->rank || zp->numel != s->numel))
        return kiln_fail(KILN_ERR_INVALID, "zero point shape must match the scale's shape");
    if (s->numel == 1 && s->rank <= 1)
        return KILN_OK;
    if (s->rank != 1 || c->opset < 13)
        return kiln_fail(KILN_ERR_INVALID, "scale must be a scalar%s", c->opset < 13 ? " before opset 13" : " or 1-D");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 1), x->rank, &axis));
    if (x->rank == 0 || s->dims[0] != x->dims[axis])
        return kiln_fail(KILN_ERR_INVALID, "per-axis scale has %lld values, axis %d of x has %lld",
                         (long long)s->dims[0], axis, x->rank ? (long long)x->dims[axis] : 0LL);
    *per = s->dims[0];
    KILN_TRY(kiln_dims_numel(x->rank - axis - 1, x->dims + axis + 1, inner));
    return KILN_OK;
}

static kiln_status quantize_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *s = c->in[1], *zp = kiln_op_in(c, 2);
    static const kiln_dtype xt[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_INT32, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                    KILN_DTYPE_DOUBLE};
    KILN_TRY(kiln_op_need_dtype(c, 0, xt, 5));
    if (!kiln_is_float_dtype(s->dtype))
        return kiln_fail(KILN_ERR_INVALID, "y_scale must be floating point, got %s", kiln_dtype_name(s->dtype));
    kiln_dtype odt = zp ? zp->dtype : KILN_DTYPE_UINT8;
    if (!q_is_int8ish(odt))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "y_zero_point type %s is not supported (uint8, int8)",
                         kiln_dtype_name(odt));
    int64_t per, inner;
    KILN_TRY(q_layout(c, x, s, zp, &per, &inner));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, odt, x->rank, x->dims, &y));
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = per == 1 ? 0 : (i / inner) % per;
        /* float32 division as the reference computes it */
        float sc = (float)kiln_load_f64(s->data, s->dtype, k);
        float v = (float)kiln_load_f64(x->data, x->dtype, i) / sc;
        double z = zp ? kiln_load_f64(zp->data, zp->dtype, k) : 0.0;
        q_store(y->data, odt, i, nearbyint((double)v) + z);
    }
    return KILN_OK;
}

static kiln_status dequantize_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *s = c->in[1], *zp = kiln_op_in(c, 2);
    static const kiln_dtype xt[] = {KILN_DTYPE_UINT8, KILN_DTYPE_INT8, KILN_DTYPE_INT32};
    KILN_TRY(kiln_op_need_dtype(c, 0, xt, 3));
    if (!kiln_is_float_dtype(s->dtype))
        return kiln_fail(KILN_ERR_INVALID, "x_scale must be floating point, got %s", kiln_dtype_name(s->dtype));
    if (zp && zp->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "x_zero_point type %s differs from x type %s", kiln_dtype_name(zp->dtype),
                         kiln_dtype_name(x->dtype));
    int64_t per, inner;
    KILN_TRY(q_layout(c, x, s, zp, &per, &inner));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, s->dtype, x->rank, x->dims, &y));
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = per == 1 ? 0 : (i / inner) % per;
        float sc = (float)kiln_load_f64(s->data, s->dtype, k);
        double z = zp ? kiln_load_f64(zp->data, zp->dtype, k) : 0.0;
        float v = (float)(kiln_load_f64(x->data, x->dtype, i) - z) * sc;
        kiln_store_f64(y->data, y->dtype, i, v);
    }
    return KILN_OK;
}

/* scale = (max(0, max x) - min(0, min x)) / 255, zero point so that 0 is
 * exact; computed in float32 like the reference. */
static kiln_status dynquant_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    static const kiln_dtype xt[] = {KILN_DTYPE_FLOAT};
    KILN_TRY(kiln_op_need_dtype(c, 0, xt, 1));
    const kiln_tensor *x = c->in[0];
    const float *xd = x->data;
    float mn = 0, mx = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        if (xd[i] < mn)
            mn = xd[i];
        if (xd[i] > mx)
            mx = xd[i];
    }
    float scale = (mx - mn) / 255.0f;
    double zpv = scale > 0 ? q_sat(nearbyint((double)((0 - mn) / scale)), KILN_DTYPE_UINT8) : 0.0;
    kiln_tensor *y, *ys, *yz;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_UINT8, x->rank, x->dims, &y));
    KILN_TRY(kiln_op_output(c, 1, KILN_DTYPE_FLOAT, 0, NULL, &ys));
    KILN_TRY(kiln_op_output(c, 2, KILN_DTYPE_UINT8, 0, NULL, &yz));
    *(float *)ys->data = scale;
    *(uint8_t *)yz->data = (uint8_t)zpv;
    for (int64_t i = 0; i < x->numel; i++)
        q_store(y->data, KILN_DTYPE_UINT8, i, scale > 0 ? nearbyint((double)(xd[i] / scale)) + zpv : zpv);
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "QuantizeLinear", 10, 18, quantize_exec, NULL},
    {"", "DequantizeLinear", 10, 20, dequantize_exec, NULL},
    {"", "DynamicQuantizeLinear", 11, 0, dynquant_exec, NULL},
};
KILN_OP_FAMILY(quantize, ops);
