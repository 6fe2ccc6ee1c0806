/* Control flow on constants: an If whose condition is constant is replaced
 * by its taken branch, inlined; a Loop with a constant trip count (and a
 * constant or absent condition the body keeps true) is unrolled within the
 * configured budget. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* How many times `name` is defined (node output, initializer, graph input)
 * anywhere in g and its subgraphs. */
static int count_defs(const kiln_graph *g, const char *name) {
    int n = 0;
    for (size_t i = 0; i < g->n_inputs; i++)
        n += strcmp(g->inputs[i].name, name) == 0;
    for (size_t i = 0; i < g->n_inits; i++)
        n += g->inits[i]->name && strcmp(g->inits[i]->name, name) == 0 && !kiln_edit_is_input(g, name);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *nd = g->nodes[i];
        for (size_t k = 0; k < nd->n_outputs; k++)
            n += strcmp(nd->outputs[k], name) == 0;
        for (size_t a = 0; a < nd->n_attrs; a++) {
            if (nd->attrs[a].g)
                n += count_defs(nd->attrs[a].g, name);
            for (size_t k = 0; nd->attrs[a].graphs && k < nd->attrs[a].n; k++)
                n += count_defs(nd->attrs[a].graphs[k], name);
        }
    }
    return n;
}

static kiln_status take_nodes_at(kiln_graph *g, size_t idx, kiln_node **nodes, size_t n) {
    for (size_t k = 0; k < n; k++) {
        kiln_status st = kiln_edit_insert(g, idx + k, nodes[k]);
        if (st != KILN_OK) {
            for (size_t j = k; j < n; j++)
                kiln_node_destroy(nodes[j]);
            return st;
        }
        nodes[k] = NULL;
    }
    return KILN_OK;
}

static kiln_status add_identity(kiln_graph *g, size_t idx, const char *from, const char *to) {
    kiln_node *id;
    KILN_TRY(kiln_edit_node_new("Identity", "", 1, &from, 1, &to, &id));
    kiln_status st = kiln_edit_insert(g, idx, id);
    if (st != KILN_OK)
        kiln_node_destroy(id);
    return st;
}

static bool const_true(const kiln_tensor *t) {
    return t && t->numel == 1 && t->dtype != KILN_DTYPE_STRING && kiln_tensor_get_f64(t, 0) != 0;
}

/* ---- If ---- */

static kiln_status inline_if(kiln_freeze_ctx *c, kiln_scope *s, size_t idx, bool cond, bool *done) {
    kiln_graph *g = s->g;
    kiln_node *n = g->nodes[idx];
    kiln_attr *at = NULL;
    *done = false;
    for (size_t a = 0; a < n->n_attrs; a++)
        if (!strcmp(n->attrs[a].name, cond ? "then_branch" : "else_branch") && n->attrs[a].g)
            at = &n->attrs[a];
    if (!at || at->g->n_outputs != n->n_outputs)
        return KILN_OK; /* malformed: leave it for the checker to report */
    *done = true;
    kiln_graph *b = at->g;
    at->g = NULL; /* the branch is ours now */
    at->type = KILN_ATTR_UNDEFINED;
    kiln_status st = KILN_OK;
    /* the whole model, for collision checks: walk from the outermost scope */
    const kiln_scope *root = s;
    while (root->up)
        root = root->up;
    /* local names that exist elsewhere get fresh ones */
    for (size_t i = 0; st == KILN_OK && i < b->n_nodes; i++)
        for (size_t k = 0; st == KILN_OK && k < b->nodes[i]->n_outputs; k++) {
            const char *o = b->nodes[i]->outputs[k];
            if (!*o || count_defs(root->g, o) == 0) /* b is detached: any def found collides */
                continue;
            char *old = kiln_strdup(o), *nw = kiln_edit_fresh_name(&c->names, o);
            if (!old || !nw)
                st = KILN_ERR_NOMEM;
            else
                st = kiln_edit_rename_all(b, old, nw);
            free(old);
            free(nw);
        }
    for (size_t i = 0; st == KILN_OK && i < b->n_inits; i++) {
        const char *o = b->inits[i]->name;
        if (!o || count_defs(root->g, o) == 0)
            continue;
        char *old = kiln_strdup(o), *nw = kiln_edit_fresh_name(&c->names, o);
        if (!old || !nw)
            st = KILN_ERR_NOMEM;
        else
            st = kiln_edit_rename_all(b, old, nw);
        free(old);
        free(nw);
    }
    /* branch outputs take the If's output names where the branch makes them */
    size_t n_ident = 0;
    const char **ident_from = kiln_calloc(b->n_outputs + 1, sizeof *ident_from);
    const char **ident_to = kiln_calloc(b->n_outputs + 1, sizeof *ident_to);
    if (!ident_from || !ident_to)
        st = KILN_ERR_NOMEM;
    for (size_t k = 0; st == KILN_OK && k < b->n_outputs; k++) {
        const char *o = b->outputs[k].name, *y = n->outputs[k];
        if (!*y)
            continue;
        bool once = true;
        for (size_t j = 0; j < b->n_outputs; j++)
            if (j != k && !strcmp(b->outputs[j].name, o))
                once = false;
        if (once && kiln_edit_producer(b, o) >= 0) {
            char *old = kiln_strdup(o);
            st = old ? kiln_edit_rename_all(b, old, y) : KILN_ERR_NOMEM;
            free(old);
        } else {
            ident_from[n_ident] = o;
            ident_to[n_ident++] = y;
        }
    }
    /* move initializers and nodes into g in place of the If */
    size_t nb = b->n_nodes;
    if (st == KILN_OK) {
        for (size_t i = 0; st == KILN_OK && i < b->n_inits; i++) {
            st = kiln_graph_add_init(g, b->inits[i]);
            if (st == KILN_OK)
                b->inits[i] = NULL;
        }
        if (st == KILN_OK)
            b->n_inits = 0;
        kiln_graph_inits_changed(b);
    }
    if (st == KILN_OK) {
        g->nodes[idx] = NULL;
        memmove(&g->nodes[idx], &g->nodes[idx + 1], (g->n_nodes - idx - 1) * sizeof *g->nodes);
        g->n_nodes--;
        st = take_nodes_at(g, idx, b->nodes, nb);
        if (st == KILN_OK)
            b->n_nodes = 0;
        for (size_t k = 0; st == KILN_OK && k < n_ident; k++)
            st = add_identity(g, idx + nb + k, ident_from[k], ident_to[k]);
        kiln_node_destroy(n);
    }
    free(ident_from);
    free(ident_to);
    kiln_graph_destroy(b);
    if (st == KILN_OK) {
        c->rep->ifs_inlined++;
        c->changed = true;
    }
    return st;
}

/* ---- Loop ---- */

typedef struct unroll {
    kiln_freeze_ctx *c;
    kiln_graph *g;
    kiln_nameset map; /* body name -> char* name in g */
    kiln_node **out;
    size_t n_out, cap_out;
} unroll;

static const char *mapped(const unroll *u, const char *name) {
    const char *m = kiln_nameset_get(&u->map, name);
    return m ? m : name;
}

static kiln_status map_to(unroll *u, const char *from, const char *to) {
    char *d = kiln_strdup(to);
    if (!d)
        return KILN_ERR_NOMEM;
    free(kiln_nameset_get(&u->map, from));
    kiln_status st = kiln_nameset_put(&u->map, from, d);
    if (st != KILN_OK)
        free(d);
    return st;
}

static kiln_status emit(unroll *u, kiln_node *n) {
    if (u->n_out == u->cap_out) {
        size_t cap = u->cap_out ? u->cap_out * 2 : 64;
        kiln_node **p = kiln_realloc(u->out, cap * sizeof *p);
        if (!p) {
            kiln_node_destroy(n);
            return KILN_ERR_NOMEM;
        }
        u->out = p;
        u->cap_out = cap;
    }
    u->out[u->n_out++] = n;
    return KILN_OK;
}

static kiln_status set_name(char **slot, const char *v) {
    char *d = kiln_strdup(v);
    if (!d)
        return KILN_ERR_NOMEM;
    free(*slot);
    *slot = d;
    return KILN_OK;
}

static kiln_status rename_captures(unroll *u, kiln_graph *sub) {
    for (size_t i = 0; i < u->map.cap; i++)
        if (u->map.keys[i])
            KILN_TRY(kiln_edit_rename_uses(sub, u->map.keys[i], u->map.vals[i]));
    return KILN_OK;
}

static kiln_status copy_iteration(unroll *u, const kiln_graph *body) {
    for (size_t i = 0; i < body->n_nodes; i++) {
        kiln_node *n;
        KILN_TRY(kiln_edit_node_clone(body->nodes[i], &n));
        kiln_status st = KILN_OK;
        for (size_t k = 0; st == KILN_OK && k < n->n_inputs; k++)
            if (*n->inputs[k])
                st = set_name(&n->inputs[k], mapped(u, n->inputs[k]));
        for (size_t a = 0; st == KILN_OK && a < n->n_attrs; a++) {
            if (n->attrs[a].g)
                st = rename_captures(u, n->attrs[a].g);
            for (size_t k = 0; st == KILN_OK && n->attrs[a].graphs && k < n->attrs[a].n; k++)
                st = rename_captures(u, n->attrs[a].graphs[k]);
        }
        for (size_t k = 0; st == KILN_OK && k < n->n_outputs; k++) {
            if (!*n->outputs[k])
                continue;
            char *fresh = kiln_edit_fresh_name(&u->c->names, n->outputs[k]);
            if (!fresh) {
                st = KILN_ERR_NOMEM;
                break;
            }
            st = map_to(u, body->nodes[i]->outputs[k], fresh);
            if (st == KILN_OK)
                st = set_name(&n->outputs[k], fresh);
            free(fresh);
        }
        if (st == KILN_OK && n->name && *n->name) {
            char *fresh = kiln_edit_fresh_name(&u->c->names, n->name);
            st = fresh ? set_name(&n->name, fresh) : KILN_ERR_NOMEM;
            free(fresh);
        }
        if (st != KILN_OK) {
            kiln_node_destroy(n);
            return st;
        }
        KILN_TRY(emit(u, n));
    }
    return KILN_OK;
}

/* Whether the body's condition output stays true when fed true. */
static bool cond_stays_true(const kiln_scope *bs, const char *cond_in, const char *cond_out) {
    const kiln_graph *b = bs->g;
    for (int depth = 0; depth < 8; depth++) {
        if (!strcmp(cond_out, cond_in))
            return true;
        const kiln_tensor *t = kiln_edit_const(bs, cond_out);
        if (t)
            return const_true(t);
        long p = kiln_edit_producer(b, cond_out);
        if (p < 0)
            return false;
        const kiln_node *n = b->nodes[p];
        if (strcmp(n->op_type, "Identity") != 0 || n->n_inputs != 1)
            return false;
        cond_out = n->inputs[0];
    }
    return false;
}

static kiln_status empty_scan(unroll *u, const kiln_value_info *vi, const char *name) {
    const kiln_type *t = &vi->type;
    int64_t dims[KILN_MAX_RANK + 1] = {0};
    int rank = 1;
    if (t->rank >= 0 && t->rank < KILN_MAX_RANK) {
        bool all = true;
        for (int i = 0; i < t->rank; i++)
            if (t->dims[i].value < 0)
                all = false;
        if (all) {
            for (int i = 0; i < t->rank; i++)
                dims[i + 1] = t->dims[i].value;
            rank = t->rank + 1;
        }
    }
    kiln_tensor *e = kiln_tensor_new();
    if (!e)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(e, t->elem, rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(e);
    if (st != KILN_OK) {
        kiln_tensor_destroy(e);
        return st;
    }
    const char *cn;
    KILN_TRY(kiln_edit_new_const(u->g, &u->c->names, name, e, &cn));
    kiln_node *id;
    KILN_TRY(kiln_edit_node_new("Identity", "", 1, &cn, 1, &name, &id));
    return emit(u, id);
}

static kiln_status unroll_loop(kiln_freeze_ctx *c, kiln_scope *s, size_t idx, bool *done) {
    kiln_graph *g = s->g;
    kiln_node *n = g->nodes[idx];
    *done = false;
    const kiln_graph *body = kiln_attr_graph(n, "body");
    if (!body || n->n_inputs < 2 || body->n_inputs != n->n_inputs || body->n_outputs < n->n_inputs - 1)
        return KILN_OK;
    size_t n_carried = n->n_inputs - 2, n_scan = body->n_outputs - 1 - n_carried;
    if (n->n_outputs != n_carried + n_scan)
        return KILN_OK;
    const kiln_tensor *mt = *n->inputs[0] ? kiln_edit_const(s, n->inputs[0]) : NULL;
    if (!mt || mt->numel != 1 || mt->dtype == KILN_DTYPE_STRING)
        return KILN_OK;
    int64_t trips = kiln_tensor_get_i64(mt, 0);
    bool has_cond = *n->inputs[1];
    if (has_cond) {
        const kiln_tensor *ct = kiln_edit_const(s, n->inputs[1]);
        if (!ct)
            return KILN_OK;
        if (!const_true(ct))
            trips = 0;
    }
    if (trips < 0)
        trips = 0;
    kiln_scope bs = {.g = (kiln_graph *)body, .up = s};
    if (trips > 0 && has_cond && !cond_stays_true(&bs, body->inputs[1].name, body->outputs[0].name))
        return KILN_OK;
    if (trips > c->unroll_limit || c->unroll_limit < 0) {
        kiln_report_skip(c, n, "Loop of %lld iterations exceeds the unroll limit of %lld", (long long)trips,
                         (long long)c->unroll_limit);
        return KILN_OK;
    }
    if (trips * (int64_t)(body->n_nodes + 2 * n_scan) > c->unroll_node_limit) {
        kiln_report_skip(c, n, "unrolling would add %lld nodes, over the limit of %lld",
                         (long long)(trips * (int64_t)body->n_nodes), (long long)c->unroll_node_limit);
        return KILN_OK;
    }
    for (size_t k = 0; trips == 0 && k < n_scan; k++)
        if (*n->outputs[n_carried + k] && body->outputs[1 + n_carried + k].type.elem == KILN_DTYPE_UNDEFINED)
            return KILN_OK; /* cannot type the empty scan output */

    unroll u = {.c = c, .g = g};
    kiln_status st = KILN_OK;
    char **cur = kiln_calloc(n_carried + 1, sizeof *cur);
    char ***scans = kiln_calloc(n_scan + 1, sizeof *scans);
    if (!cur || !scans)
        st = KILN_ERR_NOMEM;
    for (size_t k = 0; st == KILN_OK && k < n_carried; k++)
        if (!(cur[k] = kiln_strdup(n->inputs[2 + k])))
            st = KILN_ERR_NOMEM;
    for (size_t k = 0; st == KILN_OK && k < n_scan; k++)
        if (!(scans[k] = kiln_calloc((size_t)trips + 1, sizeof **scans)))
            st = KILN_ERR_NOMEM;
    /* body initializers: once, shared by every iteration */
    for (size_t i = 0; st == KILN_OK && i < body->n_inits; i++) {
        if (!body->inits[i]->name || kiln_edit_is_input(body, body->inits[i]->name))
            continue;
        kiln_tensor *t;
        const char *nm;
        st = kiln_tensor_share(body->inits[i], &t);
        if (st == KILN_OK)
            st = kiln_edit_new_const(g, &c->names, body->inits[i]->name, t, &nm);
        if (st == KILN_OK)
            st = map_to(&u, body->inits[i]->name, nm);
    }
    const char *true_name = NULL;
    if (st == KILN_OK && trips > 0) {
        kiln_tensor *t = kiln_tensor_new();
        st = t ? kiln_tensor_init_shape(t, KILN_DTYPE_BOOL, 0, NULL) : KILN_ERR_NOMEM;
        if (st == KILN_OK && (st = kiln_tensor_alloc_data(t)) == KILN_OK)
            *(uint8_t *)t->data = 1;
        if (st == KILN_OK)
            st = kiln_edit_new_const(g, &c->names, "loop_cond_true", t, &true_name);
        else
            kiln_tensor_destroy(t);
    }
    for (int64_t it = 0; st == KILN_OK && it < trips; it++) {
        const char *iter_name;
        int64_t v = it;
        st = kiln_edit_const_i64(g, &c->names, "loop_iter", 0, NULL, &v, &iter_name);
        if (st == KILN_OK && *body->inputs[0].name)
            st = map_to(&u, body->inputs[0].name, iter_name);
        if (st == KILN_OK && *body->inputs[1].name)
            st = map_to(&u, body->inputs[1].name, true_name);
        for (size_t k = 0; st == KILN_OK && k < n_carried; k++)
            st = map_to(&u, body->inputs[2 + k].name, cur[k]);
        if (st == KILN_OK)
            st = copy_iteration(&u, body);
        for (size_t k = 0; st == KILN_OK && k < n_carried; k++)
            st = set_name(&cur[k], mapped(&u, body->outputs[1 + k].name));
        for (size_t k = 0; st == KILN_OK && k < n_scan; k++)
            if (!(scans[k][it] = kiln_strdup(mapped(&u, body->outputs[1 + n_carried + k].name))))
                st = KILN_ERR_NOMEM;
    }
    for (size_t k = 0; st == KILN_OK && k < n_carried; k++) {
        const char *y = n->outputs[k];
        if (!*y)
            continue;
        kiln_node *id;
        st = kiln_edit_node_new("Identity", "", 1, (const char *const *)&cur[k], 1, &y, &id);
        if (st == KILN_OK)
            st = emit(&u, id);
    }
    const char *axes_name = NULL;
    for (size_t k = 0; st == KILN_OK && k < n_scan; k++) {
        const char *y = n->outputs[n_carried + k];
        if (!*y)
            continue;
        if (trips == 0) {
            st = empty_scan(&u, &body->outputs[1 + n_carried + k], y);
            continue;
        }
        char **parts = kiln_calloc((size_t)trips + 1, sizeof *parts);
        if (!parts) {
            st = KILN_ERR_NOMEM;
            break;
        }
        for (int64_t it = 0; st == KILN_OK && it < trips; it++) {
            /* scan outputs stack along a new axis 0 */
            parts[it] = kiln_edit_fresh_name(&c->names, y);
            if (!parts[it]) {
                st = KILN_ERR_NOMEM;
                break;
            }
            kiln_node *un;
            int64_t zero = 0;
            if (c->opset >= 13) {
                if (!axes_name) {
                    int64_t one = 1;
                    st = kiln_edit_const_i64(g, &c->names, "loop_axes0", 1, &one, &zero, &axes_name);
                }
                const char *ins[2] = {scans[k][it], axes_name};
                if (st == KILN_OK)
                    st = kiln_edit_node_new("Unsqueeze", "", 2, ins, 1, (const char *const *)&parts[it], &un);
            } else {
                st = kiln_edit_node_new("Unsqueeze", "", 1, (const char *const *)&scans[k][it], 1,
                                        (const char *const *)&parts[it], &un);
                if (st == KILN_OK && (st = kiln_edit_attr_ints(un, "axes", 1, &zero)) != KILN_OK)
                    kiln_node_destroy(un);
            }
            if (st == KILN_OK)
                st = emit(&u, un);
        }
        kiln_node *cat;
        if (st == KILN_OK)
            st = kiln_edit_node_new("Concat", "", (size_t)trips, (const char *const *)parts, 1, &y, &cat);
        if (st == KILN_OK && (st = kiln_edit_attr_int(cat, "axis", 0)) != KILN_OK)
            kiln_node_destroy(cat);
        else if (st == KILN_OK)
            st = emit(&u, cat);
        for (int64_t it = 0; it < trips; it++)
            free(parts[it]);
        free(parts);
    }
    if (st == KILN_OK) {
        g->nodes[idx] = NULL;
        memmove(&g->nodes[idx], &g->nodes[idx + 1], (g->n_nodes - idx - 1) * sizeof *g->nodes);
        g->n_nodes--;
        st = take_nodes_at(g, idx, u.out, u.n_out);
        u.n_out = 0;
        kiln_node_destroy(n);
        *done = true;
        c->rep->loops_unrolled++;
        c->changed = true;
    }
    for (size_t i = 0; i < u.n_out; i++)
        kiln_node_destroy(u.out[i]);
    free(u.out);
    kiln_nameset_free(&u.map, free);
    for (size_t k = 0; cur && k < n_carried; k++)
        free(cur[k]);
    free(cur);
    for (size_t k = 0; scans && k < n_scan; k++) {
        for (int64_t it = 0; scans[k] && it < trips; it++)
            free(scans[k][it]);
        free(scans[k]);
    }
    free(scans);
    return st;
}

static kiln_status control_graph(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    for (size_t i = 0; i < g->n_nodes;) {
        kiln_node *n = g->nodes[i];
        if (!*n->domain && !strcmp(n->op_type, "If") && n->n_inputs == 1) {
            const kiln_tensor *t = kiln_edit_const(s, n->inputs[0]);
            if (t && t->numel == 1 && t->dtype != KILN_DTYPE_STRING) {
                bool done;
                KILN_TRY(inline_if(c, s, i, const_true(t), &done));
                if (done)
                    continue; /* the inlined nodes are looked at next */
            }
        }
        if (!*n->domain && !strcmp(n->op_type, "Loop")) {
            bool done;
            KILN_TRY(unroll_loop(c, s, i, &done));
            if (done)
                continue;
        }
        i++;
    }
    return kiln_pass_subgraphs(c, s, control_graph);
}

kiln_status kiln_pass_control(kiln_freeze_ctx *c, kiln_scope *s) { return control_graph(c, s); }
