/* Reshape Flatten Squeeze Unsqueeze (zero-copy views of the input), Shape and
 * Size (metadata as int64 tensors). Any dtype, strings included. */
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

static const kiln_op_desc ops[] = {
    {"", "Reshape", 5, 13, reshape_v5},
    {"", "Reshape", 14, 0, reshape_v14},
    {"", "Flatten", 1, 0, flatten_exec},
    {"", "Squeeze", 1, 12, squeeze_v1},
    {"", "Squeeze", 13, 0, squeeze_v13},
    {"", "Unsqueeze", 1, 12, unsqueeze_v1},
    {"", "Unsqueeze", 13, 0, unsqueeze_v13},
    {"", "Shape", 1, 14, shape_v1},
    {"", "Shape", 15, 0, shape_v15},
    {"", "Size", 1, 0, size_exec},
};
KILN_OP_FAMILY(reshape, ops);
