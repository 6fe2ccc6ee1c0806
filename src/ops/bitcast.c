/* BitCast (opset 26): the input's bytes reinterpreted as another element
 * type of the same width (little endian, as kiln stores every type). The
 * output takes over a dying input's buffer, else it is a copy. Bytes cast
 * to bool are normalised to 0 / 1, the only values a kiln bool holds. */
#include <string.h>

#include "ops/op.h"

static bool bitcast_type_ok(int64_t t) {
    return t > KILN_DTYPE_UNDEFINED && t <= KILN_DTYPE_BFLOAT16 && t != KILN_DTYPE_STRING &&
           kiln_dtype_size((kiln_dtype)t) > 0;
}

static kiln_status bitcast_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t to = kiln_attr_int(c->node, "to", 0);
    if (!kiln_node_attr(c->node, "to") || !bitcast_type_ok(to))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'to' (%lld) must name a non-string element type", (long long)to);
    if (!bitcast_type_ok(x->dtype))
        return kiln_fail(KILN_ERR_INVALID, "input of type %s cannot be bit-cast", kiln_dtype_name(x->dtype));
    kiln_dtype dt = (kiln_dtype)to;
    if (kiln_dtype_size(dt) != kiln_dtype_size(x->dtype))
        return kiln_fail(KILN_ERR_INVALID, "BitCast needs types of the same width: %s is %zu bits, %s is %zu bits",
                         kiln_dtype_name(x->dtype), kiln_dtype_size(x->dtype) * 8, kiln_dtype_name(dt),
                         kiln_dtype_size(dt) * 8);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, dt, x->rank, x->dims, &y));
    if (y->data != x->data && x->nbytes)
        memcpy(y->data, x->data, x->nbytes);
    if (dt == KILN_DTYPE_BOOL && x->dtype != KILN_DTYPE_BOOL) {
        uint8_t *p = y->data;
        for (int64_t i = 0; i < y->numel; i++)
            p[i] = p[i] != 0;
    }
    return KILN_OK;
}

static kiln_status bitcast_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_infer_copy_shape(&x->out[0], kiln_infer_in(x, 0), false);
    int64_t to = kiln_attr_int(x->node, "to", 0);
    if (bitcast_type_ok(to))
        x->out[0].dt = (kiln_dtype)to;
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "BitCast", 26, 0, bitcast_exec, bitcast_infer},
};
KILN_OP_FAMILY(bitcast, ops);
