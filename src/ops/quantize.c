/* Linear quantization: QuantizeLinear, DequantizeLinear (opset 10: scalar
 * scale / zero point; opset 13+: also 1-D per-axis along `axis`, default 1;
 * opset 21+: blocked along `axis` with `block_size`), DynamicQuantizeLinear
 * (opset 11). QLinearMatMul lives with MatMul.
 *
 * A scale of one element (of any rank, as onnxruntime's quantizer writes
 * [1]) is per-tensor, with a zero point of one element of any rank.
 * Quantization to integers rounds half to even and saturates to the output
 * type's range (uint8 when neither a zero point nor `output_dtype` is given;
 * int8, uint8, int16, uint16, int4, uint4, int2, uint2). To the float8 types
 * the quotient (plus the zero point, normally 0) rounds to nearest even and,
 * with `saturate` (opset 19+, default 1), clamps to the largest finite value,
 * else overflows to inf/NaN as Cast does; FLOAT4E2M1 and FLOAT6E* always
 * saturate. The division x / scale is done in float32, or in `precision`
 * (opset 23+) when given, or in float16/bfloat16 when x and the scale both
 * are. Dequantization computes (x - zero point) * scale in float32 and stores
 * it as the scale's type or `output_dtype` (opset 23+). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

/* The range of an integer quantized type; false for the float ones. */
static bool q_int_range(kiln_dtype dt, double *lo, double *hi) {
    switch (dt) {
    case KILN_DTYPE_UINT8: *lo = 0, *hi = 255; return true;
    case KILN_DTYPE_INT8: *lo = -128, *hi = 127; return true;
    case KILN_DTYPE_UINT16: *lo = 0, *hi = 65535; return true;
    case KILN_DTYPE_INT16: *lo = -32768, *hi = 32767; return true;
    case KILN_DTYPE_UINT4: *lo = 0, *hi = 15; return true;
    case KILN_DTYPE_INT4: *lo = -8, *hi = 7; return true;
    case KILN_DTYPE_UINT2: *lo = 0, *hi = 3; return true;
    case KILN_DTYPE_INT2: *lo = -2, *hi = 1; return true;
    case KILN_DTYPE_INT32: *lo = -2147483648.0, *hi = 2147483647.0; return true;
    default: return false;
    }
}

static bool q_float_type(kiln_dtype dt) {
    return kiln_is_minifloat(dt) && dt != KILN_DTYPE_FLOAT8E8M0;
}

static double q_sat(double v, kiln_dtype dt) {
    double lo = 0, hi = 0;
    q_int_range(dt, &lo, &hi);
    if (v != v)
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

/* An integer quantized value (rounded, zero point added) into y. */
static void q_store(void *data, kiln_dtype dt, int64_t i, double v) {
    v = q_sat(v, dt);
    switch (dt) {
    case KILN_DTYPE_UINT8:
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case KILN_DTYPE_INT8:
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2: ((int8_t *)data)[i] = (int8_t)v; break;
    case KILN_DTYPE_UINT16: ((uint16_t *)data)[i] = (uint16_t)v; break;
    case KILN_DTYPE_INT16: ((int16_t *)data)[i] = (int16_t)v; break;
    default: ((int32_t *)data)[i] = (int32_t)v; break;
    }
}

/* Where element i of x finds its scale and zero point. */
typedef struct q_layout {
    enum { Q_TENSOR, Q_AXIS, Q_BLOCK } mode;
    int64_t dim;   /* extent of x along the axis */
    int64_t inner; /* stride of the axis in x */
    int64_t block; /* block size (Q_BLOCK) */
    int64_t nblk;  /* the scale's extent along the axis (Q_BLOCK) */
} q_layout;

static inline int64_t q_index(const q_layout *l, int64_t i) {
    switch (l->mode) {
    case Q_TENSOR: return 0;
    case Q_AXIS: return (i / l->inner) % l->dim;
    default: {
        int64_t a = (i / l->inner) % l->dim, o = i / (l->inner * l->dim), r = i % l->inner;
        return (o * l->nblk + a / l->block) * l->inner + r;
    }
    }
}

static bool same_shape(const kiln_tensor *a, const kiln_tensor *b) {
    if (a->rank != b->rank)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d])
            return false;
    return true;
}

/* Resolves the scale / zero-point layout from their shapes, `axis` (opset
 * 13+) and `block_size` (opset 21+). */
static kiln_status q_resolve(const kiln_op_ctx *c, const kiln_tensor *x, const kiln_tensor *s, const kiln_tensor *zp,
                             q_layout *l) {
    char b1[256], b2[256];
    memset(l, 0, sizeof *l);
    l->mode = Q_TENSOR;
    l->dim = l->inner = l->block = l->nblk = 1;
    if (zp && !(same_shape(zp, s) || (zp->numel == 1 && s->numel == 1)))
        return kiln_fail(KILN_ERR_INVALID, "zero point shape %s must match the scale's shape %s",
                         kiln_dims_str(zp->rank, zp->dims, b1, sizeof b1), kiln_dims_str(s->rank, s->dims, b2, sizeof b2));
    if (s->numel == 1)
        return KILN_OK;
    int64_t block = c->opset >= 21 ? kiln_attr_int(c->node, "block_size", 0) : 0;
    if (block < 0)
        return kiln_fail(KILN_ERR_INVALID, "block_size is %lld; it must be positive (or 0: not blocked)", (long long)block);
    if (c->opset < 13)
        return kiln_fail(KILN_ERR_INVALID, "scale must be a scalar before opset 13 (it has shape %s)",
                         kiln_dims_str(s->rank, s->dims, b1, sizeof b1));
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 1), x->rank, &axis));
    l->dim = x->dims[axis];
    KILN_TRY(kiln_dims_numel(x->rank - axis - 1, x->dims + axis + 1, &l->inner));
    if (block == 0) {
        if (s->rank != 1)
            return kiln_fail(KILN_ERR_INVALID, "scale of shape %s: must be a scalar or 1-D%s",
                             kiln_dims_str(s->rank, s->dims, b1, sizeof b1),
                             c->opset >= 21 ? " (or give block_size for blocked quantization)" : "");
        if (s->dims[0] != x->dims[axis])
            return kiln_fail(KILN_ERR_INVALID, "per-axis scale has %lld values, axis %d of x has %lld",
                             (long long)s->dims[0], axis, (long long)x->dims[axis]);
        l->mode = Q_AXIS;
        return KILN_OK;
    }
    bool ok = s->rank == x->rank;
    for (int d = 0; ok && d < x->rank; d++)
        ok = d == axis || s->dims[d] == x->dims[d];
    if (!ok)
        return kiln_fail(KILN_ERR_INVALID, "blocked quantization: scale shape %s must equal x's shape %s except along "
                         "axis %d", kiln_dims_str(s->rank, s->dims, b1, sizeof b1),
                         kiln_dims_str(x->rank, x->dims, b2, sizeof b2), axis);
    int64_t want = x->dims[axis] / block + (x->dims[axis] % block != 0);
    if (s->dims[axis] != want)
        return kiln_fail(KILN_ERR_INVALID, "blocked quantization: axis %d of x has %lld elements, which block_size "
                         "%lld splits into %lld blocks, but the scale has %lld", axis, (long long)x->dims[axis],
                         (long long)block, (long long)want, (long long)s->dims[axis]);
    l->mode = Q_BLOCK;
    l->block = block;
    l->nblk = s->dims[axis];
    return KILN_OK;
}

static bool q_scale_type(kiln_dtype dt, bool allow_int) {
    return kiln_is_float_dtype(dt) || dt == KILN_DTYPE_FLOAT8E8M0 || (allow_int && dt == KILN_DTYPE_INT32);
}

/* v rounded to float16 / bfloat16 / float32 (the precision of a division). */
static double q_round_to(kiln_dtype p, double v) {
    switch (p) {
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(kiln_float_to_half((float)v));
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(kiln_float_to_bf16((float)v));
    case KILN_DTYPE_DOUBLE: return v;
    default: return (float)v;
    }
}

static kiln_status quantize_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *s = c->in[1], *zp = kiln_op_in(c, 2);
    static const kiln_dtype xt[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_INT32, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                    KILN_DTYPE_DOUBLE};
    KILN_TRY(kiln_op_need_dtype(c, 0, xt, 5));
    if (!q_scale_type(s->dtype, true))
        return kiln_fail(KILN_ERR_INVALID, "y_scale must be float, float16, bfloat16, int32 or float8e8m0, got %s",
                         kiln_dtype_name(s->dtype));
    kiln_dtype odt = KILN_DTYPE_UINT8;
    int64_t want = c->opset >= 21 ? kiln_attr_int(c->node, "output_dtype", 0) : 0;
    if (zp) {
        odt = zp->dtype;
        if (want && want != (int64_t)odt)
            return kiln_fail(KILN_ERR_INVALID, "output_dtype %lld (%s) differs from y_zero_point's type %s",
                             (long long)want, kiln_dtype_name((kiln_dtype)want), kiln_dtype_name(odt));
    } else if (want) {
        odt = (kiln_dtype)want;
    }
    double lo, hi;
    bool is_int = q_int_range(odt, &lo, &hi) && odt != KILN_DTYPE_INT32;
    if (!is_int && !q_float_type(odt))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "cannot quantize to %s (int8, uint8, int16, uint16, int4, uint4, int2, "
                         "uint2, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float4e2m1, float6e2m3, "
                         "float6e3m2)", want && !zp ? kiln_dtype_name((kiln_dtype)want) : kiln_dtype_name(odt));
    bool saturate = c->opset < 19 || kiln_attr_int(c->node, "saturate", 1) != 0;
    kiln_dtype prec = KILN_DTYPE_FLOAT;
    int64_t pa = c->opset >= 23 ? kiln_attr_int(c->node, "precision", 0) : 0;
    if (pa) {
        prec = (kiln_dtype)pa;
        if (!kiln_is_float_dtype(prec))
            return kiln_fail(KILN_ERR_INVALID, "precision %lld (%s) is not a floating type (float, float16, bfloat16)",
                             (long long)pa, kiln_dtype_name(prec));
    } else if ((x->dtype == KILN_DTYPE_FLOAT16 || x->dtype == KILN_DTYPE_BFLOAT16) && x->dtype == s->dtype) {
        prec = x->dtype;
    } else if (x->dtype == KILN_DTYPE_DOUBLE || s->dtype == KILN_DTYPE_DOUBLE) {
        prec = KILN_DTYPE_DOUBLE;
    }
    q_layout l;
    KILN_TRY(q_resolve(c, x, s, zp, &l));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, odt, x->rank, x->dims, &y));
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = q_index(&l, i);
        double sc = q_round_to(prec, kiln_load_f64(s->data, s->dtype, k));
        double v = q_round_to(prec, q_round_to(prec, kiln_load_f64(x->data, x->dtype, i)) / sc);
        double z = zp ? kiln_load_f64(zp->data, zp->dtype, k) : 0.0;
        if (is_int)
            q_store(y->data, odt, i, nearbyint(v) + z);
        else
            ((uint8_t *)y->data)[i] = kiln_float_to_minifloat(odt, v + z, saturate);
    }
    return KILN_OK;
}

static kiln_status dequantize_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *s = c->in[1], *zp = kiln_op_in(c, 2);
    double lo, hi;
    if (!q_int_range(x->dtype, &lo, &hi) && !q_float_type(x->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "cannot dequantize %s (int8, uint8, int16, uint16, int32, int4, uint4, "
                         "int2, uint2, float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float4e2m1, "
                         "float6e2m3, float6e3m2)", kiln_dtype_name(x->dtype));
    if (!q_scale_type(s->dtype, false))
        return kiln_fail(KILN_ERR_INVALID, "x_scale must be float, float16, bfloat16 or float8e8m0, got %s",
                         kiln_dtype_name(s->dtype));
    if (zp && zp->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "x_zero_point type %s differs from x type %s", kiln_dtype_name(zp->dtype),
                         kiln_dtype_name(x->dtype));
    kiln_dtype odt = s->dtype;
    int64_t want = c->opset >= 23 ? kiln_attr_int(c->node, "output_dtype", 0) : 0;
    if (want)
        odt = (kiln_dtype)want;
    if (!kiln_is_float_dtype(odt) || odt == KILN_DTYPE_DOUBLE)
        return kiln_fail(KILN_ERR_INVALID, "output type %s is not float, float16 or bfloat16%s", kiln_dtype_name(odt),
                         want ? "" : " (give output_dtype)");
    q_layout l;
    KILN_TRY(q_resolve(c, x, s, zp, &l));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, odt, x->rank, x->dims, &y));
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = q_index(&l, i);
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

/* ---- shape rules: the input's shape; the type of the zero point or
 * output_dtype (QuantizeLinear, default uint8), of the scale or
 * output_dtype (DequantizeLinear) ---- */

static kiln_status quantize_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out < 1)
        return KILN_OK;
    kiln_dtype dt = KILN_DTYPE_UINT8;
    if (kiln_infer_has(x, 2))
        dt = kiln_infer_in(x, 2)->dt;
    else if (x->opset >= 21 && kiln_attr_int(x->node, "output_dtype", 0))
        dt = (kiln_dtype)kiln_attr_int(x->node, "output_dtype", 0);
    x->out[0].dt = dt;
    return KILN_OK;
}

static kiln_status dequantize_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out < 1)
        return KILN_OK;
    kiln_dtype dt = x->opset >= 19 ? kiln_infer_in(x, 1)->dt : KILN_DTYPE_FLOAT;
    if (x->opset >= 23 && kiln_attr_int(x->node, "output_dtype", 0))
        dt = (kiln_dtype)kiln_attr_int(x->node, "output_dtype", 0);
    x->out[0].dt = dt;
    return KILN_OK;
}

static kiln_status dynquant_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 0)
        x->out[0].dt = KILN_DTYPE_UINT8;
    for (size_t k = 1; k < x->n_out && k < 3; k++) {
        x->out[k].dt = k == 1 ? KILN_DTYPE_FLOAT : KILN_DTYPE_UINT8;
        x->out[k].rank = 0;
    }
    return KILN_OK;
}

/* One kernel per operator reads the node's opset: QuantizeLinear 19 added
 * `saturate` and float8, 21 `block_size`, `output_dtype` and the 4-bit types,
 * 23 `precision` and FLOAT4E2M1, 25 the 2-bit integers, 28 float6;
 * DequantizeLinear 19 only widened the types, 21 added `block_size`, 23
 * `output_dtype`. */
static const kiln_op_desc ops[] = {
    {"", "QuantizeLinear", 10, 18, quantize_exec, quantize_infer},
    {"", "QuantizeLinear", 19, 20, quantize_exec, quantize_infer},
    {"", "QuantizeLinear", 21, 22, quantize_exec, quantize_infer},
    {"", "QuantizeLinear", 23, 0, quantize_exec, quantize_infer},
    {"", "DequantizeLinear", 10, 20, dequantize_exec, dequantize_infer},
    {"", "DequantizeLinear", 21, 22, dequantize_exec, dequantize_infer},
    {"", "DequantizeLinear", 23, 0, dequantize_exec, dequantize_infer},
    {"", "DynamicQuantizeLinear", 11, 0, dynquant_exec, dynquant_infer},
};
KILN_OP_FAMILY(quantize, ops);
