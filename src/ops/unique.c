/* Unique (opset 11+): unique elements (no axis: of the flattened input) or
 * unique slices along `axis`, compared lexicographically in row-major
 * order. Outputs: Y, indices (first occurrence of each), inverse_indices
 * (for every input element or slice, its position in Y) and counts, all
 * int64 except Y. sorted=1 (default) orders Y ascending; sorted=0 keeps the
 * order of first occurrence. Floats compare as numbers (NaN sorts last,
 * all NaNs equal). */
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef struct uq_ctx {
    const kiln_tensor *x;
    int64_t outer, K, inner;
} uq_ctx;

static int uq_cmp_elem(const kiln_tensor *x, int64_t a, int64_t b) {
    switch (x->dtype) {
    case KILN_DTYPE_STRING: {
        const kiln_string *s = x->data;
        size_t la = s[a].len, lb = s[b].len, n = la < lb ? la : lb;
        int r = n ? memcmp(s[a].data, s[b].data, n) : 0;
        return r ? (r < 0 ? -1 : 1) : la < lb ? -1 : la > lb;
    }
    case KILN_DTYPE_INT64: {
        int64_t u = ((const int64_t *)x->data)[a], v = ((const int64_t *)x->data)[b];
        return u < v ? -1 : u > v;
    }
    case KILN_DTYPE_UINT64: {
        uint64_t u = ((const uint64_t *)x->data)[a], v = ((const uint64_t *)x->data)[b];
        return u < v ? -1 : u > v;
    }
    default: {
        double u = kiln_load_f64(x->data, x->dtype, a), v = kiln_load_f64(x->data, x->dtype, b);
        bool nu = u != u, nv = v != v;
        if (nu || nv)
            return nu == nv ? 0 : nu ? 1 : -1;
        return u < v ? -1 : u > v;
    }
    }
}

static int uq_cmp(const uq_ctx *q, int64_t a, int64_t b) {
    for (int64_t o = 0; o < q->outer; o++)
        for (int64_t i = 0; i < q->inner; i++) {
            int r = uq_cmp_elem(q->x, (o * q->K + a) * q->inner + i, (o * q->K + b) * q->inner + i);
            if (r)
                return r;
        }
    return 0;
}

/* Stable merge sort of idx[0..n) by slice value. */
static void uq_sort(const uq_ctx *q, int64_t *idx, int64_t *tmp, int64_t n) {
    int64_t *a = idx, *b = tmp;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t p = lo, r = mid, o = lo;
            while (p < mid && r < hi)
                b[o++] = uq_cmp(q, a[r], a[p]) < 0 ? a[r++] : a[p++];
            while (p < mid)
                b[o++] = a[p++];
            while (r < hi)
                b[o++] = a[r++];
        }
        int64_t *t = a;
        a = b;
        b = t;
    }
    if (a != idx)
        memcpy(idx, a, (size_t)n * sizeof *idx);
}

static kiln_status uq_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->dtype == KILN_DTYPE_COMPLEX64 || x->dtype == KILN_DTYPE_COMPLEX128 || x->dtype == KILN_DTYPE_UNDEFINED)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input type %s is not supported", kiln_dtype_name(x->dtype));
    bool sorted = kiln_attr_int(c->node, "sorted", 1) != 0;
    const kiln_attr *aa = kiln_node_attr(c->node, "axis");
    uq_ctx q = {x, 1, x->numel, 1};
    int axis = -1;
    if (aa) {
        KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", 0), x->rank, &axis));
        if (x->rank == 0)
            return kiln_fail(KILN_ERR_INVALID, "axis given for a scalar input");
        q.K = x->dims[axis];
        KILN_TRY(kiln_dims_numel(axis, x->dims, &q.outer));
        KILN_TRY(kiln_dims_numel(x->rank - axis - 1, x->dims + axis + 1, &q.inner));
    }
    int64_t K = q.K;
    size_t nk = (size_t)(K ? K : 1);
    kiln_status st = KILN_OK;
    int64_t *order = kiln_calloc(nk, sizeof(int64_t)), *tmp = kiln_calloc(nk, sizeof(int64_t));
    int64_t *group = kiln_calloc(nk, sizeof(int64_t)), *first = kiln_calloc(nk, sizeof(int64_t));
    int64_t *count = kiln_calloc(nk, sizeof(int64_t)), *pos = kiln_calloc(nk, sizeof(int64_t));
    if (!order || !tmp || !group || !first || !count || !pos) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < K; k++)
        order[k] = k;
    if (q.outer * q.inner > 0)
        uq_sort(&q, order, tmp, K);
    /* groups in sorted order: first[g] is the smallest index (stable sort) */
    int64_t U = 0;
    for (int64_t i = 0; i < K; i++) {
        if (i == 0 || uq_cmp(&q, order[i - 1], order[i]) != 0) {
            first[U] = order[i];
            count[U] = 0;
            U++;
        }
        group[order[i]] = U - 1;
        count[U - 1]++;
    }
    /* pos[g]: output position of sorted group g */
    if (sorted) {
        for (int64_t g = 0; g < U; g++)
            pos[g] = g;
    } else {
        /* order of first occurrence: rank groups by first index */
        int64_t u = 0;
        for (int64_t k = 0; k < K; k++)
            if (first[group[k]] == k)
                pos[group[k]] = u++;
    }
    {
        int64_t yd[KILN_MAX_RANK];
        int yr = 1;
        if (aa) {
            yr = x->rank;
            memcpy(yd, x->dims, sizeof(int64_t) * (size_t)x->rank);
            yd[axis] = U;
        } else {
            yd[0] = U;
        }
        kiln_tensor *y, *oi = NULL, *oinv = NULL, *oc = NULL;
        KILN_CHECK(st, kiln_op_output(c, 0, x->dtype, yr, yd, &y), done);
        if (kiln_op_out_wanted(c, 1))
            KILN_CHECK(st, kiln_op_output(c, 1, KILN_DTYPE_INT64, 1, &U, &oi), done);
        if (kiln_op_out_wanted(c, 2))
            KILN_CHECK(st, kiln_op_output(c, 2, KILN_DTYPE_INT64, 1, &K, &oinv), done);
        if (kiln_op_out_wanted(c, 3))
            KILN_CHECK(st, kiln_op_output(c, 3, KILN_DTYPE_INT64, 1, &U, &oc), done);
        size_t es = x->dtype == KILN_DTYPE_STRING ? sizeof(kiln_string) : kiln_dtype_size(x->dtype);
        for (int64_t g = 0; g < U; g++) {
            int64_t p = pos[g], src = first[g];
            if (oi)
                ((int64_t *)oi->data)[p] = src;
            if (oc)
                ((int64_t *)oc->data)[p] = count[g];
            for (int64_t o = 0; o < q.outer; o++) {
                int64_t so = (o * K + src) * q.inner, dof = (o * U + p) * q.inner;
                if (x->dtype == KILN_DTYPE_STRING) {
                    const kiln_string *s = x->data;
                    kiln_string *d = y->data;
                    for (int64_t i = 0; i < q.inner; i++) {
                        d[dof + i].len = s[so + i].len;
                        d[dof + i].data = kiln_strndup(s[so + i].data ? s[so + i].data : "", s[so + i].len);
                        if (!d[dof + i].data) {
                            st = KILN_ERR_NOMEM;
                            goto done;
                        }
                    }
                } else if (q.inner) {
                    memcpy((char *)y->data + (size_t)dof * es, (const char *)x->data + (size_t)so * es,
                           (size_t)q.inner * es);
                }
            }
        }
        if (oinv)
            for (int64_t k = 0; k < K; k++)
                ((int64_t *)oinv->data)[k] = pos[group[k]];
    }
done:
    free(order);
    free(tmp);
    free(group);
    free(first);
    free(count);
    free(pos);
    return st;
}

/* Shape rule: types only (the counts depend on the values): Y as X,
 * indices, inverse_indices and counts int64 and 1-D. */
static kiln_status uq_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    for (size_t k = 0; k < x->n_out && k < 4; k++) {
        x->out[k].dt = k ? KILN_DTYPE_INT64 : X->dt;
        if (k)
            x->out[k].rank = 1, x->out[k].dims[0] = kiln_sd_unknown();
    }
    if (x->n_out > 0 && !kiln_node_attr(x->node, "axis"))
        x->out[0].rank = 1, x->out[0].dims[0] = kiln_sd_unknown();
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Unique", 11, 0, uq_exec, uq_infer},
};
KILN_OP_FAMILY(unique, ops);
