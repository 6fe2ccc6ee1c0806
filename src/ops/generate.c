/* Operators that make tensors from attributes or small value inputs:
 * Constant, ConstantOfShape, Range, EyeLike, OneHot. Output sizes that come
 * from tensor values are validated (negative, overflow, absurd sizes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Constant: exactly one of value (tensor), value_float(s), value_int(s),
 * value_string(s) (the scalar/list forms since opset 12); sparse_value
 * (opset 11) is not supported. */
static kiln_status constant_exec(kiln_op_ctx *c) {
    const kiln_node *n = c->node;
    if (n->n_attrs != 1)
        return kiln_fail(KILN_ERR_INVALID, "needs exactly one value attribute, it has %zu attributes", n->n_attrs);
    const kiln_attr *a = &n->attrs[0];
    kiln_tensor *y;
    if (!strcmp(a->name, "value")) {
        const kiln_tensor *t = a->t;
        if (!t || a->type != KILN_ATTR_TENSOR)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'value' is not a tensor");
        if (t->dtype != KILN_DTYPE_STRING && kiln_tensor_is_aligned(t))
            return kiln_op_output_alias(c, 0, t, t->rank, t->dims);
        KILN_TRY(kiln_op_output(c, 0, t->dtype, t->rank, t->dims, &y));
        if (t->numel > 0) {
            memcpy(y->data, t->data, t->nbytes);
            KILN_TRY(kiln_strings_own(y));
        }
        return KILN_OK;
    }
    if (!strcmp(a->name, "value_float") || !strcmp(a->name, "value_int")) {
        bool f = a->name[6] == 'f';
        KILN_TRY(kiln_op_output(c, 0, f ? KILN_DTYPE_FLOAT : KILN_DTYPE_INT64, 0, NULL, &y));
        if (f)
            *(float *)y->data = a->f;
        else
            *(int64_t *)y->data = a->i;
        return KILN_OK;
    }
    if (!strcmp(a->name, "value_floats") || !strcmp(a->name, "value_ints")) {
        bool f = a->name[6] == 'f';
        int64_t len = (int64_t)a->n;
        KILN_TRY(kiln_op_output(c, 0, f ? KILN_DTYPE_FLOAT : KILN_DTYPE_INT64, 1, &len, &y));
        if (len)
            memcpy(y->data, f ? (const void *)a->floats : (const void *)a->ints, y->nbytes);
        return KILN_OK;
    }
    if (!strcmp(a->name, "value_string") || !strcmp(a->name, "value_strings")) {
        bool one = !strcmp(a->name, "value_string");
        int64_t len = one ? 1 : (int64_t)a->n;
        KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_STRING, one ? 0 : 1, &len, &y));
        if (len) {
            memcpy(y->data, one ? &a->s : a->strings, (size_t)len * sizeof(kiln_string));
            KILN_TRY(kiln_strings_own(y));
        }
        return KILN_OK;
    }
    if (!strcmp(a->name, "sparse_value"))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'sparse_value' (sparse constants) is not supported");
    return kiln_fail(KILN_ERR_INVALID, "unknown attribute '%s'", a->name);
}

/* ConstantOfShape (opset 9+): shape from a 1-D int64 input, value from a
 * one-element tensor attribute (default float 0). */
static kiln_status constant_of_shape_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    int64_t dims[KILN_MAX_RANK];
    size_t n;
    KILN_TRY(kiln_tensor_read_ints(c->in[0], "input 'input' (the shape)", dims, KILN_MAX_RANK, &n));
    KILN_TRY(kiln_check_shape("output", (int)n, dims));
    const kiln_tensor *v = kiln_attr_tensor(c->node, "value");
    kiln_dtype dt = KILN_DTYPE_FLOAT;
    char fill[16] = {0};
    if (v) {
        if (v->numel != 1)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'value' must have one element, it has %lld",
                             (long long)v->numel);
        if (v->dtype == KILN_DTYPE_STRING || kiln_dtype_size(v->dtype) > sizeof fill)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'value' of type %s is not supported",
                             kiln_dtype_name(v->dtype));
        dt = v->dtype;
        memcpy(fill, v->data, kiln_dtype_size(dt));
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, (int)n, dims, &y));
    kiln_fill_elems(y->data, fill, kiln_dtype_size(dt), y->numel);
    return KILN_OK;
}

/* double -> float rounded to odd: a float16/bfloat16 rounding of the result
 * then equals a direct rounding of the double. */
static float f64_to_f32_odd(double v) {
    float f = (float)v;
    if (!isfinite(f) || (double)f == v)
        return f;
    if (fabs((double)f) > fabs(v))
        f = nextafterf(f, 0.0f);
    uint32_t u;
    memcpy(&u, &f, 4);
    u |= 1;
    memcpy(&f, &u, 4);
    return f;
}

/* Range (opset 11): output[i] = start + i * delta for
 * i < max(ceil((limit - start) / delta), 0). Opset 27 adds float16 and
 * bfloat16, computed in the stash_type (float, the default, or double) and
 * rounded back. */
static kiln_status range_run(kiln_op_ctx *c, bool v27) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *s = c->in[0], *l = c->in[1], *d = c->in[2];
    kiln_dtype dt = s->dtype;
    if (l->dtype != dt || d->dtype != dt)
        return kiln_fail(KILN_ERR_INVALID, "start, limit and delta must have the same type (%s, %s, %s)",
                         kiln_dtype_name(dt), kiln_dtype_name(l->dtype), kiln_dtype_name(d->dtype));
    if (s->numel != 1 || l->numel != 1 || d->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "start, limit and delta must be scalars");
    bool low = v27 && (dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16);
    bool is_float = dt == KILN_DTYPE_FLOAT || dt == KILN_DTYPE_DOUBLE || low;
    kiln_dtype stash = dt;
    if (low) {
        stash = (kiln_dtype)kiln_attr_int(c->node, "stash_type", KILN_DTYPE_FLOAT);
        if (stash != KILN_DTYPE_FLOAT && stash != KILN_DTYPE_DOUBLE)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'stash_type' must be 1 (float) or 11 (double), got %d",
                             (int)stash);
    }
    if (!is_float && dt != KILN_DTYPE_INT16 && dt != KILN_DTYPE_INT32 && dt != KILN_DTYPE_INT64)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "element type %s is not supported", kiln_dtype_name(dt));
    int64_t n;
    if (is_float) {
        double fs = kiln_tensor_get_f64(s, 0), fl = kiln_tensor_get_f64(l, 0), fd = kiln_tensor_get_f64(d, 0);
        if (fd == 0 || !isfinite(fs) || !isfinite(fl) || !isfinite(fd))
            return kiln_fail(KILN_ERR_INVALID, "start %g, limit %g, delta %g do not make a finite range", fs, fl, fd);
        double cnt = ceil((fl - fs) / fd);
        if (cnt > (double)KILN_TENSOR_MAX_NUMEL)
            return kiln_fail(KILN_ERR_LIMIT, "range has too many elements (%g)", cnt);
        n = cnt > 0 ? (int64_t)cnt : 0;
    } else {
        int64_t is = kiln_tensor_get_i64(s, 0), il = kiln_tensor_get_i64(l, 0), id = kiln_tensor_get_i64(d, 0);
        if (id == 0)
            return kiln_fail(KILN_ERR_INVALID, "delta is 0");
        /* in 128 bits so that no difference of int64 values overflows */
        __int128 diff = (__int128)il - is, q = diff / id;
        if (q * id != diff && (diff > 0) == (id > 0))
            q++;
        if (q > KILN_TENSOR_MAX_NUMEL)
            return kiln_fail(KILN_ERR_LIMIT, "range has too many elements (start %lld, limit %lld, delta %lld)",
                             (long long)is, (long long)il, (long long)id);
        n = q > 0 ? (int64_t)q : 0;
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, 1, &n, &y));
    if (low) {
        /* the inputs are exact in either stash type */
        double a = kiln_tensor_get_f64(s, 0), b = kiln_tensor_get_f64(d, 0);
        for (int64_t i = 0; i < n; i++) {
            float v = stash == KILN_DTYPE_FLOAT ? (float)a + (float)i * (float)b : f64_to_f32_odd(a + (double)i * b);
            ((uint16_t *)y->data)[i] = dt == KILN_DTYPE_FLOAT16 ? kiln_float_to_half(v) : kiln_float_to_bf16(v);
        }
        return KILN_OK;
    }
    switch (dt) {
    case KILN_DTYPE_FLOAT: {
        float a = ((const float *)s->data)[0], b = ((const float *)d->data)[0];
        for (int64_t i = 0; i < n; i++)
            ((float *)y->data)[i] = a + (float)i * b;
        break;
    }
    case KILN_DTYPE_DOUBLE: {
        double a = ((const double *)s->data)[0], b = ((const double *)d->data)[0];
        for (int64_t i = 0; i < n; i++)
            ((double *)y->data)[i] = a + (double)i * b;
        break;
    }
    default: {
        /* every value lies between start and limit: no overflow */
        int64_t a = kiln_tensor_get_i64(s, 0), b = kiln_tensor_get_i64(d, 0);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = a + i * b;
            if (dt == KILN_DTYPE_INT16)
                ((int16_t *)y->data)[i] = (int16_t)v;
            else if (dt == KILN_DTYPE_INT32)
                ((int32_t *)y->data)[i] = (int32_t)v;
            else
                ((int64_t *)y->data)[i] = v;
        }
    }
    }
    return KILN_OK;
}

static kiln_status range_v11(kiln_op_ctx *c) { return range_run(c, false); }
static kiln_status range_v27(kiln_op_ctx *c) { return range_run(c, true); }

/* EyeLike (opset 9): 2-D, ones on diagonal k, dtype attribute or the input's. */
static kiln_status eyelike_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->rank != 2)
        return kiln_fail(KILN_ERR_INVALID, "input must be 2-D, got rank %d", x->rank);
    kiln_dtype dt = (kiln_dtype)kiln_attr_int(c->node, "dtype", x->dtype);
    int64_t k = kiln_attr_int(c->node, "k", 0);
    char one[16] = {0};
    if (dt == KILN_DTYPE_STRING || kiln_dtype_size(dt) == 0 || kiln_dtype_size(dt) > sizeof one)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "element type %d is not supported", (int)dt);
    KILN_TRY(kiln_scalar_from_f64(dt, 1.0, one));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, 2, x->dims, &y));
    size_t es = kiln_dtype_size(dt);
    if (y->numel)
        memset(y->data, 0, y->nbytes);
    int64_t rows = x->dims[0], cols = x->dims[1];
    for (int64_t i = 0; i < rows; i++) {
        /* j = i + k, compared without overflow */
        if ((k >= 0 && i < cols - k && k < cols) || (k < 0 && i + k >= 0 && i + k < cols))
            memcpy((char *)y->data + (size_t)(i * cols + i + k) * es, one, es);
    }
    return KILN_OK;
}

/* OneHot (opset 9, negative indices and axis from 11): indices outside
 * [-depth, depth-1] give a row of off values, as the spec says. */
static kiln_status onehot_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *ind = c->in[0], *dep = c->in[1], *val = c->in[2];
    if (dep->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'depth' must have one element, it has %lld", (long long)dep->numel);
    if (val->numel != 2)
        return kiln_fail(KILN_ERR_INVALID, "input 'values' must have two elements [off, on], it has %lld",
                         (long long)val->numel);
    if (ind->dtype == KILN_DTYPE_STRING || dep->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_INVALID, "indices and depth must be numeric");
    int64_t depth = kiln_tensor_get_i64(dep, 0);
    if (depth <= 0)
        return kiln_fail(KILN_ERR_INVALID, "depth must be positive, got %lld", (long long)depth);
    int r = ind->rank + 1, axis;
    if (r > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "output rank %d exceeds kiln's limit of %d", r, KILN_MAX_RANK);
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -1), r, &axis));
    int64_t dims[KILN_MAX_RANK];
    for (int a = 0, k = 0; a < r; a++)
        dims[a] = a == axis ? depth : ind->dims[k++];
    KILN_TRY(kiln_check_shape("output", r, dims));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, val->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    size_t es = kiln_elem_size(val->dtype);
    const char *off = val->data, *on = (const char *)val->data + es;
    kiln_fill_elems(y->data, off, es, y->numel);
    int64_t inner = 1;
    for (int a = axis + 1; a < r; a++)
        inner *= dims[a];
    for (int64_t i = 0; i < ind->numel; i++) {
        int64_t v = kiln_tensor_get_i64(ind, i);
        if (v < 0 && v >= -depth)
            v += depth;
        if (v < 0 || v >= depth)
            continue;
        int64_t o = i / inner, in = i % inner;
        memcpy((char *)y->data + (size_t)((o * depth + v) * inner + in) * es, on, es);
    }
    return kiln_strings_own(y);
}

/* ---- shape rules ---- */

static kiln_status constant_infer(kiln_infer_ctx *x) {
    const kiln_tensor *v = kiln_attr_tensor(x->node, "value");
    if (x->n_out >= 1 && v)
        kiln_fact_from_tensor(v, &x->out[0]);
    return KILN_OK;
}

/* ConstantOfShape: the shape input's elements are the output's dims. */
static kiln_status constant_of_shape_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    const kiln_tensor *v = kiln_attr_tensor(x->node, "value");
    kiln_shape_fact *o = &x->out[0];
    o->dt = v ? v->dtype : KILN_DTYPE_FLOAT;
    const kiln_shape_fact *S = kiln_infer_in(x, 0);
    if (S->nval < 0 || S->nval > KILN_MAX_RANK)
        return KILN_OK;
    o->rank = S->nval;
    memcpy(o->dims, S->val, (size_t)S->nval * sizeof *S->val);
    return KILN_OK;
}

/* Range: 1-D of max(ceil((limit - start) / delta), 0) when all are known. */
static kiln_status range_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = kiln_infer_in(x, 0)->dt;
    o->rank = 1;
    o->dims[0] = kiln_sd_unknown();
    const kiln_tensor *s = x->n_in > 0 ? x->k[0] : NULL, *l = x->n_in > 1 ? x->k[1] : NULL,
                      *d = x->n_in > 2 ? x->k[2] : NULL;
    if (s && l && d && s->numel == 1 && l->numel == 1 && d->numel == 1) {
        double sv = kiln_tensor_get_f64(s, 0), lv = kiln_tensor_get_f64(l, 0), dv = kiln_tensor_get_f64(d, 0);
        if (dv == 0)
            return kiln_fail(KILN_ERR_INVALID, "delta is 0");
        double cnt = ceil((lv - sv) / dv);
        o->dims[0] = kiln_sd_const(cnt > 0 ? (int64_t)cnt : 0);
    }
    return KILN_OK;
}

/* EyeLike: the input's shape, typed by `dtype` (else the input's). */
static kiln_status eyelike_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 0 && kiln_node_attr(x->node, "dtype"))
        x->out[0].dt = (kiln_dtype)kiln_attr_int(x->node, "dtype", 0);
    return KILN_OK;
}

/* OneHot: a new axis of size `depth`, typed as the values. */
static kiln_status onehot_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *I = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = kiln_infer_in(x, 2)->dt;
    if (I->rank < 0 || I->rank + 1 > KILN_MAX_RANK)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", -1), I->rank + 1);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range");
    const kiln_tensor *d = x->n_in > 1 ? x->k[1] : NULL;
    kiln_sdim depth = d && d->numel == 1 ? kiln_sd_const((int64_t)kiln_tensor_get_f64(d, 0)) : kiln_sd_unknown();
    o->rank = I->rank + 1;
    for (int i = 0, j = 0; i < o->rank; i++)
        o->dims[i] = i == a ? depth : I->dims[j++];
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Constant", 1, 0, constant_exec, constant_infer},
    {"", "ConstantOfShape", 9, 0, constant_of_shape_exec, constant_of_shape_infer},
    {"", "Range", 11, 26, range_v11, range_infer},
    {"", "Range", 27, 0, range_v27, range_infer},
    {"", "EyeLike", 9, 0, eyelike_exec, eyelike_infer},
    {"", "OneHot", 9, 0, onehot_exec, onehot_infer},
};
KILN_OP_FAMILY(generate, ops);
