/* kiln_model_freeze: binding inputs, fixing dimensions, the pass pipeline,
 * the report. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/sha256.h"
#include "passes/inline_functions.h"
#include "passes/passes.h"

#ifndef KILN_VERSION_STRING
#define KILN_VERSION_STRING "unknown"
#endif

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
    free(r->provenance.data);
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

/* ---- provenance: what made a frozen model, in its metadata_props ----
 *
 * kiln.version         kiln's version
 * kiln.source.file     the source model's file name (no folder)
 * kiln.source.sha256   SHA-256 of the source model file's bytes
 * kiln.input.NAME      a bound input: "float32[2,3] sha256=HEX" and, for at
 *                      most 16 elements, " value=[[1, 2, 3], [4, 5, 6]]";
 *                      the hash is over the tensor's C-order little-endian
 *                      bytes (strings: each one's 8-byte length, then bytes)
 * kiln.dim.SYMBOL      a fixed dimension: "N"
 * kiln.shape.INPUT     a fixed shape: "[d0,d1,...]"
 * kiln.limits          "unroll_limit=64 unroll_node_limit=4096 ..."
 * Nothing depends on the time or the folder: the same model frozen with the
 * same values gets the same entries. */

static void prov_add(kiln_freeze_report *r, const char *key, const char *value) {
    if (!r)
        return;
    /* a key given again (a dim fixed twice) keeps its place, takes the new value */
    kiln_sbuf keep = {0};
    for (size_t o = 0; r->provenance.data && o < r->provenance.len;) {
        const char *k = r->provenance.data + o;
        const char *v = k + strlen(k) + 1;
        size_t next = (size_t)(v - r->provenance.data) + strlen(v) + 1;
        kiln_sbuf_append(&keep, k, strlen(k) + 1);
        if (strcmp(k, key) == 0)
            kiln_sbuf_append(&keep, value, strlen(value) + 1);
        else
            kiln_sbuf_append(&keep, v, strlen(v) + 1);
        o = next;
    }
    bool had = false;
    for (size_t o = 0; keep.data && o < keep.len && !had;) {
        const char *k = keep.data + o;
        const char *v = k + strlen(k) + 1;
        had = strcmp(k, key) == 0;
        o = (size_t)(v - keep.data) + strlen(v) + 1;
    }
    if (!had) {
        kiln_sbuf_append(&keep, key, strlen(key) + 1);
        kiln_sbuf_append(&keep, value, strlen(value) + 1);
    }
    free(r->provenance.data);
    r->provenance = keep;
}

static void literal_elem(kiln_sbuf *b, const kiln_tensor *t, int64_t i) {
    const void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT: kiln_sbuf_printf(b, "%.9g", (double)((const float *)d)[i]); break;
    case KILN_DTYPE_DOUBLE: kiln_sbuf_printf(b, "%.17g", ((const double *)d)[i]); break;
    case KILN_DTYPE_FLOAT16: kiln_sbuf_printf(b, "%.5g", (double)kiln_half_to_float(((const uint16_t *)d)[i])); break;
    case KILN_DTYPE_BFLOAT16: kiln_sbuf_printf(b, "%.4g", (double)kiln_bf16_to_float(((const uint16_t *)d)[i])); break;
    case KILN_DTYPE_INT8: kiln_sbuf_printf(b, "%d", ((const int8_t *)d)[i]); break;
    case KILN_DTYPE_UINT8: kiln_sbuf_printf(b, "%u", ((const uint8_t *)d)[i]); break;
    case KILN_DTYPE_INT16: kiln_sbuf_printf(b, "%d", ((const int16_t *)d)[i]); break;
    case KILN_DTYPE_UINT16: kiln_sbuf_printf(b, "%u", ((const uint16_t *)d)[i]); break;
    case KILN_DTYPE_INT32: kiln_sbuf_printf(b, "%d", ((const int32_t *)d)[i]); break;
    case KILN_DTYPE_UINT32: kiln_sbuf_printf(b, "%u", ((const uint32_t *)d)[i]); break;
    case KILN_DTYPE_INT64: kiln_sbuf_printf(b, "%lld", (long long)((const int64_t *)d)[i]); break;
    case KILN_DTYPE_UINT64: kiln_sbuf_printf(b, "%llu", (unsigned long long)((const uint64_t *)d)[i]); break;
    case KILN_DTYPE_BOOL: kiln_sbuf_printf(b, "%s", ((const uint8_t *)d)[i] ? "true" : "false"); break;
    case KILN_DTYPE_STRING: {
        const kiln_string *s = &((const kiln_string *)d)[i];
        char *z = kiln_strndup(s->data ? s->data : "", s->len);
        kiln_sbuf_json_string(b, z ? z : "");
        free(z);
        break;
    }
    default: kiln_sbuf_printf(b, "?"); break;
    }
}

static void literal_dim(kiln_sbuf *b, const kiln_tensor *t, int axis, int64_t *at) {
    if (axis == t->rank) {
        literal_elem(b, t, (*at)++);
        return;
    }
    kiln_sbuf_printf(b, "[");
    for (int64_t i = 0; i < t->dims[axis]; i++) {
        if (i)
            kiln_sbuf_printf(b, ", ");
        literal_dim(b, t, axis + 1, at);
    }
    kiln_sbuf_printf(b, "]");
}

static bool literal_ok(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_DOUBLE: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT8: case KILN_DTYPE_UINT8: case KILN_DTYPE_INT16: case KILN_DTYPE_UINT16:
    case KILN_DTYPE_INT32: case KILN_DTYPE_UINT32: case KILN_DTYPE_INT64: case KILN_DTYPE_UINT64:
    case KILN_DTYPE_BOOL: case KILN_DTYPE_STRING: return true;
    default: return false;
    }
}

static void prov_input(kiln_freeze_report *r, const char *name, const kiln_tensor *v) {
    if (!r)
        return;
    kiln_sha256 h;
    kiln_sha256_init(&h);
    if (v->dtype == KILN_DTYPE_STRING) {
        const kiln_string *s = v->data;
        for (int64_t i = 0; i < v->numel; i++) {
            uint8_t len[8];
            for (int k = 0; k < 8; k++)
                len[k] = (uint8_t)((uint64_t)s[i].len >> (8 * k));
            kiln_sha256_update(&h, len, 8);
            if (s[i].len)
                kiln_sha256_update(&h, s[i].data, s[i].len);
        }
    } else if (v->nbytes) {
        kiln_sha256_update(&h, v->data, v->nbytes);
    }
    uint8_t d[32];
    char hex[65], shape[256];
    kiln_sha256_final(&h, d);
    kiln_sha256_hex(d, hex);
    kiln_dims_str(v->rank, v->dims, shape, sizeof shape);
    kiln_sbuf b = {0}, key = {0};
    kiln_sbuf_printf(&b, "%s%s sha256=%s", kiln_dtype_name(v->dtype), shape, hex);
    if (v->numel <= 16 && literal_ok(v->dtype)) {
        int64_t at = 0;
        kiln_sbuf_printf(&b, " value=");
        literal_dim(&b, v, 0, &at);
    }
    kiln_sbuf_printf(&key, "kiln.input.%s", name);
    if (b.data && key.data && !b.failed && !key.failed)
        prov_add(r, key.data, b.data);
    free(b.data);
    free(key.data);
}

static kiln_status set_meta(kiln_model *m, const char *key, const char *value) {
    for (size_t i = 0; i < m->n_meta; i++)
        if (m->meta_keys[i].data && strcmp(m->meta_keys[i].data, key) == 0) {
            char *v = kiln_strdup(value);
            if (!v)
                return KILN_ERR_NOMEM;
            free(m->meta_values[i].data);
            m->meta_values[i] = (kiln_string){strlen(v), v};
            return KILN_OK;
        }
    kiln_string *k = kiln_realloc(m->meta_keys, (m->n_meta + 1) * sizeof *k);
    if (!k)
        return KILN_ERR_NOMEM;
    m->meta_keys = k;
    kiln_string *v = kiln_realloc(m->meta_values, (m->n_meta + 1) * sizeof *v);
    if (!v)
        return KILN_ERR_NOMEM;
    m->meta_values = v;
    char *kd = kiln_strdup(key), *vd = kiln_strdup(value);
    if (!kd || !vd) {
        free(kd);
        free(vd);
        return KILN_ERR_NOMEM;
    }
    m->meta_keys[m->n_meta] = (kiln_string){strlen(kd), kd};
    m->meta_values[m->n_meta] = (kiln_string){strlen(vd), vd};
    m->n_meta++;
    return KILN_OK;
}

/* Replaces the model's kiln.* entries (from an earlier freeze: the source
 * hash links to it) by this freeze's. */
static kiln_status write_provenance(kiln_model *m, const kiln_freeze_ctx *c, const kiln_freeze_options *o,
                                    const kiln_freeze_report *r) {
    size_t kept = 0;
    for (size_t i = 0; i < m->n_meta; i++) {
        if (m->meta_keys[i].data && strncmp(m->meta_keys[i].data, "kiln.", 5) == 0) {
            free(m->meta_keys[i].data);
            free(m->meta_values[i].data);
            continue;
        }
        m->meta_keys[kept] = m->meta_keys[i];
        m->meta_values[kept++] = m->meta_values[i];
    }
    m->n_meta = kept;
    KILN_TRY(set_meta(m, "kiln.version", KILN_VERSION_STRING));
    if (m->path) {
        const char *base = strrchr(m->path, '/') ? strrchr(m->path, '/') + 1 : m->path;
        char hex[65];
        KILN_TRY(set_meta(m, "kiln.source.file", base));
        /* a model made in memory, or whose file is gone, has no hash */
        if (kiln_sha256_file(m->path, hex) == KILN_OK)
            KILN_TRY(set_meta(m, "kiln.source.sha256", hex));
    }
    for (size_t off = 0; r->provenance.data && off < r->provenance.len;) {
        const char *k = r->provenance.data + off;
        const char *v = k + strlen(k) + 1;
        KILN_TRY(set_meta(m, k, v));
        off = (size_t)(v - r->provenance.data) + strlen(v) + 1;
    }
    char lim[512];
    const kiln_limits *l = &m->limits;
    snprintf(lim, sizeof lim,
             "unroll_limit=%lld unroll_node_limit=%lld fold_limit=%lld prune_dead_inputs=%d keep_functions=%d "
             "max_tensor_bytes=%llu max_rank=%d max_nodes=%llu max_nesting=%d max_string_bytes=%llu",
             (long long)c->unroll_limit, (long long)c->unroll_node_limit, (long long)c->fold_limit,
             o && o->prune_dead_inputs ? 1 : 0, o && o->keep_functions ? 1 : 0,
             (unsigned long long)l->max_tensor_bytes, l->max_rank, (unsigned long long)l->max_nodes, l->max_nesting,
             (unsigned long long)l->max_string_bytes);
    return set_meta(m, "kiln.limits", lim);
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
            f->hits++; /* "8*h8" names h8: --dim h8=4 fixes it (torch.export's derived dims) */
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
        char key[600], val[32];
        snprintf(key, sizeof key, "kiln.dim.%s", symbol);
        snprintf(val, sizeof val, "%lld", (long long)value);
        prov_add(r, key, val);
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
    if (r) {
        char key[600], val[256];
        snprintf(key, sizeof key, "kiln.shape.%s", input);
        kiln_dims_str(rank, dims, val, sizeof val);
        prov_add(r, key, val);
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
    if (v->kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s': %s cannot be bound (initializers are tensors)", name,
                         kiln_value_kind_a(v->kind));
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
        prov_input(r, name, v);
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
    /* the graph checks the planner makes, before anything is changed */
    kiln_status vst = kiln_model_validate(m, NULL);
    if (vst != KILN_OK) {
        kiln_freeze_report_destroy(own);
        return kiln_fail_prefix(vst, "the model is invalid: ");
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
    /* and on the result: a pass that broke the graph is a bug, and such a
     * model is never handed back to be written */
    if (st == KILN_OK && (st = kiln_model_validate(m, NULL)) != KILN_OK)
        kiln_fail_prefix(st, "internal error: freezing produced an invalid model (please report it): ");
    if (st == KILN_OK)
        st = write_provenance(m, &c, o, report);
out:
    kiln_shapes_free(&c);
    kiln_nameset_free(&c.names, NULL);
    kiln_freeze_report_destroy(own);
    return st;
}
