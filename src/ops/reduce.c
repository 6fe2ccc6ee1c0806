/* ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2
 * ReduceLogSum ReduceLogSumExp ReduceSumSquare.
 *
 * `axes` is an attribute until the opset that moves it to an optional input
 * (ReduceSum 13, the others 18); that same opset adds noop_with_empty_axes.
 * No axes means all axes, unless noop_with_empty_axes=1 (then the input
 * passes through unchanged). ReduceMax and ReduceMin take bool from opset
 * 20. float32 ReduceMean / ReduceMax over trailing axes (global pooling)
 * run the kernels/pool.h kernel. */
#include <string.h>

#include "ops/op.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"

static kiln_status reduce_exec(kiln_op_ctx *c, kiln_red_op op, bool axes_input, bool take_bool) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    bool is_bool = take_bool && x->dtype == KILN_DTYPE_BOOL;
    if (!kiln_reduce_dtype_ok(x->dtype) && !is_bool)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input 'data' has element type %s, which reductions do not take",
                         kiln_dtype_name(x->dtype));
    int64_t keepdims = kiln_attr_int(c->node, "keepdims", 1);
    int64_t noop = axes_input ? kiln_attr_int(c->node, "noop_with_empty_axes", 0) : 0;
    bool mask[KILN_MAX_RANK] = {false};
    size_t n_axes = 0;
    if (axes_input) {
        const kiln_tensor *a = kiln_op_in(c, 1);
        if (a) {
            if (a->dtype != KILN_DTYPE_INT64)
                return kiln_fail(KILN_ERR_INVALID, "input 'axes' must be int64, got %s", kiln_dtype_name(a->dtype));
            if (a->rank > 1)
                return kiln_fail(KILN_ERR_INVALID, "input 'axes' must be 1-D, got rank %d", a->rank);
            n_axes = (size_t)a->numel;
            for (size_t i = 0; i < n_axes; i++) {
                int ax;
                KILN_TRY(kiln_op_axis(c, ((const int64_t *)a->data)[i], x->rank, &ax));
                if (mask[ax])
                    return kiln_fail(KILN_ERR_INVALID, "input 'axes' repeats axis %d", ax);
                mask[ax] = true;
            }
        }
    } else {
        const int64_t *axes = kiln_attr_ints(c->node, "axes", &n_axes);
        for (size_t i = 0; axes && i < n_axes; i++) {
            int ax;
            KILN_TRY(kiln_op_axis(c, axes[i], x->rank, &ax));
            if (mask[ax])
                return kiln_fail(KILN_ERR_INVALID, "attribute 'axes' repeats axis %d", ax);
            mask[ax] = true;
        }
    }
    if (n_axes == 0) {
        if (noop)
            return kiln_op_output_alias(c, 0, x, x->rank, x->dims);
        for (int d = 0; d < x->rank; d++)
            mask[d] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    int src[KILN_MAX_RANK], rank = kiln_reduce_shape(x->rank, mask, keepdims != 0, src);
    for (int d = 0; d < rank; d++)
        dims[d] = src[d] < 0 ? 1 : x->dims[src[d]];
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, rank, dims, &y));
    if (!is_bool && x->dtype == KILN_DTYPE_FLOAT && (op == KILN_RED_MEAN || op == KILN_RED_MAX) && x->numel > 0) {
        /* over one trailing run of axes (size-1 axes aside): contiguous
         * planes, the global pooling kernel */
        int first = x->rank;
        for (int d = 0; d < x->rank; d++)
            if (mask[d] && x->dims[d] != 1) {
                first = d;
                break;
            }
        bool trailing = true;
        for (int d = first; d < x->rank; d++)
            if (!mask[d] && x->dims[d] != 1)
                trailing = false;
        if (trailing && first < x->rank) {
            int64_t n = kiln_dims_prod(x->dims, first, x->rank);
            kiln_global_pool_f32(op == KILN_RED_MEAN ? KILN_GPOOL_AVG : KILN_GPOOL_MAX, x->data, x->numel / n, n,
                                 y->data, kiln_op_pool(c));
            return KILN_OK;
        }
    }
    if (!is_bool)
        return kiln_reduce(kiln_op_pool(c), op, x, mask, y);
    /* bool max / min (opset 20): any / all, as uint8 0/1 values; an empty
     * set gives false for max and true for min */
    kiln_tensor xv = *x, yv = *y;
    xv.dtype = yv.dtype = KILN_DTYPE_UINT8;
    KILN_TRY(kiln_reduce(kiln_op_pool(c), op, &xv, mask, &yv));
    if (x->numel == 0 && y->numel > 0)
        memset(y->data, op == KILN_RED_MIN ? 1 : 0, (size_t)y->numel);
    return KILN_OK;
}

/* Shape rule, with axes from the attribute or from a constant input. */
static kiln_status reduce_infer(kiln_infer_ctx *x, bool axes_input) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int64_t axes[KILN_MAX_RANK];
    int na = 0;
    bool given = axes_input ? kiln_infer_has(x, 1) : kiln_node_attr(x->node, "axes") != NULL;
    if (given && !kiln_infer_ints(x, axes_input ? 1 : -1, axes_input ? NULL : "axes", axes, &na, KILN_MAX_RANK))
        return KILN_OK;
    bool mask[KILN_MAX_RANK] = {false};
    for (int i = 0; i < na; i++) {
        int a = kiln_infer_axis(axes[i], X->rank);
        if (a < 0)
            return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)axes[i], X->rank);
        mask[a] = true;
    }
    if (na == 0) {
        if (axes_input && kiln_attr_int(x->node, "noop_with_empty_axes", 0)) {
            kiln_infer_copy_shape(o, X, false);
            return KILN_OK;
        }
        for (int d = 0; d < X->rank; d++)
            mask[d] = true;
    }
    int src[KILN_MAX_RANK];
    o->rank = kiln_reduce_shape(X->rank, mask, kiln_attr_int(x->node, "keepdims", 1) != 0, src);
    for (int d = 0; d < o->rank; d++)
        o->dims[d] = src[d] < 0 ? kiln_sd_const(1) : X->dims[src[d]];
    return KILN_OK;
}
static kiln_status reduce_infer_attr(kiln_infer_ctx *x) { return reduce_infer(x, false); }
static kiln_status reduce_infer_input(kiln_infer_ctx *x) { return reduce_infer(x, true); }

#define REDUCE_OP(fn, OP)                                                                     \
    static kiln_status fn##_attr(kiln_op_ctx *c) { return reduce_exec(c, OP, false, false); } \
    static kiln_status fn##_input(kiln_op_ctx *c) { return reduce_exec(c, OP, true, false); }
REDUCE_OP(rsum, KILN_RED_SUM)
REDUCE_OP(rmean, KILN_RED_MEAN)
REDUCE_OP(rmax, KILN_RED_MAX)
REDUCE_OP(rmin, KILN_RED_MIN)
REDUCE_OP(rprod, KILN_RED_PROD)
REDUCE_OP(rl1, KILN_RED_L1)
REDUCE_OP(rl2, KILN_RED_L2)
REDUCE_OP(rlogsum, KILN_RED_LOGSUM)
REDUCE_OP(rlse, KILN_RED_LOGSUMEXP)
REDUCE_OP(rsumsq, KILN_RED_SUMSQ)
static kiln_status rmax_v20(kiln_op_ctx *c) { return reduce_exec(c, KILN_RED_MAX, true, true); }
static kiln_status rmin_v20(kiln_op_ctx *c) { return reduce_exec(c, KILN_RED_MIN, true, true); }

static const kiln_op_desc ops[] = {
    {"", "ReduceSum", 1, 12, rsum_attr, reduce_infer_attr},
    {"", "ReduceSum", 13, 0, rsum_input, reduce_infer_input},
    {"", "ReduceMean", 1, 17, rmean_attr, reduce_infer_attr},
    {"", "ReduceMean", 18, 0, rmean_input, reduce_infer_input},
    {"", "ReduceMax", 1, 17, rmax_attr, reduce_infer_attr},
    {"", "ReduceMax", 18, 19, rmax_input, reduce_infer_input},
    {"", "ReduceMax", 20, 0, rmax_v20, reduce_infer_input},
    {"", "ReduceMin", 1, 17, rmin_attr, reduce_infer_attr},
    {"", "ReduceMin", 18, 19, rmin_input, reduce_infer_input},
    {"", "ReduceMin", 20, 0, rmin_v20, reduce_infer_input},
    {"", "ReduceProd", 1, 17, rprod_attr, reduce_infer_attr},
    {"", "ReduceProd", 18, 0, rprod_input, reduce_infer_input},
    {"", "ReduceL1", 1, 17, rl1_attr, reduce_infer_attr},
    {"", "ReduceL1", 18, 0, rl1_input, reduce_infer_input},
    {"", "ReduceL2", 1, 17, rl2_attr, reduce_infer_attr},
    {"", "ReduceL2", 18, 0, rl2_input, reduce_infer_input},
    {"", "ReduceLogSum", 1, 17, rlogsum_attr, reduce_infer_attr},
    {"", "ReduceLogSum", 18, 0, rlogsum_input, reduce_infer_input},
    {"", "ReduceLogSumExp", 1, 17, rlse_attr, reduce_infer_attr},
    {"", "ReduceLogSumExp", 18, 0, rlse_input, reduce_infer_input},
    {"", "ReduceSumSquare", 1, 17, rsumsq_attr, reduce_infer_attr},
    {"", "ReduceSumSquare", 18, 0, rsumsq_input, reduce_infer_input},
};
KILN_OP_FAMILY(reduce, ops);
