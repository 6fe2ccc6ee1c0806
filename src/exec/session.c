/* Sessions and frames: feeding inputs, running nodes in plan order, dropping
 * values at their last use, the op-facing context functions. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec/exec.h"
#include "passes/passes.h"
#include "passes/edit.h"
#include "passes/inline_functions.h"

void kiln_plans_free(kiln_plan *p);
kiln_status kiln_plan_main(kiln_session_core *core, const kiln_graph *g);


/* ---- op context ---- */

bool kiln_op_out_wanted(const kiln_op_ctx *c, size_t i) {
    return i < c->n_out && i < c->node->n_outputs && c->node->outputs[i][0];
}

/* A shaped shell within the session's size limit; `what` names it ("output
 * %zu", with `idx`), formatted only when failing. */
static kiln_status new_shell(const kiln_op_ctx *c, const char *what_fmt, size_t idx, kiln_dtype dtype, int rank,
                             const int64_t *dims, kiln_tensor **out) {
    char what[48];
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, dtype, rank, dims);
    if (st != KILN_OK) {
        free(t);
        snprintf(what, sizeof what, what_fmt, idx);
        return kiln_fail_prefix(st, "%s: ", what);
    }
    if (t->nbytes > c->frame->core->max_tensor_bytes) {
        char d[256];
        snprintf(what, sizeof what, what_fmt, idx);
        kiln_status st2 = kiln_fail(KILN_ERR_LIMIT, "%s would be %s %s (%zu bytes), over the session's limit of %zu bytes",
                                    what, kiln_dtype_name(dtype), kiln_dims_str(rank, dims, d, sizeof d), t->nbytes,
                                    c->frame->core->max_tensor_bytes);
        kiln_tensor_destroy(t);
        return st2;
    }
    *out = t;
    return KILN_OK;
}

static kiln_status new_output(kiln_op_ctx *c, size_t i, kiln_dtype dtype, int rank, const int64_t *dims,
                              kiln_tensor **out) {
    if (i >= c->n_out)
        return kiln_fail(KILN_ERR_INVALID, "operator produced output %zu but the node has %zu outputs", i, c->n_out);
    if (c->out[i]) {
        kiln_tensor_destroy(c->out[i]);
        c->out[i] = NULL;
    }
    kiln_tensor *t;
    KILN_TRY(new_shell(c, "output %zu", i, dtype, rank, dims, &t));
    c->out[i] = t;
    *out = t;
    return KILN_OK;
}

static kiln_status alloc_data(const kiln_op_ctx *c, kiln_tensor *t) {
    if (t->dtype == KILN_DTYPE_STRING)
        return kiln_tensor_alloc_data(t);
    kiln_buffer *b = kiln_arena_alloc(c->frame->core->arena, t->nbytes);
    if (!b)
        return KILN_ERR_NOMEM;
    t->buf = b;
    t->data = b->ptr;
    return KILN_OK;
}

kiln_status kiln_op_output(kiln_op_ctx *c, size_t i, kiln_dtype dtype, int rank, const int64_t *dims,
                           kiln_tensor **out) {
    kiln_tensor *t;
    KILN_TRY(new_output(c, i, dtype, rank, dims, &t));
    *out = t;
    return alloc_data(c, t);
}

kiln_status kiln_op_new_tensor(kiln_op_ctx *c, kiln_dtype dtype, int rank, const int64_t *dims, kiln_tensor **out) {
    *out = NULL;
    kiln_tensor *t;
    KILN_TRY(new_shell(c, "a sequence element", 0, dtype, rank, dims, &t));
    kiln_status st = alloc_data(c, t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

/* ---- sequences and optionals ---- */

static kiln_status put_output(kiln_op_ctx *c, size_t i, kiln_tensor *v) {
    if (!v)
        return KILN_ERR_NOMEM;
    return kiln_op_output_take(c, i, v);
}

kiln_status kiln_op_output_seq(kiln_op_ctx *c, size_t i, kiln_dtype elem, kiln_tensor **seq) {
    *seq = NULL;
    kiln_tensor *v = kiln_value_new(KILN_VALUE_SEQUENCE, KILN_VALUE_TENSOR, elem);
    KILN_TRY(put_output(c, i, v));
    *seq = v;
    return KILN_OK;
}

kiln_status kiln_op_output_seq_from(kiln_op_ctx *c, size_t i, size_t in_idx, kiln_tensor **seq) {
    *seq = NULL;
    const kiln_tensor *src = kiln_op_in(c, in_idx);
    if (!src || src->kind != KILN_VALUE_SEQUENCE)
        return kiln_fail(KILN_ERR_INVALID, "input %zu is not a sequence", in_idx);
    kiln_tensor *o;
    KILN_TRY(kiln_op_output_seq(c, i, src->elem_dtype, &o));
    o->elem_kind = src->elem_kind;
    bool alone = c->in_dying[in_idx];
    for (size_t k = 0; alone && k < c->n_in; k++)
        if (k != in_idx && c->in[k] == src)
            alone = false;
    if (alone) {
        /* the frame owns src and drops it after this node: nothing else sees it */
        kiln_value_move_items(o, (kiln_tensor *)src);
    } else {
        for (size_t k = 0; k < src->n_items; k++) {
            kiln_tensor *e;
            KILN_TRY(kiln_tensor_share(src->items[k], &e));
            KILN_TRY(kiln_value_push(o, e));
        }
    }
    *seq = o;
    return KILN_OK;
}

kiln_status kiln_op_seq_push(kiln_tensor *seq, kiln_tensor *item) {
    if (!item)
        return KILN_ERR_NOMEM;
    if (item->kind != KILN_VALUE_TENSOR) {
        char b[128];
        kiln_status st = kiln_fail(KILN_ERR_INVALID, "a sequence element must be a tensor, got %s",
                                   kiln_value_str(item, b, sizeof b));
        kiln_tensor_destroy(item);
        return st;
    }
    if (seq->elem_dtype != KILN_DTYPE_UNDEFINED && item->dtype != seq->elem_dtype) {
        kiln_status st = kiln_fail(KILN_ERR_INVALID, "a sequence of %s cannot take a %s tensor",
                                   kiln_dtype_name(seq->elem_dtype), kiln_dtype_name(item->dtype));
        kiln_tensor_destroy(item);
        return st;
    }
    return kiln_value_push(seq, item);
}

kiln_status kiln_op_output_optional(kiln_op_ctx *c, size_t i, const kiln_tensor *value, kiln_value_kind elem_kind,
                                    kiln_dtype elem) {
    if (value && value->kind != KILN_VALUE_TENSOR && value->kind != KILN_VALUE_SEQUENCE) {
        char b[128];
        return kiln_fail(KILN_ERR_INVALID, "an optional holds a tensor or a sequence, not %s",
                         kiln_value_str(value, b, sizeof b));
    }
    kiln_tensor *o = kiln_value_new(KILN_VALUE_OPTIONAL, elem_kind, elem);
    KILN_TRY(put_output(c, i, o));
    if (!value)
        return KILN_OK;
    kiln_tensor *v;
    KILN_TRY(kiln_tensor_share(value, &v));
    return kiln_value_push(o, v);
}

kiln_status kiln_op_output_share(kiln_op_ctx *c, size_t i, const kiln_tensor *value) {
    kiln_tensor *v;
    KILN_TRY(kiln_tensor_share(value, &v));
    return kiln_op_output_take(c, i, v);
}

kiln_status kiln_op_output_reuse(kiln_op_ctx *c, size_t i, size_t in_idx, kiln_dtype dtype, int rank,
                                 const int64_t *dims, kiln_tensor **out) {
    const kiln_tensor *src = kiln_op_in(c, in_idx);
    if (src && c->in_dying[in_idx] && src->buf && kiln_buffer_sole(src->buf) && src->dtype != KILN_DTYPE_STRING &&
        dtype != KILN_DTYPE_STRING && src->buf->release != NULL && src->data == src->buf->ptr) {
        kiln_tensor *t;
        KILN_TRY(new_output(c, i, dtype, rank, dims, &t));
        /* in place only element for element: the same count and width (an
         * int64 input of 8 elements and a bool output of 64 share a byte
         * size, but the kernel would overwrite inputs it has yet to read) */
        if (t->nbytes == src->nbytes && t->numel == src->numel &&
            kiln_dtype_size(t->dtype) == kiln_dtype_size(src->dtype) &&
            src->buf->owner == (void *)c->frame->core->arena) {
            kiln_tensor_set_buffer(t, src->buf, src->data);
            *out = t;
            return KILN_OK;
        }
    }
    return kiln_op_output(c, i, dtype, rank, dims, out);
}

kiln_status kiln_op_output_alias(kiln_op_ctx *c, size_t i, const kiln_tensor *src, int rank, const int64_t *dims) {
    kiln_tensor *t;
    KILN_TRY(new_output(c, i, src->dtype, rank, dims, &t));
    if (t->numel != src->numel)
        return kiln_fail(KILN_ERR_INVALID, "cannot view %lld elements as %lld", (long long)src->numel,
                         (long long)t->numel);
    kiln_tensor_set_buffer(t, src->buf, src->data);
    return KILN_OK;
}

kiln_status kiln_op_output_take(kiln_op_ctx *c, size_t i, kiln_tensor *t) {
    if (i >= c->n_out) {
        kiln_tensor_destroy(t);
        return kiln_fail(KILN_ERR_INVALID, "operator produced output %zu but the node has %zu outputs", i, c->n_out);
    }
    kiln_tensor_destroy(c->out[i]);
    c->out[i] = t;
    return KILN_OK;
}

kiln_status kiln_op_scratch(kiln_op_ctx *c, size_t bytes, void **out) {
    *out = NULL;
    if (bytes > c->frame->core->max_tensor_bytes)
        return kiln_fail(KILN_ERR_LIMIT, "scratch memory of %zu bytes is over the session's limit of %zu bytes", bytes,
                         c->frame->core->max_tensor_bytes);
    for (int i = 0; i < 4; i++)
        if (!c->scratch[i]) {
            kiln_buffer *b = kiln_arena_alloc(c->frame->core->arena, bytes ? bytes : 1);
            if (!b)
                return KILN_ERR_NOMEM;
            c->scratch[i] = b;
            *out = b->ptr;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_INVALID, "internal: an operator asked for more than 4 scratch blocks");
}

void kiln_parallel_for(kiln_op_ctx *c, size_t n, size_t grain, kiln_range_fn fn, void *arg) {
    kiln_threads_run(c->frame->core->threads, n, grain, fn, arg);
}

int kiln_op_threads(const kiln_op_ctx *c) { return kiln_threads_count(c->frame->core->threads); }

kiln_threads *kiln_op_pool(const kiln_op_ctx *c) { return c->frame->core->threads; }

kiln_status kiln_op_run_subgraph(kiln_op_ctx *c, const kiln_graph *g, size_t n_in, const kiln_tensor *const *in,
                                 size_t n_out, kiln_tensor **out) {
    const kiln_plan *p;
    KILN_TRY(kiln_plan_get(c->frame->core, g, c->frame->plan, &p));
    return kiln_frame_run(c->frame->core, p, c->frame, n_in, in, NULL, n_out, out);
}

kiln_status kiln_op_run_subgraph_give(kiln_op_ctx *c, const kiln_graph *g, size_t n_in, kiln_tensor **in,
                                      const bool *give, size_t n_out, kiln_tensor **out) {
    const kiln_plan *p;
    kiln_status st = kiln_plan_get(c->frame->core, g, c->frame->plan, &p);
    if (st != KILN_OK) {
        for (size_t i = 0; i < n_in; i++)
            if (give[i]) {
                kiln_tensor_destroy(in[i]);
                in[i] = NULL;
            }
        for (size_t i = 0; i < n_out; i++)
            out[i] = NULL;
        return st;
    }
    st = kiln_frame_run(c->frame->core, p, c->frame, n_in, (const kiln_tensor *const *)in, give, n_out, out);
    for (size_t i = 0; i < n_in; i++)
        if (give[i])
            in[i] = NULL;
    return st;
}

/* ---- profiling ---- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void prof_free_records(kiln_prof *p) {
    for (size_t i = 0; i < p->n_recs; i++)
        free(p->recs[i].name);
    free(p->recs);
    free(p->plans);
    p->recs = NULL;
    p->plans = NULL;
    p->n_recs = p->cap_recs = p->n_plans = p->cap_plans = 0;
}

/* Finds (or makes, on the plan's first profiled run) the records of f's
 * plan and sets f->prof_base. A subgraph's records are named after the
 * enclosing node's record. */
static kiln_status prof_attach(kiln_frame *f) {
    kiln_prof *p = &f->core->prof;
    for (size_t i = 0; i < p->n_plans; i++)
        if (p->plans[i].plan == f->plan) {
            f->prof_base = p->plans[i].base;
            f->prof = true;
            return KILN_OK;
        }
    const kiln_plan *plan = f->plan;
    const kiln_prof_rec *outer = f->parent ? &p->recs[f->parent->prof_base + f->parent->prof_cur] : NULL;
    if (p->n_plans == p->cap_plans) {
        size_t cap = p->cap_plans ? 2 * p->cap_plans : 8;
        kiln_prof_plan *np = kiln_realloc(p->plans, cap * sizeof *np);
        if (!np)
            return KILN_ERR_NOMEM;
        p->plans = np;
        p->cap_plans = cap;
    }
    if (p->cap_recs - p->n_recs < plan->n_nodes) {
        size_t cap = p->cap_recs ? 2 * p->cap_recs : 64;
        while (cap - p->n_recs < plan->n_nodes)
            cap *= 2;
        kiln_prof_rec *nr = kiln_realloc(p->recs, cap * sizeof *nr);
        if (!nr)
            return KILN_ERR_NOMEM;
        p->recs = nr;
        p->cap_recs = cap;
        if (outer) /* moved with the array */
            outer = &p->recs[f->parent->prof_base + f->parent->prof_cur];
    }
    size_t base = p->n_recs;
    for (size_t i = 0; i < plan->n_nodes; i++) {
        const kiln_plan_node *pn = &plan->nodes[i];
        const kiln_node *n = pn->node;
        kiln_prof_rec *r = &p->recs[base + i];
        memset(r, 0, sizeof *r);
        kiln_sbuf b = {0};
        if (outer)
            kiln_sbuf_printf(&b, "%s/", outer->name);
        if (n->name && n->name[0])
            kiln_sbuf_printf(&b, "%s", n->name);
        else
            kiln_sbuf_printf(&b, "%s#%zu", n->op_type, i); /* unnamed: its place in the plan */
        if (b.failed || !b.data) {
            free(b.data);
            for (size_t k = base; k < base + i; k++)
                free(p->recs[k].name);
            return KILN_ERR_NOMEM;
        }
        r->name = b.data;
        r->op = n->op_type;
        r->domain = n->domain ? n->domain : "";
        if (pn->act.on)
            r->fused = pn->act.lo == 0.0 && pn->act.hi == INFINITY && pn->act.dtype == KILN_DTYPE_UNDEFINED ? "Relu"
                                                                                                           : "Clip";
        r->depth = outer ? outer->depth + 1 : 0;
        r->kind = KILN_VALUE_UNKNOWN;
        snprintf(r->shape, sizeof r->shape, "-");
    }
    p->n_recs += plan->n_nodes;
    p->plans[p->n_plans++] = (kiln_prof_plan){.plan = plan, .base = base};
    f->prof_base = base;
    f->prof = true;
    return KILN_OK;
}

static void prof_note_shape(kiln_prof_rec *r, const kiln_tensor *t) {
    kiln_value_kind kind = t ? t->kind : KILN_VALUE_UNKNOWN;
    bool same = kind == r->kind;
    if (same && kind == KILN_VALUE_TENSOR)
        same = t->rank == r->rank && memcmp(t->dims, r->dims, (size_t)t->rank * sizeof *t->dims) == 0;
    if (same && r->calls > 1)
        return;
    if (!same && r->calls > 1)
        r->varies = true;
    r->kind = kind;
    r->rank = 0;
    if (kind == KILN_VALUE_TENSOR) {
        r->rank = t->rank;
        memcpy(r->dims, t->dims, (size_t)t->rank * sizeof *t->dims);
        kiln_dims_str(t->rank, t->dims, r->shape, sizeof r->shape);
    } else if (t) {
        kiln_value_str(t, r->shape, sizeof r->shape);
    } else {
        snprintf(r->shape, sizeof r->shape, "-");
    }
}

/* pn->op->exec timed into node i's record. */
static kiln_status exec_profiled(kiln_frame *f, size_t i, const kiln_plan_node *pn, kiln_op_ctx *ctx) {
    f->prof_cur = i;
    uint64_t t0 = now_ns();
    kiln_status st = pn->op->exec(ctx);
    uint64_t t1 = now_ns();
    /* after exec: a subgraph run may have moved the records */
    kiln_prof_rec *r = &f->core->prof.recs[f->prof_base + i];
    r->ns += t1 - t0;
    r->calls++;
    prof_note_shape(r, ctx->n_out ? ctx->out[0] : NULL);
    return st;
}

/* ---- frames ---- */

static const kiln_tensor *lookup_outer(const kiln_frame *f, const char *name) {
    for (; f; f = f->parent) {
        int v = kiln_name_map_get(f->plan->names, name);
        if (v >= 0 && f->vals[v])
            return f->vals[v];
    }
    return NULL;
}

kiln_status kiln_frame_run(kiln_session_core *core, const kiln_plan *plan, kiln_frame *parent, size_t n_in,
                           const kiln_tensor *const *in, const bool *own_in, size_t n_out, kiln_tensor **out) {
    kiln_status st = KILN_OK;
    kiln_frame f = {.core = core, .plan = plan, .parent = parent};
    size_t max_io = 1;
    for (size_t i = 0; i < plan->n_nodes; i++) {
        const kiln_node *n = plan->nodes[i].node;
        if (n->n_inputs > max_io)
            max_io = n->n_inputs;
        if (n->n_outputs > max_io)
            max_io = n->n_outputs;
    }
    f.vals = kiln_calloc(plan->n_values + 1, sizeof *f.vals);
    f.owned = kiln_calloc(plan->n_values + 1, sizeof *f.owned);
    const kiln_tensor **ins = kiln_calloc(max_io, sizeof *ins);
    bool *dying = kiln_calloc(max_io, sizeof *dying);
    kiln_tensor **outs = kiln_calloc(max_io, sizeof *outs);
    for (size_t i = 0; i < n_out; i++)
        out[i] = NULL;
    if (!f.vals || !f.owned || !ins || !dying || !outs) {
        st = KILN_ERR_NOMEM;
        for (size_t i = 0; own_in && i < n_in; i++)
            if (own_in[i])
                kiln_tensor_destroy((kiln_tensor *)in[i]);
        goto done;
    }
    for (size_t i = 0; i < plan->n_consts; i++)
        f.vals[plan->const_ids[i]] = (kiln_tensor *)plan->const_vals[i];
    for (size_t i = 0; i < n_in; i++) {
        bool own = own_in && own_in[i] && in[i];
        if (i >= plan->n_inputs) {
            if (own)
                kiln_tensor_destroy((kiln_tensor *)in[i]);
            continue;
        }
        if (in[i]) {
            f.vals[plan->input_ids[i]] = (kiln_tensor *)in[i];
            f.owned[plan->input_ids[i]] = own;
        }
    }
    for (size_t i = 0; i < plan->n_outer; i++) {
        int v = plan->outer_ids[i];
        f.vals[v] = (kiln_tensor *)lookup_outer(parent, plan->value_names[v]);
    }
    if (core->prof.on && (!parent || parent->prof))
        KILN_CHECK(st, prof_attach(&f), done);
    for (size_t i = 0; i < plan->n_nodes; i++) {
        const kiln_plan_node *pn = &plan->nodes[i];
        const kiln_node *n = pn->node;
        for (size_t k = 0; k < n->n_inputs; k++) {
            int v = pn->in_ids[k];
            ins[k] = v >= 0 ? f.vals[v] : NULL;
            dying[k] = false;
            if (v >= 0 && !ins[k]) {
                st = kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): input '%s' has no value (a graph input that was not fed?)",
                               n->name, n->op_type, n->inputs[k]);
                goto done;
            }
            for (size_t d = 0; v >= 0 && d < pn->n_free; d++)
                if (pn->free_ids[d] == v && f.owned[v])
                    dying[k] = true;
        }
        /* sequences and optionals reach only the operators made for them */
        for (size_t k = 0; !pn->values && k < n->n_inputs; k++)
            if (ins[k] && ins[k]->kind != KILN_VALUE_TENSOR) {
                char b[128];
                st = kiln_fail(KILN_ERR_INVALID, "node '%s' (%s): input '%s' is %s, but %s takes tensors", n->name,
                               n->op_type, n->inputs[k], kiln_value_str(ins[k], b, sizeof b), n->op_type);
                goto done;
            }
        for (size_t k = 0; k < n->n_outputs; k++)
            outs[k] = NULL;
        void *scratch[4] = {0};
        kiln_op_ctx ctx = {.node = n,
                           .opset = pn->opset,
                           .n_in = n->n_inputs,
                           .n_out = n->n_outputs,
                           .in = ins,
                           .in_dying = dying,
                           .out = outs,
                           .frame = &f,
                           .act = pn->act,
                           .prep = pn->prep,
                           .scratch = scratch};
        kiln_attr_mismatch_take();
        if (__builtin_expect(f.prof, 0))
            st = exec_profiled(&f, i, pn, &ctx);
        else
            st = pn->op->exec(&ctx);
        for (int k = 0; k < 4; k++)
            if (scratch[k])
                kiln_buffer_unref(scratch[k]);
        const char *mismatch = kiln_attr_mismatch_take();
        if (st == KILN_OK && mismatch)
            st = kiln_fail(KILN_ERR_INVALID, "%s", mismatch);
        if (st == KILN_OK)
            for (size_t k = 0; k < n->n_outputs; k++)
                if (pn->out_ids[k] >= 0 && !outs[k]) {
                    st = kiln_fail(KILN_ERR_RUNTIME, "output '%s' was not produced", n->outputs[k]);
                    break;
                }
        if (st != KILN_OK) {
            for (size_t k = 0; k < n->n_outputs; k++)
                kiln_tensor_destroy(outs[k]);
            const char *msg = kiln_last_error();
            if (strncmp(msg, "node '", 6) != 0)
                kiln_fail_prefix(st, "node '%s' (%s): ", n->name, n->op_type);
            if (n->origin)
                kiln_fail_prefix(st, "in %s: ", n->origin);
            goto done;
        }
        for (size_t k = 0; k < n->n_outputs; k++) {
            int v = pn->out_ids[k];
            if (v < 0) {
                kiln_tensor_destroy(outs[k]);
                continue;
            }
            f.vals[v] = outs[k];
            f.owned[v] = outs[k] != NULL;
        }
        for (size_t d = 0; d < pn->n_free; d++) {
            int v = pn->free_ids[d];
            if (f.owned[v]) {
                kiln_tensor_destroy(f.vals[v]);
                f.owned[v] = false;
            }
            f.vals[v] = NULL;
        }
    }
    for (size_t i = 0; i < n_out && i < plan->n_outputs; i++) {
        const kiln_tensor *t = f.vals[plan->output_ids[i]];
        if (!t) {
            st = kiln_fail(KILN_ERR_RUNTIME, "graph output '%s' was not computed",
                           plan->value_names[plan->output_ids[i]]);
            goto done;
        }
        int v = plan->output_ids[i];
        if (f.owned[v]) { /* the frame is done with it: handed over, not copied */
            out[i] = f.vals[v];
            f.owned[v] = false;
            continue;
        }
        KILN_CHECK(st, kiln_tensor_share(t, &out[i]), done);
    }
done:
    if (st != KILN_OK)
        for (size_t i = 0; i < n_out; i++) {
            kiln_tensor_destroy(out[i]);
            out[i] = NULL;
        }
    for (size_t v = 0; f.vals && f.owned && v < plan->n_values; v++)
        if (f.owned[v])
            kiln_tensor_destroy(f.vals[v]);
    free(f.vals);
    free(f.owned);
    free(ins);
    free(dying);
    free(outs);
    return st;
}

/* ---- public API ---- */

kiln_status kiln_session_create(const kiln_model *m, const kiln_session_options *opts, kiln_session **out) {
    *out = NULL;
    kiln_session *s = kiln_calloc(1, sizeof *s);
    if (!s)
        return KILN_ERR_NOMEM;
    int threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    s->core.model = m;
    /* The model's load limits bound what operators may make, unless the
     * session asks for its own ceiling. */
    s->core.max_tensor_bytes = opts && opts->max_tensor_bytes ? opts->max_tensor_bytes
                               : m->limits.max_tensor_bytes ? (size_t)m->limits.max_tensor_bytes
                                                            : ((size_t)2 << 30);
    s->core.arena = kiln_arena_create();
    s->core.threads = kiln_threads_create(threads);
    if (!s->core.arena || !s->core.threads) {
        kiln_session_destroy(s);
        return KILN_ERR_NOMEM;
    }
    /* Local functions run inlined, in the session's own copy of the graph. */
    const kiln_graph *g = m->graph;
    kiln_status st = KILN_OK;
    if (kiln_graph_calls_functions(m, m->graph)) {
        st = kiln_edit_graph_clone(m->graph, &s->core.inlined);
        if (st == KILN_OK)
            st = kiln_inline_calls(m, s->core.inlined, NULL, NULL);
        g = s->core.inlined;
    }
    if (st == KILN_OK)
        st = kiln_plan_main(&s->core, g);
    /* shapes known before running: the operators' rules check the declared
     * types and the nodes' inputs now, naming the node */
    if (st == KILN_OK)
        st = kiln_shapes_check(m, g);
    if (st != KILN_OK) {
        kiln_session_destroy(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

void kiln_session_destroy(kiln_session *s) {
    if (!s)
        return;
    kiln_state_free(s);
    prof_free_records(&s->core.prof);
    kiln_plans_free(s->core.plans);
    kiln_graph_destroy(s->core.inlined);
    for (size_t i = 0; i < s->core.n_aligned_copies; i++)
        kiln_tensor_destroy(s->core.aligned_copies[i]);
    free(s->core.aligned_copies);
    kiln_threads_destroy(s->core.threads);
    kiln_arena_release(s->core.arena);
    free(s);
}

size_t kiln_session_peak_bytes(const kiln_session *s) { return kiln_arena_peak(s->core.arena); }

kiln_status kiln_check_input(const kiln_value_info *vi, const kiln_tensor *t) {
    const kiln_type *ty = &vi->type;
    kiln_value_kind ek;
    kiln_dtype edt;
    kiln_value_kind want = kiln_value_info_kind(vi, &ek, &edt);
    char b[128];
    if (want != KILN_VALUE_UNKNOWN && t->kind != want)
        return kiln_fail(KILN_ERR_ARG, "input '%s': expected %s, got %s", vi->name, kiln_value_kind_a(want),
                         kiln_value_str(t, b, sizeof b));
    if (want == KILN_VALUE_SEQUENCE || want == KILN_VALUE_OPTIONAL) {
        const kiln_tensor *e = t->n_items ? t->items[0] : NULL;
        if (e && ek != KILN_VALUE_UNKNOWN && e->kind != ek)
            return kiln_fail(KILN_ERR_ARG, "input '%s': expected %s holding %s, got %s", vi->name,
                             kiln_value_kind_a(want), kiln_value_kind_a(ek), kiln_value_str(t, b, sizeof b));
        if (edt != KILN_DTYPE_UNDEFINED && t->elem_dtype != KILN_DTYPE_UNDEFINED && t->elem_dtype != edt)
            return kiln_fail(KILN_ERR_ARG, "input '%s': expected %s elements, got %s", vi->name, kiln_dtype_name(edt),
                             kiln_value_str(t, b, sizeof b));
    }
    if (ty->kind != KILN_TYPE_TENSOR)
        return KILN_OK;
    if (ty->elem != KILN_DTYPE_UNDEFINED && ty->elem != t->dtype)
        return kiln_fail(KILN_ERR_ARG, "input '%s': expected %s, got %s", vi->name, kiln_dtype_name(ty->elem),
                         kiln_dtype_name(t->dtype));
    if (ty->rank < 0)
        return KILN_OK;
    char got[256];
    if (ty->rank != t->rank)
        return kiln_fail(KILN_ERR_ARG, "input '%s': expected rank %d, got shape %s", vi->name, ty->rank,
                         kiln_dims_str(t->rank, t->dims, got, sizeof got));
    for (int i = 0; i < ty->rank; i++)
        if (ty->dims[i].value >= 0 && ty->dims[i].value != t->dims[i])
            return kiln_fail(KILN_ERR_ARG, "input '%s': dimension %d must be %lld, got shape %s", vi->name, i,
                             (long long)ty->dims[i].value, kiln_dims_str(t->rank, t->dims, got, sizeof got));
    return KILN_OK;
}

static kiln_status session_run(kiln_session *s, size_t n_inputs, const char *const *input_names,
                               const kiln_tensor *const *inputs, size_t n_outputs, const char *const *output_names,
                               kiln_tensor **outputs);

kiln_status kiln_session_run(kiln_session *s, size_t n_inputs, const char *const *input_names,
                             const kiln_tensor *const *inputs, size_t n_outputs, const char *const *output_names,
                             kiln_tensor **outputs) {
    /* one run at a time: the arena, the prepared state and the carried state
     * belong to the session */
    if (atomic_exchange_explicit(&s->busy, true, memory_order_acquire)) {
        for (size_t i = 0; i < n_outputs; i++)
            outputs[i] = NULL;
        return kiln_fail(KILN_ERR_ARG, "the session is already running a call on another thread; "
                                       "use one session per thread (sessions may share a model)");
    }
    kiln_status st = session_run(s, n_inputs, input_names, inputs, n_outputs, output_names, outputs);
    atomic_store_explicit(&s->busy, false, memory_order_release);
    return st;
}

static kiln_status session_run(kiln_session *s, size_t n_inputs, const char *const *input_names,
                               const kiln_tensor *const *inputs, size_t n_outputs, const char *const *output_names,
                               kiln_tensor **outputs) {
    const kiln_plan *plan = s->core.plans;
    const kiln_graph *g = plan->graph;
    kiln_status st = KILN_OK;
    const kiln_tensor **feed = kiln_calloc(g->n_inputs + 1, sizeof *feed);
    kiln_tensor **all = kiln_calloc(g->n_outputs + 1, sizeof *all);
    kiln_tensor **zeros = kiln_calloc(s->n_states + 1, sizeof *zeros);
    if (!feed || !all || !zeros) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_inputs; i++) {
        size_t idx;
        if (!kiln_graph_find_input(g, input_names[i], &idx)) {
            kiln_sbuf names = {0};
            for (size_t k = 0; k < g->n_inputs; k++)
                if (!kiln_graph_find_init(g, g->inputs[k].name, NULL))
                    kiln_sbuf_printf(&names, "%s'%s'", names.len ? ", " : "", g->inputs[k].name);
            st = kiln_fail(KILN_ERR_ARG, "'%s' is not an input of the model; its inputs are %s", input_names[i],
                           names.data ? names.data : "(none)");
            free(names.data);
            goto done;
        }
        if (feed[idx]) {
            st = kiln_fail(KILN_ERR_ARG, "input '%s' is given twice", input_names[i]);
            goto done;
        }
        KILN_CHECK(st, kiln_check_input(&g->inputs[idx], inputs[i]), done);
        feed[idx] = inputs[i];
    }
    KILN_CHECK(st, kiln_state_feed(s, feed, zeros), done);
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!feed[i] && !kiln_graph_find_init(g, g->inputs[i].name, NULL)) {
            st = kiln_fail(KILN_ERR_ARG, "input '%s' is required but was not given", g->inputs[i].name);
            goto done;
        }
    if (!output_names && n_outputs != g->n_outputs) {
        st = kiln_fail(KILN_ERR_ARG, "the model has %zu outputs, %zu asked for", g->n_outputs, n_outputs);
        goto done;
    }
    size_t *pick = kiln_calloc(n_outputs + 1, sizeof *pick);
    if (!pick) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_outputs; i++) {
        pick[i] = i;
        if (output_names) {
            size_t k = 0;
            while (k < g->n_outputs && strcmp(g->outputs[k].name, output_names[i]) != 0)
                k++;
            if (k == g->n_outputs) {
                free(pick);
                st = kiln_fail(KILN_ERR_ARG, "'%s' is not an output of the model", output_names[i]);
                goto done;
            }
            pick[i] = k;
        }
    }
    st = kiln_frame_run(&s->core, plan, NULL, g->n_inputs, feed, NULL, g->n_outputs, all);
    if (st == KILN_OK)
        st = kiln_state_capture(s, feed, all);
    if (st == KILN_OK) {
        for (size_t i = 0; i < n_outputs; i++) {
            outputs[i] = NULL;
            if (all[pick[i]]) {
                /* the same output asked twice gets its own tensor */
                st = kiln_tensor_share(all[pick[i]], &outputs[i]);
                if (st != KILN_OK)
                    break;
            }
        }
        if (st != KILN_OK)
            for (size_t i = 0; i < n_outputs; i++) {
                kiln_tensor_destroy(outputs[i]);
                outputs[i] = NULL;
            }
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        kiln_tensor_destroy(all[i]);
    free(pick);
done:
    for (size_t i = 0; zeros && i < s->n_states; i++)
        kiln_tensor_destroy(zeros[i]);
    free(zeros);
    free(feed);
    free(all);
    return st;
}

void kiln_session_set_profiling(kiln_session *s, int on) { s->core.prof.on = on != 0; }

int kiln_session_profiling(const kiln_session *s) { return s->core.prof.on; }

size_t kiln_session_profile_count(const kiln_session *s) { return s->core.prof.n_recs; }

kiln_status kiln_session_profile_record(const kiln_session *s, size_t i, kiln_profile_record *out) {
    const kiln_prof *p = &s->core.prof;
    if (i >= p->n_recs)
        return kiln_fail(KILN_ERR_ARG, "profile record %zu asked for, the session has %zu", i, p->n_recs);
    const kiln_prof_rec *r = &p->recs[i];
    *out = (kiln_profile_record){.name = r->name,
                                 .op = r->op,
                                 .domain = r->domain,
                                 .fused = r->fused,
                                 .shape = r->shape,
                                 .shape_varies = r->varies,
                                 .depth = r->depth,
                                 .total_ns = r->ns,
                                 .calls = r->calls};
    return KILN_OK;
}

void kiln_session_profile_reset(kiln_session *s) {
    kiln_prof *p = &s->core.prof;
    for (size_t i = 0; i < p->n_recs; i++) {
        kiln_prof_rec *r = &p->recs[i];
        r->ns = r->calls = 0;
        r->kind = KILN_VALUE_UNKNOWN;
        r->rank = 0;
        r->varies = false;
        snprintf(r->shape, sizeof r->shape, "-");
    }
}
