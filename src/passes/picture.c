/* kiln_model_picture: a model as Graphviz DOT text.
 *
 * One box per node (operator, name, output shapes), initializers folded into
 * their consumer's box, inputs and outputs as ellipses, subgraphs as
 * clusters. Shapes come from the freeze passes' symbolic shape inference run
 * on a copy of the graph, so symbolic dims show by name ("batch*16").
 * Given the frozen model too, the original is drawn with each node and input
 * marked by what freezing did to it (kept, folded into a constant, removed,
 * bound), beside the frozen model, with a legend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* Fill colours of the marks. */
#define COL_NODE "#ffffff"
#define COL_IO "#eef5e8"
#define COL_FOLDED "#d6e6fb"
#define COL_REMOVED "#f6dcdc"
#define COL_BOUND "#fde3b8"
#define COL_INIT "#f4f4f4"

typedef enum mark { MARK_NONE, MARK_KEPT, MARK_FOLDED, MARK_REMOVED, MARK_BOUND } mark;

/* What the frozen model has, for marking the original. */
typedef struct cmp {
    kiln_nameset produced; /* value name -> op_type (borrowed) of its producer in the frozen model */
    kiln_nameset named;    /* node name -> op_type (borrowed), nodes of the frozen model */
    kiln_nameset inits;    /* initializer name -> kiln_tensor* (borrowed), any graph */
    kiln_nameset folded_as; /* value names whose constant took a fresh name ("v__k1") */
    kiln_nameset inputs;   /* top-level inputs of the frozen model (without initializer) */
    kiln_nameset bound;    /* names given as bound */
    const kiln_graph *fg;
} cmp;

/* A graph being drawn and the graphs around it: value name -> DOT node id. */
typedef struct scope {
    kiln_nameset ids;      /* name -> malloc'd id */
    kiln_nameset declared; /* value_info and output name -> kiln_value_info* (borrowed) */
    const kiln_graph *g;
    const struct scope *up;
} scope;

typedef struct pic {
    kiln_sbuf *b;
    /* Edges, written after all nodes: Graphviz makes a node a member of every
     * subgraph whose body mentions it, so an edge from an outer value into a
     * cluster must not be written inside the cluster. */
    kiln_sbuf e;
    kiln_freeze_ctx fc; /* facts of the model being drawn */
    bool have_facts;
    const cmp *cmp; /* marks, or NULL */
    const char *prefix;
    unsigned long next_id;
} pic;

static void esc(kiln_sbuf *b, const char *s) {
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '&': kiln_sbuf_printf(b, "&amp;"); break;
        case '<': kiln_sbuf_printf(b, "&lt;"); break;
        case '>': kiln_sbuf_printf(b, "&gt;"); break;
        case '"': kiln_sbuf_printf(b, "&quot;"); break;
        case '\n': kiln_sbuf_printf(b, " "); break;
        default:
            if ((unsigned char)*p >= 0x20)
                kiln_sbuf_append(b, p, 1);
        }
    }
}

static void type_text(kiln_sbuf *b, const kiln_type *t) {
    if (!t || t->kind != KILN_TYPE_TENSOR) {
        kiln_sbuf_printf(b, t && t->kind == KILN_TYPE_OTHER ? "(not a tensor)" : "?");
        return;
    }
    kiln_sbuf_printf(b, "%s", t->elem ? kiln_dtype_name(t->elem) : "?");
    if (t->rank < 0 || (t->rank > 0 && !t->dims)) {
        kiln_sbuf_printf(b, "[?]");
        return;
    }
    kiln_sbuf_printf(b, "[");
    for (int i = 0; i < t->rank; i++) {
        kiln_sbuf_printf(b, "%s", i ? "," : "");
        if (t->dims[i].value >= 0)
            kiln_sbuf_printf(b, "%lld", (long long)t->dims[i].value);
        else
            esc(b, t->dims[i].param && *t->dims[i].param ? t->dims[i].param : "?");
    }
    kiln_sbuf_printf(b, "]");
}

static void tensor_text(kiln_sbuf *b, const kiln_tensor *t) {
    char d[256];
    kiln_sbuf_printf(b, "%s%s", kiln_dtype_name(t->dtype), kiln_dims_str(t->rank, t->dims, d, sizeof d));
}

/* A few elements of a small numeric tensor, as "= 2" or "= [1, 2, 3]". */
static void value_text(kiln_sbuf *b, const kiln_tensor *t) {
    if (!t || t->numel > 4 || t->numel == 0 || t->dtype == KILN_DTYPE_STRING || !kiln_dtype_size(t->dtype) ||
        t->dtype == KILN_DTYPE_COMPLEX64 || t->dtype == KILN_DTYPE_COMPLEX128)
        return;
    kiln_sbuf_printf(b, " = %s", t->rank ? "[" : "");
    for (int64_t i = 0; i < t->numel; i++) {
        double v = kiln_tensor_get_f64(t, i);
        if (t->dtype == KILN_DTYPE_BOOL)
            kiln_sbuf_printf(b, "%s%s", i ? ", " : "", v != 0 ? "true" : "false");
        else
            kiln_sbuf_printf(b, "%s%.6g", i ? ", " : "", v);
    }
    kiln_sbuf_printf(b, "%s", t->rank ? "]" : "");
}

/* Type of value `name` as inferred (or as declared in s's graph). */
static void value_type_text(pic *p, const struct scope *s, const char *name) {
    const kiln_shape_fact *f = p->have_facts ? kiln_fact(&p->fc, name) : NULL;
    if (f && (f->dt != KILN_DTYPE_UNDEFINED || f->rank >= 0)) {
        kiln_sbuf_printf(p->b, "%s", f->dt ? kiln_dtype_name(f->dt) : "?");
        if (f->rank < 0) {
            kiln_sbuf_printf(p->b, "[?]");
            return;
        }
        kiln_sbuf_printf(p->b, "[");
        for (int i = 0; i < f->rank; i++) {
            char d[128];
            kiln_sdim_str(&f->dims[i], d, sizeof d);
            kiln_sbuf_printf(p->b, "%s", i ? "," : "");
            esc(p->b, d);
        }
        kiln_sbuf_printf(p->b, "]");
        return;
    }
    const kiln_value_info *vi = kiln_nameset_get(&s->declared, name);
    if (vi)
        type_text(p->b, &vi->type);
    else
        kiln_sbuf_printf(p->b, "?");
}

static char *new_id(pic *p, const char *kind) {
    char buf[96];
    /* Graphviz draws a subgraph as a box only when its name starts with "cluster" */
    if (!strcmp(kind, "cluster_"))
        snprintf(buf, sizeof buf, "cluster_%s%lu", p->prefix, p->next_id++);
    else
        snprintf(buf, sizeof buf, "%s%s%lu", p->prefix, kind, p->next_id++);
    return kiln_strdup(buf);
}

static void scope_free(scope *s) {
    kiln_nameset_free(&s->ids, free);
    kiln_nameset_free(&s->declared, NULL);
}

static const char *scope_find(const scope *s, const char *name) {
    for (; s; s = s->up) {
        const char *id = kiln_nameset_get(&s->ids, name);
        if (id)
            return id;
    }
    return NULL;
}

static kiln_status scope_put(scope *s, const char *name, const char *id) {
    if (!name || !*name)
        return KILN_OK;
    char *c = kiln_strdup(id);
    if (!c)
        return KILN_ERR_NOMEM;
    char *old = kiln_nameset_get(&s->ids, name);
    kiln_status st = kiln_nameset_put(&s->ids, name, c);
    if (st != KILN_OK)
        free(c);
    else
        free(old);
    return st;
}

/* An initializer seen from scope s (not a graph input, i.e. not overridable). */
static const kiln_tensor *scope_init(const scope *s, const char *name, bool *outer) {
    *outer = false;
    for (const scope *t = s; t; t = t->up) {
        const kiln_tensor *k = kiln_graph_find_init(t->g, name, NULL);
        if (k)
            return k;
        *outer = true;
    }
    return NULL;
}

static mark node_mark(const pic *p, const kiln_node *n) {
    if (!p->cmp)
        return MARK_NONE;
    bool folded = false;
    for (size_t k = 0; k < n->n_outputs; k++) {
        const char *o = n->outputs[k];
        if (!*o)
            continue;
        const char *op = kiln_nameset_get(&p->cmp->produced, o);
        if (op && !strcmp(op, n->op_type))
            return MARK_KEPT;
        if (kiln_nameset_has(&p->cmp->inits, o) || kiln_nameset_has(&p->cmp->folded_as, o))
            folded = true;
    }
    /* moved (an inlined If branch, an unrolled Loop body) with its outputs renamed */
    const char *op = n->name && *n->name ? kiln_nameset_get(&p->cmp->named, n->name) : NULL;
    if (op && !strcmp(op, n->op_type))
        return MARK_KEPT;
    return folded ? MARK_FOLDED : MARK_REMOVED;
}

static mark input_mark(const pic *p, const char *name, const kiln_tensor **value) {
    *value = NULL;
    if (!p->cmp)
        return MARK_NONE;
    if (kiln_nameset_has(&p->cmp->inputs, name))
        return MARK_KEPT;
    *value = kiln_nameset_get(&p->cmp->inits, name);
    if (*value || kiln_nameset_has(&p->cmp->bound, name))
        return MARK_BOUND;
    return MARK_REMOVED;
}

static void style_for(kiln_sbuf *b, mark mk, const char *plain_fill) {
    switch (mk) {
    case MARK_FOLDED: kiln_sbuf_printf(b, ", fillcolor=\"" COL_FOLDED "\", color=\"#3b73b9\""); break;
    case MARK_REMOVED:
        kiln_sbuf_printf(b, ", fillcolor=\"" COL_REMOVED "\", color=\"#b94a4a\", fontcolor=\"#7a3030\", style=\"rounded,filled,dashed\"");
        break;
    case MARK_BOUND: kiln_sbuf_printf(b, ", fillcolor=\"" COL_BOUND "\", color=\"#c47f00\", penwidth=2"); break;
    default: kiln_sbuf_printf(b, ", fillcolor=\"%s\"", plain_fill); break;
    }
}

static const char *mark_word(mark mk) {
    switch (mk) {
    case MARK_FOLDED: return "folded into a constant";
    case MARK_REMOVED: return "removed";
    case MARK_BOUND: return "bound";
    default: return NULL;
    }
}

static void indent(kiln_sbuf *b, int depth) {
    for (int i = 0; i < depth + 1; i++)
        kiln_sbuf_printf(b, "  ");
}

static kiln_status draw_graph(pic *p, const kiln_graph *g, const scope *up, int depth, char **anchor);

/* An ellipse for a graph input or output. */
static void io_node(pic *p, int depth, const char *id, const char *name, const kiln_type *t, mark mk,
                    const kiln_tensor *value, bool is_output) {
    kiln_sbuf *b = p->b;
    indent(b, depth);
    kiln_sbuf_printf(b, "\"%s\" [shape=ellipse, label=<", id);
    if (is_output)
        kiln_sbuf_printf(b, "<font point-size=\"8\">output</font><br/>");
    kiln_sbuf_printf(b, "<b>");
    esc(b, name);
    kiln_sbuf_printf(b, "</b><br/><font point-size=\"9\">");
    type_text(b, t);
    if (value)
        value_text(b, value);
    if (mark_word(mk))
        kiln_sbuf_printf(b, "<br/><i>%s</i>", mark_word(mk));
    kiln_sbuf_printf(b, "</font>>");
    style_for(b, mk, COL_IO);
    kiln_sbuf_printf(b, "];\n");
}

/* Marks of g's nodes: node_mark, then a removed node all of whose readers
 * were folded is part of the folded chain (the Shape -> Gather -> Concat
 * feeding a Reshape target). NULL without marks. */
static mark *graph_marks(const pic *p, const kiln_graph *g) {
    if (!p->cmp || !g->n_nodes)
        return NULL;
    size_t n = g->n_nodes;
    mark *mk = kiln_calloc(n, sizeof *mk);
    bool *read = kiln_calloc(n, sizeof *read), *all_folded = kiln_calloc(n, sizeof *all_folded);
    kiln_nameset producer = {0}; /* output name -> node index + 1 */
    bool ok = mk && read && all_folded;
    for (size_t i = 0; ok && i < n; i++) {
        mk[i] = node_mark(p, g->nodes[i]);
        all_folded[i] = true;
        for (size_t k = 0; ok && k < g->nodes[i]->n_outputs; k++)
            if (*g->nodes[i]->outputs[k])
                ok = kiln_nameset_put(&producer, g->nodes[i]->outputs[k], (void *)(uintptr_t)(i + 1)) == KILN_OK;
    }
    for (size_t i = n; ok && i-- > 0;) {
        const kiln_node *nd = g->nodes[i];
        bool is_out = false;
        for (size_t k = 0; k < nd->n_outputs && !is_out; k++)
            is_out = *nd->outputs[k] && kiln_edit_is_output(g, nd->outputs[k]);
        if (mk[i] == MARK_REMOVED && read[i] && all_folded[i] && !is_out)
            mk[i] = MARK_FOLDED;
        for (size_t k = 0; k < nd->n_inputs; k++) {
            uintptr_t j = *nd->inputs[k] ? (uintptr_t)kiln_nameset_get(&producer, nd->inputs[k]) : 0;
            if (j && j - 1 < i) {
                read[j - 1] = true;
                if (mk[i] != MARK_FOLDED)
                    all_folded[j - 1] = false;
            }
        }
    }
    kiln_nameset_free(&producer, NULL);
    free(read);
    free(all_folded);
    if (!ok) {
        free(mk);
        return NULL; /* no memory: no chain marks (node_mark still applies) */
    }
    return mk;
}

static kiln_status draw_node(pic *p, scope *s, const kiln_node *n, int depth, const char *id, mark mk) {
    kiln_sbuf *b = p->b;
    indent(b, depth);
    kiln_sbuf_printf(b, "\"%s\" [label=<<b>", id);
    if (*n->domain) {
        esc(b, n->domain);
        kiln_sbuf_printf(b, ".");
    }
    esc(b, n->op_type);
    kiln_sbuf_printf(b, "</b>");
    if (n->name && *n->name) {
        kiln_sbuf_printf(b, "<br/>");
        esc(b, n->name);
    }
    kiln_sbuf_printf(b, "<font point-size=\"9\">");
    for (size_t k = 0; k < n->n_inputs; k++) {
        const char *in = n->inputs[k];
        bool outer;
        const kiln_tensor *t;
        if (!*in || scope_find(s, in) || !(t = scope_init(s, in, &outer)))
            continue;
        kiln_sbuf_printf(b, "<br/><font color=\"#666666\">");
        esc(b, in);
        kiln_sbuf_printf(b, ": ");
        tensor_text(b, t);
        value_text(b, t);
        kiln_sbuf_printf(b, "%s</font>", outer ? " (outer)" : "");
    }
    for (size_t k = 0; k < n->n_outputs; k++) {
        if (!*n->outputs[k])
            continue;
        kiln_sbuf_printf(b, "<br/>&#8594; ");
        esc(b, n->outputs[k]);
        kiln_sbuf_printf(b, ": ");
        value_type_text(p, s, n->outputs[k]);
    }
    if (mark_word(mk))
        kiln_sbuf_printf(b, "<br/><i>%s</i>", mark_word(mk));
    kiln_sbuf_printf(b, "</font>>");
    style_for(b, mk, COL_NODE);
    kiln_sbuf_printf(b, "];\n");
    /* edges from the values it reads (in this graph or captured from outer ones) */
    for (size_t k = 0; k < n->n_inputs; k++) {
        const char *from = *n->inputs[k] ? scope_find(s, n->inputs[k]) : NULL;
        if (from)
            kiln_sbuf_printf(&p->e, "  \"%s\" -> \"%s\";\n", from, id);
    }
    /* subgraphs: clusters, tied to the node by a dotted edge */
    for (size_t a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        size_t ng = at->g ? 1 : at->graphs ? at->n : 0;
        for (size_t k = 0; k < ng; k++) {
            const kiln_graph *sg = at->g ? at->g : at->graphs[k];
            if (!sg)
                continue;
            char *cid = new_id(p, "cluster_");
            if (!cid)
                return KILN_ERR_NOMEM;
            indent(b, depth);
            kiln_sbuf_printf(b, "subgraph \"%s\" {\n", cid);
            indent(b, depth + 1);
            kiln_sbuf_printf(b, "label=<<i>");
            esc(b, n->op_type);
            kiln_sbuf_printf(b, " ");
            esc(b, n->name && *n->name ? n->name : n->outputs[0]);
            kiln_sbuf_printf(b, ": ");
            esc(b, at->name);
            if (at->graphs)
                kiln_sbuf_printf(b, "[%zu]", k);
            kiln_sbuf_printf(b, "</i>>; style=\"rounded,dashed\"; color=\"#888888\";\n");
            char *anchor = NULL;
            kiln_status st = draw_graph(p, sg, s, depth + 1, &anchor);
            indent(b, depth);
            kiln_sbuf_printf(b, "}\n");
            if (st == KILN_OK && anchor)
                kiln_sbuf_printf(&p->e, "  \"%s\" -> \"%s\" [style=dotted, arrowhead=odot, lhead=\"%s\"];\n", id,
                                 anchor, cid);
            free(anchor);
            free(cid);
            KILN_TRY(st);
        }
    }
    return KILN_OK;
}

static kiln_status draw_graph(pic *p, const kiln_graph *g, const scope *up, int depth, char **anchor) {
    kiln_sbuf *b = p->b;
    scope s = {.g = g, .up = up};
    kiln_status st = KILN_OK;
    char *id = NULL;
    *anchor = NULL;
    for (size_t i = 0; st == KILN_OK && i < g->n_value_info; i++)
        st = kiln_nameset_put(&s.declared, g->value_info[i].name, &g->value_info[i]);
    for (size_t i = 0; st == KILN_OK && i < g->n_outputs; i++)
        if (!kiln_nameset_has(&s.declared, g->outputs[i].name))
            st = kiln_nameset_put(&s.declared, g->outputs[i].name, &g->outputs[i]);
    /* inputs (those with an initializer default too: they can be fed) */
    for (size_t i = 0; st == KILN_OK && i < g->n_inputs; i++) {
        const kiln_value_info *vi = &g->inputs[i];
        if (!(id = new_id(p, "in"))) {
            st = KILN_ERR_NOMEM;
            break;
        }
        const kiln_tensor *value = NULL;
        mark mk = up ? MARK_NONE : input_mark(p, vi->name, &value);
        io_node(p, depth, id, vi->name, &vi->type, mk, value, false);
        st = scope_put(&s, vi->name, id);
        if (!*anchor)
            *anchor = id;
        else
            free(id);
        id = NULL;
    }
    mark *marks = st == KILN_OK ? graph_marks(p, g) : NULL;
    for (size_t i = 0; st == KILN_OK && i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        if (!(id = new_id(p, "n"))) {
            st = KILN_ERR_NOMEM;
            break;
        }
        st = draw_node(p, &s, n, depth, id, marks ? marks[i] : node_mark(p, n));
        for (size_t k = 0; st == KILN_OK && k < n->n_outputs; k++)
            st = scope_put(&s, n->outputs[k], id);
        if (!*anchor)
            *anchor = id;
        else
            free(id);
        id = NULL;
    }
    for (size_t i = 0; st == KILN_OK && i < g->n_outputs; i++) {
        const kiln_value_info *vo = &g->outputs[i];
        if (!(id = new_id(p, "out"))) {
            st = KILN_ERR_NOMEM;
            break;
        }
        const char *from = scope_find(&s, vo->name);
        bool outer;
        const kiln_tensor *k = from ? NULL : scope_init(&s, vo->name, &outer);
        if (k) { /* an output that is a constant: a note for it */
            char *cid = new_id(p, "k");
            if (!cid) {
                st = KILN_ERR_NOMEM;
                break;
            }
            indent(b, depth);
            kiln_sbuf_printf(b, "\"%s\" [shape=note, label=<<b>constant</b><br/><font point-size=\"9\">", cid);
            esc(b, vo->name);
            kiln_sbuf_printf(b, ": ");
            tensor_text(b, k);
            value_text(b, k);
            kiln_sbuf_printf(b, "</font>>, fillcolor=\"" COL_INIT "\"];\n");
            kiln_sbuf_printf(&p->e, "  \"%s\" -> \"%s\";\n", cid, id);
            free(cid);
        }
        io_node(p, depth, id, vo->name, &vo->type, MARK_NONE, NULL, true);
        if (from)
            kiln_sbuf_printf(&p->e, "  \"%s\" -> \"%s\";\n", from, id);
        if (!*anchor)
            *anchor = id;
        else
            free(id);
        id = NULL;
    }
    free(id);
    free(marks);
    scope_free(&s);
    return st;
}

/* Shape facts of a model's values, from inference on a copy of its graph. */
static void infer_facts(pic *p, const kiln_model *m) {
    kiln_graph *copy = NULL;
    kiln_freeze_report *rep = NULL;
    p->fc = (kiln_freeze_ctx){.m = (kiln_model *)m};
    p->have_facts = false;
    if (kiln_edit_graph_clone(m->graph, &copy) != KILN_OK || kiln_freeze_report_create(&rep) != KILN_OK)
        goto out;
    p->fc.rep = rep;
    p->fc.opset = kiln_model_opset(m, "");
    p->fc.fold_limit = 1 << 20;
    if (kiln_nameset_collect(&p->fc.names, copy) != KILN_OK)
        goto out;
    kiln_scope top = {.g = copy};
    kiln_pass_shapes(&p->fc, &top); /* what it found before any failure still helps */
    p->have_facts = true;
out:
    kiln_clear_error();
    kiln_nameset_free(&p->fc.names, NULL);
    kiln_freeze_report_destroy(rep);
    p->fc.rep = NULL;
    kiln_graph_destroy(copy);
}

/* The edges collected while drawing, into the text. */
static void flush_edges(pic *p) {
    if (p->e.data)
        kiln_sbuf_append(p->b, p->e.data, p->e.len);
    if (p->e.failed)
        p->b->failed = true;
    free(p->e.data);
    p->e = (kiln_sbuf){0};
}

static void facts_free(pic *p) {
    kiln_shapes_free(&p->fc);
    p->have_facts = false;
}

static kiln_status collect_frozen(kiln_graph *g, int depth, void *ctx) {
    cmp *c = ctx;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i]->n_outputs; k++)
            if (*g->nodes[i]->outputs[k])
                KILN_TRY(kiln_nameset_put(&c->produced, g->nodes[i]->outputs[k], g->nodes[i]->op_type));
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->name && *g->nodes[i]->name)
            KILN_TRY(kiln_nameset_put(&c->named, g->nodes[i]->name, g->nodes[i]->op_type));
    for (size_t i = 0; i < g->n_inits; i++) {
        const char *nm = g->inits[i]->name;
        if (!nm)
            continue;
        KILN_TRY(kiln_nameset_put(&c->inits, nm, g->inits[i]));
        /* a fold's constant may take a fresh name, "<value>__k<N>" (edit.h) */
        const char *cut = strstr(nm, "__k");
        if (cut && cut > nm && cut[3] && strspn(cut + 3, "0123456789") == strlen(cut + 3)) {
            char *base = kiln_strndup(nm, (size_t)(cut - nm));
            if (!base)
                return KILN_ERR_NOMEM;
            kiln_status st = kiln_nameset_has(&c->inits, base) ? KILN_OK : kiln_nameset_put(&c->folded_as, base, NULL);
            free(base);
            KILN_TRY(st);
        }
    }
    return KILN_OK;
}

static void cmp_free(cmp *c) {
    kiln_nameset_free(&c->produced, NULL);
    kiln_nameset_free(&c->named, NULL);
    kiln_nameset_free(&c->inits, NULL);
    kiln_nameset_free(&c->folded_as, NULL);
    kiln_nameset_free(&c->inputs, NULL);
    kiln_nameset_free(&c->bound, NULL);
}

/* Symbols of the original's inputs that the frozen model has as numbers. */
static void fixed_dims_text(kiln_sbuf *b, const kiln_graph *og, const kiln_graph *fg) {
    kiln_nameset seen = {0};
    size_t n = 0;
    for (size_t i = 0; i < og->n_inputs; i++) {
        const kiln_type *a = &og->inputs[i].type;
        const kiln_value_info *fv = kiln_graph_find_input(fg, og->inputs[i].name, NULL);
        if (!fv || a->kind != KILN_TYPE_TENSOR || fv->type.kind != KILN_TYPE_TENSOR || a->rank != fv->type.rank ||
            a->rank <= 0 || !a->dims || !fv->type.dims)
            continue;
        for (int d = 0; d < a->rank; d++) {
            const char *sym = a->dims[d].param;
            if (a->dims[d].value >= 0 || !sym || !*sym || fv->type.dims[d].value < 0 || kiln_nameset_has(&seen, sym))
                continue;
            if (kiln_nameset_put(&seen, sym, NULL) != KILN_OK)
                break;
            kiln_sbuf_printf(b, "%s", n++ ? ", " : "<br/>dims fixed: ");
            esc(b, sym);
            kiln_sbuf_printf(b, "=%lld", (long long)fv->type.dims[d].value);
        }
    }
    kiln_nameset_free(&seen, NULL);
}

static void legend(kiln_sbuf *b, const kiln_graph *og, const kiln_graph *fg) {
    kiln_sbuf_printf(b, "  subgraph \"cluster_legend\" {\n    label=<<b>legend</b>>; style=\"rounded\"; color=\"#aaaaaa\";\n");
    kiln_sbuf_printf(b, "    \"legend_kept\" [label=<kept>, fillcolor=\"" COL_NODE "\"];\n");
    kiln_sbuf_printf(b, "    \"legend_folded\" [label=<folded into a constant>");
    style_for(b, MARK_FOLDED, COL_NODE);
    kiln_sbuf_printf(b, "];\n    \"legend_removed\" [label=<removed (pruned, inlined, simplified)>");
    style_for(b, MARK_REMOVED, COL_NODE);
    kiln_sbuf_printf(b, "];\n    \"legend_bound\" [shape=ellipse, label=<bound input");
    fixed_dims_text(b, og, fg);
    kiln_sbuf_printf(b, ">");
    style_for(b, MARK_BOUND, COL_IO);
    kiln_sbuf_printf(b, "];\n    \"legend_kept\" -> \"legend_folded\" -> \"legend_removed\" -> \"legend_bound\" "
                        "[style=invis];\n  }\n");
}

kiln_status kiln_model_picture(const kiln_model *m, const kiln_picture_options *o, char **dot) {
    if (!m || !dot)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_picture: no model or no place for the text");
    *dot = NULL;
    const kiln_model *fm = o ? o->frozen : NULL;
    const char *title = o && o->title ? o->title : m->graph->name;
    kiln_sbuf b = {0};
    kiln_status st = KILN_OK;
    cmp c = {0};
    pic p = {.b = &b};
    kiln_sbuf_printf(&b, "digraph kiln {\n"
                         "  graph [rankdir=TB, compound=true, fontname=\"Helvetica\", fontsize=12, nodesep=0.25, "
                         "ranksep=0.35, labelloc=t");
    if (title && *title) {
        kiln_sbuf_printf(&b, ", label=<<b>");
        esc(&b, title);
        kiln_sbuf_printf(&b, "</b>>");
    }
    kiln_sbuf_printf(&b, "];\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10, "
                         "margin=\"0.12,0.05\"];\n  edge [color=\"#555555\", arrowsize=0.7];\n");
    char *anchor = NULL;
    if (!fm) {
        p.prefix = "";
        infer_facts(&p, m);
        st = draw_graph(&p, m->graph, NULL, 0, &anchor);
        flush_edges(&p);
        facts_free(&p);
    } else {
        c.fg = fm->graph;
        KILN_CHECK(st, kiln_graph_walk(fm->graph, collect_frozen, &c), out);
        for (size_t i = 0; i < fm->graph->n_inputs; i++)
            if (!kiln_graph_find_init(fm->graph, fm->graph->inputs[i].name, NULL))
                KILN_CHECK(st, kiln_nameset_put(&c.inputs, fm->graph->inputs[i].name, NULL), out);
        for (size_t i = 0; o->bound && i < o->n_bound; i++)
            if (o->bound[i])
                KILN_CHECK(st, kiln_nameset_put(&c.bound, o->bound[i], NULL), out);
        kiln_sbuf_printf(&b, "  subgraph \"cluster_original\" {\n    label=<<b>original</b>>; style=\"rounded\"; "
                             "color=\"#777777\";\n");
        p.prefix = "o_";
        p.cmp = &c;
        infer_facts(&p, m);
        st = draw_graph(&p, m->graph, NULL, 1, &anchor);
        flush_edges(&p);
        facts_free(&p);
        free(anchor);
        anchor = NULL;
        kiln_sbuf_printf(&b, "  }\n");
        if (st == KILN_OK) {
            kiln_sbuf_printf(&b, "  subgraph \"cluster_frozen\" {\n    label=<<b>frozen</b>>; style=\"rounded\"; "
                                 "color=\"#777777\";\n");
            p.prefix = "f_";
            p.cmp = NULL;
            p.next_id = 0;
            infer_facts(&p, fm);
            st = draw_graph(&p, fm->graph, NULL, 1, &anchor);
            flush_edges(&p);
            facts_free(&p);
            kiln_sbuf_printf(&b, "  }\n");
        }
        if (st == KILN_OK)
            legend(&b, m->graph, fm->graph);
    }
    free(anchor);
    kiln_sbuf_printf(&b, "}\n");
out:
    free(p.e.data);
    cmp_free(&c);
    if (st == KILN_OK && (b.failed || !b.data))
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory while drawing the model");
    if (st != KILN_OK) {
        free(b.data);
        return st;
    }
    *dot = b.data;
    return KILN_OK;
}
