/* Symbolic shape inference for freezing. Dims are monomials over the
 * model's dimension symbols (batch, batch*16, seq/2) so that shape
 * arithmetic folds as far as the symbols allow; small integer tensors (the
 * values of Shape -> Gather -> Concat chains) carry their elements. What
 * this folds: values whose elements are all known become initializers,
 * Reshape targets become constants (copying dims with 0 where they match
 * the input), adjacent constant Concat inputs merge, graph outputs get the
 * refined shapes. Ops without a rule give unknown shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef kiln_shape_fact fact;
typedef kiln_sdim sdim;

/* ---- symbolic dims ---- */

static sdim sd_unknown(void) { return (sdim){0}; }
static sdim sd_const(int64_t v) { return (sdim){.known = true, .num = v, .den = 1}; }
static bool sd_is_const(const sdim *d) { return d->known && d->n == 0 && d->den == 1; }
static bool sd_is(const sdim *d, int64_t v) { return sd_is_const(d) && d->num == v; }

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
        return sd_unknown();
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

static sdim sd_mul(sdim a, sdim b) {
    if (sd_is(&a, 0) || sd_is(&b, 0))
        return sd_const(0);
    if (!a.known || !b.known || a.n + b.n > KILN_SDIM_MAXSYM)
        return sd_unknown();
    /* floor(s/2)*2 is not s: only whole monomials multiply */
    if ((a.den != 1 && !sd_is(&b, 1)) || (b.den != 1 && !sd_is(&a, 1)))
        return sd_unknown();
    sdim r = {.known = true};
    if (kiln_mul_overflow_i64(a.num, b.num, &r.num) || kiln_mul_overflow_i64(a.den, b.den, &r.den))
        return sd_unknown();
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
static sdim sd_div_exact(sdim a, sdim b) {
    if (!a.known || !b.known || sd_is(&b, 0) || b.den != 1 || a.den != 1)
        return sd_unknown();
    sdim r = a;
    for (int j = 0; j < b.n; j++) {
        int k = -1;
        for (int i = 0; i < r.n; i++)
            if (!strcmp(r.sym[i], b.sym[j])) {
                k = i;
                break;
            }
        if (k < 0)
            return sd_unknown();
        memmove(&r.sym[k], &r.sym[k + 1], (size_t)(r.n - k - 1) * sizeof *r.sym);
        r.n--;
    }
    if (r.num % b.num != 0)
        return sd_unknown();
    r.num /= b.num;
    return sd_norm(r);
}

/* Integer (floor) division as the Div op does it on shapes. */
static sdim sd_floordiv(sdim a, sdim b) {
    if (sd_is_const(&a) && sd_is_const(&b) && b.num != 0) {
        int64_t q = a.num / b.num;
        if ((a.num % b.num != 0) && ((a.num < 0) != (b.num < 0)))
            q--;
        return sd_const(q);
    }
    sdim e = sd_div_exact(a, b);
    if (e.known)
        return e;
    if (a.known && sd_is_const(&b) && b.num > 0 && a.den == 1)
        return sd_norm((sdim){.known = true, .n = a.n, .num = a.num, .den = b.num,
                              .sym = {a.sym[0], a.sym[1], a.sym[2], a.sym[3]}});
    return sd_unknown();
}

static sdim sd_add(sdim a, sdim b, int sign) {
    if (!a.known || !b.known)
        return sd_unknown();
    if (sd_is(&b, 0))
        return a;
    if (sd_is(&a, 0) && sign > 0)
        return b;
    if (a.n != b.n || a.den != b.den)
        return sd_unknown();
    for (int i = 0; i < a.n; i++)
        if (strcmp(a.sym[i], b.sym[i]) != 0)
            return sd_unknown();
    a.num = sign > 0 ? a.num + b.num : a.num - b.num;
    if (a.num == 0)
        return sd_const(0);
    if (a.n == 0)
        return sd_norm(a);
    return a.num > 0 ? sd_norm(a) : sd_unknown();
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

/* ---- facts ---- */

static void fact_free(void *p) { free(p); }

void kiln_shapes_free(kiln_freeze_ctx *c) {
    kiln_nameset_free(&c->facts, fact_free);
    kiln_nameset_free(&c->syms, NULL);
}

const kiln_shape_fact *kiln_fact(const kiln_freeze_ctx *c, const char *name) {
    return name && *name ? kiln_nameset_get(&c->facts, name) : NULL;
}

bool kiln_fact_same_shape(const kiln_shape_fact *a, const kiln_shape_fact *b) {
    if (a->rank < 0 || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (!kiln_sdim_eq(&a->dims[i], &b->dims[i]))
            return false;
    return true;
}

static const char *intern(kiln_freeze_ctx *c, const char *s) {
    if (kiln_nameset_put(&c->syms, s, NULL) != KILN_OK)
        return NULL;
    for (size_t i = 0; i < c->syms.cap; i++)
        if (c->syms.keys[i] && !strcmp(c->syms.keys[i], s))
            return c->syms.keys[i];
    return NULL;
}

static kiln_status put_fact(kiln_freeze_ctx *c, const char *name, const fact *f) {
    if (!name || !*name)
        return KILN_OK;
    fact *old = kiln_nameset_get(&c->facts, name);
    if (old) {
        *old = *f;
        return KILN_OK;
    }
    fact *p = kiln_malloc(sizeof *p);
    if (!p)
        return KILN_ERR_NOMEM;
    *p = *f;
    kiln_status st = kiln_nameset_put(&c->facts, name, p);
    if (st != KILN_OK)
        free(p);
    return st;
}

static void fact_unknown(fact *f, kiln_dtype dt) {
    memset(f, 0, sizeof *f);
    f->dt = dt;
    f->rank = -1;
    f->nval = -1;
}

static bool is_int(kiln_dtype t) { return t == KILN_DTYPE_INT64 || t == KILN_DTYPE_INT32; }
/* Types whose elements facts carry (shape arithmetic and its masks). */
static bool has_vals(kiln_dtype t) { return is_int(t) || t == KILN_DTYPE_BOOL; }

static void fact_from_type(kiln_freeze_ctx *c, const kiln_type *t, fact *f) {
    fact_unknown(f, t->kind == KILN_TYPE_TENSOR ? t->elem : KILN_DTYPE_UNDEFINED);
    if (t->kind != KILN_TYPE_TENSOR || t->rank < 0 || t->rank > KILN_MAX_RANK)
        return;
    f->rank = t->rank;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i].value >= 0)
            f->dims[i] = sd_const(t->dims[i].value);
        else if (t->dims[i].param && *t->dims[i].param) {
            const char *s = intern(c, t->dims[i].param);
            f->dims[i] = s ? (sdim){.known = true, .n = 1, .num = 1, .den = 1, .sym = {s}} : sd_unknown();
        } else
            f->dims[i] = sd_unknown();
    }
}

static void fact_from_tensor(const kiln_tensor *t, fact *f) {
    fact_unknown(f, t->dtype);
    f->rank = t->rank;
    for (int i = 0; i < t->rank; i++)
        f->dims[i] = sd_const(t->dims[i]);
    if (has_vals(t->dtype) && t->rank <= 1 && t->numel <= KILN_FACT_MAXVAL) {
        f->nval = (int)t->numel;
        for (int64_t i = 0; i < t->numel; i++)
            f->val[i] = sd_const(kiln_tensor_get_i64(t, i));
    }
}

/* Fills the unknown parts of f from a declared type (value_info). */
static void fact_merge_declared(kiln_freeze_ctx *c, fact *f, const kiln_type *t) {
    fact d;
    fact_from_type(c, t, &d);
    if (f->dt == KILN_DTYPE_UNDEFINED)
        f->dt = d.dt;
    if (f->rank < 0 && d.rank >= 0) {
        f->rank = d.rank;
        for (int i = 0; i < d.rank; i++)
            f->dims[i] = d.dims[i];
        return;
    }
    if (f->rank == d.rank)
        for (int i = 0; i < f->rank; i++)
            if (!f->dims[i].known)
                f->dims[i] = d.dims[i];
}

static bool all_vals_const(const fact *f) {
    if (f->nval < 0)
        return false;
    for (int i = 0; i < f->nval; i++)
        if (!sd_is_const(&f->val[i]))
            return false;
    return true;
}

/* ---- per-op rules ---- */

typedef struct infer {
    kiln_freeze_ctx *c;
    const kiln_scope *s;
    const kiln_node *n;
    fact in[16];
    bool has[16];
    const kiln_tensor *k[16]; /* constant inputs */
    fact out[8];
    fact br[2][8]; /* If branch outputs */
} infer;

/* Integer list from a constant input or, failing that, an attribute. */
static bool ints_of(const infer *x, int input, const char *attr, int64_t *v, int *count, int max) {
    if (input >= 0 && (size_t)input < x->n->n_inputs && *x->n->inputs[input]) {
        if (x->k[input] && x->k[input]->numel <= max) {
            *count = (int)x->k[input]->numel;
            for (int i = 0; i < *count; i++)
                v[i] = kiln_tensor_get_i64(x->k[input], i);
            return true;
        }
        const fact *f = &x->in[input];
        if (all_vals_const(f) && f->nval <= max) {
            *count = f->nval;
            for (int i = 0; i < *count; i++)
                v[i] = f->val[i].num;
            return true;
        }
        return false;
    }
    if (attr) {
        size_t cnt;
        const int64_t *a = kiln_attr_ints(x->n, attr, &cnt);
        if (a && cnt <= (size_t)max) {
            *count = (int)cnt;
            memcpy(v, a, cnt * sizeof *v);
            return true;
        }
    }
    *count = -1;
    return false;
}

static bool bcast(const fact *const *fs, int n, fact *o) {
    int rank = 0;
    for (int i = 0; i < n; i++) {
        if (fs[i]->rank < 0)
            return false;
        if (fs[i]->rank > rank)
            rank = fs[i]->rank;
    }
    o->rank = rank;
    for (int d = 0; d < rank; d++) {
        sdim r = sd_const(1);
        bool first = true;
        for (int i = 0; i < n; i++) {
            int off = d - (rank - fs[i]->rank);
            if (off < 0)
                continue;
            sdim v = fs[i]->dims[off];
            if (sd_is(&v, 1))
                continue;
            if (first || sd_is(&r, 1)) {
                r = v;
                first = false;
            } else if (!kiln_sdim_eq(&r, &v)) {
                if (sd_is_const(&v) && !sd_is_const(&r))
                    r = v;
                else if (!(sd_is_const(&r) && !sd_is_const(&v) && v.known))
                    r = sd_unknown();
            }
        }
        o->dims[d] = r;
    }
    return true;
}

static int norm_axis(int64_t a, int rank) { return (int)(a < 0 ? a + rank : a); }

static sdim prod(const fact *f, int from, int to) {
    sdim p = sd_const(1);
    for (int i = from; i < to; i++)
        p = sd_mul(p, f->dims[i]);
    return p;
}

static void vals_binary(const infer *x, const char *op, fact *o) {
    const fact *a = &x->in[0], *b = &x->in[1];
    if (a->nval < 0 || b->nval < 0 || !is_int(o->dt))
        return;
    int n = a->nval > b->nval ? a->nval : b->nval;
    if ((a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1) || o->rank > 1)
        return;
    for (int i = 0; i < n; i++) {
        sdim p = a->val[a->nval == 1 ? 0 : i], q = b->val[b->nval == 1 ? 0 : i];
        sdim r = !strcmp(op, "Add")   ? sd_add(p, q, 1)
                 : !strcmp(op, "Sub") ? sd_add(p, q, -1)
                 : !strcmp(op, "Mul") ? sd_mul(p, q)
                                      : sd_floordiv(p, q);
        o->val[i] = r;
    }
    o->nval = n;
}

/* Equal on shape values: a dim is never negative, so it differs from the
 * -1 placeholder even when it is symbolic. */
static void vals_equal(const infer *x, fact *o) {
    const fact *a = &x->in[0], *b = &x->in[1];
    if (a->nval < 0 || b->nval < 0 || o->rank > 1)
        return;
    int n = a->nval > b->nval ? a->nval : b->nval;
    if ((a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1))
        return;
    for (int i = 0; i < n; i++) {
        const sdim *p = &a->val[a->nval == 1 ? 0 : i], *q = &b->val[b->nval == 1 ? 0 : i];
        if (sd_is_const(p) && sd_is_const(q))
            o->val[i] = sd_const(p->num == q->num);
        else if (kiln_sdim_eq(p, q))
            o->val[i] = sd_const(1);
        else if ((p->known && p->n > 0 && p->num > 0 && sd_is_const(q) && q->num < 0) ||
                 (q->known && q->n > 0 && q->num > 0 && sd_is_const(p) && p->num < 0))
            o->val[i] = sd_const(0);
        else
            o->val[i] = sd_unknown();
    }
    o->nval = n;
}

static void vals_where(const infer *x, fact *o) {
    const fact *c = &x->in[0], *a = &x->in[1], *b = &x->in[2];
    if (c->nval < 0 || a->nval < 0 || b->nval < 0 || o->rank > 1)
        return;
    int n = c->nval;
    if (a->nval > n)
        n = a->nval;
    if (b->nval > n)
        n = b->nval;
    if ((c->nval != n && c->nval != 1) || (a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1))
        return;
    for (int i = 0; i < n; i++) {
        const sdim *k = &c->val[c->nval == 1 ? 0 : i];
        o->val[i] = !sd_is_const(k) ? sd_unknown() : k->num ? a->val[a->nval == 1 ? 0 : i] : b->val[b->nval == 1 ? 0 : i];
    }
    o->nval = n;
}

static bool in_list(const char *op, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(op, *list))
            return true;
    return false;
}

static const char *const UNARY[] = {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf",
                                    "Reciprocal", "Floor", "Ceil", "Identity", "Softmax", "LogSoftmax",
                                    "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Gelu", "Clip",
                                    "Sin", "Cos", "Tan", "Sign", "Round", "Softplus", "Softsign", "Mish",
                                    "LayerNormalization", "BatchNormalization", "InstanceNormalization", "LRN",
                                    "CumSum", "Trilu", "Dropout", "Celu", "ThresholdedRelu", "Hardmax",
                                    "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", NULL};
static const char *const BINARY[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Mod",
                                     "PRelu", "BitShift", "And", "Or", "Xor", "Equal", "Less", "Greater",
                                     "LessOrEqual", "GreaterOrEqual", NULL};
static const char *const BOOLOUT[] = {"And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual",
                                      "GreaterOrEqual", "Not", "IsNaN", "IsInf", NULL};

static void infer_pool(const infer *x, fact *o, bool conv) {
    const fact *X = &x->in[0];
    if (X->rank < 3)
        return;
    int sp = X->rank - 2;
    int64_t k[KILN_MAX_RANK], st[KILN_MAX_RANK], dil[KILN_MAX_RANK], pads[2 * KILN_MAX_RANK];
    int nk = 0, ns, nd, np;
    if (conv) {
        const fact *W = &x->in[1];
        if (W->rank != X->rank)
            return;
        if (!ints_of(x, -1, "kernel_shape", k, &nk, KILN_MAX_RANK)) {
            for (int i = 0; i < sp; i++) {
                if (!sd_is_const(&W->dims[2 + i]))
                    return;
                k[i] = W->dims[2 + i].num;
            }
            nk = sp;
        }
    } else if (!ints_of(x, -1, "kernel_shape", k, &nk, KILN_MAX_RANK)) {
        return;
    }
    if (nk != sp)
        return;
    if (!ints_of(x, -1, "strides", st, &ns, KILN_MAX_RANK))
        for (ns = 0; ns < sp; ns++)
            st[ns] = 1;
    if (!ints_of(x, -1, "dilations", dil, &nd, KILN_MAX_RANK))
        for (nd = 0; nd < sp; nd++)
            dil[nd] = 1;
    if (!ints_of(x, -1, "pads", pads, &np, 2 * KILN_MAX_RANK))
        for (np = 0; np < 2 * sp; np++)
            pads[np] = 0;
    if (ns != sp || nd != sp || np != 2 * sp)
        return;
    const char *ap = kiln_attr_string(x->n, "auto_pad", "NOTSET");
    bool ceil_mode = kiln_attr_int(x->n, "ceil_mode", 0) != 0;
    o->rank = X->rank;
    o->dims[0] = X->dims[0];
    o->dims[1] = conv ? x->in[1].dims[0] : X->dims[1];
    for (int i = 0; i < sp; i++) {
        sdim d = X->dims[2 + i];
        if (!sd_is_const(&d) || st[i] <= 0) {
            bool same = k[i] == 1 && st[i] == 1 && pads[i] == 0 && pads[i + sp] == 0;
            o->dims[2 + i] = same || (!strncmp(ap, "SAME", 4) && st[i] == 1) ? d : sd_unknown();
            continue;
        }
        int64_t in = d.num, ek = dil[i] * (k[i] - 1) + 1, r;
        if (!strncmp(ap, "SAME", 4))
            r = (in + st[i] - 1) / st[i];
        else if (!strcmp(ap, "VALID"))
            r = (in - ek) / st[i] + 1;
        else {
            int64_t num = in + pads[i] + pads[i + sp] - ek;
            r = ceil_mode ? (num + st[i] - 1) / st[i] + 1 : num / st[i] + 1;
            if (ceil_mode && (r - 1) * st[i] >= in + pads[i])
                r--;
        }
        o->dims[2 + i] = r >= 0 ? sd_const(r) : sd_unknown();
    }
}

static void infer_reduce(const infer *x, fact *o) {
    const fact *X = &x->in[0];
    const kiln_node *n = x->n;
    int64_t axes[KILN_MAX_RANK];
    int na;
    bool axes_input = (!strcmp(n->op_type, "ReduceSum") && x->c->opset >= 13) || x->c->opset >= 18;
    bool have = axes_input ? ints_of(x, 1, NULL, axes, &na, KILN_MAX_RANK) || n->n_inputs < 2 || !*n->inputs[1]
                           : true;
    if (!have || X->rank < 0)
        return;
    if (axes_input ? (n->n_inputs < 2 || !*n->inputs[1]) : !ints_of(x, -1, "axes", axes, &na, KILN_MAX_RANK)) {
        if (axes_input && kiln_attr_int(n, "noop_with_empty_axes", 0)) {
            o->rank = X->rank;
            memcpy(o->dims, X->dims, sizeof o->dims);
            return;
        }
        na = X->rank;
        for (int i = 0; i < na; i++)
            axes[i] = i;
    }
    bool keep = kiln_attr_int(n, "keepdims", 1) != 0;
    bool red[KILN_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        int a = norm_axis(axes[i], X->rank);
        if (a < 0 || a >= X->rank)
            return;
        red[a] = true;
    }
    o->rank = 0;
    for (int i = 0; i < X->rank; i++)
        if (!red[i])
            o->dims[o->rank++] = X->dims[i];
        else if (keep)
            o->dims[o->rank++] = sd_const(1);
}

static void infer_node(infer *x) {
    const kiln_node *n = x->n;
    const char *op = n->op_type;
    fact *o = &x->out[0];
    const fact *X = &x->in[0];
    for (size_t i = 0; i < n->n_outputs && i < 8; i++)
        fact_unknown(&x->out[i], KILN_DTYPE_UNDEFINED);
    if (*n->domain)
        return;
    o->dt = X->dt;
    if (in_list(op, BOOLOUT))
        o->dt = KILN_DTYPE_BOOL;
    if (in_list(op, UNARY) || !strcmp(op, "Not") || !strcmp(op, "IsNaN") || !strcmp(op, "IsInf")) {
        o->rank = X->rank;
        memcpy(o->dims, X->dims, sizeof o->dims);
        if (!strcmp(op, "Identity")) {
            o->nval = X->nval;
            memcpy(o->val, X->val, sizeof o->val);
        }
        if (!strcmp(op, "Dropout") && n->n_outputs > 1) {
            x->out[1] = *o;
            x->out[1].dt = KILN_DTYPE_BOOL;
            x->out[1].nval = -1;
        }
        return;
    }
    if (in_list(op, BINARY) || !strcmp(op, "Where")) {
        const fact *fs[8];
        int cnt = 0;
        for (size_t i = 0; i < n->n_inputs && i < 8; i++)
            if (x->has[i])
                fs[cnt++] = &x->in[i];
        if (!strcmp(op, "Where"))
            o->dt = x->in[1].dt;
        if (cnt == (int)n->n_inputs && cnt > 0)
            bcast(fs, cnt, o);
        if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
            vals_binary(x, op, o);
        if (!strcmp(op, "Equal"))
            vals_equal(x, o);
        if (!strcmp(op, "Where"))
            vals_where(x, o);
        return;
    }
    if (!strcmp(op, "Cast")) {
        o->dt = (kiln_dtype)kiln_attr_int(n, "to", 0);
        o->rank = X->rank;
        memcpy(o->dims, X->dims, sizeof o->dims);
        if (is_int(o->dt) && is_int(X->dt)) {
            o->nval = X->nval;
            memcpy(o->val, X->val, sizeof o->val);
        }
        return;
    }
    if (!strcmp(op, "Shape")) {
        o->dt = KILN_DTYPE_INT64;
        o->rank = 1;
        if (X->rank < 0)
            return;
        int64_t s = kiln_attr_int(n, "start", 0), e = kiln_attr_int(n, "end", X->rank);
        if (s < 0)
            s += X->rank;
        if (e < 0)
            e += X->rank;
        s = s < 0 ? 0 : s > X->rank ? X->rank : s;
        e = e < 0 ? 0 : e > X->rank ? X->rank : e;
        if (e < s)
            e = s;
        o->dims[0] = sd_const(e - s);
        o->nval = (int)(e - s);
        for (int64_t i = s; i < e; i++)
            o->val[i - s] = X->dims[i];
        return;
    }
    if (!strcmp(op, "Size")) {
        o->dt = KILN_DTYPE_INT64;
        o->rank = 0;
        if (X->rank >= 0) {
            o->nval = 1;
            o->val[0] = prod(X, 0, X->rank);
        }
        return;
    }
    if (!strcmp(op, "MatMul") && n->n_inputs == 2) {
        fact a = x->in[0], b = x->in[1];
        if (a.rank < 1 || b.rank < 1)
            return;
        bool va = a.rank == 1, vb = b.rank == 1;
        if (va) {
            a.dims[1] = a.dims[0];
            a.dims[0] = sd_const(1);
            a.rank = 2;
        }
        if (vb) {
            b.dims[1] = sd_const(1);
            b.rank = 2;
        }
        fact ba = a, bb = b, bo;
        ba.rank -= 2;
        bb.rank -= 2;
        const fact *fs[2] = {&ba, &bb};
        if (!bcast(fs, 2, &bo))
            return;
        o->rank = bo.rank;
        memcpy(o->dims, bo.dims, sizeof bo.dims);
        if (!va)
            o->dims[o->rank++] = a.dims[a.rank - 2];
        if (!vb)
            o->dims[o->rank++] = b.dims[b.rank - 1];
        return;
    }
    if (!strcmp(op, "Gemm")) {
        const fact *A = &x->in[0], *B = &x->in[1];
        if (A->rank != 2 || B->rank != 2)
            return;
        o->rank = 2;
        o->dims[0] = kiln_attr_int(n, "transA", 0) ? A->dims[1] : A->dims[0];
        o->dims[1] = kiln_attr_int(n, "transB", 0) ? B->dims[0] : B->dims[1];
        return;
    }
    if (!strcmp(op, "Conv")) {
        infer_pool(x, o, true);
        return;
    }
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool") || !strcmp(op, "LpPool")) {
        infer_pool(x, o, false);
        return;
    }
    if (!strncmp(op, "Global", 6)) {
        if (X->rank >= 2) {
            o->rank = X->rank;
            o->dims[0] = X->dims[0];
            o->dims[1] = X->dims[1];
            for (int i = 2; i < X->rank; i++)
                o->dims[i] = sd_const(1);
        }
        return;
    }
    if (!strcmp(op, "Reshape") && n->n_inputs >= 2) {
        const fact *S = &x->in[1];
        int nv = S->nval;
        if (nv < 0 && x->k[1] && x->k[1]->numel <= KILN_FACT_MAXVAL)
            nv = (int)x->k[1]->numel; /* in[1] facts hold these too */
        if (nv < 0 || nv > KILN_MAX_RANK)
            return;
        bool allowzero = kiln_attr_int(n, "allowzero", 0) != 0;
        int neg = -1;
        o->rank = nv;
        for (int i = 0; i < nv; i++) {
            sdim v = S->val[i];
            if (sd_is(&v, 0) && !allowzero)
                v = X->rank > i ? X->dims[i] : sd_unknown();
            else if (sd_is(&v, -1)) {
                neg = i;
                v = sd_unknown();
            }
            o->dims[i] = v;
        }
        if (neg >= 0 && X->rank >= 0) {
            sdim rest = sd_const(1);
            for (int i = 0; i < nv; i++)
                if (i != neg)
                    rest = sd_mul(rest, o->dims[i]);
            o->dims[neg] = sd_div_exact(prod(X, 0, X->rank), rest);
        }
        if (X->nval >= 0 && nv <= 1) {
            o->nval = X->nval;
            memcpy(o->val, X->val, sizeof o->val);
        }
        return;
    }
    if (!strcmp(op, "Flatten")) {
        if (X->rank < 0)
            return;
        int a = norm_axis(kiln_attr_int(n, "axis", 1), X->rank);
        if (a < 0 || a > X->rank)
            return;
        o->rank = 2;
        o->dims[0] = prod(X, 0, a);
        o->dims[1] = prod(X, a, X->rank);
        return;
    }
    if (!strcmp(op, "Transpose")) {
        if (X->rank < 0)
            return;
        int64_t perm[KILN_MAX_RANK];
        int np;
        if (!ints_of(x, -1, "perm", perm, &np, KILN_MAX_RANK)) {
            np = X->rank;
            for (int i = 0; i < np; i++)
                perm[i] = np - 1 - i;
        }
        if (np != X->rank)
            return;
        o->rank = np;
        for (int i = 0; i < np; i++)
            o->dims[i] = perm[i] >= 0 && perm[i] < np ? X->dims[perm[i]] : sd_unknown();
        return;
    }
    if (!strcmp(op, "Concat")) {
        int rank = -1;
        for (size_t i = 0; i < n->n_inputs; i++) {
            if (!x->has[i])
                continue;
            if (x->in[i].rank < 0)
                return;
            rank = x->in[i].rank;
            o->dt = x->in[i].dt;
        }
        if (rank < 0)
            return;
        int a = norm_axis(kiln_attr_int(n, "axis", 0), rank);
        if (a < 0 || a >= rank)
            return;
        o->rank = rank;
        bool first = true, vals = rank == 1;
        int nv = 0;
        for (size_t i = 0; i < n->n_inputs; i++) {
            if (!x->has[i])
                continue;
            const fact *f = &x->in[i];
            if (f->rank != rank)
                return;
            for (int d = 0; d < rank; d++) {
                if (first)
                    o->dims[d] = f->dims[d];
                else if (d == a)
                    o->dims[d] = sd_add(o->dims[d], f->dims[d], 1);
                else if (!kiln_sdim_eq(&o->dims[d], &f->dims[d]))
                    o->dims[d] = sd_is_const(&f->dims[d]) ? f->dims[d] : o->dims[d];
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
        return;
    }
    if (!strcmp(op, "Gather") && n->n_inputs == 2) {
        const fact *I = &x->in[1];
        if (X->rank < 1 || I->rank < 0 || X->rank + I->rank - 1 > KILN_MAX_RANK)
            return;
        int a = norm_axis(kiln_attr_int(n, "axis", 0), X->rank);
        if (a < 0 || a >= X->rank)
            return;
        o->rank = 0;
        for (int i = 0; i < a; i++)
            o->dims[o->rank++] = X->dims[i];
        for (int i = 0; i < I->rank; i++)
            o->dims[o->rank++] = I->dims[i];
        for (int i = a + 1; i < X->rank; i++)
            o->dims[o->rank++] = X->dims[i];
        if (X->nval >= 0 && X->rank == 1 && all_vals_const(I) && I->rank <= 1) {
            for (int i = 0; i < I->nval; i++) {
                int64_t ix = I->val[i].num;
                if (ix < 0)
                    ix += X->nval;
                if (ix < 0 || ix >= X->nval)
                    return;
                o->val[i] = X->val[ix];
            }
            o->nval = I->nval;
        }
        return;
    }
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        bool uns = op[0] == 'U';
        int64_t axes[KILN_MAX_RANK];
        int na;
        bool have = x->c->opset >= 13 ? ints_of(x, 1, NULL, axes, &na, KILN_MAX_RANK)
                                      : ints_of(x, -1, "axes", axes, &na, KILN_MAX_RANK);
        if (X->rank < 0)
            return;
        if (!have) {
            if (uns || (x->c->opset >= 13 && n->n_inputs >= 2 && *n->inputs[1]))
                return;
            /* Squeeze without axes: every dim of size 1 */
            o->rank = 0;
            for (int i = 0; i < X->rank; i++) {
                if (!X->dims[i].known)
                    return;
                if (!sd_is(&X->dims[i], 1))
                    o->dims[o->rank++] = X->dims[i];
            }
        } else {
            int rank = uns ? X->rank + na : X->rank;
            if (rank > KILN_MAX_RANK)
                return;
            bool mark[KILN_MAX_RANK] = {0};
            for (int i = 0; i < na; i++) {
                int a = norm_axis(axes[i], rank);
                if (a < 0 || a >= rank)
                    return;
                mark[a] = true;
            }
            o->rank = 0;
            for (int i = 0, j = 0; i < rank; i++) {
                if (uns)
                    o->dims[o->rank++] = mark[i] ? sd_const(1) : X->dims[j++];
                else if (!mark[i])
                    o->dims[o->rank++] = X->dims[i];
            }
        }
        if (X->nval >= 0 && o->rank <= 1) {
            o->nval = X->nval;
            memcpy(o->val, X->val, sizeof o->val);
        }
        return;
    }
    if (!strcmp(op, "Slice")) {
        if (X->rank < 0)
            return;
        int64_t st[KILN_MAX_RANK], en[KILN_MAX_RANK], ax[KILN_MAX_RANK], sp[KILN_MAX_RANK];
        int ns, ne, na, nsp;
        bool ok = x->c->opset >= 10 ? ints_of(x, 1, NULL, st, &ns, KILN_MAX_RANK) && ints_of(x, 2, NULL, en, &ne, KILN_MAX_RANK)
                                    : ints_of(x, -1, "starts", st, &ns, KILN_MAX_RANK) && ints_of(x, -1, "ends", en, &ne, KILN_MAX_RANK);
        if (!ok || ns != ne)
            return;
        bool hax = x->c->opset >= 10 ? ints_of(x, 3, NULL, ax, &na, KILN_MAX_RANK) : ints_of(x, -1, "axes", ax, &na, KILN_MAX_RANK);
        if (!hax) {
            if (x->c->opset >= 10 && n->n_inputs > 3 && *n->inputs[3])
                return;
            for (na = 0; na < ns; na++)
                ax[na] = na;
        }
        bool hsp = x->c->opset >= 10 && ints_of(x, 4, NULL, sp, &nsp, KILN_MAX_RANK);
        if (!hsp) {
            if (x->c->opset >= 10 && n->n_inputs > 4 && *n->inputs[4])
                return;
            for (nsp = 0; nsp < ns; nsp++)
                sp[nsp] = 1;
        }
        if (na != ns || nsp != ns)
            return;
        o->rank = X->rank;
        memcpy(o->dims, X->dims, sizeof o->dims);
        int64_t vs = 0, ve = 0, vstep = 1;
        bool vslice = false;
        for (int i = 0; i < ns; i++) {
            int a = norm_axis(ax[i], X->rank);
            if (a < 0 || a >= X->rank || sp[i] == 0)
                return;
            sdim d = X->dims[a];
            if (!sd_is_const(&d)) {
                bool whole = sp[i] == 1 && st[i] == 0 && en[i] >= INT32_MAX;
                o->dims[a] = whole ? d : sd_unknown();
                continue;
            }
            int64_t dim = d.num, s = st[i], e = en[i], k = sp[i];
            if (s < 0)
                s += dim;
            if (e < 0)
                e += dim;
            if (k > 0) {
                s = s < 0 ? 0 : s > dim ? dim : s;
                e = e < 0 ? 0 : e > dim ? dim : e;
            } else {
                s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
                e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            }
            int64_t len = k > 0 ? (e > s ? (e - s + k - 1) / k : 0) : (s > e ? (s - e + (-k) - 1) / (-k) : 0);
            o->dims[a] = sd_const(len);
            if (a == 0) {
                vs = s;
                ve = e;
                vstep = k;
                vslice = true;
            }
        }
        if (X->rank == 1 && X->nval >= 0) {
            if (!vslice) {
                o->nval = X->nval;
                memcpy(o->val, X->val, sizeof o->val);
            } else {
                int cnt = 0;
                for (int64_t i = vs; vstep > 0 ? i < ve : i > ve; i += vstep)
                    if (i >= 0 && i < X->nval)
                        o->val[cnt++] = X->val[i];
                o->nval = cnt;
            }
        }
        return;
    }
    if (!strncmp(op, "Reduce", 6)) {
        infer_reduce(x, o);
        return;
    }
    if (!strcmp(op, "ArgMax") || !strcmp(op, "ArgMin")) {
        o->dt = KILN_DTYPE_INT64;
        if (X->rank < 0)
            return;
        int a = norm_axis(kiln_attr_int(n, "axis", 0), X->rank);
        bool keep = kiln_attr_int(n, "keepdims", 1) != 0;
        if (a < 0 || a >= X->rank)
            return;
        o->rank = 0;
        for (int i = 0; i < X->rank; i++)
            if (i != a)
                o->dims[o->rank++] = X->dims[i];
            else if (keep)
                o->dims[o->rank++] = sd_const(1);
        return;
    }
    if (!strcmp(op, "Expand") && n->n_inputs == 2) {
        const fact *S = &x->in[1];
        if (S->nval < 0 || S->nval > KILN_MAX_RANK)
            return;
        fact sf;
        fact_unknown(&sf, KILN_DTYPE_INT64);
        sf.rank = S->nval;
        memcpy(sf.dims, S->val, (size_t)S->nval * sizeof *S->val);
        const fact *fs[2] = {X, &sf};
        bcast(fs, 2, o);
        return;
    }
    if (!strcmp(op, "Tile") && n->n_inputs == 2) {
        const fact *R = &x->in[1];
        if (X->rank < 0 || R->nval != X->rank)
            return;
        o->rank = X->rank;
        for (int i = 0; i < X->rank; i++)
            o->dims[i] = sd_mul(X->dims[i], R->val[i]);
        return;
    }
    if (!strcmp(op, "ConstantOfShape")) {
        const kiln_tensor *v = kiln_attr_tensor(n, "value");
        o->dt = v ? v->dtype : KILN_DTYPE_FLOAT;
        const fact *S = &x->in[0];
        if (S->nval < 0 || S->nval > KILN_MAX_RANK)
            return;
        o->rank = S->nval;
        memcpy(o->dims, S->val, (size_t)S->nval * sizeof *S->val);
        return;
    }
    if (!strcmp(op, "Range") && n->n_inputs == 3) {
        o->rank = 1;
        o->dims[0] = sd_unknown();
        if (x->k[0] && x->k[1] && x->k[2]) {
            double s = kiln_tensor_get_f64(x->k[0], 0), l = kiln_tensor_get_f64(x->k[1], 0),
                   d = kiln_tensor_get_f64(x->k[2], 0);
            if (d != 0) {
                double cnt = (l - s) / d;
                int64_t c = cnt <= 0 ? 0 : (int64_t)cnt + ((double)(int64_t)cnt < cnt ? 1 : 0);
                o->dims[0] = sd_const(c);
            }
        }
        return;
    }
    if (!strcmp(op, "Constant")) {
        o->dt = KILN_DTYPE_UNDEFINED;
        return;
    }
    /* unknown op: nothing known beyond what value_info says */
    o->dt = KILN_DTYPE_UNDEFINED;
}

/* ---- folding what the facts make known ---- */

static kiln_status make_const(const fact *f, kiln_tensor **out) {
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    int64_t dims[1] = {f->nval};
    kiln_status st = kiln_tensor_init_shape(t, f->dt, f->rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    for (int i = 0; i < f->nval; i++) {
        if (f->dt == KILN_DTYPE_INT64)
            ((int64_t *)t->data)[i] = f->val[i].num;
        else if (f->dt == KILN_DTYPE_BOOL)
            ((uint8_t *)t->data)[i] = f->val[i].num != 0;
        else
            ((int32_t *)t->data)[i] = (int32_t)f->val[i].num;
    }
    *out = t;
    return KILN_OK;
}

static bool foldable(const fact *f) {
    return f && has_vals(f->dt) && f->rank >= 0 && f->rank <= 1 && all_vals_const(f) &&
           (f->rank == 1 ? f->nval >= 0 : f->nval == 1);
}

/* Input 1 (a shape) of n becomes the int64 constant v[0..len). */
static kiln_status set_shape_input(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, int64_t len, const int64_t *v) {
    const char *nm;
    KILN_TRY(kiln_edit_const_i64(g, &c->names, n->inputs[1], 1, &len, v, &nm));
    char *d = kiln_strdup(nm);
    if (!d)
        return KILN_ERR_NOMEM;
    free(n->inputs[1]);
    n->inputs[1] = d;
    c->rep->shapes_folded++;
    c->changed = true;
    return KILN_OK;
}

/* Shape target of a Reshape as a constant: known elements, 0 where the
 * element equals the input's dim at that position, -1 for one leftover. */
static kiln_status fold_reshape(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const infer *x) {
    const fact *S = &x->in[1], *X = &x->in[0];
    if (x->k[1] || S->nval < 0 || S->nval > KILN_MAX_RANK || kiln_attr_int(n, "allowzero", 0))
        return KILN_OK;
    int64_t v[KILN_MAX_RANK];
    int left = -1;
    bool has_neg = false;
    for (int i = 0; i < S->nval; i++)
        if (sd_is(&S->val[i], -1))
            has_neg = true;
    for (int i = 0; i < S->nval; i++) {
        const sdim *d = &S->val[i];
        if (sd_is_const(d))
            v[i] = d->num;
        else if (X->rank > i && kiln_sdim_eq(d, &X->dims[i]))
            v[i] = 0;
        else if (left < 0 && !has_neg) {
            left = i;
            v[i] = -1;
        } else
            return KILN_OK;
    }
    return set_shape_input(c, g, n, S->nval, v);
}

/* Shape of an Expand as a constant: known elements, 1 where the element
 * equals the input's (right-aligned) dim, since 1 keeps that dim. */
static kiln_status fold_expand(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const infer *x) {
    const fact *S = &x->in[1], *X = &x->in[0];
    if (x->k[1] || S->nval < 0 || S->nval > KILN_MAX_RANK || X->rank < 0)
        return KILN_OK;
    int64_t v[KILN_MAX_RANK];
    for (int i = 0; i < S->nval; i++) {
        const sdim *d = &S->val[i];
        int j = i - (S->nval - X->rank);
        if (sd_is_const(d))
            v[i] = d->num;
        else if (j >= 0 && kiln_sdim_eq(d, &X->dims[j]))
            v[i] = 1;
        else
            return KILN_OK;
    }
    return set_shape_input(c, g, n, S->nval, v);
}

/* Adjacent constant inputs of a 1-D Concat become one. */
static kiln_status fold_concat(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const infer *x) {
    if (n->n_inputs < 3 || n->n_inputs > 16 || x->out[0].rank != 1)
        return KILN_OK;
    for (size_t i = 0; i + 1 < n->n_inputs; i++) {
        size_t j = i;
        while (j < n->n_inputs && x->has[j] && foldable(&x->in[j]) && x->in[j].rank == 1)
            j++;
        if (j - i < 2 || (i == 0 && j == n->n_inputs))
            continue;
        fact m = x->in[i];
        m.nval = 0;
        for (size_t k = i; k < j; k++) {
            if (m.nval + x->in[k].nval > KILN_FACT_MAXVAL)
                return KILN_OK;
            memcpy(&m.val[m.nval], x->in[k].val, (size_t)x->in[k].nval * sizeof *m.val);
            m.nval += x->in[k].nval;
        }
        kiln_tensor *t;
        KILN_TRY(make_const(&m, &t));
        const char *nm;
        KILN_TRY(kiln_edit_new_const(g, &c->names, n->inputs[i], t, &nm));
        char *d = kiln_strdup(nm);
        if (!d)
            return KILN_ERR_NOMEM;
        free(n->inputs[i]);
        n->inputs[i] = d;
        for (size_t k = i + 1; k < j; k++)
            free(n->inputs[k]);
        memmove(&n->inputs[i + 1], &n->inputs[j], (n->n_inputs - j) * sizeof *n->inputs);
        n->n_inputs -= j - i - 1;
        c->rep->shapes_folded++;
        c->changed = true;
        return KILN_OK; /* facts are stale now; the next round continues */
    }
    return KILN_OK;
}

static void refine_type(kiln_type *t, const fact *f) {
    if (t->kind == KILN_TYPE_OTHER || f->rank < 0)
        return;
    if (t->kind == KILN_TYPE_NONE) {
        t->kind = KILN_TYPE_TENSOR;
        t->elem = f->dt;
        t->rank = -1;
    }
    if (t->elem == KILN_DTYPE_UNDEFINED)
        t->elem = f->dt;
    if (t->rank < 0) {
        t->dims = kiln_calloc((size_t)f->rank + 1, sizeof *t->dims);
        if (!t->dims)
            return;
        for (int i = 0; i < f->rank; i++)
            t->dims[i].value = -1;
        t->rank = f->rank;
    }
    if (t->rank != f->rank)
        return;
    for (int i = 0; i < f->rank; i++) {
        const sdim *d = &f->dims[i];
        if (sd_is_const(d) && d->num >= 0) {
            free(t->dims[i].param);
            t->dims[i].param = NULL;
            t->dims[i].value = d->num;
        } else if (t->dims[i].value < 0 && d->known && d->n == 1 && d->num == 1 && d->den == 1 &&
                   (!t->dims[i].param || strcmp(t->dims[i].param, d->sym[0]) != 0)) {
            /* the inferred symbol comes from the inputs: it says more than
             * an exporter's generated name */
            char *p = kiln_strdup(d->sym[0]);
            if (p) {
                free(t->dims[i].param);
                t->dims[i].param = p;
            }
        }
    }
}

static kiln_status shapes_graph(kiln_freeze_ctx *c, kiln_scope *s);

static void merge_facts(fact *a, const fact *b) {
    if (a->dt == KILN_DTYPE_UNDEFINED)
        a->dt = b->dt;
    if (a->rank != b->rank) {
        a->rank = -1;
    } else {
        for (int i = 0; i < a->rank; i++)
            if (!kiln_sdim_eq(&a->dims[i], &b->dims[i]))
                a->dims[i] = sd_unknown();
    }
    a->nval = -1;
}

static kiln_status shapes_graph(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_graph *g = s->g;
    fact f;
    for (size_t i = 0; i < g->n_inputs; i++) {
        fact_from_type(c, &g->inputs[i].type, &f);
        KILN_TRY(put_fact(c, g->inputs[i].name, &f));
    }
    for (size_t i = 0; i < g->n_inits; i++)
        if (g->inits[i]->name && !kiln_edit_is_input(g, g->inits[i]->name)) {
            fact_from_tensor(g->inits[i], &f);
            KILN_TRY(put_fact(c, g->inits[i]->name, &f));
        }
    infer *x = kiln_malloc(sizeof *x);
    if (!x)
        return KILN_ERR_NOMEM;
    kiln_status st = KILN_OK;
    kiln_nameset declared = {0}; /* value_info by name */
    for (size_t v = 0; st == KILN_OK && v < g->n_value_info; v++)
        st = kiln_nameset_put(&declared, g->value_info[v].name, &g->value_info[v]);
    for (size_t i = 0; st == KILN_OK && i < g->n_nodes;) {
        kiln_node *n = g->nodes[i];
        memset(x, 0, sizeof *x);
        x->c = c;
        x->s = s;
        x->n = n;
        for (size_t k = 0; k < n->n_inputs && k < 16; k++) {
            fact_unknown(&x->in[k], KILN_DTYPE_UNDEFINED);
            if (!*n->inputs[k])
                continue;
            x->has[k] = true;
            x->k[k] = kiln_edit_const(s, n->inputs[k]);
            const fact *p = kiln_fact(c, n->inputs[k]);
            if (p)
                x->in[k] = *p;
        }
        /* subgraphs first: their outputs type If's */
        bool sub = false;
        /* branch output facts, taken right away: both branches may use the
         * same local names */
        bool have_br[2] = {false, false};
        for (size_t a = 0; st == KILN_OK && a < n->n_attrs; a++) {
            if (n->attrs[a].g) {
                kiln_scope ss = {.g = n->attrs[a].g, .up = s};
                st = shapes_graph(c, &ss);
                sub = true;
                int b = !strcmp(n->attrs[a].name, "then_branch") ? 0 : !strcmp(n->attrs[a].name, "else_branch") ? 1 : -1;
                for (size_t k = 0; b >= 0 && st == KILN_OK && k < n->attrs[a].g->n_outputs && k < 8; k++) {
                    const fact *bf = kiln_fact(c, n->attrs[a].g->outputs[k].name);
                    if (bf)
                        x->br[b][k] = *bf;
                    else
                        fact_unknown(&x->br[b][k], KILN_DTYPE_UNDEFINED);
                    have_br[b] = true;
                }
            }
            for (size_t k = 0; st == KILN_OK && n->attrs[a].graphs && k < n->attrs[a].n; k++) {
                kiln_scope ss = {.g = n->attrs[a].graphs[k], .up = s};
                st = shapes_graph(c, &ss);
                sub = true;
            }
        }
        if (st != KILN_OK)
            break;
        infer_node(x);
        if (sub && !strcmp(n->op_type, "If") && have_br[0] && have_br[1]) {
            const kiln_graph *tb = kiln_attr_graph(n, "then_branch"), *eb = kiln_attr_graph(n, "else_branch");
            for (size_t k = 0; tb && eb && k < n->n_outputs && k < 8 && k < tb->n_outputs && k < eb->n_outputs; k++) {
                x->out[k] = x->br[0][k];
                merge_facts(&x->out[k], &x->br[1][k]);
            }
        }
        /* declared value_info fills what the rules leave open */
        for (size_t k = 0; k < n->n_outputs && k < 8; k++) {
            const kiln_value_info *vi = *n->outputs[k] ? kiln_nameset_get(&declared, n->outputs[k]) : NULL;
            if (vi)
                fact_merge_declared(c, &x->out[k], &vi->type);
        }
        for (size_t k = 0; st == KILN_OK && k < n->n_outputs && k < 8; k++)
            st = put_fact(c, n->outputs[k], &x->out[k]);
        if (st != KILN_OK)
            break;
        /* fold what became known */
        bool all = n->n_outputs > 0 && n->n_outputs <= 8 && !sub;
        for (size_t k = 0; all && k < n->n_outputs; k++)
            if (*n->outputs[k] && !foldable(&x->out[k]))
                all = false;
        bool inputs_const = true;
        for (size_t k = 0; k < n->n_inputs; k++)
            if (*n->inputs[k] && !x->k[k])
                inputs_const = false;
        if (all && !(inputs_const && kiln_eval_supported(c->m, n))) {
            kiln_status s2 = KILN_OK;
            for (size_t k = 0; s2 == KILN_OK && k < n->n_outputs; k++) {
                if (!*n->outputs[k])
                    continue;
                kiln_tensor *t;
                s2 = make_const(&x->out[k], &t);
                if (s2 != KILN_OK)
                    break;
                if (kiln_edit_is_output(g, n->outputs[k])) {
                    const char *cn;
                    kiln_node *id;
                    s2 = kiln_edit_new_const(g, &c->names, n->outputs[k], t, &cn);
                    if (s2 == KILN_OK)
                        s2 = kiln_edit_node_new("Identity", "", 1, &cn, 1, (const char *const *)&n->outputs[k], &id);
                    if (s2 == KILN_OK && (s2 = kiln_edit_insert(g, i + 1, id)) != KILN_OK)
                        kiln_node_destroy(id);
                } else {
                    s2 = kiln_edit_set_const(g, n->outputs[k], t);
                }
            }
            st = s2;
            if (st == KILN_OK) {
                kiln_graph_remove_node(g, i);
                c->rep->shapes_folded++;
                c->changed = true;
                continue;
            }
            break;
        }
        if (!*n->domain && !strcmp(n->op_type, "Reshape") && n->n_inputs == 2)
            st = fold_reshape(c, g, n, x);
        else if (!*n->domain && !strcmp(n->op_type, "Expand") && n->n_inputs == 2)
            st = fold_expand(c, g, n, x);
        else if (!*n->domain && !strcmp(n->op_type, "Concat"))
            st = fold_concat(c, g, n, x);
        i++;
    }
    free(x);
    kiln_nameset_free(&declared, NULL);
    if (st == KILN_OK && !s->up)
        for (size_t i = 0; i < g->n_outputs; i++) {
            const fact *o = kiln_fact(c, g->outputs[i].name);
            if (o)
                refine_type(&g->outputs[i].type, o);
        }
    return st;
}

kiln_status kiln_pass_shapes(kiln_freeze_ctx *c, kiln_scope *s) {
    kiln_nameset_free(&c->facts, fact_free);
    return shapes_graph(c, s);
}

/* For messages: a dim as text. */
void kiln_sdim_str(const kiln_sdim *d, char *buf, size_t n);
void kiln_sdim_str(const kiln_sdim *d, char *buf, size_t n) {
    if (!d->known)
        snprintf(buf, n, "?");
    else
        sd_str(d, buf, n);
}
