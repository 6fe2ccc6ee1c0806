/* Slice, Expand, Tile, Pad and CenterCropPad: outputs that are strided or repeated views of
 * the input, shapes taken from attributes or tensor values (validated). Any
 * dtype (bytes are moved; strings get their own copies). */
#include <stdlib.h>
#include <string.h>

#include "kernels/broadcast.h"
#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Slice: starts/ends/axes attributes in opset 1-9; from opset 10 they are
 * inputs, with optional steps. Starts and ends are clamped per the spec. */
static kiln_status slice_run(kiln_op_ctx *c, bool inputs) {
    KILN_TRY(kiln_op_need_inputs(c, inputs ? 3 : 1));
    const kiln_tensor *x = c->in[0];
    int r = x->rank;
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    size_t ns, ne, na, nst;
    bool have_axes = false, have_steps = false;
    if (inputs) {
        KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'starts'", starts, KILN_MAX_RANK, &ns));
        KILN_TRY(kiln_tensor_read_ints(c->in[2], "input 'ends'", ends, KILN_MAX_RANK, &ne));
        if (kiln_op_in(c, 3)) {
            KILN_TRY(kiln_tensor_read_ints(c->in[3], "input 'axes'", axes, KILN_MAX_RANK, &na));
            have_axes = true;
        }
        if (kiln_op_in(c, 4)) {
            KILN_TRY(kiln_tensor_read_ints(c->in[4], "input 'steps'", steps, KILN_MAX_RANK, &nst));
            have_steps = true;
        }
    } else {
        const int64_t *s = kiln_attr_ints(c->node, "starts", &ns), *e = kiln_attr_ints(c->node, "ends", &ne);
        const int64_t *a = kiln_attr_ints(c->node, "axes", &na);
        if (!s || !e)
            return kiln_fail(KILN_ERR_INVALID, "attributes 'starts' and 'ends' are required");
        if (ns > KILN_MAX_RANK || ne > KILN_MAX_RANK || (a && na > KILN_MAX_RANK))
            return kiln_fail(KILN_ERR_INVALID, "too many values in 'starts'/'ends'/'axes'");
        memcpy(starts, s, ns * sizeof *s);
        memcpy(ends, e, ne * sizeof *e);
        if (a) {
            memcpy(axes, a, na * sizeof *a);
            have_axes = true;
        }
    }
    if (ns != ne)
        return kiln_fail(KILN_ERR_INVALID, "starts has %zu values but ends has %zu", ns, ne);
    if (have_axes && na != ns)
        return kiln_fail(KILN_ERR_INVALID, "axes has %zu values but starts has %zu", na, ns);
    if (have_steps && nst != ns)
        return kiln_fail(KILN_ERR_INVALID, "steps has %zu values but starts has %zu", nst, ns);
    if (!have_axes && ns > (size_t)r)
        return kiln_fail(KILN_ERR_INVALID, "starts has %zu values but the input has rank %d", ns, r);
    int64_t dims[KILN_MAX_RANK], str[KILN_MAX_RANK], xs[KILN_MAX_RANK], off = 0;
    kiln_dims_strides(r, x->dims, xs);
    bool seen[KILN_MAX_RANK] = {false};
    for (int a = 0; a < r; a++) {
        dims[a] = x->dims[a];
        str[a] = xs[a];
    }
    for (size_t i = 0; i < ns; i++) {
        int a = (int)i;
        if (have_axes)
            KILN_TRY(kiln_op_axis(c, axes[i], r, &a));
        if (a >= r)
            return kiln_fail(KILN_ERR_INVALID, "axis %d is out of range for rank %d", a, r);
        if (seen[a])
            return kiln_fail(KILN_ERR_INVALID, "axis %d is sliced twice", a);
        seen[a] = true;
        int64_t st = have_steps ? steps[i] : 1, s, cnt;
        if (st == 0)
            return kiln_fail(KILN_ERR_INVALID, "step for axis %d is 0", a);
        kiln_slice_axis(x->dims[a], starts[i], ends[i], st, &s, &cnt);
        if (st == INT64_MIN)
            st = INT64_MIN + 1;
        dims[a] = cnt;
        if (cnt > 0) {
            off += s * xs[a];
            /* |st| < d whenever cnt > 1, so the product cannot overflow */
            str[a] = cnt > 1 ? xs[a] * st : xs[a];
        }
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    size_t es = kiln_elem_size(x->dtype);
    kiln_strided_copy(kiln_op_pool(c), y->data, (const char *)x->data + (size_t)off * es, es, r, dims, str);
    return kiln_strings_own(y);
}

static kiln_status slice_v1(kiln_op_ctx *c) { return slice_run(c, false); }
static kiln_status slice_v10(kiln_op_ctx *c) { return slice_run(c, true); }

/* Expand (opset 8+): bidirectional broadcast of the input to `shape`. */
static kiln_status expand_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_RANK];
    size_t n;
    KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'shape'", shape, KILN_MAX_RANK, &n));
    for (size_t i = 0; i < n; i++)
        if (shape[i] < 0)
            return kiln_fail(KILN_ERR_INVALID, "input 'shape' has negative value %lld at %zu", (long long)shape[i],
                             i);
    int ranks[2] = {x->rank, (int)n}, r;
    const int64_t *dp[2] = {x->dims, shape};
    int64_t dims[KILN_MAX_RANK];
    KILN_TRY(kiln_bcast_shape(2, ranks, dp, &r, dims));
    KILN_TRY(kiln_check_shape("output", r, dims));
    int64_t xs[KILN_MAX_RANK], str[KILN_MAX_RANK];
    kiln_dims_strides(x->rank, x->dims, xs);
    for (int a = 0; a < r; a++) {
        int k = a - (r - x->rank);
        str[a] = k < 0 || x->dims[k] == 1 ? 0 : xs[k];
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    kiln_strided_copy(kiln_op_pool(c), y->data, x->data, kiln_elem_size(x->dtype), r, dims, str);
    return kiln_strings_own(y);
}

/* Tile (opset 6+: repeats is an input): a view of rank 2r, [r0,d0,r1,d1..]
 * with stride 0 on the repeat axes. */
static kiln_status tile_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0];
    int64_t rep[KILN_MAX_RANK];
    size_t n;
    KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'repeats'", rep, KILN_MAX_RANK, &n));
    if ((int)n != x->rank)
        return kiln_fail(KILN_ERR_INVALID, "input 'repeats' has %zu values but the input has rank %d", n, x->rank);
    int64_t dims[KILN_MAX_RANK], xs[KILN_MAX_RANK], vd[2 * KILN_MAX_RANK], vs[2 * KILN_MAX_RANK];
    kiln_dims_strides(x->rank, x->dims, xs);
    for (int a = 0; a < x->rank; a++) {
        if (rep[a] < 0)
            return kiln_fail(KILN_ERR_INVALID, "input 'repeats' has negative value %lld at %d", (long long)rep[a], a);
        if (kiln_mul_overflow_i64(x->dims[a], rep[a], &dims[a]))
            return kiln_fail(KILN_ERR_LIMIT, "output dimension %d overflows", a);
        vd[2 * a] = rep[a];
        vs[2 * a] = 0;
        vd[2 * a + 1] = x->dims[a];
        vs[2 * a + 1] = xs[a];
    }
    KILN_TRY(kiln_check_shape("output", x->rank, dims));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    /* the strided copy handles at most KILN_MAX_RANK axes: drop unit ones */
    int vr = 0;
    for (int a = 0; a < 2 * x->rank; a++)
        if (vd[a] != 1) {
            vd[vr] = vd[a];
            vs[vr] = vs[a];
            vr++;
        }
    if (vr > KILN_MAX_RANK) {
        /* more than KILN_MAX_RANK axes left (rank > 8 with most axes
         * repeated): rare, walk element by element */
        size_t es = kiln_elem_size(x->dtype);
        int64_t idx[KILN_MAX_RANK] = {0};
        for (int64_t i = 0; i < y->numel; i++) {
            int64_t o = 0;
            for (int a = 0; a < x->rank; a++)
                o += (idx[a] % x->dims[a]) * xs[a];
            memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)o * es, es);
            for (int a = x->rank - 1; a >= 0; a--) {
                if (++idx[a] < dims[a])
                    break;
                idx[a] = 0;
            }
        }
    } else {
        kiln_strided_copy(kiln_op_pool(c), y->data, x->data, kiln_elem_size(x->dtype), vr, vd, vs);
    }
    return kiln_strings_own(y);
}

/* Pad: pads/value/mode attributes in opset 2-10 ('paddings' in opset 1); from
 * opset 11 pads and constant_value are inputs; opset 18 adds the optional
 * axes input (pads then hold 2 * len(axes) values, other axes are not
 * padded) and opset 19 the wrap mode. Negative pads crop. Modes: constant,
 * reflect (mirror without repeating the edge), edge, wrap (cyclic). The
 * non-constant modes read from what is left of the axis after cropping. */
typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* Source index in [lo, hi) for coordinate i (relative to the input), or -1
 * for the fill value. */
static int64_t pad_src(int64_t i, int64_t lo, int64_t hi, pad_mode m) {
    if (i >= lo && i < hi)
        return i;
    if (m == PAD_CONSTANT)
        return -1;
    if (m == PAD_EDGE)
        return i < lo ? lo : hi - 1;
    int64_t d = hi - lo, k;
    if (m == PAD_WRAP) {
        k = (i - lo) % d;
        return lo + (k < 0 ? k + d : k);
    }
    if (d == 1)
        return lo;
    int64_t p = 2 * (d - 1);
    k = (i - lo) % p;
    if (k < 0)
        k += p;
    return lo + (k < d ? k : p - k);
}

/* The pads of every axis (begin r values, then end) from the given pads and
 * axes (NULL: all axes in order). Shared by exec and infer. */
static kiln_status pad_expand(int r, const int64_t *p, size_t np, const int64_t *axes, size_t na, int64_t *pads) {
    for (int a = 0; a < 2 * r; a++)
        pads[a] = 0;
    if (!axes) {
        if ((int)np != 2 * r)
            return kiln_fail(KILN_ERR_INVALID, "pads has %zu values but the input has rank %d (needs %d)", np, r,
                             2 * r);
        memcpy(pads, p, np * sizeof *p);
        return KILN_OK;
    }
    if (np != 2 * na)
        return kiln_fail(KILN_ERR_INVALID, "pads has %zu values for %zu axes (needs %zu)", np, na, 2 * na);
    bool seen[KILN_MAX_RANK] = {false};
    for (size_t i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r)
            return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)axes[i], r);
        if (seen[a])
            return kiln_fail(KILN_ERR_INVALID, "axis %lld is repeated", (long long)axes[i]);
        seen[a] = true;
        pads[a] = p[i];
        pads[a + r] = p[na + i];
    }
    return KILN_OK;
}

static kiln_status pad_apply(kiln_op_ctx *c, const kiln_tensor *x, const int64_t *pads, pad_mode mode, const char *ms,
                             const char *fill);

static kiln_status pad_run(kiln_op_ctx *c, int version) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int r = x->rank;
    int64_t p[2 * KILN_MAX_RANK], pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    size_t np, na = 0;
    bool have_axes = false;
    size_t es = kiln_elem_size(x->dtype);
    char fill[sizeof(kiln_string) > 16 ? sizeof(kiln_string) : 16] = {0};
    const kiln_tensor *cv = NULL;
    if (version >= 11) {
        KILN_TRY(kiln_op_need_inputs(c, 2));
        KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'pads'", p, 2 * KILN_MAX_RANK, &np));
        cv = kiln_op_in(c, 2);
        if (cv) {
            if (cv->dtype != x->dtype)
                return kiln_fail(KILN_ERR_INVALID, "input 'constant_value' has element type %s, the data has %s",
                                 kiln_dtype_name(cv->dtype), kiln_dtype_name(x->dtype));
            if (cv->numel > 1)
                return kiln_fail(KILN_ERR_INVALID, "input 'constant_value' must be a scalar, it has %lld values",
                                 (long long)cv->numel);
            if (cv->numel == 1)
                memcpy(fill, cv->data, es);
        }
        if (version >= 18 && kiln_op_in(c, 3)) {
            KILN_TRY(kiln_tensor_read_ints(c->in[3], "input 'axes'", axes, KILN_MAX_RANK, &na));
            have_axes = true;
        }
    } else {
        const int64_t *pa = kiln_attr_ints(c->node, "pads", &np);
        if (!pa)
            pa = kiln_attr_ints(c->node, "paddings", &np);
        if (!pa)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'pads' is required");
        if (np > 2 * KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'pads' has too many values (%zu)", np);
        memcpy(p, pa, np * sizeof *pa);
        if (x->dtype != KILN_DTYPE_STRING)
            KILN_TRY(kiln_scalar_from_f64(x->dtype, kiln_attr_float(c->node, "value", 0.0f), fill));
    }
    KILN_TRY(pad_expand(r, p, np, have_axes ? axes : NULL, na, pads));
    const char *ms = kiln_attr_string(c->node, "mode", "constant");
    pad_mode mode;
    if (!strcmp(ms, "constant"))
        mode = PAD_CONSTANT;
    else if (!strcmp(ms, "reflect"))
        mode = PAD_REFLECT;
    else if (!strcmp(ms, "edge"))
        mode = PAD_EDGE;
    else if (!strcmp(ms, "wrap") && version >= 19)
        mode = PAD_WRAP;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'mode' must be constant, reflect, edge%s, got '%s'",
                         version >= 19 ? " or wrap" : " (wrap from opset 19)", ms);
    return pad_apply(c, x, pads, mode, ms, fill);
}

/* Writes output 0: x padded (or cropped, negative pads) by pads (begin
 * values for every axis, then end values) in `mode` with `fill`. */
static kiln_status pad_apply(kiln_op_ctx *c, const kiln_tensor *x, const int64_t *pads, pad_mode mode, const char *ms,
                             const char *fill) {
    int r = x->rank;
    size_t es = kiln_elem_size(x->dtype);
    int64_t dims[KILN_MAX_RANK], lo[KILN_MAX_RANK], hi[KILN_MAX_RANK];
    for (int a = 0; a < r; a++) {
        int64_t b = pads[a], e = pads[a + r];
        if (b < -x->dims[a] || e < -x->dims[a] || b > KILN_TENSOR_MAX_NUMEL || e > KILN_TENSOR_MAX_NUMEL)
            return kiln_fail(KILN_ERR_INVALID, "pads %lld,%lld are invalid for axis %d of length %lld", (long long)b,
                             (long long)e, a, (long long)x->dims[a]);
        dims[a] = x->dims[a] + b + e;
        if (dims[a] < 0)
            return kiln_fail(KILN_ERR_INVALID, "pads %lld,%lld crop axis %d of length %lld below zero", (long long)b,
                             (long long)e, a, (long long)x->dims[a]);
        lo[a] = b < 0 ? -b : 0;
        hi[a] = x->dims[a] - (e < 0 ? -e : 0);
        if (mode != PAD_CONSTANT && hi[a] <= lo[a] && (b > 0 || e > 0) && dims[a] > 0)
            return kiln_fail(KILN_ERR_INVALID, "mode '%s' cannot pad axis %d, which has no elements left", ms, a);
    }
    KILN_TRY(kiln_check_shape("output", r, dims));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return kiln_strings_own(y);
    }
    /* per axis: output index -> input index (-1: fill) */
    int64_t total = 0;
    for (int a = 0; a < r; a++)
        total += dims[a];
    int64_t *map = kiln_malloc((size_t)total * sizeof *map);
    if (!map)
        return KILN_ERR_NOMEM;
    int64_t *maps[KILN_MAX_RANK], xs[KILN_MAX_RANK];
    kiln_dims_strides(r, x->dims, xs);
    int64_t o = 0;
    for (int a = 0; a < r; a++) {
        maps[a] = map + o;
        for (int64_t i = 0; i < dims[a]; i++)
            maps[a][i] = pad_src(i - pads[a], lo[a], hi[a], mode);
        o += dims[a];
    }
    int64_t inner = dims[r - 1], rows = y->numel / inner;
    const int64_t *lm = maps[r - 1];
    int64_t idx[KILN_MAX_RANK] = {0};
    char *out = y->data;
    const char *src = x->data;
    for (int64_t row = 0; row < rows; row++) {
        char *d = out + (size_t)(row * inner) * es;
        int64_t base = 0;
        bool fill_row = false;
        for (int a = 0; a < r - 1; a++) {
            int64_t s = maps[a][idx[a]];
            if (s < 0)
                fill_row = true;
            base += s * xs[a];
        }
        if (fill_row) {
            kiln_fill_elems(d, fill, es, inner);
        } else {
            for (int64_t k = 0; k < inner;) {
                int64_t k0 = k;
                if (lm[k] < 0) {
                    while (k < inner && lm[k] < 0)
                        k++;
                    kiln_fill_elems(d + (size_t)k0 * es, fill, es, k - k0);
                } else {
                    k++;
                    while (k < inner && lm[k] == lm[k - 1] + 1)
                        k++;
                    memcpy(d + (size_t)k0 * es, src + (size_t)(base + lm[k0]) * es, (size_t)(k - k0) * es);
                }
            }
        }
        for (int a = r - 2; a >= 0; a--) {
            if (++idx[a] < dims[a])
                break;
            idx[a] = 0;
        }
    }
    free(map);
    return kiln_strings_own(y);
}

/* CenterCropPad (opset 18): each axis listed in `axes` (all by default) is
 * cropped or zero-padded to `shape` around its centre; an odd difference
 * leaves the extra element at the end. */
static kiln_status ccp_pads(int r, const int64_t *in, const int64_t *shape, size_t ns, const int64_t *axes, size_t na,
                            int64_t *pads) {
    int64_t all[KILN_MAX_RANK];
    if (!axes) {
        for (int a = 0; a < r; a++)
            all[a] = a;
        axes = all;
        na = (size_t)r;
    }
    if (ns != na)
        return kiln_fail(KILN_ERR_INVALID, "input 'shape' has %zu values for %zu axes", ns, na);
    int64_t p[2 * KILN_MAX_RANK];
    for (size_t i = 0; i < na; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
        if (a < 0 || a >= r)
            return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)axes[i], r);
        if (shape[i] < 0)
            return kiln_fail(KILN_ERR_INVALID, "input 'shape' has a negative size %lld", (long long)shape[i]);
        int64_t d = in ? shape[i] - in[a] : 0;
        p[i] = d >= 0 ? d / 2 : -((-d) / 2);
        p[na + i] = d - p[i];
    }
    return pad_expand(r, p, 2 * na, axes, na, pads);
}

static kiln_status ccp_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_RANK], pads[2 * KILN_MAX_RANK];
    size_t ns, na = 0;
    KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'shape'", shape, KILN_MAX_RANK, &ns));
    const int64_t *axes = kiln_attr_ints(c->node, "axes", &na);
    if (axes && na > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'axes' has too many values (%zu)", na);
    KILN_TRY(ccp_pads(x->rank, x->dims, shape, ns, axes, na, pads));
    char fill[sizeof(kiln_string) > 16 ? sizeof(kiln_string) : 16] = {0};
    return pad_apply(c, x, pads, PAD_CONSTANT, "constant", fill);
}

static kiln_status pad_v1(kiln_op_ctx *c) { return pad_run(c, 1); }
static kiln_status pad_v11(kiln_op_ctx *c) { return pad_run(c, 11); }
static kiln_status pad_v18(kiln_op_ctx *c) { return pad_run(c, 18); }
static kiln_status pad_v19(kiln_op_ctx *c) { return pad_run(c, 19); }

/* ---- shape rules ---- */

static kiln_status slice_infer(kiln_infer_ctx *x, bool inputs) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int64_t st[KILN_MAX_RANK], en[KILN_MAX_RANK], ax[KILN_MAX_RANK], sp[KILN_MAX_RANK];
    int ns, ne, na, nsp;
    bool ok = inputs ? kiln_infer_ints(x, 1, NULL, st, &ns, KILN_MAX_RANK) && kiln_infer_ints(x, 2, NULL, en, &ne, KILN_MAX_RANK)
                     : kiln_infer_ints(x, -1, "starts", st, &ns, KILN_MAX_RANK) &&
                           kiln_infer_ints(x, -1, "ends", en, &ne, KILN_MAX_RANK);
    if (!ok || ns != ne)
        return KILN_OK;
    bool given_ax = inputs ? kiln_infer_has(x, 3) : kiln_node_attr(x->node, "axes") != NULL;
    if (given_ax) {
        if (!kiln_infer_ints(x, inputs ? 3 : -1, inputs ? NULL : "axes", ax, &na, KILN_MAX_RANK))
            return KILN_OK;
    } else {
        for (na = 0; na < ns; na++)
            ax[na] = na;
    }
    if (inputs && kiln_infer_has(x, 4)) {
        if (!kiln_infer_ints(x, 4, NULL, sp, &nsp, KILN_MAX_RANK))
            return KILN_OK;
    } else {
        for (nsp = 0; nsp < ns; nsp++)
            sp[nsp] = 1;
    }
    if (na != ns || nsp != ns)
        return kiln_fail(KILN_ERR_INVALID, "starts, ends, axes and steps differ in length");
    kiln_infer_copy_shape(o, X, false);
    int64_t vs = 0, vn = 0, vstep = 1;
    bool vslice = false;
    for (int i = 0; i < ns; i++) {
        int a = kiln_infer_axis(ax[i], X->rank);
        if (a < 0 || sp[i] == 0)
            return kiln_fail(KILN_ERR_INVALID, "axis %lld or its step is out of range", (long long)ax[i]);
        kiln_sdim d = X->dims[a];
        if (!kiln_sd_is_const(&d)) {
            bool whole = sp[i] == 1 && st[i] == 0 && en[i] >= INT32_MAX;
            o->dims[a] = whole ? d : kiln_sd_unknown();
            if (a == 0)
                vslice = !whole, vn = -1;
            continue;
        }
        int64_t first, cnt;
        kiln_slice_axis(d.num, st[i], en[i], sp[i], &first, &cnt);
        o->dims[a] = kiln_sd_const(cnt);
        if (a == 0) {
            vs = first;
            vn = cnt;
            vstep = sp[i] == INT64_MIN ? INT64_MIN + 1 : sp[i];
            vslice = true;
        }
    }
    if (X->rank == 1 && X->nval >= 0 && vn >= 0) {
        if (!vslice) {
            kiln_infer_copy_shape(o, X, true);
        } else {
            int cnt = 0;
            for (int64_t i = 0, j = vs; i < vn; i++, j += vstep)
                if (j >= 0 && j < X->nval)
                    o->val[cnt++] = X->val[j];
            o->nval = cnt == vn ? cnt : -1;
        }
    }
    return KILN_OK;
}
static kiln_status slice_infer_v1(kiln_infer_ctx *x) { return slice_infer(x, false); }
static kiln_status slice_infer_v10(kiln_infer_ctx *x) { return slice_infer(x, true); }

/* Expand: the input broadcast with the shape's (symbolic) elements. */
static kiln_status expand_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *S = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (S->nval < 0 || S->nval > KILN_MAX_RANK)
        return KILN_OK;
    kiln_shape_fact sf;
    kiln_fact_unknown(&sf, KILN_DTYPE_INT64);
    sf.rank = S->nval;
    memcpy(sf.dims, S->val, (size_t)S->nval * sizeof *S->val);
    const kiln_shape_fact *fs[2] = {X, &sf};
    kiln_infer_bcast(fs, 2, o);
    return KILN_OK;
}

static kiln_status tile_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *R = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0 || R->nval != X->rank)
        return KILN_OK;
    o->rank = X->rank;
    for (int i = 0; i < X->rank; i++)
        o->dims[i] = kiln_sd_mul(X->dims[i], R->val[i]);
    return KILN_OK;
}

/* Pad: each dim grows by its begin and end pads (of the axes given, from
 * opset 18). */
static kiln_status pad_infer(kiln_infer_ctx *x, int version) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t p[2 * KILN_MAX_RANK], pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    int np, na = 0;
    bool have = version >= 11 ? kiln_infer_ints(x, 1, NULL, p, &np, 2 * KILN_MAX_RANK)
                              : kiln_infer_ints(x, -1, kiln_node_attr(x->node, "pads") ? "pads" : "paddings", p, &np,
                                                2 * KILN_MAX_RANK);
    bool given_axes = version >= 18 && kiln_infer_has(x, 3);
    if (given_axes && !kiln_infer_ints(x, 3, NULL, axes, &na, KILN_MAX_RANK))
        have = false;
    if (X->rank < 0)
        return KILN_OK;
    if (have)
        KILN_TRY(pad_expand(X->rank, p, (size_t)np, given_axes ? axes : NULL, (size_t)na, pads));
    o->rank = X->rank;
    for (int i = 0; i < X->rank; i++)
        o->dims[i] = have ? kiln_sd_add(X->dims[i], kiln_sd_const(pads[i] + pads[i + X->rank]), 1)
                          : kiln_sd_unknown();
    return KILN_OK;
}
static kiln_status pad_infer_v1(kiln_infer_ctx *x) { return pad_infer(x, 1); }
static kiln_status pad_infer_v11(kiln_infer_ctx *x) { return pad_infer(x, 11); }
static kiln_status pad_infer_v18(kiln_infer_ctx *x) { return pad_infer(x, 18); }

/* CenterCropPad: the listed axes take the sizes of `shape`. */
static kiln_status ccp_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int r = X->rank;
    int64_t shape[KILN_MAX_RANK], pads[2 * KILN_MAX_RANK];
    int ns;
    size_t na = 0;
    const int64_t *axes = kiln_attr_ints(x->node, "axes", &na);
    kiln_infer_copy_shape(o, X, false);
    if (!kiln_infer_ints(x, 1, NULL, shape, &ns, KILN_MAX_RANK) || (axes && na > KILN_MAX_RANK)) {
        for (int a = 0; a < r; a++)
            o->dims[a] = kiln_sd_unknown();
        return KILN_OK;
    }
    KILN_TRY(ccp_pads(r, NULL, shape, (size_t)ns, axes, na, pads));
    for (size_t i = 0; i < (axes ? na : (size_t)r); i++) {
        int64_t a = axes ? (axes[i] < 0 ? axes[i] + r : axes[i]) : (int64_t)i;
        o->dims[a] = kiln_sd_const(shape[i]);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Slice", 1, 9, slice_v1, slice_infer_v1},
    {"", "Slice", 10, 0, slice_v10, slice_infer_v10},
    {"", "Expand", 8, 0, expand_exec, expand_infer},
    {"", "Tile", 6, 0, tile_exec, tile_infer},
    {"", "Pad", 1, 10, pad_v1, pad_infer_v1},
    {"", "Pad", 11, 17, pad_v11, pad_infer_v11},
    {"", "Pad", 18, 18, pad_v18, pad_infer_v18},
    {"", "Pad", 19, 0, pad_v19, pad_infer_v18},
    {"", "CenterCropPad", 18, 0, ccp_exec, ccp_infer},
};
KILN_OP_FAMILY(slice, ops);
