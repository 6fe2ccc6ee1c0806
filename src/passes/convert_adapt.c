/* kiln convert: adapters between adjacent versions of an operator whose
 * change means more than new element types or attributes with defaults
 * (those the driver's generic step handles). Each entry is the version
 * boundary `since` of op: down rewrites a node in that version's form into
 * the previous version's, up the other way. They return CV_DONE with the
 * node in the other form (the generic check then runs), CV_REPLACED with
 * replacement nodes emitted, or a refusal saying why. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/convert.h"

#define MAXV 64

static const char *in_name(const kiln_node *n, size_t i) { return i < n->n_inputs ? n->inputs[i] : ""; }
static bool has_in(const kiln_node *n, size_t i) { return i < n->n_inputs && *n->inputs[i]; }
static bool out_used(const kiln_node *n, size_t i) { return i < n->n_outputs && *n->outputs[i]; }

/* Constant integer input i (omitted: *count = -1). */
static cv_result const_input(cv_ctx *c, kiln_node *n, size_t i, const char *what, int64_t *v, int *count) {
    *count = -1;
    if (!has_in(n, i))
        return CV_DONE;
    if (!cv_const_ints(c, n->inputs[i], v, count, MAXV))
        return cv_refuse(c, "its input '%s' ('%s') is not a constant, and %s takes it as an attribute", what,
                         n->inputs[i], n->op_type);
    return CV_DONE;
}

static void drop_input(cv_ctx *c, kiln_node *n, size_t i) {
    if (!has_in(n, i))
        return;
    cv_orphan(c, n->inputs[i]);
    cv_set_input(c, n, i, "");
    cv_trim(n);
}

/* input i (constant ints) -> attribute */
static cv_result input_to_attr(cv_ctx *c, kiln_node *n, size_t i, const char *what, const char *attr,
                               const cv_schema *a, const cv_schema *b) {
    int64_t v[MAXV];
    int k;
    cv_result r = const_input(c, n, i, what, v, &k);
    if (r != CV_DONE || k < 0)
        return r;
    cv_aints(c, n, attr, (size_t)k, v);
    drop_input(c, n, i);
    cv_note(c, n, a->since, b->since, "input '%s' (constant) became attribute '%s'", what, attr);
    return c->st ? CV_ERROR : CV_DONE;
}

/* attribute (ints) -> input i */
static cv_result attr_to_input(cv_ctx *c, kiln_node *n, const char *attr, size_t i, const cv_schema *a,
                               const cv_schema *b) {
    size_t k;
    const int64_t *v = kiln_attr_ints(n, attr, &k);
    if (!v)
        return CV_DONE;
    int64_t copy[MAXV];
    if (k > MAXV)
        return cv_refuse(c, "attribute '%s' is too long", attr);
    memcpy(copy, v, k * sizeof *v);
    const char *nm = cv_const_i64(c, k, copy);
    cv_adrop(n, attr);
    cv_set_input(c, n, i, nm);
    cv_note(c, n, a->since, b->since, "attribute '%s' became a constant input", attr);
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Squeeze, Unsqueeze (13), ReduceSum (13), Reduce* (18) ---- */

static cv_result axes_dynamic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b);
static cv_result split_dynamic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b);

static cv_result axes_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (has_in(n, 1) && !cv_const(c, n->inputs[1]))
        return axes_dynamic(c, n, a, b);
    return input_to_attr(c, n, 1, "axes", "axes", a, b);
}
static cv_result axes_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    return attr_to_input(c, n, "axes", 1, a, b);
}

#define E2(op, x, y) CV_OUT(cv_emit(c, op, NULL, 2, (const char *[]){x, y}))
#define E1(op, x) CV_OUT(cv_emit(c, op, NULL, 1, (const char *[]){x}))

/* Axes known only when the model runs: ReduceSum-13 takes them as an input,
 * and the reductions that are sums of something are written through it. */
static cv_result reduce_dynamic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *op = n->op_type, *x = n->inputs[0], *axes = n->inputs[1];
    kiln_dtype dt = cv_dtype(c, x);
    if (!dt)
        return cv_refuse(c, "the element type of '%s' is not known", x);
    int64_t keep = kiln_attr_int(n, "keepdims", 1), noop = kiln_attr_int(n, "noop_with_empty_axes", 0);
    const char *in = x;
    if (!strcmp(op, "ReduceSumSquare") || !strcmp(op, "ReduceL2"))
        in = E2("Mul", x, x);
    else if (!strcmp(op, "ReduceL1"))
        in = E1("Abs", x);
    const char *shift = NULL;
    if (!strcmp(op, "ReduceLogSumExp")) {
        /* exp(x - m) with m the largest finite value of all (any m gives the same sum) */
        const char *fin = E1("Not", E1("IsInf", x));
        const char *xm = CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){fin, x, cv_scalar(c, dt, -INFINITY)}));
        kiln_node *mx = cv_emit(c, "ReduceMax", NULL, 1, &xm);
        cv_ai(c, mx, "keepdims", 1);
        shift = CV_OUT(mx);
        shift = CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){E1("IsInf", shift), cv_scalar(c, dt, 0), shift}));
        in = E1("Exp", E2("Sub", x, shift));
    }
    const char *rs = n->outputs[0];
    bool direct = !strcmp(op, "ReduceSumSquare") || !strcmp(op, "ReduceL1");
    kiln_node *sum = cv_emit(c, "ReduceSum", direct ? rs : NULL, 2, (const char *[]){in, axes});
    cv_ai(c, sum, "keepdims", keep);
    cv_ai(c, sum, "noop_with_empty_axes", noop);
    const char *sv = CV_OUT(sum);
    if (!strcmp(op, "ReduceL2")) {
        cv_emit(c, "Sqrt", rs, 1, &sv);
    } else if (!strcmp(op, "ReduceLogSum")) {
        cv_emit(c, "Log", rs, 1, &sv);
    } else if (shift) {
        /* the shift is one value for all: broadcast as a scalar */
        const char *m1 = CV_OUT(cv_emit(c, "Reshape", NULL, 2, (const char *[]){shift, cv_const_i64(c, 0, NULL)}));
        cv_emit(c, "Add", rs, 2, (const char *[]){E1("Log", sv), m1});
    } else if (!strcmp(op, "ReduceMean")) {
        /* the count: the product of the reduced dims, every dim for no axes */
        const char *sh = E1("Shape", x);
        kiln_node *g = cv_emit(c, "Gather", NULL, 2, (const char *[]){sh, axes});
        cv_ai(c, g, "axis", 0);
        const char *gv = CV_OUT(g);
        kiln_node *pr = cv_emit(c, "ReduceProd", NULL, 1, &gv);
        cv_ai(c, pr, "keepdims", 0);
        const char *cnt = CV_OUT(pr);
        if (!noop) {
            const char *none = E2("Equal", E1("Size", axes), cv_scalar_i64(c, 0));
            cnt = CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){none, E1("Size", x), cnt}));
        }
        kiln_node *cc = cv_emit(c, "Cast", NULL, 1, &cnt);
        cv_ai(c, cc, "to", dt);
        cv_emit(c, "Div", rs, 2, (const char *[]){sv, CV_OUT(cc)});
    } else if (!direct) {
        return cv_refuse(c, "its axes ('%s') are not constant, and %s-%d takes them as an attribute", axes,
                         op, b->since);
    }
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "axes known at run time: written through ReduceSum-13");
    return CV_REPLACED;
}

/* Axes known only at run time, below the version that takes them as an
 * input: each axis reduced or not by an If on whether it is listed, the
 * reduced dims squeezed by a Reshape to the kept ones (exact for Max/Min,
 * the same sums in another order for Sum/Prod). */
static const char *axes_norm(cv_ctx *c, const char *axes, int r) {
    kiln_node *ci = cv_emit(c, "Cast", NULL, 1, &axes);
    cv_ai(c, ci, "to", KILN_DTYPE_INT64);
    const char *an = CV_OUT(ci), *z = cv_scalar_i64(c, 0);
    return CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){E2("Less", an, z), E2("Add", an, cv_scalar_i64(c, r)), an}));
}

/* whether axis i is listed in the normalised axes, a bool scalar */
static const char *listed_flag(cv_ctx *c, const char *an, int64_t i) {
    const char *eq = E2("Equal", an, cv_scalar_i64(c, i));
    kiln_node *ci = cv_emit(c, "Cast", NULL, 1, &eq);
    cv_ai(c, ci, "to", KILN_DTYPE_INT64);
    const char *cv = CV_OUT(ci);
    kiln_node *sum = cv_emit(c, "ReduceSum", NULL, 1, &cv);
    cv_ai(c, sum, "keepdims", 0);
    return E2("Greater", CV_OUT(sum), cv_scalar_i64(c, 0));
}

/* Squeeze / Unsqueeze with axes known at run time: a Reshape to the shape
 * they give (computed with Compress / ScatterElements). */
static cv_result axes_dynamic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *x = n->inputs[0], *axes = n->inputs[1];
    int r = cv_rank(c, x);
    bool unsq = !strcmp(n->op_type, "Unsqueeze");
    int64_t na = unsq ? cv_dim(c, axes, 0) : 0;
    if (r < 0 || (unsq && na < 0) || r + na > 16)
        return cv_refuse(c, "its axes ('%s') are not constant, and the rank of '%s'%s is not known", axes, x,
                         unsq ? " or the number of axes" : "");
    int R = unsq ? r + (int)na : r;
    const char *an = axes_norm(c, axes, R), *flags[16];
    int64_t zero = 0;
    const char *sh = E1("Shape", x);
    for (int i = 0; i < R; i++) {
        const char *f = listed_flag(c, an, i);
        if (!unsq) {
            /* no axes: every dim of size 1 */
            kiln_node *g = cv_emit(c, "Gather", NULL, 2, (const char *[]){sh, cv_scalar_i64(c, i)});
            cv_ai(c, g, "axis", 0);
            const char *one = E2("Equal", CV_OUT(g), cv_scalar_i64(c, 1));
            const char *none = E2("Equal", E1("Size", axes), cv_scalar_i64(c, 0));
            f = E2("Or", f, E2("And", none, one));
        }
        kiln_node *u = cv_emit(c, "Unsqueeze", NULL, 1, &f);
        cv_aints(c, u, "axes", 1, &zero);
        flags[i] = CV_OUT(u);
    }
    kiln_node *cat = cv_emit(c, "Concat", NULL, (size_t)R, flags);
    cv_ai(c, cat, "axis", 0);
    const char *keep = E1("Not", CV_OUT(cat)), *shape;
    if (unsq) {
        /* ones, with the input's dims where no axis is inserted */
        int64_t ones[16];
        for (int i = 0; i < R; i++)
            ones[i] = 1;
        const char *pos = CV_OUT(cv_emit(c, "Range", NULL, 3,
                                         (const char *[]){cv_scalar_i64(c, 0), cv_scalar_i64(c, R), cv_scalar_i64(c, 1)}));
        kiln_node *cp = cv_emit(c, "Compress", NULL, 2, (const char *[]){pos, keep});
        cv_ai(c, cp, "axis", 0);
        kiln_node *sc = cv_emit(c, "ScatterElements", NULL, 3,
                                (const char *[]){cv_const_i64(c, (size_t)R, ones), CV_OUT(cp), sh});
        cv_ai(c, sc, "axis", 0);
        shape = CV_OUT(sc);
    } else {
        kiln_node *cp = cv_emit(c, "Compress", NULL, 2, (const char *[]){sh, keep});
        cv_ai(c, cp, "axis", 0);
        shape = CV_OUT(cp);
    }
    cv_emit(c, "Reshape", n->outputs[0], 2, (const char *[]){x, shape});
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "axes known at run time: a Reshape to the shape they give");
    return CV_REPLACED;
}

/* Split with sizes known at run time: one Slice per output, from their cumulative sums. */
static cv_result split_dynamic(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *x = n->inputs[0], *sz = n->inputs[1];
    int64_t axis = kiln_attr_int(n, "axis", 0), zero = 0;
    kiln_node *ce = cv_emit(c, "CumSum", NULL, 2, (const char *[]){sz, cv_scalar_i64(c, 0)});
    cv_ai(c, ce, "exclusive", 1);
    const char *starts = CV_OUT(ce);
    const char *ends = CV_OUT(cv_emit(c, "CumSum", NULL, 2, (const char *[]){sz, cv_scalar_i64(c, 0)}));
    const char *ax = cv_const_i64(c, 1, &axis);
    for (size_t i = 0; i < n->n_outputs; i++) {
        if (!*n->outputs[i])
            continue;
        int64_t k = (int64_t)i, k1 = k + 1;
        const char *ki = cv_const_i64(c, 1, &k), *k1i = cv_const_i64(c, 1, &k1);
        const char *s0 = CV_OUT(cv_emit(c, "Slice", NULL, 3, (const char *[]){starts, ki, k1i}));
        const char *e0 = CV_OUT(cv_emit(c, "Slice", NULL, 3, (const char *[]){ends, ki, k1i}));
        cv_emit(c, "Slice", n->outputs[i], 4, (const char *[]){x, s0, e0, ax});
    }
    (void)zero;
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "split sizes known at run time: one Slice per output");
    return CV_REPLACED;
}

static cv_result reduce_chain(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *x = n->inputs[0], *axes = n->inputs[1];
    int r = cv_rank(c, x);
    kiln_dtype dt = cv_dtype(c, x);
    if (r < 0 || r > 16 || !dt)
        return cv_refuse(c, "its axes ('%s') are not constant, and the rank or type of '%s' is not known", axes, x);
    int64_t keep = kiln_attr_int(n, "keepdims", 1), noop = kiln_attr_int(n, "noop_with_empty_axes", 0);
    const char *an = axes_norm(c, axes, r);
    const char *empty = noop ? NULL : E2("Equal", E1("Size", axes), cv_scalar_i64(c, 0));
    const char *y = x, *flags[16];
    int64_t zero = 0;
    for (int i = 0; i < r; i++) {
        const char *f = listed_flag(c, an, i);
        if (empty)
            f = E2("Or", f, empty);
        if (c->emit_opset >= 13) {
            flags[i] = CV_OUT(cv_emit(c, "Unsqueeze", NULL, 2, (const char *[]){f, cv_const_i64(c, 1, &zero)}));
        } else {
            kiln_node *u = cv_emit(c, "Unsqueeze", NULL, 1, &f);
            cv_aints(c, u, "axes", 1, &zero);
            flags[i] = CV_OUT(u);
        }
        const char *t_out = cv_fresh(c, "reduced"), *e_out = cv_fresh(c, "kept");
        int64_t ai = i;
        kiln_node *red = cv_node_new(c, n->op_type, t_out, 1, &y);
        cv_aints(c, red, "axes", 1, &ai);
        cv_ai(c, red, "keepdims", 1);
        kiln_node *id = cv_node_new(c, "Identity", e_out, 1, &y);
        kiln_graph *gt = cv_graph_of(c, &red, 1, t_out, dt), *ge = cv_graph_of(c, &id, 1, e_out, dt);
        kiln_node *iff = cv_emit(c, "If", NULL, 1, &f);
        cv_agraph(c, iff, "then_branch", gt);
        cv_agraph(c, iff, "else_branch", ge);
        y = CV_OUT(iff);
    }
    if (keep) {
        cv_emit(c, "Identity", n->outputs[0], 1, &y);
    } else {
        kiln_node *cat = cv_emit(c, "Concat", NULL, (size_t)r, flags);
        cv_ai(c, cat, "axis", 0);
        kiln_node *cp = cv_emit(c, "Compress", NULL, 2, (const char *[]){E1("Shape", y), E1("Not", CV_OUT(cat))});
        cv_ai(c, cp, "axis", 0);
        cv_emit(c, "Reshape", n->outputs[0], 2, (const char *[]){y, CV_OUT(cp)});
    }
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "axes known at run time: each axis reduced under an If");
    return CV_REPLACED;
}

static cv_result reduce_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t noop = kiln_attr_int(n, "noop_with_empty_axes", 0);
    int64_t v[MAXV];
    int k;
    if (has_in(n, 1) && !cv_const(c, n->inputs[1]) && strcmp(n->op_type, "ReduceSum") != 0 &&
        (!strcmp(n->op_type, "ReduceMean") || !strcmp(n->op_type, "ReduceSumSquare") ||
         !strcmp(n->op_type, "ReduceL1") || !strcmp(n->op_type, "ReduceL2") || !strcmp(n->op_type, "ReduceLogSum") ||
         !strcmp(n->op_type, "ReduceLogSumExp")))
        return reduce_dynamic(c, n, a, b);
    if (has_in(n, 1) && !cv_const(c, n->inputs[1]))
        return reduce_chain(c, n, a, b);
    cv_result r = const_input(c, n, 1, "axes", v, &k);
    if (r != CV_DONE)
        return r;
    if (noop && k <= 0) {
        /* no axes and noop: the input itself */
        const char *x = n->inputs[0];
        kiln_node *id = cv_emit(c, "Identity", n->outputs[0], 1, &x);
        if (!id)
            return CV_ERROR;
        cv_note(c, n, a->since, b->since, "no axes with noop_with_empty_axes: Identity");
        return CV_REPLACED;
    }
    cv_adrop(n, "noop_with_empty_axes");
    if (k == 0) {
        drop_input(c, n, 1);
        cv_note(c, n, a->since, b->since, "empty constant axes: reduces every axis");
        return CV_DONE;
    }
    return input_to_attr(c, n, 1, "axes", "axes", a, b);
}

/* ---- Split ---- */

static cv_result split13_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (has_in(n, 1) && !cv_const(c, n->inputs[1]))
        return split_dynamic(c, n, a, b);
    return input_to_attr(c, n, 1, "split", "split", a, b);
}
static cv_result split13_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    return attr_to_input(c, n, "split", 1, a, b);
}

static cv_result split18_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const kiln_attr *no = kiln_node_attr(n, "num_outputs");
    if (!no)
        return CV_DONE;
    int64_t parts = no->i;
    cv_adrop(n, "num_outputs");
    if (has_in(n, 1))
        return CV_DONE;
    int rank = cv_rank(c, n->inputs[0]);
    int64_t axis = kiln_attr_int(n, "axis", 0);
    if (axis < 0 && rank >= 0)
        axis += rank;
    int64_t d = cv_dim(c, n->inputs[0], (int)axis);
    if (parts <= 0 || parts > MAXV)
        return cv_refuse(c, "num_outputs = %lld", (long long)parts);
    if (d < 0) {
        /* sizes from the dim at run time: ceil(d / n) each, the rest last */
        const char *x = n->inputs[0];
        const char *sh = CV_OUT(cv_emit_pre(c, "Shape", NULL, 1, &x));
        int64_t ax = kiln_attr_int(n, "axis", 0);
        const char *ai = cv_const_i64(c, 1, &ax);
        kiln_node *g = cv_emit_pre(c, "Gather", NULL, 2, (const char *[]){sh, ai});
        cv_ai(c, g, "axis", 0);
        const char *dv = CV_OUT(g); /* [1] */
        const char *pn = cv_const_i64(c, 1, &parts);
        int64_t pm1 = parts - 1;
        const char *chunk = CV_OUT(cv_emit_pre(c, "Div", NULL, 2, (const char *[]){
            CV_OUT(cv_emit_pre(c, "Add", NULL, 2, (const char *[]){dv, cv_const_i64(c, 1, &pm1)})), pn}));
        const char *sizes;
        if (parts > 1) {
            const char *lead = CV_OUT(cv_emit_pre(c, "Expand", NULL, 2, (const char *[]){chunk, cv_const_i64(c, 1, &pm1)}));
            const char *used = CV_OUT(cv_emit_pre(c, "Mul", NULL, 2, (const char *[]){chunk, cv_const_i64(c, 1, &pm1)}));
            const char *last = CV_OUT(cv_emit_pre(c, "Sub", NULL, 2, (const char *[]){dv, used}));
            kiln_node *cat = cv_emit_pre(c, "Concat", NULL, 2, (const char *[]){lead, last});
            cv_ai(c, cat, "axis", 0);
            sizes = CV_OUT(cat);
        } else {
            sizes = dv;
        }
        cv_set_input(c, n, 1, sizes);
        cv_note(c, n, a->since, b->since, "num_outputs = %lld became split sizes computed at run time",
                (long long)parts);
        return c->st ? CV_ERROR : CV_DONE;
    }
    if (d % parts == 0) {
        cv_note(c, n, a->since, b->since, "num_outputs dropped: %lld splits evenly", (long long)d);
        return CV_DONE;
    }
    int64_t sizes[MAXV], chunk = (d + parts - 1) / parts, left = d;
    for (int64_t i = 0; i < parts; i++) {
        sizes[i] = left < chunk ? left : chunk;
        left -= sizes[i];
    }
    cv_set_input(c, n, 1, cv_const_i64(c, (size_t)parts, sizes));
    cv_note(c, n, a->since, b->since, "num_outputs = %lld became split sizes", (long long)parts);
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result split18_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!has_in(n, 1) && !kiln_node_attr(n, "num_outputs")) {
        cv_ai(c, n, "num_outputs", (int64_t)n->n_outputs);
        cv_note(c, n, a->since, b->since, "num_outputs = %zu (equal parts)", n->n_outputs);
    }
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Pad ---- */

static cv_result pad11_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t v[MAXV];
    int k;
    cv_result r = const_input(c, n, 1, "pads", v, &k);
    if (r != CV_DONE)
        return r;
    if (k < 0)
        return cv_refuse(c, "no pads");
    if (has_in(n, 2)) {
        const kiln_tensor *t = cv_const(c, n->inputs[2]);
        if (!t || t->numel != 1)
            return cv_refuse(c, "its constant_value ('%s') is not a constant, and %s-%d takes it as an attribute",
                             n->inputs[2], n->op_type, b->since);
        double x = kiln_tensor_get_f64(t, 0);
        if ((double)(float)x != x && !isnan(x))
            return cv_refuse(c, "constant_value %g is not exact as a float attribute", x);
        cv_af(c, n, "value", (float)x);
        drop_input(c, n, 2);
    }
    cv_aints(c, n, "pads", (size_t)k, v);
    drop_input(c, n, 1);
    cv_note(c, n, a->since, b->since, "inputs pads, constant_value (constant) became attributes");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result pad11_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    size_t k;
    const int64_t *p = kiln_attr_ints(n, "pads", &k);
    if (!p)
        return cv_refuse(c, "no pads");
    int64_t copy[MAXV];
    if (k > MAXV)
        return cv_refuse(c, "too many pads");
    memcpy(copy, p, k * sizeof *p);
    cv_set_input(c, n, 1, cv_const_i64(c, k, copy));
    cv_adrop(n, "pads");
    const kiln_attr *val = kiln_node_attr(n, "value");
    if (val && val->f != 0) {
        kiln_dtype dt = cv_dtype(c, n->inputs[0]);
        if (!dt)
            return cv_refuse(c, "the element type of '%s' is unknown", n->inputs[0]);
        cv_set_input(c, n, 2, cv_scalar(c, dt, val->f));
    }
    cv_adrop(n, "value");
    cv_note(c, n, a->since, b->since, "attributes pads, value became constant inputs");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result pad18_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!has_in(n, 3))
        return CV_DONE;
    int64_t axes[MAXV], pads[MAXV];
    int na, np;
    int r = cv_rank(c, n->inputs[0]);
    if (!cv_const_ints(c, n->inputs[3], axes, &na, MAXV)) {
        /* axes known at run time: the pads scattered into zeros for every axis */
        if (r < 0 || 2 * r > MAXV)
            return cv_refuse(c, "its axes ('%s') are not constant and the rank is not known", n->inputs[3]);
        const char *ax = n->inputs[3];
        kiln_node *ci = cv_emit_pre(c, "Cast", NULL, 1, &ax);
        cv_ai(c, ci, "to", KILN_DTYPE_INT64);
        const char *an = CV_OUT(ci), *z = cv_scalar_i64(c, 0), *rv = cv_scalar_i64(c, r);
        const char *lt = CV_OUT(cv_emit_pre(c, "Less", NULL, 2, (const char *[]){an, z}));
        const char *pl = CV_OUT(cv_emit_pre(c, "Add", NULL, 2, (const char *[]){an, rv}));
        an = CV_OUT(cv_emit_pre(c, "Where", NULL, 3, (const char *[]){lt, pl, an}));
        const char *ends = CV_OUT(cv_emit_pre(c, "Add", NULL, 2, (const char *[]){an, rv}));
        kiln_node *cat = cv_emit_pre(c, "Concat", NULL, 2, (const char *[]){an, ends});
        cv_ai(c, cat, "axis", 0);
        int64_t zeros[MAXV] = {0};
        kiln_node *sc = cv_emit_pre(c, "ScatterElements", NULL, 3,
                                    (const char *[]){cv_const_i64(c, (size_t)(2 * r), zeros), CV_OUT(cat), n->inputs[1]});
        cv_ai(c, sc, "axis", 0);
        cv_set_input(c, n, 1, CV_OUT(sc));
        drop_input(c, n, 3);
        cv_note(c, n, a->since, b->since, "axes known at run time: pads scattered over every axis");
        return c->st ? CV_ERROR : CV_DONE;
    }
    if (r < 0 || 2 * r > MAXV)
        return cv_refuse(c, "the rank of '%s' is not known (needed to pad every axis)", n->inputs[0]);
    if (!cv_const_ints(c, n->inputs[1], pads, &np, MAXV)) {
        /* pads known at run time: each axis's pair sliced out of them, zeros elsewhere */
        int64_t z = 0;
        const char *zv = cv_const_i64(c, 1, &z), *parts[MAXV];
        for (int side = 0; side < 2; side++)
            for (int i = 0; i < r; i++) {
                parts[side * r + i] = zv;
                for (int k = 0; k < na; k++) {
                    int64_t ax = axes[k] < 0 ? axes[k] + r : axes[k];
                    if (ax != i)
                        continue;
                    int64_t s0 = side * na + k, s1 = s0 + 1;
                    const char *sl[3] = {n->inputs[1], cv_const_i64(c, 1, &s0), cv_const_i64(c, 1, &s1)};
                    parts[side * r + i] = CV_OUT(cv_emit_pre(c, "Slice", NULL, 3, sl));
                }
            }
        kiln_node *cat = cv_emit_pre(c, "Concat", NULL, (size_t)(2 * r), parts);
        cv_ai(c, cat, "axis", 0);
        cv_set_input(c, n, 1, CV_OUT(cat));
        drop_input(c, n, 3);
        cv_note(c, n, a->since, b->since, "pads (known at run time) spread over every axis");
        return c->st ? CV_ERROR : CV_DONE;
    }
    if (np != 2 * na)
        return cv_refuse(c, "pads has %d values for %d axes", np, na);
    int64_t full[MAXV] = {0};
    for (int i = 0; i < na; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + r : axes[i];
        if (ax < 0 || ax >= r)
            return cv_refuse(c, "axis %lld out of range", (long long)axes[i]);
        full[ax] = pads[i];
        full[r + ax] = pads[na + i];
    }
    cv_orphan(c, n->inputs[1]);
    cv_set_input(c, n, 1, cv_const_i64(c, (size_t)(2 * r), full));
    drop_input(c, n, 3);
    cv_note(c, n, a->since, b->since, "axes folded into pads for every axis");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result pad19_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!strcmp(kiln_attr_string(n, "mode", "constant"), "wrap"))
        return cv_refuse(c, "mode 'wrap' first appears in Pad-19");
    return CV_DONE;
}

/* ---- Clip (11: bounds became inputs) ---- */

static cv_result clip11_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    static const char *names[2] = {"min", "max"};
    for (size_t i = 1; i <= 2; i++) {
        if (!has_in(n, i))
            continue;
        const kiln_tensor *t = cv_const(c, n->inputs[i]);
        if (!t || t->numel != 1)
            return cv_refuse(c, "its %s ('%s') is not a constant, and %s-%d takes it as an attribute", names[i - 1],
                             n->inputs[i], n->op_type, b->since);
        double x = kiln_tensor_get_f64(t, 0);
        cv_af(c, n, names[i - 1], (float)x);
    }
    drop_input(c, n, 2);
    drop_input(c, n, 1);
    cv_note(c, n, a->since, b->since, "inputs min, max (constant) became attributes");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result clip11_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const kiln_attr *lo = kiln_node_attr(n, "min"), *hi = kiln_node_attr(n, "max");
    if (lo || hi) {
        kiln_dtype dt = cv_dtype(c, n->inputs[0]);
        if (!dt)
            return cv_refuse(c, "the element type of '%s' is unknown", n->inputs[0]);
        if (lo)
            cv_set_input(c, n, 1, cv_scalar(c, dt, lo->f));
        if (hi) {
            if (!lo)
                cv_set_input(c, n, 1, "");
            cv_set_input(c, n, 2, cv_scalar(c, dt, hi->f));
        }
    }
    cv_adrop(n, "min");
    cv_adrop(n, "max");
    cv_note(c, n, a->since, b->since, "attributes min, max became constant inputs");
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Softmax, LogSoftmax, Hardmax (13: one axis instead of a 2-D coercion) ---- */

static cv_result softmax13_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t axis = kiln_attr_int(n, "axis", -1);
    int r = cv_rank(c, n->inputs[0]);
    if (axis == -1 || (r >= 0 && axis == r - 1)) {
        cv_ai(c, n, "axis", -1);
        return c->st ? CV_ERROR : CV_DONE;
    }
    if (r < 0)
        return cv_refuse(c, "axis %lld is not the last, and the rank of '%s' is not known", (long long)axis,
                         n->inputs[0]);
    if (axis < 0)
        axis += r;
    if (axis < 0 || axis >= r || r > 16)
        return cv_refuse(c, "axis %lld out of range", (long long)axis);
    /* move the axis last, normalise, move it back */
    int64_t perm[16], back[16];
    int k = 0;
    for (int i = 0; i < r; i++)
        if (i != axis)
            perm[k++] = i;
    perm[k] = axis;
    for (int i = 0; i < r; i++)
        back[perm[i]] = i;
    const char *x = n->inputs[0];
    kiln_node *t1 = cv_emit(c, "Transpose", NULL, 1, &x);
    cv_aints(c, t1, "perm", (size_t)r, perm);
    const char *y = CV_OUT(t1);
    kiln_node *sm = cv_emit(c, n->op_type, NULL, 1, &y);
    cv_ai(c, sm, "axis", -1);
    const char *z = CV_OUT(sm);
    kiln_node *t2 = cv_emit(c, "Transpose", n->outputs[0], 1, &z);
    cv_aints(c, t2, "perm", (size_t)r, back);
    if (c->st)
        return CV_ERROR;
    /* the inner node is in version 13's form: it is converted on from 13 */
    sm->opset = a->since;
    cv_note(c, n, a->since, b->since, "axis %lld moved last by Transposes", (long long)axis);
    return CV_REPLACED;
}

static cv_result softmax13_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t axis = kiln_attr_int(n, "axis", 1);
    int r = cv_rank(c, n->inputs[0]);
    if (r >= 0 && (axis == r - 1 || axis == -1)) {
        cv_ai(c, n, "axis", -1);
        return c->st ? CV_ERROR : CV_DONE;
    }
    /* the 2-D coercion: Flatten at the axis, normalise the rows, back to the shape */
    const char *x = n->inputs[0];
    kiln_node *fl = cv_emit(c, "Flatten", NULL, 1, &x);
    cv_ai(c, fl, "axis", axis);
    const char *f = CV_OUT(fl);
    kiln_node *sm = cv_emit(c, n->op_type, NULL, 1, &f);
    cv_ai(c, sm, "axis", -1);
    kiln_node *sh = cv_emit(c, "Shape", NULL, 1, &x);
    const char *rs[2] = {CV_OUT(sm), CV_OUT(sh)};
    cv_emit(c, "Reshape", n->outputs[0], 2, rs);
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "2-D coercion at axis %lld made explicit (Flatten, Reshape)", (long long)axis);
    return CV_REPLACED;
}

/* ---- Shape (15: start, end) ---- */

static cv_result shape15_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const kiln_attr *s = kiln_node_attr(n, "start"), *e = kiln_node_attr(n, "end");
    int64_t start = s ? s->i : 0;
    if (start == 0 && !e) {
        cv_adrop(n, "start");
        return CV_DONE;
    }
    const char *x = n->inputs[0];
    kiln_node *sh = cv_emit(c, "Shape", NULL, 1, &x);
    int64_t st = start, en = e ? e->i : INT64_MAX, ax = 0;
    const char *sl[4] = {CV_OUT(sh), cv_const_i64(c, 1, &st), cv_const_i64(c, 1, &en), cv_const_i64(c, 1, &ax)};
    cv_emit(c, "Slice", n->outputs[0], 4, sl);
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "start/end became a Slice of the shape");
    return CV_REPLACED;
}

/* ---- Reshape (14: allowzero) ---- */

static cv_result reshape14_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!kiln_attr_int(n, "allowzero", 0)) {
        cv_adrop(n, "allowzero");
        return CV_DONE;
    }
    int64_t v[MAXV];
    int k;
    if (!cv_const_ints(c, in_name(n, 1), v, &k, MAXV)) {
        /* a shape known at run time: with a 0 in it the result is empty (ConstantOfShape
         * makes it), else Reshape-13 reads it the same */
        const char *x = n->inputs[0], *shp = n->inputs[1];
        kiln_dtype dt = cv_dtype(c, x);
        if (!dt || dt == KILN_DTYPE_STRING)
            return cv_refuse(c, "allowzero = 1 with a shape that is not constant, on %s values",
                             dt ? "string" : "unknown");
        const char *eq = E2("Equal", shp, cv_scalar_i64(c, 0));
        kiln_node *ci = cv_emit(c, "Cast", NULL, 1, &eq);
        cv_ai(c, ci, "to", KILN_DTYPE_INT64);
        const char *cv = CV_OUT(ci);
        kiln_node *sum = cv_emit(c, "ReduceSum", NULL, 1, &cv);
        cv_ai(c, sum, "keepdims", 0);
        const char *has0 = E2("Greater", CV_OUT(sum), cv_scalar_i64(c, 0));
        const char *t_out = cv_fresh(c, "empty"), *e_out = cv_fresh(c, "reshaped");
        kiln_node *cs = cv_node_new(c, "ConstantOfShape", t_out, 1, &shp);
        kiln_tensor *zero;
        kiln_status st = kiln_tensor_create(dt, 1, (int64_t[]){1}, &zero);
        if (st != KILN_OK)
            return cv_error(c, st);
        if (!cs || (st = kiln_edit_attr_tensor(cs, "value", zero)) != KILN_OK) {
            if (!cs)
                kiln_tensor_destroy(zero);
            return cv_error(c, st ? st : KILN_ERR_NOMEM);
        }
        kiln_node *rs = cv_node_new(c, "Reshape", e_out, 2, (const char *[]){x, shp});
        kiln_graph *gt = cv_graph_of(c, &cs, 1, t_out, dt), *ge = cv_graph_of(c, &rs, 1, e_out, dt);
        kiln_node *iff = cv_emit(c, "If", n->outputs[0], 1, &has0);
        cv_agraph(c, iff, "then_branch", gt);
        cv_agraph(c, iff, "else_branch", ge);
        if (c->st)
            return CV_ERROR;
        cv_note(c, n, a->since, b->since, "allowzero = 1 with a run-time shape: an If between an empty result and Reshape");
        return CV_REPLACED;
    }
    for (int i = 0; i < k; i++)
        if (v[i] == 0)
            return cv_refuse(c, "allowzero = 1 with a 0 in the shape (an empty dimension, which Reshape-13 reads as "
                                "'copy')");
    cv_adrop(n, "allowzero");
    cv_note(c, n, a->since, b->since, "allowzero dropped: the shape has no 0");
    return CV_DONE;
}

/* ---- TopK (10: k became an input) ---- */

static cv_result topk10_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t v[MAXV];
    int k;
    if (!cv_const_ints(c, in_name(n, 1), v, &k, MAXV) || k != 1)
        return cv_refuse(c, "its k ('%s') is not a constant, and TopK-1 takes it as an attribute", in_name(n, 1));
    cv_ai(c, n, "k", v[0]);
    drop_input(c, n, 1);
    cv_note(c, n, a->since, b->since, "input K (constant) became attribute k");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result topk10_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t k = kiln_attr_int(n, "k", -1);
    cv_adrop(n, "k");
    cv_set_input(c, n, 1, cv_const_i64(c, 1, &k));
    cv_note(c, n, a->since, b->since, "attribute k became a constant input");
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Dropout (12: ratio and training_mode inputs) ---- */

static cv_result dropout12_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (has_in(n, 2)) {
        const kiln_tensor *t = cv_const(c, n->inputs[2]);
        if (!t || t->numel != 1)
            return cv_refuse(c, "training_mode ('%s') is not a constant", n->inputs[2]);
        if (kiln_tensor_get_f64(t, 0) != 0)
            return cv_refuse(c, "training_mode is true, which Dropout-10 cannot express");
        drop_input(c, n, 2);
    }
    if (has_in(n, 1)) {
        /* in inference the ratio changes nothing: kept as an attribute when known, else dropped */
        const kiln_tensor *t = cv_const(c, n->inputs[1]);
        if (t && t->numel == 1)
            cv_af(c, n, "ratio", (float)kiln_tensor_get_f64(t, 0));
        drop_input(c, n, 1);
    }
    /* the seed matters only in training */
    cv_adrop(n, "seed");
    if (out_used(n, 1)) {
        /* in inference the mask is all true (runtimes differ on Dropout-10's): made explicit */
        const char *x = n->inputs[0];
        const char *sh = CV_OUT(cv_emit_post(c, "Shape", NULL, 1, &x));
        kiln_node *cs = cv_emit_post(c, "ConstantOfShape", n->outputs[1], 1, &sh);
        kiln_tensor *one;
        kiln_status st = kiln_tensor_create(KILN_DTYPE_BOOL, 1, (int64_t[]){1}, &one);
        if (st != KILN_OK)
            return cv_error(c, st);
        *(uint8_t *)one->data = 1;
        if (cs && (st = kiln_edit_attr_tensor(cs, "value", one)) != KILN_OK)
            return cv_error(c, st);
        if (!cs)
            kiln_tensor_destroy(one);
        free(n->outputs[1]);
        n->outputs[1] = kiln_strdup("");
        if (!n->outputs[1])
            return cv_error(c, KILN_ERR_NOMEM);
        cv_trim(n);
    }
    cv_note(c, n, a->since, b->since, "inference-mode Dropout: ratio an attribute, seed dropped");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result dropout12_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const kiln_attr *r = kiln_node_attr(n, "ratio");
    if (r) {
        kiln_dtype dt = cv_dtype(c, n->inputs[0]);
        cv_set_input(c, n, 1, cv_scalar(c, dt == KILN_DTYPE_DOUBLE || dt == KILN_DTYPE_FLOAT16 ? dt : KILN_DTYPE_FLOAT,
                                        r->f));
        cv_adrop(n, "ratio");
    }
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Cast (19: saturate; 24: round_mode) ---- */

static bool is_f8(int64_t t) { return t >= KILN_DTYPE_FLOAT8E4M3FN && t <= KILN_DTYPE_FLOAT8E5M2FNUZ; }

static cv_result cast19_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const kiln_attr *s = kiln_node_attr(n, "saturate");
    if (s && !is_f8(kiln_attr_int(n, "to", 0))) {
        cv_adrop(n, "saturate");
        cv_note(c, n, a->since, b->since, "saturate dropped (it only affects float8 results)");
    }
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result cast24_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (kiln_node_attr(n, "round_mode") && kiln_attr_int(n, "to", 0) != KILN_DTYPE_FLOAT8E8M0) {
        cv_adrop(n, "round_mode");
        cv_note(c, n, a->since, b->since, "round_mode dropped (it only affects float8e8m0 results)");
    }
    return CV_DONE;
}

/* ---- Scatter* (18: max/min reductions) ---- */

static cv_result scatter18_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *r = kiln_attr_string(n, "reduction", "none");
    if (!strcmp(r, "max") || !strcmp(r, "min"))
        return cv_refuse(c, "reduction '%s' first appears in %s-18", r, n->op_type);
    return CV_DONE;
}

/* ---- LSTM, GRU, RNN (14: layout) ---- */

static cv_result rnn14_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t layout = kiln_attr_int(n, "layout", 0);
    cv_adrop(n, "layout");
    if (!layout)
        return CV_DONE;
    /* batch-first: transpose X, initial_h, initial_c in, Y, Y_h, Y_c out */
    static const int64_t p3[3] = {1, 0, 2}, y_back[4] = {2, 0, 1, 3};
    bool lstm = !strcmp(n->op_type, "LSTM");
    size_t ins[3] = {0, 5, 6};
    for (int k = 0; k < (lstm ? 3 : 2); k++) {
        size_t i = ins[k];
        if (!has_in(n, i))
            continue;
        const char *x = n->inputs[i];
        kiln_node *t = cv_emit_pre(c, "Transpose", NULL, 1, &x);
        cv_aints(c, t, "perm", 3, p3);
        cv_set_input(c, n, i, CV_OUT(t));
    }
    for (size_t i = 0; i < n->n_outputs && i < 3; i++) {
        if (!out_used(n, i))
            continue;
        const char *tmp = cv_fresh(c, n->outputs[i]);
        kiln_node *t = cv_emit_post(c, "Transpose", n->outputs[i], 1, &tmp);
        cv_aints(c, t, "perm", i == 0 ? 4 : 3, i == 0 ? y_back : p3);
        char *s = kiln_strdup(tmp);
        if (!s)
            return cv_error(c, KILN_ERR_NOMEM);
        free(n->outputs[i]);
        n->outputs[i] = s;
    }
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "layout = 1 (batch first) became Transposes around the node");
    return CV_DONE;
}

/* ---- Constant (12: value_* attributes) ---- */

static cv_result constant12_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    static const char *forms[] = {"value_int", "value_ints", "value_float", "value_floats"};
    for (size_t i = 0; i < 4; i++)
        if (kiln_node_attr(n, forms[i])) {
            const kiln_tensor *t = cv_const(c, n->outputs[0]);
            if (!t)
                return cv_refuse(c, "cannot read %s", forms[i]);
            kiln_tensor *copy;
            kiln_status st = kiln_tensor_clone(t, &copy);
            if (st != KILN_OK)
                return cv_error(c, st);
            cv_adrop(n, forms[i]);
            st = kiln_edit_attr_tensor(n, "value", copy);
            if (st != KILN_OK)
                return cv_error(c, st);
            cv_note(c, n, a->since, b->since, "%s became a tensor value", forms[i]);
            return CV_DONE;
        }
    if (kiln_node_attr(n, "value_string") || kiln_node_attr(n, "value_strings"))
        return cv_refuse(c, "string constants in value_string(s) first appear in Constant-12");
    return CV_DONE;
}

/* ---- GridSample (20: mode names) ---- */

static cv_result gridsample20_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *m = kiln_attr_string(n, "mode", "linear");
    if (!strcmp(m, "linear"))
        cv_as(c, n, "mode", "bilinear");
    else if (!strcmp(m, "cubic"))
        cv_as(c, n, "mode", "bicubic");
    else if (strcmp(m, "nearest") != 0)
        return cv_refuse(c, "mode '%s'", m);
    int r = cv_rank(c, n->inputs[0]);
    if (r != 4)
        return cv_refuse(c, "GridSample-16 samples 4-D inputs only");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result gridsample20_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *m = kiln_attr_string(n, "mode", "bilinear");
    if (!strcmp(m, "bilinear"))
        cv_as(c, n, "mode", "linear");
    else if (!strcmp(m, "bicubic"))
        cv_as(c, n, "mode", "cubic");
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- RoiAlign (16: coordinate_transformation_mode) ---- */

static cv_result roialign16_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *m = kiln_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    if (strcmp(m, "output_half_pixel") != 0)
        return cv_refuse(c, "coordinate_transformation_mode '%s': RoiAlign-10 always uses 'output_half_pixel'", m);
    cv_adrop(n, "coordinate_transformation_mode");
    return CV_DONE;
}

static cv_result roialign16_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    cv_as(c, n, "coordinate_transformation_mode", "output_half_pixel");
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- DFT (20: axis became an input) ---- */

static cv_result dft20_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!has_in(n, 2)) {
        cv_ai(c, n, "axis", -2);
        return c->st ? CV_ERROR : CV_DONE;
    }
    int64_t v[MAXV];
    int k;
    if (!cv_const_ints(c, n->inputs[2], v, &k, MAXV) || k != 1)
        return cv_refuse(c, "its axis ('%s') is not a constant", n->inputs[2]);
    int r = cv_rank(c, n->inputs[0]);
    int64_t ax = v[0];
    if (ax < 0) {
        if (r < 0)
            return cv_refuse(c, "negative axis with an unknown rank");
        ax += r;
    }
    cv_ai(c, n, "axis", ax);
    drop_input(c, n, 2);
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result dft20_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    int64_t ax = kiln_attr_int(n, "axis", 1);
    cv_adrop(n, "axis");
    if (!has_in(n, 1))
        cv_set_input(c, n, 1, "");
    cv_set_input(c, n, 2, cv_scalar_i64(c, ax));
    return c->st ? CV_ERROR : CV_DONE;
}

/* ---- Resize ---- */

/* Resize-13 and later: roi/scales/sizes all optional. 11: roi and scales required. */
static cv_result resize13_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!has_in(n, 1))
        cv_set_input(c, n, 1, cv_const_f32(c, 0, NULL));
    if (!has_in(n, 2)) {
        const char *sz = in_name(n, 3);
        cv_set_input(c, n, 2, cv_const_f32(c, 0, NULL));
        if (*sz)
            cv_set_input(c, n, 3, sz);
    }
    return c->st ? CV_ERROR : CV_DONE;
}

/* Slice [k, k+1) of a 1-D value, before the node. */
static const char *pick1(cv_ctx *c, const char *v, int64_t k) {
    int64_t k1 = k + 1;
    return CV_OUT(cv_emit_pre(c, "Slice", NULL, 3, (const char *[]){v, cv_const_i64(c, 1, &k), cv_const_i64(c, 1, &k1)}));
}

static const char *concat_pre(cv_ctx *c, int n, const char *const *parts) {
    kiln_node *cat = cv_emit_pre(c, "Concat", NULL, (size_t)n, parts);
    cv_ai(c, cat, "axis", 0);
    return CV_OUT(cat);
}

/* A constant input that is present and not empty. */
static bool given(cv_ctx *c, const kiln_node *n, size_t i) {
    if (!has_in(n, i))
        return false;
    const kiln_tensor *t = cv_const(c, n->inputs[i]);
    return !t || t->numel > 0;
}

static cv_result resize18_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (kiln_attr_int(n, "antialias", 0))
        return cv_refuse(c, "antialias = 1 first appears in Resize-18");
    cv_adrop(n, "antialias");
    const char *x = n->inputs[0];
    char pol[32]; /* a copy: the attribute is dropped before the note */
    snprintf(pol, sizeof pol, "%s", kiln_attr_string(n, "keep_aspect_ratio_policy", "stretch"));
    size_t na;
    const int64_t *axes = kiln_attr_ints(n, "axes", &na);
    bool stretch = !strcmp(pol, "stretch");
    if (stretch && !axes) {
        cv_adrop(n, "keep_aspect_ratio_policy");
        return CV_DONE;
    }
    int r = cv_rank(c, x);
    if (r < 0 || r > MAXV / 2)
        return cv_refuse(c, "the rank of '%s' is not known (needed for %s)", x, axes ? "axes" : "keep_aspect_ratio_policy");
    int64_t ax[MAXV];
    int nax = axes ? (int)na : r;
    for (int i = 0; i < nax; i++) {
        ax[i] = axes ? (axes[i] < 0 ? axes[i] + r : axes[i]) : i;
        if (ax[i] < 0 || ax[i] >= r)
            return cv_refuse(c, "axis %lld out of range", (long long)(axes ? axes[i] : i));
    }
    int listed[MAXV];
    for (int i = 0; i < r; i++)
        listed[i] = -1;
    for (int k = 0; k < nax; k++)
        listed[ax[k]] = k;
    int64_t dims[MAXV];
    bool dims_known = true;
    for (int i = 0; i < r; i++)
        dims_known &= (dims[i] = cv_dim(c, x, i)) >= 0;
    bool has_scales = given(c, n, 2), has_sizes = given(c, n, 3);
    const char *sh = NULL;
    if (!stretch) {
        if (!has_sizes)
            return cv_refuse(c, "keep_aspect_ratio_policy '%s' without sizes", pol);
        bool larger = !strcmp(pol, "not_smaller");
        int64_t sz[MAXV];
        int k;
        if (dims_known && cv_const_ints(c, n->inputs[3], sz, &k, MAXV) && k == nax) {
            double scale = larger ? -INFINITY : INFINITY;
            for (int i = 0; i < nax; i++) {
                double s1 = (double)sz[i] / (double)dims[ax[i]];
                scale = larger ? fmax(scale, s1) : fmin(scale, s1);
            }
            /* scales reproduce the reference exactly when floor(d * s) is its rounding */
            bool by_scales = true;
            int64_t full[MAXV];
            float fs[MAXV];
            for (int i = 0; i < r; i++) {
                full[i] = listed[i] >= 0 ? (int64_t)(scale * (double)dims[i] + 0.5) : dims[i];
                fs[i] = listed[i] >= 0 ? (float)scale : 1.0f;
                if ((int64_t)floor((double)dims[i] * (double)fs[i]) != full[i])
                    by_scales = false;
            }
            cv_orphan(c, n->inputs[3]);
            if (by_scales) {
                cv_set_input(c, n, 2, cv_const_f32(c, (size_t)r, fs));
                cv_set_input(c, n, 3, "");
            } else {
                cv_set_input(c, n, 3, cv_const_i64(c, (size_t)r, full));
            }
        } else {
            /* at run time: scale = min (max) of sizes / dims, sizes = round(scale * dims) */
            sh = CV_OUT(cv_emit_pre(c, "Shape", NULL, 1, &x));
            kiln_node *g = cv_emit_pre(c, "Gather", NULL, 2, (const char *[]){sh, cv_const_i64(c, (size_t)nax, ax)});
            cv_ai(c, g, "axis", 0);
            const char *dv = CV_OUT(g);
            kiln_node *dd = cv_emit_pre(c, "Cast", NULL, 1, &dv), *sd = cv_emit_pre(c, "Cast", NULL, 1, (const char *[]){n->inputs[3]});
            cv_ai(c, dd, "to", KILN_DTYPE_DOUBLE);
            cv_ai(c, sd, "to", KILN_DTYPE_DOUBLE);
            const char *ratio = CV_OUT(cv_emit_pre(c, "Div", NULL, 2, (const char *[]){CV_OUT(sd), CV_OUT(dd)}));
            kiln_node *red = cv_emit_pre(c, larger ? "ReduceMax" : "ReduceMin", NULL, 1, &ratio);
            cv_ai(c, red, "keepdims", 1);
            const char *m = CV_OUT(cv_emit_pre(c, "Mul", NULL, 2, (const char *[]){CV_OUT(red), CV_OUT(dd)}));
            const char *half = cv_scalar(c, KILN_DTYPE_DOUBLE, 0.5);
            const char *fl = CV_OUT(cv_emit_pre(c, "Floor", NULL, 1, (const char *[]){
                CV_OUT(cv_emit_pre(c, "Add", NULL, 2, (const char *[]){m, half}))}));
            kiln_node *oi = cv_emit_pre(c, "Cast", NULL, 1, &fl);
            cv_ai(c, oi, "to", KILN_DTYPE_INT64);
            const char *parts[MAXV];
            for (int i = 0; i < r; i++)
                parts[i] = listed[i] >= 0 ? pick1(c, CV_OUT(oi), listed[i]) : pick1(c, sh, i);
            cv_set_input(c, n, 3, concat_pre(c, r, parts));
        }
        cv_adrop(n, "keep_aspect_ratio_policy");
        cv_adrop(n, "axes");
        cv_note(c, n, a->since, b->since, "keep_aspect_ratio_policy '%s' became explicit %s", pol,
                has_in(n, 3) ? "sizes" : "scales");
        return c->st ? CV_ERROR : CV_DONE;
    }
    cv_adrop(n, "keep_aspect_ratio_policy");
    bool ident = nax == r;
    for (int i = 0; ident && i < nax; i++)
        ident = ax[i] == i;
    if (!ident) {
        /* scales / sizes (and roi) for every axis: 1 (or the dim) on the others */
        if (has_scales) {
            const kiln_tensor *sc = cv_const(c, n->inputs[2]);
            if (sc) {
                float full[MAXV];
                for (int i = 0; i < r; i++)
                    full[i] = listed[i] >= 0 ? (float)kiln_tensor_get_f64(sc, listed[i]) : 1.0f;
                cv_set_input(c, n, 2, cv_const_f32(c, (size_t)r, full));
            } else {
                float one = 1;
                const char *onev = cv_const_f32(c, 1, &one), *parts[MAXV];
                for (int i = 0; i < r; i++)
                    parts[i] = listed[i] >= 0 ? pick1(c, n->inputs[2], listed[i]) : onev;
                cv_set_input(c, n, 2, concat_pre(c, r, parts));
            }
        }
        if (has_sizes) {
            int64_t sz[MAXV];
            int k;
            bool known = cv_const_ints(c, n->inputs[3], sz, &k, MAXV);
            for (int i = 0; known && i < r; i++)
                known = listed[i] >= 0 || dims[i] >= 0;
            if (known) {
                int64_t full[MAXV];
                for (int i = 0; i < r; i++)
                    full[i] = listed[i] >= 0 ? sz[listed[i]] : dims[i];
                cv_set_input(c, n, 3, cv_const_i64(c, (size_t)r, full));
            } else {
                if (!sh)
                    sh = CV_OUT(cv_emit_pre(c, "Shape", NULL, 1, &x));
                const char *parts[MAXV];
                for (int i = 0; i < r; i++)
                    parts[i] = listed[i] >= 0 ? pick1(c, n->inputs[3], listed[i]) : pick1(c, sh, i);
                cv_set_input(c, n, 3, concat_pre(c, r, parts));
            }
        }
        if (has_in(n, 1)) {
            const kiln_tensor *roi = cv_const(c, n->inputs[1]);
            if (roi && roi->numel == 2 * (int64_t)nax) {
                float full[MAXV];
                for (int i = 0; i < r; i++) {
                    full[i] = listed[i] >= 0 ? (float)kiln_tensor_get_f64(roi, listed[i]) : 0.0f;
                    full[r + i] = listed[i] >= 0 ? (float)kiln_tensor_get_f64(roi, nax + listed[i]) : 1.0f;
                }
                cv_set_input(c, n, 1, cv_const_f32(c, (size_t)(2 * r), full));
            } else if (roi && roi->numel > 0) {
                return cv_refuse(c, "axes with a roi that does not match them");
            } else if (!roi) {
                /* a roi known at run time: starts 0 and ends 1 on the other axes */
                float z = 0, one = 1;
                const char *zv = cv_const_f32(c, 1, &z), *ov = cv_const_f32(c, 1, &one), *parts[MAXV];
                for (int i = 0; i < r; i++) {
                    parts[i] = listed[i] >= 0 ? pick1(c, n->inputs[1], listed[i]) : zv;
                    parts[r + i] = listed[i] >= 0 ? pick1(c, n->inputs[1], nax + listed[i]) : ov;
                }
                cv_set_input(c, n, 1, concat_pre(c, 2 * r, parts));
            }
        }
    }
    cv_adrop(n, "axes");
    cv_note(c, n, a->since, b->since, "axes folded into scales/sizes for every axis");
    return c->st ? CV_ERROR : CV_DONE;
}

static cv_result resize19_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!strcmp(kiln_attr_string(n, "coordinate_transformation_mode", "half_pixel"), "half_pixel_symmetric"))
        return cv_refuse(c, "coordinate_transformation_mode 'half_pixel_symmetric' first appears in Resize-19");
    return CV_DONE;
}

static cv_result resize11_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    /* Resize-10: X and scales; nearest/linear with asymmetric coordinates */
    const char *mode = kiln_attr_string(n, "mode", "nearest");
    const char *ctm = kiln_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    const char *nm = kiln_attr_string(n, "nearest_mode", "round_prefer_floor");
    if (!strcmp(mode, "cubic"))
        return cv_refuse(c, "mode 'cubic' first appears in Resize-11");
    if (strcmp(ctm, "asymmetric") != 0)
        return cv_refuse(c, "coordinate_transformation_mode '%s': Resize-10 computes asymmetric coordinates", ctm);
    if (!strcmp(mode, "nearest") && strcmp(nm, "floor") != 0)
        return cv_refuse(c, "nearest_mode '%s': Resize-10 rounds down", nm);
    if (kiln_attr_int(n, "exclude_outside", 0) != 0)
        return cv_refuse(c, "exclude_outside = 1");
    if (has_in(n, 3)) {
        /* sizes -> scales, when the input's dims are known */
        int64_t sz[MAXV];
        int k;
        if (!cv_const_ints(c, n->inputs[3], sz, &k, MAXV))
            return cv_refuse(c, "sizes that are not constant");
        float sc[MAXV];
        for (int i = 0; i < k; i++) {
            int64_t d = cv_dim(c, n->inputs[0], i);
            if (d <= 0)
                return cv_refuse(c, "sizes with input dims that are not known");
            sc[i] = (float)sz[i] / (float)d;
            if ((int64_t)floorf((float)d * sc[i]) != sz[i])
                return cv_refuse(c, "sizes that no float scale reproduces");
        }
        cv_orphan(c, n->inputs[3]);
        cv_orphan(c, n->inputs[2]);
        cv_set_input(c, n, 2, cv_const_f32(c, (size_t)k, sc));
        cv_set_input(c, n, 3, "");
    }
    if (has_in(n, 1))
        cv_orphan(c, n->inputs[1]);
    const char *x = n->inputs[0], *s = n->inputs[2];
    kiln_node *r = cv_emit(c, "Resize", n->outputs[0], 2, (const char *[]){x, s});
    cv_as(c, r, "mode", mode);
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "roi dropped (asymmetric coordinates)");
    return CV_REPLACED;
}

static cv_result resize11_up(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *mode = kiln_attr_string(n, "mode", "nearest");
    const char *ins[3] = {n->inputs[0], cv_const_f32(c, 0, NULL), in_name(n, 1)};
    kiln_node *r = cv_emit(c, "Resize", n->outputs[0], 3, ins);
    cv_as(c, r, "mode", mode);
    cv_as(c, r, "coordinate_transformation_mode", "asymmetric");
    if (!strcmp(mode, "nearest"))
        cv_as(c, r, "nearest_mode", "floor");
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "asymmetric coordinates made explicit");
    return CV_REPLACED;
}

/* ---- Attention (24: nonpad_kv_seqlen; 25: windows) ---- */

static cv_result attention24_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (has_in(n, 6))
        return cv_refuse(c, "input nonpad_kv_seqlen first appears in Attention-24");
    return CV_DONE;
}

/* ---- Mod (28: floor modulo of floating-point values) ---- */

static bool is_float_dt(kiln_dtype t) {
    return t == KILN_DTYPE_FLOAT || t == KILN_DTYPE_DOUBLE || t == KILN_DTYPE_FLOAT16 || t == KILN_DTYPE_BFLOAT16;
}

static cv_result mod28_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    kiln_dtype dt = cv_dtype(c, n->inputs[0]);
    if (kiln_attr_int(n, "fmod", 0) || !is_float_dt(dt))
        return CV_DONE;
    /* r = fmod(a, b); where r != 0 and its sign differs from b's: r + b */
    const char *x = n->inputs[0], *y = n->inputs[1];
    kiln_node *m = cv_emit(c, "Mod", NULL, 2, (const char *[]){x, y});
    cv_ai(c, m, "fmod", 1);
    const char *r = CV_OUT(m), *z = cv_scalar(c, dt, 0);
    const char *nz = CV_OUT(cv_emit(c, "Not", NULL, 1, (const char *[]){CV_OUT(cv_emit(c, "Equal", NULL, 2, (const char *[]){r, z}))}));
    const char *rn = CV_OUT(cv_emit(c, "Less", NULL, 2, (const char *[]){r, z}));
    const char *bn = CV_OUT(cv_emit(c, "Less", NULL, 2, (const char *[]){y, z}));
    const char *fix = CV_OUT(cv_emit(c, "And", NULL, 2, (const char *[]){nz, CV_OUT(cv_emit(c, "Xor", NULL, 2, (const char *[]){rn, bn}))}));
    const char *rb = CV_OUT(cv_emit(c, "Add", NULL, 2, (const char *[]){r, y}));
    cv_emit(c, "Where", n->outputs[0], 3, (const char *[]){fix, rb, r});
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "floor modulo of floats: fmod, then + divisor where the signs differ");
    return CV_REPLACED;
}

/* ---- ArgMax, ArgMin (12: select_last_index) ---- */

static cv_result argmax12_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!kiln_attr_int(n, "select_last_index", 0)) {
        cv_adrop(n, "select_last_index");
        return CV_DONE;
    }
    /* the first index of the reversed axis, counted from the end */
    const char *x = n->inputs[0];
    int64_t axis = kiln_attr_int(n, "axis", 0);
    int64_t st = -1, en = INT64_MIN, step = -1;
    const char *sl[5] = {x, cv_const_i64(c, 1, &st), cv_const_i64(c, 1, &en), cv_const_i64(c, 1, &axis),
                         cv_const_i64(c, 1, &step)};
    const char *rev = CV_OUT(cv_emit(c, "Slice", NULL, 5, sl));
    kiln_node *am = cv_emit(c, n->op_type, NULL, 1, &rev);
    cv_ai(c, am, "axis", axis);
    cv_ai(c, am, "keepdims", kiln_attr_int(n, "keepdims", 1));
    const char *sh = CV_OUT(cv_emit(c, "Shape", NULL, 1, &x));
    kiln_node *g = cv_emit(c, "Gather", NULL, 2, (const char *[]){sh, cv_scalar_i64(c, axis)});
    cv_ai(c, g, "axis", 0);
    const char *last = CV_OUT(cv_emit(c, "Sub", NULL, 2, (const char *[]){CV_OUT(g), cv_scalar_i64(c, 1)}));
    cv_emit(c, "Sub", n->outputs[0], 2, (const char *[]){last, CV_OUT(am)});
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "select_last_index: the reversed axis's first index, from the end");
    return CV_REPLACED;
}

/* ---- BitShift (28: signed integers) ---- */

static cv_result bitshift28_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    kiln_dtype dt = cv_dtype(c, n->inputs[0]);
    kiln_dtype ut;
    int w;
    switch (dt) {
    case KILN_DTYPE_INT8: ut = KILN_DTYPE_UINT8, w = 8; break;
    case KILN_DTYPE_INT16: ut = KILN_DTYPE_UINT16, w = 16; break;
    case KILN_DTYPE_INT32: ut = KILN_DTYPE_UINT32, w = 32; break;
    case KILN_DTYPE_INT64: ut = KILN_DTYPE_UINT64, w = 64; break;
    default: return CV_DONE;
    }
    bool left = !strcmp(kiln_attr_string(n, "direction", ""), "LEFT");
    const char *x = n->inputs[0];
    /* comparisons and selections in int64 (every runtime has them there) */
    kiln_node *x64n = cv_emit(c, "Cast", NULL, 1, &x), *s64n = cv_emit(c, "Cast", NULL, 1, (const char *[]){n->inputs[1]});
    cv_ai(c, x64n, "to", KILN_DTYPE_INT64);
    cv_ai(c, s64n, "to", KILN_DTYPE_INT64);
    const char *x64 = CV_OUT(x64n), *s64 = CV_OUT(s64n);
    const char *zero = cv_scalar_i64(c, 0);
    /* shifts outside [0, width) give 0 (left) or the sign (right); right
     * shifts by width - 1 give the sign as well */
    const char *lo = E2("Less", s64, zero);
    const char *hi = E1("Not", E2("Less", s64, cv_scalar_i64(c, left ? w : w - 1)));
    const char *bad = E2("Or", lo, hi);
    const char *sc = CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){bad, zero, s64}));
    const char *fill = left ? zero
                            : CV_OUT(cv_emit(c, "Where", NULL, 3,
                                             (const char *[]){E2("Less", x64, zero), cv_scalar_i64(c, -1), zero}));
    const char *y;
    if (left) {
        /* the two's complement bits, shifted as unsigned, read back signed */
        kiln_node *xu = cv_emit(c, "Cast", NULL, 1, &x), *su = cv_emit(c, "Cast", NULL, 1, &sc);
        cv_ai(c, xu, "to", ut);
        cv_ai(c, su, "to", ut);
        kiln_node *sh = cv_emit(c, "BitShift", NULL, 2, (const char *[]){CV_OUT(xu), CV_OUT(su)});
        cv_as(c, sh, "direction", "LEFT");
        const char *shv = CV_OUT(sh);
        kiln_node *back = cv_emit(c, "Cast", NULL, 1, &shv);
        cv_ai(c, back, "to", dt);
        const char *bv = CV_OUT(back);
        kiln_node *b64 = cv_emit(c, "Cast", NULL, 1, &bv);
        cv_ai(c, b64, "to", KILN_DTYPE_INT64);
        y = CV_OUT(b64);
    } else {
        /* floor(x / 2^s): (x - x mod 2^s) / 2^s, 2^s = 1 << s as uint64 */
        kiln_node *su = cv_emit(c, "Cast", NULL, 1, &sc);
        cv_ai(c, su, "to", KILN_DTYPE_UINT64);
        kiln_node *p = cv_emit(c, "BitShift", NULL, 2, (const char *[]){cv_scalar(c, KILN_DTYPE_UINT64, 1), CV_OUT(su)});
        cv_as(c, p, "direction", "LEFT");
        const char *pv = CV_OUT(p);
        kiln_node *pi = cv_emit(c, "Cast", NULL, 1, &pv);
        cv_ai(c, pi, "to", KILN_DTYPE_INT64);
        const char *pw = CV_OUT(pi);
        y = E2("Div", E2("Sub", x64, E2("Mod", x64, pw)), pw);
    }
    const char *res = CV_OUT(cv_emit(c, "Where", NULL, 3, (const char *[]){bad, fill, y}));
    kiln_node *fin = cv_emit(c, "Cast", n->outputs[0], 1, &res);
    cv_ai(c, fin, "to", dt);
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "signed shift through unsigned bits (left) or floor division (right)");
    return CV_REPLACED;
}

/* ---- Max, Min (12: integer types) ---- */

static cv_result maxmin12_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    kiln_dtype dt = cv_dtype(c, n->inputs[0]);
    if (!dt || dt == KILN_DTYPE_FLOAT || dt == KILN_DTYPE_DOUBLE || dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16)
        return CV_DONE;
    /* integers: a chain of Where(Greater) picks, broadcasting as Max does */
    bool mx = !strcmp(n->op_type, "Max");
    const char *y = n->inputs[0];
    for (size_t i = 1; i < n->n_inputs; i++) {
        const char *x = n->inputs[i];
        const char *gt = E2(mx ? "Greater" : "Less", x, y);
        y = CV_OUT(cv_emit(c, "Where", i + 1 == n->n_inputs ? n->outputs[0] : NULL, 3, (const char *[]){gt, x, y}));
    }
    if (n->n_inputs == 1)
        cv_emit(c, "Identity", n->outputs[0], 1, &y);
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "%s of %s values: Where over comparisons", n->op_type, kiln_dtype_name(dt));
    return CV_REPLACED;
}

/* ---- SpaceToDepth (28: mode CRD) ---- */

static cv_result spacetodepth28_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    const char *mode = kiln_attr_string(n, "mode", "DCR");
    if (strcmp(mode, "CRD") != 0) {
        cv_adrop(n, "mode");
        return CV_DONE;
    }
    /* [N, C, H/b, b, W/b, b] -> [N, C, b, b, H/b, W/b] -> [N, C*b*b, H/b, W/b] */
    const char *x = n->inputs[0];
    int64_t bs = kiln_attr_int(n, "blocksize", 0), dims[4];
    for (int i = 0; i < 4; i++)
        dims[i] = cv_dim(c, x, i);
    if (bs <= 0 || cv_rank(c, x) != 4 || dims[1] < 0 || dims[2] < 0 || dims[3] < 0)
        return cv_refuse(c, "mode 'CRD' needs the input's shape");
    int64_t s6[6] = {0, dims[1], dims[2] / bs, bs, dims[3] / bs, bs}, perm[6] = {0, 1, 3, 5, 2, 4};
    int64_t s4[4] = {0, dims[1] * bs * bs, dims[2] / bs, dims[3] / bs};
    const char *r6 = CV_OUT(cv_emit(c, "Reshape", NULL, 2, (const char *[]){x, cv_const_i64(c, 6, s6)}));
    kiln_node *t = cv_emit(c, "Transpose", NULL, 1, &r6);
    cv_aints(c, t, "perm", 6, perm);
    cv_emit(c, "Reshape", n->outputs[0], 2, (const char *[]){CV_OUT(t), cv_const_i64(c, 4, s4)});
    if (c->st)
        return CV_ERROR;
    cv_note(c, n, a->since, b->since, "mode 'CRD' as Reshape, Transpose, Reshape");
    return CV_REPLACED;
}

/* ---- BatchNormalization (14: training_mode) ---- */

static cv_result batchnorm14_down(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b) {
    if (!kiln_attr_int(n, "training_mode", 0)) {
        cv_adrop(n, "training_mode");
        return CV_DONE;
    }
    /* batch statistics over every axis but the channels, running statistics updated */
    const char *x = n->inputs[0];
    int r = cv_rank(c, x);
    kiln_dtype dt = cv_dtype(c, x);
    if (r < 2 || r > 16 || !dt || cv_dtype(c, n->inputs[3]) != dt)
        return cv_refuse(c, "training_mode = 1 with an unknown rank or mixed element types");
    int64_t axes[16], tail[16], na = 0;
    for (int i = 0; i < r; i++)
        if (i != 1)
            axes[na++] = i;
    for (int i = 0; i < r - 2; i++)
        tail[i] = 1 + i;
    float eps = kiln_attr_float(n, "epsilon", 1e-5f), mom = kiln_attr_float(n, "momentum", 0.9f);
    kiln_node *mk = cv_emit(c, "ReduceMean", NULL, 1, &x);
    cv_aints(c, mk, "axes", (size_t)na, axes);
    cv_ai(c, mk, "keepdims", 1);
    const char *d = E2("Sub", x, CV_OUT(mk)), *dd = E2("Mul", d, d);
    kiln_node *vk = cv_emit(c, "ReduceMean", NULL, 1, &dd);
    cv_aints(c, vk, "axes", (size_t)na, axes);
    cv_ai(c, vk, "keepdims", 1);
    const char *fl[2] = {CV_OUT(mk), CV_OUT(vk)}, *flat[2];
    int64_t m1 = -1;
    for (int k = 0; k < 2; k++)
        flat[k] = CV_OUT(cv_emit(c, "Reshape", NULL, 2, (const char *[]){fl[k], cv_const_i64(c, 1, &m1)}));
    const char *sc = n->inputs[1], *bi = n->inputs[2];
    if (r > 2) {
        const char *ta = cv_const_i64(c, (size_t)(r - 2), tail);
        sc = CV_OUT(cv_emit(c, "Unsqueeze", NULL, 2, (const char *[]){sc, ta}));
        bi = CV_OUT(cv_emit(c, "Unsqueeze", NULL, 2, (const char *[]){bi, ta}));
    }
    const char *num = E2("Mul", sc, d), *den = E1("Sqrt", E2("Add", CV_OUT(vk), cv_scalar(c, dt, eps)));
    cv_emit(c, "Add", n->outputs[0], 2, (const char *[]){E2("Div", num, den), bi});
    for (int k = 0; k < 2; k++) {
        if (!out_used(n, 1 + k))
            continue;
        const char *run = E2("Mul", n->inputs[3 + k], cv_scalar(c, dt, mom));
        const char *cur = E2("Mul", flat[k], cv_scalar(c, dt, 1 - (double)mom));
        cv_emit(c, "Add", n->outputs[1 + k], 2, (const char *[]){run, cur});
    }
    if (c->st)
        return CV_ERROR;
    /* the new nodes are in opset-13 form */
    c->emit_opset = 13;
    for (size_t i = 0; i < c->n_emit; i++)
        c->emit[i]->opset = 13;
    cv_note(c, n, a->since, b->since, "training_mode = 1: batch statistics by ReduceMean, running ones updated");
    return CV_REPLACED;
}

static const cv_adapter adapters[] = {
    {"ArgMax", 12, argmax12_down, NULL},
    {"ArgMin", 12, argmax12_down, NULL},
    {"Attention", 24, attention24_down, NULL},
    {"BatchNormalization", 14, batchnorm14_down, NULL},
    {"BitShift", 28, bitshift28_down, NULL},
    {"Cast", 19, cast19_down, NULL},
    {"Cast", 24, cast24_down, NULL},
    {"CastLike", 19, cast19_down, NULL},
    {"CastLike", 24, cast24_down, NULL},
    {"Clip", 11, clip11_down, clip11_up},
    {"Constant", 12, constant12_down, NULL},
    {"DFT", 20, dft20_down, dft20_up},
    {"Dropout", 12, dropout12_down, dropout12_up},
    {"GRU", 14, rnn14_down, NULL},
    {"GridSample", 20, gridsample20_down, gridsample20_up},
    {"Hardmax", 13, softmax13_down, softmax13_up},
    {"LSTM", 14, rnn14_down, NULL},
    {"LogSoftmax", 13, softmax13_down, softmax13_up},
    {"Max", 12, maxmin12_down, NULL},
    {"Min", 12, maxmin12_down, NULL},
    {"Mod", 28, mod28_down, NULL},
    {"Pad", 11, pad11_down, pad11_up},
    {"Pad", 18, pad18_down, NULL},
    {"Pad", 19, pad19_down, NULL},
    {"RNN", 14, rnn14_down, NULL},
    {"ReduceL1", 18, reduce_down, axes_up},
    {"ReduceL2", 18, reduce_down, axes_up},
    {"ReduceLogSum", 18, reduce_down, axes_up},
    {"ReduceLogSumExp", 18, reduce_down, axes_up},
    {"ReduceMax", 18, reduce_down, axes_up},
    {"ReduceMean", 18, reduce_down, axes_up},
    {"ReduceMin", 18, reduce_down, axes_up},
    {"ReduceProd", 18, reduce_down, axes_up},
    {"ReduceSum", 13, reduce_down, axes_up},
    {"ReduceSumSquare", 18, reduce_down, axes_up},
    {"Reshape", 14, reshape14_down, NULL},
    {"Resize", 11, resize11_down, resize11_up},
    {"Resize", 13, resize13_down, NULL},
    {"Resize", 18, resize18_down, NULL},
    {"Resize", 19, resize19_down, NULL},
    {"RoiAlign", 16, roialign16_down, roialign16_up},
    {"ScatterElements", 18, scatter18_down, NULL},
    {"ScatterND", 18, scatter18_down, NULL},
    {"Shape", 15, shape15_down, NULL},
    {"Softmax", 13, softmax13_down, softmax13_up},
    {"SpaceToDepth", 28, spacetodepth28_down, NULL},
    {"Split", 13, split13_down, split13_up},
    {"Split", 18, split18_down, split18_up},
    {"Squeeze", 13, axes_down, axes_up},
    {"TopK", 10, topk10_down, topk10_up},
    {"Unsqueeze", 13, axes_down, axes_up},
};

const cv_adapter *cv_find_adapter(const char *op, int since) {
    for (size_t i = 0; i < sizeof adapters / sizeof *adapters; i++)
        if (adapters[i].since == since && !strcmp(adapters[i].op, op))
            return &adapters[i];
    return NULL;
}
