/* Identity and Dropout (inference). Both view the input's buffer; Dropout's
 * optional mask is all true (opset 10+: bool; opsets 7-9: the input's type,
 * all ones). Training mode (opset 12+ input) is served only with ratio 0,
 * where it is deterministic; otherwise its output would be random. */
#include <string.h>

#include "ops/op.h"

static kiln_status identity_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->kind != KILN_VALUE_TENSOR) /* sequences (opset 14+) and optionals (16+) */
        return kiln_op_output_share(c, 0, x);
    return kiln_op_output_alias(c, 0, x, x->rank, x->dims);
}

static kiln_status fill_ones(kiln_tensor *m) {
    if (m->numel == 0)
        return KILN_OK;
    switch (m->dtype) {
    case KILN_DTYPE_BOOL: memset(m->data, 1, (size_t)m->numel); break;
    case KILN_DTYPE_FLOAT:
        for (int64_t i = 0; i < m->numel; i++)
            ((float *)m->data)[i] = 1.0f;
        break;
    case KILN_DTYPE_DOUBLE:
        for (int64_t i = 0; i < m->numel; i++)
            ((double *)m->data)[i] = 1.0;
        break;
    case KILN_DTYPE_FLOAT16:
        for (int64_t i = 0; i < m->numel; i++)
            ((uint16_t *)m->data)[i] = 0x3c00;
        break;
    case KILN_DTYPE_BFLOAT16:
        for (int64_t i = 0; i < m->numel; i++)
            ((uint16_t *)m->data)[i] = 0x3f80;
        break;
    default: return kiln_fail(KILN_ERR_UNSUPPORTED, "mask of element type %s", kiln_dtype_name(m->dtype));
    }
    return KILN_OK;
}

static kiln_status dropout_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (c->opset >= 12) {
        const kiln_tensor *ratio = kiln_op_in(c, 1), *training = kiln_op_in(c, 2);
        double r = 0.5;
        if (ratio) {
            if (ratio->numel != 1 || !(ratio->dtype == KILN_DTYPE_FLOAT || ratio->dtype == KILN_DTYPE_DOUBLE ||
                                       ratio->dtype == KILN_DTYPE_FLOAT16))
                return kiln_fail(KILN_ERR_INVALID, "input 'ratio' must be a float scalar");
            r = kiln_tensor_get_f64(ratio, 0);
        }
        bool train = false;
        if (training) {
            if (training->dtype != KILN_DTYPE_BOOL || training->numel != 1)
                return kiln_fail(KILN_ERR_INVALID, "input 'training_mode' must be a bool scalar");
            train = ((const uint8_t *)training->data)[0] != 0;
        }
        if (train && r != 0)
            return kiln_fail(KILN_ERR_UNSUPPORTED,
                             "training_mode is true with ratio %g: random dropout is not supported (inference only)", r);
    } else if (c->opset < 7 && kiln_attr_int(c->node, "is_test", 0) == 0) {
        /* Dropout-6 with is_test=0 asks for training behaviour; kiln runs
         * models for inference and treats it as is_test=1. */
    }
    KILN_TRY(kiln_op_output_alias(c, 0, x, x->rank, x->dims));
    if (kiln_op_out_wanted(c, 1)) {
        kiln_tensor *m;
        kiln_dtype mdt = c->opset >= 10 ? KILN_DTYPE_BOOL : x->dtype;
        KILN_TRY(kiln_op_output(c, 1, mdt, x->rank, x->dims, &m));
        KILN_TRY(fill_ones(m));
    }
    return KILN_OK;
}

/* Identity passes everything on, elements included. */
static kiln_status identity_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    x->out[0].dt = X->dt;
    kiln_infer_copy_shape(&x->out[0], X, true);
    return KILN_OK;
}

/* Dropout: output as the input; the mask (output 1) is bool of its shape. */
static kiln_status dropout_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 1) {
        x->out[1].dt = KILN_DTYPE_BOOL;
        kiln_infer_copy_shape(&x->out[1], kiln_infer_in(x, 0), false);
    }
    return KILN_OK;
}

/* Identity-14/16 added sequence and optional types (passed on as they are);
 * tensors behave the same in every version. */
static const kiln_op_desc ops[] = {
    {"", "Identity", 1, 0, identity_exec, identity_infer},
    {"", "Dropout", 6, 0, dropout_exec, dropout_infer},
};
KILN_OP_FAMILY(identity, ops);
