/* Einsum (opset 12): general equations with explicit or implicit output,
 * ellipsis broadcasting and repeated labels (diagonals).
 *
 * Each operand is first brought into a contiguous work buffer over its unique
 * labels (a strided copy takes diagonals), labels used nowhere else are summed
 * out, then operands are contracted left to right: each pair is packed as
 * [batch, M, K] x [batch, K, N] and multiplied row by row, so batched matmul,
 * transposes, sums, inner and outer products all take the same path. */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "kernels/reduce.h"

#define EI_LETTERS 52
#define EI_MAXLAB (EI_LETTERS + KILN_MAX_RANK)

typedef enum { W_F32, W_F64, W_I64 } work_type;

typedef struct ei_op {
    int n;                    /* labels */
    int lab[KILN_MAX_RANK];
    int64_t dims[KILN_MAX_RANK];
    void *data;               /* contiguous, work type */
    bool owned;               /* false: borrowed from a float32 input */
    int64_t numel;
} ei_op;

typedef struct ei_ctx {
    kiln_op_ctx *c;
    work_type wt;
    size_t wsize;
    kiln_dtype wdt;
    int64_t size[EI_MAXLAB]; /* global size per label, -1 unused */
} ei_ctx;

static int letter_id(char ch) {
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a';
    if (ch >= 'A' && ch <= 'Z')
        return 26 + ch - 'A';
    return -1;
}

/* Parses one term into labels; ellipsis dims get ids EI_LETTERS + k, aligned
 * from the right against `ell` total ellipsis dims. */
static kiln_status parse_term(const char *s, size_t len, int rank, int ell_total, int *labs, int *n_out,
                              int *ell_rank, bool is_output) {
    int n_letters = 0;
    bool has_ell = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (has_ell || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                return kiln_fail(KILN_ERR_INVALID, "equation term '%.*s' has a malformed ellipsis", (int)len, s);
            has_ell = true;
            i += 2;
        } else if (letter_id(s[i]) >= 0) {
            n_letters++;
        } else {
            return kiln_fail(KILN_ERR_INVALID, "equation term '%.*s' has an invalid character '%c'", (int)len, s, s[i]);
        }
    }
    int e = 0;
    if (!is_output) {
        e = rank - n_letters;
        if (e < 0 || (!has_ell && e != 0))
            return kiln_fail(KILN_ERR_INVALID, "equation term '%.*s' has %d labels for an input of rank %d", (int)len, s,
                             n_letters, rank);
    } else {
        e = has_ell ? ell_total : 0;
    }
    if (n_letters + e > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "equation term '%.*s' has too many dimensions", (int)len, s);
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            for (int k = 0; k < e; k++)
                labs[n++] = EI_LETTERS + (ell_total - e) + k;
            i += 2;
        } else {
            labs[n++] = letter_id(s[i]);
        }
    }
    *n_out = n;
    if (ell_rank)
        *ell_rank = e;
    return KILN_OK;
}

static void *work_alloc(const ei_ctx *e, int64_t n) { return kiln_malloc((size_t)(n ? n : 1) * e->wsize); }

/* Input tensor -> work buffer of the same shape. */
static kiln_status to_work(const ei_ctx *e, const kiln_tensor *t, void **out) {
    if (t->dtype == KILN_DTYPE_FLOAT || t->dtype == KILN_DTYPE_DOUBLE || t->dtype == KILN_DTYPE_INT64) {
        *out = t->data; /* already the work type: borrowed */
        return KILN_OK;
    }
    void *w = work_alloc(e, t->numel);
    if (!w)
        return KILN_ERR_NOMEM;
    for (int64_t i = 0; i < t->numel; i++) {
        switch (e->wt) {
        case W_F32:
            ((float *)w)[i] = t->dtype == KILN_DTYPE_FLOAT ? ((const float *)t->data)[i]
                              : t->dtype == KILN_DTYPE_FLOAT16 ? kiln_half_to_float(((const uint16_t *)t->data)[i])
                                                               : kiln_bf16_to_float(((const uint16_t *)t->data)[i]);
            break;
        case W_F64: ((double *)w)[i] = ((const double *)t->data)[i]; break;
        case W_I64: ((int64_t *)w)[i] = kiln_tensor_get_i64(t, i); break;
        }
    }
    *out = w;
    return KILN_OK;
}

/* Sums out labels of `o` that `keep` does not contain. */
static kiln_status sum_out(ei_ctx *e, ei_op *o, const bool *keep) {
    bool mask[KILN_MAX_RANK], any = false;
    for (int i = 0; i < o->n; i++) {
        mask[i] = !keep[o->lab[i]];
        any |= mask[i];
    }
    if (!any)
        return KILN_OK;
    kiln_tensor x = {0}, y = {0};
    x.dtype = y.dtype = e->wdt;
    x.rank = o->n;
    memcpy(x.dims, o->dims, sizeof(int64_t) * (size_t)o->n);
    x.numel = o->numel;
    x.nbytes = (size_t)o->numel * e->wsize;
    x.data = o->data;
    int n = 0;
    int64_t numel = 1;
    for (int i = 0; i < o->n; i++)
        if (!mask[i]) {
            o->lab[n] = o->lab[i];
            o->dims[n++] = o->dims[i];
            numel *= o->dims[i];
        }
    y.rank = n;
    memcpy(y.dims, o->dims, sizeof(int64_t) * (size_t)n);
    y.numel = numel;
    y.nbytes = (size_t)numel * e->wsize;
    y.data = work_alloc(e, numel);
    if (!y.data)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_reduce(kiln_op_pool(e->c), KILN_RED_SUM, &x, mask, &y);
    if (o->owned)
        free(o->data);
    o->data = y.data;
    o->owned = true;
    o->n = n;
    o->numel = numel;
    return st;
}

/* Copies operand o's labels `labs` (a subset order of its labels, others must
 * not exist) at global sizes (broadcasting size-1 dims) into a new buffer. */
static kiln_status pack(ei_ctx *e, const ei_op *o, int n, const int *labs, void **out, int64_t *numel) {
    int64_t st[KILN_MAX_RANK], dims[KILN_MAX_RANK], ps[KILN_MAX_RANK];
    kiln_dims_strides(o->n, o->dims, st);
    int64_t total = 1;
    for (int i = 0; i < n; i++) {
        dims[i] = e->size[labs[i]];
        ps[i] = 0;
        for (int k = 0; k < o->n; k++)
            if (o->lab[k] == labs[i])
                ps[i] = o->dims[k] == 1 ? 0 : st[k];
        if (kiln_mul_overflow_i64(total, dims[i], &total))
            return kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
    }
    void *buf = work_alloc(e, total);
    if (!buf)
        return KILN_ERR_NOMEM;
    kiln_strided_copy(kiln_op_pool(e->c), buf, o->data, e->wsize, n, dims, ps);
    *out = buf;
    *numel = total;
    return KILN_OK;
}

typedef struct gemm_job {
    work_type wt;
    const void *a, *b;
    void *c;
    int64_t m, k, n;
} gemm_job;

/* Tasks are blocks of up to 4 rows of one batch entry: each row of B is
 * loaded once per block and feeds 4 rows of C. */
#define GEMM_ROWS(T)                                                                   \
    do {                                                                               \
        int64_t nb = (j->m + 3) / 4;                                                   \
        for (size_t t = begin; t < end; t++) {                                         \
            int64_t bt = (int64_t)t / nb, r0 = ((int64_t)t % nb) * 4;                  \
            int64_t nr = j->m - r0 < 4 ? j->m - r0 : 4;                                \
            const T *a = (const T *)j->a + (bt * j->m + r0) * j->k;                    \
            const T *b = (const T *)j->b + bt * j->k * j->n;                           \
            T *c = (T *)j->c + (bt * j->m + r0) * j->n;                                \
            for (int64_t q = 0; q < nr * j->n; q++)                                    \
                c[q] = 0;                                                              \
            if (nr == 4) {                                                             \
                T *c0 = c, *c1 = c + j->n, *c2 = c + 2 * j->n, *c3 = c + 3 * j->n;     \
                for (int64_t p = 0; p < j->k; p++) {                                   \
                    T a0 = a[p], a1 = a[j->k + p], a2 = a[2 * j->k + p], a3 = a[3 * j->k + p]; \
                    const T *bp = b + p * j->n;                                        \
                    for (int64_t q = 0; q < j->n; q++) {                               \
                        T bv = bp[q];                                                  \
                        c0[q] += a0 * bv;                                              \
                        c1[q] += a1 * bv;                                              \
                        c2[q] += a2 * bv;                                              \
                        c3[q] += a3 * bv;                                              \
                    }                                                                  \
                }                                                                      \
            } else {                                                                   \
                for (int64_t rr = 0; rr < nr; rr++)                                    \
                    for (int64_t p = 0; p < j->k; p++) {                               \
                        T av = a[rr * j->k + p];                                       \
                        const T *bp = b + p * j->n;                                    \
                        T *cr = c + rr * j->n;                                         \
                        for (int64_t q = 0; q < j->n; q++)                             \
                            cr[q] += av * bp[q];                                       \
                    }                                                                  \
            }                                                                          \
        }                                                                              \
    } while (0)

static void gemm_range(void *arg, size_t begin, size_t end) {
    const gemm_job *j = arg;
    switch (j->wt) {
    case W_F32: GEMM_ROWS(float); break;
    case W_F64: GEMM_ROWS(double); break;
    case W_I64: {
        /* wrapping integer products, one row per task */
        for (size_t t = begin; t < end; t++) {
            int64_t bt = (int64_t)t / j->m, r = (int64_t)t % j->m;
            const int64_t *a = (const int64_t *)j->a + (bt * j->m + r) * j->k;
            const int64_t *b = (const int64_t *)j->b + bt * j->k * j->n;
            int64_t *c = (int64_t *)j->c + (bt * j->m + r) * j->n;
            for (int64_t q = 0; q < j->n; q++)
                c[q] = 0;
            for (int64_t p = 0; p < j->k; p++)
                for (int64_t q = 0; q < j->n; q++)
                    c[q] = (int64_t)((uint64_t)c[q] + (uint64_t)a[p] * (uint64_t)b[p * j->n + q]);
        }
        break;
    }
    }
}

/* A x B -> result over batch + a-only + b-only labels. */
static kiln_status contract(ei_ctx *e, ei_op *a, ei_op *b, const bool *needed, ei_op *out) {
    int bl[KILN_MAX_RANK], al[KILN_MAX_RANK], kl[KILN_MAX_RANK], nl[KILN_MAX_RANK];
    int nb = 0, na = 0, nk = 0, nn = 0;
    for (int i = 0; i < a->n; i++) {
        int l = a->lab[i];
        bool in_b = false;
        for (int k = 0; k < b->n; k++)
            in_b |= b->lab[k] == l;
        if (in_b && needed[l])
            bl[nb++] = l;
        else if (in_b)
            kl[nk++] = l;
        else
            al[na++] = l;
    }
    for (int i = 0; i < b->n; i++) {
        int l = b->lab[i];
        bool in_a = false;
        for (int k = 0; k < a->n; k++)
            in_a |= a->lab[k] == l;
        if (!in_a)
            nl[nn++] = l;
    }
    if (nb + na + nn > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "intermediate result has more than %d dimensions", KILN_MAX_RANK);
    int la[2 * KILN_MAX_RANK], lb[2 * KILN_MAX_RANK];
    int64_t B = 1, M = 1, K = 1, N = 1;
    int p = 0;
    for (int i = 0; i < nb; i++) {
        la[p++] = bl[i];
        if (kiln_mul_overflow_i64(B, e->size[bl[i]], &B))
            return kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
    }
    for (int i = 0; i < na; i++) {
        la[p++] = al[i];
        if (kiln_mul_overflow_i64(M, e->size[al[i]], &M))
            return kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
    }
    for (int i = 0; i < nk; i++) {
        la[p++] = kl[i];
        if (kiln_mul_overflow_i64(K, e->size[kl[i]], &K))
            return kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
    }
    int q = 0;
    for (int i = 0; i < nb; i++)
        lb[q++] = bl[i];
    for (int i = 0; i < nk; i++)
        lb[q++] = kl[i];
    for (int i = 0; i < nn; i++) {
        lb[q++] = nl[i];
        if (kiln_mul_overflow_i64(N, e->size[nl[i]], &N))
            return kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
    }
    void *pa = NULL, *pb = NULL;
    int64_t ca, cb;
    kiln_status st;
    KILN_CHECK(st, pack(e, a, p, la, &pa, &ca), fail);
    KILN_CHECK(st, pack(e, b, q, lb, &pb, &cb), fail);
    int64_t total;
    if (kiln_mul_overflow_i64(B, M, &total) || kiln_mul_overflow_i64(total, N, &total)) {
        st = kiln_fail(KILN_ERR_LIMIT, "intermediate result is too large");
        goto fail;
    }
    out->data = work_alloc(e, total);
    if (!out->data) {
        st = KILN_ERR_NOMEM;
        goto fail;
    }
    out->numel = total;
    out->owned = true;
    out->n = 0;
    for (int i = 0; i < nb; i++)
        out->lab[out->n++] = bl[i];
    for (int i = 0; i < na; i++)
        out->lab[out->n++] = al[i];
    for (int i = 0; i < nn; i++)
        out->lab[out->n++] = nl[i];
    for (int i = 0; i < out->n; i++)
        out->dims[i] = e->size[out->lab[i]];
    if (total > 0) {
        gemm_job j = {e->wt, pa, pb, out->data, M, K, N};
        int64_t per = K * N, rows = e->wt == W_I64 ? M : (M + 3) / 4;
        if (e->wt != W_I64)
            per *= 4;
        kiln_parallel_for(e->c, (size_t)(B * rows), per >= 16384 ? 1 : (size_t)(16384 / (per ? per : 1)), gemm_range,
                          &j);
    }
fail:
    free(pa);
    free(pb);
    return st;
}

static kiln_status einsum_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const char *eq = kiln_attr_string(c->node, "equation", NULL);
    if (!eq)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'equation' is missing");
    kiln_dtype dt = c->in[0]->dtype;
    ei_ctx e = {.c = c};
    switch (dt) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
        e.wt = W_F32; e.wsize = 4; e.wdt = KILN_DTYPE_FLOAT; break;
    case KILN_DTYPE_DOUBLE: e.wt = W_F64; e.wsize = 8; e.wdt = KILN_DTYPE_DOUBLE; break;
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        e.wt = W_I64; e.wsize = 8; e.wdt = KILN_DTYPE_INT64; break;
    default:
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input 0 has element type %s, which Einsum does not take",
                         kiln_dtype_name(dt));
    }
    /* strip spaces */
    char buf[1024];
    size_t bl = 0;
    for (const char *s = eq; *s; s++)
        if (*s != ' ') {
            if (bl + 1 >= sizeof buf)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'equation' is too long");
            buf[bl++] = *s;
        }
    buf[bl] = 0;
    char *arrow = strstr(buf, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - buf) : bl;
    size_t n_in = c->n_in;
    /* split the left-hand side */
    size_t starts[64], lens[64], nt = 0, st0 = 0;
    for (size_t i = 0; i <= lhs_len; i++)
        if (i == lhs_len || buf[i] == ',') {
            if (nt == 64)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "too many operands in the equation");
            starts[nt] = st0;
            lens[nt++] = i - st0;
            st0 = i + 1;
        }
    if (nt != n_in)
        return kiln_fail(KILN_ERR_INVALID, "equation '%s' has %zu operand terms but the node has %zu inputs", eq, nt,
                         n_in);
    for (size_t i = 0; i < n_in; i++) {
        if (!c->in[i])
            return kiln_fail(KILN_ERR_INVALID, "input %zu is missing", i);
        if (c->in[i]->dtype != dt)
            return kiln_fail(KILN_ERR_INVALID, "inputs have different element types");
    }
    /* ellipsis rank: the largest over operands */
    int ell_total = 0;
    int labs[64][KILN_MAX_RANK], nlab[64], ell[64];
    for (size_t i = 0; i < n_in; i++) {
        KILN_TRY(parse_term(buf + starts[i], lens[i], c->in[i]->rank, KILN_MAX_RANK, labs[i], &nlab[i], &ell[i], false));
        if (ell[i] > ell_total)
            ell_total = ell[i];
    }
    for (int l = 0; l < EI_MAXLAB; l++)
        e.size[l] = -1;
    int count[EI_MAXLAB] = {0};
    for (size_t i = 0; i < n_in; i++) {
        KILN_TRY(parse_term(buf + starts[i], lens[i], c->in[i]->rank, ell_total, labs[i], &nlab[i], &ell[i], false));
        for (int k = 0; k < nlab[i]; k++) {
            int l = labs[i][k];
            int64_t d = c->in[i]->dims[k];
            count[l]++;
            if (e.size[l] < 0 || (l >= EI_LETTERS && e.size[l] == 1))
                e.size[l] = d;
            else if (d != e.size[l] && !(l >= EI_LETTERS && d == 1))
                return kiln_fail(KILN_ERR_INVALID, "label '%c' has inconsistent sizes across operands",
                                 l < 26 ? 'a' + l : l < EI_LETTERS ? 'A' + l - 26 : '.');
        }
    }
    int out_lab[KILN_MAX_RANK], n_out = 0;
    if (arrow) {
        KILN_TRY(parse_term(arrow + 2, strlen(arrow + 2), 0, ell_total, out_lab, &n_out, NULL, true));
        for (int i = 0; i < n_out; i++) {
            if (count[out_lab[i]] == 0)
                return kiln_fail(KILN_ERR_INVALID, "output label %d of equation '%s' is not in any input", i, eq);
            for (int k = 0; k < i; k++)
                if (out_lab[k] == out_lab[i])
                    return kiln_fail(KILN_ERR_INVALID, "output of equation '%s' repeats a label", eq);
        }
    } else {
        /* implicit: ellipsis dims, then labels used once, alphabetically */
        for (int k = 0; k < ell_total; k++)
            out_lab[n_out++] = EI_LETTERS + k;
        static const char order[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        for (const char *o = order; *o; o++) {
            int l = letter_id(*o);
            if (count[l] == 1) {
                if (n_out == KILN_MAX_RANK)
                    return kiln_fail(KILN_ERR_UNSUPPORTED, "output has too many dimensions");
                out_lab[n_out++] = l;
            }
        }
    }
    int64_t odims[KILN_MAX_RANK];
    for (int i = 0; i < n_out; i++)
        odims[i] = e.size[out_lab[i]];
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, n_out, odims, &y));

    kiln_status st = KILN_OK;
    ei_op *ops = kiln_calloc(n_in, sizeof *ops);
    ei_op res = {0};
    void *fin = NULL;
    if (!ops)
        return KILN_ERR_NOMEM;
    bool in_out[EI_MAXLAB] = {false};
    for (int i = 0; i < n_out; i++)
        in_out[out_lab[i]] = true;
    /* operands: diagonals, then sum out labels used nowhere else */
    for (size_t i = 0; i < n_in; i++) {
        const kiln_tensor *t = c->in[i];
        void *w = NULL;
        KILN_CHECK(st, to_work(&e, t, &w), done);
        bool w_owned = w != t->data;
        int64_t ts[KILN_MAX_RANK], ud[KILN_MAX_RANK], us[KILN_MAX_RANK];
        kiln_dims_strides(t->rank, t->dims, ts);
        ei_op *o = &ops[i];
        o->n = 0;
        for (int k = 0; k < nlab[i]; k++) {
            int l = labs[i][k], f = -1;
            for (int m = 0; m < o->n; m++)
                if (o->lab[m] == l)
                    f = m;
            if (f >= 0) {
                if (ud[f] != t->dims[k]) {
                    if (w_owned)
                        free(w);
                    st = kiln_fail(KILN_ERR_INVALID, "repeated label in operand %zu has different sizes", i);
                    goto done;
                }
                us[f] += ts[k];
            } else {
                o->lab[o->n] = l;
                ud[o->n] = t->dims[k];
                us[o->n++] = ts[k];
            }
        }
        memcpy(o->dims, ud, sizeof(int64_t) * (size_t)o->n);
        o->numel = kiln_dims_prod(ud, 0, o->n);
        if (o->n == nlab[i]) {
            o->data = w;
            o->owned = w_owned;
        } else {
            o->data = work_alloc(&e, o->numel);
            o->owned = true;
            if (!o->data) {
                if (w_owned)
                    free(w);
                st = KILN_ERR_NOMEM;
                goto done;
            }
            kiln_strided_copy(kiln_op_pool(c), o->data, w, e.wsize, o->n, ud, us);
            if (w_owned)
                free(w);
        }
        bool keep[EI_MAXLAB];
        for (int l = 0; l < EI_MAXLAB; l++) {
            keep[l] = in_out[l];
            for (size_t m = 0; m < n_in && !keep[l]; m++) {
                if (m == i)
                    continue;
                for (int k = 0; k < nlab[m]; k++)
                    keep[l] |= labs[m][k] == l;
            }
        }
        KILN_CHECK(st, sum_out(&e, o, keep), done);
    }
    res = ops[0];
    ops[0].data = NULL;
    for (size_t i = 1; i < n_in; i++) {
        bool needed[EI_MAXLAB];
        for (int l = 0; l < EI_MAXLAB; l++) {
            needed[l] = in_out[l];
            for (size_t m = i + 1; m < n_in; m++)
                for (int k = 0; k < nlab[m]; k++)
                    needed[l] |= labs[m][k] == l;
        }
        ei_op nr = {0};
        KILN_CHECK(st, contract(&e, &res, &ops[i], needed, &nr), done);
        if (res.owned)
            free(res.data);
        res = nr;
        if (ops[i].owned)
            free(ops[i].data);
        ops[i].data = NULL;
    }
    /* labels summed only at the end (single operand with labels not in the output) */
    KILN_CHECK(st, sum_out(&e, &res, in_out), done);
    int64_t n_fin;
    if (dt == e.wdt) {
        /* the result is already in the output type: lay it out in place */
        int64_t rs[KILN_MAX_RANK], ps[KILN_MAX_RANK];
        kiln_dims_strides(res.n, res.dims, rs);
        for (int i = 0; i < n_out; i++) {
            ps[i] = 0;
            for (int k = 0; k < res.n; k++)
                if (res.lab[k] == out_lab[i])
                    ps[i] = res.dims[k] == 1 ? 0 : rs[k];
        }
        if (y->numel > 0)
            kiln_strided_copy(kiln_op_pool(c), y->data, res.data, e.wsize, n_out, odims, ps);
        goto done;
    }
    KILN_CHECK(st, pack(&e, &res, n_out, out_lab, &fin, &n_fin), done);
    for (int64_t i = 0; i < y->numel; i++) {
        switch (dt) {
        case KILN_DTYPE_FLOAT: ((float *)y->data)[i] = ((float *)fin)[i]; break;
        case KILN_DTYPE_FLOAT16: ((uint16_t *)y->data)[i] = kiln_float_to_half(((float *)fin)[i]); break;
        case KILN_DTYPE_BFLOAT16: ((uint16_t *)y->data)[i] = kiln_float_to_bf16(((float *)fin)[i]); break;
        case KILN_DTYPE_DOUBLE: ((double *)y->data)[i] = ((double *)fin)[i]; break;
        case KILN_DTYPE_INT8: ((int8_t *)y->data)[i] = (int8_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_INT16: ((int16_t *)y->data)[i] = (int16_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_INT32: ((int32_t *)y->data)[i] = (int32_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_INT64: ((int64_t *)y->data)[i] = ((int64_t *)fin)[i]; break;
        case KILN_DTYPE_UINT8: ((uint8_t *)y->data)[i] = (uint8_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_UINT16: ((uint16_t *)y->data)[i] = (uint16_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_UINT32: ((uint32_t *)y->data)[i] = (uint32_t)((int64_t *)fin)[i]; break;
        case KILN_DTYPE_UINT64: ((uint64_t *)y->data)[i] = (uint64_t)((int64_t *)fin)[i]; break;
        default: break;
        }
    }
done:
    for (size_t i = 0; i < n_in; i++)
        if (ops[i].owned)
            free(ops[i].data);
    free(ops);
    if (res.owned)
        free(res.data);
    free(fin);
    return st;
}

/* Shape rule: the type of the operands (the shape follows the equation). */
static kiln_status einsum_infer(kiln_infer_ctx *x) {
    if (x->n_out > 0)
        x->out[0].dt = kiln_infer_in(x, 0)->dt;
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Einsum", 12, 0, einsum_exec, einsum_infer},
};
KILN_OP_FAMILY(einsum, ops);
