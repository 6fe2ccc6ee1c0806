/* Shrink (opset 9): y = x + bias where x < -lambd, x - bias where
 * x > lambd, else 0. All numeric types; integers compute in double and
 * convert back (values stay in range for the usual small bias). */
#include "kernels/valio.h"
#include "ops/op.h"

static kiln_status shrink_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT,  KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_INT8,
                                    KILN_DTYPE_INT16,  KILN_DTYPE_INT32,  KILN_DTYPE_INT64,   KILN_DTYPE_UINT8,
                                    KILN_DTYPE_UINT16, KILN_DTYPE_UINT32, KILN_DTYPE_UINT64};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    const kiln_tensor *x = c->in[0];
    double lambd = kiln_attr_float(c->node, "lambd", 0.5f), bias = kiln_attr_float(c->node, "bias", 0.0f);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, x->dtype, x->rank, x->dims, &y));
    for (int64_t i = 0; i < x->numel; i++) {
        double v = kiln_load_f64(x->data, x->dtype, i);
        double r = v < -lambd ? v + bias : v > lambd ? v - bias : 0.0;
        kiln_store_any(y->data, y->dtype, i, r);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Shrink", 9, 0, shrink_exec, kiln_infer_same},
};
KILN_OP_FAMILY(shrink, ops);
