/* Inlining model-local functions (see inline_functions.h).
 *
 * A call node is replaced by a copy of the function's body in which
 *  - the formal inputs read the call's actual inputs ("" for an omitted
 *    optional one), the formal outputs are the call's outputs (a fresh name
 *    for an omitted one), every other name, in nested subgraphs too, is a
 *    fresh name of the calling graph;
 *  - attributes that refer to the function's attributes (ref_attr_name) take
 *    the call's attribute, else the function's default, else are left out;
 *  - nodes are named "<call>/<node>" and remember the call in n->origin, so
 *    messages name the function and the call site;
 *  - nodes of a domain whose version the function imports differently from
 *    the model get that version in n->opset;
 * and calls inside the body are expanded the same way (the loader refused
 * recursion). The result is bounded by the model's max_nodes and
 * max_nesting limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/edit.h"
#include "passes/inline_functions.h"

typedef struct inl {
    const kiln_model *m;
    const bool *keep;
    kiln_nameset names; /* every name of the target graph, fresh ones included */
    uint64_t n_nodes, max_nodes;
    int max_nesting;
    kiln_inline_stats st;
    uint64_t *size; /* per function: nodes of its body once fully expanded; 0 not known yet */
} inl;

static uint64_t count_nodes(const kiln_graph *g) {
    uint64_t n = g->n_nodes;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *nd = g->nodes[i];
        for (size_t a = 0; a < nd->n_attrs; a++) {
            if (nd->attrs[a].g)
                n += count_nodes(nd->attrs[a].g);
            for (size_t k = 0; nd->attrs[a].graphs && k < nd->attrs[a].n; k++)
                n += count_nodes(nd->attrs[a].graphs[k]);
        }
    }
    return n;
}

static bool is_call(const inl *c, const kiln_node *n) {
    long pos = kiln_node_function_pos(c->m, n);
    return pos >= 0 && !(c->keep && c->keep[pos]);
}

#define SIZE_CAP ((uint64_t)1 << 62)

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b > SIZE_CAP ? SIZE_CAP : a + b; }

static uint64_t expanded_size(inl *c, size_t pos);

/* Nodes of g (subgraphs included) with the calls in it expanded. Recursion
 * is bounded: the loader refused cycles and chains deeper than max_nesting. */
static uint64_t expanded_graph_size(inl *c, const kiln_graph *g) {
    uint64_t n = 0;
    for (size_t i = 0; i < g->n_nodes && n < SIZE_CAP; i++) {
        const kiln_node *nd = g->nodes[i];
        long pos = kiln_node_function_pos(c->m, nd);
        if (pos >= 0 && !(c->keep && c->keep[pos])) {
            n = sat_add(n, expanded_size(c, (size_t)pos));
            continue;
        }
        n = sat_add(n, 1);
        for (size_t a = 0; a < nd->n_attrs; a++) {
            if (nd->attrs[a].g)
                n = sat_add(n, expanded_graph_size(c, nd->attrs[a].g));
            for (size_t k = 0; nd->attrs[a].graphs && k < nd->attrs[a].n; k++)
                n = sat_add(n, expanded_graph_size(c, nd->attrs[a].graphs[k]));
        }
    }
    return n;
}

static uint64_t expanded_size(inl *c, size_t pos) {
    if (!c->size[pos]) {
        const kiln_graph *b = c->m->functions[pos]->body;
        c->size[pos] = (b ? expanded_graph_size(c, b) : 0) + 1; /* stored +1: 0 means unknown */
    }
    return c->size[pos] - 1;
}

/* ---- renaming a body copy ---- */

typedef struct renamer {
    inl *c;
    kiln_nameset map; /* body name -> malloc'd name in the target graph */
    const char *prefix;
} renamer;

static kiln_status map_put(renamer *r, const char *from, const char *to) {
    char *d = kiln_strdup(to);
    if (!d)
        return KILN_ERR_NOMEM;
    free(kiln_nameset_get(&r->map, from));
    kiln_status st = kiln_nameset_put(&r->map, from, d);
    if (st != KILN_OK)
        free(d);
    return st;
}

static kiln_status map_name(renamer *r, char **slot) {
    if (!*slot || !**slot)
        return KILN_OK;
    const char *to = kiln_nameset_get(&r->map, *slot);
    if (!to) {
        size_t n = strlen(r->prefix) + strlen(*slot) + 2;
        char *base = kiln_malloc(n);
        if (!base)
            return KILN_ERR_NOMEM;
        snprintf(base, n, "%s/%s", r->prefix, *slot);
        char *fresh = kiln_edit_fresh_name(&r->c->names, base);
        free(base);
        if (!fresh)
            return KILN_ERR_NOMEM;
        kiln_status st = kiln_nameset_put(&r->map, *slot, fresh);
        if (st != KILN_OK) {
            free(fresh);
            return st;
        }
        to = fresh;
    }
    char *d = kiln_strdup(to);
    if (!d)
        return KILN_ERR_NOMEM;
    free(*slot);
    *slot = d;
    return KILN_OK;
}

static kiln_status rename_visit(kiln_graph *g, int depth, void *ctx) {
    renamer *r = ctx;
    (void)depth;
    for (size_t i = 0; i < g->n_inputs; i++)
        KILN_TRY(map_name(r, &g->inputs[i].name));
    for (size_t i = 0; i < g->n_outputs; i++)
        KILN_TRY(map_name(r, &g->outputs[i].name));
    for (size_t i = 0; i < g->n_value_info; i++)
        KILN_TRY(map_name(r, &g->value_info[i].name));
    for (size_t i = 0; i < g->n_inits; i++)
        KILN_TRY(map_name(r, &g->inits[i]->name));
    if (g->n_inits)
        kiln_graph_inits_changed(g);
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            KILN_TRY(map_name(r, &n->inputs[k]));
        for (size_t k = 0; k < n->n_outputs; k++)
            KILN_TRY(map_name(r, &n->outputs[k]));
    }
    return KILN_OK;
}

/* ---- names, origins and opsets of the body's nodes ---- */

typedef struct marker {
    inl *c;
    const kiln_function *f;
    const char *prefix;
    const char *origin;
} marker;

static kiln_status mark_visit(kiln_graph *g, int depth, void *ctx) {
    marker *k = ctx;
    (void)depth;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        const char *own = n->name && *n->name ? n->name : n->op_type;
        size_t len = strlen(k->prefix) + strlen(own) + 2;
        char *name = kiln_malloc(len);
        char *origin = kiln_strdup(k->origin);
        if (!name || !origin) {
            free(name);
            free(origin);
            return KILN_ERR_NOMEM;
        }
        snprintf(name, len, "%s/%s", k->prefix, own);
        free(n->name);
        n->name = name;
        free(n->origin);
        n->origin = origin;
        if (kiln_node_function_pos(k->c->m, n) >= 0)
            continue; /* a nested call: its own body says */
        int64_t fv = kiln_function_opset(k->f, n->domain);
        int64_t mv = kiln_model_opset(k->c->m, n->domain);
        n->opset = fv && fv != mv ? fv : 0;
    }
    return KILN_OK;
}

/* ---- attribute references ---- */

typedef struct resolver {
    const kiln_node *call;
    const kiln_function *f;
    const char *origin;
} resolver;

static const char *attr_type_name(kiln_attr_type t) {
    static const char *names[] = {"undefined", "float", "int", "string", "tensor", "graph", "floats", "ints",
                                  "strings", "tensors", "graphs", "sparse_tensor", "sparse_tensors", "type_proto",
                                  "type_protos"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

static kiln_status resolve_visit(kiln_graph *g, int depth, void *ctx) {
    resolver *r = ctx;
    (void)depth;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t a = 0; a < n->n_attrs;) {
            kiln_attr *at = &n->attrs[a];
            if (!at->ref) {
                a++;
                continue;
            }
            const kiln_attr *from = kiln_node_attr(r->call, at->ref);
            for (size_t d = 0; !from && d < r->f->n_attr_defaults; d++)
                if (strcmp(r->f->attr_defaults[d].name, at->ref) == 0)
                    from = &r->f->attr_defaults[d];
            if (!from) { /* neither given nor defaulted: the attribute is absent */
                kiln_attr_clear(at);
                memmove(at, at + 1, (n->n_attrs - a - 1) * sizeof *at);
                n->n_attrs--;
                continue;
            }
            if (from->ref)
                return kiln_fail(KILN_ERR_INVALID, "in %s: node '%s' (%s): attribute '%s' of the call refers to "
                                 "'%s', but the call is not inside a function",
                                 r->origin, r->call->name, r->call->op_type, from->name, from->ref);
            if (at->type != KILN_ATTR_UNDEFINED && from->type != at->type)
                return kiln_fail(KILN_ERR_INVALID, "in %s: node '%s' (%s): attribute '%s' refers to '%s', which is "
                                 "%s, but it is declared %s",
                                 r->origin, n->name, n->op_type, at->name, at->ref, attr_type_name(from->type),
                                 attr_type_name(at->type));
            kiln_attr v;
            KILN_TRY(kiln_edit_attr_clone(from, &v));
            char *name = at->name;
            at->name = NULL;
            kiln_attr_clear(at);
            free(v.name);
            v.name = name;
            v.src = NULL; /* the value is the call's; the message is written from the IR */
            *at = v;
            a++;
        }
    }
    return KILN_OK;
}

/* ---- expansion ---- */

typedef struct node_list {
    kiln_node **v;
    size_t n, cap;
} node_list;

static kiln_status list_push(node_list *l, kiln_node *n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        kiln_node **v = kiln_realloc(l->v, cap * sizeof *v);
        if (!v)
            return KILN_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
    return KILN_OK;
}

static kiln_status expand_graph(inl *c, kiln_graph *g, int gdepth, int cdepth);

static bool produced_by(const kiln_graph *g, const char *name) {
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i]->n_outputs; k++)
            if (strcmp(g->nodes[i]->outputs[k], name) == 0)
                return true;
    return false;
}

static bool is_formal_input(const kiln_function *f, const char *name) {
    for (size_t i = 0; i < f->n_inputs; i++)
        if (strcmp(f->inputs[i], name) == 0)
            return true;
    return false;
}

/* The body of f for call n, expanded, appended to out. */
static kiln_status instantiate(inl *c, const kiln_node *n, const kiln_function *f, int gdepth, int cdepth,
                               node_list *out) {
    char label[512];
    kiln_function_label(f, label, sizeof label);
    if (cdepth > c->max_nesting)
        return kiln_fail(KILN_ERR_LIMIT, "node '%s' (%s): local functions call each other more than %d deep "
                         "(kiln_limits.max_nesting)", n->name, n->op_type, c->max_nesting);
    if (n->n_inputs > f->n_inputs)
        return kiln_fail(KILN_ERR_INVALID, "node '%s' calls local function '%s' with %zu inputs; it takes %zu",
                         n->name, label, n->n_inputs, f->n_inputs);
    if (n->n_outputs > f->n_outputs)
        return kiln_fail(KILN_ERR_INVALID, "node '%s' calls local function '%s' with %zu outputs; it has %zu",
                         n->name, label, n->n_outputs, f->n_outputs);
    long pos = kiln_node_function_pos(c->m, n);
    if (cdepth == 0 && pos >= 0) { /* the whole expansion, nested calls included, counted up front */
        uint64_t added = expanded_size(c, (size_t)pos);
        if (c->n_nodes - 1 + added > c->max_nodes)
            return kiln_fail(KILN_ERR_LIMIT, "inlining local function '%s' (called by node '%s') would make more "
                             "than %llu nodes (kiln_limits.max_nodes)", label, n->name,
                             (unsigned long long)c->max_nodes);
        c->n_nodes = c->n_nodes - 1 + added;
        c->st.nodes += (int64_t)added;
    }
    c->st.calls++;

    const char *prefix = n->name && *n->name ? n->name : f->name;
    kiln_sbuf origin = {0};
    kiln_sbuf_printf(&origin, "function '%s' (called by node '%s')", label, n->name);
    if (n->origin)
        kiln_sbuf_printf(&origin, " in %s", n->origin);
    kiln_graph *body = NULL;
    renamer r = {.c = c, .prefix = prefix};
    node_list idents = {0};
    kiln_status st = origin.failed ? KILN_ERR_NOMEM : KILN_OK;
    if (st == KILN_OK)
        st = f->body ? kiln_edit_graph_clone(f->body, &body) : ((body = kiln_graph_new()) ? KILN_OK : KILN_ERR_NOMEM);
    if (st != KILN_OK)
        goto done;
    /* value_info of a function describes it for every caller: not kept */
    for (size_t i = 0; i < body->n_value_info; i++)
        kiln_value_info_clear(&body->value_info[i]);
    free(body->value_info);
    body->value_info = NULL;
    body->n_value_info = 0;

    for (size_t i = 0; i < f->n_inputs && st == KILN_OK; i++)
        st = map_put(&r, f->inputs[i], i < n->n_inputs ? n->inputs[i] : "");
    for (size_t i = 0; i < f->n_outputs && st == KILN_OK; i++) {
        const char *actual = i < n->n_outputs ? n->outputs[i] : "";
        if (produced_by(body, f->outputs[i]) && !is_formal_input(f, f->outputs[i])) {
            if (*actual)
                st = map_put(&r, f->outputs[i], actual);
            continue;
        }
        if (!is_formal_input(f, f->outputs[i])) {
            st = kiln_fail(KILN_ERR_INVALID, "local function '%s': output '%s' is not computed by its body", label,
                           f->outputs[i]);
            break;
        }
        if (!*actual)
            continue;
        /* an input returned as it is: an Identity keeps the names apart */
        const char *in = kiln_nameset_get(&r.map, f->outputs[i]);
        if (!*in) {
            st = kiln_fail(KILN_ERR_INVALID, "node '%s' calls local function '%s' without input '%s', which the "
                           "function returns as output %zu", n->name, label, f->outputs[i], i);
            break;
        }
        kiln_node *id;
        st = kiln_edit_node_new("Identity", "", 1, &in, 1, &actual, &id);
        if (st == KILN_OK && (st = list_push(&idents, id)) != KILN_OK)
            kiln_node_destroy(id);
    }
    if (st == KILN_OK)
        st = kiln_graph_walk(body, rename_visit, &r);
    marker mk = {.c = c, .f = f, .prefix = prefix, .origin = origin.data};
    if (st == KILN_OK)
        st = kiln_graph_walk(body, mark_visit, &mk);
    for (size_t i = 0; i < idents.n && st == KILN_OK; i++)
        st = mark_visit(&(kiln_graph){.n_nodes = 1, .nodes = &idents.v[i]}, 0, &mk);
    resolver rs = {.call = n, .f = f, .origin = origin.data};
    if (st == KILN_OK)
        st = kiln_graph_walk(body, resolve_visit, &rs);
    if (st == KILN_OK)
        st = expand_graph(c, body, gdepth, cdepth + 1);
    for (size_t i = 0; i < body->n_nodes && st == KILN_OK; i++) {
        st = list_push(out, body->nodes[i]);
        if (st == KILN_OK)
            body->nodes[i] = NULL;
    }
    for (size_t i = 0; i < idents.n && st == KILN_OK; i++) {
        st = list_push(out, idents.v[i]);
        if (st == KILN_OK)
            idents.v[i] = NULL;
    }
done:
    if (body) {
        size_t kept = 0;
        for (size_t i = 0; i < body->n_nodes; i++)
            if (body->nodes[i])
                body->nodes[kept++] = body->nodes[i];
        body->n_nodes = kept;
        kiln_graph_destroy(body);
    }
    for (size_t i = 0; i < idents.n; i++)
        kiln_node_destroy(idents.v[i]);
    free(idents.v);
    kiln_nameset_free(&r.map, free);
    free(origin.data);
    return st;
}

static kiln_status expand_graph(inl *c, kiln_graph *g, int gdepth, int cdepth) {
    bool any = false;
    for (size_t i = 0; i < g->n_nodes && !any; i++)
        any = is_call(c, g->nodes[i]);
    /* subgraphs first: calls inside them stay inside them */
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        if (is_call(c, n))
            continue; /* its attributes go into the body, which is expanded there */
        for (size_t a = 0; a < n->n_attrs; a++) {
            kiln_attr *at = &n->attrs[a];
            if ((at->g || at->graphs) && gdepth + 1 > c->max_nesting)
                return kiln_fail(KILN_ERR_LIMIT, "node '%s' (%s): with local functions inlined, subgraphs nest "
                                 "more than %d deep (kiln_limits.max_nesting)", n->name, n->op_type,
                                 c->max_nesting);
            if (at->g)
                KILN_TRY(expand_graph(c, at->g, gdepth + 1, cdepth));
            for (size_t k = 0; at->graphs && k < at->n; k++)
                KILN_TRY(expand_graph(c, at->graphs[k], gdepth + 1, cdepth));
        }
    }
    if (!any)
        return KILN_OK;
    node_list out = {0};
    kiln_status st = KILN_OK;
    size_t i = 0;
    for (; i < g->n_nodes && st == KILN_OK; i++) {
        kiln_node *n = g->nodes[i];
        long pos = kiln_node_function_pos(c->m, n);
        if (pos >= 0 && !(c->keep && c->keep[pos])) {
            st = instantiate(c, n, c->m->functions[pos], gdepth, cdepth, &out);
            if (st == KILN_OK) {
                kiln_node_destroy(n);
                g->nodes[i] = NULL;
            }
        } else {
            st = list_push(&out, n);
            if (st == KILN_OK)
                g->nodes[i] = NULL;
        }
    }
    if (st != KILN_OK) {
        /* the graph keeps what it had not handed over; the rest was moved */
        for (size_t k = 0; k < out.n; k++)
            kiln_node_destroy(out.v[k]);
        free(out.v);
        size_t kept = 0;
        for (size_t k = 0; k < g->n_nodes; k++)
            if (g->nodes[k])
                g->nodes[kept++] = g->nodes[k];
        g->n_nodes = kept;
        return st;
    }
    free(g->nodes);
    g->nodes = out.v;
    g->n_nodes = out.n;
    g->cap_nodes = out.cap;
    return KILN_OK;
}

kiln_status kiln_inline_calls(const kiln_model *m, kiln_graph *g, const bool *keep, kiln_inline_stats *stats) {
    if (!m->n_functions)
        return KILN_OK;
    inl c = {.m = m, .keep = keep};
    if (!(c.size = kiln_calloc(m->n_functions, sizeof *c.size)))
        return KILN_ERR_NOMEM;
    kiln_limits d = kiln_limits_default();
    c.max_nodes = m->limits.max_nodes ? m->limits.max_nodes : d.max_nodes;
    c.max_nesting = m->limits.max_nesting > 0 ? m->limits.max_nesting : d.max_nesting;
    c.n_nodes = count_nodes(g);
    kiln_status st = kiln_nameset_collect(&c.names, g);
    if (st == KILN_OK)
        st = expand_graph(&c, g, 0, 0);
    kiln_nameset_free(&c.names, NULL);
    free(c.size);
    if (stats) {
        stats->calls += c.st.calls;
        stats->nodes += c.st.nodes;
    }
    return st;
}

static bool calls_in(const kiln_model *m, const kiln_graph *g, const bool *keep, bool *reached) {
    bool any = false;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        long pos = kiln_node_function_pos(m, n);
        if (pos >= 0 && (!keep || keep[pos])) {
            any = true;
            if (reached)
                reached[pos] = true;
        }
        for (size_t a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g)
                any = calls_in(m, n->attrs[a].g, keep, reached) || any;
            for (size_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++)
                any = calls_in(m, n->attrs[a].graphs[k], keep, reached) || any;
        }
        if (any && !reached)
            return true;
    }
    return any;
}

bool kiln_graph_calls_functions(const kiln_model *m, const kiln_graph *g) {
    return m->n_functions && calls_in(m, g, NULL, NULL);
}

/* ---- kiln freeze ---- */

static kiln_status add_opset(kiln_model *m, const char *domain, int64_t version) {
    kiln_opset *o = kiln_realloc(m->opsets, (m->n_opsets + 1) * sizeof *o);
    if (!o)
        return KILN_ERR_NOMEM;
    m->opsets = o;
    if (!(o[m->n_opsets].domain = kiln_strdup(domain)))
        return KILN_ERR_NOMEM;
    o[m->n_opsets++].version = version;
    return KILN_OK;
}

kiln_status kiln_model_inline_functions(kiln_model *m, kiln_inline_stats *stats, kiln_sbuf *kept) {
    if (!m->n_functions)
        return KILN_OK;
    size_t nf = m->n_functions;
    bool *keep = kiln_calloc(nf, sizeof *keep);
    bool *reached = kiln_calloc(nf, sizeof *reached);
    kiln_status st = keep && reached ? KILN_OK : KILN_ERR_NOMEM;
    char label[512];
    /* A function whose imports differ from the model's cannot become part of
     * the graph (a saved node runs at the model's version): its calls stay. */
    for (size_t i = 0; i < nf && st == KILN_OK; i++) {
        const kiln_function *f = m->functions[i];
        for (size_t k = 0; k < f->n_opsets && !keep[i]; k++) {
            int64_t mv = kiln_model_opset(m, f->opsets[k].domain);
            if (mv && mv != f->opsets[k].version) {
                keep[i] = true;
                if (kept)
                    kiln_sbuf_printf(kept, "  function kept: '%s' imports %s %lld, the model %lld\n",
                                     kiln_function_label(f, label, sizeof label),
                                     *f->opsets[k].domain ? f->opsets[k].domain : "ai.onnx",
                                     (long long)f->opsets[k].version, (long long)mv);
            }
        }
        for (size_t k = 0; k < f->n_opsets && !keep[i] && st == KILN_OK; k++)
            if (!kiln_model_opset(m, f->opsets[k].domain))
                st = add_opset(m, f->opsets[k].domain, f->opsets[k].version);
    }
    if (st == KILN_OK)
        st = kiln_inline_calls(m, m->graph, keep, stats);
    /* the functions still called: from the graph, then from their bodies */
    if (st == KILN_OK) {
        calls_in(m, m->graph, keep, reached);
        for (bool grew = true; grew;) {
            grew = false;
            for (size_t i = 0; i < nf; i++) {
                if (!reached[i] || !m->functions[i]->body)
                    continue;
                bool *more = kiln_calloc(nf, sizeof *more);
                if (!more) {
                    st = KILN_ERR_NOMEM;
                    break;
                }
                calls_in(m, m->functions[i]->body, NULL, more);
                for (size_t k = 0; k < nf; k++)
                    if (more[k] && !reached[k])
                        reached[k] = grew = true;
                free(more);
            }
            if (st != KILN_OK)
                break;
        }
    }
    if (st == KILN_OK) {
        size_t n = 0;
        for (size_t i = 0; i < nf; i++) {
            if (reached[i])
                m->functions[n++] = m->functions[i];
            else
                kiln_function_destroy(m->functions[i]);
        }
        m->n_functions = n;
        st = kiln_model_functions_changed(m);
    }
    free(keep);
    free(reached);
    return st;
}
