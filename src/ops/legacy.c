/* Opset 1-6 forms of the binary arithmetic ops (Gemm handles its own). Before opset 7,
 * broadcasting was explicit: `broadcast=1` lets B be broadcast to A, with B's
 * dims aligned to A's starting at `axis` (default: trailing alignment, as
 * numpy). Shaping B accordingly turns the node into its opset-7 form, whose
 * kernel then runs unchanged. */
#include <string.h>

#include "ops/op.h"

static kiln_status legacy_binary(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *a = c->in[0], *b = c->in[1];
    const kiln_op_desc *modern = kiln_op_find("", c->node->op_type, 7);
    if (!modern)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "no opset-7 kernel for %s", c->node->op_type);
    if (!kiln_attr_int(c->node, "broadcast", 0)) {
        bool same = a->rank == b->rank;
        for (int i = 0; same && i < a->rank; i++)
            same = a->dims[i] == b->dims[i];
        if (!same)
            return kiln_fail(KILN_ERR_INVALID, "inputs differ in shape and broadcast is not set");
        return modern->exec(c);
    }
    int64_t axis = kiln_attr_int(c->node, "axis", a->rank - b->rank);
    if (axis < 0)
        axis += a->rank;
    if (axis < 0 || axis + b->rank > a->rank)
        return kiln_fail(KILN_ERR_INVALID, "broadcast axis %lld does not fit B of rank %d into A of rank %d",
                         (long long)axis, b->rank, a->rank);
    /* B viewed with A's rank: ones before `axis` and after its own dims. */
    kiln_tensor view = *b;
    view.rank = a->rank;
    for (int i = 0; i < a->rank; i++)
        view.dims[i] = i >= axis && i < axis + b->rank ? b->dims[i - axis] : 1;
    const kiln_tensor *ins[2] = {a, &view};
    bool dying[2] = {c->in_dying[0], false};
    kiln_op_ctx sub = *c;
    sub.in = ins;
    sub.in_dying = dying;
    sub.n_in = 2;
    return modern->exec(&sub);
}

static const kiln_op_desc ops[] = {
    {"", "Add", 1, 6, legacy_binary, kiln_infer_same}, {"", "Sub", 1, 6, legacy_binary, kiln_infer_same}, {"", "Mul", 1, 6, legacy_binary, kiln_infer_same},
    {"", "Div", 1, 6, legacy_binary, kiln_infer_same}, {"", "Pow", 1, 6, legacy_binary, kiln_infer_same},
};
KILN_OP_FAMILY(legacy, ops);
