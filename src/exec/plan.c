/* Plans: value numbering, scope resolution (outer-scope captures of
 * subgraphs), topological order with cycle detection, and liveness (which
 * values each node is the last consumer of). Built once per graph. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"

/* ---- name -> id hash map ---- */

struct kiln_name_map {
    size_t cap; /* power of two */
    const char **keys;
    int *ids;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static kiln_name_map *map_new(size_t n) {
    kiln_name_map *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    while (m->cap < n * 2 + 1)
        m->cap *= 2;
    m->keys = kiln_calloc(m->cap, sizeof *m->keys);
    m->ids = kiln_calloc(m->cap, sizeof *m->ids);
    if (!m->keys || !m->ids) {
        free(m->keys);
        free(m->ids);
        free(m);
        return NULL;
    }
    return m;
}

static void map_free(kiln_name_map *m) {
    if (!m)
        return;
    free(m->keys);
    free(m->ids);
    free(m);
}

int kiln_name_map_get(const kiln_name_map *m, const char *name) {
    size_t i = (size_t)hash_str(name) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], name) == 0)
            return m->ids[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

static void map_put(kiln_name_map *m, const char *name, int id) {
    size_t i = (size_t)hash_str(name) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], name) == 0) {
            m->ids[i] = id;
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = name;
    m->ids[i] = id;
}

/* ---- plan building ---- */

typedef struct builder {
    kiln_plan *p;
    size_t cap_values;
    const kiln_plan *parent;
    /* per value: producing node index, or -1 */
    int *producer;
} builder;

static kiln_status add_value(builder *b, const char *name, int *id) {
    kiln_plan *p = b->p;
    if (p->n_values == b->cap_values)
        return kiln_fail(KILN_ERR_INVALID, "internal: value table full");
    int v = (int)p->n_values++;
    p->value_names[v] = (char *)name;
    map_put(p->names, name, v);
    b->producer[v] = -1;
    *id = v;
    return KILN_OK;
}

/* Whether `name` resolves in the enclosing plans (their own chains recorded
 * through outer_parent). */
typedef struct scope {
    const kiln_plan *plan;
    const struct scope *up;
} scope;

static bool scope_has(const scope *s, const char *name) {
    for (; s; s = s->up)
        if (kiln_name_map_get(s->plan->names, name) >= 0)
            return true;
    return false;
}

/* Names a subgraph reads that it does not define itself (recursively). */
typedef struct name_list {
    const char **v;
    size_t n, cap;
} name_list;

static kiln_status list_add(name_list *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return KILN_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        const char **v = kiln_realloc(l->v, cap * sizeof *v);
        if (!v)
            return KILN_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return KILN_OK;
}

static bool list_has(const name_list *l, const char *s) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static kiln_status free_vars(const kiln_graph *g, name_list *out) {
    name_list defined = {0};
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < g->n_inputs && st == KILN_OK; i++)
        st = list_add(&defined, g->inputs[i].name);
    for (size_t i = 0; i < g->n_inits && st == KILN_OK; i++)
        if (g->inits[i]->name)
            st = list_add(&defined, g->inits[i]->name);
    for (size_t i = 0; i < g->n_nodes && st == KILN_OK; i++)
        for (size_t k = 0; k < g->nodes[i]->n_outputs && st == KILN_OK; k++)
            st = list_add(&defined, g->nodes[i]->outputs[k]);
    for (size_t i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        const kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_inputs && st == KILN_OK; k++)
            if (*n->inputs[k] && !list_has(&defined, n->inputs[k]))
                st = list_add(out, n->inputs[k]);
        for (size_t a = 0; a < n->n_attrs && st == KILN_OK; a++) {
            const kiln_attr *at = &n->attrs[a];
            name_list inner = {0};
            if (at->g)
                st = free_vars(at->g, &inner);
            for (size_t k = 0; at->graphs && k < at->n && st == KILN_OK; k++)
                st = free_vars(at->graphs[k], &inner);
            for (size_t k = 0; k < inner.n && st == KILN_OK; k++)
                if (!list_has(&defined, inner.v[k]))
                    st = list_add(out, inner.v[k]);
            free(inner.v);
        }
    }
    for (size_t i = 0; i < g->n_outputs && st == KILN_OK; i++)
        if (!list_has(&defined, g->outputs[i].name))
            st = list_add(out, g->outputs[i].name);
    free(defined.v);
    return st;
}

/* Attribute names whose type is the same in every ai.onnx operator: checked
 * when a plan is built, so a model with, say, a string `axis` is refused with
 * a clear message instead of being read as some default. */
static const struct {
    const char *name;
    kiln_attr_type type;
} attr_types[] = {
    {"activation_alpha", KILN_ATTR_FLOATS}, {"activation_beta", KILN_ATTR_FLOATS}, {"activations", KILN_ATTR_STRINGS},
    {"alpha", KILN_ATTR_FLOAT}, {"auto_pad", KILN_ATTR_STRING}, {"axes", KILN_ATTR_INTS}, {"axis", KILN_ATTR_INT},
    {"batch_dims", KILN_ATTR_INT}, {"beta", KILN_ATTR_FLOAT}, {"blocksize", KILN_ATTR_INT}, {"body", KILN_ATTR_GRAPH},
    {"ceil_mode", KILN_ATTR_INT}, {"center_point_box", KILN_ATTR_INT}, {"clip", KILN_ATTR_FLOAT},
    {"coordinate_transformation_mode", KILN_ATTR_STRING}, {"count_include_pad", KILN_ATTR_INT},
    {"cubic_coeff_a", KILN_ATTR_FLOAT}, {"detect_negative", KILN_ATTR_INT}, {"detect_positive", KILN_ATTR_INT},
    {"dilations", KILN_ATTR_INTS}, {"direction", KILN_ATTR_STRING}, {"else_branch", KILN_ATTR_GRAPH},
    {"epsilon", KILN_ATTR_FLOAT}, {"exclude_outside", KILN_ATTR_INT}, {"exclusive", KILN_ATTR_INT},
    {"extrapolation_value", KILN_ATTR_FLOAT}, {"fmod", KILN_ATTR_INT}, {"gamma", KILN_ATTR_FLOAT},
    {"group", KILN_ATTR_INT}, {"hidden_size", KILN_ATTR_INT}, {"input_forget", KILN_ATTR_INT},
    {"keepdims", KILN_ATTR_INT}, {"kernel_shape", KILN_ATTR_INTS}, {"largest", KILN_ATTR_INT},
    {"layout", KILN_ATTR_INT}, {"linear_before_reset", KILN_ATTR_INT}, {"mode", KILN_ATTR_STRING},
    {"nearest_mode", KILN_ATTR_STRING}, {"noop_with_empty_axes", KILN_ATTR_INT}, {"num_scan_inputs", KILN_ATTR_INT},
    {"output_padding", KILN_ATTR_INTS}, {"output_shape", KILN_ATTR_INTS}, {"pads", KILN_ATTR_INTS},
    {"perm", KILN_ATTR_INTS}, {"reduction", KILN_ATTR_STRING}, {"reverse", KILN_ATTR_INT},
    {"scan_input_axes", KILN_ATTR_INTS}, {"scan_input_directions", KILN_ATTR_INTS},
    {"scan_output_axes", KILN_ATTR_INTS}, {"scan_output_directions", KILN_ATTR_INTS},
    {"select_last_index", KILN_ATTR_INT}, {"sorted", KILN_ATTR_INT}, {"storage_order", KILN_ATTR_INT},
    {"strides", KILN_ATTR_INTS}, {"then_branch", KILN_ATTR_GRAPH}, {"to", KILN_ATTR_INT}, {"transA", KILN_ATTR_INT},
    {"transB", KILN_ATTR_INT}, {"upper", KILN_ATTR_INT}, {"value_float", KILN_ATTR_FLOAT},
    {"value_floats", KILN_ATTR_FLOATS}, {"value_int", KILN_ATTR_INT}, {"value_ints", KILN_ATTR_INTS},
    {"value_string", KILN_ATTR_STRING}, {"value_strings", KILN_ATTR_STRINGS},
};

static kiln_status check_attr_types(const kiln_node *n) {
    static const char *tn[] = {"undefined", "float", "int", "string", "tensor", "graph", "floats", "ints", "strings",
                               "tensors", "graphs", "sparse_tensor", "sparse_tensors", "type_proto", "type_protos"};
    if (*n->domain)
        return KILN_OK;
    for (size_t a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        for (size_t k = 0; k < sizeof attr_types / sizeof *attr_types; k++) {
            if (strcmp(attr_types[k].name, at->name))
                continue;
            kiln_attr_type want = attr_types[k].type;
            bool ok = at->type == want || (want == KILN_ATTR_FLOAT && at->type == KILN_ATTR_INT);
            if (!ok)
                return kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): attribute '%s' has type %s, expected %s", n->name,
                                 n->op_type, at->name, (unsigned)at->type < 15 ? tn[at->type] : "unknown",
                                 tn[want]);
            break;
        }
    }
    return KILN_OK;
}

/* ---- validation: the graph checks, on their own ----
 *
 * One function holds every structural check a graph must pass before it is
 * planned, frozen or written: names that resolve to no value (in the graph,
 * or for a subgraph in an enclosing one), a value produced twice, a cycle
 * (through explicit inputs and through subgraph captures), attribute types,
 * attribute references outside functions. kiln_plan_main runs it before
 * planning; kiln freeze runs it on its input and on its result; kiln check
 * refuses what it refuses; kiln info shows its findings as warnings. */

#define VALIDATE_MAX_PROBLEMS 20

typedef struct vedge {
    int src, dst;
    const char *value;
} vedge;

typedef struct vframe {
    const kiln_graph *g;
    kiln_name_map *names; /* id: 0 graph input, 1 initializer, 2 + i node i's output */
    const struct vframe *up;
    int current; /* the node whose subgraphs are being checked */
    vedge *edges;
    size_t n_edges, cap_edges;
    bool in_function;
} vframe;

typedef struct vctx {
    kiln_sbuf *all;
    int n;
    char first[1200];
    bool oom;
    kiln_sbuf prefix; /* "in a subgraph of node ...: " chain */
} vctx;

static void vproblem(vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vproblem(vctx *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *pre = c->prefix.data ? c->prefix.data : "";
    if (c->n == 0)
        snprintf(c->first, sizeof c->first, "%s%s", pre, msg);
    if (c->all && c->n < VALIDATE_MAX_PROBLEMS)
        kiln_sbuf_printf(c->all, "%s%s\n", pre, msg);
    else if (c->all && c->n == VALIDATE_MAX_PROBLEMS)
        kiln_sbuf_printf(c->all, "(more problems not listed)\n");
    c->n++;
}

static const char *node_label(const kiln_node *n) { return n->name && *n->name ? n->name : "(unnamed)"; }

static void vedge_add(vctx *c, vframe *f, int src, int dst, const char *value) {
    if (f->n_edges == f->cap_edges) {
        size_t cap = f->cap_edges ? f->cap_edges * 2 : 64;
        vedge *e = kiln_realloc(f->edges, cap * sizeof *e);
        if (!e) {
            c->oom = true;
            return;
        }
        f->edges = e;
        f->cap_edges = cap;
    }
    f->edges[f->n_edges++] = (vedge){src, dst, value};
}

/* Resolves a name read by the current node of `f`: true when some frame
 * defines it; a dependency edge goes to the frame that does. */
static bool vresolve(vctx *c, vframe *f, const char *name) {
    for (vframe *s = f; s; s = (vframe *)s->up) {
        int id = kiln_name_map_get(s->names, name);
        if (id < 0)
            continue;
        if (id >= 2 && s->current >= 0)
            vedge_add(c, s, id - 2, s->current, name);
        return true;
    }
    return false;
}

static const char *producer_text(const kiln_graph *g, int id, char *buf, size_t n) {
    if (id == 0)
        return "a graph input";
    if (id == 1)
        return "an initializer";
    snprintf(buf, n, "produced by node '%s' (%s)", node_label(g->nodes[id - 2]), g->nodes[id - 2]->op_type);
    return buf;
}

static void validate_graph(vctx *c, const kiln_graph *g, const vframe *up, bool in_function,
                           char *const *fn_inputs, size_t n_fn_inputs);

static void validate_cycles(vctx *c, vframe *f) {
    const kiln_graph *g = f->g;
    size_t n = g->n_nodes;
    int *indeg = kiln_calloc(n + 1, sizeof *indeg), *queue = kiln_calloc(n + 1, sizeof *queue);
    size_t *start = kiln_calloc(n + 2, sizeof *start);
    int *adj = kiln_calloc(f->n_edges + 1, sizeof *adj);
    if (!indeg || !queue || !start || !adj) {
        c->oom = true;
        goto out;
    }
    for (size_t e = 0; e < f->n_edges; e++) {
        indeg[f->edges[e].dst]++;
        start[f->edges[e].src + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    {
        size_t *fill = kiln_calloc(n + 1, sizeof *fill);
        if (!fill) {
            c->oom = true;
            goto out;
        }
        for (size_t e = 0; e < f->n_edges; e++) {
            int s = f->edges[e].src;
            adj[start[s] + fill[s]++] = f->edges[e].dst;
        }
        free(fill);
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            queue[tail++] = (int)i;
    while (head < tail) {
        int i = queue[head++];
        for (size_t k = start[i]; k < start[i + 1]; k++)
            if (--indeg[adj[k]] == 0)
                queue[tail++] = adj[k];
    }
    if (tail != n) {
        kiln_sbuf names = {0};
        int shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++)
            if (indeg[i] > 0) {
                kiln_sbuf_printf(&names, "%s'%s' (%s)", shown ? ", " : "", node_label(g->nodes[i]),
                                 g->nodes[i]->op_type);
                shown++;
            }
        /* a value on the cycle: an edge between two nodes left over */
        const vedge *on = NULL;
        for (size_t e = 0; e < f->n_edges && !on; e++)
            if (indeg[f->edges[e].src] > 0 && indeg[f->edges[e].dst] > 0)
                on = &f->edges[e];
        if (on)
            vproblem(c, "the graph has a cycle: node '%s' (%s) reads value '%s', which depends on its own result "
                     "(nodes that cannot be ordered: %s)", node_label(g->nodes[on->dst]),
                     g->nodes[on->dst]->op_type, on->value, names.data ? names.data : "?");
        else
            vproblem(c, "the graph has a cycle through nodes %s", names.data ? names.data : "?");
        free(names.data);
    }
out:
    free(indeg);
    free(queue);
    free(start);
    free(adj);
}

static void validate_graph(vctx *c, const kiln_graph *g, const vframe *up, bool in_function,
                           char *const *fn_inputs, size_t n_fn_inputs) {
    size_t cap = g->n_inputs + g->n_inits + n_fn_inputs + 1;
    for (size_t i = 0; i < g->n_nodes; i++)
        cap += g->nodes[i]->n_outputs;
    vframe f = {.g = g, .names = map_new(cap), .up = up, .current = -1, .in_function = in_function};
    if (!f.names) {
        c->oom = true;
        return;
    }
    char buf[600];
    for (size_t i = 0; i < n_fn_inputs; i++)
        if (fn_inputs[i] && *fn_inputs[i]) {
            if (kiln_name_map_get(f.names, fn_inputs[i]) >= 0)
                vproblem(c, "function input '%s' is listed twice", fn_inputs[i]);
            map_put(f.names, fn_inputs[i], 0);
        }
    for (size_t i = 0; i < g->n_inputs; i++) {
        const char *nm = g->inputs[i].name;
        if (!nm || !*nm) {
            vproblem(c, "graph input %zu has no name", i);
            continue;
        }
        if (kiln_name_map_get(f.names, nm) >= 0)
            vproblem(c, "graph input '%s' is listed twice", nm);
        map_put(f.names, nm, 0);
    }
    for (size_t i = 0; i < g->n_inits; i++) {
        const kiln_tensor *t = g->inits[i];
        if (!t->name || !*t->name) {
            vproblem(c, "initializer %zu has no name", i);
            continue;
        }
        int id = kiln_name_map_get(f.names, t->name);
        if (id == 1)
            vproblem(c, "initializer '%s' is listed twice", t->name);
        map_put(f.names, t->name, 1);
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_outputs; k++) {
            const char *nm = n->outputs[k];
            if (!nm || !*nm)
                continue;
            int id = kiln_name_map_get(f.names, nm);
            if (id >= 0) {
                vproblem(c, "node '%s' (%s): output '%s' is already %s", node_label(n), n->op_type, nm,
                         id >= 2 && (size_t)(id - 2) == i ? "an output of the same node"
                                                          : producer_text(g, id, buf, sizeof buf));
                continue;
            }
            map_put(f.names, nm, 2 + (int)i);
        }
    }
    for (size_t i = 0; i < g->n_nodes && !c->oom; i++) {
        const kiln_node *n = g->nodes[i];
        f.current = (int)i;
        size_t origin_mark = c->prefix.len;
        if (n->origin) /* inlined from a local function: say which */
            kiln_sbuf_printf(&c->prefix, "in %s: ", n->origin);
        if (check_attr_types(n) != KILN_OK)
            vproblem(c, "%s", kiln_last_error());
        for (size_t a = 0; a < n->n_attrs; a++)
            if (n->attrs[a].ref && !in_function)
                vproblem(c, "node '%s' (%s): attribute '%s' refers to attribute '%s' of a function, but the node is "
                         "not inside a function", node_label(n), n->op_type, n->attrs[a].name, n->attrs[a].ref);
        for (size_t k = 0; k < n->n_inputs; k++) {
            const char *nm = n->inputs[k];
            if (!nm || !*nm)
                continue;
            if (!vresolve(c, &f, nm))
                vproblem(c, "node '%s' (%s): input '%s' names no value in this graph%s", node_label(n), n->op_type,
                         nm, up ? ", and no enclosing graph defines it" : "");
        }
        for (size_t a = 0; a < n->n_attrs && !c->oom; a++) {
            const kiln_attr *at = &n->attrs[a];
            size_t n_sub = at->g ? 1 : at->graphs ? at->n : 0;
            for (size_t k = 0; k < n_sub; k++) {
                const kiln_graph *sub = at->g ? at->g : at->graphs[k];
                if (!sub)
                    continue;
                size_t mark = c->prefix.len;
                kiln_sbuf_printf(&c->prefix, "in subgraph '%s' of node '%s' (%s): ", at->name, node_label(n),
                                 n->op_type);
                validate_graph(c, sub, &f, in_function, NULL, 0);
                c->prefix.len = mark;
                if (c->prefix.data)
                    c->prefix.data[mark] = 0;
            }
        }
        c->prefix.len = origin_mark;
        if (c->prefix.data)
            c->prefix.data[origin_mark] = 0;
    }
    f.current = -1;
    for (size_t i = 0; i < g->n_outputs; i++) {
        const char *nm = g->outputs[i].name;
        if (!nm || !*nm)
            vproblem(c, "graph output %zu has no name", i);
        else if (!vresolve(c, &f, nm))
            vproblem(c, "graph output '%s' is not produced by any node%s", nm,
                     up ? " and names no value of an enclosing graph" : "");
    }
    if (!c->oom)
        validate_cycles(c, &f);
    free(f.edges);
    map_free(f.names);
}

/* The model's graph, then each local function's body. `problems` (may be
 * NULL) gets every problem found, one per line; the status and message are
 * the first one's. */
static kiln_status validate(const kiln_model *m, const kiln_graph *g, kiln_sbuf *problems) {
    vctx c = {.all = problems};
    if (g)
        validate_graph(&c, g, NULL, false, NULL, 0);
    for (size_t i = 0; m && i < m->n_functions && !c.oom; i++) {
        const kiln_function *fn = m->functions[i];
        if (!fn->body)
            continue;
        kiln_sbuf_printf(&c.prefix, "in local function '%s%s%s': ", fn->domain && *fn->domain ? fn->domain : "",
                         fn->domain && *fn->domain ? "." : "", fn->name ? fn->name : "?");
        validate_graph(&c, fn->body, NULL, true, fn->inputs, fn->n_inputs);
        for (size_t k = 0; k < fn->n_outputs && fn->outputs; k++) {
            bool found = false;
            for (size_t j = 0; j < fn->body->n_nodes && !found; j++)
                for (size_t o = 0; o < fn->body->nodes[j]->n_outputs && !found; o++)
                    found = !strcmp(fn->body->nodes[j]->outputs[o], fn->outputs[k]);
            for (size_t j = 0; j < fn->n_inputs && !found; j++)
                found = !strcmp(fn->inputs[j], fn->outputs[k]);
            if (!found)
                vproblem(&c, "function output '%s' is not produced by any node", fn->outputs[k]);
        }
        free(c.prefix.data);
        c.prefix = (kiln_sbuf){0};
    }
    free(c.prefix.data);
    if (c.oom || c.prefix.failed || (problems && problems->failed))
        return kiln_fail(KILN_ERR_NOMEM, "out of memory while checking the graph");
    if (c.n)
        return kiln_fail(KILN_ERR_INVALID, "%s", c.first);
    return KILN_OK;
}

kiln_status kiln_model_validate(const kiln_model *m, char **problems) {
    kiln_sbuf all = {0};
    kiln_status st = validate(m, m->graph, problems ? &all : NULL);
    if (problems) {
        *problems = all.data;
        all.data = NULL;
    }
    free(all.data);
    return st;
}

/* Runs each node's prepare (ops/op.h) with the inputs that stay constant for
 * the session: initializers no graph input overrides. */
static kiln_status prepare_nodes(kiln_session_core *core, kiln_plan *p, const kiln_node **blame) {
    const kiln_tensor **cval = NULL;
    const kiln_tensor **ins = NULL;
    size_t max_in = 0;
    bool any = false;
    for (size_t i = 0; i < p->n_nodes; i++)
        if (p->nodes[i].op->prepare) {
            any = true;
            if (p->nodes[i].node->n_inputs > max_in)
                max_in = p->nodes[i].node->n_inputs;
        }
    if (!any)
        return KILN_OK;
    cval = kiln_calloc(p->n_values + 1, sizeof *cval);
    ins = kiln_calloc(max_in + 1, sizeof *ins);
    if (!cval || !ins) {
        free(cval);
        free(ins);
        return KILN_ERR_NOMEM;
    }
    for (size_t i = 0; i < p->n_consts; i++)
        cval[p->const_ids[i]] = p->const_vals[i];
    for (size_t i = 0; i < p->n_inputs; i++)
        cval[p->input_ids[i]] = NULL;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < p->n_nodes && st == KILN_OK; i++) {
        kiln_plan_node *pn = &p->nodes[i];
        if (!pn->op->prepare)
            continue;
        const kiln_node *n = pn->node;
        for (size_t k = 0; k < n->n_inputs; k++)
            ins[k] = pn->in_ids[k] >= 0 ? cval[pn->in_ids[k]] : NULL;
        kiln_prep_ctx pc = {.node = n,
                            .opset = pn->opset,
                            .n_in = n->n_inputs,
                            .in = ins,
                            .threads = kiln_threads_count(core->threads),
                            .fused = pn->act.on};
        *blame = n;
        kiln_attr_mismatch_take();
        st = pn->op->prepare(&pc, &pn->prep);
        const char *mismatch = kiln_attr_mismatch_take();
        if (st == KILN_OK && mismatch)
            st = kiln_fail(KILN_ERR_INVALID, "%s", mismatch);
        if (st != KILN_OK && strncmp(kiln_last_error(), "node '", 6) != 0)
            kiln_fail_prefix(st, "node '%s' (%s): ", n->name, n->op_type);
    }
    free(cval);
    free(ins);
    return st;
}

static void plan_free(kiln_plan *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n_nodes; i++) {
        if (p->nodes[i].prep && p->nodes[i].op && p->nodes[i].op->release)
            p->nodes[i].op->release(p->nodes[i].prep);
        free(p->nodes[i].in_ids);
        free(p->nodes[i].out_ids);
        free(p->nodes[i].free_ids);
    }
    free(p->nodes);
    for (size_t i = 0; i < p->n_made; i++)
        kiln_node_destroy(p->made[i]);
    free(p->made);
    free(p->value_names);
    map_free(p->names);
    free(p->input_ids);
    free(p->output_ids);
    free(p->const_ids);
    free(p->const_vals);
    free(p->outer_ids);
    free(p->is_output);
    free(p);
}

void kiln_plans_free(kiln_plan *p) {
    while (p) {
        kiln_plan *n = p->next;
        plan_free(p);
        p = n;
    }
}

static kiln_status resolve_input(builder *b, const scope *up, const kiln_node *n, const char *name, int *id) {
    kiln_plan *p = b->p;
    int v = kiln_name_map_get(p->names, name);
    if (v >= 0) {
        *id = v;
        return KILN_OK;
    }
    if (!scope_has(up, name))
        return kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): input '%s' names no value in this graph%s", n->name,
                         n->op_type, name, up ? " or an enclosing one" : "");
    KILN_TRY(add_value(b, name, &v));
    int *o = kiln_realloc(p->outer_ids, (p->n_outer + 1) * sizeof *o);
    if (!o)
        return KILN_ERR_NOMEM;
    o[p->n_outer++] = v;
    p->outer_ids = o;
    *id = v;
    return KILN_OK;
}

static kiln_status build(kiln_session_core *core, const kiln_graph *g, const scope *up, kiln_plan **out);

/* Inputs of the nodes of a node's subgraphs, nested ones included: the most
 * values they can capture from the graph holding the node. */
static size_t nested_inputs(const kiln_node *n) {
    size_t k = 0;
    for (size_t a = 0; a < n->n_attrs; a++) {
        const kiln_attr *at = &n->attrs[a];
        for (size_t j = 0; j < (at->g ? 1 : at->graphs ? at->n : 0); j++) {
            const kiln_graph *sg = at->g ? at->g : at->graphs[j];
            for (size_t i = 0; sg && i < sg->n_nodes; i++)
                k += sg->nodes[i]->n_inputs + nested_inputs(sg->nodes[i]);
        }
    }
    return k;
}

static kiln_status build(kiln_session_core *core, const kiln_graph *g, const scope *up, kiln_plan **out) {
    kiln_status st = KILN_OK;
    kiln_plan *p = kiln_calloc(1, sizeof *p);
    if (!p)
        return KILN_ERR_NOMEM;
    p->graph = g;
    /* Upper bound on values: inputs + inits + node outputs + node inputs (outer). */
    size_t cap = g->n_inputs + g->n_inits + 1;
    for (size_t i = 0; i < g->n_nodes; i++)
        cap += g->nodes[i]->n_outputs + g->nodes[i]->n_inputs + nested_inputs(g->nodes[i]);
    builder b = {.p = p, .cap_values = cap};
    const kiln_node *blame = NULL; /* the node an error is about, for nodes inlined from functions */
    size_t n_nodes = g->n_nodes;
    int *indeg = NULL, *order = NULL, **users = NULL, *n_users = NULL;
    name_list *implicit = NULL;
    int *last_use = NULL;
    p->value_names = kiln_calloc(cap, sizeof(char *));
    p->names = map_new(cap);
    b.producer = kiln_calloc(cap, sizeof(int));
    p->input_ids = kiln_calloc(g->n_inputs + 1, sizeof(int));
    p->output_ids = kiln_calloc(g->n_outputs + 1, sizeof(int));
    p->const_ids = kiln_calloc(g->n_inits + 1, sizeof(int));
    p->const_vals = kiln_calloc(g->n_inits + 1, sizeof(kiln_tensor *));
    p->nodes = kiln_calloc(n_nodes + 1, sizeof(kiln_plan_node));
    implicit = kiln_calloc(n_nodes + 1, sizeof(name_list));
    p->n_nodes = p->nodes ? n_nodes : 0; /* so plan_free frees per-node arrays on early errors */
    if (!p->value_names || !p->names || !b.producer || !p->input_ids || !p->output_ids || !p->const_ids ||
        !p->const_vals || !p->nodes || !implicit) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < g->n_inputs; i++) {
        if (kiln_name_map_get(p->names, g->inputs[i].name) >= 0) {
            st = kiln_fail(KILN_ERR_INVALID, "graph input '%s' is listed twice", g->inputs[i].name);
            goto done;
        }
        KILN_CHECK(st, add_value(&b, g->inputs[i].name, &p->input_ids[i]), done);
    }
    p->n_inputs = g->n_inputs;
    for (size_t i = 0; i < g->n_inits; i++) {
        kiln_tensor *t = g->inits[i];
        if (!t->name || !*t->name) {
            st = kiln_fail(KILN_ERR_INVALID, "an initializer has no name");
            goto done;
        }
        int v = kiln_name_map_get(p->names, t->name);
        if (v < 0)
            KILN_CHECK(st, add_value(&b, t->name, &v), done);
        else if (b.producer[v] == -2) {
            st = kiln_fail(KILN_ERR_INVALID, "initializer '%s' is listed twice", t->name);
            goto done;
        }
        b.producer[v] = -2;
        const kiln_tensor *use = t;
        if (!kiln_tensor_is_aligned(t)) { /* kernels need aligned data: copy once */
            kiln_tensor *c;
            KILN_CHECK(st, kiln_tensor_clone(t, &c), done);
            kiln_tensor **a = kiln_realloc(core->aligned_copies, (core->n_aligned_copies + 1) * sizeof *a);
            if (!a) {
                kiln_tensor_destroy(c);
                st = KILN_ERR_NOMEM;
                goto done;
            }
            a[core->n_aligned_copies++] = c;
            core->aligned_copies = a;
            use = c;
        }
        p->const_ids[p->n_consts] = v;
        p->const_vals[p->n_consts++] = use;
    }
    /* Node outputs. */
    for (size_t i = 0; i < n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        kiln_plan_node *pn = &p->nodes[i];
        blame = n;
        pn->node = n;
        pn->out_ids = kiln_calloc(n->n_outputs + 1, sizeof(int));
        pn->in_ids = kiln_calloc(n->n_inputs + 1, sizeof(int));
        if (!pn->out_ids || !pn->in_ids) {
            st = KILN_ERR_NOMEM;
            goto done;
        }
        for (size_t k = 0; k < n->n_outputs; k++) {
            const char *name = n->outputs[k];
            pn->out_ids[k] = -1;
            if (!*name)
                continue;
            int v = kiln_name_map_get(p->names, name);
            if (v >= 0) {
                st = kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): output '%s' is already %s", n->name, n->op_type,
                               name,
                               b.producer[v] >= 0   ? "produced by another node"
                               : b.producer[v] == -2 ? "an initializer"
                                                     : "a graph input");
                goto done;
            }
            KILN_CHECK(st, add_value(&b, name, &v), done);
            b.producer[v] = (int)i;
            pn->out_ids[k] = v;
        }
    }
    /* Node inputs, explicit and implicit (subgraph captures). */
    scope here = {.plan = p, .up = up};
    for (size_t i = 0; i < n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        kiln_plan_node *pn = &p->nodes[i];
        blame = n;
        pn->opset = n->opset ? n->opset : core->model ? kiln_model_opset(core->model, n->domain) : 0;
        if (pn->opset == 0 && (!*n->domain))
            pn->opset = 1;
        /* attribute types and references: checked by validate() */
        pn->op = kiln_op_find(n->domain, n->op_type, pn->opset);
        if (!pn->op) {
            char have[160];
            kiln_op_versions(n->domain, n->op_type, have, sizeof have);
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "node '%s': operator %s%s%s (opset %lld) is not supported by kiln%s%s%s",
                           n->name, *n->domain ? n->domain : "", *n->domain ? "." : "", n->op_type,
                           (long long)pn->opset, *have ? " at this opset (kiln implements opsets " : "", have,
                           *have ? ")" : "");
            goto done;
        }
        pn->values = kiln_op_takes_values(pn->op);
        for (size_t k = 0; k < n->n_inputs; k++) {
            pn->in_ids[k] = -1;
            if (*n->inputs[k])
                KILN_CHECK(st, resolve_input(&b, up, n, n->inputs[k], &pn->in_ids[k]), done);
        }
        for (size_t a = 0; a < n->n_attrs; a++) {
            const kiln_attr *at = &n->attrs[a];
            if (at->g)
                KILN_CHECK(st, free_vars(at->g, &implicit[i]), done);
            for (size_t k = 0; at->graphs && k < at->n; k++)
                KILN_CHECK(st, free_vars(at->graphs[k], &implicit[i]), done);
        }
        for (size_t k = 0; k < implicit[i].n; k++) {
            int v;
            if (kiln_name_map_get(p->names, implicit[i].v[k]) < 0 && !scope_has(up, implicit[i].v[k])) {
                st = kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): a subgraph reads '%s', which no enclosing graph defines",
                               n->name, n->op_type, implicit[i].v[k]);
                goto done;
            }
            KILN_CHECK(st, resolve_input(&b, up, n, implicit[i].v[k], &v), done);
        }
    }
    blame = NULL;
    for (size_t i = 0; i < g->n_outputs; i++) {
        int v = kiln_name_map_get(p->names, g->outputs[i].name);
        if (v < 0) {
            if (!scope_has(up, g->outputs[i].name)) {
                st = kiln_fail(KILN_ERR_INVALID, "graph output '%s' is not produced by any node", g->outputs[i].name);
                goto done;
            }
            const kiln_node fake = {.name = "(graph output)", .op_type = "-"};
            KILN_CHECK(st, resolve_input(&b, up, &fake, g->outputs[i].name, &v), done);
        }
        p->output_ids[i] = v;
    }
    p->n_outputs = g->n_outputs;
    /* Topological order (Kahn, stable in file order). */
    indeg = kiln_calloc(n_nodes + 1, sizeof(int));
    order = kiln_calloc(n_nodes + 1, sizeof(int));
    n_users = kiln_calloc(n_nodes + 1, sizeof(int));
    users = kiln_calloc(n_nodes + 1, sizeof(int *));
    if (!indeg || !order || !n_users || !users) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n_nodes; i++) {
            const kiln_node *n = g->nodes[i];
            size_t total = n->n_inputs + implicit[i].n;
            for (size_t k = 0; k < total; k++) {
                int v = k < n->n_inputs ? p->nodes[i].in_ids[k]
                                        : kiln_name_map_get(p->names, implicit[i].v[k - n->n_inputs]);
                if (v < 0 || b.producer[v] < 0)
                    continue;
                int src = b.producer[v];
                if (pass == 0) {
                    n_users[src]++;
                    indeg[i]++;
                } else {
                    users[src][n_users[src]++] = (int)i;
                }
            }
        }
        if (pass == 0)
            for (size_t i = 0; i < n_nodes; i++) {
                users[i] = kiln_calloc((size_t)n_users[i] + 1, sizeof(int));
                if (!users[i]) {
                    st = KILN_ERR_NOMEM;
                    goto done;
                }
                n_users[i] = 0;
            }
    }
    {
        /* A min-heap would keep file order exactly; a FIFO seeded in file order
         * keeps it for graphs that are already sorted, which is the norm. */
        size_t head = 0, tail = 0;
        for (size_t i = 0; i < n_nodes; i++)
            if (indeg[i] == 0)
                order[tail++] = (int)i;
        while (head < tail) {
            int i = order[head++];
            for (int k = 0; k < n_users[i]; k++)
                if (--indeg[users[i][k]] == 0)
                    order[tail++] = users[i][k];
        }
        if (tail != n_nodes) {
            kiln_sbuf names = {0};
            int shown = 0;
            for (size_t i = 0; i < n_nodes && shown < 5; i++)
                if (indeg[i] > 0) {
                    kiln_sbuf_printf(&names, "%s'%s' (%s)", shown ? ", " : "", g->nodes[i]->name,
                                     g->nodes[i]->op_type);
                    shown++;
                }
            st = kiln_fail(KILN_ERR_INVALID, "the graph has a cycle through nodes %s",
                           names.data ? names.data : "?");
            free(names.data);
            goto done;
        }
    }
    /* Reorder nodes, then liveness. */
    {
        kiln_plan_node *sorted = kiln_calloc(n_nodes + 1, sizeof *sorted);
        name_list *imp_sorted = kiln_calloc(n_nodes + 1, sizeof *imp_sorted);
        if (!sorted || !imp_sorted) {
            free(sorted);
            free(imp_sorted);
            st = KILN_ERR_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < n_nodes; i++) {
            sorted[i] = p->nodes[order[i]];
            imp_sorted[i] = implicit[order[i]];
        }
        free(p->nodes);
        free(implicit);
        p->nodes = sorted;
        implicit = imp_sorted;
        p->n_nodes = n_nodes;
    }
    p->is_output = kiln_calloc(p->n_values + 1, sizeof(bool));
    last_use = kiln_calloc(p->n_values + 1, sizeof(int));
    if (!p->is_output || !last_use) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < p->n_outputs; i++)
        p->is_output[p->output_ids[i]] = true;
    {
        /* Fusion (fuse.c) on the sorted nodes, before liveness; values that
         * subgraphs capture or the graph returns are pinned. */
        bool *pinned = kiln_calloc(p->n_values + 1, sizeof(bool));
        if (!pinned) {
            st = KILN_ERR_NOMEM;
            goto done;
        }
        for (size_t v = 0; v < p->n_values; v++)
            pinned[v] = p->is_output[v];
        for (size_t i = 0; i < n_nodes; i++)
            for (size_t k = 0; k < implicit[i].n; k++) {
                int v = kiln_name_map_get(p->names, implicit[i].v[k]);
                if (v >= 0)
                    pinned[v] = true;
            }
        st = kiln_plan_fuse(p, pinned);
        free(pinned);
        if (st != KILN_OK)
            goto done;
        size_t kept = 0;
        for (size_t i = 0; i < n_nodes; i++) {
            if (!p->nodes[i].node) {
                free(p->nodes[i].in_ids);
                free(p->nodes[i].out_ids);
                free(implicit[i].v);
                continue;
            }
            p->nodes[kept] = p->nodes[i];
            implicit[kept++] = implicit[i];
        }
        n_nodes = p->n_nodes = kept;
    }
    KILN_CHECK(st, prepare_nodes(core, p, &blame), done);
    for (size_t v = 0; v < p->n_values; v++)
        last_use[v] = -1;
    for (size_t i = 0; i < n_nodes; i++) {
        kiln_plan_node *pn = &p->nodes[i];
        for (size_t k = 0; k < pn->node->n_outputs; k++)
            if (pn->out_ids[k] >= 0)
                last_use[pn->out_ids[k]] = (int)i;
        for (size_t k = 0; k < pn->node->n_inputs; k++)
            if (pn->in_ids[k] >= 0)
                last_use[pn->in_ids[k]] = (int)i;
        for (size_t k = 0; k < implicit[i].n; k++) {
            int v = kiln_name_map_get(p->names, implicit[i].v[k]);
            if (v >= 0)
                last_use[v] = (int)i;
        }
    }
    for (size_t v = 0; v < p->n_values; v++) {
        /* node results, and graph inputs the frame was given to own
         * (kiln_frame_run's own_in); initializers stay */
        if (b.producer[v] == -2 || p->is_output[v] || last_use[v] < 0)
            continue;
        kiln_plan_node *pn = &p->nodes[last_use[v]];
        int *f = kiln_realloc(pn->free_ids, (pn->n_free + 1) * sizeof *f);
        if (!f) {
            st = KILN_ERR_NOMEM;
            goto done;
        }
        f[pn->n_free++] = (int)v;
        pn->free_ids = f;
    }
    /* Register, then plan the subgraphs with this plan as their scope. */
    p->next = core->plans ? core->plans->next : NULL;
    if (core->plans)
        core->plans->next = p;
    else
        core->plans = p;
    *out = p;
    for (size_t i = 0; i < n_nodes && st == KILN_OK; i++) {
        const kiln_node *n = p->nodes[i].node;
        for (size_t a = 0; a < n->n_attrs && st == KILN_OK; a++) {
            const kiln_attr *at = &n->attrs[a];
            kiln_plan *sub;
            if (at->g)
                st = build(core, at->g, &here, &sub);
            for (size_t k = 0; at->graphs && k < at->n && st == KILN_OK; k++)
                st = build(core, at->graphs[k], &here, &sub);
        }
        if (st != KILN_OK)
            kiln_fail_prefix(st, "in a subgraph of node '%s' (%s): ", n->name, n->op_type);
    }
    p = NULL; /* owned by core now */
done:
    if (st != KILN_OK && blame && blame->origin)
        kiln_fail_prefix(st, "in %s: ", blame->origin);
    for (size_t i = 0; implicit && i < n_nodes; i++)
        free(implicit[i].v);
    free(implicit);
    if (users)
        for (size_t i = 0; i < g->n_nodes; i++) /* fusion may have shrunk n_nodes */
            free(users[i]);
    free(users);
    free(n_users);
    free(indeg);
    free(order);
    free(last_use);
    free(b.producer);
    if (p)
        plan_free(p);
    return st;
}

kiln_status kiln_plan_get(kiln_session_core *core, const kiln_graph *g, const kiln_plan *parent,
                          const kiln_plan **out) {
    (void)parent;
    for (kiln_plan *p = core->plans; p; p = p->next)
        if (p->graph == g) {
            *out = p;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_INVALID, "internal: subgraph '%s' has no plan", g->name ? g->name : "");
}

kiln_status kiln_plan_main(kiln_session_core *core, const kiln_graph *g) {
    kiln_plan *p;
    /* the model's functions were inlined into g: its own graph is checked */
    KILN_TRY(validate(NULL, g, NULL));
    return build(core, g, NULL, &p);
}
