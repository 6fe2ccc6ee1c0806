/* Constant nodes to initializers, constant folding through kiln's engine,
 * pruning of dead nodes, initializers and inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

kiln_status kiln_pass_subgraphs(kiln_freeze_ctx *c, kiln_scope *s, kiln_status (*fn)(kiln_freeze_ctx *, kiln_scope *)) {
    for (size_t i = 0; i < s->g->n_nodes; i++) {
        kiln_node *n = s->g->nodes[i];
        for (size_t a = 0; a < n->n_attrs; a++) {
            kiln_attr *at = &n->attrs[a];
            if (at->g) {
                kiln_scope sub = {.g = at->g, .up = s};
                KILN_TRY(fn(c, &sub));
            }
            for (size_t k = 0; at->graphs && k < at->n; k++) {
                kiln_scope sub = {.g = at->graphs[k], .up = s};
                KILN_TRY(fn(c, &sub));
            }
        }
    }
    return KILN_OK;
}

static bool has_subgraph(const kiln_node *n) {
    for (size_t a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g || n->attrs[a].graphs)
            return true;
    return false;
}

/* ---- Constant -> initializer ---- */

static kiln_status constant_value(const kiln_node *n, kiln_tensor **out) {
    *out = NULL;
    if (n->n_attrs != 1)
        return KILN_OK;
    const kiln_attr *a = &n->attrs[0];
    kiln_dtype dt = KILN_DTYPE_UNDEFINED;
    int rank = 0;
    int64_t dims[1] = {0};
    if (!strcmp(a->name, "value") && a->type == KILN_ATTR_TENSOR && a->t)
        return kiln_tensor_share(a->t, out);
    if (!strcmp(a->name, "value_float") && a->type == KILN_ATTR_FLOAT)
        dt = KILN_DTYPE_FLOAT;
    else if (!strcmp(a->name, "value_int") && a->type == KILN_ATTR_INT)
        dt = KILN_DTYPE_INT64;
    else if (!strcmp(a->name, "value_floats") && a->type == KILN_ATTR_FLOATS)
        dt = KILN_DTYPE_FLOAT, rank = 1, dims[0] = (int64_t)a->n;
    else if (!strcmp(a->name, "value_ints") && a->type == KILN_ATTR_INTS)
        dt = KILN_DTYPE_INT64, rank = 1, dims[0] = (int64_t)a->n;
    else
        return KILN_OK; /* strings, sparse: left as they are */
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, dt, rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    if (a->type == KILN_ATTR_FLOAT)
        *(float *)t->data = a->f;
    else if (a->type == KILN_ATTR_INT)
        *(int64_t *)t->data = a->i;
    else if (a->type == KILN_ATTR_FLOATS && a->n)
        memcpy(t->data, a->floats, a->n * sizeof(float));
    else if (a->type == KILN_ATTR_INTS && a->n)
        memcpy(t->data, a->ints, a->n * sizeof(int64_t));
    *out = t;
    return KILN_OK;
}

/* Replaces output k of node i by constant t (taken). A graph output keeps
 * its producer: an Identity reading a fresh initializer. */
static kiln_status set_output_const(kiln_freeze_ctx *c, kiln_graph *g, const char *name, kiln_tensor *t) {
    if (!kiln_edit_is_output(g, name))
        return kiln_edit_set_const(g, name, t);
    const char *cn;
    KILN_TRY(kiln_edit_new_const(g, &c->names, name, t, &cn));
    kiln_node *id;
    KILN_TRY(kiln_edit_node_new("Identity", "", 1, &cn, 1, &name, &id));
    kiln_status st = kiln_graph_add_node(g, id);
    if (st != KILN_OK)
        kiln_node_destroy(id);
    return st;
}

/* Removes node i whose outputs all became constants (set afterwards). */
static kiln_status replace_by_consts(kiln_freeze_ctx *c, kiln_graph *g, size_t i, kiln_tensor **vals) {
    kiln_node *n = g->nodes[i];
    g->nodes[i] = NULL;
    memmove(&g->nodes[i], &g->nodes[i + 1], (g->n_nodes - i - 1) * sizeof *g->nodes);
    g->n_nodes--;
    kiln_status st = KILN_OK;
    for (size_t k = 0; k < n->n_outputs; k++) {
        if (!*n->outputs[k] || !vals[k]) {
            kiln_tensor_destroy(vals[k]);
            continue;
        }
        kiln_edit_drop_value_info(g, n->outputs[k]);
        kiln_status s2 = set_output_const(c, g, n->outputs[k], vals[k]);
        if (s2 != KILN_OK && st == KILN_OK)
            st = s2;
    }
    kiln_node_destroy(n);
    c->changed = true;
    return st;
}

kiln_status kiln_pass_constants(kiln_freeze_ctx *c, kiln_graph *g) {
    for (size_t i = 0; i < g->n_nodes;) {
        kiln_node *n = g->nodes[i];
        if (strcmp(n->op_type, "Constant") != 0 || *n->domain || n->n_outputs != 1 || !*n->outputs[0] ||
            kiln_edit_is_output(g, n->outputs[0])) {
            i++;
            continue;
        }
        kiln_tensor *t;
        KILN_TRY(constant_value(n, &t));
        if (!t) {
            i++;
            continue;
        }
        KILN_TRY(replace_by_consts(c, g, i, &t));
    }
    return KILN_OK;
}

/* ---- folding ---- */

static bool nondeterministic(const kiln_node *n) {
    static const char *ops[] = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                                "Multinomial", "Bernoulli"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!strcmp(n->op_type, ops[i]))
            return true;
    return false;
}

/* Elements a growing op would produce, estimated before running it so a
 * huge ConstantOfShape is never allocated; -1 when not a growing op. */
static int64_t grow_estimate(const kiln_node *n, const kiln_tensor *const *in) {
    const char *op = n->op_type;
    int64_t e = 1;
    if (!strcmp(op, "ConstantOfShape") && in[0]) {
        for (int64_t i = 0; i < in[0]->numel; i++)
            if (kiln_mul_overflow_i64(e, kiln_tensor_get_i64(in[0], i) < 0 ? 0 : kiln_tensor_get_i64(in[0], i), &e))
                return INT64_MAX;
        return e;
    }
    if ((!strcmp(op, "Expand") || !strcmp(op, "Tile")) && n->n_inputs >= 2 && in[0] && in[1]) {
        e = in[0]->numel;
        for (int64_t i = 0; i < in[1]->numel; i++) {
            int64_t v = kiln_tensor_get_i64(in[1], i);
            if (v > 1 && kiln_mul_overflow_i64(e, v, &e))
                return INT64_MAX;
        }
        return e;
    }
    if (!strcmp(op, "Range") && n->n_inputs >= 3 && in[0] && in[1] && in[2]) {
        double s = kiln_tensor_get_f64(in[0], 0), l = kiln_tensor_get_f64(in[1], 0), d = kiln_tensor_get_f64(in[2], 0);
        if (d == 0)
            return -1;
        double k = (l - s) / d;
        return k > 9e18 ? INT64_MAX : k < 0 ? 0 : (int64_t)k + 1;
    }
    return -1;
}

static kiln_status fold_graph(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    const kiln_tensor *ins[64];
    kiln_tensor *outs[64];
    for (size_t i = 0; i < g->n_nodes;) {
        kiln_node *n = g->nodes[i];
        bool ok = n->n_outputs > 0 && n->n_inputs > 0 && n->n_inputs <= 64 && n->n_outputs <= 64 &&
                  !has_subgraph(n) && !nondeterministic(n);
        /* Identity(constant) -> graph output is already the folded form */
        if (ok && !strcmp(n->op_type, "Identity") && kiln_edit_is_output(g, n->outputs[0]))
            ok = false;
        /* DequantizeLinear of constant weights stays: QDQ is the format
         * quantizing runtimes read, and folding would trade int8 weights for
         * float copies four times their size */
        if (ok && !*n->domain && !strcmp(n->op_type, "DequantizeLinear"))
            ok = false;
        int64_t in_bytes = 0;
        for (size_t k = 0; ok && k < n->n_inputs; k++) {
            ins[k] = NULL;
            if (!*n->inputs[k])
                continue;
            ins[k] = kiln_edit_const(s, n->inputs[k]);
            if (!ins[k])
                ok = false;
            else
                in_bytes += (int64_t)ins[k]->nbytes;
        }
        if (!ok || !kiln_eval_supported(c->m, n)) {
            i++;
            continue;
        }
        if (c->fold_limit > 0) {
            int64_t est = grow_estimate(n, ins);
            const kiln_shape_fact *f = kiln_fact(c, n->outputs[0]);
            size_t esz = f && f->dt ? kiln_dtype_size(f->dt) : 4;
            if (est > 0 && (est > INT64_MAX / 16 || est * (int64_t)esz > c->fold_limit) &&
                est * (int64_t)esz > in_bytes) {
                kiln_report_skip(c, n, "result of about %lld bytes exceeds the fold limit of %lld bytes and would grow the model",
                                 est > INT64_MAX / 16 ? (long long)INT64_MAX : (long long)(est * (int64_t)esz),
                                 (long long)c->fold_limit);
                i++;
                continue;
            }
        }
        kiln_status st = kiln_eval_node(c->m, n, ins, outs);
        if (st == KILN_ERR_NOMEM)
            return st;
        if (st != KILN_OK) {
            kiln_report_skip(c, n, "evaluation failed: %s", kiln_last_error());
            i++;
            continue;
        }
        int64_t out_bytes = 0;
        for (size_t k = 0; k < n->n_outputs; k++)
            if (outs[k])
                out_bytes += (int64_t)outs[k]->nbytes;
        if (c->fold_limit > 0 && out_bytes > c->fold_limit && out_bytes > in_bytes) {
            kiln_report_skip(c, n, "result of %lld bytes exceeds the fold limit of %lld bytes and would grow the model",
                             (long long)out_bytes, (long long)c->fold_limit);
            for (size_t k = 0; k < n->n_outputs; k++)
                kiln_tensor_destroy(outs[k]);
            i++;
            continue;
        }
        KILN_TRY(replace_by_consts(c, g, i, outs));
        c->rep->folded++;
    }
    return kiln_pass_subgraphs(c, s, fold_graph);
}

kiln_status kiln_pass_fold(kiln_freeze_ctx *c, kiln_scope *s) { return fold_graph(c, s); }

/* ---- pruning ---- */

static kiln_status mark_uses(kiln_nameset *live, const kiln_graph *g);

static kiln_status mark_node(kiln_nameset *live, const kiln_node *n) {
    for (size_t k = 0; k < n->n_inputs; k++)
        if (*n->inputs[k])
            KILN_TRY(kiln_nameset_put(live, n->inputs[k], NULL));
    for (size_t a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        if (at->g)
            KILN_TRY(mark_uses(live, at->g));
        for (size_t k = 0; at->graphs && k < at->n; k++)
            KILN_TRY(mark_uses(live, at->graphs[k]));
    }
    return KILN_OK;
}

/* Everything a subgraph reads (captures included, over-approximated). */
static kiln_status mark_uses(kiln_nameset *live, const kiln_graph *g) {
    for (size_t i = 0; i < g->n_outputs; i++)
        KILN_TRY(kiln_nameset_put(live, g->outputs[i].name, NULL));
    for (size_t i = 0; i < g->n_nodes; i++)
        KILN_TRY(mark_node(live, g->nodes[i]));
    return KILN_OK;
}

static kiln_status prune_graph(kiln_freeze_ctx *c, kiln_graph *g, bool top, bool inputs) {
    /* inner graphs first: what they stop reading frees values here */
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g)
                KILN_TRY(prune_graph(c, n->attrs[a].g, false, false));
            for (size_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++)
                KILN_TRY(prune_graph(c, n->attrs[a].graphs[k], false, false));
        }
    }
    kiln_nameset live = {0};
    kiln_status st = KILN_OK;
    for (size_t i = 0; st == KILN_OK && i < g->n_outputs; i++)
        st = kiln_nameset_put(&live, g->outputs[i].name, NULL);
    for (size_t i = g->n_nodes; st == KILN_OK && i-- > 0;) {
        kiln_node *n = g->nodes[i];
        bool needed = false;
        for (size_t k = 0; k < n->n_outputs; k++)
            if (*n->outputs[k] && kiln_nameset_has(&live, n->outputs[k]))
                needed = true;
        if (needed) {
            st = mark_node(&live, n);
        } else {
            kiln_graph_remove_node(g, i);
            c->rep->nodes_pruned++;
            c->changed = true;
        }
    }
    for (size_t i = 0; st == KILN_OK && i < g->n_inits;) {
        const char *nm = g->inits[i]->name;
        if (nm && !kiln_nameset_has(&live, nm) && !kiln_edit_is_input(g, nm))
            kiln_graph_remove_init(g, i);
        else
            i++;
    }
    if (st == KILN_OK && top && inputs)
        for (size_t i = 0; i < g->n_inputs;) {
            if (!kiln_nameset_has(&live, g->inputs[i].name)) {
                size_t ii;
                if (kiln_graph_find_init(g, g->inputs[i].name, &ii))
                    kiln_graph_remove_init(g, ii);
                kiln_sbuf_printf(&c->rep->inputs_removed, "%s", c->rep->n_inputs_removed ? ", " : "");
                kiln_sbuf_json_string(&c->rep->inputs_removed, g->inputs[i].name);
                kiln_sbuf_printf(&c->rep->text_bound, "  input removed (unused): %s\n", g->inputs[i].name);
                c->rep->n_inputs_removed++;
                kiln_value_info_clear(&g->inputs[i]);
                memmove(&g->inputs[i], &g->inputs[i + 1], (g->n_inputs - i - 1) * sizeof *g->inputs);
                g->n_inputs--;
            } else {
                i++;
            }
        }
    /* value_info only for values nodes of this graph still produce */
    kiln_nameset made = {0};
    for (size_t i = 0; st == KILN_OK && i < g->n_nodes; i++)
        for (size_t k = 0; st == KILN_OK && k < g->nodes[i]->n_outputs; k++)
            st = kiln_nameset_put(&made, g->nodes[i]->outputs[k], NULL);
    for (size_t i = 0; st == KILN_OK && i < g->n_value_info;) {
        if (!kiln_nameset_has(&made, g->value_info[i].name) || kiln_edit_is_output(g, g->value_info[i].name)) {
            kiln_value_info_clear(&g->value_info[i]);
            memmove(&g->value_info[i], &g->value_info[i + 1], (g->n_value_info - i - 1) * sizeof *g->value_info);
            g->n_value_info--;
        } else {
            i++;
        }
    }
    kiln_nameset_free(&made, NULL);
    kiln_nameset_free(&live, NULL);
    return st;
}

kiln_status kiln_pass_prune(kiln_freeze_ctx *c, kiln_graph *g, bool top, bool inputs) {
    return prune_graph(c, g, top, inputs);
}
