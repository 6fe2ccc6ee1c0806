/* Pooling: MaxPool (optional Indices, ceil_mode, dilations, storage_order),
 * AveragePool (count_include_pad, ceil_mode), LpPool, and their Global forms,
 * over 1..KILN_MAX_RANK-2 spatial dims. One (image, channel) plane per work
 * item; windows are walked with an odometer over the kernel, sums in double.
 * float32 GlobalAveragePool / GlobalMaxPool run the kernels/pool.h kernel. */
#include <math.h>
#include <string.h>

#include "ops/conv_attrs.h"
#include "kernels/conv.h"
#include "kernels/pool.h"
#include "ops/op.h"

typedef enum { POOL_MAX, POOL_AVG, POOL_LP } pool_kind;

typedef struct pool_job {
    const kiln_conv_geom *g;
    pool_kind kind;
    kiln_dtype dt;
    const void *x;
    void *y;
    int64_t *ind; /* MaxPool Indices or NULL */
    bool col_major, include_pad;
    double p;
} pool_job;

static inline double pool_load(kiln_dtype dt, const void *x, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: return ((const float *)x)[i];
    case KILN_DTYPE_DOUBLE: return ((const double *)x)[i];
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(((const uint16_t *)x)[i]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(((const uint16_t *)x)[i]);
    case KILN_DTYPE_INT8: return ((const int8_t *)x)[i];
    case KILN_DTYPE_UINT8: return ((const uint8_t *)x)[i];
    default: return 0.0;
    }
}

static inline void pool_store(kiln_dtype dt, void *y, int64_t i, double v) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: ((float *)y)[i] = (float)v; break;
    case KILN_DTYPE_DOUBLE: ((double *)y)[i] = v; break;
    case KILN_DTYPE_FLOAT16: ((uint16_t *)y)[i] = kiln_float_to_half((float)v); break;
    case KILN_DTYPE_BFLOAT16: ((uint16_t *)y)[i] = kiln_float_to_bf16((float)v); break;
    /* A window lying wholly in the padding has no element: -inf for max.
     * Integer outputs saturate instead of converting out of range. */
    case KILN_DTYPE_INT8: ((int8_t *)y)[i] = (int8_t)(v != v ? 0 : v < -128 ? -128 : v > 127 ? 127 : v); break;
    case KILN_DTYPE_UINT8: ((uint8_t *)y)[i] = (uint8_t)(v != v ? 0 : v < 0 ? 0 : v > 255 ? 255 : v); break;
    default: break;
    }
}

static void pool_plane(const pool_job *j, int64_t plane) {
    const kiln_conv_geom *g = j->g;
    int nsp = g->nsp;
    int64_t instr[KILN_CONV_MAX_SP], cmstr[KILN_CONV_MAX_SP];
    instr[nsp - 1] = 1;
    for (int d = nsp - 2; d >= 0; d--)
        instr[d] = instr[d + 1] * g->in[d + 1];
    cmstr[0] = 1;
    for (int d = 1; d < nsp; d++)
        cmstr[d] = cmstr[d - 1] * g->in[d - 1];
    int64_t xbase = plane * g->in_size, ybase = plane * g->out_size;
    int64_t opos[KILN_CONV_MAX_SP] = {0};
    for (int64_t o = 0; o < g->out_size; o++) {
        /* per-dim window start, padded-extent count and in-bounds count */
        int64_t start[KILN_CONV_MAX_SP];
        int64_t n_valid = 1, n_padded = 1;
        for (int d = 0; d < nsp; d++) {
            start[d] = opos[d] * g->stride[d] - g->pb[d];
            int64_t v = 0, pv = 0;
            for (int64_t k = 0; k < g->k[d]; k++) {
                int64_t id = start[d] + k * g->dil[d];
                v += id >= 0 && id < g->in[d];
                pv += id >= -g->pb[d] && id < g->in[d] + g->pe[d];
            }
            n_valid *= v;
            n_padded *= pv;
        }
        double acc = j->kind == POOL_MAX ? -INFINITY : 0.0;
        int64_t best = -1;
        if (n_valid > 0) {
            int64_t kpos[KILN_CONV_MAX_SP] = {0};
            for (int64_t kk = 0; kk < g->k_size; kk++) {
                int64_t off = 0, cm = 0;
                bool inside = true;
                for (int d = 0; d < nsp; d++) {
                    int64_t id = start[d] + kpos[d] * g->dil[d];
                    if (id < 0 || id >= g->in[d]) {
                        inside = false;
                        break;
                    }
                    off += id * instr[d];
                    cm += id * cmstr[d];
                }
                if (inside) {
                    double v = pool_load(j->dt, j->x, xbase + off);
                    if (j->kind == POOL_MAX) {
                        if (v > acc || best < 0) {
                            acc = v;
                            best = j->col_major ? cm : off;
                        }
                    } else if (j->kind == POOL_AVG)
                        acc += v;
                    else
                        acc += pow(fabs(v), j->p);
                }
                for (int d = nsp - 1; d >= 0; d--) {
                    if (++kpos[d] < g->k[d])
                        break;
                    kpos[d] = 0;
                }
            }
        }
        double out = acc;
        if (j->kind == POOL_AVG) {
            int64_t div = j->include_pad ? n_padded : n_valid;
            out = div > 0 ? acc / (double)div : 0.0;
        } else if (j->kind == POOL_LP)
            out = pow(acc, 1.0 / j->p);
        pool_store(j->dt, j->y, ybase + o, out);
        if (j->ind)
            j->ind[ybase + o] = xbase + (best < 0 ? 0 : best);
        for (int d = nsp - 1; d >= 0; d--) {
            if (++opos[d] < g->out[d])
                break;
            opos[d] = 0;
        }
    }
}

/* Range [lo, hi) of k in [0, n) with 0 <= start + k * d < lim; also the
 * count of k whose position lies in the padded extent [-pb, lim + pe). */
static void pool_window(int64_t start, int64_t d, int64_t n, int64_t lim, int64_t pb, int64_t pe, int64_t *lo,
                        int64_t *hi, int64_t *padded) {
    int64_t l = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t h = lim - 1 - start < 0 ? 0 : (lim - 1 - start) / d + 1;
    *lo = l < n ? l : n;
    *hi = h < n ? h : n;
    if (*hi < *lo)
        *hi = *lo;
    int64_t pl = start >= -pb ? 0 : (-pb - start + d - 1) / d;
    int64_t ph = lim + pe - 1 - start < 0 ? 0 : (lim + pe - 1 - start) / d + 1;
    if (ph > n)
        ph = n;
    *padded = ph > pl ? ph - pl : 0;
}

/* 16 max-pool outputs whose windows lie inside the row (dilation 1, stride
 * 1 or 2), in the scalar loop's visiting order: m starts at the window's first
 * element and takes v when v > m, so NaN behaves the same. */
typedef float pool_v16f __attribute__((vector_size(64)));
typedef int pool_v16i __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) pool_v16f pool_load16(const float *p, int64_t s) {
    pool_v16f a, b;
    memcpy(&a, p, sizeof a);
    if (s == 1)
        return a;
    memcpy(&b, p + 16, sizeof b);
#if defined(__clang__)
    return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#else
    return __builtin_shuffle(a, b, (pool_v16i){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30});
#endif
}

static inline __attribute__((always_inline)) void pool_max16(const float *x, int64_t IW, int64_t ih0, int64_t hlo, int64_t hhi, int64_t iw0, int64_t KW,
                       int64_t SW, float *y) {
    pool_v16f m = pool_load16(x + (ih0 + hlo) * IW + iw0, SW);
    for (int64_t kh = hlo; kh < hhi; kh++) {
        const float *row = x + (ih0 + kh) * IW + iw0;
        for (int64_t kw = kh == hlo ? 1 : 0; kw < KW; kw++) {
            pool_v16f v = pool_load16(row + kw, SW);
            pool_v16i k = v > m;
            m = (pool_v16f)(((pool_v16i)m & ~k) | ((pool_v16i)v & k));
        }
    }
    memcpy(y, &m, sizeof m);
}

/* float32 max / average pooling over <= 2 spatial dims (1-D as H = 1): the
 * common case, without the generic odometer. */
KILN_CLONES static void pool_plane_f32_2d(const pool_job *j, int64_t plane) {
    const kiln_conv_geom *g = j->g;
    int64_t IH = 1, OH = 1, KH = 1, SH = 1, DH = 1, PH = 0, PHE = 0, L = g->nsp - 1;
    if (g->nsp == 2) {
        IH = g->in[0];
        OH = g->out[0];
        KH = g->k[0];
        SH = g->stride[0];
        DH = g->dil[0];
        PH = g->pb[0];
        PHE = g->pe[0];
    }
    int64_t IW = g->in[L], OW = g->out[L], KW = g->k[L], SW = g->stride[L], DW = g->dil[L], PW = g->pb[L],
            PWE = g->pe[L];
    const float *x = (const float *)j->x + plane * g->in_size;
    float *y = (float *)j->y + plane * g->out_size;
    int64_t *ind = j->ind ? j->ind + plane * g->out_size : NULL;
    int64_t ibase = plane * g->in_size;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t ih0 = oh * SH - PH, hlo, hhi, hpad;
        pool_window(ih0, DH, KH, IH, PH, PHE, &hlo, &hhi, &hpad);
        bool vec = j->kind == POOL_MAX && !ind && DW == 1 && (SW == 1 || SW == 2) && hhi > hlo;
        /* outputs vlo..vhi have their windows (and a stride-2 load's extra
         * element) inside the row: 16 at a time, the last block shifted back
         * to end at vhi (recomputing a few maxima is harmless) */
        int64_t vlo = (PW + SW - 1) / SW, vhi = -1;
        if (vec && IW - KW - (SW - 1) + PW >= 0) {
            vhi = (IW - KW - (SW - 1) + PW) / SW;
            while (vhi >= 0 && vhi * SW - PW + KW - 1 + (SW - 1) >= IW)
                vhi--;
            if (vhi > OW - 1)
                vhi = OW - 1;
        }
        vec = vec && vhi - vlo + 1 >= 16;
        for (int64_t ow = 0; ow < OW; ow++) {
            if (vec && ow >= vlo && ow <= vhi) {
                int64_t s0 = ow + 15 <= vhi ? ow : vhi - 15;
                pool_max16(x, IW, ih0, hlo, hhi, s0 * SW - PW, KW, SW, y + oh * OW + s0);
                ow = s0 + 15;
                continue;
            }
            int64_t iw0 = ow * SW - PW, wlo, whi, wpad;
            pool_window(iw0, DW, KW, IW, PW, PWE, &wlo, &whi, &wpad);
            int64_t o = oh * OW + ow;
            if (j->kind == POOL_MAX) {
                float m = -INFINITY;
                int64_t best = -1;
                for (int64_t kh = hlo; kh < hhi; kh++) {
                    int64_t ih = ih0 + kh * DH;
                    const float *row = x + ih * IW;
                    for (int64_t kw = wlo; kw < whi; kw++) {
                        int64_t iw = iw0 + kw * DW;
                        float v = row[iw];
                        if (v > m || best < 0) {
                            m = v;
                            best = j->col_major ? iw * IH + ih : ih * IW + iw;
                        }
                    }
                }
                y[o] = m;
                if (ind)
                    ind[o] = ibase + (best < 0 ? 0 : best);
            } else {
                float sum = 0.0f;
                for (int64_t kh = hlo; kh < hhi; kh++) {
                    const float *row = x + (ih0 + kh * DH) * IW + iw0;
                    for (int64_t kw = wlo; kw < whi; kw++)
                        sum += row[kw * DW];
                }
                int64_t div = j->include_pad ? hpad * wpad : (hhi - hlo) * (whi - wlo);
                y[o] = div > 0 ? sum / (float)div : 0.0f;
            }
        }
    }
}

KILN_CLONES static void pool_range(void *arg, size_t begin, size_t end) {
    const pool_job *j = arg;
    bool fast = j->dt == KILN_DTYPE_FLOAT && j->g->nsp <= 2 && j->kind != POOL_LP;
    for (size_t p = begin; p < end; p++) {
        if (fast)
            pool_plane_f32_2d(j, (int64_t)p);
        else
            pool_plane(j, (int64_t)p);
    }
}

/* use_dil / use_ceil: the version has the dilations / ceil_mode attributes. */
static kiln_status pool_run(kiln_op_ctx *c, pool_kind kind, bool global, bool use_dil, bool use_ceil) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *X = c->in[0];
    static const kiln_dtype ok_max[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                        KILN_DTYPE_INT8, KILN_DTYPE_UINT8};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok_max, kind == POOL_MAX ? 6 : 4));
    if (X->rank < 3 || X->rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", X->rank);
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    int nsp = g.nsp = X->rank - 2;
    for (int d = 0; d < nsp; d++)
        g.in[d] = X->dims[d + 2];
    bool ceil_mode = false;
    if (global) {
        for (int d = 0; d < nsp; d++) {
            g.k[d] = g.in[d];
            g.out[d] = 1;
            g.stride[d] = g.dil[d] = 1;
        }
        for (int d = 0; d < nsp; d++)
            if (g.in[d] == 0)
                return kiln_fail(KILN_ERR_INVALID, "global pooling over an empty spatial dimension");
        KILN_TRY(kiln_conv_sizes(&g));
    } else {
        size_t n;
        const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &n);
        if (!ks)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'kernel_shape' is required");
        if (n != (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values, input has %d spatial dims", n, nsp);
        for (int d = 0; d < nsp; d++)
            g.k[d] = ks[d];
        KILN_TRY(kiln_conv_read_attrs(&g, c->node, use_dil));
        ceil_mode = use_ceil && kiln_attr_int(c->node, "ceil_mode", 0) != 0;
        KILN_TRY(kiln_conv_forward_shape(&g, ceil_mode));
    }
    pool_job j;
    memset(&j, 0, sizeof j);
    j.g = &g;
    j.kind = kind;
    j.dt = X->dtype;
    j.x = X->data;
    if (kind == POOL_LP) {
        /* opset 1 had p as a float attribute; opset 2 made it an int */
        const kiln_attr *pa = kiln_node_attr(c->node, "p");
        j.p = !pa ? 2.0 : pa->type == KILN_ATTR_FLOAT ? (double)pa->f : (double)pa->i;
        if (!(j.p > 0.0) || !isfinite(j.p))
            return kiln_fail(KILN_ERR_INVALID, "attribute 'p' must be positive, got %g", j.p);
    }
    if (kind == POOL_AVG)
        j.include_pad = kiln_attr_int(c->node, "count_include_pad", 0) != 0;
    if (kind == POOL_MAX) {
        int64_t so = kiln_attr_int(c->node, "storage_order", 0);
        if (so != 0 && so != 1)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'storage_order' must be 0 or 1, got %lld", (long long)so);
        j.col_major = so == 1;
    }
    int64_t dims[KILN_MAX_RANK];
    dims[0] = X->dims[0];
    dims[1] = X->dims[1];
    for (int d = 0; d < nsp; d++)
        dims[d + 2] = g.out[d];
    kiln_tensor *Y, *I = NULL;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, X->rank, dims, &Y));
    if (kind == POOL_MAX && !global && kiln_op_out_wanted(c, 1)) {
        KILN_TRY(kiln_op_output(c, 1, KILN_DTYPE_INT64, X->rank, dims, &I));
        j.ind = I->data;
    }
    j.y = Y->data;
    if (Y->numel == 0)
        return KILN_OK;
    int64_t planes = X->dims[0] * X->dims[1];
    if (global && X->dtype == KILN_DTYPE_FLOAT && kind != POOL_LP) {
        kiln_global_pool_f32(kind == POOL_AVG ? KILN_GPOOL_AVG : KILN_GPOOL_MAX, X->data, planes, g.in_size, Y->data,
                             kiln_op_pool(c));
        return KILN_OK;
    }
    double work = (double)g.out_size * (double)g.k_size;
    size_t grain = work >= 16384.0 ? 1 : (size_t)(16384.0 / (work + 1.0));
    kiln_parallel_for(c, (size_t)planes, grain, pool_range, &j);
    return KILN_OK;
}

/* MaxUnpool: scatters X into zeros at the positions given by I (flat indices
 * into the unpooled shape (in - 1) * stride + kernel - pads). With an
 * output_shape input, that unpooled image sits at the start of each larger
 * output dim (the ONNX backend tests' semantics), so indices are re-based. */
static kiln_status maxunpool_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *I = c->in[1], *S = kiln_op_in(c, 2);
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, 4));
    static const kiln_dtype oki[] = {KILN_DTYPE_INT64};
    KILN_TRY(kiln_op_need_dtype(c, 1, oki, 1));
    if (X->rank < 3)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", X->rank);
    if (I->rank != X->rank || memcmp(I->dims, X->dims, sizeof(int64_t) * (size_t)X->rank) != 0)
        return kiln_fail(KILN_ERR_INVALID, "I must have the shape of X");
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    int nsp = g.nsp = X->rank - 2;
    size_t n;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &n);
    if (!ks || n != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'kernel_shape' must have %d values", nsp);
    for (int d = 0; d < nsp; d++)
        g.k[d] = ks[d];
    KILN_TRY(kiln_conv_read_attrs(&g, c->node, false));
    int64_t inf[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    inf[0] = X->dims[0];
    inf[1] = X->dims[1];
    for (int d = 0; d < nsp; d++) {
        if (X->dims[d + 2] > KILN_CONV_MAX_DIM)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "spatial dimension %d is too large", d);
        inf[d + 2] = (X->dims[d + 2] - 1) * g.stride[d] + g.k[d] - g.pb[d] - g.pe[d];
        if (inf[d + 2] < 0)
            return kiln_fail(KILN_ERR_INVALID, "unpooled size along spatial dimension %d is out of range", d);
    }
    memcpy(dims, inf, sizeof(int64_t) * (size_t)X->rank);
    if (S) {
        if (S->dtype != KILN_DTYPE_INT64 || S->rank != 1 || S->numel != X->rank)
            return kiln_fail(KILN_ERR_INVALID, "output_shape must be an int64 vector of %d values", X->rank);
        for (int d = 0; d < X->rank; d++) {
            dims[d] = ((const int64_t *)S->data)[d];
            if (dims[d] < inf[d])
                return kiln_fail(KILN_ERR_INVALID, "output_shape[%d] = %lld is smaller than the unpooled size %lld", d,
                                 (long long)dims[d], (long long)inf[d]);
        }
    }
    int64_t inf_numel;
    KILN_TRY(kiln_dims_numel(X->rank, inf, &inf_numel));
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, X->rank, dims, &Y));
    if (Y->nbytes)
        memset(Y->data, 0, Y->nbytes);
    size_t es = kiln_dtype_size(X->dtype);
    const int64_t *ip = I->data;
    for (int64_t i = 0; i < X->numel; i++) {
        int64_t idx = ip[i];
        if (idx < 0 || idx >= inf_numel)
            return kiln_fail(KILN_ERR_INVALID, "index I[%lld] = %lld is outside the unpooled tensor (%lld elements)",
                             (long long)i, (long long)idx, (long long)inf_numel);
        int64_t out = 0, mul = 1;
        for (int d = X->rank - 1; d >= 0; d--) {
            out += (idx % inf[d]) * mul;
            idx /= inf[d];
            mul *= dims[d];
        }
        memcpy((char *)Y->data + (size_t)out * es, (const char *)X->data + (size_t)i * es, es);
    }
    return KILN_OK;
}

static kiln_status maxpool_exec(kiln_op_ctx *c) { return pool_run(c, POOL_MAX, false, true, true); }
static kiln_status avgpool_v1(kiln_op_ctx *c) { return pool_run(c, POOL_AVG, false, false, false); }
static kiln_status avgpool_v10(kiln_op_ctx *c) { return pool_run(c, POOL_AVG, false, false, true); }
static kiln_status avgpool_v19(kiln_op_ctx *c) { return pool_run(c, POOL_AVG, false, true, true); }
static kiln_status lppool_v1(kiln_op_ctx *c) { return pool_run(c, POOL_LP, false, false, false); }
static kiln_status lppool_v18(kiln_op_ctx *c) { return pool_run(c, POOL_LP, false, true, true); }
static kiln_status gmaxpool_exec(kiln_op_ctx *c) { return pool_run(c, POOL_MAX, true, false, false); }
static kiln_status gavgpool_exec(kiln_op_ctx *c) { return pool_run(c, POOL_AVG, true, false, false); }
static kiln_status glppool_exec(kiln_op_ctx *c) { return pool_run(c, POOL_LP, true, false, false); }

/* ---- shape rules ---- */

/* Pools keep N and C; the window comes from the shared geometry. MaxPool's
 * Indices (output 1) are int64 of the same shape. */
static kiln_status pool_infer(kiln_infer_ctx *x, bool dil, bool ceil) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank >= 3) {
        o->rank = X->rank;
        o->dims[0] = X->dims[0];
        o->dims[1] = X->dims[1];
        for (int d = 2; d < X->rank; d++)
            o->dims[d] = kiln_sd_unknown();
        KILN_TRY(kiln_infer_window(x, X, NULL, dil, ceil && kiln_attr_int(x->node, "ceil_mode", 0) != 0, o));
    }
    if (x->n_out > 1) {
        x->out[1] = *o;
        x->out[1].dt = KILN_DTYPE_INT64;
    }
    return KILN_OK;
}
/* as exec reads them: dilations and ceil_mode where the version has them */
static kiln_status window_pool_infer(kiln_infer_ctx *x) { return pool_infer(x, true, true); }
static kiln_status pool_infer_plain(kiln_infer_ctx *x) { return pool_infer(x, false, false); }
static kiln_status pool_infer_ceil(kiln_infer_ctx *x) { return pool_infer(x, false, true); }

static kiln_status global_pool_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank >= 2) {
        o->rank = X->rank;
        o->dims[0] = X->dims[0];
        o->dims[1] = X->dims[1];
        for (int i = 2; i < X->rank; i++)
            o->dims[i] = kiln_sd_const(1);
    }
    return KILN_OK;
}

/* MaxUnpool: output_shape (input 2) when given, else the pooling inverse
 * (stride * (in - 1) + kernel - pads) on known dims. */
static kiln_status maxunpool_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (kiln_infer_has(x, 2)) {
        const kiln_shape_fact *S = kiln_infer_in(x, 2);
        if (S->nval >= 0 && S->nval <= KILN_MAX_RANK) {
            o->rank = S->nval;
            memcpy(o->dims, S->val, (size_t)S->nval * sizeof *S->val);
        }
        return KILN_OK;
    }
    if (X->rank < 3)
        return KILN_OK;
    int nsp = X->rank - 2;
    int64_t k[KILN_MAX_RANK], s[KILN_MAX_RANK], p[2 * KILN_MAX_RANK];
    int nk, ns, np;
    if (!kiln_infer_ints(x, -1, "kernel_shape", k, &nk, KILN_MAX_RANK) || nk != nsp)
        return KILN_OK;
    if (!kiln_infer_ints(x, -1, "strides", s, &ns, KILN_MAX_RANK))
        for (ns = 0; ns < nsp; ns++)
            s[ns] = 1;
    if (!kiln_infer_ints(x, -1, "pads", p, &np, 2 * KILN_MAX_RANK))
        for (np = 0; np < 2 * nsp; np++)
            p[np] = 0;
    if (ns != nsp || np != 2 * nsp)
        return KILN_OK;
    o->rank = X->rank;
    o->dims[0] = X->dims[0];
    o->dims[1] = X->dims[1];
    for (int d = 0; d < nsp; d++)
        o->dims[2 + d] = kiln_sd_is_const(&X->dims[2 + d])
                             ? kiln_sd_const(s[d] * (X->dims[2 + d].num - 1) + k[d] - p[d] - p[nsp + d])
                             : kiln_sd_unknown();
    return KILN_OK;
}

/* MaxPool's later opsets only add attributes (Indices/storage_order 8,
 * ceil_mode and dilations 10, int8/uint8 12, bfloat16 22), all defaulting to
 * the older behaviour. AveragePool gains ceil_mode in 10 and dilations in 19,
 * LpPool both in 18 (bfloat16 in 22). */
static const kiln_op_desc ops[] = {
    {"", "MaxPool", 1, 0, maxpool_exec, window_pool_infer},
    {"", "AveragePool", 1, 9, avgpool_v1, pool_infer_plain},
    {"", "AveragePool", 10, 18, avgpool_v10, pool_infer_ceil},
    {"", "AveragePool", 19, 0, avgpool_v19, window_pool_infer},
    {"", "LpPool", 1, 17, lppool_v1, pool_infer_plain},
    {"", "LpPool", 18, 0, lppool_v18, window_pool_infer},
    {"", "GlobalMaxPool", 1, 0, gmaxpool_exec, global_pool_infer},
    {"", "GlobalAveragePool", 1, 0, gavgpool_exec, global_pool_infer},
    {"", "GlobalLpPool", 1, 0, glppool_exec, global_pool_infer},
    {"", "MaxUnpool", 9, 0, maxunpool_exec, maxunpool_infer},
};
KILN_OP_FAMILY(pool, ops);
