/* Model-local functions (FunctionProto): lifetime, look-up by (domain, name,
 * overload), and the call graph check (no recursion, bounded depth). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

void kiln_function_destroy(kiln_function *f) {
    if (!f)
        return;
    free(f->name);
    free(f->domain);
    free(f->overload);
    for (size_t i = 0; f->inputs && i < f->n_inputs; i++)
        free(f->inputs[i]);
    free(f->inputs);
    for (size_t i = 0; f->outputs && i < f->n_outputs; i++)
        free(f->outputs[i]);
    free(f->outputs);
    for (size_t i = 0; f->attr_names && i < f->n_attr_names; i++)
        free(f->attr_names[i]);
    free(f->attr_names);
    for (size_t i = 0; f->attr_defaults && i < f->n_attr_defaults; i++)
        kiln_attr_clear(&f->attr_defaults[i]);
    free(f->attr_defaults);
    kiln_graph_destroy(f->body);
    for (size_t i = 0; f->opsets && i < f->n_opsets; i++)
        free(f->opsets[i].domain);
    free(f->opsets);
    free(f->doc);
    free(f);
}

/* ---- look-up: the functions sorted by key, searched by bisection ---- */

typedef struct fn_slot {
    const kiln_function *f;
    size_t pos; /* in m->functions */
} fn_slot;

struct kiln_function_index {
    size_t n;
    fn_slot *order; /* sorted by key */
};

static const char *norm_domain(const char *d) { return !d || strcmp(d, "ai.onnx") == 0 ? "" : d; }
static const char *norm_overload(const char *o) { return o ? o : ""; }

static int key_cmp(const char *domain, const char *name, const char *overload, const kiln_function *f) {
    int c = strcmp(norm_domain(domain), norm_domain(f->domain));
    if (!c)
        c = strcmp(name, f->name);
    if (!c)
        c = strcmp(norm_overload(overload), norm_overload(f->overload));
    return c;
}

static int order_cmp(const void *a, const void *b) {
    const fn_slot *sa = a, *sb = b;
    int c = key_cmp(sa->f->domain, sa->f->name, sa->f->overload, sb->f);
    if (c)
        return c;
    return sa->pos < sb->pos ? -1 : sa->pos > sb->pos;
}

const char *kiln_function_label(const kiln_function *f, char *buf, size_t n) {
    const char *d = norm_domain(f->domain);
    snprintf(buf, n, "%s%s%s%s%s", d, *d ? "." : "", f->name, f->overload && *f->overload ? ":" : "",
             f->overload ? f->overload : "");
    return buf;
}

static void index_free(kiln_model *m) {
    if (m->fn_index)
        free(m->fn_index->order);
    free(m->fn_index);
    m->fn_index = NULL;
}

kiln_status kiln_model_functions_changed(kiln_model *m) {
    index_free(m);
    if (!m->n_functions)
        return KILN_OK;
    struct kiln_function_index *x = kiln_calloc(1, sizeof *x);
    if (!x)
        return KILN_ERR_NOMEM;
    x->order = kiln_calloc(m->n_functions, sizeof *x->order);
    if (!x->order) {
        free(x);
        return KILN_ERR_NOMEM;
    }
    x->n = m->n_functions;
    for (size_t i = 0; i < x->n; i++)
        x->order[i] = (fn_slot){m->functions[i], i};
    qsort(x->order, x->n, sizeof *x->order, order_cmp);
    for (size_t i = 1; i < x->n; i++) {
        const kiln_function *a = x->order[i - 1].f, *b = x->order[i].f;
        if (!key_cmp(a->domain, a->name, a->overload, b)) {
            char l[512];
            free(x->order);
            free(x);
            return kiln_fail(KILN_ERR_INVALID, "local function '%s' is defined twice",
                             kiln_function_label(a, l, sizeof l));
        }
    }
    m->fn_index = x;
    return KILN_OK;
}

static long find_index(const kiln_model *m, const char *domain, const char *name, const char *overload) {
    const struct kiln_function_index *x = m->fn_index;
    if (!x || !name)
        return -1;
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(domain, name, overload, x->order[mid].f);
        if (!c)
            return (long)x->order[mid].pos;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const kiln_function *kiln_model_find_function(const kiln_model *m, const char *domain, const char *name,
                                              const char *overload) {
    long i = find_index(m, domain, name, overload);
    return i < 0 ? NULL : m->functions[i];
}

const kiln_function *kiln_node_function(const kiln_model *m, const kiln_node *n) {
    if (!m || !m->n_functions)
        return NULL;
    return kiln_model_find_function(m, n->domain, n->op_type, n->overload);
}

int64_t kiln_function_opset(const kiln_function *f, const char *domain) {
    const char *want = norm_domain(domain);
    for (size_t i = 0; i < f->n_opsets; i++)
        if (strcmp(norm_domain(f->opsets[i].domain), want) == 0)
            return f->opsets[i].version;
    return 0;
}

size_t kiln_model_function_names(const kiln_model *m, const char ***names) {
    *names = NULL;
    if (!m->n_functions)
        return 0;
    const char **v = calloc(m->n_functions, sizeof *v);
    if (!v)
        return 0;
    for (size_t i = 0; i < m->n_functions; i++)
        v[i] = m->functions[i]->name;
    *names = v;
    return m->n_functions;
}

/* ---- the call graph ---- */

typedef struct calls {
    const kiln_model *m;
    unsigned char *state; /* 0 unseen, 1 on the path, 2 done */
    int *height;          /* longest chain of calls below a done function */
    size_t *path;
    int max_depth;
} calls;

static kiln_status visit(calls *c, size_t fi, int depth);

static kiln_status visit_graph(calls *c, const kiln_graph *g, size_t fi, int depth) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        long j = find_index(c->m, n->domain, n->op_type, n->overload);
        if (j >= 0) {
            KILN_TRY(visit(c, (size_t)j, depth + 1));
            if (c->height[j] + 1 > c->height[fi])
                c->height[fi] = c->height[j] + 1;
        }
        for (size_t a = 0; a < n->n_attrs; a++) {
            const kiln_attr *at = &n->attrs[a];
            if (at->g)
                KILN_TRY(visit_graph(c, at->g, fi, depth));
            for (size_t k = 0; at->graphs && k < at->n; k++)
                KILN_TRY(visit_graph(c, at->graphs[k], fi, depth));
        }
    }
    return KILN_OK;
}

static kiln_status visit(calls *c, size_t fi, int depth) {
    const kiln_function *f = c->m->functions[fi];
    char l[512];
    if (c->state[fi] == 1) {
        kiln_sbuf b = {0};
        int from = depth - 1;
        while (from > 0 && c->path[from] != fi)
            from--;
        for (int k = from; k < depth; k++)
            kiln_sbuf_printf(&b, "'%s' -> ", kiln_function_label(c->m->functions[c->path[k]], l, sizeof l));
        kiln_sbuf_printf(&b, "'%s'", kiln_function_label(f, l, sizeof l));
        kiln_status st = kiln_fail(KILN_ERR_INVALID, "local function '%s' calls itself (%s); recursion is not allowed",
                                   kiln_function_label(f, l, sizeof l), b.data ? b.data : "");
        free(b.data);
        return st;
    }
    if (depth > c->max_depth || (c->state[fi] == 2 && depth + c->height[fi] > c->max_depth))
        return kiln_fail(KILN_ERR_LIMIT, "local functions call each other more than %d deep (through '%s'; "
                         "kiln_limits.max_nesting)", c->max_depth, kiln_function_label(f, l, sizeof l));
    if (c->state[fi] == 2)
        return KILN_OK;
    c->state[fi] = 1;
    c->path[depth] = fi;
    kiln_status st = visit_graph(c, f->body, fi, depth);
    c->state[fi] = 2;
    return st;
}

kiln_status kiln_model_check_function_calls(const kiln_model *m, int max_depth) {
    if (!m->n_functions)
        return KILN_OK;
    calls c = {.m = m, .max_depth = max_depth};
    c.state = kiln_calloc(m->n_functions, 1);
    c.height = kiln_calloc(m->n_functions, sizeof *c.height);
    c.path = kiln_calloc((size_t)max_depth + 2, sizeof *c.path);
    kiln_status st = c.state && c.height && c.path ? KILN_OK : KILN_ERR_NOMEM;
    for (size_t i = 0; i < m->n_functions && st == KILN_OK; i++)
        if (!c.state[i])
            st = visit(&c, i, 0);
    free(c.state);
    free(c.height);
    free(c.path);
    return st;
}

void kiln_model_drop_functions(kiln_model *m) {
    for (size_t i = 0; m->functions && i < m->n_functions; i++)
        kiln_function_destroy(m->functions[i]);
    free(m->functions);
    m->functions = NULL;
    m->n_functions = 0;
    index_free(m);
}

long kiln_node_function_pos(const kiln_model *m, const kiln_node *n) {
    if (!m || !m->n_functions)
        return -1;
    return find_index(m, n->domain, n->op_type, n->overload);
}
