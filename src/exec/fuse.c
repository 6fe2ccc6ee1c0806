/* Plan-time fusion: a Conv whose only consumer is a Relu or a Clip (opset
 * 11+, bounds from initializers or Constant nodes) becomes one node that
 * clamps while its output tile is still in cache. The fused node runs in
 * the activation's slot (all of the activation's inputs exist by then),
 * writes the activation's output value, and the intermediate value, which
 * must have no other reader and not be pinned, disappears.
 *
 * The LayerNormalization that exporters before opset 17 spell out,
 *   m = ReduceMean(x, axes); d = Sub(x, m); v = ReduceMean(Pow(d, 2), axes)
 *   y = Div(d, Sqrt(Add(v, eps)))  [then Mul(y, gamma), Add(., beta)]
 * over trailing axes, becomes one planner-made LayerNormalization node
 * (ops/op.h kiln_op_layernorm_fused) in the last node's slot. GELU spelled
 * out with Erf becomes Gelu; MatMul by a constant matrix then Add of a
 * constant row becomes one MatMul that adds the row in its GEMM epilogue. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "passes/edit.h"

static bool is_op(const kiln_plan_node *pn, const char *name) {
    return pn->node && !*pn->node->domain && strcmp(pn->node->op_type, name) == 0;
}

/* The constant tensor behind value v: an initializer or a Constant node's
 * `value` attribute (producer index below `before`). */
static const kiln_tensor *const_of(const kiln_plan *p, int v, size_t before) {
    for (size_t i = 0; i < p->n_consts; i++)
        if (p->const_ids[i] == v)
            return p->const_vals[i];
    for (size_t i = 0; i < before; i++) {
        const kiln_plan_node *pn = &p->nodes[i];
        if (pn->node && pn->node->n_outputs == 1 && pn->out_ids[0] == v)
            return is_op(pn, "Constant") && pn->node->n_attrs == 1 ? kiln_attr_tensor(pn->node, "value") : NULL;
    }
    return NULL;
}

static bool bound_of(const kiln_plan *p, const kiln_plan_node *clip, size_t k, size_t before, double *out,
                     kiln_dtype *dt) {
    if (k >= clip->node->n_inputs || clip->in_ids[k] < 0)
        return true; /* omitted: no bound */
    const kiln_tensor *t = const_of(p, clip->in_ids[k], before);
    if (!t || t->numel != 1 || t->rank > 1 || !t->data)
        return false;
    if (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE && t->dtype != KILN_DTYPE_FLOAT16)
        return false;
    if (*dt != KILN_DTYPE_UNDEFINED && *dt != t->dtype)
        return false;
    *dt = t->dtype;
    *out = kiln_tensor_get_f64(t, 0);
    return true;
}

/* ---- LayerNormalization chains ---- */

typedef struct uses {
    int *count; /* per value: readers among the plan's nodes */
    int *user;  /* per value: the (last) reader's index */
} uses;

static bool only_reader(const kiln_plan *p, const uses *u, const bool *pinned, int v, size_t *user) {
    if (v < 0 || pinned[v] || u->count[v] != 1)
        return false;
    *user = (size_t)u->user[v];
    return p->nodes[*user].node != NULL;
}

/* The scalar float value of constant v. */
static bool scalar_of(const kiln_plan *p, int v, size_t before, double *out) {
    const kiln_tensor *t = v >= 0 ? const_of(p, v, before) : NULL;
    if (!t || t->numel != 1 || !t->data ||
        (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE && t->dtype != KILN_DTYPE_FLOAT16))
        return false;
    *out = kiln_tensor_get_f64(t, 0);
    return true;
}

/* A ReduceMean with keepdims 1 over trailing axes given as negative
 * numbers (-k..-1, any order): *k = their count. */
static bool mean_axes(const kiln_plan *p, const kiln_plan_node *r, size_t at, int *k) {
    if (!is_op(r, "ReduceMean") || r->node->n_outputs != 1 || kiln_attr_int(r->node, "keepdims", 1) != 1)
        return false;
    const int64_t *ax;
    size_t n;
    if (r->opset >= 18) {
        if (r->node->n_inputs != 2 || kiln_attr_int(r->node, "noop_with_empty_axes", 0) != 0)
            return false;
        const kiln_tensor *t = const_of(p, r->in_ids[1], at);
        if (!t || t->dtype != KILN_DTYPE_INT64 || t->rank != 1 || !t->data)
            return false;
        ax = t->data;
        n = (size_t)t->numel;
    } else {
        if (r->node->n_inputs != 1 || !(ax = kiln_attr_ints(r->node, "axes", &n)))
            return false;
    }
    if (n == 0 || n > KILN_MAX_RANK)
        return false;
    bool seen[KILN_MAX_RANK + 1] = {false};
    for (size_t i = 0; i < n; i++) {
        if (ax[i] >= 0 || ax[i] < -(int64_t)n || seen[-ax[i]])
            return false;
        seen[-ax[i]] = true;
    }
    *k = (int)n;
    return true;
}

static bool same_axes(const kiln_plan *p, const kiln_plan_node *a, const kiln_plan_node *b, size_t at) {
    int ka, kb;
    return mean_axes(p, a, at, &ka) && mean_axes(p, b, at, &kb) && ka == kb;
}

/* A float constant for Scale / B: at most k dims (it must broadcast within
 * the normalised axes, as the original Mul/Add did). */
static bool param_ok(const kiln_plan *p, int v, size_t before, int k) {
    const kiln_tensor *t = v >= 0 ? const_of(p, v, before) : NULL;
    return t && t->rank <= k && t->data &&
           (t->dtype == KILN_DTYPE_FLOAT || t->dtype == KILN_DTYPE_DOUBLE || t->dtype == KILN_DTYPE_FLOAT16 ||
            t->dtype == KILN_DTYPE_BFLOAT16);
}

/* The binary node `user` reads value v and a constant parameter: which
 * input is the parameter (-1: none). Commutative ops only. */
static int other_input(const kiln_plan_node *n, int v) {
    if (n->node->n_inputs != 2 || n->node->n_outputs != 1)
        return -1;
    if (n->in_ids[0] == v && n->in_ids[1] != v)
        return n->in_ids[1];
    if (n->in_ids[1] == v && n->in_ids[0] != v)
        return n->in_ids[0];
    return -1;
}

static void drop_node(kiln_plan_node *pn) {
    free(pn->in_ids);
    free(pn->out_ids);
    free(pn->free_ids);
    memset(pn, 0, sizeof *pn);
}

/* Makes the planner's node op_type(ins) -> out in slot `at` (whose node is
 * replaced) with descriptor d at opset; *made is the new node. */
static kiln_status make_node(kiln_plan *p, size_t at, const char *op_type, const kiln_op_desc *d, int64_t opset,
                             size_t n_in, const int *ins, int out, kiln_node **made) {
    kiln_plan_node *tail = &p->nodes[at];
    const char *in_names[4];
    for (size_t k = 0; k < n_in; k++)
        in_names[k] = ins[k] >= 0 ? p->value_names[ins[k]] : "";
    const char *outs[1] = {p->value_names[out]};
    kiln_node *n;
    KILN_TRY(kiln_edit_node_new(op_type, tail->node->name, n_in, in_names, 1, outs, &n));
    kiln_node **list = kiln_realloc(p->made, (p->n_made + 1) * sizeof *list);
    if (!list) {
        kiln_node_destroy(n);
        return KILN_ERR_NOMEM;
    }
    p->made = list;
    p->made[p->n_made++] = n;
    n->opset = opset;
    if (tail->node->origin && !(n->origin = kiln_strdup(tail->node->origin)))
        return KILN_ERR_NOMEM;
    int *in_ids = kiln_calloc(n_in + 1, sizeof(int)), *out_ids = kiln_calloc(2, sizeof(int));
    if (!in_ids || !out_ids) {
        free(in_ids);
        free(out_ids);
        return KILN_ERR_NOMEM;
    }
    for (size_t k = 0; k < n_in; k++)
        in_ids[k] = ins[k];
    out_ids[0] = out;
    drop_node(tail);
    tail->node = n;
    tail->op = d;
    tail->opset = opset;
    tail->in_ids = in_ids;
    tail->out_ids = out_ids;
    *made = n;
    return KILN_OK;
}

/* ---- GELU spelled out: x * 0.5 * (1 + Erf(x / sqrt(2))), as exporters
 * write it ((x * a) * 0.5 or x * (0.5 * a), a = 1 + Erf) or as kiln freeze
 * leaves it (x * (Erf * 0.5 + 0.5)) ---- */

static bool near(double v, double want) { return fabs(v - want) <= 1e-6 * fabs(want); }

/* Whether node n is Mul(v, c) or Mul(c, v) with constant scalar c == want. */
static bool mul_by(const kiln_plan *p, const kiln_plan_node *n, size_t at, int v, double want) {
    int o = is_op(n, "Mul") ? other_input(n, v) : -1;
    double c;
    return o >= 0 && scalar_of(p, o, at, &c) && near(c, want);
}

static kiln_status fuse_gelu(kiln_plan *p, const bool *pinned, const uses *u, size_t ie) {
    kiln_plan_node *erf = &p->nodes[ie];
    if (erf->node->n_inputs != 1 || erf->node->n_outputs != 1)
        return KILN_OK;
    int t = erf->in_ids[0];
    if (t < 0 || pinned[t] || u->count[t] != 1)
        return KILN_OK;
    /* t = x / sqrt(2) or x * (1 / sqrt(2)), made by a node before ie */
    long iu = -1;
    for (size_t j = 0; j < ie; j++)
        if (p->nodes[j].node && p->nodes[j].node->n_outputs == 1 && p->nodes[j].out_ids[0] == t)
            iu = (long)j;
    if (iu < 0)
        return KILN_OK;
    kiln_plan_node *sc = &p->nodes[iu];
    int x = -1;
    double c;
    if (is_op(sc, "Div") && sc->node->n_inputs == 2 && scalar_of(p, sc->in_ids[1], (size_t)iu, &c) &&
        near(c, sqrt(2.0)))
        x = sc->in_ids[0];
    else if (is_op(sc, "Mul") && sc->node->n_inputs == 2) {
        for (int k = 0; k < 2 && x < 0; k++)
            if (scalar_of(p, sc->in_ids[1 - k], (size_t)iu, &c) && near(c, sqrt(0.5)) &&
                !scalar_of(p, sc->in_ids[k], (size_t)iu, &c))
                x = sc->in_ids[k];
    }
    if (x < 0)
        return KILN_OK;
    size_t ia, i1, i2;
    if (!only_reader(p, u, pinned, erf->out_ids[0], &ia))
        return KILN_OK;
    const kiln_op_desc *d = kiln_op_find("", "Gelu", 20);
    if (!d)
        return KILN_OK;
    kiln_node *n;
    /* 0.5 * (1 + e) folded by kiln freeze into e * 0.5 + 0.5, then x * that */
    if (mul_by(p, &p->nodes[ia], ia, erf->out_ids[0], 0.5)) {
        kiln_plan_node *half = &p->nodes[ia], *add2, *mul;
        if (!only_reader(p, u, pinned, half->out_ids[0], &i1))
            return KILN_OK;
        add2 = &p->nodes[i1];
        int hv = is_op(add2, "Add") ? other_input(add2, half->out_ids[0]) : -1;
        if (hv < 0 || !scalar_of(p, hv, i1, &c) || c != 0.5 || !only_reader(p, u, pinned, add2->out_ids[0], &i2))
            return KILN_OK;
        mul = &p->nodes[i2];
        if (!is_op(mul, "Mul") || other_input(mul, add2->out_ids[0]) != x || mul->out_ids[0] < 0)
            return KILN_OK;
        int y = mul->out_ids[0];
        drop_node(sc);
        drop_node(erf);
        drop_node(half);
        drop_node(add2);
        return make_node(p, i2, "Gelu", d, 20, 1, &x, y, &n);
    }
    kiln_plan_node *add = &p->nodes[ia];
    int one = is_op(add, "Add") ? other_input(add, erf->out_ids[0]) : -1;
    if (one < 0 || !scalar_of(p, one, ia, &c) || c != 1.0 || !only_reader(p, u, pinned, add->out_ids[0], &i1))
        return KILN_OK;
    int a = add->out_ids[0];
    kiln_plan_node *m1 = &p->nodes[i1];
    if (!is_op(m1, "Mul") || m1->node->n_inputs != 2 || !only_reader(p, u, pinned, m1->out_ids[0], &i2))
        return KILN_OK;
    kiln_plan_node *m2 = &p->nodes[i2];
    int mid = m1->out_ids[0];
    bool form_a = other_input(m1, a) == x && mul_by(p, m2, i2, mid, 0.5); /* (x * a) * 0.5 */
    bool form_b = mul_by(p, m1, i1, a, 0.5) && other_input(m2, mid) == x;  /* x * (a * 0.5) */
    if ((!form_a && !form_b) || m2->out_ids[0] < 0)
        return KILN_OK;
    int y = m2->out_ids[0];
    drop_node(sc);
    drop_node(erf);
    drop_node(add);
    drop_node(m1);
    return make_node(p, i2, "Gelu", d, 20, 1, &x, y, &n);
}

static kiln_status fuse_layernorm(kiln_plan *p, const bool *pinned, const uses *u, size_t i) {
    kiln_plan_node *r1 = &p->nodes[i];
    int k;
    if (!mean_axes(p, r1, i, &k))
        return KILN_OK;
    int x = r1->in_ids[0], m = r1->out_ids[0];
    size_t is, ip, ir2, ia, iq, id, idv;
    if (x < 0 || !only_reader(p, u, pinned, m, &is))
        return KILN_OK;
    kiln_plan_node *sub = &p->nodes[is];
    if (!is_op(sub, "Sub") || sub->node->n_inputs != 2 || sub->in_ids[0] != x || sub->in_ids[1] != m)
        return KILN_OK;
    int d = sub->out_ids[0];
    /* read by the square (once by Pow, twice by Mul(d, d)) and the Div */
    if (d < 0 || pinned[d] || u->count[d] < 2 || u->count[d] > 3)
        return KILN_OK;
    /* d's readers: the square and the Div */
    ip = id = (size_t)-1;
    for (size_t j = is + 1; j < p->n_nodes; j++) {
        kiln_plan_node *n = &p->nodes[j];
        for (size_t q = 0; n->node && q < n->node->n_inputs; q++)
            if (n->in_ids[q] == d) {
                if (is_op(n, "Div"))
                    id = j;
                else
                    ip = j;
                break;
            }
    }
    if (ip == (size_t)-1 || id == (size_t)-1)
        return KILN_OK;
    kiln_plan_node *sq = &p->nodes[ip];
    double two;
    bool is_sq = (is_op(sq, "Pow") && sq->node->n_inputs == 2 && sq->in_ids[0] == d &&
                  scalar_of(p, sq->in_ids[1], ip, &two) && two == 2.0) ||
                 (is_op(sq, "Mul") && sq->node->n_inputs == 2 && sq->in_ids[0] == d && sq->in_ids[1] == d);
    if (!is_sq || u->count[d] != (is_op(sq, "Mul") ? 3 : 2) || !only_reader(p, u, pinned, sq->out_ids[0], &ir2))
        return KILN_OK;
    kiln_plan_node *r2 = &p->nodes[ir2];
    if (!same_axes(p, r1, r2, ir2) || r2->in_ids[0] != sq->out_ids[0] || !only_reader(p, u, pinned, r2->out_ids[0], &ia))
        return KILN_OK;
    kiln_plan_node *add = &p->nodes[ia];
    double eps;
    int ev = is_op(add, "Add") ? other_input(add, r2->out_ids[0]) : -1;
    if (ev < 0 || !scalar_of(p, ev, ia, &eps) || !(eps >= 0.0) || !only_reader(p, u, pinned, add->out_ids[0], &iq))
        return KILN_OK;
    kiln_plan_node *sqrt_n = &p->nodes[iq];
    if (!is_op(sqrt_n, "Sqrt") || sqrt_n->node->n_inputs != 1 || sqrt_n->in_ids[0] != add->out_ids[0] ||
        !only_reader(p, u, pinned, sqrt_n->out_ids[0], &idv) || idv != id)
        return KILN_OK;
    kiln_plan_node *div = &p->nodes[id];
    if (!is_op(div, "Div") || div->node->n_inputs != 2 || div->in_ids[0] != d || div->in_ids[1] != sqrt_n->out_ids[0] ||
        div->out_ids[0] < 0)
        return KILN_OK;
    /* optional affine tail */
    size_t last = id, im = (size_t)-1, ib = (size_t)-1;
    int y = div->out_ids[0], gamma = -1, beta = -1;
    size_t nx;
    if (only_reader(p, u, pinned, y, &nx) && is_op(&p->nodes[nx], "Mul")) {
        int g = other_input(&p->nodes[nx], y);
        if (g >= 0 && param_ok(p, g, nx, k) && p->nodes[nx].out_ids[0] >= 0) {
            gamma = g;
            im = last = nx;
            y = p->nodes[nx].out_ids[0];
            if (only_reader(p, u, pinned, y, &nx) && is_op(&p->nodes[nx], "Add")) {
                int b = other_input(&p->nodes[nx], y);
                if (b >= 0 && param_ok(p, b, nx, k) && p->nodes[nx].out_ids[0] >= 0) {
                    beta = b;
                    ib = last = nx;
                    y = p->nodes[nx].out_ids[0];
                }
            }
        }
    }
    /* the node, named and placed as the chain's last */
    size_t chain[9] = {i, is, ip, ir2, ia, iq, id, im, ib};
    for (int c = 0; c < 9; c++)
        if (chain[c] != (size_t)-1 && chain[c] != last)
            drop_node(&p->nodes[chain[c]]);
    int ins[3] = {x, gamma, beta};
    kiln_node *n;
    KILN_TRY(make_node(p, last, "LayerNormalization", &kiln_op_layernorm_fused, 17, 3, ins, y, &n));
    KILN_TRY(kiln_edit_attr_int(n, "axis", -k));
    return kiln_edit_attr_float(n, "epsilon", (float)eps);
}

/* ---- MatMul(A, W) + b, W a constant float32 matrix, b a constant row ---- */

static kiln_status fuse_matmul_bias(kiln_plan *p, const bool *pinned, const uses *u, size_t im) {
    kiln_plan_node *mm = &p->nodes[im];
    if (mm->node->n_inputs != 2 || mm->node->n_outputs != 1 || mm->in_ids[0] < 0)
        return KILN_OK;
    const kiln_tensor *w = const_of(p, mm->in_ids[1], im);
    if (!w || w->dtype != KILN_DTYPE_FLOAT || w->rank != 2 || !w->data)
        return KILN_OK;
    size_t ia;
    if (!only_reader(p, u, pinned, mm->out_ids[0], &ia))
        return KILN_OK;
    kiln_plan_node *add = &p->nodes[ia];
    int bv = is_op(add, "Add") ? other_input(add, mm->out_ids[0]) : -1;
    const kiln_tensor *b = bv >= 0 ? const_of(p, bv, ia) : NULL;
    /* a 1-D bias of N values: the sum keeps the product's shape */
    if (!b || b->dtype != KILN_DTYPE_FLOAT || b->rank != 1 || b->numel != w->dims[1] || !b->data ||
        add->out_ids[0] < 0)
        return KILN_OK;
    int ins[3] = {mm->in_ids[0], mm->in_ids[1], bv}, y = add->out_ids[0];
    drop_node(mm);
    kiln_node *n;
    return make_node(p, ia, "MatMul", &kiln_op_matmul_bias, 13, 3, ins, y, &n);
}

kiln_status kiln_plan_fuse(kiln_plan *p, const bool *pinned) {
    uses u = {kiln_calloc(p->n_values + 1, sizeof(int)), kiln_calloc(p->n_values + 1, sizeof(int))};
    if (!u.count || !u.user) {
        free(u.count);
        free(u.user);
        return KILN_ERR_NOMEM;
    }
    for (size_t j = 0; j < p->n_nodes; j++)
        for (size_t q = 0; p->nodes[j].node && q < p->nodes[j].node->n_inputs; q++)
            if (p->nodes[j].in_ids[q] >= 0) {
                u.count[p->nodes[j].in_ids[q]]++;
                u.user[p->nodes[j].in_ids[q]] = (int)j;
            }
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < p->n_nodes && st == KILN_OK; i++)
        if (is_op(&p->nodes[i], "ReduceMean"))
            st = fuse_layernorm(p, pinned, &u, i);
        else if (is_op(&p->nodes[i], "Erf"))
            st = fuse_gelu(p, pinned, &u, i);
        else if (is_op(&p->nodes[i], "MatMul"))
            st = fuse_matmul_bias(p, pinned, &u, i);
    free(u.count);
    free(u.user);
    if (st != KILN_OK)
        return st;
    for (size_t i = 0; i < p->n_nodes; i++) {
        kiln_plan_node *conv = &p->nodes[i];
        if (!is_op(conv, "Conv") || conv->node->n_outputs != 1 || conv->act.on)
            continue;
        int v = conv->out_ids[0];
        if (v < 0 || pinned[v])
            continue;
        size_t uses = 0, user = 0;
        for (size_t j = 0; j < p->n_nodes; j++)
            for (size_t k = 0; p->nodes[j].node && k < p->nodes[j].node->n_inputs; k++)
                if (p->nodes[j].in_ids[k] == v) {
                    uses++;
                    user = j;
                }
        if (uses != 1 || user <= i)
            continue;
        kiln_plan_node *act = &p->nodes[user];
        if (act->node->n_outputs != 1 || act->out_ids[0] < 0 || act->in_ids[0] != v)
            continue;
        kiln_op_act a = {.on = true, .lo = -INFINITY, .hi = INFINITY, .dtype = KILN_DTYPE_UNDEFINED};
        if (is_op(act, "Relu") && act->node->n_inputs == 1)
            a.lo = 0.0;
        else if (is_op(act, "Clip") && act->opset >= 11 && act->node->n_inputs <= 3) {
            if (!bound_of(p, act, 1, user, &a.lo, &a.dtype) || !bound_of(p, act, 2, user, &a.hi, &a.dtype))
                continue;
            if (isnan(a.lo) || isnan(a.hi))
                continue;
        } else
            continue;
        /* the fused node takes the activation's slot and output value */
        kiln_plan_node fused = *conv;
        fused.out_ids[0] = act->out_ids[0];
        fused.act = a;
        free(act->in_ids);
        free(act->out_ids);
        free(act->free_ids);
        *act = fused;
        memset(conv, 0, sizeof *conv); /* node == NULL: dropped by the caller */
    }
    return KILN_OK;
}
