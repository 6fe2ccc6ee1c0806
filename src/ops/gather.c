/* Gather, GatherElements, GatherND, ScatterND, ScatterElements and the
 * deprecated Scatter (opset 9-10, ScatterElements without reduction).
 * Every index read from a tensor is checked against its bound before any
 * memory is touched; negative indices count from the end (opset 11+, and
 * accepted for older opsets too since no valid model relies on an error).
 * Data of any dtype (bytes are moved; strings get their own copies);
 * reductions (ScatterND/ScatterElements opset 16+) need numeric data. */
#include <stdlib.h>
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Normalises one index value against `bound`. */
static kiln_status check_index(int64_t v, int64_t bound, int64_t pos, const char *what, int64_t *out) {
    int64_t w = v < 0 ? v + bound : v;
    if (w < 0 || w >= bound)
        return kiln_fail(KILN_ERR_INVALID,
                         "%s value %lld (at position %lld) is out of range: the bound is %lld (valid: %lld..%lld)",
                         what, (long long)v, (long long)pos, (long long)bound, (long long)-bound,
                         (long long)(bound - 1));
    *out = w;
    return KILN_OK;
}

static kiln_status need_index_dtype(const kiln_tensor *t) {
    if (t->dtype != KILN_DTYPE_INT32 && t->dtype != KILN_DTYPE_INT64)
        return kiln_fail(KILN_ERR_INVALID, "input 'indices' must be int32 or int64, got %s",
                         kiln_dtype_name(t->dtype));
    return KILN_OK;
}

static int64_t index_at(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_DTYPE_INT32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

/* All indices of t, normalised against one bound (malloc'd). */
static kiln_status read_all_indices(const kiln_tensor *t, int64_t bound, int64_t **out) {
    KILN_TRY(need_index_dtype(t));
    int64_t *v = kiln_malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    if (!v)
        return KILN_ERR_NOMEM;
    for (int64_t i = 0; i < t->numel; i++) {
        kiln_status st = check_index(index_at(t, i), bound, i, "index", &v[i]);
        if (st != KILN_OK) {
            free(v);
            return st;
        }
    }
    *out = v;
    return KILN_OK;
}

typedef struct gather_job {
    const char *src;
    char *dst;
    const int64_t *idx;
    int64_t n_idx, axis_len;
    size_t block; /* bytes per gathered slice */
} gather_job;

static void gather_range(void *arg, size_t begin, size_t end) {
    const gather_job *j = arg;
    for (size_t r = begin; r < end; r++) {
        int64_t o = (int64_t)r / j->n_idx, k = (int64_t)r % j->n_idx;
        memcpy(j->dst + r * j->block, j->src + (size_t)(o * j->axis_len + j->idx[k]) * j->block, j->block);
    }
}

static kiln_status gather_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *ind = c->in[1];
    if (x->rank == 0)
        return kiln_fail(KILN_ERR_INVALID, "input 'data' must have rank >= 1");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
    int r = x->rank - 1 + ind->rank;
    if (r > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "output rank %d exceeds kiln's limit of %d", r, KILN_MAX_RANK);
    int64_t *idx;
    KILN_TRY(read_all_indices(ind, x->dims[axis], &idx));
    int64_t dims[KILN_MAX_RANK];
    int k = 0;
    for (int a = 0; a < axis; a++)
        dims[k++] = x->dims[a];
    for (int a = 0; a < ind->rank; a++)
        dims[k++] = ind->dims[a];
    for (int a = axis + 1; a < x->rank; a++)
        dims[k++] = x->dims[a];
    kiln_tensor *y;
    kiln_status st = kiln_op_output(c, 0, x->dtype, r, dims, &y);
    if (st == KILN_OK && y->numel > 0) {
        int64_t outer = 1, inner = 1;
        for (int a = 0; a < axis; a++)
            outer *= x->dims[a];
        for (int a = axis + 1; a < x->rank; a++)
            inner *= x->dims[a];
        gather_job j = {x->data, y->data, idx, ind->numel, x->dims[axis],
                        (size_t)inner * kiln_elem_size(x->dtype)};
        size_t grain = j.block >= 16384 ? 1 : 16384 / j.block;
        kiln_parallel_for(c, (size_t)(outer * ind->numel), grain, gather_range, &j);
        st = kiln_strings_own(y);
    }
    free(idx);
    return st;
}

/* GatherElements (opset 11+): output has the indices' shape; along `axis`
 * the coordinate comes from indices, elsewhere it is the output's own. */
static kiln_status gather_elements_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *ind = c->in[1];
    KILN_TRY(need_index_dtype(ind));
    if (x->rank == 0 || ind->rank != x->rank)
        return kiln_fail(KILN_ERR_INVALID, "data (rank %d) and indices (rank %d) must have the same rank >= 1",
                         x->rank, ind->rank);
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
    for (int a = 0; a < x->rank; a++)
        if (a != axis && ind->dims[a] > x->dims[a])
            return kiln_fail(KILN_ERR_INVALID, "indices dimension %d (%lld) exceeds data's (%lld)", a,
                             (long long)ind->dims[a], (long long)x->dims[a]);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, ind->rank, ind->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    int64_t xs[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    kiln_dims_strides(x->rank, x->dims, xs);
    size_t es = kiln_elem_size(x->dtype);
    for (int64_t i = 0; i < ind->numel; i++) {
        int64_t v = 0;
        kiln_status st = check_index(index_at(ind, i), x->dims[axis], i, "index", &v);
        if (st != KILN_OK) {
            memset(y->data, 0, y->nbytes); /* drop shallow string copies */
            return st;
        }
        int64_t off = 0;
        for (int a = 0; a < x->rank; a++)
            off += (a == axis ? v : pos[a]) * xs[a];
        memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
        for (int a = x->rank - 1; a >= 0; a--) {
            if (++pos[a] < ind->dims[a])
                break;
            pos[a] = 0;
        }
    }
    return kiln_strings_own(y);
}

/* Offsets (in elements of data) of the slices that index tuples of the last
 * indices axis select, for GatherND/ScatterND. batch_dims leading axes are
 * shared by data and indices. */
static kiln_status nd_offsets(const kiln_tensor *x, const kiln_tensor *ind, int b, int64_t **out, int64_t *n_tuples,
                              int64_t *slice) {
    KILN_TRY(need_index_dtype(ind));
    if (ind->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'indices' must have rank >= 1");
    if (b < 0 || b >= ind->rank || b >= x->rank)
        return kiln_fail(KILN_ERR_INVALID, "batch_dims %d must be less than both ranks (%d, %d)", b, x->rank,
                         ind->rank);
    int64_t k = ind->dims[ind->rank - 1];
    if (k < 1 || k > x->rank - b)
        return kiln_fail(KILN_ERR_INVALID, "indices' last dimension %lld must be in 1..%d (data rank - batch_dims)",
                         (long long)k, x->rank - b);
    for (int a = 0; a < b; a++)
        if (x->dims[a] != ind->dims[a])
            return kiln_fail(KILN_ERR_INVALID, "batch dimension %d differs: data %lld, indices %lld", a,
                             (long long)x->dims[a], (long long)ind->dims[a]);
    int64_t xs[KILN_MAX_RANK];
    kiln_dims_strides(x->rank, x->dims, xs);
    int64_t tuples = k ? ind->numel / k : 0, per_batch = 1;
    for (int a = b; a < ind->rank - 1; a++)
        per_batch *= ind->dims[a];
    *slice = 1;
    for (int a = b + (int)k; a < x->rank; a++)
        *slice *= x->dims[a];
    int64_t *off = kiln_malloc((size_t)(tuples ? tuples : 1) * sizeof *off);
    if (!off)
        return KILN_ERR_NOMEM;
    int64_t batch_stride = b > 0 ? xs[b - 1] : 0;
    for (int64_t t = 0; t < tuples; t++) {
        int64_t o = per_batch ? (t / per_batch) * batch_stride : 0;
        for (int64_t d = 0; d < k; d++) {
            int64_t v = 0;
            kiln_status st = check_index(index_at(ind, t * k + d), x->dims[b + d], t * k + d, "index", &v);
            if (st != KILN_OK) {
                free(off);
                return st;
            }
            o += v * xs[b + d];
        }
        off[t] = o;
    }
    *out = off;
    *n_tuples = tuples;
    return KILN_OK;
}

static kiln_status gather_nd_run(kiln_op_ctx *c, bool has_batch_dims) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *ind = c->in[1];
    int64_t bd = has_batch_dims ? kiln_attr_int(c->node, "batch_dims", 0) : 0;
    if (bd < 0 || bd > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'batch_dims' %lld is invalid", (long long)bd);
    int64_t *off, tuples, slice;
    KILN_TRY(nd_offsets(x, ind, (int)bd, &off, &tuples, &slice));
    int64_t k = ind->dims[ind->rank - 1];
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int a = 0; a < ind->rank - 1; a++)
        dims[r++] = ind->dims[a];
    for (int a = (int)bd + (int)k; a < x->rank; a++)
        dims[r++] = x->dims[a];
    kiln_tensor *y;
    kiln_status st = kiln_op_output(c, 0, x->dtype, r, dims, &y);
    if (st == KILN_OK && y->numel > 0) {
        size_t es = kiln_elem_size(x->dtype), block = (size_t)slice * es;
        for (int64_t t = 0; t < tuples; t++)
            memcpy((char *)y->data + (size_t)t * block, (const char *)x->data + (size_t)off[t] * es, block);
        st = kiln_strings_own(y);
    }
    free(off);
    return st;
}

static kiln_status gather_nd_v11(kiln_op_ctx *c) { return gather_nd_run(c, false); }
static kiln_status gather_nd_v12(kiln_op_ctx *c) { return gather_nd_run(c, true); }

/* ---- scatter ---- */

typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } reduction;

/* The `reduction` attribute (opset 16: none/add/mul; max/min from 18). */
static kiln_status read_reduction(kiln_op_ctx *c, kiln_dtype dt, reduction *r) {
    *r = RED_NONE;
    const char *s = kiln_attr_string(c->node, "reduction", "none");
    if (!strcmp(s, "none"))
        return KILN_OK;
    if (!strcmp(s, "add"))
        *r = RED_ADD;
    else if (!strcmp(s, "mul"))
        *r = RED_MUL;
    else if (!strcmp(s, "max") && c->opset >= 18)
        *r = RED_MAX;
    else if (!strcmp(s, "min") && c->opset >= 18)
        *r = RED_MIN;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'reduction' must be none, add or mul, got '%s'", s);
    if (dt == KILN_DTYPE_STRING || dt == KILN_DTYPE_COMPLEX64 || dt == KILN_DTYPE_COMPLEX128)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "reduction '%s' needs numeric data, got %s", s, kiln_dtype_name(dt));
    return KILN_OK;
}

#define RED_T(T, WRAP)                                                                      \
    do {                                                                                    \
        T *d = dst;                                                                         \
        const T *s = src;                                                                   \
        for (int64_t i = 0; i < n; i++)                                                     \
            switch (r) {                                                                    \
            case RED_ADD: d[i] = WRAP ? (T)((uint64_t)d[i] + (uint64_t)s[i]) : (T)(d[i] + s[i]); break; \
            case RED_MUL: d[i] = WRAP ? (T)((uint64_t)d[i] * (uint64_t)s[i]) : (T)(d[i] * s[i]); break; \
            case RED_MAX: d[i] = s[i] > d[i] ? s[i] : d[i]; break;                          \
            case RED_MIN: d[i] = s[i] < d[i] ? s[i] : d[i]; break;                          \
            default: d[i] = s[i]; break;                                                    \
            }                                                                               \
    } while (0)

/* dst[i] = dst[i] (op) src[i] for n elements. */
static void reduce_elems(kiln_dtype dt, reduction r, void *dst, const void *src, int64_t n) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: RED_T(float, 0); break;
    case KILN_DTYPE_DOUBLE: RED_T(double, 0); break;
    case KILN_DTYPE_INT8: RED_T(int8_t, 1); break;
    case KILN_DTYPE_INT16: RED_T(int16_t, 1); break;
    case KILN_DTYPE_INT32: RED_T(int32_t, 1); break;
    case KILN_DTYPE_INT64: RED_T(int64_t, 1); break;
    case KILN_DTYPE_UINT8: RED_T(uint8_t, 1); break;
    case KILN_DTYPE_UINT16: RED_T(uint16_t, 1); break;
    case KILN_DTYPE_UINT32: RED_T(uint32_t, 1); break;
    case KILN_DTYPE_UINT64: RED_T(uint64_t, 1); break;
    case KILN_DTYPE_BOOL: {
        uint8_t *d = dst;
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++)
            d[i] = r == RED_ADD || r == RED_MAX ? (d[i] || s[i]) : (d[i] && s[i]);
        break;
    }
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: {
        uint16_t *d = dst;
        const uint16_t *s = src;
        bool h = dt == KILN_DTYPE_FLOAT16;
        for (int64_t i = 0; i < n; i++) {
            float a = h ? kiln_half_to_float(d[i]) : kiln_bf16_to_float(d[i]);
            float b = h ? kiln_half_to_float(s[i]) : kiln_bf16_to_float(s[i]);
            float v = r == RED_ADD ? a + b : r == RED_MUL ? a * b : r == RED_MAX ? (b > a ? b : a) : (b < a ? b : a);
            d[i] = h ? kiln_float_to_half(v) : kiln_float_to_bf16(v);
        }
        break;
    }
    default: break;
    }
}

/* Writes n update elements at dst: assignment (strings: the old value is
 * freed, the new one copied) or a reduction. */
static kiln_status scatter_elems(kiln_dtype dt, reduction r, void *dst, const void *src, int64_t n) {
    if (r != RED_NONE) {
        reduce_elems(dt, r, dst, src, n);
        return KILN_OK;
    }
    if (dt != KILN_DTYPE_STRING) {
        memcpy(dst, src, (size_t)n * kiln_elem_size(dt));
        return KILN_OK;
    }
    kiln_string *d = dst;
    const kiln_string *s = src;
    for (int64_t i = 0; i < n; i++) {
        free(d[i].data);
        d[i].data = NULL;
        d[i].len = 0;
        char *p = kiln_strndup(s[i].data ? s[i].data : "", s[i].len);
        if (!p)
            return KILN_ERR_NOMEM;
        d[i].data = p;
        d[i].len = s[i].len;
    }
    return KILN_OK;
}

/* Output 0 as a copy of data (taking data's buffer when it dies here and
 * the updates do not live in that same buffer). */
static kiln_status copy_data(kiln_op_ctx *c, const kiln_tensor *x, const kiln_tensor *u, kiln_tensor **y) {
    if (u->buf && u->buf == x->buf)
        KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, y));
    else
        KILN_TRY(kiln_op_output_reuse(c, 0, 0, x->dtype, x->rank, x->dims, y));
    if ((*y)->data != x->data && x->numel > 0) {
        memcpy((*y)->data, x->data, x->nbytes);
        KILN_TRY(kiln_strings_own(*y));
    }
    return KILN_OK;
}

/* ScatterND (opset 11+, reduction from 16): updates has shape
 * indices.shape[:-1] + data.shape[k:]. Updates apply in index order, so a
 * duplicate index with reduction none keeps the last one. */
static kiln_status scatter_nd_run(kiln_op_ctx *c, bool has_reduction) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0], *ind = c->in[1], *u = c->in[2];
    if (u->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "updates (%s) and data (%s) differ in element type",
                         kiln_dtype_name(u->dtype), kiln_dtype_name(x->dtype));
    reduction red = RED_NONE;
    if (has_reduction)
        KILN_TRY(read_reduction(c, x->dtype, &red));
    int64_t *off, tuples, slice;
    KILN_TRY(nd_offsets(x, ind, 0, &off, &tuples, &slice));
    int64_t k = ind->dims[ind->rank - 1];
    int64_t want[KILN_MAX_RANK];
    int wr = 0;
    for (int a = 0; a < ind->rank - 1; a++)
        want[wr++] = ind->dims[a];
    for (int a = (int)k; a < x->rank && wr < KILN_MAX_RANK; a++)
        want[wr++] = x->dims[a];
    bool ok = ind->rank - 1 + x->rank - (int)k == u->rank;
    for (int a = 0; ok && a < u->rank; a++)
        ok = want[a] == u->dims[a];
    if (!ok) {
        char b1[256];
        free(off);
        return kiln_fail(KILN_ERR_INVALID, "updates has shape %s, expected indices.shape[:-1] + data.shape[%lld:]",
                         kiln_dims_str(u->rank, u->dims, b1, sizeof b1), (long long)k);
    }
    kiln_tensor *y;
    kiln_status st = copy_data(c, x, u, &y);
    size_t es = kiln_elem_size(x->dtype);
    for (int64_t t = 0; st == KILN_OK && t < tuples && slice > 0; t++)
        st = scatter_elems(x->dtype, red, (char *)y->data + (size_t)off[t] * es,
                           (const char *)u->data + (size_t)(t * slice) * es, slice);
    free(off);
    return st;
}

/* ScatterElements (opset 11+, reduction from 16) and Scatter (9-10). */
static kiln_status scatter_elements_run(kiln_op_ctx *c, bool has_reduction) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0], *ind = c->in[1], *u = c->in[2];
    KILN_TRY(need_index_dtype(ind));
    if (u->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "updates (%s) and data (%s) differ in element type",
                         kiln_dtype_name(u->dtype), kiln_dtype_name(x->dtype));
    reduction red = RED_NONE;
    if (has_reduction)
        KILN_TRY(read_reduction(c, x->dtype, &red));
    if (x->rank == 0 || ind->rank != x->rank || u->rank != x->rank)
        return kiln_fail(KILN_ERR_INVALID, "data, indices and updates must have the same rank >= 1 (%d, %d, %d)",
                         x->rank, ind->rank, u->rank);
    for (int a = 0; a < x->rank; a++)
        if (u->dims[a] != ind->dims[a])
            return kiln_fail(KILN_ERR_INVALID, "updates and indices must have the same shape (axis %d: %lld vs %lld)",
                             a, (long long)u->dims[a], (long long)ind->dims[a]);
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
    for (int a = 0; a < x->rank; a++)
        if (a != axis && ind->dims[a] > x->dims[a])
            return kiln_fail(KILN_ERR_INVALID, "indices dimension %d (%lld) exceeds data's (%lld)", a,
                             (long long)ind->dims[a], (long long)x->dims[a]);
    int64_t *idx;
    KILN_TRY(read_all_indices(ind, x->dims[axis], &idx));
    kiln_tensor *y;
    kiln_status st = copy_data(c, x, u, &y);
    int64_t xs[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    kiln_dims_strides(x->rank, x->dims, xs);
    size_t es = kiln_elem_size(x->dtype);
    for (int64_t i = 0; st == KILN_OK && i < ind->numel; i++) {
        int64_t off = 0;
        for (int a = 0; a < x->rank; a++)
            off += (a == axis ? idx[i] : pos[a]) * xs[a];
        st = scatter_elems(x->dtype, red, (char *)y->data + (size_t)off * es, (const char *)u->data + (size_t)i * es,
                           1);
        for (int a = x->rank - 1; a >= 0; a--) {
            if (++pos[a] < ind->dims[a])
                break;
            pos[a] = 0;
        }
    }
    free(idx);
    return st;
}

static kiln_status scatter_nd_v11(kiln_op_ctx *c) { return scatter_nd_run(c, false); }
static kiln_status scatter_nd_v16(kiln_op_ctx *c) { return scatter_nd_run(c, true); }
static kiln_status scatter_elements_v9(kiln_op_ctx *c) { return scatter_elements_run(c, false); }
static kiln_status scatter_elements_v16(kiln_op_ctx *c) { return scatter_elements_run(c, true); }

/* ---- shape rules ---- */

/* Gather: data dims around the axis, indices' dims in its place; on a 1-D
 * small integer tensor with known indices, the picked elements. */
static kiln_status gather_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *I = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 1 || I->rank < 0 || X->rank + I->rank - 1 > KILN_MAX_RANK)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", 0), X->rank);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    o->rank = 0;
    for (int i = 0; i < a; i++)
        o->dims[o->rank++] = X->dims[i];
    for (int i = 0; i < I->rank; i++)
        o->dims[o->rank++] = I->dims[i];
    for (int i = a + 1; i < X->rank; i++)
        o->dims[o->rank++] = X->dims[i];
    if (X->nval >= 0 && X->rank == 1 && kiln_fact_vals_const(I) && I->rank <= 1) {
        for (int i = 0; i < I->nval; i++) {
            int64_t ix = I->val[i].num;
            if (ix < 0)
                ix += X->nval;
            if (ix < 0 || ix >= X->nval)
                return kiln_fail(KILN_ERR_INVALID, "index %lld is out of range", (long long)I->val[i].num);
            o->val[i] = X->val[ix];
        }
        o->nval = I->nval;
    }
    return KILN_OK;
}

/* GatherElements: the indices' shape, the data's type. */
static kiln_status gather_elements_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = kiln_infer_in(x, 0)->dt;
    kiln_infer_copy_shape(&x->out[0], kiln_infer_in(x, 1), false);
    return KILN_OK;
}

/* GatherND: batch dims, the indices' leading dims, then the data's dims
 * after the indexed ones. */
static kiln_status gather_nd_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *I = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t b = x->opset >= 12 ? kiln_attr_int(x->node, "batch_dims", 0) : 0;
    if (X->rank < 0 || I->rank < 1 || !kiln_sd_is_const(&I->dims[I->rank - 1]))
        return KILN_OK;
    int64_t last = I->dims[I->rank - 1].num;
    if (b < 0 || b + last > X->rank)
        return kiln_fail(KILN_ERR_INVALID, "indices reach past the data's rank");
    int rank = (int)(I->rank - 1 + X->rank - last - b);
    if (rank > KILN_MAX_RANK)
        return KILN_OK;
    o->rank = 0;
    for (int i = 0; i < I->rank - 1; i++)
        o->dims[o->rank++] = I->dims[i];
    for (int64_t i = b + last; i < X->rank; i++)
        o->dims[o->rank++] = X->dims[i];
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Gather", 1, 0, gather_exec, gather_infer},
    {"", "GatherElements", 11, 0, gather_elements_exec, gather_elements_infer},
    {"", "GatherND", 11, 11, gather_nd_v11, gather_nd_infer},
    {"", "GatherND", 12, 0, gather_nd_v12, gather_nd_infer},
    {"", "ScatterND", 11, 15, scatter_nd_v11, kiln_infer_same},
    {"", "ScatterND", 16, 0, scatter_nd_v16, kiln_infer_same},
    {"", "ScatterElements", 11, 15, scatter_elements_v9, kiln_infer_same},
    {"", "ScatterElements", 16, 0, scatter_elements_v16, kiln_infer_same},
    {"", "Scatter", 9, 10, scatter_elements_v9, kiln_infer_same},
};
KILN_OP_FAMILY(gather, ops);
