/* Graphs, nodes, attributes and value types: lifetimes, look-ups, edits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

void kiln_type_clear(kiln_type *t) {
    if (!t)
        return;
    if (t->dims)
        for (int i = 0; i < t->rank; i++)
            free(t->dims[i].param);
    free(t->dims);
    memset(t, 0, sizeof *t);
    t->rank = -1;
}

kiln_status kiln_type_copy(kiln_type *dst, const kiln_type *src) {
    *dst = *src;
    dst->dims = NULL;
    if (src->rank > 0 && src->dims) {
        dst->dims = kiln_calloc((size_t)src->rank, sizeof(kiln_dim));
        if (!dst->dims)
            return KILN_ERR_NOMEM;
        for (int i = 0; i < src->rank; i++) {
            dst->dims[i].value = src->dims[i].value;
            if (src->dims[i].param && !(dst->dims[i].param = kiln_strdup(src->dims[i].param)))
                return KILN_ERR_NOMEM;
        }
    }
    return KILN_OK;
}

void kiln_value_info_clear(kiln_value_info *v) {
    free(v->name);
    free(v->doc);
    kiln_type_clear(&v->type);
    memset(v, 0, sizeof *v);
}

void kiln_attr_clear(kiln_attr *a) {
    free(a->name);
    free(a->s.data);
    kiln_tensor_destroy(a->t);
    kiln_graph_destroy(a->g);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->n; i++)
            free(a->strings[i].data);
    free(a->strings);
    if (a->tensors)
        for (size_t i = 0; i < a->n; i++)
            kiln_tensor_destroy(a->tensors[i]);
    free(a->tensors);
    if (a->graphs)
        for (size_t i = 0; i < a->n; i++)
            kiln_graph_destroy(a->graphs[i]);
    free(a->graphs);
    free(a->ref);
    memset(a, 0, sizeof *a);
}

void kiln_node_destroy(kiln_node *n) {
    if (!n)
        return;
    free(n->name);
    free(n->op_type);
    free(n->domain);
    for (size_t i = 0; i < n->n_inputs; i++)
        free(n->inputs[i]);
    free(n->inputs);
    for (size_t i = 0; i < n->n_outputs; i++)
        free(n->outputs[i]);
    free(n->outputs);
    for (size_t i = 0; i < n->n_attrs; i++)
        kiln_attr_clear(&n->attrs[i]);
    free(n->attrs);
    free(n->doc);
    free(n->overload);
    free(n->origin);
    free(n);
}

kiln_graph *kiln_graph_new(void) { return kiln_calloc(1, sizeof(kiln_graph)); }

static void init_index_free(kiln_graph *g);

void kiln_graph_destroy(kiln_graph *g) {
    if (!g)
        return;
    free(g->name);
    free(g->doc);
    for (size_t i = 0; i < g->n_nodes; i++)
        kiln_node_destroy(g->nodes[i]);
    free(g->nodes);
    for (size_t i = 0; i < g->n_inputs; i++)
        kiln_value_info_clear(&g->inputs[i]);
    free(g->inputs);
    for (size_t i = 0; i < g->n_outputs; i++)
        kiln_value_info_clear(&g->outputs[i]);
    free(g->outputs);
    for (size_t i = 0; i < g->n_value_info; i++)
        kiln_value_info_clear(&g->value_info[i]);
    free(g->value_info);
    for (size_t i = 0; i < g->n_inits; i++)
        kiln_tensor_destroy(g->inits[i]);
    free(g->inits);
    init_index_free(g);
    free(g);
}

const kiln_attr *kiln_node_attr(const kiln_node *n, const char *name) {
    for (size_t i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

/* A getter that finds the attribute with another type notes it here; the
 * session turns the note into an error naming node and attribute (a getter
 * cannot fail itself, and silently using the default would hide a broken
 * model). */
static _Thread_local char attr_mismatch[256];

static void note_mismatch(const kiln_attr *a, const char *want) {
    static const char *names[] = {"undefined", "float", "int", "string", "tensor", "graph", "floats", "ints",
                                  "strings", "tensors", "graphs", "sparse_tensor", "sparse_tensors", "type_proto",
                                  "type_protos"};
    if (attr_mismatch[0])
        return;
    snprintf(attr_mismatch, sizeof attr_mismatch, "attribute '%s' has type %s, expected %s", a->name,
             (unsigned)a->type < sizeof names / sizeof *names ? names[a->type] : "unknown", want);
}

const char *kiln_attr_mismatch_take(void) {
    if (!attr_mismatch[0])
        return NULL;
    static _Thread_local char copy[256];
    memcpy(copy, attr_mismatch, sizeof copy);
    attr_mismatch[0] = 0;
    return copy;
}

int64_t kiln_attr_int(const kiln_node *n, const char *name, int64_t dflt) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_INT)
        note_mismatch(a, "int");
    return a && a->type == KILN_ATTR_INT ? a->i : dflt;
}

float kiln_attr_float(const kiln_node *n, const char *name, float dflt) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type == KILN_ATTR_FLOAT)
        return a->f;
    if (a && a->type == KILN_ATTR_INT)
        return (float)a->i;
    if (a)
        note_mismatch(a, "float");
    return dflt;
}

const char *kiln_attr_string(const kiln_node *n, const char *name, const char *dflt) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_STRING)
        note_mismatch(a, "string");
    return a && a->type == KILN_ATTR_STRING && a->s.data ? a->s.data : dflt;
}

const int64_t *kiln_attr_ints(const kiln_node *n, const char *name, size_t *count) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_INTS)
        note_mismatch(a, "ints");
    if (!a || a->type != KILN_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    static const int64_t empty[1] = {0};
    return a->ints ? a->ints : empty;
}

const float *kiln_attr_floats(const kiln_node *n, const char *name, size_t *count) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_FLOATS)
        note_mismatch(a, "floats");
    if (!a || a->type != KILN_ATTR_FLOATS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    static const float empty[1] = {0};
    return a->floats ? a->floats : empty;
}

const kiln_tensor *kiln_attr_tensor(const kiln_node *n, const char *name) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_TENSOR)
        note_mismatch(a, "tensor");
    return a && a->type == KILN_ATTR_TENSOR ? a->t : NULL;
}

const kiln_graph *kiln_attr_graph(const kiln_node *n, const char *name) {
    const kiln_attr *a = kiln_node_attr(n, name);
    if (a && a->type != KILN_ATTR_GRAPH)
        note_mismatch(a, "graph");
    return a && a->type == KILN_ATTR_GRAPH ? a->g : NULL;
}

kiln_status kiln_graph_add_node(kiln_graph *g, kiln_node *n) {
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        kiln_node **p = kiln_realloc(g->nodes, cap * sizeof *p);
        if (!p)
            return KILN_ERR_NOMEM;
        g->nodes = p;
        g->cap_nodes = cap;
    }
    g->nodes[g->n_nodes++] = n;
    return KILN_OK;
}

void kiln_graph_remove_node(kiln_graph *g, size_t i) {
    kiln_node_destroy(g->nodes[i]);
    memmove(&g->nodes[i], &g->nodes[i + 1], (g->n_nodes - i - 1) * sizeof *g->nodes);
    g->n_nodes--;
}

/* ---- initializers by name ----
 * Open addressing over positions in g->inits (0: empty, else position+1);
 * graphs with few initializers are scanned. The index is only written by
 * calls that change the graph, never by look-ups, so sessions can share a
 * model across threads. */
struct kiln_init_index {
    bool stale;
    size_t cap; /* power of two, >= 2 * indexed entries */
    uint32_t *slot;
};

enum { INIT_INDEX_MIN = 32 };

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void index_put(struct kiln_init_index *x, const char *name, size_t pos) {
    size_t j = name_hash(name) & (x->cap - 1);
    while (x->slot[j])
        j = (j + 1) & (x->cap - 1);
    x->slot[j] = (uint32_t)(pos + 1);
}

kiln_status kiln_graph_inits_reindex(kiln_graph *g) {
    if (g->n_inits < INIT_INDEX_MIN || g->n_inits >= UINT32_MAX / 4) {
        if (g->init_index)
            g->init_index->stale = true;
        return KILN_OK;
    }
    struct kiln_init_index *x = g->init_index;
    size_t cap = 64;
    while (cap < 2 * g->n_inits + 2)
        cap *= 2;
    if (!x && !(x = g->init_index = kiln_calloc(1, sizeof *x)))
        return KILN_ERR_NOMEM;
    if (x->cap != cap) {
        uint32_t *slot = kiln_calloc(cap, sizeof *slot);
        if (!slot) {
            x->stale = true;
            return KILN_ERR_NOMEM;
        }
        free(x->slot);
        x->slot = slot;
        x->cap = cap;
    } else {
        memset(x->slot, 0, cap * sizeof *x->slot);
    }
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name)
            index_put(x, g->inits[i]->name, i);
    x->stale = false;
    return KILN_OK;
}

void kiln_graph_inits_changed(kiln_graph *g) {
    if (g->init_index)
        g->init_index->stale = true;
}

static void init_index_free(kiln_graph *g) {
    if (g->init_index)
        free(g->init_index->slot);
    free(g->init_index);
    g->init_index = NULL;
}

kiln_status kiln_graph_add_init(kiln_graph *g, kiln_tensor *t) {
    if (g->n_inits == g->cap_inits) {
        size_t cap = g->cap_inits ? g->cap_inits * 2 : 16;
        kiln_tensor **p = kiln_realloc(g->inits, cap * sizeof *p);
        if (!p)
            return KILN_ERR_NOMEM;
        g->inits = p;
        g->cap_inits = cap;
    }
    g->inits[g->n_inits++] = t;
    struct kiln_init_index *x = g->init_index;
    if (x && !x->stale && t->name && 2 * g->n_inits + 2 <= x->cap)
        index_put(x, t->name, g->n_inits - 1);
    else if (g->n_inits >= INIT_INDEX_MIN)
        (void)kiln_graph_inits_reindex(g); /* on failure look-ups scan */
    return KILN_OK;
}

void kiln_graph_remove_init(kiln_graph *g, size_t i) {
    kiln_tensor_destroy(g->inits[i]);
    memmove(&g->inits[i], &g->inits[i + 1], (g->n_inits - i - 1) * sizeof *g->inits);
    g->n_inits--;
    kiln_graph_inits_changed(g);
}

static kiln_tensor *find_init_scan(const kiln_graph *g, const char *name, size_t *index) {
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name && strcmp(g->inits[i]->name, name) == 0) {
            if (index)
                *index = i;
            return g->inits[i];
        }
    return NULL;
}

kiln_tensor *kiln_graph_find_init(const kiln_graph *g, const char *name, size_t *index) {
    const struct kiln_init_index *x = g->init_index;
    if (!x || x->stale)
        return find_init_scan(g, name, index);
    kiln_tensor *found = NULL;
    size_t j = name_hash(name) & (x->cap - 1);
    for (; x->slot[j]; j = (j + 1) & (x->cap - 1)) {
        size_t pos = x->slot[j] - 1;
        if (pos < g->n_inits && g->inits[pos]->name && strcmp(g->inits[pos]->name, name) == 0) {
            if (index)
                *index = pos;
            found = g->inits[pos];
            break;
        }
    }
#ifndef NDEBUG
    /* debug builds check the index against a scan */
    size_t k = 0, *want = index ? &k : NULL;
    kiln_tensor *ref = find_init_scan(g, name, want);
    if (ref != found || (index && ref && k != *index))
        __builtin_trap();
#endif
    return found;
}

kiln_value_info *kiln_graph_find_input(const kiln_graph *g, const char *name, size_t *index) {
    for (size_t i = 0; i < g->n_inputs; i++)
        if (strcmp(g->inputs[i].name, name) == 0) {
            if (index)
                *index = i;
            return &g->inputs[i];
        }
    return NULL;
}

static kiln_status walk(kiln_graph *g, int depth, kiln_graph_visit_fn fn, void *ctx) {
    KILN_TRY(fn(g, depth, ctx));
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t a = 0; a < n->n_attrs; a++) {
            kiln_attr *at = &n->attrs[a];
            if (at->g)
                KILN_TRY(walk(at->g, depth + 1, fn, ctx));
            for (size_t k = 0; at->graphs && k < at->n; k++)
                KILN_TRY(walk(at->graphs[k], depth + 1, fn, ctx));
        }
    }
    return KILN_OK;
}

kiln_status kiln_graph_walk(kiln_graph *g, kiln_graph_visit_fn fn, void *ctx) {
    return walk(g, 0, fn, ctx);
}

int64_t kiln_model_opset(const kiln_model *m, const char *domain) {
    bool want_default = !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
    for (size_t i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
        bool is_default = !*d || strcmp(d, "ai.onnx") == 0;
        if (want_default ? is_default : strcmp(d, domain) == 0)
            return m->opsets[i].version;
    }
    return 0;
}

size_t kiln_model_input_count(const kiln_model *m) {
    /* Inputs with an initializer default are not required. */
    size_t n = 0;
    for (size_t i = 0; i < m->graph->n_inputs; i++)
        if (!kiln_graph_find_init(m->graph, m->graph->inputs[i].name, NULL))
            n++;
    return n;
}

const char *kiln_model_input_name(const kiln_model *m, size_t k) {
    for (size_t i = 0; i < m->graph->n_inputs; i++)
        if (!kiln_graph_find_init(m->graph, m->graph->inputs[i].name, NULL) && k-- == 0)
            return m->graph->inputs[i].name;
    return NULL;
}

size_t kiln_model_output_count(const kiln_model *m) { return m->graph->n_outputs; }

const char *kiln_model_output_name(const kiln_model *m, size_t i) {
    return i < m->graph->n_outputs ? m->graph->outputs[i].name : NULL;
}

kiln_dtype kiln_model_input_dtype(const kiln_model *m, const char *name) {
    const kiln_value_info *v = kiln_graph_find_input(m->graph, name, NULL);
    return v && v->type.kind == KILN_TYPE_TENSOR ? v->type.elem : KILN_DTYPE_UNDEFINED;
}

kiln_value_kind kiln_model_input_kind(const kiln_model *m, const char *name) {
    return kiln_value_info_kind(kiln_graph_find_input(m->graph, name, NULL), NULL, NULL);
}

kiln_value_kind kiln_model_output_kind(const kiln_model *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_outputs; i++)
        if (!strcmp(m->graph->outputs[i].name, name))
            return kiln_value_info_kind(&m->graph->outputs[i], NULL, NULL);
    return KILN_VALUE_UNKNOWN;
}
