/* Col2Im (opset 18) and DeformConv (opsets 19, 22), over any number of
 * spatial axes, floating-point types, accumulating in double.
 *
 * Col2Im: input [N, C * prod(block_shape), L] of sliding blocks, L the
 * block count the geometry gives (pads, strides, dilations as in Conv);
 * output [N, C, image_shape...], each block element added to its pixel.
 *
 * DeformConv: a Conv whose kernel taps are moved by per-position offsets
 * ([N, offset_group * prod(k) * nsp, out...]) and sampled by linear
 * interpolation, zero outside the input; an optional mask
 * ([N, offset_group * prod(k), out...]) scales each tap. The output's
 * spatial shape is the offset's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tensor_copy.h"
#include "kernels/valio.h"
#include "ops/op.h"

#define C2I_MAX_SP (KILN_MAX_RANK - 2)

static const kiln_dtype c2i_types[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};

/* Strides, dilations and pads of nsp spatial axes (defaults 1, 1, 0). */
static kiln_status c2i_attrs(const kiln_node *node, int nsp, int64_t *st, int64_t *dil, int64_t *pb, int64_t *pe) {
    size_t n;
    const int64_t *v;
    for (int d = 0; d < nsp; d++) {
        st[d] = dil[d] = 1;
        pb[d] = pe[d] = 0;
    }
    if ((v = kiln_attr_ints(node, "strides", &n))) {
        if (n != (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'strides' has %zu values for %d spatial axes", n, nsp);
        memcpy(st, v, n * sizeof *v);
    }
    if ((v = kiln_attr_ints(node, "dilations", &n))) {
        if (n != (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'dilations' has %zu values for %d spatial axes", n, nsp);
        memcpy(dil, v, n * sizeof *v);
    }
    if ((v = kiln_attr_ints(node, "pads", &n))) {
        if (n != 2 * (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'pads' has %zu values for %d spatial axes", n, nsp);
        memcpy(pb, v, (size_t)nsp * sizeof *v);
        memcpy(pe, v + nsp, (size_t)nsp * sizeof *v);
    }
    for (int d = 0; d < nsp; d++)
        if (st[d] < 1 || dil[d] < 1 || pb[d] < 0 || pe[d] < 0 || st[d] > (1 << 30) || dil[d] > (1 << 30) ||
            pb[d] > (1 << 30) || pe[d] > (1 << 30))
            return kiln_fail(KILN_ERR_INVALID, "strides, dilations and pads of axis %d are out of range", d);
    return KILN_OK;
}

/* Sliding-window count of one axis: floor((in + pads - dil * (k - 1) - 1) / s) + 1. */
static int64_t c2i_blocks(int64_t in, int64_t k, int64_t s, int64_t dil, int64_t pb, int64_t pe) {
    int64_t span = in + pb + pe - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

/* ---- Col2Im ---- */

static kiln_status col2im_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    KILN_TRY(kiln_op_need_dtype(c, 0, c2i_types, 4));
    const kiln_tensor *x = c->in[0];
    int64_t img[C2I_MAX_SP], blk[C2I_MAX_SP];
    size_t ni, nb;
    KILN_TRY(kiln_tensor_read_ints(c->in[1], "input 'image_shape'", img, C2I_MAX_SP, &ni));
    KILN_TRY(kiln_tensor_read_ints(c->in[2], "input 'block_shape'", blk, C2I_MAX_SP, &nb));
    if (ni != nb || ni == 0)
        return kiln_fail(KILN_ERR_INVALID, "image_shape (%zu values) and block_shape (%zu) must match", ni, nb);
    int nsp = (int)ni;
    if (x->rank != 3)
        return kiln_fail(KILN_ERR_INVALID, "input must be [N, C * prod(block_shape), L], got rank %d", x->rank);
    int64_t st[C2I_MAX_SP], dil[C2I_MAX_SP], pb[C2I_MAX_SP], pe[C2I_MAX_SP], K = 1, L = 1;
    KILN_TRY(c2i_attrs(c->node, nsp, st, dil, pb, pe));
    int64_t nblk[C2I_MAX_SP];
    for (int d = 0; d < nsp; d++) {
        if (img[d] < 0 || blk[d] < 1 || img[d] > (1 << 30) || blk[d] > (1 << 30))
            return kiln_fail(KILN_ERR_INVALID, "image_shape / block_shape value of axis %d is out of range", d);
        if (kiln_mul_overflow_i64(K, blk[d], &K))
            return kiln_fail(KILN_ERR_LIMIT, "block_shape is too large");
        nblk[d] = c2i_blocks(img[d], blk[d], st[d], dil[d], pb[d], pe[d]);
        if (kiln_mul_overflow_i64(L, nblk[d], &L))
            return kiln_fail(KILN_ERR_LIMIT, "too many blocks");
    }
    if (x->dims[1] % K)
        return kiln_fail(KILN_ERR_INVALID, "input dimension 1 (%lld) is not divisible by prod(block_shape) = %lld",
                         (long long)x->dims[1], (long long)K);
    if (x->dims[2] != L)
        return kiln_fail(KILN_ERR_INVALID, "input has %lld blocks, the geometry gives %lld", (long long)x->dims[2],
                         (long long)L);
    int64_t N = x->dims[0], C = x->dims[1] / K, od[KILN_MAX_RANK], P = 1;
    od[0] = N;
    od[1] = C;
    for (int d = 0; d < nsp; d++) {
        od[2 + d] = img[d];
        P *= img[d];
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, nsp + 2, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    double *acc = kiln_calloc((size_t)P, sizeof *acc);
    if (!acc)
        return KILN_ERR_NOMEM;
    int64_t istr[C2I_MAX_SP];
    istr[nsp - 1] = 1;
    for (int d = nsp - 2; d >= 0; d--)
        istr[d] = istr[d + 1] * img[d + 1];
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < C; ch++) {
            memset(acc, 0, (size_t)P * sizeof *acc);
            int64_t kp[C2I_MAX_SP] = {0};
            for (int64_t k = 0; k < K; k++) {
                int64_t bp[C2I_MAX_SP] = {0};
                const int64_t xrow = ((n * C + ch) * K + k) * L;
                for (int64_t b = 0; b < L; b++) {
                    int64_t off = 0;
                    bool in = true;
                    for (int d = 0; d < nsp && in; d++) {
                        int64_t i = bp[d] * st[d] - pb[d] + kp[d] * dil[d];
                        in = i >= 0 && i < img[d];
                        off += i * istr[d];
                    }
                    if (in)
                        acc[off] += kiln_load_f64(x->data, x->dtype, xrow + b);
                    for (int d = nsp - 1; d >= 0; d--) {
                        if (++bp[d] < nblk[d])
                            break;
                        bp[d] = 0;
                    }
                }
                for (int d = nsp - 1; d >= 0; d--) {
                    if (++kp[d] < blk[d])
                        break;
                    kp[d] = 0;
                }
            }
            for (int64_t i = 0; i < P; i++)
                kiln_store_f64(y->data, y->dtype, (n * C + ch) * P + i, acc[i]);
        }
    free(acc);
    return KILN_OK;
}

/* [N, C / prod(block_shape), image_shape...] when both shapes are known. */
static kiln_status col2im_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t img[C2I_MAX_SP], blk[C2I_MAX_SP];
    int ni, nb;
    if (!kiln_infer_ints(x, 1, NULL, img, &ni, C2I_MAX_SP) || !kiln_infer_ints(x, 2, NULL, blk, &nb, C2I_MAX_SP) ||
        ni != nb || ni == 0)
        return KILN_OK;
    int64_t K = 1;
    for (int d = 0; d < nb; d++) {
        if (blk[d] < 1 || blk[d] > (1 << 30) || img[d] < 0)
            return kiln_fail(KILN_ERR_INVALID, "block_shape / image_shape value of axis %d is out of range", d);
        if (kiln_mul_overflow_i64(K, blk[d], &K))
            return KILN_OK;
    }
    o->rank = ni + 2;
    o->dims[0] = X->rank == 3 ? X->dims[0] : kiln_sd_unknown();
    o->dims[1] = X->rank == 3 ? kiln_sd_div_exact(X->dims[1], kiln_sd_const(K)) : kiln_sd_unknown();
    for (int d = 0; d < ni; d++)
        o->dims[2 + d] = kiln_sd_const(img[d]);
    return KILN_OK;
}

/* ---- DeformConv ---- */

static kiln_status deform_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    for (size_t i = 0; i < 5; i++)
        if (kiln_op_in(c, i))
            KILN_TRY(kiln_op_need_dtype(c, i, c2i_types, 4));
    const kiln_tensor *x = c->in[0], *w = c->in[1], *of = c->in[2], *bias = kiln_op_in(c, 3), *mk = kiln_op_in(c, 4);
    int r = x->rank, nsp = r - 2;
    if (r < 3)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", r);
    if (w->rank != r || of->rank != r)
        return kiln_fail(KILN_ERR_INVALID, "W and offset must have X's rank %d", r);
    int64_t group = kiln_attr_int(c->node, "group", 1), og = kiln_attr_int(c->node, "offset_group", 1);
    int64_t N = x->dims[0], C = x->dims[1], OC = w->dims[0], ICG = w->dims[1];
    if (group < 1 || og < 1 || ICG * group != C || OC % group || C % og)
        return kiln_fail(KILN_ERR_INVALID,
                         "channels do not fit: X has %lld, W is [%lld, %lld, ...], group %lld, offset_group %lld",
                         (long long)C, (long long)OC, (long long)ICG, (long long)group, (long long)og);
    int64_t k[C2I_MAX_SP], st[C2I_MAX_SP], dil[C2I_MAX_SP], pb[C2I_MAX_SP], pe[C2I_MAX_SP], K = 1, O = 1, IP = 1;
    size_t nk;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &nk);
    if (ks && nk != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values for %d spatial axes", nk, nsp);
    KILN_TRY(c2i_attrs(c->node, nsp, st, dil, pb, pe));
    for (int d = 0; d < nsp; d++) {
        k[d] = ks ? ks[d] : w->dims[2 + d];
        if (k[d] != w->dims[2 + d])
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape differs from W's spatial dims");
        K *= k[d];
        int64_t want = c2i_blocks(x->dims[2 + d], k[d], st[d], dil[d], pb[d], pe[d]);
        if (of->dims[2 + d] != want)
            return kiln_fail(KILN_ERR_INVALID, "offset's spatial dim %d is %lld, the geometry gives %lld", d,
                             (long long)of->dims[2 + d], (long long)want);
        O *= want;
        IP *= x->dims[2 + d];
    }
    if (of->dims[0] != N || of->dims[1] != og * K * nsp)
        return kiln_fail(KILN_ERR_INVALID, "offset must be [N, offset_group * prod(kernel) * %d, out...]", nsp);
    if (mk && (mk->rank != r || mk->dims[0] != N || mk->dims[1] != og * K ||
               memcmp(mk->dims + 2, of->dims + 2, sizeof(int64_t) * (size_t)nsp)))
        return kiln_fail(KILN_ERR_INVALID, "mask must be [N, offset_group * prod(kernel), out...]");
    if (bias && bias->numel != OC)
        return kiln_fail(KILN_ERR_INVALID, "B must hold %lld values", (long long)OC);
    int64_t od[KILN_MAX_RANK];
    od[0] = N;
    od[1] = OC;
    memcpy(od + 2, of->dims + 2, sizeof(int64_t) * (size_t)nsp);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, r, od, &y));
    if (y->numel == 0)
        return KILN_OK;
    /* per image: col[ic][k][o] = mask * sample, then a grouped product with W */
    int64_t ko, ncol;
    if (kiln_mul_overflow_i64(K, O, &ko) || kiln_mul_overflow_i64(C, ko, &ncol) || ncol > ((int64_t)1 << 31))
        return kiln_fail(KILN_ERR_LIMIT, "DeformConv's sampled columns are too large");
    double *col = kiln_malloc((size_t)(ncol ? ncol : 1) * sizeof *col);
    if (!col)
        return KILN_ERR_NOMEM;
    int64_t istr[C2I_MAX_SP], ocount[C2I_MAX_SP];
    istr[nsp - 1] = 1;
    for (int d = nsp - 2; d >= 0; d--)
        istr[d] = istr[d + 1] * x->dims[3 + d];
    for (int d = 0; d < nsp; d++)
        ocount[d] = of->dims[2 + d];
    int64_t cpo = C / og, ocg = OC / group, taps = (int64_t)1 << nsp;
    for (int64_t n = 0; n < N; n++) {
        int64_t kp[C2I_MAX_SP] = {0};
        for (int64_t kk = 0; kk < K; kk++) {
            int64_t op[C2I_MAX_SP] = {0};
            for (int64_t o = 0; o < O; o++) {
                for (int64_t g = 0; g < og; g++) {
                    double pos[C2I_MAX_SP];
                    for (int d = 0; d < nsp; d++) {
                        int64_t oi = ((n * og + g) * K + kk) * nsp + d;
                        pos[d] = (double)(op[d] * st[d] - pb[d] + kp[d] * dil[d]) +
                                 kiln_load_f64(of->data, of->dtype, oi * O + o);
                    }
                    double m = mk ? kiln_load_f64(mk->data, mk->dtype, ((n * og + g) * K + kk) * O + o) : 1.0;
                    /* linear taps: 2 per axis, zero outside */
                    int64_t lo[C2I_MAX_SP];
                    double fr[C2I_MAX_SP];
                    bool finite = true;
                    for (int d = 0; d < nsp; d++) {
                        finite = finite && isfinite(pos[d]) && fabs(pos[d]) < 1e15;
                        double f = finite ? floor(pos[d]) : 0;
                        lo[d] = (int64_t)f;
                        fr[d] = finite ? pos[d] - f : 0;
                    }
                    for (int64_t ic = g * cpo; ic < (g + 1) * cpo; ic++) {
                        double v = 0;
                        for (int64_t t = 0; finite && t < taps; t++) {
                            double wt = m;
                            int64_t off = 0;
                            bool in = true;
                            for (int d = 0; d < nsp && in; d++) {
                                int hi = (int)((t >> (nsp - 1 - d)) & 1);
                                int64_t i = lo[d] + hi;
                                in = i >= 0 && i < x->dims[2 + d];
                                wt *= hi ? fr[d] : 1 - fr[d];
                                off += i * istr[d];
                            }
                            if (in && wt != 0)
                                v += wt * kiln_load_f64(x->data, x->dtype, (n * C + ic) * IP + off);
                        }
                        col[(ic * K + kk) * O + o] = v;
                    }
                }
                for (int d = nsp - 1; d >= 0; d--) {
                    if (++op[d] < ocount[d])
                        break;
                    op[d] = 0;
                }
            }
            for (int d = nsp - 1; d >= 0; d--) {
                if (++kp[d] < k[d])
                    break;
                kp[d] = 0;
            }
        }
        for (int64_t oc = 0; oc < OC; oc++) {
            int64_t g = oc / ocg;
            double b = bias ? kiln_load_f64(bias->data, bias->dtype, oc) : 0.0;
            for (int64_t o = 0; o < O; o++) {
                double acc = b;
                for (int64_t icg = 0; icg < ICG; icg++) {
                    int64_t ic = g * ICG + icg;
                    for (int64_t kk = 0; kk < K; kk++)
                        acc += kiln_load_f64(w->data, w->dtype, (oc * ICG + icg) * K + kk) * col[(ic * K + kk) * O + o];
                }
                kiln_store_f64(y->data, y->dtype, (n * OC + oc) * O + o, acc);
            }
        }
    }
    free(col);
    return KILN_OK;
}

/* [N, oC, offset's spatial dims...]. */
static kiln_status deform_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *W = kiln_infer_in(x, 1), *F = kiln_infer_in(x, 2);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int r = X->rank >= 0 ? X->rank : F->rank;
    if (r < 3)
        return KILN_OK;
    o->rank = r;
    o->dims[0] = X->rank == r ? X->dims[0] : F->rank == r ? F->dims[0] : kiln_sd_unknown();
    o->dims[1] = W->rank == r ? W->dims[0] : kiln_sd_unknown();
    for (int d = 2; d < r; d++)
        o->dims[d] = F->rank == r ? F->dims[d] : kiln_sd_unknown();
    return KILN_OK;
}

/* DeformConv 22 only adds bfloat16. */
static const kiln_op_desc ops[] = {
    {"", "Col2Im", 18, 0, col2im_exec, col2im_infer},
    {"", "DeformConv", 19, 0, deform_exec, deform_infer},
};
KILN_OP_FAMILY(col2im, ops);
