/* Plan-time fusion: a Conv whose only consumer is a Relu or a Clip (opset
 * 11+, bounds from initializers or Constant nodes) becomes one node that
 * clamps while its output tile is still in cache. The fused node runs in
 * the activation's slot (all of the activation's inputs exist by then),
 * writes the activation's output value, and the intermediate value, which
 * must have no other reader and not be pinned, disappears. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"

static bool is_op(const kiln_plan_node *pn, const char *name) {
    return pn->node && !*pn->node->domain && strcmp(pn->node->op_type, name) == 0;
}

/* The constant tensor behind value v: an initializer or a Constant node's
 * `value` attribute (producer index below `before`). */
static const kiln_tensor *const_of(const kiln_plan *p, int v, size_t before) {
    for (size_t i = 0; i < p->n_consts; i++)
        if (p->const_ids[i] == v)
            return p->const_vals[i];
    for (size_t i = 0; i < before; i++) {
        const kiln_plan_node *pn = &p->nodes[i];
        if (pn->node && pn->node->n_outputs == 1 && pn->out_ids[0] == v)
            return is_op(pn, "Constant") && pn->node->n_attrs == 1 ? kiln_attr_tensor(pn->node, "value") : NULL;
    }
    return NULL;
}

static bool bound_of(const kiln_plan *p, const kiln_plan_node *clip, size_t k, size_t before, double *out,
                     kiln_dtype *dt) {
    if (k >= clip->node->n_inputs || clip->in_ids[k] < 0)
        return true; /* omitted: no bound */
    const kiln_tensor *t = const_of(p, clip->in_ids[k], before);
    if (!t || t->numel != 1 || t->rank > 1 || !t->data)
        return false;
    if (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE && t->dtype != KILN_DTYPE_FLOAT16)
        return false;
    if (*dt != KILN_DTYPE_UNDEFINED && *dt != t->dtype)
        return false;
    *dt = t->dtype;
    *out = kiln_tensor_get_f64(t, 0);
    return true;
}

void kiln_plan_fuse(kiln_plan *p, const bool *pinned) {
    for (size_t i = 0; i < p->n_nodes; i++) {
        kiln_plan_node *conv = &p->nodes[i];
        if (!is_op(conv, "Conv") || conv->node->n_outputs != 1 || conv->act.on)
            continue;
        int v = conv->out_ids[0];
        if (v < 0 || pinned[v])
            continue;
        size_t uses = 0, user = 0;
        for (size_t j = 0; j < p->n_nodes; j++)
            for (size_t k = 0; p->nodes[j].node && k < p->nodes[j].node->n_inputs; k++)
                if (p->nodes[j].in_ids[k] == v) {
                    uses++;
                    user = j;
                }
        if (uses != 1 || user <= i)
            continue;
        kiln_plan_node *act = &p->nodes[user];
        if (act->node->n_outputs != 1 || act->out_ids[0] < 0 || act->in_ids[0] != v)
            continue;
        kiln_op_act a = {.on = true, .lo = -INFINITY, .hi = INFINITY, .dtype = KILN_DTYPE_UNDEFINED};
        if (is_op(act, "Relu") && act->node->n_inputs == 1)
            a.lo = 0.0;
        else if (is_op(act, "Clip") && act->opset >= 11 && act->node->n_inputs <= 3) {
            if (!bound_of(p, act, 1, user, &a.lo, &a.dtype) || !bound_of(p, act, 2, user, &a.hi, &a.dtype))
                continue;
            if (isnan(a.lo) || isnan(a.hi))
                continue;
        } else
            continue;
        /* the fused node takes the activation's slot and output value */
        kiln_plan_node fused = *conv;
        fused.out_ids[0] = act->out_ids[0];
        fused.act = a;
        free(act->in_ids);
        free(act->out_ids);
        free(act->free_ids);
        *act = fused;
        memset(conv, 0, sizeof *conv); /* node == NULL: dropped by the caller */
    }
}
