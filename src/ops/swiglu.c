/* SwiGLU (opset 28): Y = Swish_alpha(A) * B = A * sigmoid(alpha * A) * B,
 * A and B of one shape (no broadcasting). float32 computes in float; the
 * other float types through double, rounded once on the store. */
#include <math.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef struct swiglu_job {
    const void *a, *b;
    void *y;
    kiln_dtype dt;
    double alpha;
} swiglu_job;

/* x * sigmoid(al * x), without overflow in exp for large |al * x|. */
static inline double swish(double x, double al) {
    double t = al * x;
    return t >= 0 ? x / (1.0 + exp(-t)) : x * exp(t) / (1.0 + exp(t));
}

static void swiglu_range(void *arg, size_t begin, size_t end) {
    const swiglu_job *j = arg;
    if (j->dt == KILN_DTYPE_FLOAT) {
        const float *a = j->a, *b = j->b;
        float *y = j->y, al = (float)j->alpha;
        for (size_t i = begin; i < end; i++) {
            float x = a[i], t = al * x;
            float s = t >= 0 ? x / (1.0f + expf(-t)) : x * expf(t) / (1.0f + expf(t));
            y[i] = s * b[i];
        }
        return;
    }
    for (size_t i = begin; i < end; i++)
        kiln_store_f64(j->y, j->dt, (int64_t)i,
                       swish(kiln_load_f64(j->a, j->dt, (int64_t)i), j->alpha) * kiln_load_f64(j->b, j->dt, (int64_t)i));
}

static kiln_status swiglu_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *A = c->in[0], *B = c->in[1];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (B->dtype != A->dtype)
        return kiln_fail(KILN_ERR_INVALID, "A is %s but B is %s", kiln_dtype_name(A->dtype), kiln_dtype_name(B->dtype));
    bool same = A->rank == B->rank;
    for (int i = 0; same && i < A->rank; i++)
        same = A->dims[i] == B->dims[i];
    if (!same) {
        char sa[128], sb[128];
        return kiln_fail(KILN_ERR_INVALID, "A %s and B %s must have the same shape (SwiGLU does not broadcast)",
                         kiln_dims_str(A->rank, A->dims, sa, sizeof sa), kiln_dims_str(B->rank, B->dims, sb, sizeof sb));
    }
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, A->dtype, A->rank, A->dims, &Y));
    swiglu_job j = {A->data, B->data, Y->data, A->dtype, kiln_attr_float(c->node, "alpha", 1.0f)};
    if (Y->numel > 0)
        kiln_parallel_for(c, (size_t)Y->numel, 16384, swiglu_range, &j);
    return KILN_OK;
}

/* Shape rule: A's type and shape (B must match it). */
static const kiln_op_desc ops[] = {
    {"", "SwiGLU", 28, 0, swiglu_exec, kiln_infer_same},
};
KILN_OP_FAMILY(swiglu, ops);
