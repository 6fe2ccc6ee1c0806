/* CumSum (opset 11, 14) and CumProd (26): running sum or product along the
 * axis given as a scalar input; `exclusive` shifts by one (first output the
 * identity, 0 or 1), `reverse` runs from the end. */
#include "ops/op.h"
#include "kernels/reduce.h"

#define CS_BLK 256

typedef struct cs_job {
    const void *x;
    void *y;
    kiln_dtype dt;
    int64_t outer, r, inner, nblk;
    bool exclusive, reverse, prod;
} cs_job;

/* Floats accumulate in their own precision, like a sequential numpy cumsum
 * or cumprod; integers wrap through uint64_t. */
#define CS_FN(NAME, T, A, LOAD, STORE, ADD, INIT)                                     \
    static void NAME(const cs_job *j, int64_t o, int64_t i0, int64_t w) {              \
        const T *x = (const T *)j->x + o * j->r * j->inner + i0;                       \
        T *y = (T *)j->y + o * j->r * j->inner + i0;                                   \
        int64_t S = j->inner, R = j->r;                                                \
        A acc[CS_BLK];                                                                 \
        for (int64_t i = 0; i < w; i++)                                                \
            acc[i] = INIT;                                                             \
        for (int64_t k = 0; k < R; k++) {                                              \
            int64_t r = j->reverse ? R - 1 - k : k;                                    \
            const T *p = x + r * S;                                                    \
            T *q = y + r * S;                                                          \
            if (j->exclusive)                                                          \
                for (int64_t i = 0; i < w; i++) {                                      \
                    q[i] = STORE(acc[i]);                                              \
                    acc[i] = ADD(acc[i], LOAD(p[i]));                                  \
                }                                                                      \
            else                                                                       \
                for (int64_t i = 0; i < w; i++) {                                      \
                    acc[i] = ADD(acc[i], LOAD(p[i]));                                  \
                    q[i] = STORE(acc[i]);                                              \
                }                                                                      \
        }                                                                              \
    }

#define ID(v) (v)
#define FADD(a, b) ((a) + (b))
#define WADD(a, b) ((uint64_t)(a) + (uint64_t)(b))
#define FMUL(a, b) ((a) * (b))
#define WMUL(a, b) ((uint64_t)(a) * (uint64_t)(b))
#define ST_F16(v) kiln_float_to_half(v)
#define ST_BF16(v) kiln_float_to_bf16(v)
#define ST_I32(v) ((int32_t)(v))
#define ST_U32(v) ((uint32_t)(v))
#define ST_I64(v) ((int64_t)(v))
CS_FN(cs_f32, float, float, ID, ID, FADD, 0)
CS_FN(cp_f32, float, float, ID, ID, FMUL, 1)
CS_FN(cs_f64, double, double, ID, ID, FADD, 0)
CS_FN(cp_f64, double, double, ID, ID, FMUL, 1)
CS_FN(cs_f16, uint16_t, float, kiln_half_to_float, ST_F16, FADD, 0)
CS_FN(cp_f16, uint16_t, float, kiln_half_to_float, ST_F16, FMUL, 1)
CS_FN(cs_bf16, uint16_t, float, kiln_bf16_to_float, ST_BF16, FADD, 0)
CS_FN(cp_bf16, uint16_t, float, kiln_bf16_to_float, ST_BF16, FMUL, 1)
CS_FN(cs_i32, int32_t, uint64_t, ID, ST_I32, WADD, 0)
CS_FN(cp_i32, int32_t, uint64_t, ID, ST_I32, WMUL, 1)
CS_FN(cs_i64, int64_t, uint64_t, ID, ST_I64, WADD, 0)
CS_FN(cp_i64, int64_t, uint64_t, ID, ST_I64, WMUL, 1)
CS_FN(cs_u32, uint32_t, uint64_t, ID, ST_U32, WADD, 0)
CS_FN(cp_u32, uint32_t, uint64_t, ID, ST_U32, WMUL, 1)
CS_FN(cs_u64, uint64_t, uint64_t, ID, ID, WADD, 0)
CS_FN(cp_u64, uint64_t, uint64_t, ID, ID, WMUL, 1)

static void cs_range(void *arg, size_t begin, size_t end) {
    const cs_job *j = arg;
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / j->nblk, i0 = ((int64_t)t % j->nblk) * CS_BLK;
        int64_t w = j->inner - i0 < CS_BLK ? j->inner - i0 : CS_BLK;
        if (j->prod) {
            switch (j->dt) {
            case KILN_DTYPE_FLOAT: cp_f32(j, o, i0, w); break;
            case KILN_DTYPE_DOUBLE: cp_f64(j, o, i0, w); break;
            case KILN_DTYPE_FLOAT16: cp_f16(j, o, i0, w); break;
            case KILN_DTYPE_BFLOAT16: cp_bf16(j, o, i0, w); break;
            case KILN_DTYPE_INT32: cp_i32(j, o, i0, w); break;
            case KILN_DTYPE_INT64: cp_i64(j, o, i0, w); break;
            case KILN_DTYPE_UINT32: cp_u32(j, o, i0, w); break;
            case KILN_DTYPE_UINT64: cp_u64(j, o, i0, w); break;
            default: break;
            }
            continue;
        }
        switch (j->dt) {
#define CS_CASE(DT, SFX)                                                         \
    case DT:                                                                     \
        if (j->prod)                                                             \
            cp_##SFX(j, o, i0, w);                                               \
        else                                                                     \
            cs_##SFX(j, o, i0, w);                                               \
        break;
            CS_CASE(KILN_DTYPE_FLOAT, f32)
            CS_CASE(KILN_DTYPE_DOUBLE, f64)
            CS_CASE(KILN_DTYPE_FLOAT16, f16)
            CS_CASE(KILN_DTYPE_BFLOAT16, bf16)
            CS_CASE(KILN_DTYPE_INT32, i32)
            CS_CASE(KILN_DTYPE_INT64, i64)
            CS_CASE(KILN_DTYPE_UINT32, u32)
            CS_CASE(KILN_DTYPE_UINT64, u64)
#undef CS_CASE
        default: break;
        }
    }
}

static kiln_status cum_exec(kiln_op_ctx *c, bool prod) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *a = c->in[1];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                    KILN_DTYPE_INT32, KILN_DTYPE_INT64,  KILN_DTYPE_UINT32,  KILN_DTYPE_UINT64};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if ((a->dtype != KILN_DTYPE_INT32 && a->dtype != KILN_DTYPE_INT64) || a->numel != 1 || a->rank > 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'axis' must be an int32 or int64 scalar");
    if (x->rank == 0)
        return kiln_fail(KILN_ERR_INVALID, "input 'x' must have rank >= 1");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_tensor_get_i64(a, 0), x->rank, &axis));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    cs_job j = {x->data, y->data, x->dtype, kiln_dims_prod(x->dims, 0, axis), x->dims[axis],
                kiln_dims_prod(x->dims, axis + 1, x->rank), 0,
                kiln_attr_int(c->node, "exclusive", 0) != 0, kiln_attr_int(c->node, "reverse", 0) != 0, prod};
    j.nblk = (j.inner + CS_BLK - 1) / CS_BLK;
    int64_t per = j.r * (j.inner < CS_BLK ? j.inner : CS_BLK);
    kiln_parallel_for(c, (size_t)(j.outer * j.nblk), per >= 32768 ? 1 : (size_t)(32768 / per), cs_range, &j);
    return KILN_OK;
}

static kiln_status cumsum_exec(kiln_op_ctx *c) { return cum_exec(c, false); }
static kiln_status cumprod_exec(kiln_op_ctx *c) { return cum_exec(c, true); }

static const kiln_op_desc ops[] = {
    {"", "CumSum", 11, 0, cumsum_exec, kiln_infer_same},
    {"", "CumProd", 26, 0, cumprod_exec, kiln_infer_same},
};
KILN_OP_FAMILY(cumsum, ops);
