/* Shape inference for freezing: the driver. It walks a graph and its
 * subgraphs in order, gives each node what is known of its inputs (declared
 * types, initializers, facts of earlier nodes) and asks the node's operator
 * descriptor for its rule (ops/infer.h; each rule lives beside its kernel).
 * Declared value_info fills what a rule leaves open. What the facts make
 * known is folded: values whose elements are all known become initializers
 * (the operator-specific rewrites are in shape_fold.c), and graph outputs
 * get the refined shapes. No operator is named here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "passes/passes.h"

typedef kiln_shape_fact fact;
typedef kiln_sdim sdim;

#define MAX_IN 16
#define MAX_OUT 8
#define MAX_SUB 4 /* graph attributes per node whose output facts are kept */

/* ---- stored facts: one compact copy per value name ---- */

static void fact_free(void *p) { free(p); }

void kiln_shapes_free(kiln_freeze_ctx *c) {
    kiln_nameset_free(&c->facts, fact_free);
    kiln_nameset_free(&c->syms, NULL);
}

const kiln_shape_fact *kiln_fact(const kiln_freeze_ctx *c, const char *name) {
    return name && *name ? kiln_nameset_get(&c->facts, name) : NULL;
}

static const char *intern(kiln_freeze_ctx *c, const char *s) {
    if (kiln_nameset_put(&c->syms, s, NULL) != KILN_OK)
        return NULL;
    return kiln_nameset_key(&c->syms, s);
}

static kiln_status put_fact(kiln_freeze_ctx *c, const char *name, const fact *f) {
    if (!name || !*name)
        return KILN_OK;
    size_t sz = kiln_fact_size(f);
    fact *p = kiln_malloc(sz);
    if (!p)
        return KILN_ERR_NOMEM;
    memcpy(p, f, sz);
    fact *old = kiln_nameset_get(&c->facts, name);
    kiln_status st = kiln_nameset_put(&c->facts, name, p);
    if (st != KILN_OK)
        free(p);
    else
        free(old);
    return st;
}

static void fact_from_type(kiln_freeze_ctx *c, const kiln_type *t, fact *f) {
    kiln_fact_unknown(f, t->kind == KILN_TYPE_TENSOR ? t->elem : KILN_DTYPE_UNDEFINED);
    if (t->kind != KILN_TYPE_TENSOR || t->rank < 0 || t->rank > KILN_MAX_RANK)
        return;
    f->rank = t->rank;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i].value >= 0)
            f->dims[i] = kiln_sd_const(t->dims[i].value);
        else if (t->dims[i].param && *t->dims[i].param)
            f->dims[i] = kiln_sd_sym(intern(c, t->dims[i].param));
        else
            f->dims[i] = kiln_sd_unknown();
    }
}

/* Fills the unknown parts of f from a declared type (value_info). */
static void fact_merge_declared(kiln_freeze_ctx *c, fact *f, const kiln_type *t) {
    fact d;
    fact_from_type(c, t, &d);
    if (f->dt == KILN_DTYPE_UNDEFINED)
        f->dt = d.dt;
    if (f->rank < 0 && d.rank >= 0) {
        f->rank = d.rank;
        for (int i = 0; i < d.rank; i++)
            f->dims[i] = d.dims[i];
        return;
    }
    if (f->rank == d.rank)
        for (int i = 0; i < f->rank; i++)
            if (!f->dims[i].known)
                f->dims[i] = d.dims[i];
}

/* A declared type against the inferred fact: only what both know exactly
 * (element type, rank, constant dims) can contradict. */
static kiln_status check_declared(const kiln_node *n, const char *name, const fact *f, const kiln_type *t) {
    if (t->kind != KILN_TYPE_TENSOR)
        return KILN_OK;
    char where[160] = "";
    if (n)
        snprintf(where, sizeof where, " (made by node '%s' (%s))", n->name ? n->name : "", n->op_type);
    if (t->elem != KILN_DTYPE_UNDEFINED && f->dt != KILN_DTYPE_UNDEFINED && t->elem != f->dt)
        return kiln_fail(KILN_ERR_INVALID, "value '%s'%s is declared %s but is %s", name, where,
                         kiln_dtype_name(t->elem), kiln_dtype_name(f->dt));
    if (t->rank < 0 || f->rank < 0)
        return KILN_OK;
    if (t->rank != f->rank)
        return kiln_fail(KILN_ERR_INVALID, "value '%s'%s is declared with rank %d but has rank %d", name, where,
                         t->rank, f->rank);
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i].value >= 0 && kiln_sd_is_const(&f->dims[i]) && f->dims[i].num != t->dims[i].value)
            return kiln_fail(KILN_ERR_INVALID, "value '%s'%s is declared with dim %d = %lld but it is %lld", name,
                             where, i, (long long)t->dims[i].value, (long long)f->dims[i].num);
    return KILN_OK;
}

static void refine_type(kiln_type *t, const fact *f) {
    if (t->kind == KILN_TYPE_OTHER || f->rank < 0)
        return;
    if (t->kind == KILN_TYPE_NONE) {
        t->kind = KILN_TYPE_TENSOR;
        t->elem = f->dt;
        t->rank = -1;
    }
    if (t->elem == KILN_DTYPE_UNDEFINED)
        t->elem = f->dt;
    if (t->rank < 0) {
        t->dims = kiln_calloc((size_t)f->rank + 1, sizeof *t->dims);
        if (!t->dims)
            return;
        for (int i = 0; i < f->rank; i++)
            t->dims[i].value = -1;
        t->rank = f->rank;
    }
    if (t->rank != f->rank)
        return;
    for (int i = 0; i < f->rank; i++) {
        const sdim *d = &f->dims[i];
        if (kiln_sd_is_const(d) && d->num >= 0) {
            free(t->dims[i].param);
            t->dims[i].param = NULL;
            t->dims[i].value = d->num;
        } else if (t->dims[i].value < 0 && d->known && d->n == 1 && d->num == 1 && d->den == 1 &&
                   (!t->dims[i].param || strcmp(t->dims[i].param, d->sym[0]) != 0)) {
            /* the inferred symbol comes from the inputs: it says more than
             * an exporter's generated name */
            char *p = kiln_strdup(d->sym[0]);
            if (p) {
                free(t->dims[i].param);
                t->dims[i].param = p;
            }
        }
    }
}

/* ---- one node ---- */

typedef struct node_facts {
    kiln_infer_ctx x;
    fact in[MAX_IN];
    bool has[MAX_IN];
    const kiln_tensor *k[MAX_IN];
    fact out[MAX_OUT];
    const kiln_graph *sub_g[MAX_SUB];
    fact sub_out[MAX_SUB][MAX_OUT]; /* taken right after each subgraph: branches may share names */
    bool sub_known[MAX_SUB][MAX_OUT];
    size_t n_sub;
} node_facts;

static const fact *graph_out(const kiln_infer_ctx *x, const kiln_graph *g, size_t k) {
    const node_facts *nf = x->drv;
    for (size_t a = 0; a < nf->n_sub; a++)
        if (nf->sub_g[a] == g)
            return k < MAX_OUT && nf->sub_known[a][k] ? &nf->sub_out[a][k] : NULL;
    return NULL;
}

static kiln_status shapes_graph(kiln_freeze_ctx *c, kiln_scope *s);

static kiln_status infer_subgraph(kiln_freeze_ctx *c, kiln_scope *s, node_facts *nf, const kiln_graph *sg) {
    kiln_scope ss = {.g = (kiln_graph *)sg, .up = s};
    KILN_TRY(shapes_graph(c, &ss));
    if (nf->n_sub >= MAX_SUB)
        return KILN_OK;
    size_t a = nf->n_sub++;
    nf->sub_g[a] = sg;
    for (size_t k = 0; k < sg->n_outputs && k < MAX_OUT; k++) {
        const fact *bf = kiln_fact(c, sg->outputs[k].name);
        nf->sub_known[a][k] = bf != NULL;
        if (bf)
            kiln_fact_copy(&nf->sub_out[a][k], bf);
    }
    return KILN_OK;
}

/* Facts of n's outputs into nf->out; subgraphs are inferred first. Sets
 * *sub when the node has subgraphs. */
static kiln_status infer_node(kiln_freeze_ctx *c, kiln_scope *s, kiln_node *n, node_facts *nf, bool *sub) {
    size_t ni = n->n_inputs < MAX_IN ? n->n_inputs : MAX_IN, no = n->n_outputs < MAX_OUT ? n->n_outputs : MAX_OUT;
    nf->n_sub = 0;
    for (size_t k = 0; k < ni; k++) {
        kiln_fact_unknown(&nf->in[k], KILN_DTYPE_UNDEFINED);
        nf->has[k] = false;
        nf->k[k] = NULL;
        if (!*n->inputs[k])
            continue;
        nf->has[k] = true;
        nf->k[k] = kiln_edit_const(s, n->inputs[k]);
        const fact *p = kiln_fact(c, n->inputs[k]);
        if (p)
            kiln_fact_copy(&nf->in[k], p);
        else if (nf->k[k])
            kiln_fact_from_tensor(nf->k[k], &nf->in[k]);
    }
    for (size_t k = 0; k < no; k++)
        kiln_fact_unknown(&nf->out[k], KILN_DTYPE_UNDEFINED);
    *sub = false;
    for (size_t a = 0; a < n->n_attrs; a++) {
        if (n->attrs[a].g) {
            KILN_TRY(infer_subgraph(c, s, nf, n->attrs[a].g));
            *sub = true;
        }
        for (size_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++) {
            KILN_TRY(infer_subgraph(c, s, nf, n->attrs[a].graphs[k]));
            *sub = true;
        }
    }
    int64_t opset = n->opset ? n->opset : kiln_model_opset(c->m, n->domain);
    if (opset == 0 && !*n->domain)
        opset = 1;
    const kiln_op_desc *d = ni == n->n_inputs && no == n->n_outputs ? kiln_op_find(n->domain, n->op_type, opset) : NULL;
    nf->x = (kiln_infer_ctx){.node = n,
                             .opset = opset,
                             .n_in = ni,
                             .n_out = no,
                             .in = nf->in,
                             .has = nf->has,
                             .k = nf->k,
                             .out = nf->out,
                             .graph_out = graph_out,
                             .drv = nf};
    if (d && d->infer && d->infer(&nf->x) != KILN_OK) {
        /* only where every node runs: a branch not taken may hold nodes
         * that are invalid for these inputs */
        if (c->check_only && !s->up)
            return kiln_fail_prefix(KILN_ERR_INVALID, "node '%s' (%s): ", n->name ? n->name : "", n->op_type);
        /* the rule found the inputs invalid: the engine will say so when it
         * runs; here nothing is known */
        kiln_clear_error();
        for (size_t k = 0; k < no; k++)
            kiln_fact_unknown(&nf->out[k], KILN_DTYPE_UNDEFINED);
    }
    return KILN_OK;
}

/* Replaces node i (all of whose outputs are known small values) by
 * initializers; an output that is a graph output gets an Identity. */
static kiln_status fold_known(kiln_freeze_ctx *c, kiln_graph *g, size_t i, const node_facts *nf) {
    kiln_node *n = g->nodes[i];
    for (size_t k = 0; k < n->n_outputs; k++) {
        if (!*n->outputs[k])
            continue;
        kiln_tensor *t;
        KILN_TRY(kiln_fact_make_const(&nf->out[k], &t));
        if (kiln_edit_is_output(g, n->outputs[k])) {
            const char *cn;
            kiln_node *id;
            KILN_TRY(kiln_edit_new_const(g, &c->names, n->outputs[k], t, &cn));
            KILN_TRY(kiln_edit_node_new("Identity", "", 1, &cn, 1, (const char *const *)&n->outputs[k], &id));
            kiln_status st = kiln_edit_insert(g, i + 1, id);
            if (st != KILN_OK) {
                kiln_node_destroy(id);
                return st;
            }
        } else {
            KILN_TRY(kiln_edit_set_const(g, n->outputs[k], t));
        }
    }
    kiln_graph_remove_node(g, i);
    c->rep->shapes_folded++;
    c->changed = true;
    return KILN_OK;
}

static kiln_status shapes_graph(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    fact f;
    for (size_t i = 0; i < g->n_inputs; i++) {
        fact_from_type(c, &g->inputs[i].type, &f);
        KILN_TRY(put_fact(c, g->inputs[i].name, &f));
    }
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name && !kiln_edit_is_input(g, g->inits[i]->name)) {
            kiln_fact_from_tensor(g->inits[i], &f);
            KILN_TRY(put_fact(c, g->inits[i]->name, &f));
        }
    node_facts *nf = kiln_malloc(sizeof *nf);
    if (!nf)
        return KILN_ERR_NOMEM;
    kiln_status st = KILN_OK;
    kiln_nameset declared = {0}; /* value_info by name */
    for (size_t v = 0; st == KILN_OK && v < g->n_value_info; v++)
        st = kiln_nameset_put(&declared, g->value_info[v].name, &g->value_info[v]);
    for (size_t i = 0; st == KILN_OK && i < g->n_nodes;) {
        kiln_node *n = g->nodes[i];
        bool sub;
        if ((st = infer_node(c, s, n, nf, &sub)) != KILN_OK)
            break;
        size_t no = nf->x.n_out;
        /* declared value_info fills what the rules leave open */
        for (size_t k = 0; st == KILN_OK && k < no; k++) {
            const kiln_value_info *vi = *n->outputs[k] ? kiln_nameset_get(&declared, n->outputs[k]) : NULL;
            if (vi && c->check_only && !s->up)
                st = check_declared(n, n->outputs[k], &nf->out[k], &vi->type);
            if (vi)
                fact_merge_declared(c, &nf->out[k], &vi->type);
        }
        if (st != KILN_OK)
            break;
        for (size_t k = 0; st == KILN_OK && k < no; k++)
            st = put_fact(c, n->outputs[k], &nf->out[k]);
        if (st != KILN_OK)
            break;
        /* fold what became known (unless the folding pass evaluates it anyway) */
        bool all = n->n_outputs > 0 && n->n_outputs == no && !sub;
        for (size_t k = 0; all && k < no; k++)
            if (*n->outputs[k] && !kiln_fact_foldable(&nf->out[k]))
                all = false;
        bool inputs_const = true;
        for (size_t k = 0; k < n->n_inputs; k++)
            if (*n->inputs[k] && !(k < MAX_IN && nf->k[k]))
                inputs_const = false;
        if (c->check_only) {
            i++;
            continue;
        }
        if (all && !(inputs_const && kiln_eval_supported(c->m, n))) {
            st = fold_known(c, g, i, nf);
            continue;
        }
        st = kiln_shape_fold_node(c, g, n, &nf->x);
        i++;
    }
    free(nf);
    kiln_nameset_free(&declared, NULL);
    if (st == KILN_OK && !s->up && !c->check_only)
        for (size_t i = 0; i < g->n_outputs; i++) {
            const fact *o = kiln_fact(c, g->outputs[i].name);
            if (o)
                refine_type(&g->outputs[i].type, o);
        }
    for (size_t i = 0; st == KILN_OK && c->check_only && !s->up && i < g->n_outputs; i++) {
        const fact *o = kiln_fact(c, g->outputs[i].name);
        if (o)
            st = check_declared(NULL, g->outputs[i].name, o, &g->outputs[i].type);
    }
    return st;
}

kiln_status kiln_shapes_check(const kiln_model *m, const kiln_graph *g) {
    kiln_freeze_ctx c = {.m = (kiln_model *)m, .opset = kiln_model_opset(m, ""), .check_only = true};
    kiln_scope top = {.g = (kiln_graph *)g};
    kiln_status st = shapes_graph(&c, &top);
    kiln_shapes_free(&c);
    return st;
}

kiln_status kiln_pass_shapes(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_nameset_free(&c->facts, fact_free);
    return shapes_graph(c, s);
}
