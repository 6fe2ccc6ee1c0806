/* Transpose, and DepthToSpace / SpaceToDepth as a reshape + transpose.
 * Any dtype (bytes are moved; strings get their own copies). The strided
 * copy merges axes that stay adjacent, so when the last axis stays last the
 * inner loop is a memcpy. */
#include <string.h>

#include "kernels/tensor_copy.h"
#include "ops/op.h"

/* Output i of shape out_dims = `view` (a reshape of x) with its axes permuted. */
static kiln_status permute_view(kiln_op_ctx *c, const kiln_tensor *x, int rank, const int64_t *view,
                                const int *perm, int out_rank, const int64_t *out_dims) {
    int64_t vstr[KILN_MAX_RANK], pdims[KILN_MAX_RANK], pstr[KILN_MAX_RANK];
    kiln_dims_strides(rank, view, vstr);
    for (int i = 0; i < rank; i++) {
        pdims[i] = view[perm[i]];
        pstr[i] = vstr[perm[i]];
    }
    /* only size-1 axes move: the data order is unchanged, share it */
    bool same = true;
    for (int i = 0, last = -1; i < rank; i++)
        if (view[perm[i]] != 1) {
            if (perm[i] < last)
                same = false;
            last = perm[i];
        }
    if (same)
        return kiln_op_output_alias(c, 0, x, out_rank, out_dims);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, out_rank, out_dims, &y));
    kiln_strided_copy(kiln_op_pool(c), y->data, x->data, kiln_elem_size(x->dtype), rank, pdims, pstr);
    return kiln_strings_own(y);
}

static kiln_status transpose_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int r = x->rank;
    int perm[KILN_MAX_RANK];
    size_t n;
    const int64_t *p = kiln_attr_ints(c->node, "perm", &n);
    if (p) {
        if ((int)n != r)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'perm' has %zu values but the input has rank %d", n, r);
        bool seen[KILN_MAX_RANK] = {false};
        for (int i = 0; i < r; i++) {
            if (p[i] < 0 || p[i] >= r || seen[p[i]])
                return kiln_fail(KILN_ERR_INVALID, "attribute 'perm' is not a permutation of 0..%d (value %lld at %d)",
                                 r - 1, (long long)p[i], i);
            seen[p[i]] = true;
            perm[i] = (int)p[i];
        }
    } else {
        for (int i = 0; i < r; i++)
            perm[i] = r - 1 - i;
    }
    int64_t od[KILN_MAX_RANK];
    for (int i = 0; i < r; i++)
        od[i] = x->dims[perm[i]];
    return permute_view(c, x, r, x->dims, perm, r, od);
}

static kiln_status blocksize(kiln_op_ctx *c, const kiln_tensor *x, int64_t *b) {
    if (x->rank != 4)
        return kiln_fail(KILN_ERR_INVALID, "input must be 4-D (N,C,H,W), got rank %d", x->rank);
    *b = kiln_attr_int(c->node, "blocksize", 0);
    if (*b <= 0 || *b > (int64_t)1 << 20)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'blocksize' must be positive, got %lld", (long long)*b);
    return KILN_OK;
}

/* DepthToSpace: mode DCR (default) takes depth as (b, b, C'), CRD as
 * (C', b, b) (mode added in opset 11). */
static kiln_status d2s_run(kiln_op_ctx *c, bool has_mode) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t b = 1;
    KILN_TRY(blocksize(c, x, &b));
    const int64_t *d = x->dims;
    if (d[1] % (b * b))
        return kiln_fail(KILN_ERR_INVALID, "channels %lld are not divisible by blocksize^2 = %lld", (long long)d[1],
                         (long long)(b * b));
    int64_t cc = d[1] / (b * b);
    const char *mode = has_mode ? kiln_attr_string(c->node, "mode", "DCR") : "DCR";
    int64_t out[4] = {d[0], cc, 0, 0};
    if (kiln_mul_overflow_i64(d[2], b, &out[2]) || kiln_mul_overflow_i64(d[3], b, &out[3]))
        return kiln_fail(KILN_ERR_LIMIT, "output size overflows");
    if (!strcmp(mode, "DCR")) {
        int64_t view[6] = {d[0], b, b, cc, d[2], d[3]};
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        return permute_view(c, x, 6, view, perm, 4, out);
    }
    if (!strcmp(mode, "CRD")) {
        int64_t view[6] = {d[0], cc, b, b, d[2], d[3]};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        return permute_view(c, x, 6, view, perm, 4, out);
    }
    return kiln_fail(KILN_ERR_INVALID, "attribute 'mode' must be DCR or CRD, got '%s'", mode);
}

static kiln_status d2s_v1(kiln_op_ctx *c) { return d2s_run(c, false); }
static kiln_status d2s_v11(kiln_op_ctx *c) { return d2s_run(c, true); }

/* SpaceToDepth: opset 28 adds mode; DCR (the only order before) puts the
 * block offsets ahead of the channel, CRD after it. */
static kiln_status s2d_run(kiln_op_ctx *c, bool has_mode) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    int64_t b = 1;
    KILN_TRY(blocksize(c, x, &b));
    const int64_t *d = x->dims;
    if (d[2] % b || d[3] % b)
        return kiln_fail(KILN_ERR_INVALID, "height %lld and width %lld must be divisible by blocksize %lld",
                         (long long)d[2], (long long)d[3], (long long)b);
    const char *mode = has_mode ? kiln_attr_string(c->node, "mode", "DCR") : "DCR";
    int64_t view[6] = {d[0], d[1], d[2] / b, b, d[3] / b, b};
    static const int dcr[6] = {0, 3, 5, 1, 2, 4}, crd[6] = {0, 1, 3, 5, 2, 4};
    const int *perm;
    if (!strcmp(mode, "DCR"))
        perm = dcr;
    else if (!strcmp(mode, "CRD"))
        perm = crd;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'mode' must be DCR or CRD, got '%s'", mode);
    int64_t out[4] = {d[0], 0, d[2] / b, d[3] / b};
    if (kiln_mul_overflow_i64(d[1], b * b, &out[1]))
        return kiln_fail(KILN_ERR_LIMIT, "output size overflows");
    return permute_view(c, x, 6, view, perm, 4, out);
}
static kiln_status s2d_v1(kiln_op_ctx *c) { return s2d_run(c, false); }
static kiln_status s2d_v28(kiln_op_ctx *c) { return s2d_run(c, true); }

/* ---- shape rules ---- */

static kiln_status transpose_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 0)
        return KILN_OK;
    int64_t perm[KILN_MAX_RANK];
    int np;
    if (!kiln_infer_ints(x, -1, "perm", perm, &np, KILN_MAX_RANK)) {
        np = X->rank;
        for (int i = 0; i < np; i++)
            perm[i] = np - 1 - i;
    }
    if (np != X->rank)
        return kiln_fail(KILN_ERR_INVALID, "perm has %d entries for rank %d", np, X->rank);
    o->rank = np;
    for (int i = 0; i < np; i++) {
        if (perm[i] < 0 || perm[i] >= np)
            return kiln_fail(KILN_ERR_INVALID, "perm entry %lld is out of range", (long long)perm[i]);
        o->dims[i] = X->dims[perm[i]];
    }
    return KILN_OK;
}

/* DepthToSpace (up) / SpaceToDepth (down) by `blocksize` on NCHW. */
static kiln_status space_depth_infer(kiln_infer_ctx *x, bool up) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t b = kiln_attr_int(x->node, "blocksize", 0);
    if (X->rank != 4 || b < 1)
        return KILN_OK;
    kiln_sdim bb = kiln_sd_const(b), b2 = kiln_sd_const(b * b);
    o->rank = 4;
    o->dims[0] = X->dims[0];
    o->dims[1] = up ? kiln_sd_div_exact(X->dims[1], b2) : kiln_sd_mul(X->dims[1], b2);
    o->dims[2] = up ? kiln_sd_mul(X->dims[2], bb) : kiln_sd_div_exact(X->dims[2], bb);
    o->dims[3] = up ? kiln_sd_mul(X->dims[3], bb) : kiln_sd_div_exact(X->dims[3], bb);
    return KILN_OK;
}
static kiln_status d2s_infer(kiln_infer_ctx *x) { return space_depth_infer(x, true); }
static kiln_status s2d_infer(kiln_infer_ctx *x) { return space_depth_infer(x, false); }

static const kiln_op_desc ops[] = {
    {"", "Transpose", 1, 0, transpose_exec, transpose_infer},
    {"", "DepthToSpace", 1, 10, d2s_v1, d2s_infer},
    {"", "DepthToSpace", 11, 0, d2s_v11, d2s_infer},
    {"", "SpaceToDepth", 1, 27, s2d_v1, s2d_infer},
    {"", "SpaceToDepth", 28, 0, s2d_v28, s2d_infer},
};
KILN_OP_FAMILY(transpose, ops);
