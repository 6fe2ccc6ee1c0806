/* The model as a person reads it (kiln info): text or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct op_count {
    const char *name;
    const char *domain;
    size_t n;
} op_count;

typedef struct hist {
    op_count *v;
    size_t n, cap;
    size_t nodes, subgraphs;
    bool oom;
} hist;

static kiln_status count_ops(kiln_graph *g, int depth, void *ctx) {
    hist *h = ctx;
    if (depth > 0)
        h->subgraphs++;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln_node *n = g->nodes[i];
        h->nodes++;
        size_t k = 0;
        while (k < h->n && !(strcmp(h->v[k].name, n->op_type) == 0 && strcmp(h->v[k].domain, n->domain) == 0))
            k++;
        if (k == h->n) {
            if (h->n == h->cap) {
                size_t cap = h->cap ? h->cap * 2 : 32;
                op_count *v = realloc(h->v, cap * sizeof *v);
                if (!v)
                    return kiln_fail(KILN_ERR_NOMEM, "out of memory");
                h->v = v;
                h->cap = cap;
            }
            h->v[h->n++] = (op_count){n->op_type, n->domain, 0};
        }
        h->v[k].n++;
    }
    return KILN_OK;
}

static int cmp_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* "[batch,3,224,224]" / "float32[batch,3]" */
static void put_shape(kiln_sbuf *b, const kiln_type *t, bool json) {
    if (t->kind != KILN_TYPE_TENSOR || t->rank < 0) {
        kiln_sbuf_printf(b, json ? "null" : "?");
        return;
    }
    kiln_sbuf_append(b, "[", 1);
    for (int i = 0; i < t->rank; i++) {
        if (i)
            kiln_sbuf_append(b, json ? ", " : ",", json ? 2 : 1);
        if (t->dims[i].value >= 0)
            kiln_sbuf_printf(b, "%lld", (long long)t->dims[i].value);
        else if (t->dims[i].param && json)
            kiln_sbuf_json_string(b, t->dims[i].param);
        else if (t->dims[i].param)
            kiln_sbuf_printf(b, "%s", t->dims[i].param);
        else
            kiln_sbuf_printf(b, json ? "null" : "?");
    }
    kiln_sbuf_append(b, "]", 1);
}

/* "float32", or the whole type of what is not a tensor: "seq(tensor(float32))". */
static const char *type_name(const kiln_value_info *v, char *buf, size_t n) {
    const kiln_type *t = &v->type;
    if (t->kind == KILN_TYPE_OTHER)
        return kiln_value_info_type_str(v, buf, n);
    if (t->kind == KILN_TYPE_NONE)
        return "untyped";
    return kiln_dtype_name(t->elem);
}

static void human_bytes(char *buf, size_t n, uint64_t v) {
    if (v >= 10ull << 30)
        snprintf(buf, n, "%.1f GiB", (double)v / (1 << 30));
    else if (v >= 10ull << 20)
        snprintf(buf, n, "%.1f MiB", (double)v / (1 << 20));
    else if (v >= 10ull << 10)
        snprintf(buf, n, "%.1f KiB", (double)v / (1 << 10));
    else
        snprintf(buf, n, "%llu B", (unsigned long long)v);
}

kiln_status kiln_model_describe(const kiln_model *m, int json, char **out) {
    *out = NULL;
    const kiln_graph *g = m->graph;
    hist h = {0};
    kiln_status st = kiln_graph_walk(m->graph, count_ops, &h);
    if (st != KILN_OK) {
        free(h.v);
        return st;
    }
    if (h.n) /* qsort(NULL, 0) is undefined */
        qsort(h.v, h.n, sizeof *h.v, cmp_count);
    uint64_t init_bytes = 0;
    for (size_t i = 0; i < g->n_inits; i++)
        init_bytes += g->inits[i]->nbytes;
    size_t n_defaults = 0;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (kiln_graph_find_init(g, g->inputs[i].name, NULL))
            n_defaults++;
    const char **fnames = NULL;
    size_t n_functions = kiln_model_function_names(m, &fnames);
    const char **st_in = NULL, **st_out = NULL;
    size_t n_states = 0;
    if (kiln_model_find_states(m, NULL, &n_states, &st_in, &st_out) != KILN_OK)
        n_states = 0;
    kiln_sbuf b = {0};
    if (json) {
        kiln_sbuf_printf(&b, "{\n  \"path\": ");
        kiln_sbuf_json_string(&b, m->path);
        kiln_sbuf_printf(&b, ",\n  \"ir_version\": %lld,\n  \"opset_imports\": [", (long long)m->ir_version);
        for (size_t i = 0; i < m->n_opsets; i++) {
            kiln_sbuf_printf(&b, "%s{\"domain\": ", i ? ", " : "");
            kiln_sbuf_json_string(&b, m->opsets[i].domain);
            kiln_sbuf_printf(&b, ", \"version\": %lld}", (long long)m->opsets[i].version);
        }
        kiln_sbuf_printf(&b, "],\n  \"producer\": ");
        kiln_sbuf_json_string(&b, m->producer_name);
        kiln_sbuf_printf(&b, ",\n  \"producer_version\": ");
        kiln_sbuf_json_string(&b, m->producer_version);
        for (int io = 0; io < 2; io++) {
            const kiln_value_info *v = io ? g->outputs : g->inputs;
            size_t n = io ? g->n_outputs : g->n_inputs;
            kiln_sbuf_printf(&b, ",\n  \"%s\": [", io ? "outputs" : "inputs");
            for (size_t i = 0; i < n; i++) {
                kiln_sbuf_printf(&b, "%s\n    {\"name\": ", i ? "," : "");
                kiln_sbuf_json_string(&b, v[i].name);
                char tn[256];
                kiln_sbuf_printf(&b, ", \"dtype\": ");
                kiln_sbuf_json_string(&b, type_name(&v[i], tn, sizeof tn));
                kiln_sbuf_printf(&b, ", \"shape\": ");
                put_shape(&b, &v[i].type, true);
                if (!io)
                    kiln_sbuf_printf(&b, ", \"has_default\": %s",
                                     kiln_graph_find_init(g, v[i].name, NULL) ? "true" : "false");
                kiln_sbuf_printf(&b, "}");
            }
            kiln_sbuf_printf(&b, "%s]", n ? "\n  " : "");
        }
        kiln_sbuf_printf(&b, ",\n  \"initializers\": {\"count\": %zu, \"bytes\": %llu, \"inputs_with_default\": %zu}",
                         g->n_inits, (unsigned long long)init_bytes, n_defaults);
        kiln_sbuf_printf(&b, ",\n  \"nodes\": %zu,\n  \"subgraphs\": %zu,\n  \"ops\": {", h.nodes, h.subgraphs);
        for (size_t i = 0; i < h.n; i++) {
            kiln_sbuf_printf(&b, "%s", i ? ", " : "");
            if (*h.v[i].domain) {
                char key[512];
                snprintf(key, sizeof key, "%s.%s", h.v[i].domain, h.v[i].name);
                kiln_sbuf_json_string(&b, key);
            } else {
                kiln_sbuf_json_string(&b, h.v[i].name);
            }
            kiln_sbuf_printf(&b, ": %zu", h.v[i].n);
        }
        kiln_sbuf_printf(&b, "},\n  \"functions\": [");
        for (size_t i = 0; i < n_functions; i++) {
            kiln_sbuf_printf(&b, "%s", i ? ", " : "");
            kiln_sbuf_json_string(&b, fnames[i]);
        }
        kiln_sbuf_printf(&b, "],\n  \"function_details\": [");
        for (size_t i = 0; i < m->n_functions; i++) {
            const kiln_function *f = m->functions[i];
            kiln_sbuf_printf(&b, "%s\n    {\"name\": ", i ? "," : "");
            kiln_sbuf_json_string(&b, f->name);
            kiln_sbuf_printf(&b, ", \"domain\": ");
            kiln_sbuf_json_string(&b, f->domain);
            if (f->overload) {
                kiln_sbuf_printf(&b, ", \"overload\": ");
                kiln_sbuf_json_string(&b, f->overload);
            }
            for (int io = 0; io < 2; io++) {
                kiln_sbuf_printf(&b, ", \"%s\": [", io ? "outputs" : "inputs");
                size_t n = io ? f->n_outputs : f->n_inputs;
                for (size_t k = 0; k < n; k++) {
                    kiln_sbuf_printf(&b, "%s", k ? ", " : "");
                    kiln_sbuf_json_string(&b, io ? f->outputs[k] : f->inputs[k]);
                }
                kiln_sbuf_printf(&b, "]");
            }
            kiln_sbuf_printf(&b, ", \"attributes\": [");
            for (size_t k = 0; k < f->n_attr_names + f->n_attr_defaults; k++) {
                kiln_sbuf_printf(&b, "%s", k ? ", " : "");
                kiln_sbuf_json_string(&b, k < f->n_attr_names ? f->attr_names[k]
                                                                : f->attr_defaults[k - f->n_attr_names].name);
            }
            kiln_sbuf_printf(&b, "], \"nodes\": %zu, \"opset_imports\": [", f->body ? f->body->n_nodes : 0);
            for (size_t k = 0; k < f->n_opsets; k++) {
                kiln_sbuf_printf(&b, "%s{\"domain\": ", k ? ", " : "");
                kiln_sbuf_json_string(&b, f->opsets[k].domain);
                kiln_sbuf_printf(&b, ", \"version\": %lld}", (long long)f->opsets[k].version);
            }
            kiln_sbuf_printf(&b, "]}");
        }
        kiln_sbuf_printf(&b, "%s],\n  \"state_pairs\": [", m->n_functions ? "\n  " : "");
        for (size_t i = 0; i < n_states; i++) {
            kiln_sbuf_printf(&b, "%s{\"input\": ", i ? ", " : "");
            kiln_sbuf_json_string(&b, st_in[i]);
            kiln_sbuf_printf(&b, ", \"output\": ");
            kiln_sbuf_json_string(&b, st_out[i]);
            kiln_sbuf_printf(&b, "}");
        }
        kiln_sbuf_printf(&b, "]\n}\n");
    } else {
        char sz[64];
        kiln_sbuf_printf(&b, "model      %s\n", m->path ? m->path : "(in memory)");
        kiln_sbuf_printf(&b, "ir_version %lld\nopsets    ", (long long)m->ir_version);
        for (size_t i = 0; i < m->n_opsets; i++)
            kiln_sbuf_printf(&b, " %s %lld", *m->opsets[i].domain ? m->opsets[i].domain : "ai.onnx",
                             (long long)m->opsets[i].version);
        kiln_sbuf_printf(&b, "\nproducer   %s %s\n", m->producer_name ? m->producer_name : "-",
                         m->producer_version ? m->producer_version : "");
        for (int io = 0; io < 2; io++) {
            const kiln_value_info *v = io ? g->outputs : g->inputs;
            size_t n = io ? g->n_outputs : g->n_inputs;
            kiln_sbuf_printf(&b, "\n%s (%zu)\n", io ? "outputs" : "inputs", n);
            for (size_t i = 0; i < n; i++) {
                char tn[256];
                kiln_sbuf_printf(&b, "  %-24s %s", v[i].name, type_name(&v[i], tn, sizeof tn));
                if (v[i].type.kind != KILN_TYPE_OTHER)
                    put_shape(&b, &v[i].type, false);
                if (!io && kiln_graph_find_init(g, v[i].name, NULL))
                    kiln_sbuf_printf(&b, "  (has initializer default)");
                kiln_sbuf_printf(&b, "\n");
            }
        }
        human_bytes(sz, sizeof sz, init_bytes);
        kiln_sbuf_printf(&b, "\ninitializers %zu (%s)", g->n_inits, sz);
        if (n_defaults)
            kiln_sbuf_printf(&b, ", %zu of them defaults of graph inputs", n_defaults);
        kiln_sbuf_printf(&b, "\nnodes        %zu", h.nodes);
        if (h.subgraphs)
            kiln_sbuf_printf(&b, " (including %zu subgraphs)", h.subgraphs);
        kiln_sbuf_printf(&b, "\n");
        for (size_t i = 0; i < h.n; i++)
            kiln_sbuf_printf(&b, "  %6zu  %s%s%s\n", h.v[i].n, h.v[i].domain, *h.v[i].domain ? "." : "", h.v[i].name);
        if (n_states) {
            kiln_sbuf_printf(&b, "\nstate pairs (%zu; 'kiln run --state auto' carries them)\n", n_states);
            for (size_t i = 0; i < n_states; i++)
                kiln_sbuf_printf(&b, "  %s <- %s\n", st_in[i], st_out[i]);
        }
        if (n_functions) {
            kiln_sbuf_printf(&b, "\nfunctions (%zu)\n", n_functions);
            for (size_t i = 0; i < m->n_functions; i++) {
                const kiln_function *f = m->functions[i];
                char label[512];
                kiln_sbuf_printf(&b, "  %s(", kiln_function_label(f, label, sizeof label));
                for (size_t k = 0; k < f->n_inputs; k++)
                    kiln_sbuf_printf(&b, "%s%s", k ? ", " : "", f->inputs[k]);
                kiln_sbuf_printf(&b, ") -> (");
                for (size_t k = 0; k < f->n_outputs; k++)
                    kiln_sbuf_printf(&b, "%s%s", k ? ", " : "", f->outputs[k]);
                kiln_sbuf_printf(&b, ")  %zu node%s", f->body ? f->body->n_nodes : 0,
                                 f->body && f->body->n_nodes == 1 ? "" : "s");
                if (f->n_attr_names + f->n_attr_defaults) {
                    kiln_sbuf_printf(&b, ", attributes");
                    for (size_t k = 0; k < f->n_attr_names; k++)
                        kiln_sbuf_printf(&b, " %s", f->attr_names[k]);
                    for (size_t k = 0; k < f->n_attr_defaults; k++)
                        kiln_sbuf_printf(&b, " %s (default)", f->attr_defaults[k].name);
                }
                if (f->n_opsets) {
                    kiln_sbuf_printf(&b, ", opsets");
                    for (size_t k = 0; k < f->n_opsets; k++)
                        kiln_sbuf_printf(&b, " %s %lld", *f->opsets[k].domain ? f->opsets[k].domain : "ai.onnx",
                                         (long long)f->opsets[k].version);
                }
                kiln_sbuf_printf(&b, "\n");
            }
        }
    }
    free(h.v);
    free(fnames);
    free(st_in);
    free(st_out);
    if (b.failed) {
        free(b.data);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    *out = b.data;
    return KILN_OK;
}
