/* Concat and Split along one axis. Any dtype (bytes are moved; strings get
 * their own copies). */
#include <stdlib.h>
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

typedef struct concat_job {
    size_t n;
    const char **src;
    size_t *chunk; /* bytes per outer index, per input */
    size_t row;    /* output bytes per outer index */
    char *dst;
} concat_job;

static void concat_range(void *arg, size_t begin, size_t end) {
    const concat_job *j = arg;
    for (size_t o = begin; o < end; o++) {
        char *d = j->dst + o * j->row;
        for (size_t i = 0; i < j->n; i++) {
            if (j->chunk[i])
                memcpy(d, j->src[i] + o * j->chunk[i], j->chunk[i]);
            d += j->chunk[i];
        }
    }
}

/* Concat: `axis` is required from opset 4 (default 1 before); negative axes
 * from opset 11. */
static kiln_status concat_run(kiln_op_ctx *c, bool axis_required) {
    if (c->n_in == 0)
        return kiln_fail(KILN_ERR_INVALID, "needs at least one input");
    KILN_TRY(kiln_op_need_inputs(c, c->n_in));
    const kiln_tensor *x0 = c->in[0];
    const kiln_attr *aa = kiln_node_attr(c->node, "axis");
    if (!aa && axis_required)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'axis' is required");
    int64_t axis_v = aa ? aa->i : 1;
    int r = x0->rank, axis;
    if (r == 0)
        return kiln_fail(KILN_ERR_INVALID, "inputs must have rank >= 1");
    KILN_TRY(kiln_op_axis(c, axis_v, r, &axis));
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x0->dims, sizeof(int64_t) * (size_t)r);
    dims[axis] = 0;
    for (size_t i = 0; i < c->n_in; i++) {
        const kiln_tensor *t = c->in[i];
        char b1[256], b2[256];
        if (t->dtype != x0->dtype)
            return kiln_fail(KILN_ERR_INVALID, "input %zu has element type %s, input 0 has %s", i,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(x0->dtype));
        bool ok = t->rank == r;
        for (int a = 0; ok && a < r; a++)
            if (a != axis && t->dims[a] != x0->dims[a])
                ok = false;
        if (!ok)
            return kiln_fail(KILN_ERR_INVALID, "input %zu has shape %s, incompatible with input 0's %s on axis %d", i,
                             kiln_dims_str(t->rank, t->dims, b1, sizeof b1),
                             kiln_dims_str(r, x0->dims, b2, sizeof b2), axis);
        if (__builtin_add_overflow(dims[axis], t->dims[axis], &dims[axis]))
            return kiln_fail(KILN_ERR_LIMIT, "output size overflows");
    }
    KILN_TRY(kiln_check_shape("output", r, dims));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x0->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    size_t es = kiln_elem_size(x0->dtype);
    int64_t outer = 1, inner = 1;
    for (int a = 0; a < axis; a++)
        outer *= dims[a];
    for (int a = axis + 1; a < r; a++)
        inner *= dims[a];
    const char **src = kiln_calloc(c->n_in, sizeof *src);
    size_t *chunk = kiln_calloc(c->n_in, sizeof *chunk);
    if (!src || !chunk) {
        free(src);
        free(chunk);
        return KILN_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->n_in; i++) {
        src[i] = c->in[i]->data;
        chunk[i] = (size_t)(c->in[i]->dims[axis] * inner) * es;
    }
    concat_job j = {c->n_in, src, chunk, (size_t)(dims[axis] * inner) * es, y->data};
    size_t grain = j.row >= 32768 ? 1 : 32768 / j.row;
    kiln_parallel_for(c, (size_t)outer, grain, concat_range, &j);
    free(src);
    free(chunk);
    return kiln_strings_own(y);
}

/* Split: sizes from attribute 'split' (opset 2-12) or input 1 (13+); absent,
 * the axis is split into equal parts, one per output. */
/* Equal parts of an axis of length dim for n outputs (shared by exec and
 * infer). Before opset 18 they must divide it; from 18 each part is
 * ceil(dim / n) and the last one takes what is left. */
static kiln_status split_equal(int64_t dim, int64_t n, bool uneven, int64_t *sizes) {
    if (dim % n == 0 || !uneven) {
        if (dim % n)
            return kiln_fail(KILN_ERR_INVALID, "axis of length %lld cannot be split into %lld equal parts",
                             (long long)dim, (long long)n);
        for (int64_t i = 0; i < n; i++)
            sizes[i] = dim / n;
        return KILN_OK;
    }
    int64_t part = dim / n + 1, last = dim - part * (n - 1);
    if (last < 0)
        return kiln_fail(KILN_ERR_INVALID,
                         "axis of length %lld cannot be split into %lld parts of %lld (the last would be negative)",
                         (long long)dim, (long long)n, (long long)part);
    for (int64_t i = 0; i < n; i++)
        sizes[i] = i < n - 1 ? part : last;
    return KILN_OK;
}

static kiln_status split_run(kiln_op_ctx *c, int version) {
    bool split_input = version >= 13;
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int axis;
    if (x->rank == 0)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 1");
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
    size_t nout = c->n_out;
    if (nout == 0)
        return kiln_fail(KILN_ERR_INVALID, "has no outputs");
    int64_t *sizes = kiln_calloc(nout, sizeof *sizes);
    if (!sizes)
        return KILN_ERR_NOMEM;
    kiln_status st = KILN_OK;
    int64_t dim = x->dims[axis];
    bool given = false;
    const kiln_attr *num = version >= 18 ? kiln_node_attr(c->node, "num_outputs") : NULL;
    if (num) {
        if (kiln_op_in(c, 1)) {
            st = kiln_fail(KILN_ERR_INVALID, "input 'split' and attribute 'num_outputs' are both given");
            goto done;
        }
        if (num->i != (int64_t)nout) {
            st = kiln_fail(KILN_ERR_INVALID, "attribute 'num_outputs' is %lld but the node has %zu outputs",
                           (long long)num->i, nout);
            goto done;
        }
    }
    if (split_input && kiln_op_in(c, 1)) {
        size_t n;
        const kiln_tensor *s = c->in[1];
        if (s->numel != (int64_t)nout) {
            st = kiln_fail(KILN_ERR_INVALID, "input 'split' has %lld values for %zu outputs", (long long)s->numel,
                           nout);
            goto done;
        }
        KILN_CHECK(st, kiln_tensor_read_ints(s, "input 'split'", sizes, nout, &n), done);
        given = true;
    } else if (!split_input) {
        size_t n;
        const int64_t *v = kiln_attr_ints(c->node, "split", &n);
        if (v) {
            if (n != nout) {
                st = kiln_fail(KILN_ERR_INVALID, "attribute 'split' has %zu values for %zu outputs", n, nout);
                goto done;
            }
            memcpy(sizes, v, n * sizeof *v);
            given = true;
        }
    }
    if (given) {
        int64_t sum = 0;
        for (size_t i = 0; i < nout; i++) {
            if (sizes[i] < 0 || __builtin_add_overflow(sum, sizes[i], &sum)) {
                st = kiln_fail(KILN_ERR_INVALID, "split size %lld (output %zu) is invalid", (long long)sizes[i], i);
                goto done;
            }
        }
        if (sum != dim) {
            st = kiln_fail(KILN_ERR_INVALID, "split sizes add up to %lld but axis %d has %lld", (long long)sum, axis,
                           (long long)dim);
            goto done;
        }
    } else {
        KILN_CHECK(st, split_equal(dim, (int64_t)nout, version >= 18, sizes), done);
    }
    kiln_tensor **outs = kiln_calloc(nout, sizeof *outs);
    if (!outs) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    for (size_t i = 0; i < nout && st == KILN_OK; i++) {
        if (!kiln_op_out_wanted(c, i))
            continue;
        dims[axis] = sizes[i];
        st = kiln_op_output(c, i, x->dtype, x->rank, dims, &outs[i]);
    }
    int64_t str[KILN_MAX_RANK];
    kiln_dims_strides(x->rank, x->dims, str);
    size_t es = kiln_elem_size(x->dtype);
    int64_t start = 0;
    for (size_t i = 0; i < nout && st == KILN_OK; i++) {
        if (outs[i] && outs[i]->numel > 0) {
            kiln_strided_copy(kiln_op_pool(c), outs[i]->data, (const char *)x->data + (size_t)(start * str[axis]) * es, es,
                              x->rank, outs[i]->dims, str);
            st = kiln_strings_own(outs[i]);
        }
        start += sizes[i];
    }
    free(outs);
done:
    free(sizes);
    return st;
}

static kiln_status concat_v1(kiln_op_ctx *c) { return concat_run(c, false); }
static kiln_status concat_v4(kiln_op_ctx *c) { return concat_run(c, true); }
static kiln_status split_v2(kiln_op_ctx *c) { return split_run(c, 2); }
static kiln_status split_v13(kiln_op_ctx *c) { return split_run(c, 13); }
static kiln_status split_v18(kiln_op_ctx *c) { return split_run(c, 18); }

/* ---- shape rules ---- */

/* Concat: dims along the axis add up; 1-D small integer inputs (shape
 * arithmetic) concatenate their elements. */
static kiln_status concat_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    int rank = -1;
    for (size_t i = 0; i < x->n_in; i++) {
        if (!x->has[i])
            continue;
        o->dt = x->in[i].dt;
        if (x->in[i].rank < 0)
            return KILN_OK;
        rank = x->in[i].rank;
    }
    if (rank < 0)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", rank == 1 ? 0 : -1000), rank);
    if (a < 0)
        return kiln_node_attr(x->node, "axis") ? kiln_fail(KILN_ERR_INVALID, "axis is out of range") : KILN_OK;
    o->rank = rank;
    bool first = true, vals = rank == 1;
    int nv = 0;
    for (size_t i = 0; i < x->n_in; i++) {
        if (!x->has[i])
            continue;
        const kiln_shape_fact *f = &x->in[i];
        if (f->rank != rank)
            return kiln_fail(KILN_ERR_INVALID, "inputs differ in rank (%d and %d)", rank, f->rank);
        for (int d = 0; d < rank; d++) {
            if (first)
                o->dims[d] = f->dims[d];
            else if (d == a)
                o->dims[d] = kiln_sd_add(o->dims[d], f->dims[d], 1);
            else if (!kiln_sdim_eq(&o->dims[d], &f->dims[d]))
                o->dims[d] = kiln_sd_is_const(&f->dims[d]) ? f->dims[d] : o->dims[d];
        }
        first = false;
        if (f->nval < 0 || nv + f->nval > KILN_FACT_MAXVAL)
            vals = false;
        else if (vals) {
            memcpy(&o->val[nv], f->val, (size_t)f->nval * sizeof *f->val);
            nv += f->nval;
        }
    }
    if (vals)
        o->nval = nv;
    return KILN_OK;
}

/* Split: sizes from the attribute (v2) or input (v13), else equal parts
 * (from v18 the last part may be smaller). */
static kiln_status split_infer(kiln_infer_ctx *x, int version) {
    bool input = version >= 13;
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    for (size_t k = 0; k < x->n_out; k++)
        x->out[k].dt = X->dt;
    if (X->rank < 0 || x->n_out == 0)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", 0), X->rank);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    int64_t sz[KILN_FACT_MAXVAL];
    int n;
    bool given = input ? kiln_infer_has(x, 1) : kiln_node_attr(x->node, "split") != NULL;
    kiln_sdim part[KILN_FACT_MAXVAL];
    if (x->n_out > KILN_FACT_MAXVAL)
        return KILN_OK;
    if (given) {
        if (!kiln_infer_ints(x, input ? 1 : -1, input ? NULL : "split", sz, &n, KILN_FACT_MAXVAL))
            return KILN_OK;
        if (n != (int)x->n_out)
            return kiln_fail(KILN_ERR_INVALID, "split has %d sizes for %zu outputs", n, x->n_out);
        for (int k = 0; k < n; k++)
            part[k] = kiln_sd_const(sz[k]);
    } else if (kiln_sd_is_const(&X->dims[a])) {
        KILN_TRY(split_equal(X->dims[a].num, (int64_t)x->n_out, version >= 18, sz));
        for (size_t k = 0; k < x->n_out; k++)
            part[k] = kiln_sd_const(sz[k]);
    } else {
        /* a symbolic length: equal parts when it divides (an uneven v18
         * split leaves the parts unknown) */
        kiln_sdim p = kiln_sd_div_exact(X->dims[a], kiln_sd_const((int64_t)x->n_out));
        for (size_t k = 0; k < x->n_out; k++)
            part[k] = p;
    }
    for (size_t k = 0; k < x->n_out; k++) {
        kiln_infer_copy_shape(&x->out[k], X, false);
        x->out[k].dims[a] = part[k];
    }
    return KILN_OK;
}
static kiln_status split_infer_v2(kiln_infer_ctx *x) { return split_infer(x, 2); }
static kiln_status split_infer_v13(kiln_infer_ctx *x) { return split_infer(x, 13); }
static kiln_status split_infer_v18(kiln_infer_ctx *x) { return split_infer(x, 18); }

static const kiln_op_desc ops[] = {
    {"", "Concat", 1, 3, concat_v1, concat_infer},
    {"", "Concat", 4, 0, concat_v4, concat_infer},
    {"", "Split", 2, 12, split_v2, split_infer_v2},
    {"", "Split", 13, 17, split_v13, split_infer_v13},
    {"", "Split", 18, 0, split_v18, split_infer_v18},
};
KILN_OP_FAMILY(concat_split, ops);
