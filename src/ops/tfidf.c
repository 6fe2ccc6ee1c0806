/* TfIdfVectorizer (opset 9): counts the pool's n-grams in each row of X
 * ([C] or [N, C]; int32/int64 with pool_int64s, strings with pool_strings).
 * An n-gram of length n >= 2 with skip s takes items i, i+s+1, ...,
 * i+(n-1)(s+1); skips 0..max_skip_count are all counted; 1-grams once per
 * position. Pool layout: ngram_counts[k] is the item offset of the
 * (k+1)-grams; the j-th n-gram of the whole pool lands in output column
 * ngram_indexes[j]. TF: counts; IDF: min(count, 1) * weight; TFIDF:
 * count * weight (weights default 1). Output float [max index + 1] or
 * [N, max index + 1]. */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

typedef struct tf_ctx {
    const kiln_tensor *x;
    const int64_t *pool_i;
    const kiln_string *pool_s;
    size_t pool_n;
} tf_ctx;

static bool tf_item_eq(const tf_ctx *t, int64_t xi, size_t pi) {
    if (t->pool_s) {
        const kiln_string *a = (const kiln_string *)t->x->data + xi, *b = t->pool_s + pi;
        return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    }
    int64_t v = t->x->dtype == KILN_DTYPE_INT32 ? ((const int32_t *)t->x->data)[xi] : ((const int64_t *)t->x->data)[xi];
    return v == t->pool_i[pi];
}

static kiln_status tfidf_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    const kiln_node *nd = c->node;
    const char *mode = kiln_attr_string(nd, "mode", "");
    int m;
    if (!strcmp(mode, "TF"))
        m = 0;
    else if (!strcmp(mode, "IDF"))
        m = 1;
    else if (!strcmp(mode, "TFIDF"))
        m = 2;
    else
        return kiln_fail(KILN_ERR_INVALID, "mode '%s' is not TF, IDF or TFIDF", mode);
    int64_t mn = kiln_attr_int(nd, "min_gram_length", 0), mx = kiln_attr_int(nd, "max_gram_length", 0);
    int64_t ms = kiln_attr_int(nd, "max_skip_count", 0);
    if (mn < 1 || mx < mn || mx > 1024 || ms < 0 || ms > (1 << 20))
        return kiln_fail(KILN_ERR_INVALID, "need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0");
    size_t ncnt, nidx, nw = 0;
    const int64_t *cnt = kiln_attr_ints(nd, "ngram_counts", &ncnt);
    const int64_t *idx = kiln_attr_ints(nd, "ngram_indexes", &nidx);
    const float *w = kiln_attr_floats(nd, "weights", &nw);
    tf_ctx t = {x, NULL, NULL, 0};
    const kiln_attr *ps = kiln_node_attr(nd, "pool_strings");
    if (ps && ps->type == KILN_ATTR_STRINGS) {
        t.pool_s = ps->strings;
        t.pool_n = ps->n;
        if (x->dtype != KILN_DTYPE_STRING)
            return kiln_fail(KILN_ERR_INVALID, "pool_strings needs a string input, got %s", kiln_dtype_name(x->dtype));
    } else {
        t.pool_i = kiln_attr_ints(nd, "pool_int64s", &t.pool_n);
        if (!t.pool_i && t.pool_n == 0 && !kiln_node_attr(nd, "pool_int64s"))
            return kiln_fail(KILN_ERR_INVALID, "one of pool_strings and pool_int64s is required");
        if (x->dtype != KILN_DTYPE_INT32 && x->dtype != KILN_DTYPE_INT64)
            return kiln_fail(KILN_ERR_INVALID, "pool_int64s needs an int32 or int64 input, got %s",
                             kiln_dtype_name(x->dtype));
    }
    if (!cnt || !idx)
        return kiln_fail(KILN_ERR_INVALID, "ngram_counts and ngram_indexes are required");
    if (w && nw != nidx)
        return kiln_fail(KILN_ERR_INVALID, "weights has %zu values, ngram_indexes %zu", nw, nidx);
    /* validate the pool layout and count its n-grams */
    size_t total_grams = 0;
    for (size_t k = 0; k < ncnt; k++) {
        int64_t lo = cnt[k], hi = k + 1 < ncnt ? cnt[k + 1] : (int64_t)t.pool_n;
        int64_t n = (int64_t)k + 1;
        if (lo < 0 || hi < lo || hi > (int64_t)t.pool_n || (hi - lo) % n != 0)
            return kiln_fail(KILN_ERR_INVALID, "ngram_counts: the %lld-grams span items [%lld, %lld) of a pool of %zu "
                             "items, not a whole number of %lld-grams", (long long)n, (long long)lo, (long long)hi,
                             t.pool_n, (long long)n);
        total_grams += (size_t)((hi - lo) / n);
    }
    if (total_grams != nidx)
        return kiln_fail(KILN_ERR_INVALID, "the pool holds %zu n-grams but ngram_indexes has %zu values", total_grams,
                         nidx);
    int64_t width = 0;
    for (size_t j = 0; j < nidx; j++) {
        if (idx[j] < 0 || idx[j] > ((int64_t)1 << 40))
            return kiln_fail(KILN_ERR_INVALID, "ngram_indexes[%zu] = %lld is out of range", j, (long long)idx[j]);
        if (idx[j] + 1 > width)
            width = idx[j] + 1;
    }
    if (x->rank != 1 && x->rank != 2)
        return kiln_fail(KILN_ERR_INVALID, "X must be [C] or [N, C], got rank %d", x->rank);
    int64_t rows = x->rank == 2 ? x->dims[0] : 1, C = x->dims[x->rank - 1];
    int64_t od[2] = {rows, width};
    kiln_tensor *y;
    if (x->rank == 1)
        KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_FLOAT, 1, &width, &y));
    else
        KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_FLOAT, 2, od, &y));
    float *yd = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        yd[i] = 0.0f;
    int64_t *gc = kiln_calloc(nidx ? nidx : 1, sizeof *gc); /* per pool n-gram counts of one row */
    if (!gc)
        return KILN_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float *yr = yd + r * width;
        memset(gc, 0, (nidx ? nidx : 1) * sizeof *gc);
        int64_t base = r * C;
        for (int64_t n = mn; n <= mx && n <= (int64_t)ncnt; n++) {
            size_t lo = (size_t)cnt[n - 1], hi = n < (int64_t)ncnt ? (size_t)cnt[n] : t.pool_n;
            size_t gram0 = 0; /* index of the first n-gram of this length among all pool n-grams */
            for (int64_t k = 1; k < n; k++) {
                size_t a = (size_t)cnt[k - 1], b = k < (int64_t)ncnt ? (size_t)cnt[k] : t.pool_n;
                gram0 += (b - a) / (size_t)k;
            }
            int64_t smax = n == 1 ? 0 : ms;
            for (int64_t s = 0; s <= smax; s++)
                for (int64_t i = 0; i + (n - 1) * (s + 1) < C; i++)
                    for (size_t p = lo, g = gram0; p < hi; p += (size_t)n, g++) {
                        bool eq = true;
                        for (int64_t q = 0; q < n && eq; q++)
                            eq = tf_item_eq(&t, base + i + q * (s + 1), p + (size_t)q);
                        if (eq) {
                            gc[g]++;
                            break;
                        }
                    }
        }
        for (size_t j = 0; j < nidx; j++) {
            float v = (float)gc[j];
            if (m == 1 && v > 1.0f)
                v = 1.0f;
            yr[idx[j]] += m == 0 ? v : v * (w ? w[j] : 1.0f);
        }
    }
    free(gc);
    return KILN_OK;
}

/* Shape rule: float32 of the input's rank (the last dim counts n-grams). */
static kiln_status tfidf_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = KILN_DTYPE_FLOAT;
    kiln_infer_copy_shape(&x->out[0], X, false);
    if (x->out[0].rank > 0)
        x->out[0].dims[x->out[0].rank - 1] = kiln_sd_unknown();
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "TfIdfVectorizer", 9, 0, tfidf_exec, tfidf_infer},
};
KILN_OP_FAMILY(tfidf, ops);
