/* Sequence operators: SequenceEmpty, SequenceConstruct, SequenceInsert,
 * SequenceAt, SequenceErase, SequenceLength, SplitToSequence,
 * ConcatFromSequence and SequenceMap (its body run once per element).
 *
 * Sequences are values of kind SEQUENCE (ir/value.c): their elements share
 * the tensors' buffers, so inserting, erasing and taking elements copies no
 * data. Shape rules leave what a sequence holds unknown; they tell only the
 * tensors these operators make (SequenceLength's int64 scalar). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* ---- which operators see sequences and optionals ---- */

typedef struct value_op {
    const char *name;
    bool makes; /* may output a sequence or optional */
} value_op;

static const value_op value_ops[] = {
    {"ConcatFromSequence", false}, {"Identity", true},           {"If", true},
    {"Loop", true},                {"Optional", true},           {"OptionalGetElement", true},
    {"OptionalHasElement", false}, {"SequenceAt", false},        {"SequenceConstruct", true},
    {"SequenceEmpty", true},       {"SequenceErase", true},      {"SequenceInsert", true},
    {"SequenceLength", false},     {"SequenceMap", true},        {"SplitToSequence", true},
};

static const value_op *find_value_op(const kiln_op_desc *d) {
    if (!d || (*d->domain && strcmp(d->domain, "ai.onnx") != 0))
        return NULL;
    for (size_t i = 0; i < sizeof value_ops / sizeof *value_ops; i++)
        if (!strcmp(value_ops[i].name, d->name))
            return &value_ops[i];
    return NULL;
}

bool kiln_op_takes_values(const kiln_op_desc *d) { return find_value_op(d) != NULL; }

/* Identity, If and Loop pass tensors on as well; folding them stays with
 * the tensors they give (kiln_eval_node refuses other results). */
bool kiln_op_makes_values(const kiln_op_desc *d) {
    const value_op *v = find_value_op(d);
    return v && v->makes && strcmp(v->name, "Identity") != 0 && strcmp(v->name, "If") != 0 &&
           strcmp(v->name, "Loop") != 0;
}

/* ---- helpers ---- */

static kiln_status need_seq(const kiln_op_ctx *c, size_t i, const kiln_tensor **out) {
    const kiln_tensor *s = kiln_op_in(c, i);
    *out = NULL;
    if (!s)
        return kiln_fail(KILN_ERR_INVALID, "input %zu (a sequence) is missing", i);
    if (s->kind != KILN_VALUE_SEQUENCE) {
        char b[128];
        return kiln_fail(KILN_ERR_INVALID, "input %zu must be a sequence, got %s", i, kiln_value_str(s, b, sizeof b));
    }
    *out = s;
    return KILN_OK;
}

static kiln_status need_tensor(const kiln_op_ctx *c, size_t i, bool required, const kiln_tensor **out) {
    const kiln_tensor *t = kiln_op_in(c, i);
    *out = NULL;
    if (!t) {
        if (required)
            return kiln_fail(KILN_ERR_INVALID, "input %zu (a tensor) is missing", i);
        return KILN_OK;
    }
    if (t->kind != KILN_VALUE_TENSOR) {
        char b[128];
        return kiln_fail(KILN_ERR_INVALID, "input %zu must be a tensor, got %s", i, kiln_value_str(t, b, sizeof b));
    }
    *out = t;
    return KILN_OK;
}

/* A position input: an int32/int64 tensor of one element. */
static kiln_status read_position(const kiln_tensor *t, int64_t *pos) {
    if ((t->dtype != KILN_DTYPE_INT32 && t->dtype != KILN_DTYPE_INT64) || t->numel != 1 || t->rank > 1)
        return kiln_fail(KILN_ERR_INVALID, "position must be an int32 or int64 scalar");
    *pos = kiln_tensor_get_i64(t, 0);
    return KILN_OK;
}

/* n elements of src from src_off to dst at dst_off (strings copied). */
static kiln_status copy_elems(kiln_tensor *dst, size_t dst_off, const kiln_tensor *src, size_t src_off, size_t n) {
    if (!n)
        return KILN_OK;
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
    size_t es = kiln_dtype_size(dst->dtype);
    memcpy((char *)dst->data + dst_off * es, (const char *)src->data + src_off * es, n * es);
    return KILN_OK;
}

static kiln_status push_share(kiln_tensor *seq, const kiln_tensor *t) {
    kiln_tensor *c;
    KILN_TRY(kiln_tensor_share(t, &c));
    return kiln_op_seq_push(seq, c);
}

static bool dtype_ok(kiln_dtype dt) { return dt == KILN_DTYPE_STRING || kiln_dtype_size(dt) > 0; }

/* ---- SequenceEmpty, SequenceConstruct, SequenceLength ---- */

static kiln_status empty_exec(kiln_op_ctx *c) {
    int64_t dt = kiln_attr_int(c->node, "dtype", KILN_DTYPE_FLOAT);
    if (dt <= 0 || dt > 255 || !dtype_ok((kiln_dtype)dt))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'dtype' is %lld, not a tensor element type", (long long)dt);
    kiln_tensor *s;
    return kiln_op_output_seq(c, 0, (kiln_dtype)dt, &s);
}

static kiln_status construct_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *first;
    KILN_TRY(need_tensor(c, 0, true, &first));
    kiln_tensor *s;
    KILN_TRY(kiln_op_output_seq(c, 0, first->dtype, &s));
    for (size_t i = 0; i < c->n_in; i++) {
        const kiln_tensor *t;
        KILN_TRY(need_tensor(c, i, true, &t));
        KILN_TRY(push_share(s, t));
    }
    return KILN_OK;
}

static kiln_status length_exec(kiln_op_ctx *c) {
    const kiln_tensor *s;
    KILN_TRY(need_seq(c, 0, &s));
    kiln_tensor *o;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_INT64, 0, NULL, &o));
    *(int64_t *)o->data = (int64_t)s->n_items;
    return KILN_OK;
}

/* ---- SequenceInsert, SequenceAt, SequenceErase ---- */

static kiln_status insert_exec(kiln_op_ctx *c) {
    const kiln_tensor *s, *t, *p;
    KILN_TRY(need_seq(c, 0, &s));
    KILN_TRY(need_tensor(c, 1, true, &t));
    KILN_TRY(need_tensor(c, 2, false, &p));
    int64_t n = (int64_t)s->n_items, pos = n;
    if (p) {
        KILN_TRY(read_position(p, &pos));
        if (pos < -n || pos > n)
            return kiln_fail(KILN_ERR_INVALID, "position %lld is out of range for a sequence of %lld (allowed: %lld to %lld)",
                             (long long)pos, (long long)n, (long long)-n, (long long)n);
        if (pos < 0)
            pos += n;
    }
    if (s->elem_kind != KILN_VALUE_TENSOR && s->elem_kind != KILN_VALUE_UNKNOWN)
        return kiln_fail(KILN_ERR_INVALID, "cannot insert a tensor into a sequence of %ss",
                         kiln_value_kind_name(s->elem_kind));
    if (s->elem_dtype != KILN_DTYPE_UNDEFINED && t->dtype != s->elem_dtype)
        return kiln_fail(KILN_ERR_INVALID, "cannot insert a %s tensor into a sequence of %s", kiln_dtype_name(t->dtype),
                         kiln_dtype_name(s->elem_dtype));
    kiln_tensor *o, *e;
    KILN_TRY(kiln_op_output_seq_from(c, 0, 0, &o));
    KILN_TRY(kiln_tensor_share(t, &e));
    return kiln_value_insert(o, (size_t)pos, e);
}

static kiln_status index_in(const kiln_tensor *s, const kiln_tensor *p, int64_t dflt, int64_t *out) {
    int64_t n = (int64_t)s->n_items, pos = dflt;
    if (p)
        KILN_TRY(read_position(p, &pos));
    if (pos < -n || pos >= n) {
        if (!n)
            return kiln_fail(KILN_ERR_INVALID, "the sequence is empty");
        return kiln_fail(KILN_ERR_INVALID, "position %lld is out of range for a sequence of %lld (allowed: %lld to %lld)",
                         (long long)pos, (long long)n, (long long)-n, (long long)(n - 1));
    }
    *out = pos < 0 ? pos + n : pos;
    return KILN_OK;
}

static kiln_status at_exec(kiln_op_ctx *c) {
    const kiln_tensor *s, *p;
    KILN_TRY(need_seq(c, 0, &s));
    KILN_TRY(need_tensor(c, 1, true, &p));
    int64_t pos;
    KILN_TRY(index_in(s, p, 0, &pos));
    return kiln_op_output_share(c, 0, s->items[pos]);
}

static kiln_status erase_exec(kiln_op_ctx *c) {
    const kiln_tensor *s, *p;
    KILN_TRY(need_seq(c, 0, &s));
    KILN_TRY(need_tensor(c, 1, false, &p));
    int64_t pos;
    KILN_TRY(index_in(s, p, -1, &pos));
    kiln_tensor *o;
    KILN_TRY(kiln_op_output_seq_from(c, 0, 0, &o));
    kiln_value_erase(o, (size_t)pos);
    return KILN_OK;
}

/* ---- SplitToSequence ---- */

static kiln_status split_exec(kiln_op_ctx *c) {
    const kiln_tensor *x, *split;
    KILN_TRY(need_tensor(c, 0, true, &x));
    KILN_TRY(need_tensor(c, 1, false, &split));
    if (x->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank 1 or more, has rank 0");
    int ax;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &ax));
    bool keepdims = kiln_attr_int(c->node, "keepdims", 1) != 0;
    int64_t d = x->dims[ax];
    /* piece lengths: from `split`, else ones */
    int64_t chunk = 1, n_pieces = d;
    const int64_t *lens = NULL;
    int64_t *owned = NULL;
    if (split) {
        if (split->dtype != KILN_DTYPE_INT32 && split->dtype != KILN_DTYPE_INT64)
            return kiln_fail(KILN_ERR_INVALID, "'split' must be int32 or int64, is %s", kiln_dtype_name(split->dtype));
        if (split->rank == 0) {
            chunk = kiln_tensor_get_i64(split, 0);
            if (chunk <= 0)
                return kiln_fail(KILN_ERR_INVALID, "'split' is %lld; a chunk length must be positive", (long long)chunk);
            n_pieces = d / chunk + (d % chunk ? 1 : 0);
        } else if (split->rank == 1) {
            n_pieces = split->numel;
            int64_t sum = 0;
            owned = kiln_calloc((size_t)n_pieces + 1, sizeof *owned);
            if (!owned)
                return KILN_ERR_NOMEM;
            for (int64_t i = 0; i < n_pieces; i++) {
                owned[i] = kiln_tensor_get_i64(split, i);
                if (owned[i] < 0 || owned[i] > d || (sum += owned[i]) > d) {
                    free(owned);
                    return kiln_fail(KILN_ERR_INVALID, "'split' lengths must be non-negative and add up to %lld",
                                     (long long)d);
                }
            }
            if (sum != d) {
                free(owned);
                return kiln_fail(KILN_ERR_INVALID, "'split' lengths add up to %lld, the axis has %lld", (long long)sum,
                                 (long long)d);
            }
            lens = owned;
        } else {
            return kiln_fail(KILN_ERR_INVALID, "'split' must be a scalar or 1-D, has rank %d", split->rank);
        }
    }
    kiln_status st = KILN_OK;
    if ((uint64_t)n_pieces > KILN_MAX_SEQUENCE_LENGTH) {
        free(owned);
        return kiln_fail(KILN_ERR_LIMIT, "splitting into %lld pieces exceeds kiln's limit of %zu sequence elements",
                         (long long)n_pieces, KILN_MAX_SEQUENCE_LENGTH);
    }
    bool drop_axis = !split && !keepdims;
    size_t outer = 1, inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= (size_t)x->dims[i];
    for (int i = ax + 1; i < x->rank; i++)
        inner *= (size_t)x->dims[i];
    kiln_tensor *o;
    KILN_CHECK(st, kiln_op_output_seq(c, 0, x->dtype, &o), done);
    int64_t start = 0;
    for (int64_t k = 0; k < n_pieces; k++) {
        int64_t len = lens ? lens[k] : split && k == n_pieces - 1 ? d - start : chunk;
        int64_t dims[KILN_MAX_RANK];
        int rank = 0;
        for (int i = 0; i < x->rank; i++) {
            if (i == ax && drop_axis)
                continue;
            dims[rank++] = i == ax ? len : x->dims[i];
        }
        kiln_tensor *piece;
        KILN_CHECK(st, kiln_op_new_tensor(c, x->dtype, rank, dims, &piece), done);
        for (size_t q = 0; q < outer && st == KILN_OK; q++)
            st = copy_elems(piece, q * (size_t)len * inner, x, (q * (size_t)d + (size_t)start) * inner,
                            (size_t)len * inner);
        if (st != KILN_OK) {
            kiln_tensor_destroy(piece);
            goto done;
        }
        KILN_CHECK(st, kiln_op_seq_push(o, piece), done);
        start += len;
    }
done:
    free(owned);
    return st;
}

/* ---- ConcatFromSequence ---- */

static kiln_status concat_exec(kiln_op_ctx *c) {
    const kiln_tensor *s;
    KILN_TRY(need_seq(c, 0, &s));
    const kiln_attr *axis_attr = kiln_node_attr(c->node, "axis");
    if (!axis_attr)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'axis' is required");
    int64_t axis = kiln_attr_int(c->node, "axis", 0);
    bool new_axis = kiln_attr_int(c->node, "new_axis", 0) != 0;
    if (!s->n_items)
        return kiln_fail(KILN_ERR_INVALID, "cannot concatenate an empty sequence");
    const kiln_tensor *f = s->items[0];
    int r = f->rank + (new_axis ? 1 : 0);
    if (r < 1)
        return kiln_fail(KILN_ERR_INVALID, "cannot concatenate scalars without new_axis");
    if (r > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "output rank %d exceeds %d", r, KILN_MAX_RANK);
    int ax;
    KILN_TRY(kiln_op_axis(c, axis, r, &ax));
    /* each element seen with the new axis of length 1 where asked */
    int64_t dims[KILN_MAX_RANK], total = 0;
    for (size_t i = 0; i < s->n_items; i++) {
        const kiln_tensor *t = s->items[i];
        if (t->kind != KILN_VALUE_TENSOR || t->dtype != f->dtype || t->rank != f->rank)
            return kiln_fail(KILN_ERR_INVALID, "sequence element %zu differs from the first in type or rank", i);
        for (int d = 0, k = 0; d < r; d++) {
            int64_t v = new_axis && d == ax ? 1 : t->dims[k++];
            if (d == ax)
                total += v;
            else if (i == 0)
                dims[d] = v;
            else if (dims[d] != v) {
                char a[256], b[256];
                return kiln_fail(KILN_ERR_INVALID, "sequence element %zu has shape %s, the first %s: only axis %d may differ",
                                 i, kiln_dims_str(t->rank, t->dims, a, sizeof a),
                                 kiln_dims_str(f->rank, f->dims, b, sizeof b), ax);
            }
        }
    }
    dims[ax] = total;
    kiln_tensor *o;
    KILN_TRY(kiln_op_output(c, 0, f->dtype, r, dims, &o));
    size_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++)
        outer *= (size_t)dims[d];
    for (int d = ax + 1; d < r; d++)
        inner *= (size_t)dims[d];
    size_t row = (size_t)total * inner, off = 0;
    for (size_t i = 0; i < s->n_items; i++) {
        const kiln_tensor *t = s->items[i];
        size_t len = (new_axis ? 1 : (size_t)t->dims[ax]) * inner;
        for (size_t q = 0; q < outer; q++)
            KILN_TRY(copy_elems(o, q * row + off, t, q * len, len));
        off += len;
    }
    return KILN_OK;
}

/* ---- SequenceMap ---- */

static kiln_status map_exec(kiln_op_ctx *c) {
    const kiln_graph *body = kiln_attr_graph(c->node, "body");
    if (!body)
        return kiln_fail(KILN_ERR_INVALID, "missing attribute 'body'");
    const kiln_tensor *s0;
    KILN_TRY(need_seq(c, 0, &s0));
    if (body->n_inputs != c->n_in)
        return kiln_fail(KILN_ERR_INVALID, "body has %zu inputs for the node's %zu", body->n_inputs, c->n_in);
    if (body->n_outputs != c->n_out)
        return kiln_fail(KILN_ERR_INVALID, "body has %zu outputs for the node's %zu", body->n_outputs, c->n_out);
    size_t n = s0->n_items;
    for (size_t k = 1; k < c->n_in; k++) {
        const kiln_tensor *v = kiln_op_in(c, k);
        if (!v)
            return kiln_fail(KILN_ERR_INVALID, "input %zu is missing", k);
        if (v->kind == KILN_VALUE_SEQUENCE && v->n_items != n)
            return kiln_fail(KILN_ERR_INVALID, "input %zu is a sequence of %zu, input 0 of %zu", k, v->n_items, n);
        if (v->kind != KILN_VALUE_SEQUENCE && v->kind != KILN_VALUE_TENSOR)
            return kiln_fail(KILN_ERR_INVALID, "input %zu must be a tensor or a sequence", k);
    }
    kiln_status st = KILN_OK;
    kiln_tensor **outs = kiln_calloc(c->n_out + 1, sizeof *outs), **seqs = kiln_calloc(c->n_out + 1, sizeof *seqs);
    const kiln_tensor **ins = kiln_calloc(c->n_in + 1, sizeof *ins);
    if (!outs || !seqs || !ins) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t k = 0; k < c->n_out; k++) {
        const kiln_type *ty = &body->outputs[k].type;
        kiln_dtype dt = ty->kind == KILN_TYPE_TENSOR ? ty->elem : KILN_DTYPE_UNDEFINED;
        KILN_CHECK(st, kiln_op_output_seq(c, k, dt, &seqs[k]), done);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < c->n_in; k++) {
            const kiln_tensor *v = kiln_op_in(c, k);
            ins[k] = v->kind == KILN_VALUE_SEQUENCE ? v->items[i] : v;
        }
        KILN_CHECK(st, kiln_op_run_subgraph(c, body, c->n_in, ins, c->n_out, outs), done);
        for (size_t k = 0; k < c->n_out; k++) {
            kiln_tensor *t = outs[k];
            outs[k] = NULL;
            if (st == KILN_OK)
                st = kiln_op_seq_push(seqs[k], t);
            else
                kiln_tensor_destroy(t);
        }
        if (st != KILN_OK)
            goto done;
    }
done:
    free(outs);
    free(seqs);
    free(ins);
    return st;
}

/* ---- shape rules ---- */

/* What a sequence holds stays unknown to the passes. */
static kiln_status seq_infer(kiln_infer_ctx *x) {
    (void)x;
    return KILN_OK;
}

static kiln_status length_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = KILN_DTYPE_INT64;
    x->out[0].rank = 0;
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "ConcatFromSequence", 11, 0, concat_exec, seq_infer},
    {"", "SequenceAt", 11, 0, at_exec, seq_infer},
    {"", "SequenceConstruct", 11, 0, construct_exec, seq_infer},
    {"", "SequenceEmpty", 11, 0, empty_exec, seq_infer},
    {"", "SequenceErase", 11, 0, erase_exec, seq_infer},
    {"", "SequenceInsert", 11, 0, insert_exec, seq_infer},
    {"", "SequenceLength", 11, 0, length_exec, length_infer},
    {"", "SequenceMap", 17, 0, map_exec, seq_infer},
    {"", "SplitToSequence", 11, 0, split_exec, seq_infer},
};
KILN_OP_FAMILY(sequence, ops);
