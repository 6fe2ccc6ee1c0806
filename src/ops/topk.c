/* TopK: the k largest (or, opset 11+, smallest) elements along an axis with
 * their int64 indices. k is an attribute in opset 1 and a 1-element input
 * from opset 10. Ties keep the lower index first (spec); results are always
 * sorted, which is also valid for sorted=0. */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "kernels/reduce.h"

typedef struct topk_job {
    const void *x;
    void *vals;
    int64_t *idx;
    kiln_dtype dt;
    int64_t outer, r, inner, k;
    bool largest;
    int failed;
} topk_job;

/* One line: keys[0..r) gathered; order[0..k) receives the chosen indices.
 * Small k: a sorted insertion buffer (strict comparison keeps earlier
 * equal elements ahead). Large k: a stable bottom-up merge sort. */
#define TOPK_SELECT(KT)                                                                  \
    static void select_##KT(const KT *keys, int64_t r, int64_t k, bool largest,          \
                            int64_t *order, int64_t *tmp) {                              \
        _Pragma("GCC diagnostic push")                                                   \
        _Pragma("GCC diagnostic ignored \"-Wfloat-equal\"")                              \
        if (k <= 16) {                                                                   \
            int64_t n = 0;                                                               \
            for (int64_t e = 0; e < r; e++) {                                            \
                KT v = keys[e];                                                          \
                if (n == k) {                                                            \
                    KT w = keys[order[n - 1]];                                           \
                    if (!(largest ? v > w : v < w))                                      \
                        continue;                                                        \
                    n--;                                                                 \
                }                                                                        \
                int64_t p = n;                                                           \
                while (p > 0 && (largest ? v > keys[order[p - 1]] : v < keys[order[p - 1]])) { \
                    order[p] = order[p - 1];                                             \
                    p--;                                                                 \
                }                                                                        \
                order[p] = e;                                                            \
                n++;                                                                     \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t e = 0; e < r; e++)                                                  \
            order[e] = e;                                                                \
        int64_t *a = order, *b = tmp;                                                    \
        for (int64_t wdt = 1; wdt < r; wdt *= 2) {                                       \
            for (int64_t lo = 0; lo < r; lo += 2 * wdt) {                                \
                int64_t mid = lo + wdt < r ? lo + wdt : r, hi = lo + 2 * wdt < r ? lo + 2 * wdt : r; \
                int64_t p = lo, q = mid, o = lo;                                         \
                while (p < mid && q < hi) {                                              \
                    KT u = keys[a[p]], v = keys[a[q]];                                   \
                    if (largest ? v > u : v < u)                                         \
                        b[o++] = a[q++];                                                 \
                    else                                                                 \
                        b[o++] = a[p++];                                                 \
                }                                                                        \
                while (p < mid)                                                          \
                    b[o++] = a[p++];                                                     \
                while (q < hi)                                                           \
                    b[o++] = a[q++];                                                     \
            }                                                                            \
            int64_t *t = a;                                                              \
            a = b;                                                                       \
            b = t;                                                                       \
        }                                                                                \
        if (a != order)                                                                  \
            memcpy(order, a, (size_t)r * sizeof *order);                                 \
        _Pragma("GCC diagnostic pop")                                                    \
    }
TOPK_SELECT(double)
TOPK_SELECT(int64_t)
TOPK_SELECT(uint64_t)

static double load_f(const topk_job *j, int64_t off) {
    switch (j->dt) {
    case KILN_DTYPE_FLOAT: return ((const float *)j->x)[off];
    case KILN_DTYPE_DOUBLE: return ((const double *)j->x)[off];
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(((const uint16_t *)j->x)[off]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(((const uint16_t *)j->x)[off]);
    case KILN_DTYPE_INT8: return ((const int8_t *)j->x)[off];
    case KILN_DTYPE_INT16: return ((const int16_t *)j->x)[off];
    case KILN_DTYPE_INT32: return ((const int32_t *)j->x)[off];
    case KILN_DTYPE_UINT8: return ((const uint8_t *)j->x)[off];
    case KILN_DTYPE_UINT16: return ((const uint16_t *)j->x)[off];
    case KILN_DTYPE_UINT32: return ((const uint32_t *)j->x)[off];
    default: return 0;
    }
}

static void topk_range(void *arg, size_t begin, size_t end) {
    topk_job *j = arg;
    int64_t R = j->r, S = j->inner, K = j->k;
    size_t esize = kiln_dtype_size(j->dt);
    /* scratch per range: keys (8 bytes each) and two index arrays */
    char *mem = malloc((size_t)R * 24 + 8);
    if (!mem) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    int64_t *order = (int64_t *)mem, *tmp = order + R;
    void *keys = tmp + R;
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / S, i = (int64_t)t % S;
        int64_t base = o * R * S + i;
        if (j->dt == KILN_DTYPE_INT64) {
            int64_t *kk = keys;
            for (int64_t e = 0; e < R; e++)
                kk[e] = ((const int64_t *)j->x)[base + e * S];
            select_int64_t(kk, R, K, j->largest, order, tmp);
        } else if (j->dt == KILN_DTYPE_UINT64) {
            uint64_t *kk = keys;
            for (int64_t e = 0; e < R; e++)
                kk[e] = ((const uint64_t *)j->x)[base + e * S];
            select_uint64_t(kk, R, K, j->largest, order, tmp);
        } else {
            double *kk = keys;
            for (int64_t e = 0; e < R; e++)
                kk[e] = load_f(j, base + e * S);
            select_double(kk, R, K, j->largest, order, tmp);
        }
        int64_t obase = o * K * S + i;
        for (int64_t e = 0; e < K; e++) {
            int64_t src = base + order[e] * S, dst = obase + e * S;
            j->idx[dst] = order[e];
            memcpy((char *)j->vals + (size_t)dst * esize, (const char *)j->x + (size_t)src * esize, esize);
        }
    }
    free(mem);
}

static kiln_status topk_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (!kiln_reduce_dtype_ok(x->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input 'X' has element type %s, which TopK does not take",
                         kiln_dtype_name(x->dtype));
    if (x->rank == 0)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 1");
    int64_t k;
    if (c->opset < 10) {
        k = kiln_attr_int(c->node, "k", -1);
    } else {
        KILN_TRY(kiln_op_need_inputs(c, 2));
        const kiln_tensor *kt = c->in[1];
        if (kt->dtype != KILN_DTYPE_INT64 || kt->numel != 1)
            return kiln_fail(KILN_ERR_INVALID, "input 'K' must be a 1-element int64 tensor");
        k = ((const int64_t *)kt->data)[0];
    }
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -1), x->rank, &axis));
    if (k < 0 || k > x->dims[axis])
        return kiln_fail(KILN_ERR_INVALID, "k = %lld is out of range for axis %d of size %lld", (long long)k, axis,
                         (long long)x->dims[axis]);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = k;
    kiln_tensor *v, *ix;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, dims, &v));
    KILN_TRY(kiln_op_output(c, 1, KILN_DTYPE_INT64, x->rank, dims, &ix));
    if (v->numel == 0)
        return KILN_OK;
    topk_job j = {x->data, v->data, ix->data, x->dtype, kiln_dims_prod(x->dims, 0, axis), x->dims[axis],
                  kiln_dims_prod(x->dims, axis + 1, x->rank), k,
                  c->opset < 11 || kiln_attr_int(c->node, "largest", 1) != 0, 0};
    size_t lines = (size_t)(j.outer * j.inner);
    kiln_parallel_for(c, lines, j.r >= 4096 ? 1 : (size_t)(4096 / j.r), topk_range, &j);
    if (j.failed)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory for TopK scratch (%lld elements)", (long long)j.r);
    return KILN_OK;
}

/* Shape rule: the axis becomes K (when known); indices are int64. */
static kiln_status topk_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    for (size_t k = 0; k < x->n_out && k < 2; k++) {
        kiln_infer_copy_shape(&x->out[k], X, false);
        x->out[k].dt = k ? KILN_DTYPE_INT64 : X->dt;
    }
    if (X->rank < 1)
        return KILN_OK;
    int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", -1), X->rank);
    if (a < 0)
        return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
    int64_t kv[1];
    int n;
    kiln_sdim K = kiln_sd_unknown();
    if (x->opset < 10 ? kiln_node_attr(x->node, "k") != NULL : kiln_infer_ints(x, 1, NULL, kv, &n, 1) && n == 1)
        K = kiln_sd_const(x->opset < 10 ? kiln_attr_int(x->node, "k", 0) : kv[0]);
    for (size_t k = 0; k < x->n_out && k < 2; k++)
        x->out[k].dims[a] = K;
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "TopK", 1, 0, topk_exec, topk_infer},
};
KILN_OP_FAMILY(topk, ops);
