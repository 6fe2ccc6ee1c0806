/* Softmax LogSoftmax Hardmax.
 *
 * Before opset 13 the input is coerced to 2-D at `axis` (default 1): every
 * axis from `axis` on is one row. From opset 13 the operation runs along the
 * single axis `axis` (default -1). Softmax subtracts the maximum first so
 * large inputs do not overflow. */
#include <math.h>

#include "ops/op.h"
#include "kernels/elementwise_math.h"
#include "kernels/reduce.h"

#define SM_BLK 256

typedef enum { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX } sm_kind;

typedef struct sm_job {
    const void *x;
    void *y;
    kiln_dtype dt;
    sm_kind kind;
    int64_t outer, r, inner, nblk;
} sm_job;

/* ROUND: the element type's rounding. Softmax-13 is defined by its function
 * body (Sub, Exp, ReduceSum, Div in T), so float16 and bfloat16 round after
 * each step: x - max, exp, the division; ACC_ROUND rounds the running sum
 * (bfloat16 sums in bfloat16, element after element; float16 sums in float
 * and rounds once, as the reference's numpy reductions do). */
#define SM_FN(NAME, T, LOAD, STORE, ROUND, ACC_ROUND)                                    \
    static void NAME(const sm_job *j, int64_t o, int64_t i0, int64_t w) {                  \
        const T *x = (const T *)j->x + o * j->r * j->inner + i0;                          \
        T *y = (T *)j->y + o * j->r * j->inner + i0;                                      \
        int64_t S = j->inner, R = j->r;                                                   \
        double mx[SM_BLK], sum[SM_BLK];                                                   \
        int64_t arg[SM_BLK];                                                              \
        for (int64_t i = 0; i < w; i++) {                                                 \
            mx[i] = (double)LOAD(x[i]);                                                   \
            arg[i] = 0;                                                                   \
            sum[i] = 0.0;                                                                 \
        }                                                                                 \
        for (int64_t r = 1; r < R; r++)                                                   \
            for (int64_t i = 0; i < w; i++) {                                             \
                double v = (double)LOAD(x[r * S + i]);                                    \
                if (v > mx[i]) {                                                          \
                    mx[i] = v;                                                            \
                    arg[i] = r;                                                           \
                }                                                                         \
            }                                                                             \
        if (j->kind == SM_HARDMAX) {                                                      \
            for (int64_t r = 0; r < R; r++)                                               \
                for (int64_t i = 0; i < w; i++)                                           \
                    y[r * S + i] = STORE(arg[i] == r ? 1.0 : 0.0);                        \
            return;                                                                       \
        }                                                                                 \
        if (j->kind == SM_SOFTMAX) {                                                      \
            for (int64_t r = 0; r < R; r++)                                               \
                for (int64_t i = 0; i < w; i++)                                           \
                    sum[i] = ACC_ROUND(sum[i] + ROUND(exp(ROUND((double)LOAD(x[r * S + i]) - mx[i])))); \
            for (int64_t i = 0; i < w; i++)                                               \
                sum[i] = ROUND(sum[i]);                                                   \
            for (int64_t r = 0; r < R; r++)                                               \
                for (int64_t i = 0; i < w; i++)                                           \
                    y[r * S + i] = STORE(ROUND(exp(ROUND((double)LOAD(x[r * S + i]) - mx[i]))) / sum[i]); \
        } else {                                                                          \
            for (int64_t r = 0; r < R; r++)                                               \
                for (int64_t i = 0; i < w; i++)                                           \
                    sum[i] += exp((double)LOAD(x[r * S + i]) - mx[i]);                    \
            for (int64_t i = 0; i < w; i++)                                               \
                sum[i] = log(sum[i]);                                                     \
            for (int64_t r = 0; r < R; r++)                                               \
                for (int64_t i = 0; i < w; i++)                                           \
                    y[r * S + i] = STORE(((double)LOAD(x[r * S + i]) - mx[i]) - sum[i]);  \
        }                                                                                 \
    }

/* One contiguous float32 row (axis is the last one): the common case. */
/* A float32 row: vector max, kiln_vexp_f32 over x - max written into y, and
 * the sum in eight float lanes per block of 1024, blocks added in double
 * (long rows, vocabularies, keep their precision). */
KILN_CLONES static void sm_row_f32(const sm_job *j, int64_t o) {
    const float *x = (const float *)j->x + o * j->r;
    float *y = (float *)j->y + o * j->r;
    int64_t R = j->r, arg = 0;
    float mx = x[0];
    if (j->kind == SM_HARDMAX) {
        for (int64_t r = 1; r < R; r++)
            if (x[r] > mx) {
                mx = x[r];
                arg = r;
            }
        for (int64_t r = 0; r < R; r++)
            y[r] = r == arg ? 1.0f : 0.0f;
        return;
    }
    {
        float m8[8];
        int64_t r = 0;
        for (int k = 0; k < 8; k++)
            m8[k] = x[0];
        for (; r + 8 <= R; r += 8)
            for (int k = 0; k < 8; k++)
                m8[k] = x[r + k] > m8[k] ? x[r + k] : m8[k];
        for (int k = 0; k < 8; k++)
            mx = m8[k] > mx ? m8[k] : mx;
        for (; r < R; r++)
            mx = x[r] > mx ? x[r] : mx;
        /* a NaN element is skipped here but makes the sum, so every
         * output, NaN */
    }
    double sum = 0.0;
    for (int64_t b = 0; b < R; b += 1024) {
        int64_t n = R - b < 1024 ? R - b : 1024, r = 0;
        float *yb = y + b;
        const float *xb = x + b;
        /* below -87 the exponential is subnormal (under FLT_MIN), a slow
         * path in the multiplier; its share of the sum is below float
         * resolution, so it is taken as 0 */
        for (int64_t i = 0; i < n; i++) {
            float t = xb[i] - mx;
            yb[i] = t < -87.0f ? -INFINITY : t;
        }
        kiln_vexp_f32(yb, yb, (size_t)n);
        float s8[8] = {0};
        for (; r + 8 <= n; r += 8)
            for (int k = 0; k < 8; k++)
                s8[k] += yb[r + k];
        double bs = 0.0;
        for (int k = 0; k < 8; k++)
            bs += s8[k];
        for (; r < n; r++)
            bs += yb[r];
        sum += bs;
    }
    if (j->kind == SM_SOFTMAX) {
        float inv = (float)(1.0 / sum);
        for (int64_t r = 0; r < R; r++)
            y[r] *= inv;
    } else {
        float ls = (float)log(sum);
        for (int64_t r = 0; r < R; r++)
            y[r] = (x[r] - mx) - ls;
    }
}

/* float32 blocks in single precision: expf is much cheaper than exp. */
KILN_CLONES static void sm_f32(const sm_job *j, int64_t o, int64_t i0, int64_t w) {
    if (j->inner == 1) {
        sm_row_f32(j, o);
        return;
    }
    const float *x = (const float *)j->x + o * j->r * j->inner + i0;
    float *y = (float *)j->y + o * j->r * j->inner + i0;
    int64_t S = j->inner, R = j->r;
    float mx[SM_BLK];
    double sum[SM_BLK];
    int64_t arg[SM_BLK];
    for (int64_t i = 0; i < w; i++) {
        mx[i] = x[i];
        arg[i] = 0;
        sum[i] = 0.0;
    }
    for (int64_t r = 1; r < R; r++)
        for (int64_t i = 0; i < w; i++)
            if (x[r * S + i] > mx[i]) {
                mx[i] = x[r * S + i];
                arg[i] = r;
            }
    if (j->kind == SM_HARDMAX) {
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < w; i++)
                y[r * S + i] = arg[i] == r ? 1.0f : 0.0f;
        return;
    }
    if (j->kind == SM_SOFTMAX) {
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < w; i++) {
                float e = expf(x[r * S + i] - mx[i]);
                y[r * S + i] = e;
                sum[i] += e;
            }
        float inv[SM_BLK];
        for (int64_t i = 0; i < w; i++)
            inv[i] = (float)(1.0 / sum[i]);
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < w; i++)
                y[r * S + i] *= inv[i];
    } else {
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < w; i++)
                sum[i] += expf(x[r * S + i] - mx[i]);
        float sub[SM_BLK];
        for (int64_t i = 0; i < w; i++)
            sub[i] = (float)log(sum[i]);
        /* (x - max) - log(sum): exact 0 - tiny for the maximum, not lost in max's rounding */
        for (int64_t r = 0; r < R; r++)
            for (int64_t i = 0; i < w; i++)
                y[r * S + i] = (x[r * S + i] - mx[i]) - sub[i];
    }
}

#define ID(v) (v)
static inline uint16_t st_f16(double v) { return kiln_float_to_half((float)v); }
static inline uint16_t st_bf16(double v) { return kiln_float_to_bf16((float)v); }
static inline double rd_f16(double v) { return kiln_half_to_float(kiln_float_to_half((float)v)); }
static inline double rd_bf16(double v) { return kiln_bf16_to_float(kiln_float_to_bf16((float)v)); }
static inline double rd_f32(double v) { return (float)v; }
SM_FN(sm_f64, double, ID, ID, ID, ID)
SM_FN(sm_f16, uint16_t, kiln_half_to_float, st_f16, rd_f16, rd_f32)
SM_FN(sm_bf16, uint16_t, kiln_bf16_to_float, st_bf16, rd_bf16, rd_bf16)

static void sm_range(void *arg, size_t begin, size_t end) {
    const sm_job *j = arg;
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / j->nblk, i0 = ((int64_t)t % j->nblk) * SM_BLK;
        int64_t w = j->inner - i0 < SM_BLK ? j->inner - i0 : SM_BLK;
        switch (j->dt) {
        case KILN_DTYPE_FLOAT: sm_f32(j, o, i0, w); break;
        case KILN_DTYPE_DOUBLE: sm_f64(j, o, i0, w); break;
        case KILN_DTYPE_FLOAT16: sm_f16(j, o, i0, w); break;
        case KILN_DTYPE_BFLOAT16: sm_bf16(j, o, i0, w); break;
        default: break;
        }
    }
}

static kiln_status sm_exec(kiln_op_ctx *c, sm_kind kind) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    bool coerce = c->opset < 13;
    int64_t axis_attr = kiln_attr_int(c->node, "axis", coerce ? 1 : -1);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    sm_job j = {x->data, y->data, x->dtype, kind, 1, 1, 1, 1};
    if (x->rank > 0) {
        int axis;
        if (coerce) {
            /* axis may equal rank here: the 2-D view is [N, 1] */
            int64_t a = axis_attr < 0 ? axis_attr + x->rank : axis_attr;
            if (a < 0 || a > x->rank)
                return kiln_fail(KILN_ERR_INVALID, "attribute 'axis' %lld is out of range for rank %d",
                                 (long long)axis_attr, x->rank);
            axis = (int)a;
            j.outer = kiln_dims_prod(x->dims, 0, axis);
            j.r = kiln_dims_prod(x->dims, axis, x->rank);
        } else {
            KILN_TRY(kiln_op_axis(c, axis_attr, x->rank, &axis));
            j.outer = kiln_dims_prod(x->dims, 0, axis);
            j.r = x->dims[axis];
            j.inner = kiln_dims_prod(x->dims, axis + 1, x->rank);
        }
    }
    j.nblk = (j.inner + SM_BLK - 1) / SM_BLK;
    int64_t per = j.r * (j.inner < SM_BLK ? j.inner : SM_BLK);
    kiln_parallel_for(c, (size_t)(j.outer * j.nblk), per >= 8192 ? 1 : (size_t)(8192 / per), sm_range, &j);
    return KILN_OK;
}

static kiln_status softmax_exec(kiln_op_ctx *c) { return sm_exec(c, SM_SOFTMAX); }
static kiln_status logsoftmax_exec(kiln_op_ctx *c) { return sm_exec(c, SM_LOGSOFTMAX); }
static kiln_status hardmax_exec(kiln_op_ctx *c) { return sm_exec(c, SM_HARDMAX); }

static const kiln_op_desc ops[] = {
    {"", "Softmax", 1, 0, softmax_exec, kiln_infer_same},
    {"", "LogSoftmax", 1, 0, logsoftmax_exec, kiln_infer_same},
};
KILN_OP_FAMILY(softmax, ops);

/* Hardmax is listed with the reduce family. */
static const kiln_op_desc hardmax_ops[] = {
    {"", "Hardmax", 1, 0, hardmax_exec, kiln_infer_same},
};
KILN_OP_FAMILY(hardmax, hardmax_ops);
