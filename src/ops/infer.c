/* Shape rules' shared parts: the symbolic-dimension algebra, facts, and
 * the helpers and ready-made rules of infer.h. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ops/conv_attrs.h"
#include "ops/infer.h"
#include "ops/op.h"
#include "kernels/conv.h"

typedef kiln_shape_fact fact;
typedef kiln_sdim sdim;

/* ---- symbolic dims ---- */

sdim kiln_sd_unknown(void) { return (sdim){0}; }
sdim kiln_sd_const(int64_t v) { return (sdim){.known = true, .num = v, .den = 1}; }
bool kiln_sd_is_const(const sdim *d) { return d->known && d->n == 0 && d->den == 1; }
bool kiln_sd_is(const sdim *d, int64_t v) { return kiln_sd_is_const(d) && d->num == v; }

static int64_t gcd64(int64_t a, int64_t b) {
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a ? a : 1;
}

static sdim sd_norm(sdim d) {
    if (!d.known || d.den == 0)
        return kiln_sd_unknown();
    if (d.den < 0) {
        d.den = -d.den;
        d.num = -d.num;
    }
    int64_t g = gcd64(d.num, d.den);
    d.num /= g;
    d.den /= g;
    if (d.num == 0) {
        d.n = 0;
        d.den = 1;
    }
    return d;
}

bool kiln_sdim_eq(const kiln_sdim *a, const kiln_sdim *b) {
    if (!a->known || !b->known || a->n != b->n || a->num != b->num || a->den != b->den)
        return false;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->sym[i], b->sym[i]) != 0)
            return false;
    return true;
}

sdim kiln_sd_mul(sdim a, sdim b) {
    if (kiln_sd_is(&a, 0) || kiln_sd_is(&b, 0))
        return kiln_sd_const(0);
    if (!a.known || !b.known || a.n + b.n > KILN_SDIM_MAXSYM)
        return kiln_sd_unknown();
    /* floor(s/2)*2 is not s: only whole monomials multiply */
    if ((a.den != 1 && !kiln_sd_is(&b, 1)) || (b.den != 1 && !kiln_sd_is(&a, 1)))
        return kiln_sd_unknown();
    sdim r = {.known = true};
    if (kiln_mul_overflow_i64(a.num, b.num, &r.num) || kiln_mul_overflow_i64(a.den, b.den, &r.den))
        return kiln_sd_unknown();
    int i = 0, j = 0;
    while (i < a.n || j < b.n) {
        if (j >= b.n || (i < a.n && strcmp(a.sym[i], b.sym[j]) <= 0))
            r.sym[r.n++] = a.sym[i++];
        else
            r.sym[r.n++] = b.sym[j++];
    }
    return sd_norm(r);
}

/* Exact division (a = q * b), or unknown. */
sdim kiln_sd_div_exact(sdim a, sdim b) {
    if (!a.known || !b.known || kiln_sd_is(&b, 0) || b.den != 1 || a.den != 1)
        return kiln_sd_unknown();
    sdim r = a;
    for (int j = 0; j < b.n; j++) {
        int k = -1;
        for (int i = 0; i < r.n; i++)
            if (!strcmp(r.sym[i], b.sym[j])) {
                k = i;
                break;
            }
        if (k < 0)
            return kiln_sd_unknown();
        memmove(&r.sym[k], &r.sym[k + 1], (size_t)(r.n - k - 1) * sizeof *r.sym);
        r.n--;
    }
    if (r.num % b.num != 0)
        return kiln_sd_unknown();
    r.num /= b.num;
    return sd_norm(r);
}

/* Integer division as the Div op does it (truncating; symbols are
 * non-negative dims, where truncating is flooring). */
sdim kiln_sd_div(sdim a, sdim b) {
    if (kiln_sd_is_const(&a) && kiln_sd_is_const(&b) && b.num != 0) {
        if (a.num == INT64_MIN && b.num == -1)
            return kiln_sd_unknown();
        return kiln_sd_const(a.num / b.num); /* integer Div truncates */
    }
    sdim e = kiln_sd_div_exact(a, b);
    if (e.known)
        return e;
    if (a.known && kiln_sd_is_const(&b) && b.num > 0 && a.den == 1)
        return sd_norm((sdim){.known = true, .n = a.n, .num = a.num, .den = b.num,
                              .sym = {a.sym[0], a.sym[1], a.sym[2], a.sym[3]}});
    return kiln_sd_unknown();
}

sdim kiln_sd_add(sdim a, sdim b, int sign) {
    if (!a.known || !b.known)
        return kiln_sd_unknown();
    if (kiln_sd_is(&b, 0))
        return a;
    if (kiln_sd_is(&a, 0) && sign > 0)
        return b;
    if (a.n != b.n || a.den != b.den)
        return kiln_sd_unknown();
    for (int i = 0; i < a.n; i++)
        if (strcmp(a.sym[i], b.sym[i]) != 0)
            return kiln_sd_unknown();
    a.num = sign > 0 ? a.num + b.num : a.num - b.num;
    if (a.num == 0)
        return kiln_sd_const(0);
    if (a.n == 0)
        return sd_norm(a);
    return a.num > 0 ? sd_norm(a) : kiln_sd_unknown();
}

static void sd_str(const sdim *d, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    if (d->num != 1 || d->n == 0)
        o += (size_t)snprintf(buf + o, n - o, "%lld", (long long)d->num);
    for (int i = 0; i < d->n && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? "*" : "", d->sym[i]);
    if (d->den != 1 && o < n)
        snprintf(buf + o, n - o, "/%lld", (long long)d->den);
}

sdim kiln_sd_sym(const char *s) {
    return s ? (sdim){.known = true, .n = 1, .num = 1, .den = 1, .sym = {s}} : kiln_sd_unknown();
}

void kiln_sdim_str(const kiln_sdim *d, char *buf, size_t n) {
    if (!d->known)
        snprintf(buf, n, "?");
    else
        sd_str(d, buf, n);
}

/* ---- facts ---- */

size_t kiln_fact_size(const kiln_shape_fact *f) {
    return offsetof(kiln_shape_fact, val) + (size_t)(f->nval > 0 ? f->nval : 0) * sizeof(kiln_sdim);
}

void kiln_fact_copy(kiln_shape_fact *dst, const kiln_shape_fact *src) {
    memcpy(dst, src, kiln_fact_size(src));
}

void kiln_fact_unknown(fact *f, kiln_dtype dt) {
    memset(f, 0, offsetof(kiln_shape_fact, val));
    f->dt = dt;
    f->rank = -1;
    f->nval = -1;
}

static bool is_int(kiln_dtype t) { return t == KILN_DTYPE_INT64 || t == KILN_DTYPE_INT32; }
bool kiln_fact_has_vals(kiln_dtype t) { return is_int(t) || t == KILN_DTYPE_BOOL; }

void kiln_fact_from_tensor(const kiln_tensor *t, fact *f) {
    if (t->kind != KILN_VALUE_TENSOR) { /* sequences and optionals: nothing facts describe */
        kiln_fact_unknown(f, KILN_DTYPE_UNDEFINED);
        return;
    }
    kiln_fact_unknown(f, t->dtype);
    f->rank = t->rank;
    for (int i = 0; i < t->rank; i++)
        f->dims[i] = kiln_sd_const(t->dims[i]);
    if (kiln_fact_has_vals(t->dtype) && t->rank <= 1 && t->numel <= KILN_FACT_MAXVAL) {
        f->nval = (int)t->numel;
        for (int64_t i = 0; i < t->numel; i++)
            f->val[i] = kiln_sd_const(kiln_tensor_get_i64(t, i));
    }
}

bool kiln_fact_same_shape(const kiln_shape_fact *a, const kiln_shape_fact *b) {
    if (a->rank < 0 || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (!kiln_sdim_eq(&a->dims[i], &b->dims[i]))
            return false;
    return true;
}

bool kiln_fact_vals_const(const fact *f) {
    if (f->nval < 0)
        return false;
    for (int i = 0; i < f->nval; i++)
        if (!kiln_sd_is_const(&f->val[i]))
            return false;
    return true;
}

sdim kiln_fact_prod(const fact *f, int from, int to) {
    sdim p = kiln_sd_const(1);
    for (int i = from; i < to; i++)
        p = kiln_sd_mul(p, f->dims[i]);
    return p;
}

void kiln_fact_merge(fact *a, const fact *b) {
    if (a->dt != b->dt)
        a->dt = a->dt == KILN_DTYPE_UNDEFINED ? b->dt : b->dt == KILN_DTYPE_UNDEFINED ? a->dt : KILN_DTYPE_UNDEFINED;
    if (a->rank != b->rank) {
        a->rank = -1;
    } else {
        for (int i = 0; i < a->rank; i++)
            if (!kiln_sdim_eq(&a->dims[i], &b->dims[i]))
                a->dims[i] = kiln_sd_unknown();
    }
    bool same = a->nval >= 0 && a->nval == b->nval;
    for (int i = 0; same && i < a->nval; i++)
        same = kiln_sdim_eq(&a->val[i], &b->val[i]);
    if (!same)
        a->nval = -1;
}

/* ---- helpers for rules ---- */

int kiln_infer_axis(int64_t a, int rank) {
    if (a < 0)
        a += rank;
    return a < 0 || a >= rank ? -1 : (int)a;
}

bool kiln_infer_ints(const kiln_infer_ctx *x, int input, const char *attr, int64_t *v, int *count, int max) {
    if (input >= 0 && kiln_infer_has(x, (size_t)input)) {
        const kiln_tensor *k = x->k[input];
        if (k && k->numel <= max) {
            *count = (int)k->numel;
            for (int i = 0; i < *count; i++)
                v[i] = kiln_tensor_get_i64(k, i);
            return true;
        }
        const fact *f = &x->in[input];
        if (kiln_fact_vals_const(f) && f->nval <= max) {
            *count = f->nval;
            for (int i = 0; i < *count; i++)
                v[i] = f->val[i].num;
            return true;
        }
        *count = -1;
        return false;
    }
    if (attr) {
        size_t cnt;
        const int64_t *a = kiln_attr_ints(x->node, attr, &cnt);
        if (a && cnt <= (size_t)max) {
            *count = (int)cnt;
            memcpy(v, a, cnt * sizeof *v);
            return true;
        }
    }
    *count = -1;
    return false;
}

bool kiln_infer_bcast(const fact *const *fs, int n, fact *o) {
    int rank = 0;
    for (int i = 0; i < n; i++) {
        if (fs[i]->rank < 0)
            return false;
        if (fs[i]->rank > rank)
            rank = fs[i]->rank;
    }
    o->rank = rank;
    for (int d = 0; d < rank; d++) {
        sdim r = kiln_sd_const(1);
        bool first = true;
        for (int i = 0; i < n; i++) {
            int off = d - (rank - fs[i]->rank);
            if (off < 0)
                continue;
            sdim v = fs[i]->dims[off];
            if (kiln_sd_is(&v, 1))
                continue;
            if (first || kiln_sd_is(&r, 1)) {
                r = v;
                first = false;
            } else if (!kiln_sdim_eq(&r, &v)) {
                if (kiln_sd_is_const(&v) && !kiln_sd_is_const(&r))
                    r = v;
                else if (!(kiln_sd_is_const(&r) && !kiln_sd_is_const(&v) && v.known))
                    r = kiln_sd_unknown();
            }
        }
        o->dims[d] = r;
    }
    return true;
}

void kiln_infer_copy_shape(fact *o, const fact *f, bool vals) {
    o->rank = f->rank;
    if (f->rank > 0)
        memcpy(o->dims, f->dims, (size_t)f->rank * sizeof *o->dims);
    o->nval = -1;
    if (vals && f->nval >= 0) {
        o->nval = f->nval;
        memcpy(o->val, f->val, (size_t)f->nval * sizeof *o->val);
    }
}

kiln_status kiln_infer_same(kiln_infer_ctx *x) {
    if (x->n_out > 0) {
        const fact *X = kiln_infer_in(x, 0);
        x->out[0].dt = X->dt;
        kiln_infer_copy_shape(&x->out[0], X, false);
    }
    return KILN_OK;
}

kiln_status kiln_infer_same_bool(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 0)
        x->out[0].dt = KILN_DTYPE_BOOL;
    return KILN_OK;
}

kiln_status kiln_infer_bcast_all(kiln_infer_ctx *x) {
    if (x->n_out == 0 || x->n_in == 0)
        return KILN_OK;
    const fact *fs[16];
    int cnt = 0;
    for (size_t i = 0; i < x->n_in && i < 16; i++) {
        if (!x->has[i])
            return KILN_OK;
        fs[cnt++] = &x->in[i];
    }
    x->out[0].dt = x->in[0].dt;
    kiln_infer_bcast(fs, cnt, &x->out[0]);
    return KILN_OK;
}

kiln_status kiln_infer_bcast_bool(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_bcast_all(x));
    if (x->n_out > 0)
        x->out[0].dt = KILN_DTYPE_BOOL;
    return KILN_OK;
}

int kiln_reduce_shape(int rank, const bool *mask, bool keepdims, int *src) {
    int r = 0;
    for (int d = 0; d < rank; d++)
        if (!mask[d])
            src[r++] = d;
        else if (keepdims)
            src[r++] = -1;
    return r;
}

void kiln_slice_axis(int64_t d, int64_t s, int64_t e, int64_t st, int64_t *first, int64_t *count) {
    if (st == INT64_MIN)
        st = INT64_MIN + 1;
    if (s < 0)
        s += d;
    if (e < 0)
        e += d;
    if (st > 0) {
        s = s < 0 ? 0 : s > d ? d : s;
        e = e < 0 ? 0 : e > d ? d : e;
        *count = e > s ? (e - s - 1) / st + 1 : 0;
    } else {
        s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
        e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
        *count = s > e ? (s - e - 1) / (-st) + 1 : 0;
    }
    *first = s;
}

kiln_status kiln_infer_window(const kiln_infer_ctx *x, const kiln_shape_fact *X, const int64_t *k, bool use_dil,
                              bool ceil_mode, kiln_shape_fact *o) {
    if (X->rank < 3)
        return KILN_OK;
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    g.nsp = X->rank - 2;
    if (g.nsp > KILN_CONV_MAX_SP)
        return KILN_OK;
    if (!k) {
        size_t n;
        const int64_t *ks = kiln_attr_ints(x->node, "kernel_shape", &n);
        if (!ks || n != (size_t)g.nsp)
            return KILN_OK;
        k = ks;
    }
    bool sym[KILN_CONV_MAX_SP];
    for (int d = 0; d < g.nsp; d++) {
        g.k[d] = k[d];
        sym[d] = !kiln_sd_is_const(&X->dims[2 + d]);
        /* a placeholder size for symbolic dims: each axis is computed alone */
        g.in[d] = sym[d] ? (int64_t)1 << 20 : X->dims[2 + d].num;
    }
    KILN_TRY(kiln_conv_read_attrs(&g, x->node, use_dil));
    KILN_TRY(kiln_conv_forward_shape(&g, ceil_mode));
    for (int d = 0; d < g.nsp; d++) {
        if (!sym[d]) {
            o->dims[2 + d] = kiln_sd_const(g.out[d]);
            continue;
        }
        bool same_size = g.stride[d] == 1 && (g.autopad == KILN_AUTOPAD_SAME_UPPER || g.autopad == KILN_AUTOPAD_SAME_LOWER ||
                                              ((g.k[d] - 1) * g.dil[d] == g.pb[d] + g.pe[d]));
        o->dims[2 + d] = same_size ? X->dims[2 + d] : kiln_sd_unknown();
    }
    return KILN_OK;
}

/* ---- checking a rule against what exec produced ---- */

kiln_status kiln_infer_check(const kiln_model *m, const kiln_node *n, const kiln_tensor *const *in,
                             const kiln_tensor *const *out, char *msg, size_t len) {
    int64_t opset = kiln_model_opset(m, n->domain);
    if (opset == 0 && !*n->domain)
        opset = 1;
    const kiln_op_desc *d = kiln_op_find(n->domain, n->op_type, opset);
    if (!d || !d->infer || n->n_inputs > 16 || n->n_outputs > 8)
        return KILN_OK;
    fact fin[16], fout[8];
    bool has[16];
    const kiln_tensor *k[16];
    for (size_t i = 0; i < n->n_inputs; i++) {
        has[i] = *n->inputs[i] && in[i];
        k[i] = has[i] && in[i]->kind == KILN_VALUE_TENSOR ? in[i] : NULL;
        if (has[i])
            kiln_fact_from_tensor(in[i], &fin[i]);
        else
            kiln_fact_unknown(&fin[i], KILN_DTYPE_UNDEFINED);
    }
    for (size_t i = 0; i < n->n_outputs; i++)
        kiln_fact_unknown(&fout[i], KILN_DTYPE_UNDEFINED);
    kiln_infer_ctx x = {.node = n,
                        .opset = opset,
                        .n_in = n->n_inputs,
                        .n_out = n->n_outputs,
                        .in = fin,
                        .has = has,
                        .k = k,
                        .out = fout};
    if (d->infer(&x) != KILN_OK) {
        snprintf(msg, len, "%s's shape rule refused inputs exec accepted: %s", n->op_type, kiln_last_error());
        return KILN_ERR_MISMATCH;
    }
    for (size_t i = 0; i < n->n_outputs; i++) {
        const kiln_tensor *t = out[i];
        const fact *f = &fout[i];
        if (!t || !*n->outputs[i])
            continue;
        if (t->kind != KILN_VALUE_TENSOR) {
            if (f->dt != KILN_DTYPE_UNDEFINED || f->rank >= 0 || f->nval >= 0) {
                snprintf(msg, len, "output %zu: rule tells tensor facts, exec made %s", i,
                         kiln_value_kind_a(t->kind));
                return KILN_ERR_MISMATCH;
            }
            continue;
        }
        if (f->dt != KILN_DTYPE_UNDEFINED && f->dt != t->dtype) {
            snprintf(msg, len, "output %zu: rule says %s, exec made %s", i, kiln_dtype_name(f->dt),
                     kiln_dtype_name(t->dtype));
            return KILN_ERR_MISMATCH;
        }
        if (f->rank >= 0 && f->rank != t->rank) {
            snprintf(msg, len, "output %zu: rule says rank %d, exec made rank %d", i, f->rank, t->rank);
            return KILN_ERR_MISMATCH;
        }
        for (int a = 0; f->rank >= 0 && a < f->rank; a++)
            if (kiln_sd_is_const(&f->dims[a]) && f->dims[a].num != t->dims[a]) {
                snprintf(msg, len, "output %zu: rule says dim %d is %lld, exec made %lld", i, a,
                         (long long)f->dims[a].num, (long long)t->dims[a]);
                return KILN_ERR_MISMATCH;
            }
        if (f->nval >= 0 && kiln_fact_has_vals(t->dtype) && f->nval == t->numel)
            for (int v = 0; v < f->nval; v++)
                if (kiln_sd_is_const(&f->val[v]) && f->val[v].num != kiln_tensor_get_i64(t, v)) {
                    snprintf(msg, len, "output %zu: rule says element %d is %lld, exec made %lld", i, v,
                             (long long)f->val[v].num, (long long)kiln_tensor_get_i64(t, v));
                    return KILN_ERR_MISMATCH;
                }
        if (f->nval >= 0 && f->nval != t->numel && kiln_fact_has_vals(t->dtype)) {
            snprintf(msg, len, "output %zu: rule says %d elements, exec made %lld", i, f->nval, (long long)t->numel);
            return KILN_ERR_MISMATCH;
        }
    }
    return KILN_OK;
}
