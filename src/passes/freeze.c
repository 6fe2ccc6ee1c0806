/* kiln_model_freeze: binding inputs, fixing dimensions, the pass pipeline,
 * the report. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/inline_functions.h"
#include "passes/passes.h"

/* ---- report ---- */

kiln_status kiln_freeze_report_create(kiln_freeze_report **out) {
    *out = kiln_calloc(1, sizeof **out);
    return *out ? KILN_OK : KILN_ERR_NOMEM;
}

void kiln_freeze_report_destroy(kiln_freeze_report *r) {
    if (!r)
        return;
    free(r->inputs_removed.data);
    free(r->dims_fixed.data);
    free(r->skipped.data);
    free(r->text_skipped.data);
    free(r->text_bound.data);
    free(r->text_functions.data);
    free(r->functions_kept.data);
    for (size_t i = 0; i < r->n_ops; i++)
        free(r->ops[i].key);
    free(r->ops);
    kiln_convert_log_free(r->convert);
    free(r);
}

void kiln_report_skip(kiln_freeze_ctx *c, const kiln_node *n, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_freeze_report *r = c->rep;
    /* the same node is met again on every pipeline round: report it once */
    const char *out = n->n_outputs ? n->outputs[0] : "";
    char key[700];
    snprintf(key, sizeof key, "\"output\":\"%s\"", out);
    if (r->skipped.data && strstr(r->skipped.data, key))
        return;
    kiln_sbuf_printf(&r->skipped, "%s{\"output\":", r->n_skipped ? "," : "");
    kiln_sbuf_json_string(&r->skipped, out);
    kiln_sbuf_printf(&r->skipped, ",\"node\":");
    kiln_sbuf_json_string(&r->skipped, n->name);
    kiln_sbuf_printf(&r->skipped, ",\"op\":");
    kiln_sbuf_json_string(&r->skipped, n->op_type);
    kiln_sbuf_printf(&r->skipped, ",\"reason\":");
    kiln_sbuf_json_string(&r->skipped, msg);
    kiln_sbuf_printf(&r->skipped, "}");
    kiln_sbuf_printf(&r->text_skipped, "  fold skipped: %s '%s' (output '%s'): %s\n", n->op_type, n->name, out, msg);
    r->n_skipped++;
}

static kiln_status count_ops(kiln_graph *g, int depth, void *ctx) {
    kiln_freeze_report *r = ctx;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const char *op = g->nodes[i]->op_type;
        size_t k = 1;
        while (k < r->n_ops && strcmp(r->ops[k].key, op) != 0)
            k++;
        if (k == r->n_ops) {
            kiln_count *o = kiln_realloc(r->ops, (r->n_ops + 1) * sizeof *o);
            if (!o)
                return KILN_ERR_NOMEM;
            r->ops = o;
            r->ops[k] = (kiln_count){kiln_strdup(op), 0, 0};
            if (!r->ops[k].key)
                return KILN_ERR_NOMEM;
            r->n_ops++;
        }
        if (r->ops[0].after)
            r->ops[k].after++;
        else
            r->ops[k].before++;
    }
    return KILN_OK;
}

/* ops[0] is the total; its `after` field doubles as the "counting after" flag
 * during the walk and is set properly at the end. */
static kiln_status count_all(kiln_freeze_report *r, kiln_graph *g, bool after) {
    if (!r->n_ops) {
        r->ops = kiln_calloc(1, sizeof *r->ops);
        if (!r->ops || !(r->ops[0].key = kiln_strdup("total")))
            return KILN_ERR_NOMEM;
        r->n_ops = 1;
    }
    r->ops[0].after = after ? 1 : 0;
    KILN_TRY(kiln_graph_walk(g, count_ops, r));
    int64_t b = 0, a = 0;
    for (size_t i = 1; i < r->n_ops; i++) {
        b += r->ops[i].before;
        a += r->ops[i].after;
    }
    r->ops[0].before = b;
    r->ops[0].after = a;
    return KILN_OK;
}

static kiln_status init_bytes(kiln_graph *g, int depth, void *ctx) {
    int64_t *b = ctx;
    for (size_t i = 0; i < g->n_inits; i++)
        *b += (int64_t)g->inits[i]->nbytes;
    return KILN_OK;
}

kiln_status kiln_report_text(const kiln_freeze_report *r, char **out) {
    kiln_sbuf b = {0};
    if (!r->n_ops && r->convert)
        goto convert; /* a conversion alone */
    if (r->n_ops)
        kiln_sbuf_printf(&b, "kiln freeze: %lld nodes -> %lld\n", (long long)r->ops[0].before,
                         (long long)r->ops[0].after);
    for (size_t i = 1; i < r->n_ops; i++)
        if (r->ops[i].before != r->ops[i].after)
            kiln_sbuf_printf(&b, "  %-20s %lld -> %lld\n", r->ops[i].key, (long long)r->ops[i].before,
                             (long long)r->ops[i].after);
    if (r->text_bound.data)
        kiln_sbuf_append(&b, r->text_bound.data, r->text_bound.len);
    if (r->calls_inlined)
        kiln_sbuf_printf(&b, "  local function calls inlined: %lld\n", (long long)r->calls_inlined);
    if (r->text_functions.data)
        kiln_sbuf_append(&b, r->text_functions.data, r->text_functions.len);
    kiln_sbuf_printf(&b, "  Ifs inlined: %lld, Loops unrolled: %lld, nodes folded: %lld, shape values folded: %lld\n",
                     (long long)r->ifs_inlined, (long long)r->loops_unrolled, (long long)r->folded,
                     (long long)r->shapes_folded);
    if (r->text_skipped.data)
        kiln_sbuf_append(&b, r->text_skipped.data, r->text_skipped.len);
    kiln_sbuf_printf(&b, "  initializer bytes: %lld -> %lld\n", (long long)r->bytes_before,
                     (long long)r->bytes_after);
convert:
    kiln_convert_log_text(r->convert, &b);
    if (b.failed || !b.data) {
        free(b.data);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    *out = b.data;
    return KILN_OK;
}

kiln_status kiln_report_json(const kiln_freeze_report *r, char **out) {
    kiln_sbuf b = {0};
    if (!r->n_ops && r->convert) { /* a conversion alone */
        kiln_sbuf_printf(&b, "{\n");
        kiln_convert_log_json(r->convert, &b);
        if (b.len >= 2 && b.data[b.len - 2] == ',') /* the member's trailing comma */
            b.data[b.len - 2] = ' ';
        kiln_sbuf_printf(&b, "}\n");
        goto done;
    }
    kiln_sbuf_printf(&b, "{\n  \"nodes\": {");
    for (size_t i = 0; i < r->n_ops; i++) {
        kiln_sbuf_printf(&b, "%s\n    ", i ? "," : "");
        kiln_sbuf_json_string(&b, r->ops[i].key);
        kiln_sbuf_printf(&b, ": {\"before\": %lld, \"after\": %lld}", (long long)r->ops[i].before,
                         (long long)r->ops[i].after);
    }
    kiln_sbuf_printf(&b, "\n  },\n  \"inputs_removed\": [%s],\n", r->inputs_removed.data ? r->inputs_removed.data : "");
    kiln_sbuf_printf(&b, "  \"dims_fixed\": {%s},\n", r->dims_fixed.data ? r->dims_fixed.data : "");
    kiln_sbuf_printf(&b, "  \"function_calls_inlined\": %lld,\n  \"functions_kept\": [%s],\n",
                     (long long)r->calls_inlined, r->functions_kept.data ? r->functions_kept.data : "");
    kiln_sbuf_printf(&b, "  \"ifs_inlined\": %lld,\n  \"loops_unrolled\": %lld,\n  \"nodes_folded\": %lld,\n"
                         "  \"shape_values_folded\": %lld,\n",
                     (long long)r->ifs_inlined, (long long)r->loops_unrolled, (long long)r->folded,
                     (long long)r->shapes_folded);
    kiln_sbuf_printf(&b, "  \"folds_skipped\": [%s],\n", r->skipped.data ? r->skipped.data : "");
    kiln_convert_log_json(r->convert, &b);
    kiln_sbuf_printf(&b, "  \"bytes_before\": %lld,\n  \"bytes_after\": %lld\n}\n", (long long)r->bytes_before,
                     (long long)r->bytes_after);
done:
    if (b.failed) {
        free(b.data);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    *out = b.data;
    return KILN_OK;
}

/* ---- bind and fix ---- */

static void type_str(const kiln_type *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "%s", t->kind == KILN_TYPE_TENSOR ? kiln_dtype_name(t->elem) : "?");
    if (t->rank < 0) {
        snprintf(buf + o, n > o ? n - o : 0, "[?]");
        return;
    }
    for (int i = 0; i < t->rank && o < n; i++) {
        const kiln_dim *d = &t->dims[i];
        if (d->value >= 0)
            o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "[", (long long)d->value);
        else
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? "," : "[", d->param ? d->param : "?");
    }
    if (o < n)
        snprintf(buf + o, n - o, "%s", t->rank ? "]" : "[]");
}

static kiln_status input_list_error(const kiln_graph *g, const char *name, const char *what) {
    kiln_sbuf b = {0};
    for (size_t k = 0; k < g->n_inputs; k++)
        if (!kiln_graph_find_init(g, g->inputs[k].name, NULL) || true)
            kiln_sbuf_printf(&b, "%s'%s'", b.len ? ", " : "", g->inputs[k].name);
    kiln_status st = kiln_fail(KILN_ERR_ARG, "'%s' %s; the model's inputs are %s", name, what,
                               b.data ? b.data : "(none)");
    free(b.data);
    return st;
}

typedef struct fixdim_ctx {
    const char *sym;
    int64_t value;
    int hits;
} fixdim_ctx;

static void fix_type(kiln_type *t, fixdim_ctx *f) {
    if (t->kind != KILN_TYPE_TENSOR || t->rank <= 0 || !t->dims)
        return;
    for (int i = 0; i < t->rank; i++) {
        char *p = t->dims[i].param;
        if (p && strcmp(p, f->sym) == 0) {
            free(p);
            t->dims[i].param = NULL;
            t->dims[i].value = f->value;
            f->hits++;
        } else if (p && kiln_dim_is_expr(p)) {
            /* an expression over symbols: substitute, and evaluate once no
             * symbol is left ("floor(height/2 - 1/2) + 1" with height=640) */
            char *e = kiln_dim_expr_subst(p, f->sym, f->value);
            if (!e)
                continue;
            int64_t v;
            free(p);
            if (kiln_dim_expr_value(e, &v)) {
                free(e);
                t->dims[i].param = NULL;
                t->dims[i].value = v;
            } else {
                t->dims[i].param = e;
            }
        }
    }
}

static kiln_status fixdim_visit(kiln_graph *g, int depth, void *ctx) {
    fixdim_ctx *f = ctx;
    for (size_t i = 0; i < g->n_inputs; i++)
        fix_type(&g->inputs[i].type, f);
    for (size_t i = 0; i < g->n_outputs; i++)
        fix_type(&g->outputs[i].type, f);
    for (size_t i = 0; i < g->n_value_info; i++)
        fix_type(&g->value_info[i].type, f);
    return KILN_OK;
}

kiln_status kiln_model_fix_dim(kiln_model *m, const char *symbol, int64_t value, kiln_freeze_report *r) {
    if (!symbol || !*symbol)
        return kiln_fail(KILN_ERR_ARG, "--dim: empty dimension name");
    if (value < 0)
        return kiln_fail(KILN_ERR_ARG, "dimension '%s': size %lld is negative", symbol, (long long)value);
    fixdim_ctx f = {symbol, value, 0};
    KILN_TRY(kiln_graph_walk(m->graph, fixdim_visit, &f));
    if (!f.hits) {
        kiln_sbuf b = {0};
        kiln_graph *g = m->graph;
        for (size_t i = 0; i < g->n_inputs; i++)
            for (int k = 0; k < g->inputs[i].type.rank; k++)
                if (g->inputs[i].type.dims[k].param)
                    kiln_sbuf_printf(&b, "%s'%s'", b.len ? ", " : "", g->inputs[i].type.dims[k].param);
        kiln_status st = kiln_fail(KILN_ERR_ARG, "no dimension is named '%s'; the inputs' symbolic dimensions are %s",
                                   symbol, b.data ? b.data : "(none)");
        free(b.data);
        return st;
    }
    if (r) {
        kiln_sbuf_printf(&r->dims_fixed, "%s", r->n_dims_fixed ? ", " : "");
        kiln_sbuf_json_string(&r->dims_fixed, symbol);
        kiln_sbuf_printf(&r->dims_fixed, ": %lld", (long long)value);
        kiln_sbuf_printf(&r->text_bound, "  dim fixed: %s = %lld\n", symbol, (long long)value);
        r->n_dims_fixed++;
    }
    return KILN_OK;
}

kiln_status kiln_model_fix_shape(kiln_model *m, const char *input, int rank, const int64_t *dims,
                                 kiln_freeze_report *r) {
    kiln_graph *g = m->graph;
    kiln_value_info *vi = kiln_graph_find_input(g, input, NULL);
    if (!vi)
        return input_list_error(g, input, "is not an input");
    if (vi->type.kind != KILN_TYPE_TENSOR)
        return kiln_fail(KILN_ERR_ARG, "input '%s' is not a tensor", input);
    char decl[256];
    type_str(&vi->type, decl, sizeof decl);
    if (vi->type.rank >= 0 && vi->type.rank != rank)
        return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, --shape gives rank %d", input, decl, rank);
    if (vi->type.rank < 0) {
        vi->type.dims = kiln_calloc((size_t)rank + 1, sizeof *vi->type.dims);
        if (!vi->type.dims)
            return KILN_ERR_NOMEM;
        for (int i = 0; i < rank; i++)
            vi->type.dims[i].value = -1;
        vi->type.rank = rank;
    }
    for (int i = 0; i < rank; i++) {
        kiln_dim *d = &vi->type.dims[i];
        if (dims[i] < 0)
            return kiln_fail(KILN_ERR_ARG, "input '%s': dimension %d is negative", input, i);
        if (d->value >= 0 && d->value != dims[i])
            return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, --shape gives %lld for dimension %d", input,
                             decl, (long long)dims[i], i);
        if (d->param) {
            char *sym = kiln_strdup(d->param);
            if (!sym)
                return KILN_ERR_NOMEM;
            kiln_status st = kiln_model_fix_dim(m, sym, dims[i], r);
            free(sym);
            KILN_TRY(st);
        } else {
            d->value = dims[i];
        }
    }
    return KILN_OK;
}

kiln_status kiln_model_bind(kiln_model *m, const char *name, const kiln_tensor *v, kiln_freeze_report *r) {
    kiln_graph *g = m->graph;
    size_t idx;
    kiln_value_info *vi = kiln_graph_find_input(g, name, &idx);
    if (!vi) {
        if (kiln_graph_find_init(g, name, NULL))
            return input_list_error(g, name, "is bound twice (or is an initializer, not an input)");
        return input_list_error(g, name, "is not an input");
    }
    const kiln_type *t = &vi->type;
    char decl[256], got[256];
    type_str(t, decl, sizeof decl);
    snprintf(got, sizeof got, "%s", kiln_dtype_name(v->dtype));
    kiln_dims_str(v->rank, v->dims, got + strlen(got), sizeof got - strlen(got));
    if (t->kind != KILN_TYPE_TENSOR)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' is not a tensor (sequence/map/optional inputs cannot be bound)",
                         name);
    if (t->elem != KILN_DTYPE_UNDEFINED && t->elem != v->dtype)
        return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, given %s (element types differ)", name, decl, got);
    if (t->rank >= 0 && t->rank != v->rank)
        return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, given %s (ranks differ)", name, decl, got);
    for (int i = 0; t->rank > 0 && i < t->rank; i++) {
        if (t->dims[i].value >= 0 && t->dims[i].value != v->dims[i])
            return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, given %s (dimension %d differs)", name, decl,
                             got, i);
        for (int k = 0; k < i; k++)
            if (t->dims[i].param && t->dims[k].param && !strcmp(t->dims[i].param, t->dims[k].param) &&
                v->dims[i] != v->dims[k])
                return kiln_fail(KILN_ERR_ARG, "input '%s': declared %s, given %s (dimension '%s' has two sizes)",
                                 name, decl, got, t->dims[i].param);
    }
    /* symbols take the given sizes, everywhere */
    for (int i = 0; t->rank > 0 && i < t->rank; i++)
        if (vi->type.dims[i].param) {
            char *sym = kiln_strdup(vi->type.dims[i].param);
            if (!sym)
                return KILN_ERR_NOMEM;
            kiln_status st = kiln_model_fix_dim(m, sym, v->dims[i], r);
            free(sym);
            KILN_TRY(st);
            vi = &g->inputs[idx];
        }
    kiln_tensor *c;
    KILN_TRY(kiln_tensor_clone(v, &c));
    size_t iidx;
    if (kiln_graph_find_init(g, name, &iidx))
        kiln_graph_remove_init(g, iidx); /* the default it had */
    KILN_TRY(kiln_edit_set_const(g, name, c));
    kiln_value_info_clear(&g->inputs[idx]);
    memmove(&g->inputs[idx], &g->inputs[idx + 1], (g->n_inputs - idx - 1) * sizeof *g->inputs);
    g->n_inputs--;
    if (r) {
        kiln_sbuf_printf(&r->inputs_removed, "%s", r->n_inputs_removed ? ", " : "");
        kiln_sbuf_json_string(&r->inputs_removed, name);
        kiln_sbuf_printf(&r->text_bound, "  input bound: %s = %s\n", name, got);
        r->n_inputs_removed++;
    }
    return KILN_OK;
}

/* ---- the pipeline ---- */

/* IR versions before 4 require every initializer to be a graph input too;
 * constants that are not inputs become Constant nodes there, so the input
 * list stays what the user asked for. */
static kiln_status inits_to_constants(kiln_graph *g, int depth, void *ctx) {
    size_t at = 0;
    for (size_t i = 0; i < g->n_inits;) {
        kiln_tensor *t = g->inits[i];
        if (!t->name || kiln_edit_is_input(g, t->name)) {
            i++;
            continue;
        }
        kiln_node *n;
        const char *nm = t->name;
        KILN_TRY(kiln_edit_node_new("Constant", "", 0, NULL, 1, &nm, &n));
        g->inits[i] = NULL;
        memmove(&g->inits[i], &g->inits[i + 1], (g->n_inits - i - 1) * sizeof *g->inits);
        g->n_inits--;
        kiln_graph_inits_changed(g);
        kiln_status st = kiln_edit_attr_tensor(n, "value", t);
        if (st == KILN_OK && (st = kiln_edit_insert(g, at++, n)) != KILN_OK)
            kiln_node_destroy(n);
        else if (st != KILN_OK)
            kiln_node_destroy(n);
        KILN_TRY(st);
    }
    return KILN_OK;
}

static kiln_status constants_visit(kiln_graph *g, int depth, void *ctx) { return kiln_pass_constants(ctx, g); }

kiln_status kiln_model_freeze(kiln_model *m, const kiln_freeze_options *o, kiln_freeze_report *report) {
    kiln_freeze_report *own = NULL;
    if (!report) {
        KILN_TRY(kiln_freeze_report_create(&own));
        report = own;
    }
    kiln_freeze_ctx c = {.m = m, .rep = report};
    c.opset = kiln_model_opset(m, "");
    c.unroll_limit = o && o->unroll_limit ? o->unroll_limit : 64;
    c.unroll_node_limit = o && o->unroll_node_limit > 0 ? o->unroll_node_limit : 4096;
    c.fold_limit = o && o->fold_limit ? o->fold_limit : (1 << 20);
    bool prune_inputs = o && o->prune_dead_inputs;
    kiln_status st = count_all(report, m->graph, false);
    /* Local functions first, so folding sees through them. */
    if (st == KILN_OK && m->n_functions && !(o && o->keep_functions)) {
        kiln_inline_stats is = {0};
        size_t before = m->n_functions;
        st = kiln_model_inline_functions(m, &is, &report->text_functions);
        report->calls_inlined += is.calls;
        for (size_t i = 0; st == KILN_OK && i < m->n_functions; i++) {
            char label[512];
            kiln_sbuf_printf(&report->functions_kept, "%s", report->n_functions_kept ? ", " : "");
            kiln_sbuf_json_string(&report->functions_kept, kiln_function_label(m->functions[i], label, sizeof label));
            report->n_functions_kept++;
        }
        if (st == KILN_OK && before > m->n_functions)
            kiln_sbuf_printf(&report->text_functions, "  local functions dropped: %zu of %zu\n",
                             before - m->n_functions, before);
    }
    if (st == KILN_OK)
        st = kiln_nameset_collect(&c.names, m->graph);
    report->bytes_before = 0;
    if (st == KILN_OK)
        st = kiln_graph_walk(m->graph, init_bytes, &report->bytes_before);
    if (st == KILN_OK)
        st = kiln_graph_walk(m->graph, constants_visit, &c);
    kiln_scope top = {.g = m->graph};
    for (int round = 0; st == KILN_OK && round < 16; round++) {
        c.changed = false;
        KILN_CHECK(st, kiln_pass_shapes(&c, &top), out);
        KILN_CHECK(st, kiln_pass_fold(&c, &top), out);
        KILN_CHECK(st, kiln_pass_control(&c, &top), out);
        KILN_CHECK(st, kiln_pass_simplify(&c, &top), out);
        KILN_CHECK(st, kiln_pass_prune(&c, m->graph, true, prune_inputs), out);
        if (!c.changed)
            break;
    }
    /* a last shapes run refines the outputs' declared shapes */
    if (st == KILN_OK)
        st = kiln_pass_shapes(&c, &top);
    /* the last step: a conversion to another opset */
    if (st == KILN_OK && o && o->target_opset)
        st = kiln_model_convert(m, o->target_opset, report);
    if (st == KILN_OK && m->ir_version < 4)
        st = kiln_graph_walk(m->graph, inits_to_constants, NULL);
    if (st == KILN_OK)
        st = count_all(report, m->graph, true);
    report->bytes_after = 0;
    if (st == KILN_OK)
        st = kiln_graph_walk(m->graph, init_bytes, &report->bytes_after);
out:
    kiln_shapes_free(&c);
    kiln_nameset_free(&c.names, NULL);
    kiln_freeze_report_destroy(own);
    return st;
}
