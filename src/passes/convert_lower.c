/* kiln convert: decompositions of operators a target opset lacks, into
 * operators it has, computing what the operator's definition (and ONNX's
 * reference implementation) computes. Each is written at the opset given in
 * its table entry (mostly 13: Reduce* take axes as attributes, Unsqueeze
 * and Squeeze as inputs, Softmax normalises one axis) and then converted on
 * to the target like any other node. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/convert.h"

#define LIST(...) ((const char *const[]){__VA_ARGS__})
#define COUNT(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define NODE(op, ...) cv_emit(c, op, NULL, COUNT(__VA_ARGS__), LIST(__VA_ARGS__))
#define NODE_TO(out, op, ...) cv_emit(c, op, out, COUNT(__VA_ARGS__), LIST(__VA_ARGS__))
#define V(op, ...) CV_OUT(NODE(op, __VA_ARGS__))
#define V_TO(out, op, ...) CV_OUT(NODE_TO(out, op, __VA_ARGS__))

static bool has_in(const kiln_node *n, size_t i) { return i < n->n_inputs && *n->inputs[i]; }
/* Output i's name, or NULL when the node does not produce it. */
static const char *out_of(const kiln_node *n, size_t i) {
    return i < n->n_outputs && *n->outputs[i] ? n->outputs[i] : NULL;
}

static const char *cast_to(cv_ctx *c, const char *x, kiln_dtype to, const char *out) {
    kiln_node *nd = NODE_TO(out, "Cast", x);
    cv_ai(c, nd, "to", to);
    return CV_OUT(nd);
}

/* ReduceX at opset 13 (axes an attribute; ReduceSum takes them as input) */
static const char *reduce(cv_ctx *c, const char *op, const char *x, size_t na, const int64_t *axes, bool keep,
                          const char *out) {
    kiln_node *nd;
    if (!strcmp(op, "ReduceSum")) {
        nd = na ? NODE_TO(out, op, x, cv_const_i64(c, na, axes)) : NODE_TO(out, op, x);
    } else {
        nd = NODE_TO(out, op, x);
        if (na)
            cv_aints(c, nd, "axes", na, axes);
    }
    cv_ai(c, nd, "keepdims", keep);
    return CV_OUT(nd);
}

static const char *unsqueeze(cv_ctx *c, const char *x, size_t na, const int64_t *axes) {
    return V("Unsqueeze", x, cv_const_i64(c, na, axes));
}

/* Dimension i of x as an int64 scalar (i may be negative). */
static const char *dim_scalar(cv_ctx *c, const char *x, int64_t i) {
    const char *sh = V("Shape", x);
    kiln_node *g = NODE("Gather", sh, cv_scalar_i64(c, i));
    cv_ai(c, g, "axis", 0);
    return CV_OUT(g);
}

/* The reduced axes of the normalisations: axis..rank-1 (negative when the rank is unknown). */
static cv_result norm_axes(cv_ctx *c, const char *x, int64_t axis, int64_t *axes, size_t *na) {
    int r = cv_rank(c, x);
    if (r < 0 && axis >= 0)
        return cv_refuse(c, "the rank of '%s' is not known (needed for axis %lld)", x, (long long)axis);
    if (r > 16)
        return cv_refuse(c, "rank %d", r);
    int64_t a = axis;
    if (r >= 0) {
        if (a < 0)
            a += r;
        if (a < 0 || a >= r)
            return cv_refuse(c, "axis %lld out of range for rank %d", (long long)axis, r);
        *na = (size_t)(r - a);
        for (size_t i = 0; i < *na; i++)
            axes[i] = a + (int64_t)i;
    } else {
        *na = (size_t)(-a);
        for (size_t i = 0; i < *na; i++)
            axes[i] = a + (int64_t)i;
    }
    return CV_DONE;
}

static kiln_dtype stash_of(cv_ctx *c, const kiln_node *n, kiln_dtype dt) {
    int64_t st = kiln_attr_int(n, "stash_type", 1);
    return st == KILN_DTYPE_FLOAT && dt != KILN_DTYPE_FLOAT && dt != KILN_DTYPE_DOUBLE ? KILN_DTYPE_FLOAT : dt;
}

static cv_result need_type(cv_ctx *c, const char *x, kiln_dtype *dt) {
    *dt = cv_dtype(c, x);
    if (!*dt)
        return cv_refuse(c, "the element type of '%s' is not known", x);
    return CV_DONE;
}

/* ---- CastLike (15) ---- */

static cv_result lower_castlike(cv_ctx *c, kiln_node *n) {
    kiln_dtype to;
    if (need_type(c, n->inputs[1], &to) != CV_DONE)
        return CV_REFUSED;
    kiln_node *cast = NODE_TO(n->outputs[0], "Cast", n->inputs[0]);
    cv_ai(c, cast, "to", to);
    cv_acopy(c, cast, n, "saturate", NULL);
    cv_acopy(c, cast, n, "round_mode", NULL);
    cv_orphan(c, n->inputs[1]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- LayerNormalization (17) ---- */

static cv_result lower_layernorm(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    int64_t axes[16];
    size_t na;
    if (need_type(c, x, &dt) != CV_DONE ||
        norm_axes(c, x, kiln_attr_int(n, "axis", -1), axes, &na) != CV_DONE)
        return CV_REFUSED;
    kiln_dtype u = stash_of(c, n, dt);
    const char *xu = u != dt ? cast_to(c, x, u, NULL) : x;
    const char *mean = reduce(c, "ReduceMean", xu, na, axes, true, u == dt || !out_of(n, 1) ? out_of(n, 1) : NULL);
    const char *d = V("Sub", xu, mean);
    const char *var = reduce(c, "ReduceMean", V("Mul", d, d), na, axes, true, NULL);
    const char *sd = V("Sqrt", V("Add", var, cv_scalar(c, u, kiln_attr_float(n, "epsilon", 1e-5f))));
    const char *inv = V_TO(out_of(n, 2), "Reciprocal", sd);
    const char *norm = V("Mul", d, inv);
    if (u != dt)
        norm = cast_to(c, norm, dt, NULL);
    if (has_in(n, 2)) {
        const char *y = V("Mul", norm, n->inputs[1]);
        V_TO(n->outputs[0], "Add", y, n->inputs[2]);
    } else {
        V_TO(n->outputs[0], "Mul", norm, n->inputs[1]);
    }
    if (u != dt && out_of(n, 1))
        V_TO(n->outputs[1], "Identity", mean);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- RMSNormalization (23) ---- */

static cv_result lower_rmsnorm(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    int64_t axes[16];
    size_t na;
    if (need_type(c, x, &dt) != CV_DONE ||
        norm_axes(c, x, kiln_attr_int(n, "axis", -1), axes, &na) != CV_DONE)
        return CV_REFUSED;
    kiln_dtype u = stash_of(c, n, dt);
    const char *xu = u != dt ? cast_to(c, x, u, NULL) : x;
    const char *ms = reduce(c, "ReduceMean", V("Mul", xu, xu), na, axes, true, NULL);
    const char *rms = V("Sqrt", V("Add", ms, cv_scalar(c, u, kiln_attr_float(n, "epsilon", 1e-5f))));
    const char *norm = V("Mul", xu, V("Reciprocal", rms));
    if (u != dt)
        norm = cast_to(c, norm, dt, NULL);
    V_TO(n->outputs[0], "Mul", norm, n->inputs[1]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- GroupNormalization (18, deprecated; 21) ---- */

static cv_result lower_groupnorm(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, x);
    if (r < 2 || r > 16)
        return cv_refuse(c, "the rank of '%s' is not known", x);
    int64_t g = kiln_attr_int(n, "num_groups", 0);
    if (g <= 0)
        return cv_refuse(c, "num_groups %lld", (long long)g);
    bool per_group = c->at < 21; /* version 18: scale and bias per group */
    kiln_dtype u = per_group ? dt : stash_of(c, n, dt);
    const char *xu = u != dt ? cast_to(c, x, u, NULL) : x;
    int64_t shp3[3] = {0, g, -1}, ax2 = 2;
    const char *x3 = V("Reshape", xu, cv_const_i64(c, 3, shp3));
    const char *mean = reduce(c, "ReduceMean", x3, 1, &ax2, true, NULL);
    const char *d = V("Sub", x3, mean);
    const char *var = reduce(c, "ReduceMean", V("Mul", d, d), 1, &ax2, true, NULL);
    const char *sd = V("Sqrt", V("Add", var, cv_scalar(c, u, kiln_attr_float(n, "epsilon", 1e-5f))));
    const char *norm = V("Div", d, sd);
    int64_t ax_tail[16];
    if (per_group) {
        int64_t one = 1;
        const char *s = unsqueeze(c, n->inputs[1], 1, &one), *b = unsqueeze(c, n->inputs[2], 1, &one);
        norm = V("Add", V("Mul", norm, s), b);
        V_TO(n->outputs[0], "Reshape", norm, V("Shape", x));
        return c->st ? CV_ERROR : CV_REPLACED;
    }
    norm = V("Reshape", norm, V("Shape", x));
    if (u != dt)
        norm = cast_to(c, norm, dt, NULL);
    for (int i = 0; i < r - 2; i++)
        ax_tail[i] = 1 + i;
    const char *s = r > 2 ? unsqueeze(c, n->inputs[1], (size_t)(r - 2), ax_tail) : n->inputs[1];
    const char *b = r > 2 ? unsqueeze(c, n->inputs[2], (size_t)(r - 2), ax_tail) : n->inputs[2];
    V_TO(n->outputs[0], "Add", V("Mul", norm, s), b);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- activations ---- */

static cv_result lower_gelu(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    const char *approx = kiln_attr_string(n, "approximate", "none");
    const char *half = V("Mul", cv_scalar(c, dt, 0.5), x);
    const char *inner;
    if (!strcmp(approx, "tanh")) {
        /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        const char *x3 = V("Mul", V("Mul", x, x), x);
        const char *p = V("Add", x, V("Mul", cv_scalar(c, dt, 0.044715), x3));
        inner = V("Tanh", V("Mul", cv_scalar(c, dt, 0.7978845608028654), p));
    } else if (!strcmp(approx, "none")) {
        /* 0.5 x (1 + erf(x / sqrt(2))) */
        inner = V("Erf", V("Mul", x, cv_scalar(c, dt, 0.7071067811865476)));
    } else {
        return cv_refuse(c, "approximate '%s'", approx);
    }
    V_TO(n->outputs[0], "Mul", half, V("Add", inner, cv_scalar(c, dt, 1)));
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_mish(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    V_TO(n->outputs[0], "Mul", x, V("Tanh", V("Softplus", x)));
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_hardswish(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_node *hs = NODE("HardSigmoid", x);
    cv_af(c, hs, "alpha", 1.0f / 6);
    cv_af(c, hs, "beta", 0.5f);
    V_TO(n->outputs[0], "Mul", x, CV_OUT(hs));
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* x * sigmoid(alpha x) */
static const char *swish(cv_ctx *c, const char *x, kiln_dtype dt, float alpha, const char *out) {
    const char *ax = alpha == 1.0f ? x : V("Mul", x, cv_scalar(c, dt, alpha));
    return V_TO(out, "Mul", x, V("Sigmoid", ax));
}

static cv_result lower_swish(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    swish(c, n->inputs[0], dt, kiln_attr_float(n, "alpha", 1.0f), n->outputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_swiglu(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    const char *s = swish(c, n->inputs[0], dt, kiln_attr_float(n, "alpha", 1.0f), NULL);
    V_TO(n->outputs[0], "Mul", s, n->inputs[1]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_celu(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    float alpha = kiln_attr_float(n, "alpha", 1.0f);
    const char *a = cv_scalar(c, dt, alpha);
    kiln_node *elu = NODE("Elu", V("Div", n->inputs[0], a));
    cv_af(c, elu, "alpha", 1.0f);
    V_TO(n->outputs[0], "Mul", a, CV_OUT(elu));
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_ge(cv_ctx *c, kiln_node *n) {
    const char *a = n->inputs[0], *b = n->inputs[1];
    bool ge = !strcmp(n->op_type, "GreaterOrEqual");
    V_TO(n->outputs[0], "Or", V(ge ? "Greater" : "Less", a, b), V("Equal", a, b));
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- Trilu (14) ---- */

/* j - i for i in [0, rows), j in [0, cols): an int64 [rows, cols] matrix. */
static const char *col_minus_row(cv_ctx *c, const char *rows, const char *cols) {
    const char *zero = cv_scalar_i64(c, 0), *one = cv_scalar_i64(c, 1);
    int64_t a0 = 0, a1 = 1;
    const char *i = unsqueeze(c, V("Range", zero, rows, one), 1, &a1);
    const char *j = unsqueeze(c, V("Range", zero, cols, one), 1, &a0);
    return V("Sub", j, i);
}

static cv_result lower_trilu(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    const char *k = has_in(n, 1) ? n->inputs[1] : cv_scalar_i64(c, 0);
    const char *diff = col_minus_row(c, dim_scalar(c, x, -2), dim_scalar(c, x, -1));
    bool upper = kiln_attr_int(n, "upper", 1) != 0;
    /* upper keeps j - i >= k, lower j - i <= k */
    const char *drop = upper ? V("Less", diff, k) : V("Greater", diff, k);
    V_TO(n->outputs[0], "Where", drop, cv_scalar(c, dt, 0), x);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- CumProd (26) ---- */

/* Cumulative product along axis a (known) of x (rank r). */
static const char *cumprod_axis(cv_ctx *c, const char *x, kiln_dtype dt, int r, int64_t a, bool excl, bool rev,
                                const char *out) {
    /* out[i] = prod over j of (keep(i, j) ? x[j] : 1), the j axis next to i */
    const char *len = dim_scalar(c, x, a);
    const char *diff = col_minus_row(c, len, len); /* [i, j] = j - i */
    const char *zero = cv_scalar_i64(c, 0);
    const char *keep = rev ? (excl ? V("Greater", diff, zero) : V("Not", V("Less", diff, zero)))
                           : (excl ? V("Less", diff, zero) : V("Not", V("Greater", diff, zero)));
    int64_t tail[16];
    for (int i = 0; i < r - 1 - a; i++)
        tail[i] = 2 + i;
    if (r - 1 - a > 0)
        keep = unsqueeze(c, keep, (size_t)(r - 1 - a), tail);
    const char *xj = unsqueeze(c, x, 1, &a); /* [..., 1 (i), L (j), ...] */
    const char *w = V("Where", keep, xj, cv_scalar(c, dt, 1));
    int64_t jax = a + 1;
    return reduce(c, "ReduceProd", w, 1, &jax, false, out);
}

static cv_result lower_cumprod(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, x);
    if (r < 1 || r > 15)
        return cv_refuse(c, "the rank of '%s' is not known", x);
    bool excl = kiln_attr_int(n, "exclusive", 0) != 0, rev = kiln_attr_int(n, "reverse", 0) != 0;
    int64_t axv[4];
    int k;
    if (cv_const_ints(c, n->inputs[1], axv, &k, 4) && k == 1) {
        int64_t a = axv[0] < 0 ? axv[0] + r : axv[0];
        if (a < 0 || a >= r)
            return cv_refuse(c, "axis %lld out of range", (long long)axv[0]);
        cumprod_axis(c, x, dt, r, a, excl, rev, n->outputs[0]);
        return c->st ? CV_ERROR : CV_REPLACED;
    }
    /* an axis known at run time: every axis computed, the right one selected */
    if (r > 4)
        return cv_refuse(c, "its axis ('%s') is not constant and the rank is %d", n->inputs[1], r);
    const char *ax = V("Reshape", cast_to(c, n->inputs[1], KILN_DTYPE_INT64, NULL), cv_const_i64(c, 0, NULL));
    const char *rk = cv_scalar_i64(c, r);
    ax = V("Where", V("Less", ax, cv_scalar_i64(c, 0)), V("Add", ax, rk), ax);
    const char *y = cumprod_axis(c, x, dt, r, r - 1, excl, rev, NULL);
    for (int a = r - 2; a >= 0; a--)
        y = V("Where", V("Equal", ax, cv_scalar_i64(c, a)), cumprod_axis(c, x, dt, r, a, excl, rev, NULL), y);
    V_TO(n->outputs[0], "Identity", y);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- bitwise ---- */

static cv_result lower_bitwise_not(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    double maxu;
    switch (dt) {
    case KILN_DTYPE_UINT8: maxu = 255; break;
    case KILN_DTYPE_UINT16: maxu = 65535; break;
    case KILN_DTYPE_UINT32: maxu = 4294967295.0; break;
    case KILN_DTYPE_UINT64: maxu = -1; break;
    case KILN_DTYPE_INT8:
    case KILN_DTYPE_INT16:
    case KILN_DTYPE_INT32:
    case KILN_DTYPE_INT64:
        /* two's complement: ~x = -1 - x */
        V_TO(n->outputs[0], "Sub", cv_scalar(c, dt, -1), n->inputs[0]);
        return c->st ? CV_ERROR : CV_REPLACED;
    default: return cv_refuse(c, "element type %s", kiln_dtype_name(dt));
    }
    if (maxu < 0)
        return cv_refuse(c, "uint64 has no exact decomposition");
    V_TO(n->outputs[0], "Sub", cv_scalar(c, dt, maxu), n->inputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* BitCast between integer types of one width is a wrapping Cast. */
static cv_result lower_bitcast(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    int64_t to = kiln_attr_int(n, "to", 0);
    bool iint = dt == KILN_DTYPE_INT8 || dt == KILN_DTYPE_UINT8 || dt == KILN_DTYPE_INT16 || dt == KILN_DTYPE_UINT16 ||
                dt == KILN_DTYPE_INT32 || dt == KILN_DTYPE_UINT32 || dt == KILN_DTYPE_INT64 ||
                dt == KILN_DTYPE_UINT64;
    bool oint = to == KILN_DTYPE_INT8 || to == KILN_DTYPE_UINT8 || to == KILN_DTYPE_INT16 || to == KILN_DTYPE_UINT16 ||
                to == KILN_DTYPE_INT32 || to == KILN_DTYPE_UINT32 || to == KILN_DTYPE_INT64 ||
                to == KILN_DTYPE_UINT64;
    if (to == dt) {
        V_TO(n->outputs[0], "Identity", n->inputs[0]);
        return c->st ? CV_ERROR : CV_REPLACED;
    }
    if (kiln_dtype_size(dt) != kiln_dtype_size((kiln_dtype)to) ||
        !((iint && oint) || (dt == KILN_DTYPE_BOOL && (to == KILN_DTYPE_UINT8 || to == KILN_DTYPE_INT8))))
        return cv_refuse(c, "reinterpreting %s as %s has no exact decomposition", kiln_dtype_name(dt),
                         kiln_dtype_name((kiln_dtype)to));
    cast_to(c, n->inputs[0], (kiln_dtype)to, n->outputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* BitwiseAnd/Or/Xor (18) on integers up to 32 bits: the bits along a new
 * last axis (int64 arithmetic: Div and Mod by powers of two), combined, summed back. */
static cv_result lower_bitwise(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    int w;
    bool sgn = false;
    switch (dt) {
    case KILN_DTYPE_INT8: sgn = true; /* fall through */
    case KILN_DTYPE_UINT8: w = 8; break;
    case KILN_DTYPE_INT16: sgn = true; /* fall through */
    case KILN_DTYPE_UINT16: w = 16; break;
    case KILN_DTYPE_INT32: sgn = true; /* fall through */
    case KILN_DTYPE_UINT32: w = 32; break;
    case KILN_DTYPE_UINT64: w = 64; break; /* computed in uint64 itself */
    default: return cv_refuse(c, "%s has no exact decomposition of its bits", kiln_dtype_name(dt));
    }
    kiln_dtype at = w == 64 ? KILN_DTYPE_UINT64 : KILN_DTYPE_INT64;
    int64_t mod = w < 64 ? (int64_t)1 << w : 0, last = -1;
    int64_t wd = w;
    kiln_tensor *pt = NULL;
    kiln_status pst = kiln_tensor_create(at, 1, &wd, &pt);
    if (pst != KILN_OK)
        return cv_error(c, pst);
    for (int i = 0; i < w; i++)
        ((uint64_t *)pt->data)[i] = (uint64_t)1 << i;
    const char *p = NULL;
    if ((pst = kiln_edit_new_const(c->scope->g, &c->fc.names, "bits", pt, &p)) != KILN_OK)
        return cv_error(c, pst);
    const char *two = cv_scalar(c, at, 2), *m = sgn ? cv_scalar_i64(c, mod) : NULL;
    const char *bits[2];
    for (int k = 0; k < 2; k++) {
        const char *x = at == dt ? n->inputs[k] : cast_to(c, n->inputs[k], KILN_DTYPE_INT64, NULL);
        if (sgn)
            x = V("Mod", x, m); /* floor modulo: the two's complement pattern, as a non-negative number */
        bits[k] = V("Mod", V("Div", unsqueeze(c, x, 1, &last), p), two);
    }
    const char *op = n->op_type, *b;
    if (!strcmp(op, "BitwiseAnd"))
        b = V("Mul", bits[0], bits[1]);
    else if (!strcmp(op, "BitwiseOr"))
        b = V("Sub", V("Add", bits[0], bits[1]), V("Mul", bits[0], bits[1]));
    else
        b = V("Mod", V("Add", bits[0], bits[1]), two);
    const char *y = reduce(c, "ReduceSum", V("Mul", b, p), 1, &last, false, NULL);
    if (sgn)
        y = V("Where", V("Less", y, cv_scalar_i64(c, mod / 2)), y, V("Sub", y, m));
    if (at == dt)
        V_TO(n->outputs[0], "Identity", y);
    else
        cast_to(c, y, dt, n->outputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- CenterCropPad (18) ---- */

static cv_result lower_center_crop_pad(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    int r = cv_rank(c, x);
    if (r < 0 || r > 16)
        return cv_refuse(c, "the rank of '%s' is not known", x);
    int64_t shp[16];
    int ns;
    size_t na;
    const int64_t *ax = kiln_attr_ints(n, "axes", &na);
    int64_t axes[16];
    if (!ax)
        na = (size_t)r;
    for (size_t i = 0; i < na; i++) {
        axes[i] = ax ? (ax[i] < 0 ? ax[i] + r : ax[i]) : (int64_t)i;
        if (axes[i] < 0 || axes[i] >= r)
            return cv_refuse(c, "axis out of range");
    }
    bool known = cv_const_ints(c, n->inputs[1], shp, &ns, 16);
    for (size_t i = 0; known && i < na; i++)
        known = cv_dim(c, x, (int)axes[i]) >= 0;
    if (!known) {
        /* sizes known only when it runs: crop = max(d - s, 0) from crop / 2,
         * pad = max(s - d, 0) split pad / 2 before, the rest after */
        const char *ac = cv_const_i64(c, na, axes), *zero = cv_scalar_i64(c, 0), *two = cv_scalar_i64(c, 2);
        kiln_node *g = NODE("Gather", V("Shape", x), ac);
        cv_ai(c, g, "axis", 0);
        const char *d = CV_OUT(g), *sz = n->inputs[1];
        const char *dd = V("Sub", d, sz);
        const char *crop = V("Where", V("Less", dd, zero), zero, dd);
        const char *start = V("Div", crop, two);
        const char *keep = V("Where", V("Less", sz, d), sz, d);
        const char *y = V("Slice", x, start, V("Add", start, keep), ac);
        const char *pd = V("Sub", zero, dd);
        const char *pad = V("Where", V("Less", pd, zero), zero, pd);
        const char *before = V("Div", pad, two), *after = V("Sub", pad, before);
        const char *parts[32];
        int64_t z0 = 0;
        const char *zv = cv_const_i64(c, 1, &z0);
        for (int side = 0; side < 2; side++)
            for (int i = 0; i < r; i++) {
                parts[side * r + i] = zv;
                for (size_t k = 0; k < na; k++)
                    if (axes[k] == i) {
                        int64_t kk = (int64_t)k, k1 = kk + 1;
                        parts[side * r + i] = V("Slice", side ? after : before, cv_const_i64(c, 1, &kk),
                                                cv_const_i64(c, 1, &k1));
                    }
            }
        kiln_node *cat = cv_emit(c, "Concat", NULL, (size_t)(2 * r), parts);
        cv_ai(c, cat, "axis", 0);
        V_TO(n->outputs[0], "Pad", y, CV_OUT(cat));
        return c->st ? CV_ERROR : CV_REPLACED;
    }
    if ((int)na != ns)
        return cv_refuse(c, "%d sizes for %zu axes", ns, na);
    int64_t st[16], en[16], sax[16], pads[32] = {0};
    size_t nsl = 0;
    bool pad = false;
    for (size_t i = 0; i < na; i++) {
        int64_t d = cv_dim(c, x, (int)axes[i]), sh = shp[i];
        if (d < 0)
            return cv_refuse(c, "dimension %lld of '%s' is not known", (long long)axes[i], x);
        if (sh < d) {
            int64_t h = (d - sh) / 2;
            st[nsl] = h, en[nsl] = h + sh, sax[nsl++] = axes[i];
        } else if (sh > d) {
            int64_t h = (sh - d) / 2;
            pads[axes[i]] = h;
            pads[r + axes[i]] = sh - d - h;
            pad = true;
        }
    }
    const char *y = x;
    if (nsl)
        y = V("Slice", y, cv_const_i64(c, nsl, st), cv_const_i64(c, nsl, en), cv_const_i64(c, nsl, sax));
    if (pad)
        y = V("Pad", y, cv_const_i64(c, (size_t)(2 * r), pads));
    V_TO(n->outputs[0], "Identity", y);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- window functions (17), computed in double ---- */

static cv_result lower_window(cv_ctx *c, kiln_node *n) {
    const char *size = n->inputs[0];
    int64_t odt = kiln_attr_int(n, "output_datatype", KILN_DTYPE_FLOAT);
    bool periodic = kiln_attr_int(n, "periodic", 1) != 0;
    const char *sz = V("Reshape", size, cv_const_i64(c, 0, NULL)); /* a scalar */
    sz = cast_to(c, sz, KILN_DTYPE_INT64, NULL);
    const char *k = cast_to(c, V("Range", cv_scalar_i64(c, 0), sz, cv_scalar_i64(c, 1)), KILN_DTYPE_DOUBLE, NULL);
    const char *nn = cast_to(c, sz, KILN_DTYPE_DOUBLE, NULL);
    if (!periodic)
        nn = V("Sub", nn, cv_scalar(c, KILN_DTYPE_DOUBLE, 1));
    const char *op = n->op_type, *y;
    const double pi = 3.14159265358979323846;
    const char *t2 = V("Div", V("Mul", k, cv_scalar(c, KILN_DTYPE_DOUBLE, 2 * pi)), nn);
    if (!strcmp(op, "HannWindow")) {
        const char *sn = V("Sin", V("Div", V("Mul", k, cv_scalar(c, KILN_DTYPE_DOUBLE, pi)), nn));
        y = V("Mul", sn, sn);
    } else if (!strcmp(op, "HammingWindow")) {
        double al = 25.0 / 46.0;
        y = V("Sub", cv_scalar(c, KILN_DTYPE_DOUBLE, al), V("Mul", V("Cos", t2), cv_scalar(c, KILN_DTYPE_DOUBLE, 1 - al)));
    } else {
        const char *t4 = V("Div", V("Mul", k, cv_scalar(c, KILN_DTYPE_DOUBLE, 4 * pi)), nn);
        y = V("Add", V("Mul", V("Cos", t2), cv_scalar(c, KILN_DTYPE_DOUBLE, -0.5)),
              V("Mul", V("Cos", t4), cv_scalar(c, KILN_DTYPE_DOUBLE, 0.08)));
        y = V("Add", y, cv_scalar(c, KILN_DTYPE_DOUBLE, 0.42));
    }
    cast_to(c, y, (kiln_dtype)odt, n->outputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- AffineGrid (20): the base grid from Range, times theta (in double) ---- */

static cv_result lower_affine_grid(cv_ctx *c, kiln_node *n) {
    const char *theta = n->inputs[0], *size = n->inputs[1];
    kiln_dtype dt;
    if (need_type(c, theta, &dt) != CV_DONE)
        return CV_REFUSED;
    int64_t len = cv_dim(c, size, 0);
    if (len != 4 && len != 5)
        return cv_refuse(c, "the length of size ('%s') is not known to be 4 or 5", size);
    int nd = (int)len - 2; /* spatial dims: H, W or D, H, W */
    bool align = kiln_attr_int(n, "align_corners", 0) != 0;
    const kiln_dtype D = KILN_DTYPE_DOUBLE;
    const char *dims[3], *coords[3];
    for (int i = 0; i < nd; i++) {
        kiln_node *g = NODE("Gather", size, cv_scalar_i64(c, 2 + i));
        cv_ai(c, g, "axis", 0);
        dims[i] = CV_OUT(g);
        const char *k = cast_to(c, V("Range", cv_scalar_i64(c, 0), dims[i], cv_scalar_i64(c, 1)), D, NULL);
        const char *nf = cast_to(c, dims[i], D, NULL);
        const char *a;
        if (align) {
            const char *step = V("Div", cv_scalar(c, D, 2), V("Sub", nf, cv_scalar(c, D, 1)));
            a = V("Add", cv_scalar(c, D, -1), V("Mul", k, step));
        } else {
            const char *step = V("Div", cv_scalar(c, D, 2), nf);
            const char *start = V("Add", cv_scalar(c, D, -1), V("Div", step, cv_scalar(c, D, 2)));
            a = V("Add", start, V("Mul", k, step));
        }
        coords[i] = a;
    }
    int64_t zero = 0;
    const char *shp[3];
    for (int i = 0; i < nd; i++)
        shp[i] = unsqueeze(c, dims[i], 1, &zero);
    kiln_node *sc = cv_emit(c, "Concat", NULL, (size_t)nd, shp);
    cv_ai(c, sc, "axis", 0);
    const char *grid_shape = CV_OUT(sc);
    /* coordinate i varies along spatial axis i: shaped [1,..,n_i,..,1] and expanded */
    const char *planes[4];
    for (int i = 0; i < nd; i++) {
        int64_t ax[3];
        int k = 0;
        for (int j = 0; j < nd; j++)
            if (j != i)
                ax[k++] = j;
        const char *e = V("Expand", unsqueeze(c, coords[i], (size_t)k, ax), grid_shape);
        int64_t last = -1;
        planes[nd - 1 - i] = unsqueeze(c, e, 1, &last); /* x (the last axis) first */
    }
    int64_t last = -1;
    planes[nd] = unsqueeze(c, V("Expand", cv_scalar(c, D, 1), grid_shape), 1, &last);
    kiln_node *st = cv_emit(c, "Concat", NULL, (size_t)nd + 1, planes);
    cv_ai(c, st, "axis", -1);
    int64_t flat[2] = {-1, nd + 1};
    kiln_node *tr = NODE("Transpose", V("Reshape", CV_OUT(st), cv_const_i64(c, 2, flat)));
    cv_aints(c, tr, "perm", 2, (int64_t[]){1, 0});
    const char *g = V("MatMul", cast_to(c, theta, D, NULL), CV_OUT(tr)); /* [N, nd, prod] */
    kiln_node *t2 = NODE("Transpose", g);
    cv_aints(c, t2, "perm", 3, (int64_t[]){0, 2, 1});
    kiln_node *nb = NODE("Gather", size, cv_scalar_i64(c, 0));
    cv_ai(c, nb, "axis", 0);
    int64_t ndv = nd;
    kiln_node *os = NODE("Concat", unsqueeze(c, CV_OUT(nb), 1, &zero), grid_shape, cv_const_i64(c, 1, &ndv));
    cv_ai(c, os, "axis", 0);
    cast_to(c, V("Reshape", CV_OUT(t2), CV_OUT(os)), dt, n->outputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- CausalConvWithState (27): the state before the input, a depthwise Conv ---- */

static cv_result lower_causal_conv(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0], *w = n->inputs[1];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int64_t ch = cv_dim(c, w, 0), k = cv_dim(c, w, 2);
    if (ch <= 0 || k <= 0)
        return cv_refuse(c, "the weight's shape ('%s') is not known", w);
    const char *act = kiln_attr_string(n, "activation", "none");
    bool silu = !strcmp(act, "silu") || !strcmp(act, "swish");
    if (!silu && strcmp(act, "none") != 0)
        return cv_refuse(c, "activation '%s'", act);
    const char *padded;
    if (has_in(n, 3)) {
        kiln_node *cat = NODE("Concat", n->inputs[3], x);
        cv_ai(c, cat, "axis", 2);
        padded = CV_OUT(cat);
    } else {
        int64_t pads[6] = {0, 0, k - 1, 0, 0, 0};
        padded = k > 1 ? V("Pad", x, cv_const_i64(c, 6, pads)) : x;
    }
    kiln_node *conv = has_in(n, 2) ? NODE("Conv", padded, w, n->inputs[2]) : NODE("Conv", padded, w);
    cv_ai(c, conv, "group", ch);
    cv_aints(c, conv, "kernel_shape", 1, &k);
    const char *y = CV_OUT(conv);
    if (silu) {
        bool up = dt != KILN_DTYPE_FLOAT && dt != KILN_DTYPE_DOUBLE;
        const char *yf = up ? cast_to(c, y, KILN_DTYPE_FLOAT, NULL) : y;
        const char *s = V("Mul", yf, V("Sigmoid", yf));
        y = up ? cast_to(c, s, dt, n->outputs[0]) : V_TO(n->outputs[0], "Identity", s);
    } else {
        V_TO(n->outputs[0], "Identity", y);
    }
    if (out_of(n, 1)) {
        int64_t st = k > 1 ? -(k - 1) : INT64_MAX, en = INT64_MAX, ax = 2;
        V_TO(n->outputs[1], "Slice", padded, cv_const_i64(c, 1, &st), cv_const_i64(c, 1, &en), cv_const_i64(c, 1, &ax));
    }
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- LinearAttention (27): the recurrence unrolled over a known length ---- */

static const char *gather_t(cv_ctx *c, const char *x, int64_t t) {
    kiln_node *g = NODE("Gather", x, cv_scalar_i64(c, t));
    cv_ai(c, g, "axis", 2);
    return CV_OUT(g);
}

/* [B, T, H*D] -> [B, H, T, D] as float */
static const char *heads4(cv_ctx *c, const char *x, int64_t h) {
    static const int64_t perm[4] = {0, 2, 1, 3};
    int64_t s4[4] = {0, 0, h, -1};
    kiln_node *t = NODE("Transpose", V("Reshape", x, cv_const_i64(c, 4, s4)));
    cv_aints(c, t, "perm", 4, perm);
    return cast_to(c, CV_OUT(t), KILN_DTYPE_FLOAT, NULL);
}

static cv_result lower_linear_attention(cv_ctx *c, kiln_node *n) {
    const char *q = n->inputs[0], *k = n->inputs[1], *v = n->inputs[2];
    kiln_dtype dt;
    if (need_type(c, q, &dt) != CV_DONE)
        return CV_REFUSED;
    const char *rule = kiln_attr_string(n, "update_rule", "gated_delta");
    bool gating = !strcmp(rule, "gated") || !strcmp(rule, "gated_delta");
    bool delta = !strcmp(rule, "delta") || !strcmp(rule, "gated_delta");
    if (!gating && !delta && strcmp(rule, "linear") != 0)
        return cv_refuse(c, "update_rule '%s'", rule);
    int64_t hq = kiln_attr_int(n, "q_num_heads", 0), hkv = kiln_attr_int(n, "kv_num_heads", 0);
    int64_t T = cv_dim(c, q, 1), hidq = cv_dim(c, q, 2), hidv = cv_dim(c, v, 2);
    if (hq <= 0 || hkv <= 0 || hq % hkv)
        return cv_refuse(c, "q_num_heads %lld, kv_num_heads %lld", (long long)hq, (long long)hkv);
    if (T < 0 || hidq <= 0 || hidv <= 0)
        return cv_refuse(c, "the sequence length and head sizes are not known (the recurrence is unrolled)");
    if (T > 256)
        return cv_refuse(c, "a sequence of %lld steps is too long to unroll", (long long)T);
    if ((gating && !has_in(n, 4)) || (delta && !has_in(n, 5)))
        return cv_refuse(c, "update_rule '%s' without its decay/beta input", rule);
    int64_t dk = hidq / hq, dv = hidv / hkv, group = hq / hkv;
    float scale = kiln_attr_float(n, "scale", 0);
    double sc = scale == 0 ? 1 / sqrt((double)dk) : scale;
    const char *q4 = heads4(c, q, hq), *k4 = heads4(c, k, hkv), *v4 = heads4(c, v, hkv);
    static const int64_t perm[4] = {0, 2, 1, 3};
    const char *dec = NULL, *bet = NULL;
    if (gating) {
        int64_t dl = cv_dim(c, n->inputs[4], 2);
        if (dl == hkv) {
            int64_t s4[4] = {0, 0, hkv, 1};
            kiln_node *t = NODE("Transpose", V("Reshape", n->inputs[4], cv_const_i64(c, 4, s4)));
            cv_aints(c, t, "perm", 4, perm);
            dec = cast_to(c, CV_OUT(t), KILN_DTYPE_FLOAT, NULL);
        } else if (dl == hkv * dk) {
            dec = heads4(c, n->inputs[4], hkv);
        } else {
            return cv_refuse(c, "decay's last dim %lld", (long long)dl);
        }
    }
    if (delta) {
        int64_t bl = cv_dim(c, n->inputs[5], 2);
        if (bl != hkv && bl != 1)
            return cv_refuse(c, "beta's last dim %lld", (long long)bl);
        int64_t s4[4] = {0, 0, bl, 1};
        kiln_node *t = NODE("Transpose", V("Reshape", n->inputs[5], cv_const_i64(c, 4, s4)));
        cv_aints(c, t, "perm", 4, perm);
        bet = cast_to(c, CV_OUT(t), KILN_DTYPE_FLOAT, NULL);
    }
    kiln_dtype sdt = dt;
    const char *state;
    if (has_in(n, 3)) {
        sdt = cv_dtype(c, n->inputs[3]);
        state = cast_to(c, n->inputs[3], KILN_DTYPE_FLOAT, NULL);
    } else {
        int64_t zero = 0, rest[3] = {hkv, dk, dv};
        kiln_node *shp = NODE("Concat", unsqueeze(c, dim_scalar(c, q, 0), 1, &zero), cv_const_i64(c, 3, rest));
        cv_ai(c, shp, "axis", 0);
        state = V("Expand", cv_scalar(c, KILN_DTYPE_FLOAT, 0), CV_OUT(shp));
    }
    int64_t m1 = -1, m2 = -2, two = 2;
    const char *scv = cv_scalar(c, KILN_DTYPE_FLOAT, sc);
    const char *outs[256];
    for (int64_t t = 0; t < T; t++) {
        const char *qt = gather_t(c, q4, t), *kt = gather_t(c, k4, t), *vt = gather_t(c, v4, t);
        if (gating)
            state = V("Mul", state, unsqueeze(c, V("Exp", gather_t(c, dec, t)), 1, &m1));
        if (delta) {
            const char *ret = V("Squeeze", V("MatMul", unsqueeze(c, kt, 1, &m2), state), cv_const_i64(c, 1, &m2));
            vt = V("Mul", gather_t(c, bet, t), V("Sub", vt, ret));
        }
        state = V("Add", state, V("Mul", unsqueeze(c, kt, 1, &m1), unsqueeze(c, vt, 1, &m2)));
        const char *rd = state;
        if (group > 1) {
            int64_t rep[5] = {1, 1, group, 1, 1}, s4[4] = {0, hq, dk, dv};
            rd = V("Reshape", V("Expand", unsqueeze(c, state, 1, &two), cv_const_i64(c, 5, rep)),
                   cv_const_i64(c, 4, s4));
        }
        outs[t] = V("Mul", scv, V("MatMul", unsqueeze(c, qt, 1, &m2), rd)); /* [B, Hq, 1, dv] */
    }
    const char *all;
    if (T == 1) {
        all = outs[0];
    } else {
        kiln_node *cat = cv_emit(c, "Concat", NULL, (size_t)T, outs);
        cv_ai(c, cat, "axis", 2);
        all = CV_OUT(cat);
    }
    kiln_node *tr = NODE("Transpose", all);
    cv_aints(c, tr, "perm", 4, perm);
    int64_t s3[3] = {0, 0, hq * dv};
    cast_to(c, V("Reshape", CV_OUT(tr), cv_const_i64(c, 3, s3)), dt, n->outputs[0]);
    if (out_of(n, 1))
        cast_to(c, state, sdt, n->outputs[1]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (12) ---- */

static cv_result nll(cv_ctx *c, const kiln_node *n, const char *x, kiln_dtype dt, const char *out) {
    const char *t = n->inputs[1], *w = has_in(n, 2) ? n->inputs[2] : NULL;
    kiln_dtype tdt;
    if (need_type(c, t, &tdt) != CV_DONE)
        return CV_REFUSED;
    const char *reduction = kiln_attr_string(n, "reduction", "mean");
    const kiln_attr *ia = kiln_node_attr(n, "ignore_index");
    const char *ign = ia ? V("Equal", t, cv_scalar(c, tdt, (double)ia->i)) : NULL;
    const char *ts = ign ? V("Where", ign, cv_scalar(c, tdt, 0), t) : t;
    int64_t one = 1;
    kiln_node *g = NODE("GatherElements", x, unsqueeze(c, ts, 1, &one));
    cv_ai(c, g, "axis", 1);
    const char *nl = V("Neg", V("Squeeze", CV_OUT(g), cv_const_i64(c, 1, &one)));
    const char *zero = cv_scalar(c, dt, 0);
    if (ign)
        nl = V("Where", ign, zero, nl);
    const char *wt = NULL;
    if (w) {
        wt = V("Gather", w, ts);
        if (ign)
            wt = V("Where", ign, zero, wt);
        nl = V("Mul", wt, nl);
    } else if (ign) {
        wt = cast_to(c, V("Not", ign), dt, NULL);
    }
    if (!strcmp(reduction, "none")) {
        V_TO(out, "Identity", nl);
    } else if (!strcmp(reduction, "sum")) {
        reduce(c, "ReduceSum", nl, 0, NULL, false, out);
    } else if (!strcmp(reduction, "mean")) {
        if (wt)
            V_TO(out, "Div", reduce(c, "ReduceSum", nl, 0, NULL, false, NULL),
                 reduce(c, "ReduceSum", wt, 0, NULL, false, NULL));
        else
            reduce(c, "ReduceMean", nl, 0, NULL, false, out);
    } else {
        return cv_refuse(c, "reduction '%s'", reduction);
    }
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_nll(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    return nll(c, n, n->inputs[0], dt, n->outputs[0]);
}

static cv_result lower_sce(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    kiln_node *ls = NODE_TO(out_of(n, 1), "LogSoftmax", n->inputs[0]);
    cv_ai(c, ls, "axis", 1);
    return nll(c, n, CV_OUT(ls), dt, n->outputs[0]);
}

/* ---- DFT (17, 20): MatMuls with cos/sin matrices of a known length (in double) ---- */

static const char *dmatrix(cv_ctx *c, int64_t rows, int64_t cols, bool sine, double scale, const double *w,
                           int64_t n) {
    kiln_tensor *t;
    int64_t d[2] = {rows, cols};
    kiln_status st = kiln_tensor_create(KILN_DTYPE_DOUBLE, 2, d, &t);
    if (st != KILN_OK) {
        cv_error(c, st);
        return "";
    }
    double *v = t->data;
    const double pi = 3.14159265358979323846;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double a = 2 * pi * (double)((i * j) % n) / (double)n;
            v[i * cols + j] = (sine ? sin(a) : cos(a)) * scale * (w ? w[i] : 1);
        }
    const char *nm = NULL;
    st = kiln_edit_new_const(c->scope->g, &c->fc.names, "dft_matrix", t, &nm);
    if (st != KILN_OK) {
        cv_error(c, st);
        return "";
    }
    return nm;
}

static cv_result dft_core(cv_ctx *c, kiln_node *n, const char *x, kiln_dtype dt, int r, int64_t axis,
                          const char *out) {
    if (axis < 0 || axis >= r - 1)
        return cv_refuse(c, "axis %lld", (long long)axis);
    bool inverse = kiln_attr_int(n, "inverse", 0) != 0, onesided = kiln_attr_int(n, "onesided", 0) != 0;
    int64_t L = cv_dim(c, x, (int)axis), cd = cv_dim(c, x, r - 1), N;
    if (L < 0 || (cd != 1 && cd != 2))
        return cv_refuse(c, "the signal's length or its complex dim is not known");
    if (has_in(n, 1)) {
        int64_t v[2];
        int k;
        if (!cv_const_ints(c, n->inputs[1], v, &k, 2) || k != 1)
            return cv_refuse(c, "its dft_length ('%s') is not a constant", n->inputs[1]);
        N = v[0];
    } else {
        N = inverse && onesided ? 2 * (L - 1) : L;
    }
    if (N <= 0 || N > 4096)
        return cv_refuse(c, "dft_length %lld", (long long)N);
    /* the signal axis just before the complex dim */
    int64_t perm[16], back[16];
    int k = 0;
    for (int i = 0; i < r - 1; i++)
        if (i != axis)
            perm[k++] = i;
    perm[k++] = axis;
    perm[k] = r - 1;
    for (int i = 0; i < r; i++)
        back[perm[i]] = i;
    kiln_node *tr = NODE("Transpose", cast_to(c, x, KILN_DTYPE_DOUBLE, NULL));
    cv_aints(c, tr, "perm", (size_t)r, perm);
    const char *xt = CV_OUT(tr);
    int64_t z = 0, o = 1, two = 2, last = -1;
    const char *re = V("Squeeze", V("Slice", xt, cv_const_i64(c, 1, &z), cv_const_i64(c, 1, &o), cv_const_i64(c, 1, &last)),
                       cv_const_i64(c, 1, &last));
    const char *im = cd == 2 ? V("Squeeze", V("Slice", xt, cv_const_i64(c, 1, &o), cv_const_i64(c, 1, &two),
                                                   cv_const_i64(c, 1, &last)),
                                    cv_const_i64(c, 1, &last))
                             : NULL;
    /* the length the transform reads: truncated or padded with zeros */
    int64_t want = inverse && onesided ? N / 2 + 1 : N;
    for (int t = 0; t < 2; t++) {
        const char **v = t ? &im : &re;
        if (!*v)
            continue;
        if (L > want)
            *v = V("Slice", *v, cv_const_i64(c, 1, &z), cv_const_i64(c, 1, &want), cv_const_i64(c, 1, &last));
        else if (L < want) {
            int64_t pads[32] = {0};
            pads[2 * (r - 1) - 1] = want - L;
            *v = V("Pad", *v, cv_const_i64(c, (size_t)(2 * (r - 1)), pads));
        }
    }
    const char *yr, *yi = NULL;
    if (!inverse) {
        int64_t K = onesided ? N / 2 + 1 : N;
        const char *C = dmatrix(c, N, K, false, 1, NULL, N), *S = dmatrix(c, N, K, true, 1, NULL, N);
        yr = V("MatMul", re, C);
        yi = V("Neg", V("MatMul", re, S));
        if (im) {
            yr = V("Add", yr, V("MatMul", im, S));
            yi = V("Add", yi, V("MatMul", im, C));
        }
    } else if (!onesided) {
        const char *C = dmatrix(c, N, N, false, 1.0 / (double)N, NULL, N), *S = dmatrix(c, N, N, true, 1.0 / (double)N, NULL, N);
        yr = V("MatMul", re, C);
        yi = V("MatMul", re, S);
        if (im) {
            yr = V("Sub", yr, V("MatMul", im, S));
            yi = V("Add", yi, V("MatMul", im, C));
        }
    } else {
        /* a real signal from its one-sided spectrum: the conjugate half counted twice */
        int64_t M = N / 2 + 1;
        double w[4097];
        for (int64_t i = 0; i < M; i++)
            w[i] = i == 0 || (N % 2 == 0 && i == N / 2) ? 1 : 2;
        yr = V("MatMul", re, dmatrix(c, M, N, false, 1.0 / (double)N, w, N));
        if (im)
            yr = V("Sub", yr, V("MatMul", im, dmatrix(c, M, N, true, 1.0 / (double)N, w, N)));
    }
    const char *y = unsqueeze(c, yr, 1, &last);
    if (yi) {
        kiln_node *cat = NODE("Concat", y, unsqueeze(c, yi, 1, &last));
        cv_ai(c, cat, "axis", -1);
        y = CV_OUT(cat);
    }
    kiln_node *tb = NODE("Transpose", y);
    cv_aints(c, tb, "perm", (size_t)r, back);
    cast_to(c, CV_OUT(tb), dt, out);
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_dft(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, x);
    if (r < 2 || r > 16)
        return cv_refuse(c, "the rank of '%s' is not known", x);
    int64_t axis;
    if (c->at >= 20) {
        int64_t v[2];
        int k;
        axis = -2;
        if (has_in(n, 2) && !(cv_const_ints(c, n->inputs[2], v, &k, 2) && k == 1)) {
            /* an axis known at run time: each candidate axis under an If */
            const char *ax = V("Reshape", cast_to(c, n->inputs[2], KILN_DTYPE_INT64, NULL), cv_const_i64(c, 0, NULL));
            ax = V("Where", V("Less", ax, cv_scalar_i64(c, 0)), V("Add", ax, cv_scalar_i64(c, r)), ax);
            /* candidates the shapes rule out are left out of the chain */
            kiln_graph *g[16];
            int ax_of[16], ng = 0;
            for (int a = 0; a < r - 1; a++) {
                const char *o = cv_fresh(c, "dft");
                size_t mark = c->n_emit;
                cv_result rr = dft_core(c, n, x, dt, r, a, o);
                if (rr == CV_ERROR)
                    return CV_ERROR;
                if (rr != CV_REPLACED) {
                    while (c->n_emit > mark) /* nothing of it is kept */
                        kiln_node_destroy(c->emit[--c->n_emit]);
                    continue;
                }
                ax_of[ng] = a;
                g[ng++] = cv_take_graph(c, mark, o, dt);
            }
            if (!ng)
                return cv_refuse(c, "no axis the run-time axis may be gives a valid transform");
            kiln_graph *rest = g[ng - 1];
            for (int i = ng - 2; i >= 0; i--) {
                const char *cond = V("Equal", ax, cv_scalar_i64(c, ax_of[i]));
                const char *io = i == 0 ? n->outputs[0] : cv_fresh(c, "dft");
                kiln_node *iff = i == 0 ? NODE_TO(io, "If", cond) : cv_node_new(c, "If", io, 1, &cond);
                cv_agraph(c, iff, "then_branch", g[i]);
                cv_agraph(c, iff, "else_branch", rest);
                rest = i == 0 ? NULL : cv_graph_of(c, &iff, 1, io, dt);
            }
            if (rest) { /* one candidate: its nodes, as they are */
                for (size_t i = 0; i < rest->n_nodes; i++) {
                    kiln_node *nd = rest->nodes[i];
                    rest->nodes[i] = NULL;
                    if (i + 1 == rest->n_nodes) {
                        free(nd->outputs[0]);
                        nd->outputs[0] = kiln_strdup(n->outputs[0]);
                    }
                    kiln_node **p = kiln_realloc(c->emit, (c->n_emit + 1) * sizeof *p);
                    if (!p || !nd->outputs[0]) {
                        kiln_node_destroy(nd);
                        kiln_graph_destroy(rest);
                        return cv_error(c, KILN_ERR_NOMEM);
                    }
                    c->emit = p;
                    c->emit[c->n_emit++] = nd;
                    c->cap_emit = c->n_emit;
                }
                rest->n_nodes = 0;
                kiln_graph_destroy(rest);
            }
            return c->st ? CV_ERROR : CV_REPLACED;
        }
        if (has_in(n, 2))
            axis = v[0];
    } else {
        axis = kiln_attr_int(n, "axis", 1);
    }
    if (axis < 0)
        axis += r;
    return dft_core(c, n, x, dt, r, axis, n->outputs[0]);
}

/* ---- Einsum (12): one or two operands of known shapes, through
 * diagonals (a mask), ReduceSum, Transpose and one MatMul ---- */

typedef struct eterm {
    char l[KILN_MAX_RANK]; /* one letter per axis */
    int n;
} eterm;

static bool eparse(const char *s, size_t len, int rank, char *ell, int *nell, eterm *t) {
    t->n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == ' ')
            continue;
        if (ch == '.') {
            if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                return false;
            i += 2;
            int k = rank;
            for (size_t j = 0; j < len; j++)
                if (s[j] != ' ' && s[j] != '.')
                    k--;
            if (rank < 0) /* the output: the operands' ellipsis */
                k = *nell < 0 ? 0 : *nell;
            if (k < 0 || (*nell >= 0 && k != *nell && rank >= 0))
                return false;
            if (*nell < 0)
                *nell = k;
            for (int e = 0; e < k; e++) {
                if (t->n >= KILN_MAX_RANK)
                    return false;
                t->l[t->n++] = ell[e];
            }
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) || t->n >= KILN_MAX_RANK)
            return false;
        t->l[t->n++] = ch;
    }
    return true;
}

static int epos(const eterm *t, char ch) {
    for (int i = 0; i < t->n; i++)
        if (t->l[i] == ch)
            return i;
    return -1;
}

static const char *etranspose(cv_ctx *c, const char *x, eterm *t, const eterm *want) {
    int64_t perm[KILN_MAX_RANK];
    bool id = true;
    for (int i = 0; i < want->n; i++) {
        perm[i] = epos(t, want->l[i]);
        id &= perm[i] == i;
    }
    *t = *want;
    if (id)
        return x;
    kiln_node *tr = NODE("Transpose", x);
    cv_aints(c, tr, "perm", (size_t)want->n, perm);
    return CV_OUT(tr);
}

/* Sums out the axes of t whose letters `keep` lacks, and takes the diagonal
 * of repeated letters; dims[i] follow t's axes. */
static const char *esimplify(cv_ctx *c, const char *x, kiln_dtype dt, eterm *t, int64_t *dims, const char *keep) {
    for (;;) {
        int p = -1, q = -1;
        for (int i = 0; i < t->n && p < 0; i++)
            for (int j = i + 1; j < t->n; j++)
                if (t->l[i] == t->l[j]) {
                    p = i, q = j;
                    break;
                }
        if (p < 0)
            break;
        /* x * eye over (p, q), summed over q */
        int64_t nd = dims[p], one[KILN_MAX_RANK];
        kiln_tensor *e;
        int64_t ed[2] = {nd, nd};
        kiln_status st = kiln_tensor_create(KILN_DTYPE_BOOL, 2, ed, &e);
        if (st != KILN_OK) {
            cv_error(c, st);
            return "";
        }
        for (int64_t i = 0; i < nd; i++)
            ((uint8_t *)e->data)[i * nd + i] = 1;
        const char *en = NULL;
        if ((st = kiln_edit_new_const(c->scope->g, &c->fc.names, "eye", e, &en)) != KILN_OK) {
            cv_error(c, st);
            return "";
        }
        /* the eye's axes at p and q, ones elsewhere */
        int k = 0;
        for (int i = 0; i < t->n; i++)
            if (i != p && i != q)
                one[k++] = i;
        (void)one;
        int64_t sh[KILN_MAX_RANK];
        for (int i = 0; i < t->n; i++)
            sh[i] = i == p || i == q ? nd : 1;
        const char *mask = V("Reshape", en, cv_const_i64(c, (size_t)t->n, sh));
        x = V("Where", mask, x, cv_scalar(c, dt, 0));
        int64_t qa = q;
        x = reduce(c, "ReduceSum", x, 1, &qa, false, NULL);
        memmove(&t->l[q], &t->l[q + 1], (size_t)(t->n - q - 1));
        memmove(&dims[q], &dims[q + 1], (size_t)(t->n - q - 1) * sizeof *dims);
        t->n--;
    }
    int64_t ax[KILN_MAX_RANK];
    size_t na = 0;
    eterm kept = {{0}, 0};
    int64_t kd[KILN_MAX_RANK];
    for (int i = 0; i < t->n; i++) {
        if (!strchr(keep, t->l[i]))
            ax[na++] = i;
        else
            kd[kept.n] = dims[i], kept.l[kept.n++] = t->l[i];
    }
    if (na) {
        x = reduce(c, "ReduceSum", x, na, ax, false, NULL);
        *t = kept;
        memcpy(dims, kd, (size_t)kept.n * sizeof *dims);
    }
    return x;
}

static cv_result lower_einsum(cv_ctx *c, kiln_node *n) {
    const char *eq = kiln_attr_string(n, "equation", "");
    kiln_dtype dt;
    if (need_type(c, n->inputs[0], &dt) != CV_DONE)
        return CV_REFUSED;
    size_t ni = n->n_inputs;
    if (ni < 1 || ni > 2)
        return cv_refuse(c, "%zu operands (one or two are decomposed)", ni);
    const char *arrow = strstr(eq, "->");
    size_t lhs = arrow ? (size_t)(arrow - eq) : strlen(eq);
    /* letters for the ellipsis: capitals not in the equation */
    char ell[KILN_MAX_RANK];
    int ne = 0;
    for (char ch = 'Z'; ch >= 'A' && ne < KILN_MAX_RANK; ch--)
        if (!strchr(eq, ch))
            ell[ne++] = ch;
    eterm t[2];
    int64_t dims[2][KILN_MAX_RANK];
    int nell = -1;
    const char *p = eq;
    for (size_t k = 0; k < ni; k++) {
        const char *e = memchr(p, ',', lhs - (size_t)(p - eq));
        size_t len = e ? (size_t)(e - p) : lhs - (size_t)(p - eq);
        if ((k + 1 < ni) != (e != NULL))
            return cv_refuse(c, "equation '%s' does not match %zu operands", eq, ni);
        int r = cv_rank(c, n->inputs[k]);
        if (r < 0)
            return cv_refuse(c, "the rank of '%s' is not known", n->inputs[k]);
        int before = nell;
        nell = -1;
        if (!eparse(p, len, r, ell, &nell, &t[k]) || t[k].n != r)
            return cv_refuse(c, "equation '%s'", eq);
        if (before >= 0 && nell >= 0 && before != nell)
            return cv_refuse(c, "ellipses of different ranks");
        if (nell < 0)
            nell = before;
        for (int i = 0; i < r; i++)
            if ((dims[k][i] = cv_dim(c, n->inputs[k], i)) < 0)
                return cv_refuse(c, "the shape of '%s' is not known", n->inputs[k]);
        p += len + 1;
    }
    eterm out;
    if (arrow) {
        if (!eparse(arrow + 2, strlen(arrow + 2), -1, ell, &nell, &out))
            return cv_refuse(c, "equation '%s'", eq);
    } else {
        /* implicit: the ellipsis, then the letters seen once, sorted */
        out.n = 0;
        for (int e = 0; e < (nell > 0 ? nell : 0); e++)
            out.l[out.n++] = ell[e];
        for (char ch = 'a'; ch <= 'z'; ch++) {
            int cnt = 0;
            for (size_t k = 0; k < ni; k++)
                for (int i = 0; i < t[k].n; i++)
                    cnt += t[k].l[i] == ch;
            if (cnt == 1 && out.n < KILN_MAX_RANK)
                out.l[out.n++] = ch;
        }
    }
    char keep[2][KILN_MAX_RANK * 2 + 1];
    for (size_t k = 0; k < ni; k++) {
        /* an operand keeps the letters of the output and of the other operand */
        int m = 0;
        for (int i = 0; i < out.n; i++)
            keep[k][m++] = out.l[i];
        if (ni == 2)
            for (int i = 0; i < t[1 - k].n; i++)
                keep[k][m++] = t[1 - k].l[i];
        keep[k][m] = 0;
    }
    const char *x[2];
    for (size_t k = 0; k < ni; k++)
        x[k] = esimplify(c, n->inputs[k], dt, &t[k], dims[k], keep[k]);
    if (ni == 1) {
        for (int i = 0; i < out.n; i++)
            if (epos(&t[0], out.l[i]) < 0)
                return cv_refuse(c, "output letter '%c' not in the operand", out.l[i]);
        V_TO(n->outputs[0], "Identity", etranspose(c, x[0], &t[0], &out));
        return c->st ? CV_ERROR : CV_REPLACED;
    }
    /* batch (both and output), left (A and output), right (B and output), contracted (both only) */
    eterm wa = {{0}, 0}, wb = {{0}, 0}, res = {{0}, 0};
    int64_t bd[KILN_MAX_RANK], nb = 0, lprod = 1, rprod = 1, kprod = 1;
    int64_t rd[KILN_MAX_RANK];
    for (int i = 0; i < t[0].n; i++) {
        char ch = t[0].l[i];
        int pb = epos(&t[1], ch), po = epos(&out, ch);
        if (pb >= 0 && po >= 0) {
            if (dims[0][i] != dims[1][pb])
                return cv_refuse(c, "broadcast batch dims");
            wa.l[wa.n++] = ch, bd[nb++] = dims[0][i];
        }
    }
    res = wa;
    memcpy(rd, bd, (size_t)nb * sizeof *bd);
    wb = wa;
    for (int i = 0; i < t[0].n; i++) {
        char ch = t[0].l[i];
        if (epos(&t[1], ch) < 0)
            wa.l[wa.n++] = ch, lprod *= dims[0][i], res.l[res.n] = ch, rd[res.n++] = dims[0][i];
    }
    for (int i = 0; i < t[0].n; i++) {
        char ch = t[0].l[i];
        int pb = epos(&t[1], ch);
        if (pb >= 0 && epos(&out, ch) < 0) {
            if (dims[0][i] != dims[1][pb])
                return cv_refuse(c, "contracted dims differ");
            wa.l[wa.n++] = ch, wb.l[wb.n++] = ch, kprod *= dims[0][i];
        }
    }
    for (int i = 0; i < t[1].n; i++) {
        char ch = t[1].l[i];
        if (epos(&t[0], ch) < 0)
            wb.l[wb.n++] = ch, rprod *= dims[1][i], res.l[res.n] = ch, rd[res.n++] = dims[1][i];
    }
    const char *a = etranspose(c, x[0], &t[0], &wa), *b = etranspose(c, x[1], &t[1], &wb);
    int64_t sa[KILN_MAX_RANK + 2], sb[KILN_MAX_RANK + 2];
    memcpy(sa, bd, (size_t)nb * sizeof *bd);
    memcpy(sb, bd, (size_t)nb * sizeof *bd);
    sa[nb] = lprod, sa[nb + 1] = kprod, sb[nb] = kprod, sb[nb + 1] = rprod;
    const char *mm = V("MatMul", V("Reshape", a, cv_const_i64(c, (size_t)nb + 2, sa)),
                       V("Reshape", b, cv_const_i64(c, (size_t)nb + 2, sb)));
    const char *y = V("Reshape", mm, cv_const_i64(c, (size_t)res.n, rd));
    for (int i = 0; i < out.n; i++)
        if (epos(&res, out.l[i]) < 0)
            return cv_refuse(c, "output letter '%c'", out.l[i]);
    if (res.n != out.n)
        return cv_refuse(c, "equation '%s'", eq);
    V_TO(n->outputs[0], "Identity", etranspose(c, y, &res, &out));
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- GridSample (16, 20): coordinates by arithmetic, every tap a
 * GatherElements on the flattened input, weighted and summed ---- */

/* reflect v into [lo, hi] by the near border, as the reference does */
static const char *gs_reflect(cv_ctx *c, const char *v, kiln_dtype dt, double lo, double hi) {
    const char *mn = cv_scalar(c, dt, lo), *mx = cv_scalar(c, dt, hi), *rng = cv_scalar(c, dt, hi - lo);
    const char *two = cv_scalar(c, dt, 2), *zero = cv_scalar(c, dt, 0);
    const char *res = v;
    for (int side = 0; side < 2; side++) {
        const char *dx = side ? V("Sub", v, mx) : V("Sub", mn, v);
        const char *k = V("Floor", V("Div", dx, rng));
        const char *r = V("Sub", dx, V("Mul", k, rng));
        kiln_node *md = NODE("Mod", k, two);
        cv_ai(c, md, "fmod", 1);
        const char *even = V("Equal", CV_OUT(md), zero);
        const char *a = V("Add", mn, r), *b = V("Sub", mx, r);
        const char *f = side ? V("Where", even, b, a) : V("Where", even, a, b);
        res = V("Where", side ? V("Greater", v, mx) : V("Less", v, mn), f, res);
    }
    return res;
}

static cv_result lower_gridsample(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0], *grid = n->inputs[1];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, x);
    if (r < 3 || r > 5)
        return cv_refuse(c, "the rank of '%s' is not known to be 3 to 5", x);
    int k = r - 2;
    int64_t D[3], N = cv_dim(c, x, 0), C = cv_dim(c, x, 1), O[3], Q = 1, P = 1;
    for (int i = 0; i < k; i++) {
        D[i] = cv_dim(c, x, 2 + i);
        O[i] = cv_dim(c, grid, 1 + i);
        if (D[i] <= 0 || O[i] < 0)
            return cv_refuse(c, "the shapes of '%s' and '%s' are not known", x, grid);
        Q *= O[i];
        P *= D[i];
    }
    if (N < 0 || C < 0 || cv_dim(c, grid, r - 1) != k)
        return cv_refuse(c, "the shapes of '%s' and '%s' are not known", x, grid);
    const char *mode = kiln_attr_string(n, "mode", c->at >= 20 ? "linear" : "bilinear");
    const char *pad = kiln_attr_string(n, "padding_mode", "zeros");
    bool align = kiln_attr_int(n, "align_corners", 0) != 0;
    int kind = !strcmp(mode, "nearest") ? 0 : !strcmp(mode, "linear") || !strcmp(mode, "bilinear") ? 1
             : !strcmp(mode, "cubic") || !strcmp(mode, "bicubic")                                   ? 2
                                                                                                    : -1;
    int pm = !strcmp(pad, "zeros") ? 0 : !strcmp(pad, "border") ? 1 : !strcmp(pad, "reflection") ? 2 : -1;
    if (kind < 0 || pm < 0)
        return cv_refuse(c, "mode '%s', padding_mode '%s'", mode, pad);
    int taps = kind == 0 ? 1 : kind == 1 ? 2 : 4, total = 1;
    for (int i = 0; i < k; i++)
        total *= taps;
    if (total > 64)
        return cv_refuse(c, "%d taps", total);
    /* grid [N, O..., k] -> per dim [N, Q]; the grid's last axis lists x (the last dim) first */
    int64_t g2[3] = {N, Q, k}, one = 1, last = 2;
    const char *gf = V("Reshape", grid, cv_const_i64(c, 3, g2));
    const char *idx[3][4], *valid[3][4], *wt[3][4];
    for (int i = 0; i < k; i++) {
        int64_t ci = k - 1 - i, ci1 = ci + 1;
        const char *g = V("Squeeze", V("Slice", gf, cv_const_i64(c, 1, &ci), cv_const_i64(c, 1, &ci1),
                                       cv_const_i64(c, 1, &last)),
                          cv_const_i64(c, 1, &last));
        double d = (double)D[i];
        const char *one_s = cv_scalar(c, dt, 1);
        const char *v = align ? V("Mul", V("Div", V("Add", g, one_s), cv_scalar(c, dt, 2)), cv_scalar(c, dt, d - 1))
                              : V("Div", V("Sub", V("Mul", V("Add", g, one_s), cv_scalar(c, dt, d)), one_s),
                                  cv_scalar(c, dt, 2));
        if (kind == 0)
            v = V("Round", v);
        double lo = align ? 0 : -0.5, hi = align ? d - 1 : d - 0.5;
        if (pm == 1) {
            const char *cl = V("Max", V("Min", v, cv_scalar(c, dt, d - 1)), cv_scalar(c, dt, 0));
            const char *out = V("Or", V("Less", v, cv_scalar(c, dt, lo)), V("Greater", v, cv_scalar(c, dt, hi)));
            v = V("Where", out, cl, v);
        } else if (pm == 2) {
            v = gs_reflect(c, v, dt, lo, hi);
        }
        const char *base = kind == 0 ? v : V("Floor", v), *t = kind == 0 ? NULL : V("Sub", v, base);
        for (int o = 0; o < taps; o++) {
            int off = kind == 2 ? o - 1 : o;
            const char *fi = off ? V("Add", base, cv_scalar(c, dt, off)) : base;
            /* the pixel rule: zeros outside, clamped, or reflected */
            const char *vi = NULL;
            if (pm == 2)
                fi = gs_reflect(c, fi, dt, lo, hi);
            const char *ii = cast_to(c, fi, KILN_DTYPE_INT64, NULL); /* truncates, as int() */
            const char *z = cv_scalar_i64(c, 0), *dm = cv_scalar_i64(c, D[i] - 1);
            if (pm == 0)
                vi = V("Not", V("Or", V("Less", ii, z), V("Greater", ii, dm)));
            ii = V("Where", V("Less", ii, z), z, V("Where", V("Greater", ii, dm), dm, ii));
            idx[i][o] = ii;
            valid[i][o] = vi;
            if (kind == 0) {
                wt[i][o] = NULL;
            } else if (kind == 1) {
                wt[i][o] = o == 0 ? V("Sub", cv_scalar(c, dt, 1), t) : t;
            } else {
                const double A = -0.75;
                const char *u = o == 0 ? V("Add", t, one_s) : o == 1 ? t : o == 2 ? V("Sub", one_s, t)
                                                                                  : V("Sub", cv_scalar(c, dt, 2), t);
                if (o == 0 || o == 3) /* ((A u - 5A) u + 8A) u - 4A */
                    wt[i][o] = V("Sub", V("Mul", V("Add", V("Mul", V("Sub", V("Mul", u, cv_scalar(c, dt, A)),
                                                                      cv_scalar(c, dt, 5 * A)),
                                                                   u),
                                                             cv_scalar(c, dt, 8 * A)),
                                                 u),
                                 cv_scalar(c, dt, 4 * A));
                else /* ((A + 2) u - (A + 3)) u u + 1 */
                    wt[i][o] = V("Add", V("Mul", V("Mul", V("Sub", V("Mul", u, cv_scalar(c, dt, A + 2)),
                                                               cv_scalar(c, dt, A + 3)),
                                                       u),
                                              u),
                                 one_s);
            }
        }
    }
    int64_t x3[3] = {N, C, P}, e3[3] = {N, C, Q};
    const char *xf = V("Reshape", x, cv_const_i64(c, 3, x3)), *eshape = cv_const_i64(c, 3, e3);
    const char *acc = NULL;
    for (int tcode = 0; tcode < total; tcode++) {
        const char *flat = NULL, *w = NULL, *ok = NULL;
        int64_t stride = P, code = tcode;
        for (int i = 0; i < k; i++) {
            int o = (int)(code % taps);
            code /= taps;
            stride /= D[i];
            const char *term = stride == 1 ? idx[i][o] : V("Mul", idx[i][o], cv_scalar_i64(c, stride));
            flat = flat ? V("Add", flat, term) : term;
            if (wt[i][o])
                w = w ? V("Mul", w, wt[i][o]) : wt[i][o];
            if (valid[i][o])
                ok = ok ? V("And", ok, valid[i][o]) : valid[i][o];
        }
        kiln_node *ge = NODE("GatherElements", xf, V("Expand", unsqueeze(c, flat, 1, &one), eshape));
        cv_ai(c, ge, "axis", 2);
        const char *val = CV_OUT(ge);
        if (ok)
            val = V("Where", unsqueeze(c, ok, 1, &one), val, cv_scalar(c, dt, 0));
        if (w)
            val = V("Mul", val, unsqueeze(c, w, 1, &one));
        acc = acc ? V("Add", acc, val) : val;
    }
    int64_t os[5] = {N, C, O[0], k > 1 ? O[1] : 0, k > 2 ? O[2] : 0};
    V_TO(n->outputs[0], "Reshape", acc, cv_const_i64(c, (size_t)r, os));
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- TensorScatter (24): ScatterElements at write_indices[b] + s ---- */

static cv_result lower_tensor_scatter(cv_ctx *c, kiln_node *n) {
    const char *past = n->inputs[0], *upd = n->inputs[1];
    int r = cv_rank(c, past);
    if (r < 2 || r > 16)
        return cv_refuse(c, "the rank of '%s' is not known", past);
    int64_t axis = kiln_attr_int(n, "axis", -2);
    if (axis < 0)
        axis += r;
    if (axis < 1 || axis >= r)
        return cv_refuse(c, "axis %lld", (long long)kiln_attr_int(n, "axis", -2));
    const char *mode = kiln_attr_string(n, "mode", "linear");
    bool circ = !strcmp(mode, "circular");
    if (!circ && strcmp(mode, "linear") != 0)
        return cv_refuse(c, "mode '%s'", mode);
    /* s along the axis: [1, .., L, .., 1] */
    int64_t sh[16];
    for (int i = 0; i < r; i++)
        sh[i] = i == axis ? -1 : 1;
    const char *s_ = V("Reshape", V("Range", cv_scalar_i64(c, 0), dim_scalar(c, upd, axis), cv_scalar_i64(c, 1)),
                       cv_const_i64(c, (size_t)r, sh));
    const char *idx = s_;
    if (has_in(n, 2)) {
        for (int i = 0; i < r; i++)
            sh[i] = i == 0 ? -1 : 1;
        const char *w = V("Reshape", cast_to(c, n->inputs[2], KILN_DTYPE_INT64, NULL), cv_const_i64(c, (size_t)r, sh));
        idx = V("Add", w, s_);
    }
    if (circ)
        idx = V("Mod", idx, dim_scalar(c, past, axis));
    idx = V("Expand", idx, V("Shape", upd));
    kiln_node *sc = NODE_TO(n->outputs[0], "ScatterElements", past, idx, upd);
    cv_ai(c, sc, "axis", axis);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- ai.onnx.preview FlexAttention (1): Attention with its score and
 * probability graphs inlined ---- */

/* The one-input, one-output graph attribute `name` of n applied to x. */
static const char *inline_mod(cv_ctx *c, const kiln_node *n, const char *name, const char *x) {
    const kiln_graph *g = kiln_attr_graph(n, name);
    if (!g || c->st)
        return x;
    if (g->n_inputs != 1 || g->n_outputs != 1) {
        cv_error(c, kiln_fail(KILN_ERR_INVALID, "%s must take and give one value", name));
        return x;
    }
    kiln_graph *copy;
    kiln_status st = kiln_edit_graph_clone(g, &copy);
    if (st != KILN_OK) {
        cv_error(c, st);
        return x;
    }
    const char *out = cv_fresh(c, name);
    char *in_name = kiln_strdup(copy->inputs[0].name), *out_name = kiln_strdup(copy->outputs[0].name);
    if (!in_name || !out_name || (st = kiln_edit_rename_all(copy, out_name, out)) != KILN_OK ||
        (st = kiln_edit_rename_all(copy, in_name, x)) != KILN_OK) {
        free(in_name);
        free(out_name);
        kiln_graph_destroy(copy);
        cv_error(c, st ? st : KILN_ERR_NOMEM);
        return x;
    }
    free(in_name);
    free(out_name);
    /* its nodes run at the model's opset: converted on from there */
    for (size_t i = 0; i < copy->n_nodes && !c->st; i++) {
        kiln_node *nd = copy->nodes[i];
        nd->opset = c->from;
        kiln_node **v = kiln_realloc(c->emit, (c->n_emit + 1) * sizeof *v);
        if (!v) {
            cv_error(c, KILN_ERR_NOMEM);
            break;
        }
        c->emit = v;
        if (nd->n_outputs && kiln_nameset_put(&c->fresh, nd->outputs[0], NULL) != KILN_OK)
            cv_error(c, KILN_ERR_NOMEM);
        c->emit[c->n_emit++] = nd;
        c->cap_emit = c->n_emit;
        copy->nodes[i] = NULL;
    }
    if (copy->n_inits) {
        /* constants of the graph become the current graph's */
        for (size_t i = 0; i < copy->n_inits && !c->st; i++) {
            kiln_tensor *t = copy->inits[i];
            copy->inits[i] = NULL;
            char *nm = kiln_strdup(t->name ? t->name : ""); /* set_const replaces t->name */
            if (!nm || (st = kiln_edit_set_const(c->scope->g, nm, t)) != KILN_OK)
                cv_error(c, nm ? st : KILN_ERR_NOMEM);
            if (!nm)
                kiln_tensor_destroy(t);
            free(nm);
        }
        copy->n_inits = 0;
    }
    for (size_t i = 0; i < copy->n_nodes; i++)
        if (copy->nodes[i])
            kiln_node_destroy(copy->nodes[i]);
    copy->n_nodes = 0;
    kiln_graph_destroy(copy);
    return out;
}

static cv_result lower_flex_attention(cv_ctx *c, kiln_node *n) {
    const char *q = n->inputs[0], *k = n->inputs[1], *v = n->inputs[2];
    kiln_dtype dt, vdt;
    if (need_type(c, q, &dt) != CV_DONE || need_type(c, v, &vdt) != CV_DONE)
        return CV_REFUSED;
    int64_t hq = cv_dim(c, q, 1), hkv = cv_dim(c, k, 1), e = cv_dim(c, q, 3);
    if (cv_rank(c, q) != 4 || hq <= 0 || hkv <= 0 || e <= 0)
        return cv_refuse(c, "the shapes of Q and K are not known");
    const kiln_attr *sa = kiln_node_attr(n, "scale");
    float scale = sa ? sa->f : (float)(1 / sqrt((double)e));
    const char *s = cv_scalar(c, dt, sqrt((double)scale));
    if (hq != hkv) {
        if (hq % hkv)
            return cv_refuse(c, "q heads %lld not a multiple of kv heads %lld", (long long)hq, (long long)hkv);
        int64_t two = 2, rep[5] = {1, 1, hq / hkv, 1, 1}, s4[4] = {0, hq, -1, 0};
        const char *reps = cv_const_i64(c, 5, rep), *shp = cv_const_i64(c, 4, s4);
        int64_t sk[4] = {0, hq, cv_dim(c, k, 2), cv_dim(c, k, 3)}, sv[4] = {0, hq, cv_dim(c, v, 2), cv_dim(c, v, 3)};
        (void)shp;
        if (sk[2] < 0 || sk[3] < 0 || sv[2] < 0 || sv[3] < 0)
            return cv_refuse(c, "the shapes of K and V are not known");
        k = V("Reshape", V("Expand", unsqueeze(c, k, 1, &two), reps), cv_const_i64(c, 4, sk));
        v = V("Reshape", V("Expand", unsqueeze(c, v, 1, &two), reps), cv_const_i64(c, 4, sv));
    }
    static const int64_t kt[4] = {0, 1, 3, 2};
    kiln_node *tk = NODE("Transpose", V("Mul", k, s));
    cv_aints(c, tk, "perm", 4, kt);
    const char *sc = V("MatMul", V("Mul", q, s), CV_OUT(tk));
    int64_t prec = kiln_attr_int(n, "softmax_precision", 0);
    kiln_dtype cd = prec ? (kiln_dtype)prec
                    : dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16 ? KILN_DTYPE_FLOAT
                                                                           : dt;
    if (cd != dt)
        sc = cast_to(c, sc, cd, NULL);
    sc = inline_mod(c, n, "score_mod", sc);
    kiln_node *sm = NODE("Softmax", sc);
    cv_ai(c, sm, "axis", -1);
    const char *p = inline_mod(c, n, "prob_mod", CV_OUT(sm));
    const char *vf = cd != vdt ? cast_to(c, v, cd, NULL) : v;
    const char *y = V("MatMul", p, vf);
    if (cd != vdt)
        cast_to(c, y, vdt, n->outputs[0]);
    else
        V_TO(n->outputs[0], "Identity", y);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- Attention (23) ---- */

static cv_result lower_attention(cv_ctx *c, kiln_node *n) {
    const char *q = n->inputs[0], *k = n->inputs[1], *v = n->inputs[2];
    kiln_dtype dt;
    if (need_type(c, q, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, q);
    if (r != 3 && r != 4)
        return cv_refuse(c, "the rank of Q ('%s') is not known to be 3 or 4", q);
    const char *nonpad = has_in(n, 6) ? n->inputs[6] : NULL;
    if (nonpad && has_in(n, 4))
        return cv_refuse(c, "nonpad_kv_seqlen with past_key");
    int64_t qh = kiln_attr_int(n, "q_num_heads", 0), kvh = kiln_attr_int(n, "kv_num_heads", 0);
    int64_t causal = kiln_attr_int(n, "is_causal", 0), mode = kiln_attr_int(n, "qk_matmul_output_mode", 0);
    int64_t prec = kiln_attr_int(n, "softmax_precision", 0);
    int64_t left = kiln_attr_int(n, "left_window_size", -1), right = kiln_attr_int(n, "right_window_size", -1);
    float softcap = kiln_attr_float(n, "softcap", 0);
    int64_t head = -1;
    static const int64_t perm[4] = {0, 2, 1, 3}, kt[4] = {0, 1, 3, 2};
    if (r == 3) {
        if (qh <= 0 || kvh <= 0)
            return cv_refuse(c, "3-D inputs without q_num_heads and kv_num_heads");
        int64_t hq = cv_dim(c, q, 2);
        if (hq > 0)
            head = hq / qh;
        int64_t s4q[4] = {0, 0, qh, -1}, s4k[4] = {0, 0, kvh, -1};
        const char *sq = cv_const_i64(c, 4, s4q), *sk = cv_const_i64(c, 4, s4k);
        kiln_node *tq = NODE("Transpose", V("Reshape", q, sq));
        kiln_node *tk = NODE("Transpose", V("Reshape", k, sk));
        kiln_node *tv = NODE("Transpose", V("Reshape", v, sk));
        cv_aints(c, tq, "perm", 4, perm);
        cv_aints(c, tk, "perm", 4, perm);
        cv_aints(c, tv, "perm", 4, perm);
        q = CV_OUT(tq), k = CV_OUT(tk), v = CV_OUT(tv);
    } else {
        head = cv_dim(c, q, 3);
        qh = cv_dim(c, q, 1);
        kvh = cv_dim(c, k, 1);
    }
    /* the scale, applied as its square root to Q and to K */
    double scale;
    const kiln_attr *sa = kiln_node_attr(n, "scale");
    if (sa) {
        scale = sa->f;
    } else {
        if (head <= 0)
            return cv_refuse(c, "the head size is not known (needed for the default scale)");
        scale = 1 / sqrt((double)head);
    }
    const char *s = cv_scalar(c, dt, sqrt(scale));
    /* the KV cache */
    if (has_in(n, 4) != has_in(n, 5))
        return cv_refuse(c, "past_key and past_value must be given together");
    if (has_in(n, 4)) {
        kiln_node *ck = NODE_TO(out_of(n, 1), "Concat", n->inputs[4], k);
        kiln_node *cvn = NODE_TO(out_of(n, 2), "Concat", n->inputs[5], v);
        cv_ai(c, ck, "axis", 2);
        cv_ai(c, cvn, "axis", 2);
        k = CV_OUT(ck), v = CV_OUT(cvn);
    } else {
        if (out_of(n, 1))
            k = V_TO(n->outputs[1], "Identity", k);
        if (out_of(n, 2))
            v = V_TO(n->outputs[2], "Identity", v);
    }
    const char *qlen = dim_scalar(c, q, 2), *kvlen = dim_scalar(c, k, 2);
    int64_t zero_axis = 0, b111[4] = {-1, 1, 1, 1};
    const char *neginf = cv_scalar(c, dt, -INFINITY), *zero = cv_scalar(c, dt, 0);
    /* the additive bias */
    const char *bias = NULL;
    const char *mask = has_in(n, 3) ? n->inputs[3] : NULL;
    if (mask) {
        kiln_dtype mdt = cv_dtype(c, mask);
        int mr = cv_rank(c, mask);
        if (!mdt || mr < 1)
            return cv_refuse(c, "the type of attn_mask ('%s') is not known", mask);
        /* a mask shorter than the keys is padded with "masked" */
        int64_t mlen = cv_dim(c, mask, mr - 1);
        int64_t klen = cv_dim(c, n->inputs[1], r == 3 ? 1 : 2);
        if (has_in(n, 4)) {
            int64_t plen = cv_dim(c, n->inputs[4], 2);
            klen = plen >= 0 && klen >= 0 ? klen + plen : -1;
        }
        const char *pv = mdt == KILN_DTYPE_BOOL ? cv_scalar(c, KILN_DTYPE_BOOL, 0) : cv_scalar(c, mdt, -INFINITY);
        if (mlen >= 0 && klen >= 0 && mlen < klen) {
            int64_t pads[32] = {0};
            pads[mr + mr - 1] = klen - mlen;
            mask = V("Pad", mask, cv_const_i64(c, (size_t)(2 * mr), pads), pv);
        } else if (mlen < 0 || klen < 0) {
            /* padded at run time by however many keys it lacks */
            int64_t zeros[31] = {0}, one = 1;
            const char *amt = unsqueeze(c, V("Sub", kvlen, dim_scalar(c, mask, -1)), 1, &zero_axis);
            kiln_node *pc = NODE("Concat", cv_const_i64(c, (size_t)(2 * mr - 1), zeros), amt);
            cv_ai(c, pc, "axis", 0);
            (void)one;
            mask = V("Pad", mask, CV_OUT(pc), pv);
        }
        bias = mdt == KILN_DTYPE_BOOL ? V("Where", mask, zero, neginf) : mask;
    }
    const char *diff = NULL; /* [i, j] = (i + offset) - j */
    if (causal || left >= 0 || right >= 0) {
        /* the frontier's offset: the past length, or per batch the valid keys before the queries */
        const char *off = has_in(n, 4) ? dim_scalar(c, n->inputs[4], 2) : cv_scalar_i64(c, 0);
        if (nonpad)
            off = V("Reshape", V("Sub", nonpad, qlen), cv_const_i64(c, 4, b111));
        const char *jmi = col_minus_row(c, qlen, kvlen); /* j - i */
        diff = V("Sub", off, jmi);
    }
    if (causal) {
        const char *cz = cv_scalar_i64(c, 0);
        const char *cb = V("Where", V("Less", diff, cz), neginf, zero);
        bias = bias ? V("Add", bias, cb) : cb;
    }
    if (left >= 0 || right >= 0) {
        const char *wb = zero;
        if (left >= 0)
            wb = V("Where", V("Greater", diff, cv_scalar_i64(c, left)), neginf, wb);
        if (right >= 0)
            wb = V("Where", V("Less", diff, cv_scalar_i64(c, -right)), neginf, wb);
        bias = bias ? V("Add", bias, wb) : wb;
    }
    if (nonpad) {
        /* keys past each batch's valid length are masked */
        const char *j = V("Range", cv_scalar_i64(c, 0), kvlen, cv_scalar_i64(c, 1));
        const char *valid = V("Less", j, V("Reshape", nonpad, cv_const_i64(c, 4, b111)));
        const char *pb = V("Where", valid, zero, neginf);
        bias = bias ? V("Add", bias, pb) : pb;
    }
    /* grouped-query attention: each KV head serves q_num_heads / kv_num_heads queries */
    if (qh > 0 && kvh > 0 && qh != kvh) {
        if (qh % kvh)
            return cv_refuse(c, "q_num_heads %lld is not a multiple of kv_num_heads %lld", (long long)qh,
                             (long long)kvh);
        int64_t two = 2, rep[5] = {1, 1, qh / kvh, 1, 1};
        const char *reps = cv_const_i64(c, 5, rep);
        int64_t s0 = 0, s1 = 1, s2 = 2, s4 = 4, s5[1] = {qh};
        for (int t = 0; t < 2; t++) {
            const char *x = t ? v : k;
            const char *e = V("Expand", unsqueeze(c, x, 1, &two), reps);
            const char *sh = V("Shape", x);
            const char *b0 = V("Slice", sh, cv_const_i64(c, 1, &s0), cv_const_i64(c, 1, &s1));
            const char *b2 = V("Slice", sh, cv_const_i64(c, 1, &s2), cv_const_i64(c, 1, &s4));
            kiln_node *cat = NODE("Concat", b0, cv_const_i64(c, 1, s5), b2);
            cv_ai(c, cat, "axis", 0);
            const char *y = V("Reshape", e, CV_OUT(cat));
            if (t)
                v = y;
            else
                k = y;
        }
    } else if (qh <= 0 || kvh <= 0) {
        return cv_refuse(c, "the numbers of heads are not known");
    }
    kiln_node *ktn = NODE("Transpose", V("Mul", k, s));
    cv_aints(c, ktn, "perm", 4, kt);
    const char *qk = V("MatMul", V("Mul", q, s), CV_OUT(ktn));
    if (softcap > 0) {
        const char *sc = cv_scalar(c, dt, softcap);
        qk = V("Mul", V("Tanh", V("Div", qk, sc)), sc);
    }
    const char *qkb = bias ? V("Add", qk, bias) : qk;
    const char *qk_out = out_of(n, 3);
    if (qk_out && mode != 3) {
        if (mode == 0 || mode == 1)
            V_TO(qk_out, "Identity", qk);
        else if (mode == 2)
            V_TO(qk_out, "Identity", qkb);
        else
            return cv_refuse(c, "qk_matmul_output_mode %lld", (long long)mode);
    }
    kiln_dtype sdt = prec ? (kiln_dtype)prec : dt;
    const char *sin = sdt != dt ? cast_to(c, qkb, sdt, NULL) : qkb;
    kiln_node *sm = NODE("Softmax", sin);
    cv_ai(c, sm, "axis", -1);
    const char *p = CV_OUT(sm);
    if (bias) {
        /* a row whose bias masks every key gives zeros, not NaN */
        int64_t last = -1;
        const char *mx = reduce(c, "ReduceMax", bias, 1, &last, true, NULL);
        const char *all = V("Equal", mx, cv_scalar(c, dt, -INFINITY));
        p = V("Where", all, cv_scalar(c, sdt, 0), p);
    }
    if (sdt != dt)
        p = cast_to(c, p, dt, NULL);
    if (qk_out && mode == 3)
        V_TO(qk_out, "Identity", p);
    if (r == 3) {
        kiln_node *t = NODE("Transpose", V("MatMul", p, v));
        cv_aints(c, t, "perm", 4, perm);
        int64_t s3[3] = {0, 0, -1};
        V_TO(n->outputs[0], "Reshape", CV_OUT(t), cv_const_i64(c, 3, s3));
    } else {
        V_TO(n->outputs[0], "MatMul", p, v);
    }
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- RotaryEmbedding (23) ---- */

static cv_result lower_rotary(cv_ctx *c, kiln_node *n) {
    const char *x = n->inputs[0];
    kiln_dtype dt;
    if (need_type(c, x, &dt) != CV_DONE)
        return CV_REFUSED;
    int r = cv_rank(c, x);
    if (r != 3 && r != 4)
        return cv_refuse(c, "the rank of '%s' is not known to be 3 or 4", x);
    int64_t heads = kiln_attr_int(n, "num_heads", 0), rot = kiln_attr_int(n, "rotary_embedding_dim", 0);
    bool inter = kiln_attr_int(n, "interleaved", 0) != 0;
    static const int64_t perm[4] = {0, 2, 1, 3};
    /* to [batch, seq, heads, head_size] */
    const char *x4;
    int64_t hs;
    if (r == 4) {
        kiln_node *t = NODE("Transpose", x);
        cv_aints(c, t, "perm", 4, perm);
        x4 = CV_OUT(t);
        hs = cv_dim(c, x, 3);
    } else {
        if (heads <= 0)
            return cv_refuse(c, "3-D input without num_heads");
        int64_t s[4] = {0, 0, heads, -1};
        x4 = V("Reshape", x, cv_const_i64(c, 4, s));
        int64_t hid = cv_dim(c, x, 2);
        hs = hid > 0 ? hid / heads : -1;
    }
    if (hs <= 0)
        return cv_refuse(c, "the head size is not known");
    if (rot <= 0)
        rot = hs;
    if (rot > hs || rot % 2)
        return cv_refuse(c, "rotary_embedding_dim %lld", (long long)rot);
    const char *cosv = n->inputs[1], *sinv = n->inputs[2];
    if (has_in(n, 3)) {
        cosv = V("Gather", cosv, n->inputs[3]);
        sinv = V("Gather", sinv, n->inputs[3]);
    }
    int64_t two = 2;
    cosv = unsqueeze(c, cosv, 1, &two);
    sinv = unsqueeze(c, sinv, 1, &two);
    int64_t z = 0, rr = rot, big = INT64_MAX, m1 = -1, half = rot / 2;
    const char *a3 = cv_const_i64(c, 1, (int64_t[]){3});
    const char *xr = rot < hs ? V("Slice", x4, cv_const_i64(c, 1, &z), cv_const_i64(c, 1, &rr), a3) : x4;
    const char *x1, *x2;
    if (inter) {
        int64_t one = 1;
        const char *st2 = cv_const_i64(c, 1, &two);
        x1 = V("Slice", xr, cv_const_i64(c, 1, &z), cv_const_i64(c, 1, &big), a3, st2);
        x2 = V("Slice", xr, cv_const_i64(c, 1, &one), cv_const_i64(c, 1, &big), a3, st2);
    } else {
        x1 = V("Slice", xr, cv_const_i64(c, 1, &z), cv_const_i64(c, 1, &half), a3);
        x2 = V("Slice", xr, cv_const_i64(c, 1, &half), cv_const_i64(c, 1, &big), a3);
    }
    const char *re = V("Sub", V("Mul", cosv, x1), V("Mul", sinv, x2));
    const char *im = V("Add", V("Mul", sinv, x1), V("Mul", cosv, x2));
    const char *rotated;
    if (inter) {
        int64_t last = -1;
        kiln_node *cat = NODE("Concat", unsqueeze(c, re, 1, &last), unsqueeze(c, im, 1, &last));
        cv_ai(c, cat, "axis", -1);
        int64_t s4[4] = {0, 0, 0, rot};
        rotated = V("Reshape", CV_OUT(cat), cv_const_i64(c, 4, s4));
    } else {
        kiln_node *cat = NODE("Concat", re, im);
        cv_ai(c, cat, "axis", -1);
        rotated = CV_OUT(cat);
    }
    if (rot < hs) {
        const char *rest = V("Slice", x4, cv_const_i64(c, 1, &rr), cv_const_i64(c, 1, &big), a3);
        kiln_node *cat = NODE("Concat", rotated, rest);
        cv_ai(c, cat, "axis", -1);
        rotated = CV_OUT(cat);
    }
    (void)m1;
    if (r == 4) {
        kiln_node *t = NODE_TO(n->outputs[0], "Transpose", rotated);
        cv_aints(c, t, "perm", 4, perm);
    } else {
        V_TO(n->outputs[0], "Reshape", rotated, V("Shape", x));
    }
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- optionals (15) where the value is a plain tensor or absent ---- */

static cv_result lower_optional_has(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    int k = has_in(n, 0) ? cv_kind(c, n->inputs[0], &dt) : -2;
    if (k != -2 && k != 0 && k != 1)
        return cv_refuse(c, "its input is an optional value, which opset %lld cannot hold", (long long)c->to);
    V_TO(n->outputs[0], "Identity", cv_scalar(c, KILN_DTYPE_BOOL, k != -2));
    return c->st ? CV_ERROR : CV_REPLACED;
}

static cv_result lower_optional_get(cv_ctx *c, kiln_node *n) {
    kiln_dtype dt;
    int k = cv_kind(c, n->inputs[0], &dt);
    if (k != 0 && k != 1)
        return cv_refuse(c, "its input is an optional value, which opset %lld cannot hold", (long long)c->to);
    V_TO(n->outputs[0], "Identity", n->inputs[0]);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* ---- replacements on the way up ---- */

/* Upsample (deprecated at 10) -> Resize-10 */
static cv_result replace_upsample(cv_ctx *c, kiln_node *n) {
    const char *mode = kiln_attr_string(n, "mode", "nearest");
    const char *scales;
    if (c->at < 9) {
        size_t k;
        const float *f = kiln_attr_floats(n, "scales", &k);
        if (!f)
            return cv_refuse(c, "no scales");
        scales = cv_const_f32(c, k, f);
    } else {
        scales = n->inputs[1];
    }
    kiln_node *r = NODE_TO(n->outputs[0], "Resize", n->inputs[0], scales);
    cv_as(c, r, "mode", !strcmp(mode, "bilinear") ? "linear" : mode);
    return c->st ? CV_ERROR : CV_REPLACED;
}

/* Scatter (deprecated at 11) -> ScatterElements-11 */
static cv_result replace_scatter(cv_ctx *c, kiln_node *n) {
    kiln_node *s = NODE_TO(n->outputs[0], "ScatterElements", n->inputs[0], n->inputs[1], n->inputs[2]);
    cv_acopy(c, s, n, "axis", NULL);
    return c->st ? CV_ERROR : CV_REPLACED;
}

static const cv_lowering lowerings[] = {
    {"AffineGrid", 13, lower_affine_grid, "a Range-built base grid times theta (MatMul, in double)"},
    {"Attention", 13, lower_attention, "MatMul, Softmax and masks (causal, windows, GQA, KV cache)"},
    {"BitCast", 13, lower_bitcast, "a wrapping Cast between integer types of one width"},
    {"BitwiseAnd", 13, lower_bitwise, "bits by Div/Mod of powers of two, Mul, summed back"},
    {"BitwiseNot", 13, lower_bitwise_not, "-1 - x (signed), max - x (unsigned)"},
    {"BitwiseOr", 13, lower_bitwise, "bits by Div/Mod of powers of two, a + b - ab, summed back"},
    {"BitwiseXor", 13, lower_bitwise, "bits by Div/Mod of powers of two, (a + b) mod 2, summed back"},
    {"BlackmanWindow", 13, lower_window, "Range, Cos (in double), Cast"},
    {"CastLike", 25, lower_castlike, "Cast to the other input's type"},
    {"CausalConvWithState", 13, lower_causal_conv, "Concat (or Pad) of the state, a depthwise Conv, SiLU"},
    {"CenterCropPad", 13, lower_center_crop_pad, "Slice and Pad (known dims)"},
    {"Celu", 11, lower_celu, "alpha * Elu(x / alpha)"},
    {"CumProd", 13, lower_cumprod, "ReduceProd over a triangular Where"},
    {"DFT", 13, lower_dft, "MatMuls with cos/sin matrices of the (known) length, in double"},
    {"Einsum", 13, lower_einsum, "diagonals, ReduceSum, Transpose and a MatMul (one or two operands, known shapes)"},
    {"Gelu", 13, lower_gelu, "0.5 x (1 + erf(x / sqrt 2)), or the tanh form"},
    {"GreaterOrEqual", 11, lower_ge, "Or(Greater, Equal)"},
    {"GroupNormalization", 13, lower_groupnorm, "Reshape to groups, ReduceMean statistics, per-channel affine"},
    {"GridSample", 13, lower_gridsample, "coordinates by arithmetic, taps by GatherElements, weighted sums"},
    {"HammingWindow", 13, lower_window, "Range, Cos (in double), Cast"},
    {"HannWindow", 13, lower_window, "Range, Sin (in double), Cast"},
    {"HardSwish", 13, lower_hardswish, "x * HardSigmoid(x, 1/6, 1/2)"},
    {"LayerNormalization", 13, lower_layernorm, "ReduceMean statistics, Sqrt, Reciprocal"},
    {"LessOrEqual", 11, lower_ge, "Or(Less, Equal)"},
    {"LinearAttention", 13, lower_linear_attention, "the state recurrence unrolled over the (known) sequence"},
    {"Mish", 13, lower_mish, "x * tanh(softplus(x))"},
    {"NegativeLogLikelihoodLoss", 13, lower_nll, "GatherElements of the targets, weights, the reduction"},
    {"OptionalGetElement", 13, lower_optional_get, "Identity (of a plain tensor or sequence)"},
    {"OptionalHasElement", 13, lower_optional_has, "a constant: true for a plain tensor or sequence, false for none"},
    {"RMSNormalization", 13, lower_rmsnorm, "x / sqrt(mean(x^2) + epsilon) * scale"},
    {"RotaryEmbedding", 13, lower_rotary, "Slices, Mul/Sub/Add with the cos/sin caches, Concat"},
    {"SoftmaxCrossEntropyLoss", 13, lower_sce, "LogSoftmax over the classes, then the NLL decomposition"},
    {"SwiGLU", 13, lower_swiglu, "a * sigmoid(alpha a) * b"},
    {"Swish", 13, lower_swish, "x * sigmoid(alpha x)"},
    {"TensorScatter", 13, lower_tensor_scatter, "ScatterElements at write_indices + position (mod the length)"},
    {"Trilu", 13, lower_trilu, "Where over a Range-built band mask"},
};

/* Operators of other domains decomposed on the way (any target). */
static const cv_lowering preview[] = {
    {"FlexAttention", 13, lower_flex_attention, "ai.onnx.preview FlexAttention: MatMul, Softmax, its score/prob graphs inlined"},
};

const cv_lowering *cv_find_preview(const char *domain, const char *op) {
    if (!domain || strcmp(domain, "ai.onnx.preview") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof preview / sizeof *preview; i++)
        if (!strcmp(preview[i].op, op))
            return &preview[i];
    return NULL;
}

static const cv_lowering replacements[] = {
    {"Scatter", 11, replace_scatter, "ScatterElements"},
    {"Upsample", 10, replace_upsample, "Resize"},
};

static const cv_lowering *find(const cv_lowering *t, size_t n, const char *op) {
    for (size_t i = 0; i < n; i++)
        if (t[i].op && !strcmp(t[i].op, op))
            return &t[i];
    return NULL;
}

const cv_lowering *cv_find_lowering(const char *op) {
    return find(lowerings, sizeof lowerings / sizeof *lowerings, op);
}
const cv_lowering *cv_find_replacement(const char *op) {
    return find(replacements, sizeof replacements / sizeof *replacements, op);
}
