/* Det (opset 11): determinant of each trailing [M, M] matrix, by LU
 * factorisation with partial pivoting in double precision. */
#include <math.h>
#include <stdlib.h>

#include "ops/op.h"
#include "kernels/reduce.h"

typedef struct det_job {
    const kiln_tensor *x;
    kiln_tensor *y;
    int64_t m;
    int failed;
} det_job;

static double det_ld(const kiln_tensor *t, int64_t i) {
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT: return ((const float *)t->data)[i];
    case KILN_DTYPE_DOUBLE: return ((const double *)t->data)[i];
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(((const uint16_t *)t->data)[i]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(((const uint16_t *)t->data)[i]);
    default: return 0;
    }
}

static void det_range(void *arg, size_t begin, size_t end) {
    det_job *j = arg;
    int64_t m = j->m;
    double *a = malloc((size_t)(m > 0 ? m * m : 1) * sizeof(double));
    if (!a) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t b = begin; b < end; b++) {
        for (int64_t i = 0; i < m * m; i++)
            a[i] = det_ld(j->x, (int64_t)b * m * m + i);
        double det = 1.0;
        for (int64_t k = 0; k < m; k++) {
            int64_t p = k;
            for (int64_t i = k + 1; i < m; i++)
                if (fabs(a[i * m + k]) > fabs(a[p * m + k]))
                    p = i;
            if (a[p * m + k] == 0.0) {
                det = 0.0;
                break;
            }
            if (p != k) {
                for (int64_t c = 0; c < m; c++) {
                    double t = a[k * m + c];
                    a[k * m + c] = a[p * m + c];
                    a[p * m + c] = t;
                }
                det = -det;
            }
            double piv = a[k * m + k];
            det *= piv;
            for (int64_t i = k + 1; i < m; i++) {
                double f = a[i * m + k] / piv;
                for (int64_t c = k + 1; c < m; c++)
                    a[i * m + c] -= f * a[k * m + c];
            }
        }
        switch (j->y->dtype) {
        case KILN_DTYPE_FLOAT: ((float *)j->y->data)[b] = (float)det; break;
        case KILN_DTYPE_DOUBLE: ((double *)j->y->data)[b] = det; break;
        case KILN_DTYPE_FLOAT16: ((uint16_t *)j->y->data)[b] = kiln_float_to_half((float)det); break;
        case KILN_DTYPE_BFLOAT16: ((uint16_t *)j->y->data)[b] = kiln_float_to_bf16((float)det); break;
        default: break;
        }
    }
    free(a);
}

static kiln_status det_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2]) {
        char b[128];
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must end in a square matrix [*, M, M], has shape %s",
                         kiln_dims_str(x->rank, x->dims, b, sizeof b));
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank - 2, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    det_job j = {x, y, x->dims[x->rank - 1], 0};
    int64_t per = j.m * j.m * j.m;
    kiln_parallel_for(c, (size_t)y->numel, per >= 65536 ? 1 : (size_t)(65536 / (per ? per : 1)), det_range, &j);
    if (j.failed)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory for a %lld x %lld matrix", (long long)j.m, (long long)j.m);
    return KILN_OK;
}

/* Shape rule: [..., M, M] -> [...]. */
static kiln_status det_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = X->dt;
    if (X->rank >= 2) {
        kiln_infer_copy_shape(&x->out[0], X, false);
        x->out[0].rank -= 2;
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Det", 11, 0, det_exec, det_infer},
};
KILN_OP_FAMILY(det, ops);
