/* Graph edits for the freeze passes (see edit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/edit.h"

/* ---- name sets ---- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static kiln_status grow(kiln_nameset *s) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **keys = kiln_calloc(cap, sizeof *keys);
    void **vals = kiln_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return KILN_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->cap; i++)
        if (s->keys[i]) {
            size_t j = hash_name(s->keys[i]) & (cap - 1);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = s->keys[i];
            vals[j] = s->vals[i];
        }
    free(s->keys);
    free(s->vals);
    s->keys = keys;
    s->vals = vals;
    s->cap = cap;
    return KILN_OK;
}

static long slot_of(const kiln_nameset *s, const char *name) {
    if (!s->cap)
        return -1;
    size_t j = hash_name(name) & (s->cap - 1);
    while (s->keys[j]) {
        if (strcmp(s->keys[j], name) == 0)
            return (long)j;
        j = (j + 1) & (s->cap - 1);
    }
    return -1;
}

kiln_status kiln_nameset_put(kiln_nameset *s, const char *name, void *val) {
    long k = slot_of(s, name);
    if (k >= 0) {
        s->vals[k] = val;
        return KILN_OK;
    }
    if ((s->n + 1) * 2 > s->cap)
        KILN_TRY(grow(s));
    size_t j = hash_name(name) & (s->cap - 1);
    while (s->keys[j])
        j = (j + 1) & (s->cap - 1);
    if (!(s->keys[j] = kiln_strdup(name)))
        return KILN_ERR_NOMEM;
    s->vals[j] = val;
    s->n++;
    return KILN_OK;
}

bool kiln_nameset_has(const kiln_nameset *s, const char *name) { return slot_of(s, name) >= 0; }

const char *kiln_nameset_key(const kiln_nameset *s, const char *name) {
    long k = slot_of(s, name);
    return k >= 0 ? s->keys[k] : NULL;
}

void *kiln_nameset_get(const kiln_nameset *s, const char *name) {
    long k = slot_of(s, name);
    return k >= 0 ? s->vals[k] : NULL;
}

void kiln_nameset_free(kiln_nameset *s, void (*free_val)(void *)) {
    for (size_t i = 0; i < s->cap; i++)
        if (s->keys[i]) {
            free(s->keys[i]);
            if (free_val)
                free_val(s->vals[i]);
        }
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof *s);
}

static kiln_status collect(kiln_graph *g, int depth, void *ctx) {
    kiln_nameset *s = ctx;
    for (size_t i = 0; i < g->n_inputs; i++)
        KILN_TRY(kiln_nameset_put(s, g->inputs[i].name, NULL));
    for (size_t i = 0; i < g->n_outputs; i++)
        KILN_TRY(kiln_nameset_put(s, g->outputs[i].name, NULL));
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name)
            KILN_TRY(kiln_nameset_put(s, g->inits[i]->name, NULL));
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_outputs; k++)
            KILN_TRY(kiln_nameset_put(s, n->outputs[k], NULL));
        for (size_t k = 0; k < n->n_inputs; k++)
            KILN_TRY(kiln_nameset_put(s, n->inputs[k], NULL));
        if (n->name && *n->name)
            KILN_TRY(kiln_nameset_put(s, n->name, NULL));
    }
    return KILN_OK;
}

kiln_status kiln_nameset_collect(kiln_nameset *s, const kiln_graph *g) {
    return kiln_graph_walk((kiln_graph *)g, collect, s);
}

char *kiln_edit_fresh_name(kiln_nameset *s, const char *base) {
    size_t len = strlen(base) + 24;
    char *buf = kiln_malloc(len);
    if (!buf)
        return NULL;
    /* strip an earlier "__kN" suffix so names do not grow with each copy */
    const char *cut = strstr(base, "__k");
    int blen = cut ? (int)(cut - base) : (int)strlen(base);
    for (unsigned long i = 0;; i++) {
        if (i == 0)
            snprintf(buf, len, "%.*s", blen, base);
        else
            snprintf(buf, len, "%.*s__k%lu", blen, base, i);
        if (*buf && !kiln_nameset_has(s, buf))
            break;
    }
    if (kiln_nameset_put(s, buf, NULL) != KILN_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- scopes ---- */

bool kiln_edit_is_input(const kiln_graph *g, const char *name) { return kiln_graph_find_input(g, name, NULL) != NULL; }

bool kiln_edit_is_output(const kiln_graph *g, const char *name) {
    for (size_t i = 0; i < g->n_outputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0)
            return true;
    return false;
}

const kiln_tensor *kiln_edit_const(const kiln_scope *s, const char *name) {
    if (!name || !*name)
        return NULL;
    for (; s; s = s->up) {
        if (kiln_edit_is_input(s->g, name))
            return NULL;
        const kiln_tensor *t = kiln_graph_find_init(s->g, name, NULL);
        if (t)
            return t;
        /* names are unique across scopes: a value made by a node here is
         * no initializer further out */
    }
    return NULL;
}

long kiln_edit_producer(const kiln_graph *g, const char *name) {
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i]->n_outputs; k++)
            if (strcmp(g->nodes[i]->outputs[k], name) == 0)
                return (long)i;
    return -1;
}

/* ---- nodes ---- */

kiln_status kiln_edit_node_new(const char *op_type, const char *name, size_t n_in, const char *const *ins,
                               size_t n_out, const char *const *outs, kiln_node **out) {
    kiln_node *n = kiln_calloc(1, sizeof *n);
    if (!n)
        return KILN_ERR_NOMEM;
    n->op_type = kiln_strdup(op_type);
    n->domain = kiln_strdup("");
    n->name = kiln_strdup(name ? name : "");
    n->inputs = kiln_calloc(n_in + 1, sizeof *n->inputs);
    n->outputs = kiln_calloc(n_out + 1, sizeof *n->outputs);
    bool ok = n->op_type && n->domain && n->name && n->inputs && n->outputs;
    for (size_t i = 0; ok && i < n_in; i++, n->n_inputs++)
        ok = (n->inputs[i] = kiln_strdup(ins[i])) != NULL;
    for (size_t i = 0; ok && i < n_out; i++, n->n_outputs++)
        ok = (n->outputs[i] = kiln_strdup(outs[i])) != NULL;
    if (!ok) {
        kiln_node_destroy(n);
        return KILN_ERR_NOMEM;
    }
    *out = n;
    return KILN_OK;
}

static kiln_attr *add_attr(kiln_node *n, const char *name) {
    kiln_attr *a = kiln_realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a)
        return NULL;
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = kiln_strdup(name)))
        return NULL;
    n->n_attrs++;
    return a;
}

kiln_status kiln_edit_attr_int(kiln_node *n, const char *name, int64_t v) {
    kiln_attr *a = add_attr(n, name);
    if (!a)
        return KILN_ERR_NOMEM;
    a->type = KILN_ATTR_INT;
    a->i = v;
    return KILN_OK;
}

kiln_status kiln_edit_attr_float(kiln_node *n, const char *name, float v) {
    kiln_attr *a = add_attr(n, name);
    if (!a)
        return KILN_ERR_NOMEM;
    a->type = KILN_ATTR_FLOAT;
    a->f = v;
    return KILN_OK;
}

kiln_status kiln_edit_attr_tensor(kiln_node *n, const char *name, kiln_tensor *t) {
    kiln_attr *a = add_attr(n, name);
    if (!a) {
        kiln_tensor_destroy(t);
        return KILN_ERR_NOMEM;
    }
    a->type = KILN_ATTR_TENSOR;
    a->t = t;
    return KILN_OK;
}

kiln_status kiln_edit_attr_ints(kiln_node *n, const char *name, size_t count, const int64_t *v) {
    kiln_attr *a = add_attr(n, name);
    if (!a)
        return KILN_ERR_NOMEM;
    a->type = KILN_ATTR_INTS;
    a->ints = kiln_malloc((count + 1) * sizeof *a->ints);
    if (!a->ints)
        return KILN_ERR_NOMEM;
    memcpy(a->ints, v, count * sizeof *v);
    a->n = count;
    return KILN_OK;
}

kiln_status kiln_edit_insert(kiln_graph *g, size_t idx, kiln_node *n) {
    KILN_TRY(kiln_graph_add_node(g, n));
    if (idx < g->n_nodes - 1) {
        memmove(&g->nodes[idx + 1], &g->nodes[idx], (g->n_nodes - 1 - idx) * sizeof *g->nodes);
        g->nodes[idx] = n;
    }
    return KILN_OK;
}

/* kiln_tensor_share keeps the data, not the name */
static kiln_status share_named(const kiln_tensor *t, kiln_tensor **out) {
    KILN_TRY(kiln_tensor_share(t, out));
    if (t->name && !((*out)->name = kiln_strdup(t->name))) {
        kiln_tensor_destroy(*out);
        *out = NULL;
        return KILN_ERR_NOMEM;
    }
    return KILN_OK;
}

static char *dup_or(const char *s, bool *ok) {
    if (!s)
        return NULL;
    char *d = kiln_strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static kiln_status copy_vis(const kiln_value_info *src, size_t n, kiln_value_info **out) {
    *out = kiln_calloc(n + 1, sizeof **out);
    if (!*out)
        return KILN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        bool ok = true;
        (*out)[i].name = dup_or(src[i].name, &ok);
        (*out)[i].doc = dup_or(src[i].doc, &ok);
        (*out)[i].src = src[i].src;
        if (!ok || kiln_type_copy(&(*out)[i].type, &src[i].type) != KILN_OK)
            return KILN_ERR_NOMEM;
    }
    return KILN_OK;
}

kiln_status kiln_edit_graph_clone(const kiln_graph *g, kiln_graph **out) {
    kiln_graph *c = kiln_graph_new();
    if (!c)
        return KILN_ERR_NOMEM;
    bool ok = true;
    kiln_status st = KILN_OK;
    c->name = dup_or(g->name, &ok);
    c->doc = dup_or(g->doc, &ok);
    c->src = g->src;
    if (!ok)
        st = KILN_ERR_NOMEM;
    for (size_t i = 0; st == KILN_OK && i < g->n_nodes; i++) {
        kiln_node *n;
        st = kiln_edit_node_clone(g->nodes[i], &n);
        if (st == KILN_OK && (st = kiln_graph_add_node(c, n)) != KILN_OK)
            kiln_node_destroy(n);
    }
    for (size_t i = 0; st == KILN_OK && i < g->n_inits; i++) {
        kiln_tensor *t;
        st = share_named(g->inits[i], &t);
        if (st == KILN_OK && (st = kiln_graph_add_init(c, t)) != KILN_OK)
            kiln_tensor_destroy(t);
    }
    if (st == KILN_OK && (st = copy_vis(g->inputs, g->n_inputs, &c->inputs)) == KILN_OK)
        c->n_inputs = g->n_inputs;
    if (st == KILN_OK && (st = copy_vis(g->outputs, g->n_outputs, &c->outputs)) == KILN_OK)
        c->n_outputs = g->n_outputs;
    if (st == KILN_OK && (st = copy_vis(g->value_info, g->n_value_info, &c->value_info)) == KILN_OK)
        c->n_value_info = g->n_value_info;
    if (st != KILN_OK) {
        kiln_graph_destroy(c);
        return st;
    }
    *out = c;
    return KILN_OK;
}

static kiln_status clone_attr(const kiln_attr *a, kiln_attr *d) {
    memset(d, 0, sizeof *d);
    bool ok = true;
    d->name = dup_or(a->name, &ok);
    d->ref = a->ref ? dup_or(a->ref, &ok) : NULL;
    d->type = a->type;
    d->f = a->f;
    d->i = a->i;
    d->n = a->n;
    d->src = a->src;
    if (a->s.data) {
        d->s.data = kiln_strndup(a->s.data, a->s.len);
        d->s.len = a->s.len;
        ok = ok && d->s.data;
    }
    if (!ok)
        return KILN_ERR_NOMEM;
    if (a->t)
        KILN_TRY(share_named(a->t, &d->t));
    if (a->g)
        KILN_TRY(kiln_edit_graph_clone(a->g, &d->g));
    if (a->floats) {
        if (!(d->floats = kiln_malloc(a->n * sizeof *d->floats + 1)))
            return KILN_ERR_NOMEM;
        memcpy(d->floats, a->floats, a->n * sizeof *d->floats);
    }
    if (a->ints) {
        if (!(d->ints = kiln_malloc(a->n * sizeof *d->ints + 1)))
            return KILN_ERR_NOMEM;
        memcpy(d->ints, a->ints, a->n * sizeof *d->ints);
    }
    if (a->strings) {
        if (!(d->strings = kiln_calloc(a->n + 1, sizeof *d->strings)))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++) {
            d->strings[i].len = a->strings[i].len;
            if (!(d->strings[i].data = kiln_strndup(a->strings[i].data ? a->strings[i].data : "", a->strings[i].len)))
                return KILN_ERR_NOMEM;
        }
    }
    if (a->tensors) {
        if (!(d->tensors = kiln_calloc(a->n + 1, sizeof *d->tensors)))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++)
            KILN_TRY(share_named(a->tensors[i], &d->tensors[i]));
    }
    if (a->graphs) {
        if (!(d->graphs = kiln_calloc(a->n + 1, sizeof *d->graphs)))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++)
            KILN_TRY(kiln_edit_graph_clone(a->graphs[i], &d->graphs[i]));
    }
    return KILN_OK;
}

kiln_status kiln_edit_attr_clone(const kiln_attr *a, kiln_attr *out) {
    kiln_status st = clone_attr(a, out);
    if (st != KILN_OK)
        kiln_attr_clear(out);
    return st;
}

kiln_status kiln_edit_node_clone(const kiln_node *n, kiln_node **out) {
    kiln_node *c;
    KILN_TRY(kiln_edit_node_new(n->op_type, n->name, n->n_inputs, (const char *const *)n->inputs, n->n_outputs,
                                (const char *const *)n->outputs, &c));
    free(c->domain);
    c->domain = kiln_strdup(n->domain ? n->domain : "");
    bool ok = c->domain != NULL;
    c->doc = n->doc ? dup_or(n->doc, &ok) : NULL;
    c->overload = n->overload ? dup_or(n->overload, &ok) : NULL;
    c->origin = n->origin ? dup_or(n->origin, &ok) : NULL;
    c->opset = n->opset;
    c->src = n->src;
    c->attrs = kiln_calloc(n->n_attrs + 1, sizeof *c->attrs);
    kiln_status st = ok && c->attrs ? KILN_OK : KILN_ERR_NOMEM;
    for (size_t i = 0; st == KILN_OK && i < n->n_attrs; i++) {
        st = clone_attr(&n->attrs[i], &c->attrs[i]);
        c->n_attrs++;
    }
    if (st != KILN_OK) {
        kiln_node_destroy(c);
        return st;
    }
    *out = c;
    return KILN_OK;
}

static kiln_status set_str(char **slot, const char *to) {
    char *d = kiln_strdup(to);
    if (!d)
        return KILN_ERR_NOMEM;
    free(*slot);
    *slot = d;
    return KILN_OK;
}

static kiln_status rename_in(kiln_graph *g, const char *from, const char *to, bool defs) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (strcmp(n->inputs[k], from) == 0)
                KILN_TRY(set_str(&n->inputs[k], to));
        if (defs)
            for (size_t k = 0; k < n->n_outputs; k++)
                if (strcmp(n->outputs[k], from) == 0)
                    KILN_TRY(set_str(&n->outputs[k], to));
        for (size_t a = 0; a < n->n_attrs; a++) {
            kiln_attr *at = &n->attrs[a];
            /* captures inside subgraphs; their own outputs may read it too */
            if (at->g) {
                KILN_TRY(rename_in(at->g, from, to, false));
                for (size_t o = 0; o < at->g->n_outputs; o++)
                    if (strcmp(at->g->outputs[o].name, from) == 0)
                        KILN_TRY(set_str(&at->g->outputs[o].name, to));
            }
            for (size_t k = 0; at->graphs && k < at->n; k++) {
                KILN_TRY(rename_in(at->graphs[k], from, to, false));
                for (size_t o = 0; o < at->graphs[k]->n_outputs; o++)
                    if (strcmp(at->graphs[k]->outputs[o].name, from) == 0)
                        KILN_TRY(set_str(&at->graphs[k]->outputs[o].name, to));
            }
        }
    }
    if (defs) {
        for (size_t i = 0; i < g->n_outputs; i++)
            if (strcmp(g->outputs[i].name, from) == 0)
                KILN_TRY(set_str(&g->outputs[i].name, to));
        for (size_t i = 0; i < g->n_inputs; i++)
            if (strcmp(g->inputs[i].name, from) == 0)
                KILN_TRY(set_str(&g->inputs[i].name, to));
        for (size_t i = 0; i < g->n_value_info; i++)
            if (strcmp(g->value_info[i].name, from) == 0)
                KILN_TRY(set_str(&g->value_info[i].name, to));
        for (size_t i = 0; i < g->n_inits; i++)
            if (g->inits[i]->name && strcmp(g->inits[i]->name, from) == 0) {
                kiln_graph_inits_changed(g);
                KILN_TRY(set_str(&g->inits[i]->name, to));
            }
    }
    return KILN_OK;
}

/* ---- batched renames ---- */

const char *kiln_renames_get(const kiln_renames *r, const char *name) {
    /* entries never form a cycle (add refuses one); the bound is a guard */
    for (size_t step = 0; step <= r->map.n; step++) {
        const char *to = r->map.n ? kiln_nameset_get(&r->map, name) : NULL;
        if (!to)
            return name;
        name = to;
    }
    return name;
}

kiln_status kiln_renames_add(kiln_renames *r, const char *from, const char *to) {
    to = kiln_renames_get(r, to);
    if (!strcmp(to, from))
        return KILN_OK;
    char *d = kiln_strdup(to);
    if (!d)
        return KILN_ERR_NOMEM;
    free(kiln_nameset_get(&r->map, from));
    kiln_status st = kiln_nameset_put(&r->map, from, d);
    if (st != KILN_OK)
        free(d);
    return st;
}

kiln_status kiln_renames_apply_node(const kiln_renames *r, kiln_node *n) {
    if (!r->map.n)
        return KILN_OK;
    for (size_t k = 0; k < n->n_inputs; k++) {
        if (!*n->inputs[k])
            continue;
        const char *to = kiln_renames_get(r, n->inputs[k]);
        if (to != n->inputs[k])
            KILN_TRY(set_str(&n->inputs[k], to));
    }
    return KILN_OK;
}

static kiln_status renames_sub(const kiln_renames *r, kiln_graph *g, bool outputs) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln_node *n = g->nodes[i];
        KILN_TRY(kiln_renames_apply_node(r, n));
        for (size_t a = 0; a < n->n_attrs; a++) {
            kiln_attr *at = &n->attrs[a];
            if (at->g)
                KILN_TRY(renames_sub(r, at->g, true));
            for (size_t k = 0; at->graphs && k < at->n; k++)
                KILN_TRY(renames_sub(r, at->graphs[k], true));
        }
    }
    for (size_t o = 0; outputs && o < g->n_outputs; o++) {
        const char *to = kiln_renames_get(r, g->outputs[o].name);
        if (to != g->outputs[o].name)
            KILN_TRY(set_str(&g->outputs[o].name, to));
    }
    return KILN_OK;
}

kiln_status kiln_renames_apply(const kiln_renames *r, kiln_graph *g) {
    return r->map.n ? renames_sub(r, g, false) : KILN_OK;
}

void kiln_renames_free(kiln_renames *r) { kiln_nameset_free(&r->map, free); }

kiln_status kiln_edit_rename_uses(kiln_graph *g, const char *from, const char *to) {
    return rename_in(g, from, to, false);
}

kiln_status kiln_edit_rename_all(kiln_graph *g, const char *from, const char *to) {
    return rename_in(g, from, to, true);
}

static bool used_in(const kiln_graph *g, const char *name, bool outs) {
    if (outs && kiln_edit_is_output(g, name))
        return true;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (strcmp(n->inputs[k], name) == 0)
                return true;
        for (size_t a = 0; a < n->n_attrs; a++) {
            const kiln_attr *at = &n->attrs[a];
            if (at->g && used_in(at->g, name, true))
                return true;
            for (size_t k = 0; at->graphs && k < at->n; k++)
                if (used_in(at->graphs[k], name, true))
                    return true;
        }
    }
    return false;
}

bool kiln_edit_is_used(const kiln_graph *g, const char *name) { return used_in(g, name, true); }

bool kiln_edit_forward(kiln_graph *g, const char *y, const char *x, bool positional_outputs) {
    if (strcmp(x, y) == 0)
        return true;
    if (!kiln_edit_is_output(g, y))
        return kiln_edit_rename_uses(g, y, x) == KILN_OK;
    if (positional_outputs && !kiln_edit_is_output(g, x) &&
        (kiln_edit_is_input(g, x) || kiln_graph_find_init(g, x, NULL))) {
        /* a subgraph's outputs are matched by position: the entry can name
         * x itself when x is the subgraph's own input or constant
         * (onnxruntime refuses outer-scope values returned directly) */
        if (kiln_edit_rename_uses(g, y, x) != KILN_OK)
            return false;
        for (size_t i = 0; i < g->n_outputs; i++)
            if (!strcmp(g->outputs[i].name, y)) {
                char *d = kiln_strdup(x);
                if (!d)
                    return false;
                free(g->outputs[i].name);
                g->outputs[i].name = d;
            }
        return true;
    }
    /* y is a graph output: keep the name y, give it to x's producer */
    long p = kiln_edit_producer(g, x);
    if (p < 0 || kiln_edit_is_output(g, x) || kiln_edit_is_input(g, x))
        return false;
    char *xs = kiln_strdup(x), *ys = kiln_strdup(y);
    bool ok = xs && ys;
    if (ok) {
        /* drop y's definition first (the identity node being removed still
         * names it), so the rename below only touches x */
        ok = kiln_edit_rename_uses(g, ys, xs) == KILN_OK;
        for (size_t i = 0; ok && i < g->n_nodes; i++) {
            kiln_node *n = g->nodes[i];
            for (size_t k = 0; k < n->n_outputs; k++)
                if (strcmp(n->outputs[k], ys) == 0)
                    ok = set_str(&n->outputs[k], "") == KILN_OK;
        }
        kiln_edit_drop_value_info(g, xs);
        ok = ok && kiln_edit_rename_all(g, xs, ys) == KILN_OK;
    }
    free(xs);
    free(ys);
    return ok;
}

/* ---- constants ---- */

kiln_status kiln_edit_set_const(kiln_graph *g, const char *name, kiln_tensor *t) {
    KILN_TRY(set_str(&t->name, name));
    size_t idx;
    if (kiln_graph_find_init(g, name, &idx)) {
        kiln_tensor_destroy(g->inits[idx]);
        g->inits[idx] = t;
        return KILN_OK;
    }
    kiln_status st = kiln_graph_add_init(g, t);
    if (st != KILN_OK)
        kiln_tensor_destroy(t);
    return st;
}

kiln_status kiln_edit_new_const(kiln_graph *g, kiln_nameset *names, const char *base, kiln_tensor *t,
                                const char **name_out) {
    char *nm = kiln_edit_fresh_name(names, base);
    if (!nm) {
        kiln_tensor_destroy(t);
        return KILN_ERR_NOMEM;
    }
    kiln_status st = kiln_edit_set_const(g, nm, t);
    free(nm);
    if (st == KILN_OK && name_out)
        *name_out = t->name;
    return st;
}

kiln_status kiln_edit_const_i64(kiln_graph *g, kiln_nameset *names, const char *base, int rank,
                                const int64_t *dims, const int64_t *vals, const char **name_out) {
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, KILN_DTYPE_INT64, rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    if (t->numel)
        memcpy(t->data, vals, t->nbytes);
    return kiln_edit_new_const(g, names, base, t, name_out);
}

void kiln_edit_drop_value_info(kiln_graph *g, const char *name) {
    for (size_t i = 0; i < g->n_value_info;)
        if (strcmp(g->value_info[i].name, name) == 0) {
            kiln_value_info_clear(&g->value_info[i]);
            memmove(&g->value_info[i], &g->value_info[i + 1], (g->n_value_info - i - 1) * sizeof *g->value_info);
            g->n_value_info--;
        } else {
            i++;
        }
}
