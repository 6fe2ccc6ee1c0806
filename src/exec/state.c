/* Recurrent state pairs: a graph input fed, after each run, from the graph
 * output that holds its next value; found automatically for LSTM/GRU/RNN
 * wired straight to the graph (or through the exporter's per-layer slices
 * and Concat), or by a naming convention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "passes/edit.h"

static bool types_agree(const kiln_type *a, const kiln_type *b) {
    if (a->kind != KILN_TYPE_TENSOR || b->kind != KILN_TYPE_TENSOR)
        return true;
    if (a->elem && b->elem && a->elem != b->elem)
        return false;
    if (a->rank < 0 || b->rank < 0)
        return true;
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++) {
        const kiln_dim *x = &a->dims[i], *y = &b->dims[i];
        if (x->value >= 0 && y->value >= 0 && x->value != y->value)
            return false;
    }
    return true;
}

static void type_str(const kiln_type *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "%s", t->kind == KILN_TYPE_TENSOR ? kiln_dtype_name(t->elem) : "?");
    if (t->kind != KILN_TYPE_TENSOR || t->rank < 0 || o >= n)
        return;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->rank && o < n; i++) {
        if (t->dims[i].value >= 0)
            o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)t->dims[i].value);
        else
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? "," : "", t->dims[i].param ? t->dims[i].param : "?");
    }
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static kiln_state_pair *find_pair(const kiln_session *s, const char *input) {
    for (size_t i = 0; i < s->n_states; i++)
        if (!strcmp(s->states[i].input, input))
            return &s->states[i];
    return NULL;
}

static const kiln_graph *graph_of(const kiln_session *s) { return s->core.plans->graph; }

kiln_status kiln_session_add_state(kiln_session *s, const char *input, const char *output) {
    const kiln_graph *g = graph_of(s);
    size_t ii, oi;
    if (!kiln_graph_find_input(g, input, &ii)) {
        kiln_sbuf b = {0};
        for (size_t k = 0; k < g->n_inputs; k++)
            kiln_sbuf_printf(&b, "%s'%s'", k ? ", " : "", g->inputs[k].name);
        kiln_status st = kiln_fail(KILN_ERR_ARG, "state pair %s=%s: '%s' is not an input of the model (inputs: %s)",
                                   input, output, input, b.data ? b.data : "none");
        free(b.data);
        return st;
    }
    for (oi = 0; oi < g->n_outputs && strcmp(g->outputs[oi].name, output); oi++)
        ;
    if (oi == g->n_outputs) {
        kiln_sbuf b = {0};
        for (size_t k = 0; k < g->n_outputs; k++)
            kiln_sbuf_printf(&b, "%s'%s'", k ? ", " : "", g->outputs[k].name);
        kiln_status st = kiln_fail(KILN_ERR_ARG, "state pair %s=%s: '%s' is not an output of the model (outputs: %s)",
                                   input, output, output, b.data ? b.data : "none");
        free(b.data);
        return st;
    }
    if (find_pair(s, input))
        return kiln_fail(KILN_ERR_ARG, "input '%s' is already part of a state pair", input);
    for (size_t i = 0; i < s->n_states; i++)
        if (!strcmp(s->states[i].output, output))
            return kiln_fail(KILN_ERR_ARG, "output '%s' is already part of a state pair", output);
    if (!types_agree(&g->inputs[ii].type, &g->outputs[oi].type)) {
        char a[256], b[256];
        type_str(&g->inputs[ii].type, a, sizeof a);
        type_str(&g->outputs[oi].type, b, sizeof b);
        return kiln_fail(KILN_ERR_ARG, "state pair %s=%s: input '%s' is %s but output '%s' is %s", input, output, input,
                         a, output, b);
    }
    kiln_state_pair *v = kiln_realloc(s->states, (s->n_states + 1) * sizeof *v);
    if (!v)
        return KILN_ERR_NOMEM;
    s->states = v;
    kiln_state_pair *p = &s->states[s->n_states];
    memset(p, 0, sizeof *p);
    p->input = kiln_strdup(input);
    p->output = kiln_strdup(output);
    if (!p->input || !p->output) {
        free(p->input);
        free(p->output);
        return KILN_ERR_NOMEM;
    }
    p->input_index = ii;
    p->output_index = oi;
    s->n_states++;
    return KILN_OK;
}

/* ---- discovery ---- */

static bool is_graph_output(const kiln_graph *g, const char *name) {
    for (size_t i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name))
            return true;
    return false;
}

static bool is_free_input(const kiln_graph *g, const char *name) {
    return kiln_graph_find_input(g, name, NULL) && !kiln_graph_find_init(g, name, NULL);
}

static kiln_status push_pair(size_t *n, const char ***ins, const char ***outs, const char *in, const char *out) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*ins)[i], in) || !strcmp((*outs)[i], out))
            return KILN_OK;
    const char **a = kiln_realloc(*ins, (*n + 1) * sizeof *a);
    if (!a)
        return KILN_ERR_NOMEM;
    *ins = a;
    const char **b = kiln_realloc(*outs, (*n + 1) * sizeof *b);
    if (!b)
        return KILN_ERR_NOMEM;
    *outs = b;
    a[*n] = in;
    b[*n] = out;
    (*n)++;
    return KILN_OK;
}

/* "past_*=present_*": splits into prefix/suffix pairs around '*'. */
static kiln_status parse_convention(const char *conv, char *in_pre, char *in_suf, char *out_pre, char *out_suf,
                                    size_t cap) {
    const char *eq = strchr(conv, '=');
    const char *s1 = strchr(conv, '*');
    const char *s2 = eq ? strchr(eq + 1, '*') : NULL;
    if (!eq || !s1 || s1 > eq || !s2 || strchr(s2 + 1, '*') || (size_t)(eq - conv) >= cap || strlen(eq) >= cap)
        return kiln_fail(KILN_ERR_ARG, "state convention '%s' must look like IN*=OUT* (e.g. past_*=present_*)", conv);
    snprintf(in_pre, cap, "%.*s", (int)(s1 - conv), conv);
    snprintf(in_suf, cap, "%.*s", (int)(eq - s1 - 1), s1 + 1);
    snprintf(out_pre, cap, "%.*s", (int)(s2 - eq - 1), eq + 1);
    snprintf(out_suf, cap, "%s", s2 + 1);
    return KILN_OK;
}

static bool is_recurrent(const kiln_node *n) {
    return !*n->domain && (!strcmp(n->op_type, "LSTM") || !strcmp(n->op_type, "GRU") || !strcmp(n->op_type, "RNN"));
}

/* name -> the node producing it */
static const kiln_node *producer(const kiln_nameset *by_output, const char *name) {
    return *name ? kiln_nameset_get(by_output, name) : NULL;
}

/* Input `idx` of `n`: a one-element integer initializer (`dflt` when absent). */
static bool const_int(const kiln_graph *g, const kiln_node *n, size_t idx, int64_t dflt, int64_t *v) {
    if (idx >= n->n_inputs || !*n->inputs[idx]) {
        *v = dflt;
        return true;
    }
    const kiln_tensor *t = kiln_graph_find_init(g, n->inputs[idx], NULL);
    if (!t || t->numel != 1 || (t->dtype != KILN_DTYPE_INT64 && t->dtype != KILN_DTYPE_INT32))
        return false;
    *v = (int64_t)kiln_tensor_get_f64(t, 0);
    return true;
}

/* `name` = Slice(X, [start], [end], axes=[0]) of a free graph input X: X. */
static const char *sliced_input(const kiln_graph *g, const kiln_nameset *by_output, const char *name, int64_t *start,
                                int64_t *end) {
    const kiln_node *s = producer(by_output, name);
    int64_t axis, step;
    if (!s || *s->domain || strcmp(s->op_type, "Slice") || s->n_inputs < 3 || !is_free_input(g, s->inputs[0]) ||
        !const_int(g, s, 1, 0, start) || !const_int(g, s, 2, 0, end) || !const_int(g, s, 3, 0, &axis) ||
        !const_int(g, s, 4, 1, &step) || axis != 0 || step != 1)
        return NULL;
    return s->inputs[0];
}

/* torch.onnx.export's recurrent layers (dynamo too, one layer or several):
 * layer j reads its initial state as Slice(h0, [s_j], [e_j]) on axis 0, the
 * slices tiling h0 in order, and the output is Concat(axis 0) of the
 * layers' final states (or the one layer's final state itself). */
static const char *sliced_state_input(const kiln_graph *g, const kiln_nameset *by_output, const char *out,
                                      size_t in_idx, size_t out_idx) {
    const kiln_node *p = producer(by_output, out);
    if (!p || *p->domain)
        return NULL;
    const char *const *parts = &out;
    size_t n_parts = 1;
    if (!strcmp(p->op_type, "Concat")) {
        if (kiln_attr_int(p, "axis", 1) != 0)
            return NULL;
        parts = (const char *const *)p->inputs;
        n_parts = p->n_inputs;
    }
    const char *x = NULL;
    int64_t next = 0, start, end;
    for (size_t j = 0; j < n_parts; j++) {
        const kiln_node *r = producer(by_output, parts[j]);
        if (!r || !is_recurrent(r) || out_idx >= r->n_outputs || strcmp(r->outputs[out_idx], parts[j]) ||
            in_idx >= r->n_inputs)
            return NULL;
        const char *xj = sliced_input(g, by_output, r->inputs[in_idx], &start, &end);
        if (!xj || (x && strcmp(x, xj)) || start != next || end <= start)
            return NULL;
        x = xj;
        next = end;
    }
    const kiln_value_info *vi = x ? kiln_graph_find_input(g, x, NULL) : NULL;
    if (!vi || vi->type.kind != KILN_TYPE_TENSOR || vi->type.rank < 1 ||
        (vi->type.dims[0].value >= 0 && next < vi->type.dims[0].value))
        return NULL; /* the slices leave part of it unread */
    return x;
}

kiln_status kiln_model_find_states(const kiln_model *m, const char *convention, size_t *n, const char ***ins,
                                   const char ***outs) {
    const kiln_graph *g = m->graph;
    *n = 0;
    *ins = NULL;
    *outs = NULL;
    kiln_status st = KILN_OK;
    /* Recurrent nodes: initial_h (input 5) -> Y_h (output 1), initial_c (6) -> Y_c (2). */
    for (size_t i = 0; i < g->n_nodes && st == KILN_OK; i++) {
        const kiln_node *nd = g->nodes[i];
        if (*nd->domain || (strcmp(nd->op_type, "LSTM") && strcmp(nd->op_type, "GRU") && strcmp(nd->op_type, "RNN")))
            continue;
        static const size_t in_idx[2] = {5, 6}, out_idx[2] = {1, 2};
        for (int k = 0; k < 2 && st == KILN_OK; k++) {
            if (k == 1 && strcmp(nd->op_type, "LSTM"))
                break;
            if (in_idx[k] < nd->n_inputs && out_idx[k] < nd->n_outputs && is_free_input(g, nd->inputs[in_idx[k]]) &&
                is_graph_output(g, nd->outputs[out_idx[k]]))
                st = push_pair(n, ins, outs, nd->inputs[in_idx[k]], nd->outputs[out_idx[k]]);
        }
    }
    /* ... and through the exporter's per-layer slices (Y_c: LSTM's output 2 only) */
    bool recurrent = false;
    for (size_t i = 0; i < g->n_nodes && !recurrent; i++)
        recurrent = is_recurrent(g->nodes[i]);
    kiln_nameset by_output = {0};
    for (size_t i = 0; recurrent && i < g->n_nodes && st == KILN_OK; i++)
        for (size_t k = 0; k < g->nodes[i]->n_outputs && st == KILN_OK; k++)
            if (*g->nodes[i]->outputs[k] && !kiln_nameset_has(&by_output, g->nodes[i]->outputs[k]))
                st = kiln_nameset_put(&by_output, g->nodes[i]->outputs[k], g->nodes[i]);
    for (size_t i = 0; recurrent && i < g->n_outputs && st == KILN_OK; i++) {
        for (int k = 0; k < 2 && st == KILN_OK; k++) {
            const char *x = sliced_state_input(g, &by_output, g->outputs[i].name, k ? 6 : 5, k ? 2 : 1);
            if (x)
                st = push_pair(n, ins, outs, x, g->outputs[i].name);
        }
    }
    kiln_nameset_free(&by_output, NULL);
    if (st == KILN_OK && convention && *convention) {
        char ip[256], is[256], op[256], os[256];
        st = parse_convention(convention, ip, is, op, os, sizeof ip);
        for (size_t i = 0; i < g->n_inputs && st == KILN_OK; i++) {
            const char *name = g->inputs[i].name;
            size_t l = strlen(name), lp = strlen(ip), ls = strlen(is);
            if (!is_free_input(g, name) || l < lp + ls || strncmp(name, ip, lp) || strcmp(name + l - ls, is))
                continue;
            char want[1024];
            snprintf(want, sizeof want, "%s%.*s%s", op, (int)(l - lp - ls), name + lp, os);
            for (size_t k = 0; k < g->n_outputs && st == KILN_OK; k++)
                if (!strcmp(g->outputs[k].name, want))
                    st = push_pair(n, ins, outs, name, g->outputs[k].name);
        }
    }
    if (st != KILN_OK) {
        free(*ins);
        free(*outs);
        *ins = *outs = NULL;
        *n = 0;
    }
    return st;
}

kiln_status kiln_session_add_found_states(kiln_session *s, const char *convention, size_t *added) {
    size_t n;
    const char **ins, **outs;
    *added = 0;
    KILN_TRY(kiln_model_find_states(s->core.model, convention, &n, &ins, &outs));
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n && st == KILN_OK; i++) {
        if (find_pair(s, ins[i]))
            continue;
        st = kiln_session_add_state(s, ins[i], outs[i]);
        if (st == KILN_OK)
            (*added)++;
    }
    free(ins);
    free(outs);
    return st;
}

size_t kiln_session_state_count(const kiln_session *s) { return s->n_states; }
const char *kiln_session_state_input(const kiln_session *s, size_t i) {
    return i < s->n_states ? s->states[i].input : NULL;
}
const char *kiln_session_state_output(const kiln_session *s, size_t i) {
    return i < s->n_states ? s->states[i].output : NULL;
}

kiln_status kiln_session_get_state(const kiln_session *s, const char *input, kiln_tensor **out) {
    *out = NULL;
    kiln_state_pair *p = find_pair(s, input);
    if (!p)
        return kiln_fail(KILN_ERR_ARG, "'%s' is not the input of a state pair", input);
    return p->value ? kiln_tensor_clone(p->value, out) : KILN_OK;
}

kiln_status kiln_session_set_state(kiln_session *s, const char *input, const kiln_tensor *value) {
    kiln_state_pair *p = find_pair(s, input);
    if (!p)
        return kiln_fail(KILN_ERR_ARG, "'%s' is not the input of a state pair", input);
    KILN_TRY(kiln_check_input(&graph_of(s)->inputs[p->input_index], value));
    kiln_tensor *c;
    KILN_TRY(kiln_tensor_clone(value, &c));
    free(c->name);
    c->name = NULL;
    kiln_tensor_destroy(p->value);
    p->value = c;
    return KILN_OK;
}

void kiln_session_reset_state(kiln_session *s) {
    for (size_t i = 0; i < s->n_states; i++) {
        kiln_tensor_destroy(s->states[i].value);
        s->states[i].value = NULL;
    }
}

void kiln_state_free(kiln_session *s) {
    kiln_session_reset_state(s);
    for (size_t i = 0; i < s->n_states; i++) {
        free(s->states[i].input);
        free(s->states[i].output);
    }
    free(s->states);
    s->states = NULL;
    s->n_states = 0;
}

kiln_status kiln_session_save_state(const kiln_session *s, const char *dir) {
    for (size_t i = 0; i < s->n_states; i++) {
        if (!s->states[i].value)
            continue;
        char *p;
        KILN_TRY(kiln_npy_path(dir, s->states[i].input, &p));
        kiln_status st = kiln_npy_write(s->states[i].value, p);
        free(p);
        KILN_TRY(st);
    }
    return KILN_OK;
}

kiln_status kiln_session_load_state(kiln_session *s, const char *dir) {
    for (size_t i = 0; i < s->n_states; i++) {
        char *p;
        KILN_TRY(kiln_npy_path(dir, s->states[i].input, &p));
        kiln_tensor *t;
        kiln_status st = kiln_npy_read(p, &t);
        free(p);
        KILN_TRY(st);
        st = kiln_session_set_state(s, s->states[i].input, t);
        kiln_tensor_destroy(t);
        if (st != KILN_OK)
            return kiln_fail_prefix(st, "state from '%s': ", dir);
    }
    return KILN_OK;
}

/* ---- run hooks ---- */

/* Size of symbol `param` as seen in the inputs being fed, or -1. */
static int64_t symbol_size(const kiln_graph *g, const kiln_tensor **feed, const char *param) {
    for (size_t i = 0; i < g->n_inputs; i++) {
        const kiln_type *t = &g->inputs[i].type;
        if (!feed[i] || t->kind != KILN_TYPE_TENSOR || t->rank != feed[i]->rank)
            continue;
        for (int d = 0; d < t->rank; d++)
            if (t->dims[d].param && !strcmp(t->dims[d].param, param))
                return feed[i]->dims[d];
    }
    return -1;
}

kiln_status kiln_state_feed(kiln_session *s, const kiln_tensor **feed, kiln_tensor **zeros) {
    const kiln_graph *g = graph_of(s);
    for (size_t i = 0; i < s->n_states; i++) {
        kiln_state_pair *p = &s->states[i];
        if (feed[p->input_index])
            continue; /* given by the caller this time */
        if (p->value) {
            feed[p->input_index] = p->value;
            continue;
        }
        const kiln_value_info *vi = &g->inputs[p->input_index];
        if (vi->type.kind != KILN_TYPE_TENSOR || vi->type.rank < 0)
            return kiln_fail(KILN_ERR_ARG, "state input '%s' has no declared shape; set its initial value", p->input);
        int64_t dims[KILN_MAX_RANK];
        for (int d = 0; d < vi->type.rank; d++) {
            dims[d] = vi->type.dims[d].value;
            if (dims[d] < 0 && vi->type.dims[d].param)
                dims[d] = symbol_size(g, feed, vi->type.dims[d].param);
            if (dims[d] < 0)
                return kiln_fail(KILN_ERR_ARG, "state input '%s': dimension %d (%s) is not known from the other inputs; set the initial state",
                                 p->input, d, vi->type.dims[d].param ? vi->type.dims[d].param : "unnamed");
        }
        KILN_TRY(kiln_tensor_create(vi->type.elem ? vi->type.elem : KILN_DTYPE_FLOAT, vi->type.rank, dims, &zeros[i]));
        feed[p->input_index] = zeros[i];
    }
    return KILN_OK;
}

/* The next value of a state may change size only along the dims its input
 * declares symbolic: a KV cache [batch, heads, past, dh] grows along 'past'
 * from run to run (present_* is [batch, heads, past + seq, dh]). */
kiln_status kiln_state_capture(kiln_session *s, const kiln_tensor *const *feed, kiln_tensor *const *all) {
    const kiln_graph *g = graph_of(s);
    for (size_t i = 0; i < s->n_states; i++) {
        kiln_state_pair *p = &s->states[i];
        const kiln_tensor *in = feed[p->input_index], *out = all[p->output_index];
        const kiln_type *decl = &g->inputs[p->input_index].type;
        bool same = in && out && in->dtype == out->dtype && in->rank == out->rank;
        for (int d = 0; same && d < in->rank; d++)
            same = in->dims[d] == out->dims[d] ||
                   (decl->kind == KILN_TYPE_TENSOR && decl->rank == in->rank && decl->dims[d].value < 0);
        if (!same) {
            char a[256], b[256];
            return kiln_fail(KILN_ERR_INVALID, "state pair %s=%s: the output is %s %s but the input was %s %s", p->input,
                             p->output, out ? kiln_dtype_name(out->dtype) : "?",
                             out ? kiln_dims_str(out->rank, out->dims, a, sizeof a) : "?",
                             in ? kiln_dtype_name(in->dtype) : "?",
                             in ? kiln_dims_str(in->rank, in->dims, b, sizeof b) : "?");
        }
    }
    for (size_t i = 0; i < s->n_states; i++) {
        kiln_state_pair *p = &s->states[i];
        kiln_tensor *v;
        KILN_TRY(kiln_tensor_share(all[p->output_index], &v));
        kiln_tensor_destroy(p->value);
        p->value = v;
    }
    return KILN_OK;
}
