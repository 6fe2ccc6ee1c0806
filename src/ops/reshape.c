/* Reshape Flatten Squeeze Unsqueeze (zero-copy views of the input), Shape and
 * Size (metadata as int64 tensors). Any dtype, strings included. */
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Reshape (opset 5+: shape is an input; 14 adds allowzero). A 0 copies the
 * input's dim unless allowzero=1; one -1 is inferred. */
static kiln_status reshape_run(kiln_op_ctx *c, bool has_allowzero) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *s = c->in[1];
    int64_t dims[KILN_MAX_RANK];
    size_t n;
    KILN_TRY(kiln_tensor_read_ints(s, "input 'shape'", dims, KILN_MAX_RANK, &n));
    int64_t allowzero = has_allowzero ? kiln_attr_int(c->node, "allowzero", 0) : 0;
    int infer = -1;
    bool has_zero = false;
    int64_t known = 1;
    for (size_t i = 0; i < n; i++) {
        if (dims[i] == -1) {
            if (infer >= 0)
                return kiln_fail(KILN_ERR_INVALID, "shape has more than one -1 (at %d and %zu)", infer, i);
            infer = (int)i;
            continue;
        }
        if (dims[i] < -1)
            return kiln_fail(KILN_ERR_INVALID, "shape value %lld at %zu is invalid", (long long)dims[i], i);
        if (dims[i] == 0) {
            if (allowzero) {
                has_zero = true;
            } else {
                if ((int)i >= x->rank)
                    return kiln_fail(KILN_ERR_INVALID,
                                     "shape value 0 at %zu copies input dimension %zu, but the input has rank %d", i,
                                     i, x->rank);
                dims[i] = x->dims[i];
            }
        }
        if (kiln_mul_overflow_i64(known, dims[i], &known))
            return kiln_fail(KILN_ERR_INVALID, "shape's element count overflows");
    }
    if (infer >= 0) {
        if (has_zero)
            return kiln_fail(KILN_ERR_INVALID, "shape has both -1 and 0 with allowzero=1");
        if (known == 0 || x->numel % known != 0) {
            char b1[256], b2[256];
            return kiln_fail(KILN_ERR_INVALID, "cannot reshape %s (%lld elements) to %s",
                             kiln_dims_str(x->rank, x->dims, b1, sizeof b1), (long long)x->numel,
                             kiln_dims_str((int)n, dims, b2, sizeof b2));
        }
        dims[infer] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel) {
        char b1[256], b2[256];
        return kiln_fail(KILN_ERR_INVALID, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                         kiln_dims_str(x->rank, x->dims, b1, sizeof b1), (long long)x->numel,
                         kiln_dims_str((int)n, dims, b2, sizeof b2), (long long)known);
    }
    return kiln_op_output_alias(c, 0, x, (int)n, dims);
}

static kiln_status reshape_v5(kiln_op_ctx *c) { return reshape_run(c, false); }
static kiln_status reshape_v14(kiln_op_ctx *c) { return reshape_run(c, true); }

/* Flatten: axis in [-r, r] (negative from opset 11); output is 2-D. */
static kiln_status flatten_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t axis = kiln_attr_int(c->node, "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d",
                         (long long)kiln_attr_int(c->node, "axis", 1), x->rank);
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < x->rank; i++)
        dims[i < axis ? 0 : 1] *= x->dims[i];
    return kiln_op_output_alias(c, 0, x, 2, dims);
}

/* Axes of Squeeze/Unsqueeze: the attribute before opset 13, input 1 from 13. */
static kiln_status read_axes(kiln_op_ctx *c, bool from_input, int64_t *axes, size_t *n, bool *given) {
    *n = 0;
    *given = false;
    if (from_input) {
        const kiln_tensor *a = kiln_op_in(c, 1);
        if (!a)
            return KILN_OK;
        *given = true;
        return kiln_tensor_read_ints(a, "input 'axes'", axes, KILN_MAX_RANK, n);
    }
    size_t cnt;
    const int64_t *v = kiln_attr_ints(c->node, "axes", &cnt);
    if (!v)
        return KILN_OK;
    if (cnt > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'axes' has %zu values, more than the rank limit %d", cnt,
                         KILN_MAX_RANK);
    for (size_t i = 0; i < cnt; i++)
        axes[i] = v[i];
    *n = cnt;
    *given = true;
    return KILN_OK;
}

static kiln_status squeeze_run(kiln_op_ctx *c, bool axes_input) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t axes[KILN_MAX_RANK];
    size_t n;
    bool given;
    KILN_TRY(read_axes(c, axes_input, axes, &n, &given));
    bool drop[KILN_MAX_RANK] = {false};
    if (!given) {
        for (int i = 0; i < x->rank; i++)
            drop[i] = x->dims[i] == 1;
    } else {
        for (size_t i = 0; i < n; i++) {
            int a;
            KILN_TRY(kiln_op_axis(c, axes[i], x->rank, &a));
            if (a >= x->rank)
                return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)axes[i],
                                 x->rank);
            if (drop[a])
                return kiln_fail(KILN_ERR_INVALID, "axis %lld is listed twice", (long long)axes[i]);
            if (x->dims[a] != 1)
                return kiln_fail(KILN_ERR_INVALID, "cannot squeeze axis %lld: its dimension is %lld, not 1",
                                 (long long)axes[i], (long long)x->dims[a]);
            drop[a] = true;
        }
    }
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i])
            dims[r++] = x->dims[i];
    return kiln_op_output_alias(c, 0, x, r, dims);
}

static kiln_status unsqueeze_run(kiln_op_ctx *c, bool axes_input) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t axes[KILN_MAX_RANK];
    size_t n;
    bool given;
    KILN_TRY(read_axes(c, axes_input, axes, &n, &given));
    if (!given)
        return kiln_fail(KILN_ERR_INVALID, "axes are required");
    int r = x->rank + (int)n;
    if (r > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "output rank %d exceeds kiln's limit of %d", r, KILN_MAX_RANK);
    bool ins[KILN_MAX_RANK] = {false};
    for (size_t i = 0; i < n; i++) {
        int a;
        KILN_TRY(kiln_op_axis(c, axes[i], r, &a));
        if (ins[a])
            return kiln_fail(KILN_ERR_INVALID, "axis %lld is listed twice", (long long)axes[i]);
        ins[a] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0, k = 0; i < r; i++)
        dims[i] = ins[i] ? 1 : x->dims[k++];
    return kiln_op_output_alias(c, 0, x, r, dims);
}

/* Shape: opset 15 adds start/end, clamped to [0, rank] after adding rank to
 * negatives. */
static kiln_status shape_run(kiln_op_ctx *c, bool has_range) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t start = 0, end = x->rank;
    if (has_range) {
        start = kiln_attr_int(c->node, "start", 0);
        end = kiln_attr_int(c->node, "end", x->rank);
    }
    if (start < 0)
        start += x->rank;
    if (end < 0)
        end += x->rank;
    start = start < 0 ? 0 : start > x->rank ? x->rank : start;
    end = end < 0 ? 0 : end > x->rank ? x->rank : end;
    int64_t len = end > start ? end - start : 0;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_INT64, 1, &len, &y));
    for (int64_t i = 0; i < len; i++)
        ((int64_t *)y->data)[i] = x->dims[start + i];
    return KILN_OK;
}

static kiln_status squeeze_v1(kiln_op_ctx *c) { return squeeze_run(c, false); }
static kiln_status squeeze_v13(kiln_op_ctx *c) { return squeeze_run(c, true); }
static kiln_status unsqueeze_v1(kiln_op_ctx *c) { return unsqueeze_run(c, false); }
static kiln_status unsqueeze_v13(kiln_op_ctx *c) { return unsqueeze_run(c, true); }
static kiln_status shape_v1(kiln_op_ctx *c) { return shape_run(c, false); }
static kiln_status shape_v15(kiln_op_ctx *c) { return shape_run(c, true); }

static kiln_status size_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_INT64, 0, NULL, &y));
    *(int64_t *)y->data = c->in[0]->numel;
    return KILN_OK;
}

/* ---- shape rules ---- */

static void copy_vals_if_small(kiln_shape_fact *o, const kiln_shape_fact *X) {
    if (X->nval >= 0 && o->rank <= 1) {
        o->nval = X->nval;
        memcpy(o->val, X->val, (size_t)X->nval * sizeof *o->val);
    }
}

/* Reshape: the target's known elements, 0 copying the input's dim (unless
 * allowzero), -1 the quotient of the sizes. */
static kiln_status reshape_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *S = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int nv = S->nval;
    if (nv < 0 || nv > KILN_MAX_RANK)
        return KILN_OK;
    bool allowzero = kiln_attr_int(x->node, "allowzero", 0) != 0;
    int neg = -1;
    o->rank = nv;
    for (int i = 0; i < nv; i++) {
        kiln_sdim v = S->val[i];
        if (kiln_sd_is(&v, 0) && !allowzero)
            v = X->rank > i ? X->dims[i] : kiln_sd_unknown();
        else if (kiln_sd_is(&v, -1)) {
            if (neg >= 0)
                return kiln_fail(KILN_ERR_INVALID, "shape has more than one -1");
            neg = i;
            v = kiln_sd_unknown();
        }
        o->dims[i] = v;
    }
    if (neg >= 0 && X->rank >= 0) {
        kiln_sdim rest = kiln_sd_const(1);
        for (int i = 0; i < nv; i++)
            if (i != neg)
                rest = kiln_sd_mul(rest, o->dims[i]);
        o->dims[neg] = kiln_sd_div_exact(kiln_fact_prod(X, 0, X->rank), rest);
    }
    copy_vals_if_small(o, X);
    return KILN_OK;
}

static kiln_status flatten_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int64_t a = kiln_attr_int(x->node, "axis", 1);
    if (a < 0)
        a += X->rank;
    if (a < 0 || a > X->rank)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    o->rank = 2;
    o->dims[0] = kiln_fact_prod(X, 0, (int)a);
    o->dims[1] = kiln_fact_prod(X, (int)a, X->rank);
    return KILN_OK;
}

/* Squeeze / Unsqueeze with axes from the attribute (v1) or input 1 (v13). */
static kiln_status squeeze_infer(kiln_infer_ctx *x, bool uns, bool axes_input) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t axes[KILN_MAX_RANK];
    int na;
    bool given = axes_input ? kiln_infer_has(x, 1) : kiln_node_attr(x->node, "axes") != NULL;
    bool have = kiln_infer_ints(x, axes_input ? 1 : -1, axes_input ? NULL : "axes", axes, &na, KILN_MAX_RANK);
    if (X->rank < 0 || (given && !have) || (uns && !given))
        return KILN_OK;
    if (!given) {
        /* Squeeze without axes: every dim of size 1 */
        o->rank = 0;
        for (int i = 0; i < X->rank; i++) {
            if (!X->dims[i].known) {
                o->rank = -1;
                return KILN_OK;
            }
            if (!kiln_sd_is(&X->dims[i], 1))
                o->dims[o->rank++] = X->dims[i];
        }
    } else {
        int rank = uns ? X->rank + na : X->rank;
        if (rank > KILN_MAX_RANK)
            return KILN_OK;
        bool mark[KILN_MAX_RANK] = {0};
        for (int i = 0; i < na; i++) {
            int a = kiln_infer_axis(axes[i], rank);
            if (a < 0)
                return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range", (long long)axes[i]);
            mark[a] = true;
        }
        o->rank = 0;
        for (int i = 0, j = 0; i < rank; i++) {
            if (uns)
                o->dims[o->rank++] = mark[i] ? kiln_sd_const(1) : X->dims[j++];
            else if (!mark[i])
                o->dims[o->rank++] = X->dims[i];
        }
    }
    copy_vals_if_small(o, X);
    return KILN_OK;
}
static kiln_status squeeze_infer_v1(kiln_infer_ctx *x) { return squeeze_infer(x, false, false); }
static kiln_status squeeze_infer_v13(kiln_infer_ctx *x) { return squeeze_infer(x, false, true); }
static kiln_status unsqueeze_infer_v1(kiln_infer_ctx *x) { return squeeze_infer(x, true, false); }
static kiln_status unsqueeze_infer_v13(kiln_infer_ctx *x) { return squeeze_infer(x, true, true); }

/* Shape: the input's dims as elements (start/end from opset 15). */
static kiln_status shape_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = KILN_DTYPE_INT64;
    o->rank = 1;
    o->dims[0] = kiln_sd_unknown();
    if (X->rank < 0)
        return KILN_OK;
    int64_t s = kiln_attr_int(x->node, "start", 0), e = kiln_attr_int(x->node, "end", X->rank);
    if (x->opset < 15)
        s = 0, e = X->rank;
    if (s < 0)
        s += X->rank;
    if (e < 0)
        e += X->rank;
    s = s < 0 ? 0 : s > X->rank ? X->rank : s;
    e = e < 0 ? 0 : e > X->rank ? X->rank : e;
    if (e < s)
        e = s;
    o->dims[0] = kiln_sd_const(e - s);
    o->nval = (int)(e - s);
    for (int64_t i = s; i < e; i++)
        o->val[i - s] = X->dims[i];
    return KILN_OK;
}

static kiln_status size_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = KILN_DTYPE_INT64;
    o->rank = 0;
    if (X->rank >= 0) {
        o->nval = 1;
        o->val[0] = kiln_fact_prod(X, 0, X->rank);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Reshape", 5, 13, reshape_v5, reshape_infer},
    {"", "Reshape", 14, 0, reshape_v14, reshape_infer},
    {"", "Flatten", 1, 0, flatten_exec, flatten_infer},
    {"", "Squeeze", 1, 12, squeeze_v1, squeeze_infer_v1},
    {"", "Squeeze", 13, 0, squeeze_v13, squeeze_infer_v13},
    {"", "Unsqueeze", 1, 12, unsqueeze_v1, unsqueeze_infer_v1},
    {"", "Unsqueeze", 13, 0, unsqueeze_v13, unsqueeze_infer_v13},
    {"", "Shape", 1, 14, shape_v1, shape_infer},
    {"", "Shape", 15, 0, shape_v15, shape_infer},
    {"", "Size", 1, 0, size_exec, size_infer},
};
KILN_OP_FAMILY(reshape, ops);
