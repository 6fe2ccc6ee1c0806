/* Det (opset 11): determinant of the trailing [M, M] matrices of X
 * ([*, M, M] -> [*]), by LU decomposition with partial pivoting in double. */
#include <math.h>
#include <stdlib.h>

#include "kernels/valio.h"
#include "ops/op.h"

static kiln_status det_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, 4));
    const kiln_tensor *x = c->in[0];
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2]) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID, "X must be [*, M, M], got %s", kiln_dims_str(x->rank, x->dims, s, sizeof s));
    }
    int64_t M = x->dims[x->rank - 1];
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank - 2, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    size_t mm;
    if (kiln_mul_overflow_size((size_t)M, (size_t)M, &mm) || kiln_mul_overflow_size(mm, sizeof(double), &mm))
        return kiln_fail(KILN_ERR_INVALID, "matrix is too large");
    double *a = kiln_malloc(mm ? mm : 1);
    if (!a)
        return KILN_ERR_NOMEM;
    for (int64_t b = 0; b < y->numel; b++) {
        for (int64_t i = 0; i < M * M; i++)
            a[i] = kiln_load_f64(x->data, x->dtype, b * M * M + i);
        double det = 1.0;
        for (int64_t k = 0; k < M && det != 0.0; k++) {
            int64_t p = k;
            for (int64_t i = k + 1; i < M; i++)
                if (fabs(a[i * M + k]) > fabs(a[p * M + k]))
                    p = i;
            if (a[p * M + k] == 0.0) {
                det = 0.0;
                break;
            }
            if (p != k) {
                for (int64_t j = 0; j < M; j++) {
                    double t = a[k * M + j];
                    a[k * M + j] = a[p * M + j];
                    a[p * M + j] = t;
                }
                det = -det;
            }
            double piv = a[k * M + k];
            det *= piv;
            for (int64_t i = k + 1; i < M; i++) {
                double f = a[i * M + k] / piv;
                for (int64_t j = k + 1; j < M; j++)
                    a[i * M + j] -= f * a[k * M + j];
            }
        }
        kiln_store_f64(y->data, y->dtype, b, det);
    }
    free(a);
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Det", 11, 0, det_exec},
};
KILN_OP_FAMILY(det, ops);
