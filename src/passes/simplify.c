/* Local simplifications after folding: identities (Identity, inference
 * Dropout, Cast to the same type, Reshape/Expand to the same shape,
 * single-input Concat, x*1, x+0, x-0, x/1), Where on a constant condition,
 * identical constants merged. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static bool all_equal(const kiln_tensor *t, double v) {
    if (!t || t->dtype == KILN_DTYPE_STRING || t->numel == 0)
        return false;
    for (int64_t i = 0; i < t->numel; i++)
        if (kiln_tensor_get_f64(t, i) != v)
            return false;
    return true;
}

static kiln_dtype dtype_of(const kiln_freeze_ctx *c, const kiln_scope *s, const char *name) {
    const kiln_tensor *t = kiln_edit_const(s, name);
    if (t)
        return t->dtype;
    const kiln_shape_fact *f = kiln_fact(c, name);
    return f ? f->dt : KILN_DTYPE_UNDEFINED;
}

/* Input index the node passes through unchanged, or -1. */
static int identity_input(kiln_freeze_ctx *c, const kiln_scope *s, const kiln_node *n) {
    const char *op = n->op_type;
    if (*n->domain || n->n_outputs < 1)
        return -1;
    if (!strcmp(op, "Identity") && n->n_inputs == 1)
        return 0;
    if (!strcmp(op, "Dropout") && n->n_inputs >= 1) {
        /* training_mode (opset 12+) must be absent or constant false; the
         * mask output must be unused */
        if (n->n_outputs > 1 && *n->outputs[1])
            return -1;
        if (n->n_inputs >= 3 && *n->inputs[2]) {
            const kiln_tensor *tm = kiln_edit_const(s, n->inputs[2]);
            if (!tm || !all_equal(tm, 0))
                return -1;
        }
        if (kiln_attr_int(n, "is_test", 1) == 0 && c->opset < 7)
            return -1;
        return 0;
    }
    if (n->n_outputs != 1)
        return -1;
    const kiln_shape_fact *fo = kiln_fact(c, n->outputs[0]);
    if (!strcmp(op, "Cast") && n->n_inputs == 1) {
        kiln_dtype in = dtype_of(c, s, n->inputs[0]);
        return in != KILN_DTYPE_UNDEFINED && in == (kiln_dtype)kiln_attr_int(n, "to", 0) ? 0 : -1;
    }
    if ((!strcmp(op, "Reshape") || !strcmp(op, "Expand")) && n->n_inputs == 2) {
        const kiln_shape_fact *fi = kiln_fact(c, n->inputs[0]);
        return fi && fo && kiln_fact_same_shape(fi, fo) ? 0 : -1;
    }
    if (!strcmp(op, "Concat") && n->n_inputs == 1)
        return 0;
    if ((!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze") || !strcmp(op, "Flatten")) && n->n_inputs >= 1) {
        const kiln_shape_fact *fi = kiln_fact(c, n->inputs[0]);
        return fi && fo && kiln_fact_same_shape(fi, fo) ? 0 : -1;
    }
    bool add = !strcmp(op, "Add"), sub = !strcmp(op, "Sub"), mul = !strcmp(op, "Mul"), dv = !strcmp(op, "Div");
    if ((add || sub || mul || dv) && n->n_inputs == 2) {
        for (int side = 0; side < 2; side++) {
            if (side == 0 && (sub || dv))
                continue; /* 0-x and 1/x are not identities */
            const kiln_tensor *k = kiln_edit_const(s, n->inputs[side]);
            double neutral = (add || sub) ? 0.0 : 1.0;
            if (!k || !all_equal(k, neutral))
                continue;
            int other = 1 - side;
            /* the result must keep the other operand's type and shape */
            const kiln_shape_fact *fx = kiln_fact(c, n->inputs[other]);
            if (!fx || !fo || !kiln_fact_same_shape(fx, fo) || dtype_of(c, s, n->inputs[other]) != k->dtype)
                continue;
            return other;
        }
    }
    return -1;
}

/* And(x, false) and Or(x, true): the result is the constant operand when it
 * already has the output's shape. */
static const kiln_tensor *absorbed(kiln_freeze_ctx *c, const kiln_scope *s, const kiln_node *n) {
    bool and_ = !strcmp(n->op_type, "And"), or_ = !strcmp(n->op_type, "Or");
    if (*n->domain || (!and_ && !or_) || n->n_inputs != 2 || n->n_outputs != 1)
        return NULL;
    const kiln_shape_fact *fo = kiln_fact(c, n->outputs[0]);
    for (int side = 0; side < 2 && fo && fo->rank >= 0; side++) {
        const kiln_tensor *k = kiln_edit_const(s, n->inputs[side]);
        if (!k || !all_equal(k, and_ ? 0.0 : 1.0) || k->rank != fo->rank)
            continue;
        bool same = true;
        for (int d = 0; d < k->rank; d++)
            if (!fo->dims[d].known || fo->dims[d].n || fo->dims[d].den != 1 || fo->dims[d].num != k->dims[d])
                same = false;
        if (same)
            return k;
    }
    return NULL;
}

/* e = Expand(m, shape) read by an elementwise op whose other operand already
 * has e's shape: broadcasting m there gives the same result, so the op can
 * read m directly (the Expand goes once nothing reads it). */
static kiln_status bypass_expand(kiln_freeze_ctx *c, kiln_graph *g, const kiln_node *e) {
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Less",
                                      "Greater", "LessOrEqual", "GreaterOrEqual", "Max", "Min", NULL};
    const kiln_shape_fact *fo = kiln_fact(c, e->outputs[0]);
    if (!fo || fo->rank < 0)
        return KILN_OK;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        bool ok = !*n->domain && n->n_inputs == 2;
        for (const char *const *o = ops; ok && *o; o++)
            if (!strcmp(n->op_type, *o))
                break;
            else if (!o[1])
                ok = false;
        for (size_t k = 0; ok && k < 2; k++) {
            if (strcmp(n->inputs[k], e->outputs[0]) != 0)
                continue;
            const kiln_shape_fact *other = kiln_fact(c, n->inputs[1 - k]);
            if (!other || !kiln_fact_same_shape(other, fo))
                continue;
            char *d = kiln_strdup(e->inputs[0]);
            if (!d)
                return KILN_ERR_NOMEM;
            free(n->inputs[k]);
            n->inputs[k] = d;
            c->rep->simplified++;
            c->changed = true;
        }
    }
    return KILN_OK;
}

/* ---- chains of scalar Add/Mul ----
 * Unrolled loops and folded configuration arguments leave chains such as
 * ((x*a + b)*c + d). With scalar constants these collapse to x*(a*c) +
 * (b*c + d): Mul(Add(z,b),c) becomes Add(Mul(z,c), b*c), and two Adds or two
 * Muls in a row merge. Floating-point results may differ in the last bits
 * (the constants are combined in double, then rounded once). */

static bool scalar_float_const(const kiln_scope *s, const char *name, double *v, const kiln_tensor **t) {
    const kiln_tensor *k = kiln_edit_const(s, name);
    if (!k || k->numel != 1 || (k->dtype != KILN_DTYPE_FLOAT && k->dtype != KILN_DTYPE_DOUBLE))
        return false;
    *v = kiln_tensor_get_f64(k, 0);
    *t = k;
    return true;
}

/* For Add/Mul with one scalar float constant operand: the index of the other. */
static int chain_operand(const kiln_scope *s, const kiln_node *n, double *v, const kiln_tensor **k) {
    if (*n->domain || n->n_inputs != 2 || n->n_outputs != 1 || (strcmp(n->op_type, "Add") && strcmp(n->op_type, "Mul")))
        return -1;
    for (int side = 0; side < 2; side++)
        if (scalar_float_const(s, n->inputs[side], v, k) && !kiln_edit_const(s, n->inputs[1 - side]))
            return 1 - side;
    return -1;
}

/* Whether `name` is read exactly once in g (subgraph captures count as many). */
static bool read_once(const kiln_graph *g, const char *name) {
    int readers = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            readers += !strcmp(n->inputs[k], name);
        for (size_t a = 0; a < n->n_attrs; a++) {
            const kiln_attr *at = &n->attrs[a];
            if (at->g && kiln_edit_is_used(at->g, name))
                return false;
            for (size_t k = 0; at->graphs && k < at->n; k++)
                if (kiln_edit_is_used(at->graphs[k], name))
                    return false;
        }
    }
    return readers == 1 && !kiln_edit_is_output(g, name);
}

static kiln_status set_chain_node(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const char *op, const char *x,
                                  const kiln_tensor *like, double v) {
    kiln_tensor *t;
    KILN_TRY(kiln_tensor_create(like->dtype, like->rank, like->dims, &t));
    if (t->dtype == KILN_DTYPE_FLOAT)
        *(float *)t->data = (float)v;
    else
        *(double *)t->data = v;
    const char *kname;
    KILN_TRY(kiln_edit_new_const(g, &c->names, n->outputs[0], t, &kname));
    char *op_d = kiln_strdup(op), *x_d = kiln_strdup(x), *k_d = kiln_strdup(kname);
    if (!op_d || !x_d || !k_d) {
        free(op_d);
        free(x_d);
        free(k_d);
        return KILN_ERR_NOMEM;
    }
    free(n->op_type);
    n->op_type = op_d;
    free(n->inputs[0]);
    free(n->inputs[1]);
    n->inputs[0] = x_d;
    n->inputs[1] = k_d;
    return KILN_OK;
}

static kiln_status fold_chains(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        double k2, k1;
        const kiln_tensor *t2, *t1;
        int yi = chain_operand(s, n, &k2, &t2);
        if (yi < 0)
            continue;
        const char *y = n->inputs[yi];
        long pi = kiln_edit_producer(g, y);
        if (pi < 0 || !read_once(g, y))
            continue;
        kiln_node *p = g->nodes[pi];
        int zi = chain_operand(s, p, &k1, &t1);
        if (zi < 0 || t1->dtype != t2->dtype)
            continue;
        /* the constants must not widen the shape: z, y and n's output alike */
        const kiln_shape_fact *fz = kiln_fact(c, p->inputs[zi]), *fy = kiln_fact(c, y),
                              *fo = kiln_fact(c, n->outputs[0]);
        if (!fz || !fy || !fo || !kiln_fact_same_shape(fz, fy) || !kiln_fact_same_shape(fy, fo))
            continue;
        const kiln_tensor *like = t1->rank >= t2->rank ? t1 : t2;
        bool n_add = !strcmp(n->op_type, "Add"), p_add = !strcmp(p->op_type, "Add");
        char *z = kiln_strdup(p->inputs[zi]), *yd = kiln_strdup(y);
        if (!z || !yd) {
            free(z);
            free(yd);
            return KILN_ERR_NOMEM;
        }
        kiln_status st = KILN_OK;
        if (n_add == p_add) /* (z+k1)+k2, (z*k1)*k2 */
            st = set_chain_node(c, g, n, n->op_type, z, like, n_add ? k1 + k2 : k1 * k2);
        else if (!n_add && p_add) { /* (z+k1)*k2 -> (z*k2) + k1*k2 */
            st = set_chain_node(c, g, p, "Mul", z, like, k2);
            if (st == KILN_OK)
                st = set_chain_node(c, g, n, "Add", yd, like, k1 * k2);
        } else {
            free(z);
            free(yd);
            continue; /* (z*k1)+k2 is the canonical form */
        }
        free(z);
        free(yd);
        KILN_TRY(st);
        c->rep->simplified++;
        c->changed = true;
    }
    return KILN_OK;
}

/* Identical small constants, found by content hash: later ones are renamed
 * to the first. */
static uint64_t const_hash(const kiln_tensor *t) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)t->dtype;
    const unsigned char *p = (const unsigned char *)t->dims;
    for (size_t i = 0; i < (size_t)t->rank * sizeof *t->dims; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    p = t->data;
    for (size_t i = 0; p && i < t->nbytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static bool same_const(const kiln_tensor *a, const kiln_tensor *b) {
    return b->dtype == a->dtype && b->rank == a->rank && b->nbytes == a->nbytes &&
           !memcmp(b->dims, a->dims, (size_t)a->rank * sizeof *a->dims) &&
           (a->nbytes == 0 || !memcmp(a->data, b->data, a->nbytes));
}

static bool mergeable(const kiln_graph *g, const kiln_tensor *t) {
    return t->name && t->dtype != KILN_DTYPE_STRING && t->nbytes <= (1 << 16) && !kiln_edit_is_input(g, t->name) &&
           !kiln_edit_is_output(g, t->name);
}

static kiln_status merge_constants(kiln_freeze_ctx *c, kiln_graph *g, kiln_renames *rn) {
    size_t cap = 64;
    while (cap < 2 * g->n_inits)
        cap *= 2;
    size_t *slot = kiln_calloc(cap, sizeof *slot); /* position + 1 of a kept constant */
    bool *drop = kiln_calloc(g->n_inits + 1, sizeof *drop);
    kiln_status st = slot && drop ? KILN_OK : KILN_ERR_NOMEM;
    size_t dropped = 0;
    for (size_t i = 0; st == KILN_OK && i < g->n_inits; i++) {
        const kiln_tensor *b = g->inits[i];
        if (!mergeable(g, b))
            continue;
        size_t h = (size_t)const_hash(b) & (cap - 1);
        for (; slot[h]; h = (h + 1) & (cap - 1))
            if (same_const(g->inits[slot[h] - 1], b))
                break;
        if (!slot[h]) {
            slot[h] = i + 1;
            continue;
        }
        st = kiln_renames_add(rn, b->name, g->inits[slot[h] - 1]->name);
        drop[i] = true;
        dropped++;
    }
    if (st == KILN_OK && dropped) {
        size_t w = 0;
        for (size_t i = 0; i < g->n_inits; i++)
            if (drop[i])
                kiln_tensor_destroy(g->inits[i]);
            else
                g->inits[w++] = g->inits[i];
        g->n_inits = w;
        st = kiln_graph_inits_reindex(g);
        c->changed = true;
    }
    free(slot);
    free(drop);
    return st;
}

/* Removes the nodes marked dead (their indices unchanged until now). */
static void sweep_nodes(kiln_graph *g, const bool *dead) {
    size_t w = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (dead[i])
            kiln_node_destroy(g->nodes[i]);
        else
            g->nodes[w++] = g->nodes[i];
    g->n_nodes = w;
}

static kiln_status simplify_nodes(kiln_freeze_ctx *c, kiln_scope *s, kiln_renames *rn, bool *dead) {
    kiln_graph *g = s->g;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        KILN_TRY(kiln_renames_apply_node(rn, n));
        const kiln_tensor *ab = absorbed(c, s, n);
        if (ab && !kiln_edit_is_output(g, n->outputs[0])) {
            kiln_tensor *t;
            KILN_TRY(kiln_tensor_clone(ab, &t));
            kiln_edit_drop_value_info(g, n->outputs[0]);
            KILN_TRY(kiln_edit_set_const(g, n->outputs[0], t));
            dead[i] = true;
            c->rep->simplified++;
            c->changed = true;
            continue;
        }
        int k = identity_input(c, s, n);
        /* Where(cond, x, y) with a constant uniform condition */
        if (k < 0 && !*n->domain && !strcmp(n->op_type, "Where") && n->n_inputs == 3 && n->n_outputs == 1) {
            const kiln_tensor *ct = kiln_edit_const(s, n->inputs[0]);
            int pick = all_equal(ct, 1) ? 1 : ct && all_equal(ct, 0) ? 2 : -1;
            if (pick > 0) {
                const kiln_shape_fact *fp = kiln_fact(c, n->inputs[pick]), *fo = kiln_fact(c, n->outputs[0]);
                if (fp && fo && kiln_fact_same_shape(fp, fo))
                    k = pick;
            }
        }
        if (k < 0 || !*n->inputs[k] || !*n->outputs[0])
            continue;
        const char *x = n->inputs[k], *y = n->outputs[0];
        if (!kiln_edit_is_output(g, y)) {
            /* the common case: readers of y read x, renamed as they are met */
            KILN_TRY(kiln_renames_add(rn, y, x));
            dead[i] = true;
            c->rep->simplified++;
            c->changed = true;
            continue;
        }
        /* y is an output of g: the edit below rewrites the graph, so the
         * pending renames go in first */
        KILN_TRY(kiln_renames_apply(rn, g));
        kiln_renames_free(rn);
        char *xd = kiln_strdup(x), *yd = kiln_strdup(y);
        if (!xd || !yd) {
            free(xd);
            free(yd);
            return KILN_ERR_NOMEM;
        }
        bool ok = kiln_edit_forward(g, yd, xd, s->up != NULL);
        const kiln_tensor *oc = !ok && s->up && !kiln_graph_find_init(g, xd, NULL) ? kiln_edit_const(s, xd) : NULL;
        if (oc && oc->nbytes <= 64) {
            /* an outer constant returned by a subgraph: a small local
             * copy can be returned directly */
            kiln_tensor *t;
            const char *local;
            kiln_status st = kiln_tensor_clone(oc, &t);
            if (st == KILN_OK)
                st = kiln_edit_new_const(g, &c->names, xd, t, &local);
            if (st != KILN_OK) {
                free(xd);
                free(yd);
                return st;
            }
            ok = kiln_edit_forward(g, yd, local, true);
        }
        free(xd);
        free(yd);
        if (ok) {
            dead[i] = true;
            c->rep->simplified++;
            c->changed = true;
        }
    }
    return KILN_OK;
}

static kiln_status simplify_graph(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    KILN_TRY(kiln_graph_inits_reindex(g));
    KILN_TRY(fold_chains(c, s));
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!*g->nodes[i]->domain && !strcmp(g->nodes[i]->op_type, "Expand") && g->nodes[i]->n_inputs == 2 &&
            g->nodes[i]->n_outputs == 1)
            KILN_TRY(bypass_expand(c, g, g->nodes[i]));
    kiln_renames rn = {0};
    bool *dead = kiln_calloc(g->n_nodes + 1, sizeof *dead);
    kiln_status st = dead ? simplify_nodes(c, s, &rn, dead) : KILN_ERR_NOMEM;
    if (dead)
        sweep_nodes(g, dead);
    free(dead);
    /* identical constants: later ones read the first */
    if (st == KILN_OK)
        st = merge_constants(c, g, &rn);
    if (st == KILN_OK)
        st = kiln_renames_apply(&rn, g);
    kiln_renames_free(&rn);
    KILN_TRY(st);
    return kiln_pass_subgraphs(c, s, simplify_graph);
}

kiln_status kiln_pass_simplify(kiln_freeze_ctx *c, kiln_scope *s) { return simplify_graph(c, s); }
