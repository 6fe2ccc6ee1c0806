/* Axis reductions and the shape splits shared by reduce-like operators
 * (Reduce*, ArgMax, Softmax, CumSum, normalisations): a tensor seen as
 * [outer, r, inner] around the reduced axes, and a strided copy used to bring
 * scattered reduced axes together. */
#ifndef KILN_KERNELS_REDUCE_H
#define KILN_KERNELS_REDUCE_H

#include "ir/ir.h"
#include "kernels/par.h"

typedef enum kiln_red_op {
    KILN_RED_SUM,
    KILN_RED_MEAN,
    KILN_RED_PROD,
    KILN_RED_MAX,
    KILN_RED_MIN,
    KILN_RED_L1,
    KILN_RED_L2,
    KILN_RED_SUMSQ,
    KILN_RED_LOGSUM,
    KILN_RED_LOGSUMEXP
} kiln_red_op;

/* Whether the dtype is one kiln_reduce handles. */
bool kiln_reduce_dtype_ok(kiln_dtype dt);

/* Reduces x over the axes where mask[axis] is true into y (same dtype, numel =
 * product of the kept dims; y's shape is the caller's choice). An empty
 * reduced set of elements gives the op's identity (sum 0, prod 1, max the
 * lowest value, logsum -inf, mean NaN or 0 for integers). */
kiln_status kiln_reduce(kiln_threads *pool, kiln_red_op op, const kiln_tensor *x, const bool *mask, kiln_tensor *y);

/* Product of dims[a..b). */
int64_t kiln_dims_prod(const int64_t *dims, int a, int b);

/* Strided copies and contiguous strides live in kernels/tensor_copy.h. */
#include "kernels/tensor_copy.h"

#endif
