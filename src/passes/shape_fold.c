/* Rewrites that shape facts make possible on particular operators: a
 * Reshape or Expand whose target became known gets it as a constant,
 * adjacent constant inputs of a 1-D Concat merge. The facts come from the
 * operators' own rules (ops/infer.h) through passes/shape_infer.c. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef kiln_shape_fact fact;
typedef kiln_sdim sdim;

kiln_status kiln_fact_make_const(const fact *f, kiln_tensor **out) {
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    int64_t dims[1] = {f->nval};
    kiln_status st = kiln_tensor_init_shape(t, f->dt, f->rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    for (int i = 0; i < f->nval; i++) {
        if (f->dt == KILN_DTYPE_INT64)
            ((int64_t *)t->data)[i] = f->val[i].num;
        else if (f->dt == KILN_DTYPE_BOOL)
            ((uint8_t *)t->data)[i] = f->val[i].num != 0;
        else
            ((int32_t *)t->data)[i] = (int32_t)f->val[i].num;
    }
    *out = t;
    return KILN_OK;
}

bool kiln_fact_foldable(const fact *f) {
    return f && kiln_fact_has_vals(f->dt) && f->rank >= 0 && f->rank <= 1 && kiln_fact_vals_const(f) &&
           (f->rank == 1 ? f->nval >= 0 : f->nval == 1);
}

/* Input 1 (a shape) of n becomes the int64 constant v[0..len). */
static kiln_status set_shape_input(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, int64_t len, const int64_t *v) {
    const char *nm;
    KILN_TRY(kiln_edit_const_i64(g, &c->names, n->inputs[1], 1, &len, v, &nm));
    char *d = kiln_strdup(nm);
    if (!d)
        return KILN_ERR_NOMEM;
    free(n->inputs[1]);
    n->inputs[1] = d;
    c->rep->shapes_folded++;
    c->changed = true;
    return KILN_OK;
}

/* Shape target of a Reshape as a constant: known elements, 0 where the
 * element equals the input's dim at that position, -1 for one leftover. */
static kiln_status fold_reshape(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const kiln_infer_ctx *x) {
    const fact *S = &x->in[1], *X = &x->in[0];
    if (x->k[1] || S->nval < 0 || S->nval > KILN_MAX_RANK || kiln_attr_int(n, "allowzero", 0))
        return KILN_OK;
    int64_t v[KILN_MAX_RANK];
    int left = -1;
    bool has_neg = false;
    for (int i = 0; i < S->nval; i++)
        if (kiln_sd_is(&S->val[i], -1))
            has_neg = true;
    for (int i = 0; i < S->nval; i++) {
        const sdim *d = &S->val[i];
        if (kiln_sd_is_const(d))
            v[i] = d->num;
        else if (X->rank > i && kiln_sdim_eq(d, &X->dims[i]))
            v[i] = 0;
        else if (left < 0 && !has_neg) {
            left = i;
            v[i] = -1;
        } else
            return KILN_OK;
    }
    return set_shape_input(c, g, n, S->nval, v);
}

/* Shape of an Expand as a constant: known elements, 1 where the element
 * equals the input's (right-aligned) dim, since 1 keeps that dim. */
static kiln_status fold_expand(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const kiln_infer_ctx *x) {
    const fact *S = &x->in[1], *X = &x->in[0];
    if (x->k[1] || S->nval < 0 || S->nval > KILN_MAX_RANK || X->rank < 0)
        return KILN_OK;
    int64_t v[KILN_MAX_RANK];
    for (int i = 0; i < S->nval; i++) {
        const sdim *d = &S->val[i];
        int j = i - (S->nval - X->rank);
        if (kiln_sd_is_const(d))
            v[i] = d->num;
        else if (j >= 0 && kiln_sdim_eq(d, &X->dims[j]))
            v[i] = 1;
        else
            return KILN_OK;
    }
    return set_shape_input(c, g, n, S->nval, v);
}

/* Adjacent constant inputs of a 1-D Concat become one. */
static kiln_status fold_concat(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const kiln_infer_ctx *x) {
    if (n->n_inputs < 3 || n->n_inputs > 16 || x->out[0].rank != 1)
        return KILN_OK;
    for (size_t i = 0; i + 1 < n->n_inputs; i++) {
        size_t j = i;
        while (j < n->n_inputs && x->has[j] && kiln_fact_foldable(&x->in[j]) && x->in[j].rank == 1)
            j++;
        if (j - i < 2 || (i == 0 && j == n->n_inputs))
            continue;
        fact m = x->in[i];
        m.nval = 0;
        for (size_t k = i; k < j; k++) {
            if (m.nval + x->in[k].nval > KILN_FACT_MAXVAL)
                return KILN_OK;
            memcpy(&m.val[m.nval], x->in[k].val, (size_t)x->in[k].nval * sizeof *m.val);
            m.nval += x->in[k].nval;
        }
        kiln_tensor *t;
        KILN_TRY(kiln_fact_make_const(&m, &t));
        const char *nm;
        KILN_TRY(kiln_edit_new_const(g, &c->names, n->inputs[i], t, &nm));
        char *d = kiln_strdup(nm);
        if (!d)
            return KILN_ERR_NOMEM;
        free(n->inputs[i]);
        n->inputs[i] = d;
        for (size_t k = i + 1; k < j; k++)
            free(n->inputs[k]);
        memmove(&n->inputs[i + 1], &n->inputs[j], (n->n_inputs - j) * sizeof *n->inputs);
        n->n_inputs -= j - i - 1;
        c->rep->shapes_folded++;
        c->changed = true;
        return KILN_OK; /* facts are stale now; the next round continues */
    }
    return KILN_OK;
}


kiln_status kiln_shape_fold_node(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const kiln_infer_ctx *x) {
    if (*n->domain)
        return KILN_OK;
    if (!strcmp(n->op_type, "Reshape") && n->n_inputs == 2)
        return fold_reshape(c, g, n, x);
    if (!strcmp(n->op_type, "Expand") && n->n_inputs == 2)
        return fold_expand(c, g, n, x);
    if (!strcmp(n->op_type, "Concat"))
        return fold_concat(c, g, n, x);
    return KILN_OK;
}
