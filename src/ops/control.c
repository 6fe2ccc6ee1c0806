/* If, Loop, Scan: subgraphs planned once with the session, run with the
 * enclosing scope visible (outer-scope captures). */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* Loops with no trip count and no condition would never end; a hostile model
 * must not hang kiln. */
#define KILN_MAX_LOOP_ITERATIONS 10000000

static size_t elem_size(kiln_dtype dt) {
    return dt == KILN_DTYPE_STRING ? sizeof(kiln_string) : kiln_dtype_size(dt);
}

static kiln_status if_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *cond = c->in[0];
    if (cond->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "condition must have one element, has %lld", (long long)cond->numel);
    bool take_then = cond->dtype == KILN_DTYPE_STRING ? false : kiln_tensor_get_f64(cond, 0) != 0;
    const kiln_graph *g = kiln_attr_graph(c->node, take_then ? "then_branch" : "else_branch");
    if (!g)
        return kiln_fail(KILN_ERR_INVALID, "missing attribute '%s'", take_then ? "then_branch" : "else_branch");
    if (g->n_outputs != c->n_out)
        return kiln_fail(KILN_ERR_INVALID, "branch '%s' has %zu outputs, the node %zu",
                         take_then ? "then_branch" : "else_branch", g->n_outputs, c->n_out);
    kiln_tensor *outs[64];
    if (c->n_out > 64)
        return kiln_fail(KILN_ERR_LIMIT, "more than 64 outputs");
    KILN_TRY(kiln_op_run_subgraph(c, g, 0, NULL, c->n_out, outs));
    for (size_t i = 0; i < c->n_out; i++)
        KILN_TRY(kiln_op_output_take(c, i, outs[i]));
    return KILN_OK;
}

/* Growing stack of per-iteration scan values. */
typedef struct stack {
    kiln_tensor **v;
    size_t n, cap;
} stack;

static kiln_status stack_push(stack *s, kiln_tensor *t) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        kiln_tensor **v = kiln_realloc(s->v, cap * sizeof *v);
        if (!v) {
            kiln_tensor_destroy(t);
            return KILN_ERR_NOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = t;
    return KILN_OK;
}

static void stack_free(stack *s) {
    for (size_t i = 0; i < s->n; i++)
        kiln_tensor_destroy(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static kiln_status copy_elems(kiln_tensor *dst, size_t dst_off, const kiln_tensor *src, size_t src_off, size_t n) {
    if (dst->dtype == KILN_DTYPE_STRING) {
        kiln_string *d = (kiln_string *)dst->data + dst_off;
        const kiln_string *s = (const kiln_string *)src->data + src_off;
        for (size_t i = 0; i < n; i++) {
            free(d[i].data);
            d[i].len = s[i].len;
            d[i].data = kiln_strndup(s[i].data ? s[i].data : "", s[i].len);
            if (!d[i].data)
                return KILN_ERR_NOMEM;
        }
        return KILN_OK;
    }
    size_t es = elem_size(dst->dtype);
    if (n)
        memcpy((char *)dst->data + dst_off * es, (const char *)src->data + src_off * es, n * es);
    return KILN_OK;
}

/* Stacks the slices along `axis` of a new output (reversed if `reverse`).
 * With no slices the output has length 0 along the axis and the declared
 * shape of the body output elsewhere, where known. */
static kiln_status stack_output(kiln_op_ctx *c, size_t out_idx, stack *s, int64_t axis, bool reverse,
                                const kiln_value_info *decl) {
    kiln_tensor *o;
    if (s->n == 0) {
        int64_t dims[KILN_MAX_RANK] = {0};
        int rank = 1;
        kiln_dtype dt = KILN_DTYPE_FLOAT;
        if (decl && decl->type.kind == KILN_TYPE_TENSOR) {
            if (decl->type.elem)
                dt = decl->type.elem;
            if (decl->type.rank >= 0 && decl->type.rank < KILN_MAX_RANK) {
                rank = decl->type.rank + 1;
                for (int i = 0; i < decl->type.rank; i++)
                    dims[i + 1] = decl->type.dims[i].value > 0 ? decl->type.dims[i].value : 0;
            }
        }
        return kiln_op_output(c, out_idx, dt, rank, dims, &o);
    }
    const kiln_tensor *first = s->v[0];
    int r = first->rank + 1;
    if (r > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "scan output rank exceeds %d", KILN_MAX_RANK);
    int ax;
    KILN_TRY(kiln_op_axis(c, axis, r, &ax));
    for (size_t i = 1; i < s->n; i++) {
        bool same = s->v[i]->rank == first->rank && s->v[i]->dtype == first->dtype;
        for (int d = 0; same && d < first->rank; d++)
            same = s->v[i]->dims[d] == first->dims[d];
        if (!same)
            return kiln_fail(KILN_ERR_INVALID, "scan output %zu changes shape or type between iterations", out_idx);
    }
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, k = 0; d < r; d++)
        dims[d] = d == ax ? (int64_t)s->n : first->dims[k++];
    KILN_TRY(kiln_op_output(c, out_idx, first->dtype, r, dims, &o));
    if (o->dtype == KILN_DTYPE_STRING)
        memset(o->data, 0, o->nbytes);
    size_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++)
        outer *= (size_t)dims[d];
    for (int d = ax + 1; d < r; d++)
        inner *= (size_t)dims[d];
    for (size_t i = 0; i < s->n; i++) {
        size_t pos = reverse ? s->n - 1 - i : i;
        for (size_t q = 0; q < outer; q++)
            KILN_TRY(copy_elems(o, (q * s->n + pos) * inner, s->v[i], q * inner, inner));
    }
    return KILN_OK;
}

static kiln_status loop_exec(kiln_op_ctx *c) {
    const kiln_graph *body = kiln_attr_graph(c->node, "body");
    if (!body)
        return kiln_fail(KILN_ERR_INVALID, "missing attribute 'body'");
    if (c->n_in < 2)
        return kiln_fail(KILN_ERR_INVALID, "needs inputs M and cond (either may be empty)");
    size_t n_carried = c->n_in - 2;
    if (body->n_inputs != n_carried + 2)
        return kiln_fail(KILN_ERR_INVALID, "body has %zu inputs, expected %zu (iteration, condition, %zu carried)",
                         body->n_inputs, n_carried + 2, n_carried);
    if (body->n_outputs < n_carried + 1)
        return kiln_fail(KILN_ERR_INVALID, "body has %zu outputs, expected at least %zu", body->n_outputs,
                         n_carried + 1);
    size_t n_scan = body->n_outputs - 1 - n_carried;
    if (c->n_out != n_carried + n_scan)
        return kiln_fail(KILN_ERR_INVALID, "node has %zu outputs, body gives %zu carried + %zu scan", c->n_out,
                         n_carried, n_scan);
    const kiln_tensor *M = kiln_op_in(c, 0), *cond0 = kiln_op_in(c, 1);
    int64_t max_trip = -1;
    if (M) {
        if (M->numel != 1)
            return kiln_fail(KILN_ERR_INVALID, "M must have one element");
        max_trip = kiln_tensor_get_i64(M, 0);
        if (max_trip < 0)
            max_trip = 0;
    }
    bool cond = true;
    if (cond0) {
        if (cond0->numel != 1)
            return kiln_fail(KILN_ERR_INVALID, "cond must have one element");
        cond = kiln_tensor_get_f64(cond0, 0) != 0;
    }
    kiln_status st = KILN_OK;
    size_t n_body_out = body->n_outputs;
    kiln_tensor **carried = kiln_calloc(n_carried + 1, sizeof *carried);
    kiln_tensor **outs = kiln_calloc(n_body_out + 1, sizeof *outs);
    const kiln_tensor **ins = kiln_calloc(n_carried + 3, sizeof *ins);
    stack *scans = kiln_calloc(n_scan + 1, sizeof *scans);
    kiln_tensor *iter_t = NULL, *cond_t = NULL;
    if (!carried || !outs || !ins || !scans) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_carried; i++) {
        if (!c->in[2 + i]) {
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "loop-carried value %zu is empty (optional types are not supported)", i);
            goto done;
        }
        KILN_CHECK(st, kiln_tensor_share(c->in[2 + i], &carried[i]), done);
    }
    KILN_CHECK(st, kiln_tensor_create(KILN_DTYPE_INT64, 0, NULL, &iter_t), done);
    KILN_CHECK(st, kiln_tensor_create(KILN_DTYPE_BOOL, 0, NULL, &cond_t), done);
    for (int64_t it = 0; cond && (max_trip < 0 || it < max_trip); it++) {
        if (it >= KILN_MAX_LOOP_ITERATIONS) {
            st = kiln_fail(KILN_ERR_LIMIT, "loop ran %d iterations without ending", KILN_MAX_LOOP_ITERATIONS);
            goto done;
        }
        *(int64_t *)iter_t->data = it;
        *(uint8_t *)cond_t->data = cond;
        ins[0] = iter_t;
        ins[1] = cond_t;
        for (size_t i = 0; i < n_carried; i++)
            ins[2 + i] = carried[i];
        KILN_CHECK(st, kiln_op_run_subgraph(c, body, n_carried + 2, ins, n_body_out, outs), done);
        if (outs[0]->numel != 1) {
            st = kiln_fail(KILN_ERR_INVALID, "body's condition output must have one element");
            for (size_t i = 0; i < n_body_out; i++)
                kiln_tensor_destroy(outs[i]);
            goto done;
        }
        cond = kiln_tensor_get_f64(outs[0], 0) != 0;
        kiln_tensor_destroy(outs[0]);
        for (size_t i = 0; i < n_carried; i++) {
            kiln_tensor_destroy(carried[i]);
            carried[i] = outs[1 + i];
        }
        for (size_t k = 0; k < n_scan; k++) {
            st = stack_push(&scans[k], outs[1 + n_carried + k]);
            outs[1 + n_carried + k] = NULL;
            if (st != KILN_OK) {
                for (size_t j = k + 1; j < n_scan; j++)
                    kiln_tensor_destroy(outs[1 + n_carried + j]);
                goto done;
            }
        }
    }
    for (size_t i = 0; i < n_carried; i++) {
        st = kiln_op_output_take(c, i, carried[i]);
        carried[i] = NULL;
        if (st != KILN_OK)
            goto done;
    }
    for (size_t k = 0; k < n_scan; k++)
        KILN_CHECK(st, stack_output(c, n_carried + k, &scans[k], 0, false, &body->outputs[1 + n_carried + k]), done);
done:
    for (size_t i = 0; carried && i < n_carried; i++)
        kiln_tensor_destroy(carried[i]);
    for (size_t k = 0; scans && k < n_scan; k++)
        stack_free(&scans[k]);
    free(carried);
    free(outs);
    free(ins);
    free(scans);
    kiln_tensor_destroy(iter_t);
    kiln_tensor_destroy(cond_t);
    return st;
}

/* Slice `index` along `axis` of t, the axis removed. */
static kiln_status take_slice(const kiln_tensor *t, int axis, int64_t index, kiln_tensor **out) {
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, k = 0; d < t->rank; d++)
        if (d != axis)
            dims[k++] = t->dims[d];
    kiln_tensor *s;
    KILN_TRY(kiln_tensor_create(t->dtype, t->rank - 1, dims, &s));
    size_t outer = 1, inner = 1, len = (size_t)t->dims[axis];
    for (int d = 0; d < axis; d++)
        outer *= (size_t)t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= (size_t)t->dims[d];
    for (size_t q = 0; q < outer; q++) {
        kiln_status st = copy_elems(s, q * inner, t, (q * len + (size_t)index) * inner, inner);
        if (st != KILN_OK) {
            kiln_tensor_destroy(s);
            return st;
        }
    }
    *out = s;
    return KILN_OK;
}

/* One Scan over states + scan inputs (opset 9 form; opset 8 calls it per batch). */
static kiln_status scan_run(kiln_op_ctx *c, const kiln_graph *body, size_t n_state, size_t n_scan_in,
                            const kiln_tensor *const *state_in, const kiln_tensor *const *scan_in,
                            const int64_t *in_axes, const int64_t *in_dirs, kiln_tensor **state_out, stack *scan_out,
                            size_t n_scan_out) {
    kiln_status st = KILN_OK;
    int64_t seq = -1;
    int *axes = kiln_calloc(n_scan_in + 1, sizeof *axes);
    kiln_tensor **state = kiln_calloc(n_state + 1, sizeof *state);
    kiln_tensor **slices = kiln_calloc(n_scan_in + 1, sizeof *slices);
    const kiln_tensor **ins = kiln_calloc(n_state + n_scan_in + 1, sizeof *ins);
    kiln_tensor **outs = kiln_calloc(body->n_outputs + 1, sizeof *outs);
    if (!axes || !state || !slices || !ins || !outs) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_scan_in; i++) {
        KILN_CHECK(st, kiln_op_axis(c, in_axes ? in_axes[i] : 0, scan_in[i]->rank, &axes[i]), done);
        if (scan_in[i]->rank < 1) {
            st = kiln_fail(KILN_ERR_INVALID, "scan input %zu is a scalar", i);
            goto done;
        }
        int64_t len = scan_in[i]->dims[axes[i]];
        if (seq >= 0 && len != seq) {
            st = kiln_fail(KILN_ERR_INVALID, "scan inputs have different sequence lengths (%lld and %lld)",
                           (long long)seq, (long long)len);
            goto done;
        }
        seq = len;
    }
    if (seq < 0)
        seq = 0;
    for (size_t i = 0; i < n_state; i++)
        KILN_CHECK(st, kiln_tensor_share(state_in[i], &state[i]), done);
    for (int64_t t = 0; t < seq; t++) {
        for (size_t i = 0; i < n_scan_in; i++) {
            int64_t idx = in_dirs && in_dirs[i] ? seq - 1 - t : t;
            kiln_tensor_destroy(slices[i]);
            slices[i] = NULL;
            KILN_CHECK(st, take_slice(scan_in[i], axes[i], idx, &slices[i]), done);
        }
        for (size_t i = 0; i < n_state; i++)
            ins[i] = state[i];
        for (size_t i = 0; i < n_scan_in; i++)
            ins[n_state + i] = slices[i];
        KILN_CHECK(st, kiln_op_run_subgraph(c, body, n_state + n_scan_in, ins, body->n_outputs, outs), done);
        for (size_t i = 0; i < n_state; i++) {
            kiln_tensor_destroy(state[i]);
            state[i] = outs[i];
        }
        for (size_t k = 0; k < n_scan_out; k++) {
            st = stack_push(&scan_out[k], outs[n_state + k]);
            if (st != KILN_OK) {
                for (size_t j = k + 1; j < n_scan_out; j++)
                    kiln_tensor_destroy(outs[n_state + j]);
                goto done;
            }
        }
    }
    for (size_t i = 0; i < n_state; i++) {
        state_out[i] = state[i];
        state[i] = NULL;
    }
done:
    for (size_t i = 0; state && i < n_state; i++)
        kiln_tensor_destroy(state[i]);
    for (size_t i = 0; slices && i < n_scan_in; i++)
        kiln_tensor_destroy(slices[i]);
    free(axes);
    free(state);
    free(slices);
    free(ins);
    free(outs);
    return st;
}

static kiln_status scan_exec(kiln_op_ctx *c) {
    const kiln_graph *body = kiln_attr_graph(c->node, "body");
    if (!body)
        return kiln_fail(KILN_ERR_INVALID, "missing attribute 'body'");
    int64_t m = kiln_attr_int(c->node, "num_scan_inputs", -1);
    bool v8 = c->opset < 9;
    size_t first = v8 ? 1 : 0; /* opset 8 starts with sequence_lens */
    if (m < 1 || (size_t)m > c->n_in - first)
        return kiln_fail(KILN_ERR_INVALID, "num_scan_inputs %lld does not fit %zu inputs", (long long)m, c->n_in);
    size_t n_scan_in = (size_t)m, n_state = c->n_in - first - n_scan_in;
    if (body->n_inputs != n_state + n_scan_in || body->n_outputs < n_state)
        return kiln_fail(KILN_ERR_INVALID, "body's inputs/outputs do not match %zu states and %zu scan inputs", n_state,
                         n_scan_in);
    size_t n_scan_out = body->n_outputs - n_state;
    if (c->n_out != n_state + n_scan_out)
        return kiln_fail(KILN_ERR_INVALID, "node has %zu outputs, body gives %zu", c->n_out, body->n_outputs);
    for (size_t i = first; i < c->n_in; i++)
        if (!c->in[i])
            return kiln_fail(KILN_ERR_INVALID, "input %zu is missing", i);
    size_t n;
    const int64_t *in_axes = v8 ? NULL : kiln_attr_ints(c->node, "scan_input_axes", &n);
    if (in_axes && n != n_scan_in)
        return kiln_fail(KILN_ERR_INVALID, "scan_input_axes has %zu entries for %zu scan inputs", n, n_scan_in);
    const int64_t *in_dirs = kiln_attr_ints(c->node, v8 ? "directions" : "scan_input_directions", &n);
    if (in_dirs && n != n_scan_in)
        return kiln_fail(KILN_ERR_INVALID, "scan input directions have %zu entries for %zu scan inputs", n, n_scan_in);
    const int64_t *out_axes = v8 ? NULL : kiln_attr_ints(c->node, "scan_output_axes", &n);
    if (out_axes && n != n_scan_out)
        return kiln_fail(KILN_ERR_INVALID, "scan_output_axes has %zu entries for %zu scan outputs", n, n_scan_out);
    const int64_t *out_dirs = v8 ? NULL : kiln_attr_ints(c->node, "scan_output_directions", &n);
    if (out_dirs && n != n_scan_out)
        return kiln_fail(KILN_ERR_INVALID, "scan_output_directions has %zu entries", n);
    kiln_status st = KILN_OK;
    kiln_tensor **state_out = kiln_calloc(n_state + 1, sizeof *state_out);
    stack *scans = kiln_calloc(n_scan_out + 1, sizeof *scans);
    if (!state_out || !scans) {
        free(state_out);
        free(scans);
        return KILN_ERR_NOMEM;
    }
    if (!v8) {
        KILN_CHECK(st, scan_run(c, body, n_state, n_scan_in, c->in, c->in + n_state, in_axes, in_dirs, state_out,
                                scans, n_scan_out),
                   done);
        for (size_t i = 0; i < n_state; i++) {
            st = kiln_op_output_take(c, i, state_out[i]);
            state_out[i] = NULL;
            if (st != KILN_OK)
                goto done;
        }
        for (size_t k = 0; k < n_scan_out; k++)
            KILN_CHECK(st, stack_output(c, n_state + k, &scans[k], out_axes ? out_axes[k] : 0,
                                        out_dirs && out_dirs[k], &body->outputs[n_state + k]),
                       done);
    } else {
        /* Opset 8: axis 0 is a batch; each batch entry is scanned along axis 1
         * (axis 0 of the slice). sequence_lens, if given, must be full length. */
        const kiln_tensor *first_in = c->in[first];
        if (first_in->rank < 1) {
            st = kiln_fail(KILN_ERR_INVALID, "inputs need a batch axis");
            goto done;
        }
        int64_t batch = first_in->dims[0];
        const kiln_tensor *lens = kiln_op_in(c, 0);
        stack state_b[16], scan_b[16];
        if (n_state > 16 || n_scan_out > 16) {
            st = kiln_fail(KILN_ERR_LIMIT, "opset-8 Scan with more than 16 states or outputs");
            goto done;
        }
        memset(state_b, 0, sizeof state_b);
        memset(scan_b, 0, sizeof scan_b);
        for (int64_t b = 0; b < batch && st == KILN_OK; b++) {
            kiln_tensor *per[32] = {0};
            size_t n_per = n_state + n_scan_in;
            if (n_per > 32) {
                st = kiln_fail(KILN_ERR_LIMIT, "opset-8 Scan with more than 32 inputs");
                break;
            }
            for (size_t i = 0; i < n_per && st == KILN_OK; i++) {
                const kiln_tensor *t = c->in[first + i];
                if (t->rank < 1 || t->dims[0] != batch)
                    st = kiln_fail(KILN_ERR_INVALID, "input %zu lacks the batch axis of size %lld", first + i,
                                   (long long)batch);
                else
                    st = take_slice(t, 0, b, &per[i]);
            }
            if (st == KILN_OK && lens && lens->numel > b && per[n_state] && per[n_state]->rank > 0 &&
                kiln_tensor_get_i64(lens, b) != per[n_state]->dims[0])
                st = kiln_fail(KILN_ERR_UNSUPPORTED, "sequence_lens shorter than the sequence is not supported");
            stack per_scans[16];
            memset(per_scans, 0, sizeof per_scans);
            kiln_tensor *per_state[16] = {0};
            if (st == KILN_OK)
                st = scan_run(c, body, n_state, n_scan_in, (const kiln_tensor *const *)per,
                              (const kiln_tensor *const *)per + n_state, NULL, in_dirs, per_state, per_scans,
                              n_scan_out);
            for (size_t i = 0; i < n_per; i++)
                kiln_tensor_destroy(per[i]);
            for (size_t i = 0; i < n_state; i++) {
                if (st == KILN_OK)
                    st = stack_push(&state_b[i], per_state[i]);
                else
                    kiln_tensor_destroy(per_state[i]);
            }
            /* Stack this batch's scan slices into one tensor via a scratch output slot. */
            for (size_t k = 0; k < n_scan_out; k++) {
                if (st == KILN_OK) {
                    st = stack_output(c, n_state + k, &per_scans[k], 0, false, &body->outputs[n_state + k]);
                    if (st == KILN_OK) {
                        st = stack_push(&scan_b[k], c->out[n_state + k]);
                        c->out[n_state + k] = NULL;
                    }
                }
                stack_free(&per_scans[k]);
            }
        }
        for (size_t i = 0; i < n_state && st == KILN_OK; i++)
            st = stack_output(c, i, &state_b[i], 0, false, NULL);
        for (size_t k = 0; k < n_scan_out && st == KILN_OK; k++)
            st = stack_output(c, n_state + k, &scan_b[k], 0, false, NULL);
        for (size_t i = 0; i < 16; i++) {
            stack_free(&state_b[i]);
            stack_free(&scan_b[i]);
        }
    }
done:
    for (size_t i = 0; i < n_state; i++)
        kiln_tensor_destroy(state_out[i]);
    for (size_t k = 0; k < n_scan_out; k++)
        stack_free(&scans[k]);
    free(state_out);
    free(scans);
    return st;
}

/* ---- shape rules ---- */

/* If: what both branches agree on for each output. */
static kiln_status if_infer(kiln_infer_ctx *x) {
    const kiln_graph *tb = kiln_attr_graph(x->node, "then_branch"), *eb = kiln_attr_graph(x->node, "else_branch");
    if (!tb || !eb || !x->graph_out)
        return KILN_OK;
    for (size_t k = 0; k < x->n_out && k < tb->n_outputs && k < eb->n_outputs; k++) {
        const kiln_shape_fact *t = x->graph_out(x, tb, k), *e = x->graph_out(x, eb, k);
        if (!t || !e)
            continue;
        kiln_fact_copy(&x->out[k], t);
        kiln_fact_merge(&x->out[k], e);
    }
    return KILN_OK;
}

/* Loop: carried values keep what the initial value and the body's result
 * agree on; scan outputs stack the body's per-iteration value along a new
 * leading axis (of the trip count when it is a known constant and there is
 * no condition input). */
static kiln_status loop_infer(kiln_infer_ctx *x) {
    const kiln_graph *body = kiln_attr_graph(x->node, "body");
    if (!body || x->n_in < 2 || !x->graph_out)
        return KILN_OK;
    size_t n_carried = x->n_in - 2;
    if (body->n_outputs != 1 + x->n_out || x->n_out < n_carried)
        return KILN_OK;
    for (size_t k = 0; k < n_carried; k++) {
        const kiln_shape_fact *b = x->graph_out(x, body, 1 + k);
        kiln_fact_copy(&x->out[k], &x->in[2 + k]);
        if (b)
            kiln_fact_merge(&x->out[k], b);
        else
            kiln_fact_unknown(&x->out[k], x->in[2 + k].dt);
        x->out[k].nval = -1;
    }
    const kiln_tensor *M = x->k[0];
    kiln_sdim trips = M && M->numel == 1 && !x->has[1] ? kiln_sd_const(kiln_tensor_get_i64(M, 0)) : kiln_sd_unknown();
    for (size_t k = n_carried; k < x->n_out; k++) {
        const kiln_shape_fact *b = x->graph_out(x, body, 1 + k);
        if (!b)
            continue;
        kiln_shape_fact *o = &x->out[k];
        o->dt = b->dt;
        if (b->rank < 0 || b->rank + 1 > KILN_MAX_RANK)
            continue;
        o->rank = b->rank + 1;
        o->dims[0] = trips;
        memcpy(&o->dims[1], b->dims, (size_t)b->rank * sizeof *b->dims);
    }
    return KILN_OK;
}

/* Scan: state outputs as the body's; scan outputs typed by the body. */
static kiln_status scan_infer(kiln_infer_ctx *x) {
    const kiln_graph *body = kiln_attr_graph(x->node, "body");
    if (!body || !x->graph_out)
        return KILN_OK;
    int64_t m = kiln_attr_int(x->node, "num_scan_inputs", -1);
    if (m < 0 || (size_t)m > x->n_in)
        return KILN_OK;
    size_t n_state = x->n_in - (size_t)m;
    if (x->opset < 9)
        return KILN_OK; /* Scan-8 carries a batch axis the body does not see */
    for (size_t k = 0; k < x->n_out && k < body->n_outputs; k++) {
        const kiln_shape_fact *b = x->graph_out(x, body, k);
        if (!b)
            continue;
        if (k < n_state) {
            kiln_fact_copy(&x->out[k], b);
            x->out[k].nval = -1;
        } else {
            x->out[k].dt = b->dt;
        }
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "If", 1, 0, if_exec, if_infer},
    {"", "Loop", 1, 0, loop_exec, loop_infer},
    {"", "Scan", 8, 0, scan_exec, scan_infer},
};
KILN_OP_FAMILY(control, ops);
