/* kiln_model_convert: the driver (see convert.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "passes/convert.h"
#include "passes/inline_functions.h"

#include "passes/convert_schemas.inc"

#define N_SCHEMAS (sizeof cv_schemas / sizeof *cv_schemas)
#define MAX_SWEEPS 64

/* ---- the schema table ---- */

static size_t first_schema(const char *op) {
    size_t lo = 0, hi = N_SCHEMAS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(cv_schemas[mid].name, op) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const cv_schema *cv_schema_at(const char *op, int64_t v) {
    const cv_schema *best = NULL;
    for (size_t i = first_schema(op); i < N_SCHEMAS && !strcmp(cv_schemas[i].name, op); i++)
        if (cv_schemas[i].since <= v)
            best = &cv_schemas[i];
    return best;
}

const cv_schema *cv_schema_after(const char *op, int since) {
    for (size_t i = first_schema(op); i < N_SCHEMAS && !strcmp(cv_schemas[i].name, op); i++)
        if (cv_schemas[i].since > since)
            return &cv_schemas[i];
    return NULL;
}

const cv_attr_schema *cv_schema_attr(const cv_schema *s, const char *name) {
    for (int i = 0; s && i < s->n_at; i++)
        if (!strcmp(s->at[i].name, name))
            return &s->at[i];
    return NULL;
}

static const cv_formal *formal(const cv_formal *f, int n, size_t i) {
    if (i < (size_t)n)
        return &f[i];
    if (n > 0 && f[n - 1].option == 2)
        return &f[n - 1];
    return NULL;
}
const cv_formal *cv_formal_in(const cv_schema *s, size_t i) { return formal(s->in, s->n_in, i); }
const cv_formal *cv_formal_out(const cv_schema *s, size_t i) { return formal(s->out, s->n_out, i); }

/* ---- messages and the change log ---- */

static const char *node_label(const kiln_node *n) {
    if (n->name && *n->name)
        return n->name;
    return n->n_outputs ? n->outputs[0] : "";
}

cv_result cv_refuse(cv_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return CV_REFUSED;
}

cv_result cv_error(cv_ctx *c, kiln_status st) {
    if (c->st == KILN_OK)
        c->st = st ? st : KILN_ERR_NOMEM;
    return CV_ERROR;
}

void cv_note(cv_ctx *c, const kiln_node *n, int64_t from, int64_t to, const char *fmt, ...) {
    char how[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(how, sizeof how, fmt, ap);
    va_end(ap);
    kiln_sbuf_printf(&c->changes, "%s\n      {\"node\": ", c->n_changes ? "," : "");
    kiln_sbuf_json_string(&c->changes, node_label(n));
    kiln_sbuf_printf(&c->changes, ", \"op\": ");
    kiln_sbuf_json_string(&c->changes, n->op_type);
    kiln_sbuf_printf(&c->changes, ", \"from\": %lld, \"to\": %lld, \"how\": ", (long long)from, (long long)to);
    kiln_sbuf_json_string(&c->changes, how);
    kiln_sbuf_printf(&c->changes, "}");
    kiln_sbuf_printf(&c->text, "  %s '%s': opset %lld -> %lld: %s\n", n->op_type, node_label(n), (long long)from,
                     (long long)to, how);
    c->n_changes++;
}

static void record_refusal(cv_ctx *c, const kiln_node *n, int64_t at) {
    kiln_sbuf_printf(&c->refusals, "%s\n      {\"node\": ", c->n_refused ? "," : "");
    kiln_sbuf_json_string(&c->refusals, node_label(n));
    kiln_sbuf_printf(&c->refusals, ", \"op\": ");
    kiln_sbuf_json_string(&c->refusals, n->op_type);
    kiln_sbuf_printf(&c->refusals, ", \"opset\": %lld, \"reason\": ", (long long)at);
    kiln_sbuf_json_string(&c->refusals, c->why);
    kiln_sbuf_printf(&c->refusals, "}");
    kiln_sbuf_printf(&c->text, "  refused: %s '%s' (opset %lld): %s\n", n->op_type, node_label(n), (long long)at,
                     c->why);
    if (!c->n_refused) {
        char origin[256] = "";
        if (n->origin)
            snprintf(origin, sizeof origin, " (from %s)", n->origin);
        kiln_sbuf_printf(&c->first_refusal, "node '%s' (%s, opset %lld)%s: %s", node_label(n), n->op_type,
                         (long long)at, origin, c->why);
    }
    c->n_refused++;
}

static bool is_onnx(const kiln_node *n) { return !n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx"); }

/* ---- what is known of values ---- */

static const kiln_value_info *declared(const kiln_scope *s, const char *name) {
    for (; s; s = s->up) {
        const kiln_graph *g = s->g;
        for (size_t i = 0; i < g->n_inputs; i++)
            if (!strcmp(g->inputs[i].name, name))
                return &g->inputs[i];
        for (size_t i = 0; i < g->n_outputs; i++)
            if (!strcmp(g->outputs[i].name, name))
                return &g->outputs[i];
        for (size_t i = 0; i < g->n_value_info; i++)
            if (!strcmp(g->value_info[i].name, name))
                return &g->value_info[i];
    }
    return NULL;
}


static const cv_value *value_of(cv_ctx *c, const char *name) { return kiln_nameset_get(&c->vals, name); }

void cv_set_type(cv_ctx *c, const char *name, kiln_dtype dt, int rank) {
    if (c->st || !name || !*name)
        return;
    cv_value *v = kiln_nameset_get(&c->vals, name);
    if (!v) {
        v = kiln_malloc(sizeof *v);
        if (!v || kiln_nameset_put(&c->vals, name, v) != KILN_OK) {
            free(v);
            cv_error(c, KILN_ERR_NOMEM);
            return;
        }
    }
    v->dt = dt;
    v->rank = rank;
}

static kiln_dtype dtype_d(cv_ctx *c, const char *name, int depth);

/* The element type of an output from its producer's schema: a fixed type,
 * the type of an input sharing its constraint, a Cast's target, a branch's
 * or body's output. */
static kiln_dtype deduce_dtype(cv_ctx *c, const char *name, int depth) {
    const kiln_node *p = depth < 24 ? kiln_nameset_get(&c->prod, name) : NULL;
    if (!p || !is_onnx(p))
        return KILN_DTYPE_UNDEFINED;
    size_t k = 0;
    while (k < p->n_outputs && strcmp(p->outputs[k], name) != 0)
        k++;
    if (k == p->n_outputs)
        return KILN_DTYPE_UNDEFINED;
    const char *op = p->op_type;
    if (!strcmp(op, "Cast") || !strcmp(op, "EyeLike") || !strcmp(op, "RandomNormalLike") ||
        !strcmp(op, "RandomUniformLike")) {
        int64_t to = kiln_attr_int(p, !strcmp(op, "Cast") ? "to" : "dtype", 0);
        if (to)
            return (kiln_dtype)to;
        return strcmp(op, "Cast") && p->n_inputs ? dtype_d(c, p->inputs[0], depth + 1) : KILN_DTYPE_UNDEFINED;
    }
    if (!strcmp(op, "CastLike"))
        return p->n_inputs > 1 ? dtype_d(c, p->inputs[1], depth + 1) : KILN_DTYPE_UNDEFINED;
    if (!strcmp(op, "If")) {
        const kiln_graph *b = kiln_attr_graph(p, "then_branch");
        return b && k < b->n_outputs ? dtype_d(c, b->outputs[k].name, depth + 1) : KILN_DTYPE_UNDEFINED;
    }
    if (!strcmp(op, "Loop") || !strcmp(op, "Scan")) {
        const kiln_graph *b = kiln_attr_graph(p, "body");
        size_t bk = op[0] == 'L' ? k + 1 : k; /* a Loop body's first output is the condition */
        return b && bk < b->n_outputs ? dtype_d(c, b->outputs[bk].name, depth + 1) : KILN_DTYPE_UNDEFINED;
    }
    int64_t v = p->opset ? p->opset : c->from;
    const cv_schema *s = cv_schema_at(op, v);
    const cv_formal *f = s ? cv_formal_out(s, k) : NULL;
    if (!f || (f->option == 2 && !f->homog))
        return KILN_DTYPE_UNDEFINED;
    if (f->tc < 0 || !(f->types[0] & (f->types[0] - 1))) { /* one type only */
        for (int dt = 1; dt < 32; dt++)
            if (f->types[0] == 1u << dt)
                return (kiln_dtype)dt;
        return KILN_DTYPE_UNDEFINED;
    }
    for (size_t i = 0; i < p->n_inputs; i++) {
        const cv_formal *fi = cv_formal_in(s, i);
        if (*p->inputs[i] && fi && fi->tc == f->tc && !(fi->option == 2 && !fi->homog)) {
            kiln_dtype dt = dtype_d(c, p->inputs[i], depth + 1);
            if (dt)
                return dt;
        }
    }
    return KILN_DTYPE_UNDEFINED;
}

static kiln_dtype dtype_d(cv_ctx *c, const char *name, int depth) {
    if (!name || !*name)
        return KILN_DTYPE_UNDEFINED;
    const cv_value *v = value_of(c, name);
    if (v && v->dt)
        return v->dt;
    const kiln_shape_fact *f = kiln_fact(&c->fc, name);
    if (f && f->dt)
        return f->dt;
    const kiln_tensor *t = cv_const(c, name);
    if (t)
        return t->dtype;
    const kiln_value_info *vi = declared(c->scope, name);
    if (vi && vi->type.kind == KILN_TYPE_TENSOR && vi->type.elem)
        return vi->type.elem;
    const char *al = kiln_nameset_get(&c->alias, name);
    if (al && depth < 24)
        return dtype_d(c, al, depth + 1);
    return deduce_dtype(c, name, depth);
}

kiln_dtype cv_dtype(cv_ctx *c, const char *name) { return dtype_d(c, name, 0); }

int cv_rank(cv_ctx *c, const char *name) {
    if (!name || !*name)
        return -1;
    const cv_value *v = value_of(c, name);
    if (v && v->rank >= 0)
        return v->rank;
    const kiln_shape_fact *f = kiln_fact(&c->fc, name);
    if (f && f->rank >= 0)
        return f->rank;
    const kiln_tensor *t = cv_const(c, name);
    return t ? t->rank : -1;
}

int64_t cv_dim(cv_ctx *c, const char *name, int i) {
    const kiln_shape_fact *f = name && *name ? kiln_fact(&c->fc, name) : NULL;
    if (f && i >= 0 && i < f->rank && kiln_sd_is_const(&f->dims[i]))
        return f->dims[i].num;
    const kiln_tensor *t = cv_const(c, name);
    if (t && i >= 0 && i < t->rank)
        return t->dims[i];
    return -1;
}

static kiln_status cache_tensor(cv_ctx *c, kiln_tensor *t) {
    kiln_tensor **v = kiln_realloc(c->cache, (c->n_cache + 1) * sizeof *v);
    if (!v) {
        kiln_tensor_destroy(t);
        return KILN_ERR_NOMEM;
    }
    c->cache = v;
    c->cache[c->n_cache++] = t;
    return KILN_OK;
}

/* The value of a Constant node (tensor, or the value_* forms, materialised once). */
static const kiln_tensor *constant_node_value(cv_ctx *c, kiln_node *n) {
    const kiln_tensor *t = kiln_attr_tensor(n, "value");
    if (t)
        return t;
    for (size_t i = 0; i < c->n_cache; i++)
        if (c->cache[i]->name && n->n_outputs && !strcmp(c->cache[i]->name, n->outputs[0]))
            return c->cache[i];
    kiln_dtype dt = KILN_DTYPE_UNDEFINED;
    int rank = 0;
    int64_t dim = 1;
    const kiln_attr *a;
    if ((a = kiln_node_attr(n, "value_int")) && a->type == KILN_ATTR_INT)
        dt = KILN_DTYPE_INT64;
    else if ((a = kiln_node_attr(n, "value_float")) && a->type == KILN_ATTR_FLOAT)
        dt = KILN_DTYPE_FLOAT;
    else if ((a = kiln_node_attr(n, "value_ints")) && a->type == KILN_ATTR_INTS)
        dt = KILN_DTYPE_INT64, rank = 1, dim = (int64_t)a->n;
    else if ((a = kiln_node_attr(n, "value_floats")) && a->type == KILN_ATTR_FLOATS)
        dt = KILN_DTYPE_FLOAT, rank = 1, dim = (int64_t)a->n;
    else
        return NULL;
    kiln_tensor *x;
    if (kiln_tensor_create(dt, rank, &dim, &x) != KILN_OK)
        return NULL;
    if (a->type == KILN_ATTR_INT)
        *(int64_t *)x->data = a->i;
    else if (a->type == KILN_ATTR_FLOAT)
        *(float *)x->data = a->f;
    else if (a->type == KILN_ATTR_INTS && a->n)
        memcpy(x->data, a->ints, a->n * sizeof *a->ints);
    else if (a->type == KILN_ATTR_FLOATS && a->n)
        memcpy(x->data, a->floats, a->n * sizeof *a->floats);
    x->name = kiln_strdup(n->outputs[0]);
    if (!x->name || cache_tensor(c, x) != KILN_OK) {
        if (!x->name)
            kiln_tensor_destroy(x);
        return NULL;
    }
    return x;
}

const kiln_tensor *cv_const(cv_ctx *c, const char *name) {
    if (!name || !*name)
        return NULL;
    const kiln_tensor *t = c->scope ? kiln_edit_const(c->scope, name) : NULL;
    if (t)
        return t;
    kiln_node *n = kiln_nameset_get(&c->prod, name);
    return n && !strcmp(n->op_type, "Constant") && is_onnx(n) && n->n_outputs == 1 ? constant_node_value(c, n) : NULL;
}

bool cv_const_ints(cv_ctx *c, const char *name, int64_t *v, int *count, int max) {
    const kiln_tensor *t = cv_const(c, name);
    if (!t || t->numel > max || t->dtype == KILN_DTYPE_STRING || kiln_dtype_size(t->dtype) == 0)
        return false;
    for (int64_t i = 0; i < t->numel; i++)
        v[i] = kiln_tensor_get_i64(t, i);
    *count = (int)t->numel;
    return true;
}

void cv_orphan(cv_ctx *c, const char *name) {
    if (name && *name && kiln_nameset_put(&c->orphans, name, NULL) != KILN_OK)
        cv_error(c, KILN_ERR_NOMEM);
}

/* ---- building ---- */

static kiln_status push(kiln_node ***v, size_t *n, size_t *cap, kiln_node *x) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        kiln_node **p = kiln_realloc(*v, nc * sizeof *p);
        if (!p)
            return KILN_ERR_NOMEM;
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return KILN_OK;
}

const char *cv_fresh(cv_ctx *c, const char *base) {
    if (c->st)
        return "";
    char *nm = kiln_edit_fresh_name(&c->fc.names, base && *base ? base : "cv");
    if (!nm) {
        cv_error(c, KILN_ERR_NOMEM);
        return "";
    }
    /* the set keeps its own copy: hand that out, free ours */
    const char *k = kiln_nameset_key(&c->fc.names, nm);
    free(nm);
    return k ? k : "";
}

static const char *base_name(cv_ctx *c) {
    return c->n && c->n->n_outputs && *c->n->outputs[0] ? c->n->outputs[0] : "cv";
}

static kiln_node *emit_into(cv_ctx *c, int where, const char *op, size_t n_out, const char *const *outs,
                            size_t n_in, const char *const *ins) {
    if (c->st)
        return NULL;
    const char *o[8];
    if (n_out > 8) {
        cv_error(c, kiln_fail(KILN_ERR_INVALID, "too many outputs"));
        return NULL;
    }
    for (size_t i = 0; i < n_out; i++) {
        char base[400];
        snprintf(base, sizeof base, "%s_%s", base_name(c), op);
        o[i] = outs && outs[i] ? outs[i] : cv_fresh(c, base);
    }
    char nbase[400];
    snprintf(nbase, sizeof nbase, "%s/%s", c->n && c->n->name && *c->n->name ? c->n->name : base_name(c), op);
    const char *nname = cv_fresh(c, nbase);
    kiln_node *nd = NULL;
    kiln_status st = c->st ? c->st : kiln_edit_node_new(op, nname, n_in, ins, n_out, o, &nd);
    if (st != KILN_OK) {
        cv_error(c, st);
        return NULL;
    }
    nd->opset = c->emit_opset;
    /* a node the conversion made: its element types are checked at the target too */
    if (kiln_nameset_put(&c->fresh, nd->outputs[0], NULL) != KILN_OK)
        cv_error(c, KILN_ERR_NOMEM);
    st = where == 0   ? push(&c->emit, &c->n_emit, &c->cap_emit, nd)
         : where == 1 ? push(&c->pre, &c->n_pre, &c->cap_pre, nd)
                      : push(&c->post, &c->n_post, &c->cap_post, nd);
    if (st != KILN_OK) {
        kiln_node_destroy(nd);
        cv_error(c, st);
        return NULL;
    }
    return nd;
}

static kiln_attr *new_attr(cv_ctx *c, kiln_node *n, const char *name, kiln_attr_type type);

kiln_node *cv_node_new(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins) {
    kiln_node *nd = emit_into(c, 0, op, 1, &out, n_in, ins);
    if (nd)
        c->n_emit--; /* not queued: the caller places it */
    return nd;
}

void cv_agraph(cv_ctx *c, kiln_node *n, const char *name, kiln_graph *g) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_GRAPH);
    if (a)
        a->g = g;
    else
        kiln_graph_destroy(g);
}

kiln_graph *cv_graph_of(cv_ctx *c, kiln_node **nodes, size_t n, const char *out, kiln_dtype dt) {
    if (c->st) {
        for (size_t i = 0; i < n; i++)
            kiln_node_destroy(nodes[i]);
        return NULL;
    }
    kiln_graph *g = kiln_graph_new();
    kiln_status st = g ? KILN_OK : KILN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (st == KILN_OK && (st = kiln_graph_add_node(g, nodes[i])) == KILN_OK)
            continue;
        kiln_node_destroy(nodes[i]);
    }
    if (st == KILN_OK && !(g->name = kiln_strdup(cv_fresh(c, "branch"))))
        st = KILN_ERR_NOMEM;
    if (st == KILN_OK) {
        g->outputs = kiln_calloc(1, sizeof *g->outputs);
        if (!g->outputs || !(g->outputs[0].name = kiln_strdup(out))) {
            st = KILN_ERR_NOMEM;
        } else {
            g->n_outputs = 1;
            g->outputs[0].type.kind = KILN_TYPE_TENSOR;
            g->outputs[0].type.elem = dt;
            g->outputs[0].type.rank = -1;
        }
    }
    if (st != KILN_OK) {
        kiln_graph_destroy(g);
        cv_error(c, st);
        return NULL;
    }
    return g;
}

kiln_graph *cv_take_graph(cv_ctx *c, size_t mark, const char *out, kiln_dtype dt) {
    if (mark > c->n_emit)
        mark = c->n_emit;
    size_t k = c->n_emit - mark;
    kiln_node **v = kiln_malloc((k + 1) * sizeof *v);
    if (!v) {
        cv_error(c, KILN_ERR_NOMEM);
        return NULL;
    }
    memcpy(v, c->emit + mark, k * sizeof *v);
    c->n_emit = mark;
    kiln_graph *g = cv_graph_of(c, v, k, out, dt);
    free(v);
    return g;
}

kiln_node *cv_emit(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins) {
    return emit_into(c, 0, op, 1, &out, n_in, ins);
}
kiln_node *cv_emit_n(cv_ctx *c, const char *op, size_t n_out, const char *const *outs, size_t n_in,
                     const char *const *ins) {
    return emit_into(c, 0, op, n_out, outs, n_in, ins);
}
kiln_node *cv_emit_pre(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins) {
    return emit_into(c, 1, op, 1, &out, n_in, ins);
}
kiln_node *cv_emit_post(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins) {
    return emit_into(c, 2, op, 1, &out, n_in, ins);
}

bool cv_adrop(kiln_node *n, const char *name) {
    for (size_t i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            kiln_attr_clear(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->n_attrs - i - 1) * sizeof *n->attrs);
            n->n_attrs--;
            return true;
        }
    return false;
}

static kiln_attr *new_attr(cv_ctx *c, kiln_node *n, const char *name, kiln_attr_type type) {
    if (c->st || !n)
        return NULL;
    cv_adrop(n, name);
    kiln_attr *a = kiln_realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a) {
        cv_error(c, KILN_ERR_NOMEM);
        return NULL;
    }
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = kiln_strdup(name))) {
        cv_error(c, KILN_ERR_NOMEM);
        return NULL;
    }
    a->type = type;
    n->n_attrs++;
    return a;
}

void cv_ai(cv_ctx *c, kiln_node *n, const char *name, int64_t v) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_INT);
    if (a)
        a->i = v;
}
void cv_af(cv_ctx *c, kiln_node *n, const char *name, float v) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_FLOAT);
    if (a)
        a->f = v;
}
void cv_as(cv_ctx *c, kiln_node *n, const char *name, const char *v) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_STRING);
    if (!a)
        return;
    a->s.len = strlen(v);
    if (!(a->s.data = kiln_strdup(v)))
        cv_error(c, KILN_ERR_NOMEM);
}
void cv_aints(cv_ctx *c, kiln_node *n, const char *name, size_t count, const int64_t *v) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_INTS);
    if (!a)
        return;
    a->ints = kiln_malloc((count + 1) * sizeof *a->ints);
    if (!a->ints) {
        cv_error(c, KILN_ERR_NOMEM);
        return;
    }
    if (count)
        memcpy(a->ints, v, count * sizeof *v);
    a->n = count;
}
void cv_afloats(cv_ctx *c, kiln_node *n, const char *name, size_t count, const float *v) {
    kiln_attr *a = new_attr(c, n, name, KILN_ATTR_FLOATS);
    if (!a)
        return;
    a->floats = kiln_malloc((count + 1) * sizeof *a->floats);
    if (!a->floats) {
        cv_error(c, KILN_ERR_NOMEM);
        return;
    }
    if (count)
        memcpy(a->floats, v, count * sizeof *v);
    a->n = count;
}

void cv_acopy(cv_ctx *c, kiln_node *dst, const kiln_node *src, const char *name, const char *as) {
    const kiln_attr *a = kiln_node_attr(src, name);
    if (c->st || !a || !dst)
        return;
    kiln_attr copy;
    kiln_status st = kiln_edit_attr_clone(a, &copy);
    if (st != KILN_OK) {
        cv_error(c, st);
        return;
    }
    kiln_attr *d = new_attr(c, dst, as ? as : name, a->type);
    if (!d) {
        kiln_attr_clear(&copy);
        return;
    }
    char *nm = d->name;
    free(copy.name);
    *d = copy;
    d->name = nm;
    d->src = NULL;
}

void cv_set_input(cv_ctx *c, kiln_node *n, size_t i, const char *name) {
    if (c->st || !n)
        return;
    if (i >= n->n_inputs) {
        char **v = kiln_realloc(n->inputs, (i + 2) * sizeof *v);
        if (!v) {
            cv_error(c, KILN_ERR_NOMEM);
            return;
        }
        n->inputs = v;
        while (n->n_inputs <= i) {
            if (!(n->inputs[n->n_inputs] = kiln_strdup(""))) {
                cv_error(c, KILN_ERR_NOMEM);
                return;
            }
            n->n_inputs++;
        }
        n->inputs[n->n_inputs] = NULL;
    }
    char *s = kiln_strdup(name);
    if (!s) {
        cv_error(c, KILN_ERR_NOMEM);
        return;
    }
    free(n->inputs[i]);
    n->inputs[i] = s;
}

void cv_trim(kiln_node *n) {
    while (n->n_inputs && !*n->inputs[n->n_inputs - 1]) {
        free(n->inputs[--n->n_inputs]);
        n->inputs[n->n_inputs] = NULL;
    }
    while (n->n_outputs > 1 && !*n->outputs[n->n_outputs - 1]) {
        free(n->outputs[--n->n_outputs]);
        n->outputs[n->n_outputs] = NULL;
    }
}

static const char *new_const(cv_ctx *c, kiln_tensor *t, const char *what) {
    if (c->st) {
        kiln_tensor_destroy(t);
        return "";
    }
    char base[400];
    snprintf(base, sizeof base, "%s_%s", base_name(c), what);
    const char *nm = NULL;
    kiln_status st = kiln_edit_new_const(c->scope->g, &c->fc.names, base, t, &nm);
    if (st != KILN_OK) {
        cv_error(c, st);
        return "";
    }
    return nm;
}

static kiln_tensor *make_tensor(cv_ctx *c, kiln_dtype dt, int rank, const int64_t *dims) {
    if (c->st)
        return NULL;
    kiln_tensor *t;
    kiln_status st = kiln_tensor_create(dt, rank, dims, &t);
    if (st != KILN_OK) {
        cv_error(c, st);
        return NULL;
    }
    return t;
}

const char *cv_const_i64(cv_ctx *c, size_t n, const int64_t *v) {
    int64_t d = (int64_t)n;
    kiln_tensor *t = make_tensor(c, KILN_DTYPE_INT64, 1, &d);
    if (!t)
        return "";
    if (n)
        memcpy(t->data, v, n * sizeof *v);
    return new_const(c, t, "const");
}

const char *cv_scalar_i64(cv_ctx *c, int64_t v) {
    kiln_tensor *t = make_tensor(c, KILN_DTYPE_INT64, 0, NULL);
    if (!t)
        return "";
    *(int64_t *)t->data = v;
    return new_const(c, t, "const");
}

const char *cv_const_f32(cv_ctx *c, size_t n, const float *v) {
    int64_t d = (int64_t)n;
    kiln_tensor *t = make_tensor(c, KILN_DTYPE_FLOAT, 1, &d);
    if (!t)
        return "";
    if (n)
        memcpy(t->data, v, n * sizeof *v);
    return new_const(c, t, "const");
}

const char *cv_scalar(cv_ctx *c, kiln_dtype dt, double v) {
    kiln_tensor *t = make_tensor(c, dt, 0, NULL);
    if (!t)
        return "";
    void *d = t->data;
    switch (dt) {
    case KILN_DTYPE_FLOAT: *(float *)d = (float)v; break;
    case KILN_DTYPE_DOUBLE: *(double *)d = v; break;
    case KILN_DTYPE_FLOAT16: *(uint16_t *)d = kiln_float_to_half((float)v); break;
    case KILN_DTYPE_BFLOAT16: *(uint16_t *)d = kiln_float_to_bf16((float)v); break;
    case KILN_DTYPE_INT8: *(int8_t *)d = (int8_t)v; break;
    case KILN_DTYPE_UINT8: *(uint8_t *)d = (uint8_t)v; break;
    case KILN_DTYPE_INT16: *(int16_t *)d = (int16_t)v; break;
    case KILN_DTYPE_UINT16: *(uint16_t *)d = (uint16_t)v; break;
    case KILN_DTYPE_INT32: *(int32_t *)d = (int32_t)v; break;
    case KILN_DTYPE_UINT32: *(uint32_t *)d = (uint32_t)v; break;
    case KILN_DTYPE_INT64: *(int64_t *)d = (int64_t)v; break;
    case KILN_DTYPE_UINT64: *(uint64_t *)d = (uint64_t)v; break;
    case KILN_DTYPE_BOOL: *(uint8_t *)d = v != 0; break;
    default:
        kiln_tensor_destroy(t);
        cv_error(c, kiln_fail(KILN_ERR_UNSUPPORTED, "no scalar constant of type %s", kiln_dtype_name(dt)));
        return "";
    }
    return new_const(c, t, "const");
}

/* ---- attribute defaults ---- */

static bool ints_all(const kiln_attr *a, int64_t v) {
    for (size_t i = 0; i < a->n; i++)
        if (a->ints[i] != v)
            return false;
    return true;
}

/* Whether attribute a holds the value version s gives it when absent. */
static bool attr_is_default(const kiln_attr *a, const cv_attr_schema *s) {
    if (!strcmp(a->name, "dilations") || !strcmp(a->name, "strides"))
        return a->type == KILN_ATTR_INTS && ints_all(a, 1);
    if (!s || !s->dflt || a->ref)
        return false;
    const char *d = s->dflt + 2;
    switch (s->dflt[0]) {
    case 'i': return a->type == KILN_ATTR_INT && a->i == strtoll(d, NULL, 10);
    case 'f': return a->type == KILN_ATTR_FLOAT && a->f == (float)strtod(d, NULL);
    case 's': return a->type == KILN_ATTR_STRING && a->s.len == strlen(d) && !memcmp(a->s.data, d, a->s.len);
    case 'I': {
        if (a->type != KILN_ATTR_INTS)
            return false;
        size_t k = 0;
        for (const char *p = d; *p; k++) {
            char *e;
            long long v = strtoll(p, &e, 10);
            if (e == p || k >= a->n || a->ints[k] != v)
                return false;
            p = *e == ',' ? e + 1 : e;
        }
        return k == a->n;
    }
    case 'F': {
        if (a->type != KILN_ATTR_FLOATS)
            return false;
        size_t k = 0;
        for (const char *p = d; *p; k++) {
            char *e;
            float v = (float)strtod(p, &e);
            if (e == p || k >= a->n || a->floats[k] != v)
                return false;
            p = *e == ',' ? e + 1 : e;
        }
        return k == a->n;
    }
    }
    return false;
}

/* Sets attribute `s` on n to the default text (for a default a later version changes). */
static void set_default(cv_ctx *c, kiln_node *n, const cv_attr_schema *s) {
    const char *d = s->dflt + 2;
    switch (s->dflt[0]) {
    case 'i': cv_ai(c, n, s->name, strtoll(d, NULL, 10)); break;
    case 'f': cv_af(c, n, s->name, (float)strtod(d, NULL)); break;
    case 's': cv_as(c, n, s->name, d); break;
    case 'I': {
        int64_t v[64];
        size_t k = 0;
        for (const char *p = d; *p && k < 64; k++) {
            char *e;
            v[k] = strtoll(p, &e, 10);
            p = *e == ',' ? e + 1 : e;
        }
        cv_aints(c, n, s->name, k, v);
        break;
    }
    case 'F': {
        float v[64];
        size_t k = 0;
        for (const char *p = d; *p && k < 64; k++) {
            char *e;
            v[k] = (float)strtod(p, &e);
            p = *e == ',' ? e + 1 : e;
        }
        cv_afloats(c, n, s->name, k, v);
        break;
    }
    }
}

static void attr_text(const kiln_attr *a, char *buf, size_t n) {
    switch (a->type) {
    case KILN_ATTR_INT: snprintf(buf, n, "%lld", (long long)a->i); break;
    case KILN_ATTR_FLOAT: snprintf(buf, n, "%g", (double)a->f); break;
    case KILN_ATTR_STRING: snprintf(buf, n, "\"%.*s\"", (int)(a->s.len > 64 ? 64 : a->s.len), a->s.data); break;
    case KILN_ATTR_INTS: {
        size_t o = (size_t)snprintf(buf, n, "[");
        for (size_t i = 0; i < a->n && o < n; i++)
            o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)a->ints[i]);
        if (o < n)
            snprintf(buf + o, n - o, "]");
        break;
    }
    default: snprintf(buf, n, "(set)"); break;
    }
}

/* ---- element types ---- */

typedef enum vkind { VK_UNKNOWN = -1, VK_TENSOR = 0, VK_SEQ = 1, VK_OPT = 2, VK_OPTSEQ = 3 } vkind;


static vkind produced_type(cv_ctx *c, const char *name, kiln_dtype *dt, int depth);

/* The kind and element type of a value as far as known. */
static vkind value_type_d(cv_ctx *c, const char *name, kiln_dtype *dt, int depth) {
    *dt = KILN_DTYPE_UNDEFINED;
    const kiln_shape_fact *fa = kiln_fact(&c->fc, name);
    if (fa && fa->dt) { /* facts are of tensors */
        *dt = fa->dt;
        return VK_TENSOR;
    }
    const kiln_value_info *vi = declared(c->scope, name);
    if (vi && vi->type.kind == KILN_TYPE_OTHER && vi->src) {
        const Onnx__TypeProto *tp = ((const Onnx__ValueInfoProto *)vi->src)->type;
        vkind k = VK_UNKNOWN;
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type) {
            tp = tp->sequence_type->elem_type;
            k = VK_SEQ;
        } else if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE && tp->optional_type) {
            tp = tp->optional_type->elem_type;
            k = VK_OPT;
            if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type) {
                tp = tp->sequence_type->elem_type;
                k = VK_OPTSEQ;
            }
        } else {
            return VK_UNKNOWN;
        }
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
            tp->tensor_type->has_elem_type)
            *dt = (kiln_dtype)tp->tensor_type->elem_type;
        return *dt ? k : VK_UNKNOWN;
    }
    *dt = cv_dtype(c, name);
    if (*dt)
        return VK_TENSOR;
    return depth < 16 ? produced_type(c, name, dt, depth + 1) : VK_UNKNOWN;
}

static vkind value_type(cv_ctx *c, const char *name, kiln_dtype *dt) { return value_type_d(c, name, dt, 0); }
int cv_kind(cv_ctx *c, const char *name, kiln_dtype *dt) { return (int)value_type(c, name, dt); }

/* Sequences and optionals made by the operators that make them. */
static vkind produced_type(cv_ctx *c, const char *name, kiln_dtype *dt, int depth) {
    const kiln_node *p = kiln_nameset_get(&c->prod, name);
    if (!p || !is_onnx(p))
        return VK_UNKNOWN;
    const char *op = p->op_type, *in0 = p->n_inputs ? p->inputs[0] : "";
    vkind k;
    if (!strcmp(op, "SequenceEmpty")) {
        *dt = (kiln_dtype)kiln_attr_int(p, "dtype", KILN_DTYPE_FLOAT);
        return VK_SEQ;
    }
    if (!strcmp(op, "SequenceConstruct") || !strcmp(op, "SplitToSequence")) {
        k = *in0 ? value_type_d(c, in0, dt, depth) : VK_UNKNOWN;
        return k == VK_TENSOR ? VK_SEQ : VK_UNKNOWN;
    }
    if (!strcmp(op, "SequenceInsert") || !strcmp(op, "SequenceErase") || !strcmp(op, "Identity"))
        return *in0 ? value_type_d(c, in0, dt, depth) : VK_UNKNOWN;
    if (!strcmp(op, "SequenceAt") || !strcmp(op, "OptionalGetElement")) {
        k = *in0 ? value_type_d(c, in0, dt, depth) : VK_UNKNOWN;
        return k == VK_SEQ || k == VK_OPT ? VK_TENSOR : k == VK_OPTSEQ ? VK_SEQ : VK_UNKNOWN;
    }
    if (!strcmp(op, "Optional")) {
        if (*in0) {
            k = value_type_d(c, in0, dt, depth);
            return k == VK_TENSOR ? VK_OPT : k == VK_SEQ ? VK_OPTSEQ : VK_UNKNOWN;
        }
        return VK_UNKNOWN;
    }
    return VK_UNKNOWN;
}

static bool allowed(const cv_formal *f, vkind k, kiln_dtype dt) {
    return k >= 0 && dt > 0 && dt < 32 && (f->types[k] >> dt & 1u);
}

static void mask_text(uint32_t m, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int dt = 1; dt < 32 && o < n; dt++)
        if (m >> dt & 1u)
            o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? ", " : "", kiln_dtype_name((kiln_dtype)dt));
}

typedef struct widen {
    kiln_dtype from;
    kiln_dtype to[6];
} widen;

/* Exact representations, narrowest first. */
static const widen wider_any[] = {
    {KILN_DTYPE_BFLOAT16, {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_FLOAT16, {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_FLOAT, {KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_INT8, {KILN_DTYPE_INT16, KILN_DTYPE_INT32, KILN_DTYPE_INT64, KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_UINT8,
     {KILN_DTYPE_UINT16, KILN_DTYPE_INT16, KILN_DTYPE_INT32, KILN_DTYPE_UINT32, KILN_DTYPE_INT64, KILN_DTYPE_FLOAT}},
    {KILN_DTYPE_INT16, {KILN_DTYPE_INT32, KILN_DTYPE_INT64, KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_UINT16, {KILN_DTYPE_UINT32, KILN_DTYPE_INT32, KILN_DTYPE_INT64, KILN_DTYPE_UINT64, KILN_DTYPE_FLOAT}},
    {KILN_DTYPE_INT32, {KILN_DTYPE_INT64, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_UINT32, {KILN_DTYPE_UINT64, KILN_DTYPE_INT64, KILN_DTYPE_DOUBLE}},
    {KILN_DTYPE_BOOL, {KILN_DTYPE_UINT8, KILN_DTYPE_INT32, KILN_DTYPE_INT64, KILN_DTYPE_FLOAT}},
};

static bool is_float(kiln_dtype t) {
    return t == KILN_DTYPE_FLOAT || t == KILN_DTYPE_DOUBLE || t == KILN_DTYPE_FLOAT16 || t == KILN_DTYPE_BFLOAT16;
}

/* A type allowed by `mask` in which op can compute on dt values and give
 * the same result once cast back; UNDEFINED when none. */
static kiln_dtype pick_wider(cv_cast_kind k, kiln_dtype dt, uint32_t mask) {
    if (k == CV_CAST_NONE)
        return KILN_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof wider_any / sizeof *wider_any; i++) {
        if (wider_any[i].from != dt)
            continue;
        for (int j = 0; j < 6 && wider_any[i].to[j]; j++) {
            kiln_dtype w = wider_any[i].to[j];
            if (!(mask >> w & 1u))
                continue;
            if (k == CV_CAST_FLOAT && !(is_float(dt) && is_float(w)))
                continue;
            /* arithmetic: floats stay floats; integers widen as integers
             * (wrapping back), or to float while both stay exact (< 2^24) */
            if (k == CV_CAST_ARITH && is_float(dt) != is_float(w) &&
                !(dt == KILN_DTYPE_INT8 || dt == KILN_DTYPE_UINT8 || dt == KILN_DTYPE_INT16 ||
                  dt == KILN_DTYPE_UINT16))
                continue;
            if (k == CV_CAST_ARITH && dt == KILN_DTYPE_BOOL)
                continue;
            return w;
        }
    }
    return KILN_DTYPE_UNDEFINED;
}

static const struct {
    const char *op;
    cv_cast_kind k;
} cast_policy[] = {
    {"Abs", CV_CAST_ARITH}, {"Add", CV_CAST_ARITH}, {"ArgMax", CV_CAST_MOVE}, {"ArgMin", CV_CAST_MOVE},
    {"AveragePool", CV_CAST_FLOAT}, {"BatchNormalization", CV_CAST_FLOAT}, {"BitShift", CV_CAST_ARITH},
    {"Ceil", CV_CAST_MOVE}, {"Celu", CV_CAST_FLOAT}, {"Clip", CV_CAST_MOVE}, {"Compress", CV_CAST_MOVE},
    {"Concat", CV_CAST_MOVE}, {"Conv", CV_CAST_FLOAT}, {"ConvTranspose", CV_CAST_FLOAT}, {"CumSum", CV_CAST_ARITH},
    {"DepthToSpace", CV_CAST_MOVE}, {"Div", CV_CAST_ARITH}, {"Einsum", CV_CAST_FLOAT}, {"Elu", CV_CAST_FLOAT},
    {"Equal", CV_CAST_MOVE}, {"Erf", CV_CAST_FLOAT}, {"Exp", CV_CAST_FLOAT}, {"Expand", CV_CAST_MOVE},
    {"Flatten", CV_CAST_MOVE}, {"Floor", CV_CAST_MOVE}, {"Gather", CV_CAST_MOVE}, {"GatherElements", CV_CAST_MOVE},
    {"GatherND", CV_CAST_MOVE}, {"Gemm", CV_CAST_FLOAT}, {"GlobalAveragePool", CV_CAST_FLOAT},
    {"GlobalMaxPool", CV_CAST_MOVE}, {"Greater", CV_CAST_MOVE}, {"GreaterOrEqual", CV_CAST_MOVE},
    {"HardSigmoid", CV_CAST_FLOAT}, {"HardSwish", CV_CAST_FLOAT}, {"Hardmax", CV_CAST_MOVE},
    {"Identity", CV_CAST_MOVE}, {"InstanceNormalization", CV_CAST_FLOAT}, {"IsInf", CV_CAST_MOVE},
    {"IsNaN", CV_CAST_MOVE}, {"LRN", CV_CAST_FLOAT}, {"LeakyRelu", CV_CAST_FLOAT}, {"Less", CV_CAST_MOVE},
    {"LessOrEqual", CV_CAST_MOVE}, {"Log", CV_CAST_FLOAT}, {"LogSoftmax", CV_CAST_FLOAT},
    {"LpNormalization", CV_CAST_FLOAT}, {"MatMul", CV_CAST_FLOAT}, {"Max", CV_CAST_MOVE}, {"MaxPool", CV_CAST_MOVE},
    {"Mean", CV_CAST_FLOAT}, {"Min", CV_CAST_MOVE}, {"Mish", CV_CAST_FLOAT}, {"Mod", CV_CAST_ARITH},
    {"Mul", CV_CAST_ARITH}, {"Neg", CV_CAST_ARITH}, {"NonZero", CV_CAST_MOVE}, {"Pad", CV_CAST_MOVE},
    {"Pow", CV_CAST_FLOAT}, {"PRelu", CV_CAST_FLOAT}, {"Reciprocal", CV_CAST_FLOAT}, {"ReduceL1", CV_CAST_FLOAT},
    {"ReduceL2", CV_CAST_FLOAT}, {"ReduceLogSum", CV_CAST_FLOAT}, {"ReduceLogSumExp", CV_CAST_FLOAT},
    {"ReduceMax", CV_CAST_MOVE}, {"ReduceMean", CV_CAST_FLOAT}, {"ReduceMin", CV_CAST_MOVE},
    {"ReduceProd", CV_CAST_ARITH}, {"ReduceSum", CV_CAST_ARITH}, {"ReduceSumSquare", CV_CAST_FLOAT},
    {"Relu", CV_CAST_MOVE}, {"Reshape", CV_CAST_MOVE}, {"ReverseSequence", CV_CAST_MOVE}, {"Round", CV_CAST_MOVE},
    {"Scatter", CV_CAST_MOVE}, {"ScatterElements", CV_CAST_MOVE}, {"ScatterND", CV_CAST_MOVE},
    {"Selu", CV_CAST_FLOAT}, {"Shape", CV_CAST_MOVE}, {"Sigmoid", CV_CAST_FLOAT}, {"Sign", CV_CAST_MOVE},
    {"Sin", CV_CAST_FLOAT}, {"Cos", CV_CAST_FLOAT}, {"Tan", CV_CAST_FLOAT}, {"Asin", CV_CAST_FLOAT},
    {"Acos", CV_CAST_FLOAT}, {"Atan", CV_CAST_FLOAT}, {"Sinh", CV_CAST_FLOAT}, {"Cosh", CV_CAST_FLOAT},
    {"Asinh", CV_CAST_FLOAT}, {"Acosh", CV_CAST_FLOAT}, {"Atanh", CV_CAST_FLOAT}, {"Size", CV_CAST_MOVE},
    {"Slice", CV_CAST_MOVE}, {"Softmax", CV_CAST_FLOAT}, {"Softplus", CV_CAST_FLOAT}, {"Softsign", CV_CAST_FLOAT},
    {"SpaceToDepth", CV_CAST_MOVE}, {"Split", CV_CAST_MOVE}, {"Sqrt", CV_CAST_FLOAT}, {"Squeeze", CV_CAST_MOVE},
    {"Sub", CV_CAST_ARITH}, {"Sum", CV_CAST_ARITH}, {"Tanh", CV_CAST_FLOAT}, {"ThresholdedRelu", CV_CAST_FLOAT},
    {"Tile", CV_CAST_MOVE}, {"TopK", CV_CAST_MOVE}, {"Transpose", CV_CAST_MOVE}, {"Trilu", CV_CAST_MOVE},
    {"Unique", CV_CAST_MOVE}, {"Unsqueeze", CV_CAST_MOVE}, {"Where", CV_CAST_MOVE},
};

cv_cast_kind cv_cast_policy(const char *op) {
    for (size_t i = 0; i < sizeof cast_policy / sizeof *cast_policy; i++)
        if (!strcmp(cast_policy[i].op, op))
            return cast_policy[i].k;
    return CV_CAST_NONE;
}

/* Whether Cast at the target opset converts between a and b. */
static bool cast_ok(cv_ctx *c, kiln_dtype a, kiln_dtype b) {
    const cv_schema *s = cv_schema_at("Cast", c->to);
    return s && s->n_in && s->n_out && allowed(&s->in[0], VK_TENSOR, a) && allowed(&s->out[0], VK_TENSOR, b);
}

static kiln_node *cast_node(cv_ctx *c, bool before, const char *in, const char *out, kiln_dtype to) {
    kiln_node *nd = emit_into(c, before ? 1 : 2, "Cast", 1, &out, 1, &in);
    if (nd)
        nd->opset = c->to;
    cv_ai(c, nd, "to", to);
    return nd;
}

/* Element types of n's inputs and outputs against version b. */
static cv_result check_types(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    enum { MAXTC = 16 };
    kiln_dtype tc_dt[MAXTC] = {0}, bad_dt[MAXTC] = {0};
    const cv_formal *bad_f[MAXTC] = {0};
    /* the type of each constraint, from the values whose type is known */
    for (int side = 0; side < 2; side++) {
        size_t cnt = side ? n->n_outputs : n->n_inputs;
        for (size_t i = 0; i < cnt; i++) {
            const char *v = side ? n->outputs[i] : n->inputs[i];
            const cv_formal *fb = side ? cv_formal_out(b, i) : cv_formal_in(b, i);
            if (!*v || !fb || fb->tc < 0 || fb->tc >= MAXTC || (fb->option == 2 && !fb->homog))
                continue;
            kiln_dtype dt;
            vkind k = value_type(c, v, &dt);
            if (k != VK_TENSOR)
                continue;
            if (tc_dt[fb->tc] && tc_dt[fb->tc] != dt)
                return cv_refuse(c, "'%s' is %s where %s-%d wants the type of another %s (%s)", v,
                                 kiln_dtype_name(dt), n->op_type, b->since, side ? "output" : "input",
                                 kiln_dtype_name(tc_dt[fb->tc]));
            tc_dt[fb->tc] = dt;
        }
    }
    for (int side = 0; side < 2; side++) {
        size_t cnt = side ? n->n_outputs : n->n_inputs;
        for (size_t i = 0; i < cnt; i++) {
            const char *v = side ? n->outputs[i] : n->inputs[i];
            if (!*v)
                continue;
            const cv_formal *fb = side ? cv_formal_out(b, i) : cv_formal_in(b, i);
            const cv_formal *fa = side ? cv_formal_out(a, i) : cv_formal_in(a, i);
            if (!fb)
                continue;
            bool grouped = fb->tc >= 0 && fb->tc < MAXTC && !(fb->option == 2 && !fb->homog);
            kiln_dtype dt;
            vkind k = value_type(c, v, &dt);
            if (k == VK_UNKNOWN && grouped && tc_dt[fb->tc] && fb->types[0]) {
                /* a tensor of the type its constraint has elsewhere on the node */
                k = VK_TENSOR;
                dt = tc_dt[fb->tc];
            }
            if (k == VK_UNKNOWN) {
                if (fa && !memcmp(fa->types, fb->types, sizeof fa->types))
                    continue;
                /* the types the next version lacks: are any possible here? */
                bool lost = false;
                for (int q = 0; q < 4 && fa; q++)
                    if (fa->types[q] & ~fb->types[q])
                        lost = true;
                if (!lost)
                    continue;
                return cv_refuse(c, "the element type of %s '%s' is unknown, and %s-%d does not allow every type "
                                    "%s-%d does",
                                 side ? "output" : "input", v, n->op_type, b->since, n->op_type, a->since);
            }
            if (allowed(fb, k, dt))
                continue;
            if (k != VK_TENSOR || !grouped) {
                char list[400];
                mask_text(fb->types[k < 0 ? 0 : k], list, sizeof list);
                static const char *kinds[4] = {"", "a sequence of ", "an optional ", "an optional sequence of "};
                return cv_refuse(c, "%s '%s' is %s%s, which %s-%d does not allow (it takes %s%s)",
                                 side ? "output" : "input", v, kinds[k], kiln_dtype_name(dt), n->op_type, b->since,
                                 *list ? kinds[k] : "", *list ? list : "no such type");
            }
            bad_dt[fb->tc] = dt;
            bad_f[fb->tc] = fb;
        }
    }
    for (int t = 0; t < MAXTC; t++) {
        if (!bad_f[t])
            continue;
        kiln_dtype dt = bad_dt[t];
        kiln_dtype w = pick_wider(cv_cast_policy(n->op_type), dt, bad_f[t]->types[0]);
        char list[400];
        mask_text(bad_f[t]->types[0], list, sizeof list);
        if (!w)
            return cv_refuse(c, "%s-%d does not take %s (it takes %s)%s", n->op_type, b->since, kiln_dtype_name(dt),
                             list,
                             cv_cast_policy(n->op_type) == CV_CAST_NONE
                                 ? ""
                                 : ", and no wider type it takes holds the values exactly");
        if (!cast_ok(c, dt, w) || !cast_ok(c, w, dt))
            return cv_refuse(c, "%s-%d does not take %s, and Cast at opset %lld cannot convert %s to %s and back",
                             n->op_type, b->since, kiln_dtype_name(dt), (long long)c->to, kiln_dtype_name(dt),
                             kiln_dtype_name(w));
        for (size_t i = 0; i < n->n_inputs; i++) {
            const cv_formal *fb = cv_formal_in(b, i);
            if (!*n->inputs[i] || !fb || fb->tc != t)
                continue;
            char base[300];
            snprintf(base, sizeof base, "%s_%s", n->inputs[i], kiln_dtype_name(w));
            const char *nm = cv_fresh(c, base);
            cast_node(c, true, n->inputs[i], nm, w);
            cv_set_type(c, nm, w, cv_rank(c, n->inputs[i]));
            cv_set_input(c, n, i, nm);
        }
        for (size_t i = 0; i < n->n_outputs; i++) {
            const cv_formal *fb = cv_formal_out(b, i);
            if (!*n->outputs[i] || !fb || fb->tc != t)
                continue;
            char base[300];
            snprintf(base, sizeof base, "%s_%s", n->outputs[i], kiln_dtype_name(w));
            const char *nm = cv_fresh(c, base);
            cast_node(c, false, nm, n->outputs[i], dt);
            cv_set_type(c, nm, w, cv_rank(c, n->outputs[i]));
            char *s = kiln_strdup(nm);
            if (!s)
                return cv_error(c, KILN_ERR_NOMEM);
            free(n->outputs[i]);
            n->outputs[i] = s;
        }
        if (c->st)
            return CV_ERROR;
        cv_note(c, n, a->since, b->since, "computes in %s between Casts (%s-%d does not take %s)",
                kiln_dtype_name(w), n->op_type, b->since, kiln_dtype_name(dt));
    }
    return CV_DONE;
}

/* ---- the generic step ---- */

static cv_result generic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b, int64_t from, int64_t to) {
    cv_trim(n);
    for (size_t i = 0; i < n->n_attrs;) {
        const kiln_attr *at = &n->attrs[i];
        const cv_attr_schema *sb = cv_schema_attr(b, at->name);
        if (!sb) {
            const cv_attr_schema *sa = cv_schema_attr(a, at->name);
            char val[200];
            attr_text(at, val, sizeof val);
            if (attr_is_default(at, sa)) {
                char name[128];
                snprintf(name, sizeof name, "%s", at->name);
                cv_adrop(n, name);
                cv_note(c, n, from, to, "dropped attribute '%s' = %s (the default; %s-%d has no such attribute)",
                        name, val, n->op_type, b->since);
                continue;
            }
            return cv_refuse(c, "attribute '%s' = %s has no equivalent in %s-%d", at->name, val, n->op_type,
                             b->since);
        }
        if (sb->type != at->type && !at->ref)
            return cv_refuse(c, "attribute '%s' is of another type in %s-%d", at->name, n->op_type, b->since);
        i++;
    }
    for (int k = 0; k < b->n_at; k++) {
        const cv_attr_schema *sb = &b->at[k];
        if (kiln_node_attr(n, sb->name))
            continue;
        if (sb->required)
            return cv_refuse(c, "%s-%d requires attribute '%s'", n->op_type, b->since, sb->name);
        const cv_attr_schema *sa = cv_schema_attr(a, sb->name);
        if (sa && sa->dflt && (!sb->dflt || strcmp(sa->dflt, sb->dflt) != 0)) {
            set_default(c, n, sa);
            cv_note(c, n, from, to, "attribute '%s' set to %s-%d's default %s explicitly", sa->name, n->op_type,
                    a->since, sa->dflt + 2);
        }
    }
    if ((int)n->n_inputs > b->max_in) {
        const cv_formal *fa = cv_formal_in(a, (size_t)b->max_in);
        return cv_refuse(c, "input %d ('%s'%s%s) has no equivalent in %s-%d", b->max_in, n->inputs[b->max_in],
                         fa ? ", " : "", fa ? fa->name : "", n->op_type, b->since);
    }
    if ((int)n->n_inputs < b->min_in)
        return cv_refuse(c, "%s-%d needs at least %d inputs, the node has %zu", n->op_type, b->since, b->min_in,
                         n->n_inputs);
    for (size_t i = 0; i < n->n_inputs; i++) {
        const cv_formal *f = cv_formal_in(b, i);
        if (!*n->inputs[i] && f && f->option != 1)
            return cv_refuse(c, "input %zu ('%s') is omitted, which %s-%d does not allow", i, f->name, n->op_type,
                             b->since);
    }
    if ((int)n->n_outputs > b->max_out) {
        /* outputs nothing reads may go */
        bool used = false;
        for (size_t i = (size_t)b->max_out; i < n->n_outputs; i++)
            if (*n->outputs[i])
                used = true;
        if (used)
            return cv_refuse(c, "output %d ('%s') has no equivalent in %s-%d", b->max_out, n->outputs[b->max_out],
                             n->op_type, b->since);
    }
    if ((int)n->n_outputs < b->min_out)
        return cv_refuse(c, "%s-%d has at least %d outputs, the node %zu", n->op_type, b->since, b->min_out,
                         n->n_outputs);
    return check_types(c, n, a, b);
}

/* ---- one node, step by step ---- */


/* The last step of every node: a node the conversion made is checked
 * against the target's schema (the original nodes were valid at their own). */
static cv_result finish_node(cv_ctx *c, kiln_node *n) {
    n->opset = c->to;
    if (!n->n_outputs || !kiln_nameset_has(&c->fresh, n->outputs[0]))
        return CV_DONE;
    const cv_schema *s = cv_schema_at(n->op_type, c->to);
    if (!s || s->deprecated)
        return cv_refuse(c, "%s is not an operator of opset %lld", n->op_type, (long long)c->to);
    cv_result r = generic(c, n, s, s, c->to, c->to);
    if (r == CV_DONE)
        kiln_nameset_put(&c->fresh, n->outputs[0], (void *)1); /* checked */
    return r;
}

static cv_result convert_node(cv_ctx *c, kiln_node *n) {
    int64_t at = n->opset ? n->opset : c->from;
    for (int guard = 0; guard < 64; guard++) {
        c->at = at;
        if (at == c->to)
            return finish_node(c, n);
        const cv_schema *sa = cv_schema_at(n->op_type, at);
        if (!sa)
            return cv_refuse(c, "%s is not an ai.onnx operator at opset %lld", n->op_type, (long long)at);
        if (c->to < at) {
            const cv_schema *tgt = cv_schema_at(n->op_type, c->to);
            if (tgt == sa && !sa->deprecated)
                return finish_node(c, n);
            const cv_schema *sb = sa->since > 1 ? cv_schema_at(n->op_type, sa->since - 1) : NULL;
            int64_t dest = sa->since - 1;
            const cv_adapter *ad = cv_find_adapter(n->op_type, sa->since);
            /* an operator the target lacks: decomposed from the version it is at */
            const cv_lowering *now = !tgt || tgt->deprecated ? cv_find_lowering(n->op_type) : NULL;
            if (now || !sb || sb->deprecated || (ad && !ad->down && ad->up)) {
                const cv_lowering *lw = now ? now : cv_find_lowering(n->op_type);
                if (!lw)
                    return cv_refuse(c, "%s first appears in opset %d, and kiln has no decomposition of it",
                                     n->op_type, sb ? sb->since : sa->since);
                c->emit_opset = lw->opset;
                cv_result r = lw->fn(c, n);
                if (r == CV_REPLACED)
                    cv_note(c, n, at, lw->opset, "decomposed: %s", lw->how);
                return r;
            }
            c->emit_opset = dest;
            if (ad && ad->down) {
                cv_result r = ad->down(c, n, sa, sb);
                if (r != CV_DONE)
                    return r;
            }
            cv_result r = generic(c, n, sa, sb, at, dest);
            if (r != CV_DONE)
                return r;
            at = dest < c->to ? c->to : dest;
        } else {
            const cv_schema *sb = cv_schema_after(n->op_type, sa->since);
            if (!sb || sb->since > c->to)
                return finish_node(c, n);
            if (sb->deprecated) {
                const cv_lowering *rp = cv_find_replacement(n->op_type);
                if (!rp)
                    return cv_refuse(c, "%s is deprecated from opset %d, and kiln has no replacement for it",
                                     n->op_type, sb->since);
                c->emit_opset = rp->opset > c->to ? c->to : rp->opset;
                cv_result r = rp->fn(c, n);
                if (r == CV_REPLACED)
                    cv_note(c, n, at, c->emit_opset, "replaced: %s", rp->how);
                return r;
            }
            c->emit_opset = sb->since;
            const cv_adapter *ad = cv_find_adapter(n->op_type, sb->since);
            if (ad && ad->up) {
                cv_result r = ad->up(c, n, sa, sb);
                if (r != CV_DONE)
                    return r;
            }
            cv_result r = generic(c, n, sa, sb, at, sb->since);
            if (r != CV_DONE)
                return r;
            at = sb->since;
        }
    }
    return cv_refuse(c, "conversion does not settle");
}

static void drop_list(kiln_node **v, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        kiln_node_destroy(v[i]);
    *n = 0;
}

static void map_outputs(cv_ctx *c, kiln_node *n, bool gone) {
    for (size_t k = 0; k < n->n_outputs; k++)
        if (*n->outputs[k] && kiln_nameset_put(&c->prod, n->outputs[k], gone ? NULL : n) != KILN_OK)
            cv_error(c, KILN_ERR_NOMEM);
}

static cv_result insert_list(cv_ctx *c, kiln_graph *g, size_t *at, kiln_node **v, size_t *n) {
    for (size_t i = 0; i < *n; i++) {
        map_outputs(c, v[i], false);
        kiln_status st = kiln_edit_insert(g, (*at)++, v[i]);
        if (st != KILN_OK) {
            for (size_t k = i; k < *n; k++)
                kiln_node_destroy(v[k]);
            *n = 0;
            return cv_error(c, st);
        }
    }
    *n = 0;
    return CV_DONE;
}

static size_t count_pending(const cv_ctx *c, kiln_node *const *v, size_t n) {
    (void)c;
    (void)v;
    return n; /* every node made is visited once more (checked at the target) */
}

static kiln_status convert_graph(cv_ctx *c, const kiln_scope *s, size_t *pending) {
    kiln_graph *g = s->g;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g) {
                kiln_scope sub = {.g = n->attrs[a].g, .up = s};
                KILN_TRY(convert_graph(c, &sub, pending));
            }
            for (size_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++) {
                kiln_scope sub = {.g = n->attrs[a].graphs[k], .up = s};
                KILN_TRY(convert_graph(c, &sub, pending));
            }
        }
        const cv_lowering *pv = !is_onnx(n) ? cv_find_preview(n->domain, n->op_type) : NULL;
        if (pv) {
            /* decomposed into ai.onnx nodes, converted on from there */
            c->scope = s;
            c->n = n;
            c->n_emit = c->n_pre = c->n_post = 0;
            c->why[0] = 0;
            c->at = c->from;
            c->emit_opset = pv->opset;
            cv_result r = pv->fn(c, n);
            if (r == CV_REPLACED) {
                cv_note(c, n, c->from, pv->opset, "decomposed: %s", pv->how);
                map_outputs(c, n, true);
                kiln_graph_remove_node(g, i);
                size_t pos = i, added = c->n_emit;
                *pending += added;
                if (insert_list(c, g, &pos, c->emit, &c->n_emit) != CV_DONE)
                    return c->st;
                i = added ? pos - 1 : i - 1;
            } else {
                drop_list(c->emit, &c->n_emit);
                if (r == CV_ERROR || c->st)
                    return c->st ? c->st : KILN_ERR_NOMEM;
                record_refusal(c, n, c->from);
            }
            c->n = NULL;
            continue;
        }
        if (!is_onnx(n)) {
            if (n->opset && n->opset != kiln_model_opset(c->m, n->domain)) {
                snprintf(c->why, sizeof c->why,
                         "it was inlined from a local function importing %s %lld, and kiln converts ai.onnx only",
                         n->domain, (long long)n->opset);
                record_refusal(c, n, n->opset);
            }
            continue;
        }
        bool fresh = n->n_outputs && kiln_nameset_has(&c->fresh, n->outputs[0]) &&
                     !kiln_nameset_get(&c->fresh, n->outputs[0]);
        if (!fresh && (n->opset == c->to || (!n->opset && c->from == c->to)))
            continue;
        c->scope = s;
        c->n = n;
        c->n_emit = c->n_pre = c->n_post = 0;
        c->why[0] = 0;
        int64_t at0 = n->opset ? n->opset : c->from;
        bool original = !n->n_outputs || !kiln_nameset_has(&c->fresh, n->outputs[0]);
        cv_result r = convert_node(c, n);
        if (r == CV_DONE && c->st)
            r = CV_ERROR;
        switch (r) {
        case CV_DONE: {
            const cv_schema *s0 = cv_schema_at(n->op_type, at0), *s1 = cv_schema_at(n->op_type, c->to);
            if (s0 == s1 && original)
                c->relabeled++;
            size_t pos = i;
            map_outputs(c, n, false);
            *pending += count_pending(c, c->pre, c->n_pre) + count_pending(c, c->post, c->n_post);
            if (insert_list(c, g, &pos, c->pre, &c->n_pre) != CV_DONE)
                return c->st;
            pos++; /* the node */
            if (insert_list(c, g, &pos, c->post, &c->n_post) != CV_DONE)
                return c->st;
            i = pos - 1;
            break;
        }
        case CV_REPLACED: {
            map_outputs(c, n, true);
            kiln_graph_remove_node(g, i);
            size_t pos = i;
            size_t added = c->n_pre + c->n_emit + c->n_post;
            *pending += count_pending(c, c->pre, c->n_pre) + count_pending(c, c->emit, c->n_emit) +
                        count_pending(c, c->post, c->n_post);
            if (insert_list(c, g, &pos, c->pre, &c->n_pre) != CV_DONE ||
                insert_list(c, g, &pos, c->emit, &c->n_emit) != CV_DONE ||
                insert_list(c, g, &pos, c->post, &c->n_post) != CV_DONE)
                return c->st;
            if (added == 0)
                i--;
            else
                i = pos - 1;
            break;
        }
        case CV_REFUSED:
            drop_list(c->pre, &c->n_pre);
            drop_list(c->emit, &c->n_emit);
            drop_list(c->post, &c->n_post);
            record_refusal(c, n, c->at);
            n->opset = c->to; /* not again */
            break;
        case CV_ERROR:
            drop_list(c->pre, &c->n_pre);
            drop_list(c->emit, &c->n_emit);
            drop_list(c->post, &c->n_post);
            return c->st ? c->st : KILN_ERR_NOMEM;
        }
        c->n = NULL;
    }
    return KILN_OK;
}

/* ---- around the sweeps ---- */

static kiln_status collect_producers(kiln_graph *g, int depth, void *ctx) {
    cv_ctx *c = ctx;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        /* a Loop's or Scan's body inputs have the types of the node's inputs they receive */
        bool loop = !strcmp(n->op_type, "Loop"), scan = !strcmp(n->op_type, "Scan");
        const kiln_graph *body = loop || scan ? kiln_attr_graph(n, "body") : NULL;
        if (body && is_onnx(n) && (loop || (n->opset ? n->opset : c->from) >= 9)) {
            for (size_t k = loop ? 2 : 0; k < body->n_inputs && k < n->n_inputs; k++)
                if (*n->inputs[k] && !kiln_nameset_has(&c->alias, body->inputs[k].name)) {
                    char *o = kiln_strdup(n->inputs[k]);
                    if (!o || kiln_nameset_put(&c->alias, body->inputs[k].name, o) != KILN_OK) {
                        free(o);
                        return KILN_ERR_NOMEM;
                    }
                }
            if (loop && body->n_inputs >= 2) {
                cv_set_type(c, body->inputs[0].name, KILN_DTYPE_INT64, 0);
                cv_set_type(c, body->inputs[1].name, KILN_DTYPE_BOOL, 0);
            }
        }
        for (size_t k = 0; k < n->n_outputs; k++)
            if (*n->outputs[k])
                KILN_TRY(kiln_nameset_put(&c->prod, n->outputs[k], n));
    }
    return KILN_OK;
}

static kiln_status reset_opsets(kiln_graph *g, int depth, void *ctx) {
    for (size_t i = 0; i < g->n_nodes; i++)
        if (is_onnx(g->nodes[i]))
            g->nodes[i]->opset = 0;
    return KILN_OK;
}

/* Removes the constants adapters stopped reading, where nothing else reads them. */
static kiln_status prune_orphans(cv_ctx *c, kiln_graph *g, const kiln_scope *up) {
    kiln_scope s = {.g = g, .up = up};
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t a = 0; a < n->n_attrs; a++) {
            if (n->attrs[a].g)
                KILN_TRY(prune_orphans(c, n->attrs[a].g, &s));
            for (size_t k = 0; n->attrs[a].graphs && k < n->attrs[a].n; k++)
                KILN_TRY(prune_orphans(c, n->attrs[a].graphs[k], &s));
        }
    }
    for (size_t i = g->n_nodes; i-- > 0;) {
        kiln_node *n = g->nodes[i];
        if (strcmp(n->op_type, "Constant") != 0 || n->n_outputs != 1 || !kiln_nameset_has(&c->orphans, n->outputs[0]))
            continue;
        if (!kiln_edit_is_used(g, n->outputs[0]))
            kiln_graph_remove_node(g, i);
    }
    for (size_t i = g->n_inits; i-- > 0;) {
        const char *nm = g->inits[i]->name;
        if (nm && kiln_nameset_has(&c->orphans, nm) && !kiln_edit_is_input(g, nm) && !kiln_edit_is_used(g, nm))
            kiln_graph_remove_init(g, i);
    }
    return KILN_OK;
}

/* Node names made unique (runtimes refuse repeats, e.g. from calls of one function). */
typedef struct uniq_ctx {
    cv_ctx *c;
    kiln_nameset seen;
} uniq_ctx;

static kiln_status unique_names(kiln_graph *g, int depth, void *ctx) {
    uniq_ctx *u = ctx;
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        if (!n->name || !*n->name)
            continue;
        if (kiln_nameset_has(&u->seen, n->name)) {
            char *nm = kiln_edit_fresh_name(&u->c->fc.names, n->name);
            if (!nm)
                return KILN_ERR_NOMEM;
            free(n->name);
            n->name = nm;
        }
        KILN_TRY(kiln_nameset_put(&u->seen, n->name, NULL));
    }
    return KILN_OK;
}

static kiln_status uses_preview(kiln_graph *g, int depth, void *ctx) {
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->domain && !strcmp(g->nodes[i]->domain, "ai.onnx.preview"))
            *(bool *)ctx = true;
    return KILN_OK;
}

static int64_t ir_for_opset(int64_t v) {
    static const int64_t tab[][2] = {{8, 3},   {9, 4},   {10, 5},  {11, 6},  {14, 7},  {18, 8},
                                     {20, 9},  {22, 10}, {23, 11}, {24, 12}, {27, 13}, {28, 14}};
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (v <= tab[i][0])
            return tab[i][1];
    return 14;
}

static kiln_status has_loose_inits(kiln_graph *g, int depth, void *ctx) {
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name && !kiln_edit_is_input(g, g->inits[i]->name))
            *(bool *)ctx = true;
    return KILN_OK;
}

static kiln_status add_domain(kiln_model *m, const char *domain, int64_t v) {
    kiln_opset *o = kiln_realloc(m->opsets, (m->n_opsets + 1) * sizeof *o);
    if (!o)
        return KILN_ERR_NOMEM;
    m->opsets = o;
    if (!(o[m->n_opsets].domain = kiln_strdup(domain)))
        return KILN_ERR_NOMEM;
    o[m->n_opsets++].version = v;
    return KILN_OK;
}

/* Every call of a local function is replaced by its body. */
static kiln_status inline_all(cv_ctx *c) {
    kiln_model *m = c->m;
    if (!m->n_functions)
        return KILN_OK;
    kiln_inline_stats is = {0};
    KILN_TRY(kiln_model_inline_functions(m, &is, NULL));
    if (m->n_functions) {
        for (size_t i = 0; i < m->n_functions; i++)
            for (size_t k = 0; k < m->functions[i]->n_opsets; k++) {
                const kiln_opset *o = &m->functions[i]->opsets[k];
                if (!kiln_model_opset(m, o->domain))
                    KILN_TRY(add_domain(m, o->domain, o->version));
            }
        KILN_TRY(kiln_inline_calls(m, m->graph, NULL, &is));
        kiln_model_drop_functions(m);
    }
    if (c->rep)
        c->rep->calls_inlined += is.calls;
    if (is.calls)
        kiln_sbuf_printf(&c->text, "  local function calls inlined: %lld\n", (long long)is.calls);
    return KILN_OK;
}

/* ---- the report ---- */

struct kiln_convert_log {
    int64_t from, to, relabeled;
    size_t n_changes, n_refused;
    char *changes, *refused, *text;
};

void kiln_convert_log_free(struct kiln_convert_log *l) {
    if (!l)
        return;
    free(l->changes);
    free(l->refused);
    free(l->text);
    free(l);
}

void kiln_convert_log_json(const struct kiln_convert_log *l, kiln_sbuf *b) {
    if (!l)
        return;
    kiln_sbuf_printf(b,
                     "  \"convert\": {\n    \"from_opset\": %lld,\n    \"to_opset\": %lld,\n"
                     "    \"nodes_relabeled\": %lld,\n    \"changes\": [%s\n    ],\n    \"refused\": [%s\n    ]\n  },\n",
                     (long long)l->from, (long long)l->to, (long long)l->relabeled, l->changes ? l->changes : "",
                     l->refused ? l->refused : "");
}

void kiln_convert_log_text(const struct kiln_convert_log *l, kiln_sbuf *b) {
    if (!l)
        return;
    kiln_sbuf_printf(b, "kiln convert: opset %lld -> %lld: %zu changes, %lld nodes unchanged but for the opset%s\n",
                     (long long)l->from, (long long)l->to, l->n_changes, (long long)l->relabeled,
                     l->n_refused ? ", refused" : "");
    if (l->text)
        kiln_sbuf_append(b, l->text, strlen(l->text));
}

static char *take(kiln_sbuf *b) {
    char *s = b->data;
    memset(b, 0, sizeof *b);
    return s;
}

static void val_free(void *p) { free(p); }

kiln_status kiln_model_convert(kiln_model *m, int64_t opset, kiln_freeze_report *rep) {
    if (opset < 1 || opset > 28)
        return kiln_fail(KILN_ERR_ARG, "--opset %lld: kiln converts between ai.onnx opsets 1 and 28",
                         (long long)opset);
    int64_t from = kiln_model_opset(m, "");
    if (!from)
        return kiln_fail(KILN_ERR_ARG, "the model imports no ai.onnx opset");
    cv_ctx c = {.m = m, .from = from, .to = opset, .rep = rep};
    c.fc.m = m;
    c.fc.opset = from;
    c.fc.check_only = true;
    kiln_status st = inline_all(&c);
    if (st == KILN_OK)
        st = kiln_nameset_collect(&c.fc.names, m->graph);
    kiln_scope top = {.g = m->graph};
    for (int sweep = 0; st == KILN_OK && sweep < MAX_SWEEPS; sweep++) {
        kiln_shapes_free(&c.fc);
        if (kiln_pass_shapes(&c.fc, &top) != KILN_OK)
            kiln_clear_error(); /* what was inferred before the rule that failed stays */
        kiln_nameset_free(&c.prod, NULL);
        if ((st = kiln_graph_walk(m->graph, collect_producers, &c)) != KILN_OK)
            break;
        size_t pending = 0;
        st = convert_graph(&c, &top, &pending);
        if (st != KILN_OK || c.n_refused || !pending)
            break;
        if (sweep == MAX_SWEEPS - 1)
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "conversion to opset %lld does not settle", (long long)opset);
    }
    if (st == KILN_OK && !c.n_refused) {
        st = prune_orphans(&c, m->graph, NULL);
        for (size_t i = 0; i < m->n_opsets; i++) {
            const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
            if (!*d || !strcmp(d, "ai.onnx"))
                m->opsets[i].version = opset;
        }
        if (st == KILN_OK)
            st = kiln_graph_walk(m->graph, reset_opsets, NULL);
        if (st == KILN_OK) {
            uniq_ctx u = {.c = &c};
            st = kiln_graph_walk(m->graph, unique_names, &u);
            kiln_nameset_free(&u.seen, NULL);
        }
        /* the preview domain goes when nothing uses it any more */
        bool preview_used = false;
        kiln_graph_walk(m->graph, uses_preview, &preview_used);
        for (size_t i = 0; !preview_used && i < m->n_opsets; i++)
            if (m->opsets[i].domain && !strcmp(m->opsets[i].domain, "ai.onnx.preview")) {
                free(m->opsets[i].domain);
                memmove(&m->opsets[i], &m->opsets[i + 1], (m->n_opsets - i - 1) * sizeof *m->opsets);
                m->n_opsets--;
                break;
            }
        int64_t need = ir_for_opset(opset);
        if (opset < from) {
            bool loose = false;
            kiln_graph_walk(m->graph, has_loose_inits, &loose);
            if (loose && need < 4)
                need = 4;
            if (m->n_functions && need < 8)
                need = 8;
            if (need < m->ir_version)
                m->ir_version = need;
        } else if (m->ir_version < need) {
            m->ir_version = need;
        }
    }
    if (st == KILN_OK && c.n_refused)
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "cannot convert to opset %lld: %s%s", (long long)opset,
                       c.first_refusal.data ? c.first_refusal.data : "",
                       c.n_refused > 1 ? " (and more nodes: see the report)" : "");
    if (rep) {
        struct kiln_convert_log *l = kiln_calloc(1, sizeof *l);
        if (l) {
            l->from = from;
            l->to = opset;
            l->relabeled = c.relabeled;
            l->n_changes = c.n_changes;
            l->n_refused = c.n_refused;
            l->changes = take(&c.changes);
            l->refused = take(&c.refusals);
            l->text = take(&c.text);
            kiln_convert_log_free(rep->convert);
            rep->convert = l;
        }
    }
    kiln_shapes_free(&c.fc);
    kiln_nameset_free(&c.fc.names, NULL);
    kiln_nameset_free(&c.vals, val_free);
    kiln_nameset_free(&c.prod, NULL);
    kiln_nameset_free(&c.orphans, NULL);
    kiln_nameset_free(&c.fresh, NULL);
    kiln_nameset_free(&c.alias, free);
    for (size_t i = 0; i < c.n_cache; i++)
        kiln_tensor_destroy(c.cache[i]);
    free(c.cache);
    free(c.emit);
    free(c.pre);
    free(c.post);
    free(c.changes.data);
    free(c.refusals.data);
    free(c.text.data);
    free(c.first_refusal.data);
    return st;
}
