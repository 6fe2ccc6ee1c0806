/* Optional operators: Optional, OptionalHasElement, OptionalGetElement.
 *
 * An optional is a value of kind OPTIONAL (ir/value.c) holding a tensor or
 * a sequence, or nothing. OptionalHasElement and OptionalGetElement also
 * take a tensor or sequence itself, as a present value: opset 18 allows it,
 * and before it a value stands for the optional holding it where types
 * convert implicitly (a Loop carrying optional(seq) whose body returns the
 * seq, as ONNX's reference runs test_loop16_seq_none). From opset 18
 * OptionalHasElement's input may be omitted (no value). */
#include <string.h>

#include "ops/op.h"

static kiln_status optional_exec(kiln_op_ctx *c) {
    const kiln_tensor *x = kiln_op_in(c, 0);
    const kiln_attr *type = kiln_node_attr(c->node, "type");
    kiln_value_kind ek = KILN_VALUE_UNKNOWN;
    kiln_dtype edt = KILN_DTYPE_UNDEFINED;
    if (type) {
        kiln_value_kind k = kiln_attr_type_kind(type, NULL, &edt);
        if (k != KILN_VALUE_TENSOR && k != KILN_VALUE_SEQUENCE)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'type' must be a tensor or sequence type");
        ek = k;
    }
    if (!x) {
        if (!type)
            return kiln_fail(KILN_ERR_INVALID, "an empty Optional needs the attribute 'type'");
        return kiln_op_output_optional(c, 0, NULL, ek, edt);
    }
    if (x->kind != KILN_VALUE_TENSOR && x->kind != KILN_VALUE_SEQUENCE) {
        char b[128];
        return kiln_fail(KILN_ERR_INVALID, "input must be a tensor or a sequence, got %s", kiln_value_str(x, b, sizeof b));
    }
    kiln_dtype xdt = x->kind == KILN_VALUE_TENSOR ? x->dtype : x->elem_dtype;
    if (type && (ek != x->kind || (edt != KILN_DTYPE_UNDEFINED && xdt != KILN_DTYPE_UNDEFINED && edt != xdt)))
        return kiln_fail(KILN_ERR_INVALID, "the input does not have the type attribute 'type' gives");
    return kiln_op_output_optional(c, 0, x, x->kind, xdt);
}

static kiln_status has_element_exec(kiln_op_ctx *c) {
    const kiln_tensor *x = kiln_op_in(c, 0);
    if (c->opset < 18 && !x)
        return kiln_fail(KILN_ERR_INVALID, "input is missing (it may be omitted from opset 18)");
    bool has = x && (x->kind != KILN_VALUE_OPTIONAL || x->n_items > 0);
    kiln_tensor *o;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_BOOL, 0, NULL, &o));
    *(uint8_t *)o->data = has;
    return KILN_OK;
}

static kiln_status get_element_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->kind != KILN_VALUE_OPTIONAL)
        return kiln_op_output_share(c, 0, x);
    if (!x->n_items)
        return kiln_fail(KILN_ERR_INVALID, "the optional input is empty");
    return kiln_op_output_share(c, 0, x->items[0]);
}

/* ---- shape rules ---- */

/* An optional's facts stay unknown. */
static kiln_status optional_infer(kiln_infer_ctx *x) {
    (void)x;
    return KILN_OK;
}

static kiln_status has_element_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = KILN_DTYPE_BOOL;
    x->out[0].rank = 0;
    return KILN_OK;
}

/* A tensor input (opset 18) comes out as it is; an optional's content is
 * unknown, and so are its facts. */
static kiln_status get_element_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    const kiln_shape_fact *in = kiln_infer_in(x, 0);
    if (in->dt != KILN_DTYPE_UNDEFINED) {
        x->out[0].dt = in->dt;
        kiln_infer_copy_shape(&x->out[0], in, true);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Optional", 15, 0, optional_exec, optional_infer},
    {"", "OptionalGetElement", 15, 0, get_element_exec, get_element_infer},
    {"", "OptionalHasElement", 15, 17, has_element_exec, has_element_infer},
    {"", "OptionalHasElement", 18, 0, has_element_exec, has_element_infer}, /* the input may be omitted */
};
KILN_OP_FAMILY(optional, ops);
