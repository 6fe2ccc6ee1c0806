/* ArgMax ArgMin: int64 indices along one axis; keepdims, and (opset 12+)
 * select_last_index picking the last of equal extremes instead of the first. */
#include "ops/op.h"
#include "kernels/reduce.h"

#define ARG_BLK 256

typedef struct arg_job {
    const void *x;
    int64_t *y;
    kiln_dtype dt;
    int64_t outer, r, inner, nblk;
    bool is_max, last;
} arg_job;

/* `better(v, b)`: v replaces the current best; with `last`, ties replace too. */
#define ARG_FN(NAME, T, LOAD, VT)                                                      \
    static void NAME(const arg_job *j, int64_t o, int64_t i0, int64_t w) {              \
        const T *x = (const T *)j->x + o * j->r * j->inner + i0;                        \
        int64_t *y = j->y + o * j->inner + i0, S = j->inner;                            \
        VT best[ARG_BLK];                                                               \
        for (int64_t i = 0; i < w; i++) {                                               \
            best[i] = LOAD(x[i]);                                                       \
            y[i] = 0;                                                                   \
        }                                                                               \
        for (int64_t r = 1; r < j->r; r++) {                                            \
            const T *p = x + r * S;                                                     \
            if (j->is_max && !j->last) {                                                \
                for (int64_t i = 0; i < w; i++) {                                       \
                    VT v = LOAD(p[i]);                                                  \
                    if (v > best[i]) { best[i] = v; y[i] = r; }                         \
                }                                                                       \
            } else if (j->is_max) {                                                     \
                for (int64_t i = 0; i < w; i++) {                                       \
                    VT v = LOAD(p[i]);                                                  \
                    if (v >= best[i]) { best[i] = v; y[i] = r; }                        \
                }                                                                       \
            } else if (!j->last) {                                                      \
                for (int64_t i = 0; i < w; i++) {                                       \
                    VT v = LOAD(p[i]);                                                  \
                    if (v < best[i]) { best[i] = v; y[i] = r; }                         \
                }                                                                       \
            } else {                                                                    \
                for (int64_t i = 0; i < w; i++) {                                       \
                    VT v = LOAD(p[i]);                                                  \
                    if (v <= best[i]) { best[i] = v; y[i] = r; }                        \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

#define ID(v) (v)
ARG_FN(arg_f32, float, ID, float)
ARG_FN(arg_f64, double, ID, double)
ARG_FN(arg_f16, uint16_t, kiln_half_to_float, float)
ARG_FN(arg_bf16, uint16_t, kiln_bf16_to_float, float)
ARG_FN(arg_i8, int8_t, ID, int8_t)
ARG_FN(arg_i16, int16_t, ID, int16_t)
ARG_FN(arg_i32, int32_t, ID, int32_t)
ARG_FN(arg_i64, int64_t, ID, int64_t)
ARG_FN(arg_u8, uint8_t, ID, uint8_t)
ARG_FN(arg_u16, uint16_t, ID, uint16_t)
ARG_FN(arg_u32, uint32_t, ID, uint32_t)
ARG_FN(arg_u64, uint64_t, ID, uint64_t)

static void arg_range(void *arg, size_t begin, size_t end) {
    const arg_job *j = arg;
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / j->nblk, i0 = ((int64_t)t % j->nblk) * ARG_BLK;
        int64_t w = j->inner - i0 < ARG_BLK ? j->inner - i0 : ARG_BLK;
        switch (j->dt) {
        case KILN_DTYPE_FLOAT: arg_f32(j, o, i0, w); break;
        case KILN_DTYPE_DOUBLE: arg_f64(j, o, i0, w); break;
        case KILN_DTYPE_FLOAT16: arg_f16(j, o, i0, w); break;
        case KILN_DTYPE_BFLOAT16: arg_bf16(j, o, i0, w); break;
        case KILN_DTYPE_INT8: arg_i8(j, o, i0, w); break;
        case KILN_DTYPE_INT16: arg_i16(j, o, i0, w); break;
        case KILN_DTYPE_INT32: arg_i32(j, o, i0, w); break;
        case KILN_DTYPE_INT64: arg_i64(j, o, i0, w); break;
        case KILN_DTYPE_UINT8: arg_u8(j, o, i0, w); break;
        case KILN_DTYPE_UINT16: arg_u16(j, o, i0, w); break;
        case KILN_DTYPE_UINT32: arg_u32(j, o, i0, w); break;
        case KILN_DTYPE_UINT64: arg_u64(j, o, i0, w); break;
        default: break;
        }
    }
}

static kiln_status arg_exec(kiln_op_ctx *c, bool is_max) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (!kiln_reduce_dtype_ok(x->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input 'data' has element type %s, which is not supported",
                         kiln_dtype_name(x->dtype));
    if (x->rank == 0)
        return kiln_fail(KILN_ERR_INVALID, "input 'data' must have rank >= 1");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
    int64_t keepdims = kiln_attr_int(c->node, "keepdims", 1);
    bool last = c->opset >= 12 && kiln_attr_int(c->node, "select_last_index", 0) != 0;
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (d != axis)
            dims[rank++] = x->dims[d];
        else if (keepdims)
            dims[rank++] = 1;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_INT64, rank, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    if (x->dims[axis] == 0)
        return kiln_fail(KILN_ERR_INVALID, "cannot take the arg%s over axis %d of size 0", is_max ? "max" : "min",
                         axis);
    arg_job j = {x->data, y->data, x->dtype, kiln_dims_prod(x->dims, 0, axis), x->dims[axis],
                 kiln_dims_prod(x->dims, axis + 1, x->rank), 0, is_max, last};
    j.nblk = (j.inner + ARG_BLK - 1) / ARG_BLK;
    int64_t per = j.r * (j.inner < ARG_BLK ? j.inner : ARG_BLK);
    kiln_parallel_for(c, (size_t)(j.outer * j.nblk), per >= 32768 ? 1 : (size_t)(32768 / per), arg_range, &j);
    return KILN_OK;
}

static kiln_status argmax_exec(kiln_op_ctx *c) { return arg_exec(c, true); }
static kiln_status argmin_exec(kiln_op_ctx *c) { return arg_exec(c, false); }

/* Shape rule: the axis removed (or kept as 1), int64. */
static kiln_status argminmax_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = KILN_DTYPE_INT64;
    if (X->rank < 0)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", 0), X->rank);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    bool mask[KILN_MAX_RANK] = {false};
    mask[a] = true;
    int src[KILN_MAX_RANK];
    o->rank = kiln_reduce_shape(X->rank, mask, kiln_attr_int(x->node, "keepdims", 1) != 0, src);
    for (int d = 0; d < o->rank; d++)
        o->dims[d] = src[d] < 0 ? kiln_sd_const(1) : X->dims[src[d]];
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "ArgMax", 1, 0, argmax_exec, argminmax_infer},
    {"", "ArgMin", 1, 0, argmin_exec, argminmax_infer},
};
KILN_OP_FAMILY(argminmax, ops);
