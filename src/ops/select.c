/* Operators that keep, drop or reorder elements by position or value:
 * Trilu, NonZero, Compress, ReverseSequence. Any dtype where the spec allows
 * it (bytes are moved; strings get their own copies). */
#include <stdlib.h>
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Trilu (opset 14): keeps j - i >= k (upper) or j - i <= k (lower) in each
 * of the last two axes' matrices, zeroes the rest. */
static kiln_status trilu_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 2, got %d", x->rank);
    int64_t k = 0;
    if (kiln_op_in(c, 1)) {
        const kiln_tensor *kt = c->in[1];
        if (kt->numel != 1 || (kt->dtype != KILN_DTYPE_INT64 && kt->dtype != KILN_DTYPE_INT32))
            return kiln_fail(KILN_ERR_INVALID, "input 'k' must be an int64 scalar");
        k = kiln_tensor_get_i64(kt, 0);
    }
    bool upper = kiln_attr_int(c->node, "upper", 1) != 0;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    int64_t mats = x->numel / (rows * cols);
    size_t es = kiln_elem_size(x->dtype);
    const char *src = x->data;
    char *dst = y->data;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++) {
            size_t row = (size_t)((m * rows + i) * cols) * es;
            /* kept columns form one range [lo, hi) */
            int64_t lo, hi;
            if (upper) {
                /* j >= i + k */
                lo = k > cols ? cols : (k < -i ? 0 : i + k);
                if (lo > cols)
                    lo = cols;
                hi = cols;
            } else {
                /* j <= i + k */
                lo = 0;
                hi = k >= cols ? cols : (k < -i - 1 ? 0 : i + k + 1);
                if (hi > cols)
                    hi = cols;
            }
            if (hi < lo)
                hi = lo;
            memset(dst + row, 0, (size_t)lo * es);
            memcpy(dst + row + (size_t)lo * es, src + row + (size_t)lo * es, (size_t)(hi - lo) * es);
            memset(dst + row + (size_t)hi * es, 0, (size_t)(cols - hi) * es);
        }
    return kiln_strings_own(y);
}

static bool elem_nonzero(const kiln_tensor *t, int64_t i, size_t es) {
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT:
    case KILN_DTYPE_DOUBLE:
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16:
        return kiln_tensor_get_f64(t, i) != 0; /* -0.0 is zero, NaN is not */
    case KILN_DTYPE_STRING:
        return ((const kiln_string *)t->data)[i].len != 0;
    default: {
        const unsigned char *p = (const unsigned char *)t->data + (size_t)i * es;
        for (size_t b = 0; b < es; b++)
            if (p[b])
                return true;
        return false;
    }
    }
}

/* NonZero (opset 9+): int64 [rank, count] of the coordinates, row-major
 * order. A scalar is treated as shape [1]. */
static kiln_status nonzero_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    size_t es = kiln_elem_size(x->dtype);
    int64_t cnt = 0;
    for (int64_t i = 0; i < x->numel; i++)
        cnt += elem_nonzero(x, i, es);
    int r = x->rank ? x->rank : 1;
    int64_t xd[KILN_MAX_RANK];
    for (int a = 0; a < r; a++)
        xd[a] = x->rank ? x->dims[a] : 1;
    int64_t dims[2] = {r, cnt};
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_INT64, 2, dims, &y));
    int64_t *out = y->data, pos[KILN_MAX_RANK] = {0}, k = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        if (elem_nonzero(x, i, es)) {
            for (int a = 0; a < r; a++)
                out[a * cnt + k] = pos[a];
            k++;
        }
        for (int a = r - 1; a >= 0; a--) {
            if (++pos[a] < xd[a])
                break;
            pos[a] = 0;
        }
    }
    return KILN_OK;
}

/* Compress (opset 9, negative axis from 11): keeps the slices along `axis`
 * (or elements of the flattened input) whose condition is true. A shorter
 * condition leaves the rest out; a longer one may only have false extras. */
static kiln_status compress_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *cond = c->in[1];
    if (cond->dtype != KILN_DTYPE_BOOL || cond->rank != 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'condition' must be a 1-D bool tensor");
    const kiln_attr *aa = kiln_node_attr(c->node, "axis");
    int64_t outer = 1, len, inner = 1;
    int axis = 0;
    if (aa) {
        if (x->rank == 0)
            return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 1 when 'axis' is given");
        KILN_TRY(kiln_op_axis(c, aa->i, x->rank, &axis));
        for (int a = 0; a < axis; a++)
            outer *= x->dims[a];
        len = x->dims[axis];
        for (int a = axis + 1; a < x->rank; a++)
            inner *= x->dims[a];
    } else {
        len = x->numel;
    }
    const uint8_t *cv = cond->data;
    int64_t kept = 0;
    for (int64_t i = 0; i < cond->numel; i++) {
        if (!cv[i])
            continue;
        if (i >= len)
            return kiln_fail(KILN_ERR_INVALID, "condition is true at %lld, beyond the axis length %lld",
                             (long long)i, (long long)len);
        kept++;
    }
    int64_t dims[KILN_MAX_RANK];
    int r;
    if (aa) {
        r = x->rank;
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)r);
        dims[axis] = kept;
    } else {
        r = 1;
        dims[0] = kept;
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    size_t es = kiln_elem_size(x->dtype), block = (size_t)inner * es;
    char *d = y->data;
    int64_t n = cond->numel < len ? cond->numel : len;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++)
            if (cv[i]) {
                memcpy(d, (const char *)x->data + (size_t)(o * len + i) * block, block);
                d += block;
            }
    return kiln_strings_own(y);
}

/* ReverseSequence (opset 10): for each batch entry b, reverses the first
 * sequence_lens[b] steps along the time axis; batch/time axes are 0 and 1. */
static kiln_status reverse_sequence_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *sl = c->in[1];
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 2, got %d", x->rank);
    int64_t ba = kiln_attr_int(c->node, "batch_axis", 1), ta = kiln_attr_int(c->node, "time_axis", 0);
    if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0)))
        return kiln_fail(KILN_ERR_INVALID, "batch_axis and time_axis must be 0 and 1 (got %lld and %lld)",
                         (long long)ba, (long long)ta);
    int64_t batch = x->dims[ba], time = x->dims[ta];
    if (sl->rank != 1 || sl->dims[0] != batch || (sl->dtype != KILN_DTYPE_INT64 && sl->dtype != KILN_DTYPE_INT32))
        return kiln_fail(KILN_ERR_INVALID, "input 'sequence_lens' must be 1-D int64 of length %lld (the batch size)",
                         (long long)batch);
    for (int64_t b = 0; b < batch; b++) {
        int64_t v = kiln_tensor_get_i64(sl, b);
        if (v < 0 || v > time)
            return kiln_fail(KILN_ERR_INVALID, "sequence_lens[%lld] = %lld is out of range 0..%lld", (long long)b,
                             (long long)v, (long long)time);
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    int64_t inner = x->numel / (batch * time);
    size_t es = kiln_elem_size(x->dtype), block = (size_t)inner * es;
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = kiln_tensor_get_i64(sl, b);
        for (int64_t t = 0; t < time; t++) {
            int64_t st = t < len ? len - 1 - t : t;
            int64_t di = ta == 0 ? t * batch + b : b * time + t;
            int64_t si = ta == 0 ? st * batch + b : b * time + st;
            memcpy((char *)y->data + (size_t)di * block, (const char *)x->data + (size_t)si * block, block);
        }
    }
    return kiln_strings_own(y);
}

/* ---- shape rules ---- */

/* NonZero: [rank, count], count known only from the values. */
static kiln_status nonzero_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = KILN_DTYPE_INT64;
    o->rank = 2;
    o->dims[0] = X->rank >= 0 ? kiln_sd_const(X->rank == 0 ? 1 : X->rank) : kiln_sd_unknown();
    o->dims[1] = kiln_sd_unknown();
    return KILN_OK;
}

/* Compress: along `axis` the count of true conditions; flat without it. */
static kiln_status compress_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (!kiln_node_attr(x->node, "axis")) {
        o->rank = 1;
        o->dims[0] = kiln_sd_unknown();
        return KILN_OK;
    }
    if (X->rank < 1)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", 0), X->rank);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    kiln_infer_copy_shape(o, X, false);
    o->dims[a] = kiln_sd_unknown();
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Trilu", 14, 0, trilu_exec, kiln_infer_same},
    {"", "NonZero", 9, 0, nonzero_exec, nonzero_infer},
    {"", "Compress", 9, 0, compress_exec, compress_infer},
    {"", "ReverseSequence", 10, 0, reverse_sequence_exec, kiln_infer_same},
};
KILN_OP_FAMILY(select, ops);
