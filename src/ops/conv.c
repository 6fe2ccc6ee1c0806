/* Conv (1-D/2-D/3-D, groups, dilations, strides, pads, auto_pad, bias) and
 * the integer forms ConvInteger and QLinearConv.
 *
 * Core (float32 and float64): im2col tiles + GEMM per (image, group, tile of
 * output positions); 1x1 stride-1 unpadded convs run GEMM straight on the
 * input; depthwise convs (one input channel per group, <= 2 spatial dims)
 * use kernels/depthwise.h (float32) or a direct kernel. Work items are
 * spread over the session's threads, each thread owning one slot of a
 * single bounded im2col allocation.
 * float16 runs through float32; the integer forms through float64 (exact: every
 * partial sum of int8/uint8 products fits in 53 bits).
 */
/* The fused clamp loops: see clip.c on GCC 12's -O2 vectorisation model. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_attrs.h"
#include "kernels/conv.h"
#include "kernels/depthwise.h"
#include "kernels/gemm.h"
#include "kernels/sgemm.h"
#include "kernels/winograd.h"
#include "kernels/valio.h"
#include "ops/op.h"

/* im2col budget: 32 MiB shared by the threads, at least 2 MiB per slot
 * (a slot may exceed it only when a 32-position tile alone does). */
#define CONV_SCRATCH_BYTES ((int64_t)1 << 25)
#define CONV_SLOT_MIN_BYTES ((int64_t)1 << 21)

typedef enum { CONV_IM2COL, CONV_POINTWISE, CONV_DEPTHWISE } conv_mode;

typedef struct conv_job {
    const kiln_conv_geom *g;
    const void *x, *w, *b;
    void *y;
    int64_t C, M, G, Cg, Mg, Kd; /* Kd = Cg * kernel size: GEMM depth */
    int64_t tile, ntiles, items, parts;
    int64_t mblk, nmblk; /* output-channel blocks of a group (threads on small images) */
    conv_mode mode;
    bool clamp;      /* fused activation: y = min(max(y, lo), hi) */
    double lo, hi;
    void *scratch;
    int64_t slot; /* elements per thread slot */
    const float *pa; /* float32: the weights packed per group (kernels/sgemm.h) */
    size_t pa_group;
    kiln_threads *gemm_pool; /* one work item only: the GEMM splits itself over the threads */
} conv_job;

/* float32 with packed weights: the tile y = act(W rows [m0, m0 + mc) of
 * group grp times B + bias), bias and clamp applied in registers. */
static void conv_gemm_packed(const conv_job *j, int64_t grp, int64_t m0, int64_t mc, int64_t cnt, int64_t kd,
                             const void *bm, int64_t ldb, const void *bg, void *yg, int64_t ldy) {
    kiln_sgemm_epilogue ep = {.row_bias = bg, .clamp = j->clamp, .lo = (float)j->lo, .hi = (float)j->hi};
    const float *pa = j->pa + (size_t)grp * j->pa_group + (size_t)m0 * (size_t)kd; /* m0: a multiple of 8 */
    kiln_sgemm_packed_a(j->gemm_pool, (size_t)mc, (size_t)cnt, (size_t)kd, pa, bm, (size_t)ldb, 0.0f, yg,
                        (size_t)ldy, bg || j->clamp ? &ep : NULL);
}

/* Clamps rows x cols of y (row stride ld) to the fused activation's range. */
#define CONV_CLAMP(T, j, y, rows, cols, ld)                                                                    \
    do {                                                                                                       \
        const T lo_ = (T)(j)->lo, hi_ = (T)(j)->hi;                                                            \
        for (int64_t r_ = 0; r_ < (rows); r_++) {                                                              \
            T *yr_ = (y) + r_ * (ld);                                                                          \
            for (int64_t i_ = 0; i_ < (cols); i_++) {                                                          \
                T v_ = yr_[i_] < lo_ ? lo_ : yr_[i_];                                                          \
                yr_[i_] = v_ > hi_ ? hi_ : v_;                                                                 \
            }                                                                                                  \
        }                                                                                                      \
    } while (0)

/* float32 planes kiln_depthwise_f32 has no scratch for */
static void depthwise_act_f32(const conv_job *j, const float *x, const float *w, float bias, float *y,
                              float *col) {
    (void)col;
    kiln_conv_depthwise(j->g, x, w, bias, y);
    if (j->clamp)
        CONV_CLAMP(float, j, y, 1, j->g->out_size, 0);
}
static void depthwise_act_f64(const conv_job *j, const double *x, const double *w, double bias, double *y,
                              double *col) {
    (void)col;
    kiln_conv_depthwise_f64(j->g, x, w, bias, y);
    if (j->clamp)
        CONV_CLAMP(double, j, y, 1, j->g->out_size, 0);
}

#define CONV_DEFINE(SFX, T, GEMM, IM2COL, DEPTHWISE)                                                               \
    static void conv_item_##SFX(const conv_job *j, int64_t it, T *col) {                                       \
        const kiln_conv_geom *g = j->g;                                                                        \
        const T *x = j->x, *w = j->w, *b = j->b;                                                               \
        T *y = j->y;                                                                                           \
        int64_t IS = g->in_size, OS = g->out_size;                                                             \
        if (j->mode == CONV_DEPTHWISE) {                                                                       \
            int64_t n = it / j->M, oc = it % j->M, ic = oc / j->Mg;                                            \
            DEPTHWISE(j, x + (n * j->C + ic) * IS, w + oc * g->k_size, b ? b[oc] : (T)0, y + it * OS, col);         \
            return;                                                                                            \
        }                                                                                                      \
        int64_t mb = it % j->nmblk;                                                                            \
        it /= j->nmblk;                                                                                        \
        int64_t t = it % j->ntiles, ng = it / j->ntiles, grp = ng % j->G, n = ng / j->G;                       \
        int64_t o0 = t * j->tile, cnt = OS - o0 < j->tile ? OS - o0 : j->tile;                                 \
        int64_t m0 = mb * j->mblk, mc = j->Mg - m0 < j->mblk ? j->Mg - m0 : j->mblk;                           \
        const T *xg = x + (n * j->C + grp * j->Cg) * IS;                                                       \
        T *yg = y + (n * j->M + grp * j->Mg + m0) * OS + o0;                                                   \
        const T *wg = w + (grp * j->Mg + m0) * j->Kd;                                                          \
        const T *bg = b ? b + grp * j->Mg + m0 : NULL;                                                         \
        bool pw = j->mode == CONV_POINTWISE;                                                                   \
        const T *bm = pw ? xg + o0 : col;                                                                      \
        int64_t kd = pw ? j->Cg : j->Kd, ldb = pw ? IS : cnt;                                                  \
        if (!pw)                                                                                               \
            IM2COL(g, xg, j->Cg, o0, cnt, col);                                                                \
        if (j->pa) {                                                                                           \
            conv_gemm_packed(j, grp, m0, mc, cnt, kd, bm, ldb, bg, yg, OS);                                    \
            return;                                                                                            \
        }                                                                                                      \
        /* bias alone: start C at the bias and let GEMM accumulate (beta 1 also                               \
         * spares BLAS its zeroing pass); with a clamp, one epilogue pass does both */                        \
        bool prefill = bg && !j->clamp;                                                                        \
        if (prefill)                                                                                           \
            for (int64_t oc = 0; oc < mc; oc++) {                                                              \
                T bv = bg[oc], *yr = yg + oc * OS;                                                             \
                for (int64_t i = 0; i < cnt; i++)                                                              \
                    yr[i] = bv;                                                                                \
            }                                                                                                  \
        GEMM(false, false, mc, cnt, kd, (T)1, wg, j->Kd, bm, ldb, prefill ? (T)1 : (T)0, yg, OS);              \
        /* epilogue on the tile while it is in cache: bias, then the fused clamp */                           \
        if (bg && j->clamp) { /* one pass for both */                                                          \
            const T lo = (T)j->lo, hi = (T)j->hi;                                                              \
            for (int64_t oc = 0; oc < mc; oc++) {                                                              \
                T bv = bg[oc], *yr = yg + oc * OS;                                                             \
                for (int64_t i = 0; i < cnt; i++) {                                                            \
                    T v = yr[i] + bv;                                                                          \
                    v = v < lo ? lo : v;                                                                       \
                    yr[i] = v > hi ? hi : v;                                                                   \
                }                                                                                              \
            }                                                                                                  \
        } else if (j->clamp)                                                                                   \
            CONV_CLAMP(T, j, yg, mc, cnt, OS);                                                                 \
    }                                                                                                          \
    static void conv_parts_##SFX(void *arg, size_t begin, size_t end) {                                        \
        const conv_job *j = arg;                                                                               \
        for (size_t p = begin; p < end; p++) {                                                                 \
            int64_t lo = (int64_t)p * j->items / j->parts, hi = ((int64_t)p + 1) * j->items / j->parts;        \
            T *col = j->scratch ? (T *)j->scratch + (int64_t)p * j->slot : NULL;                               \
            for (int64_t it = lo; it < hi; it++)                                                               \
                conv_item_##SFX(j, it, col);                                                                   \
        }                                                                                                      \
    }

CONV_DEFINE(f32, float, kiln_sgemm, kiln_im2col, depthwise_act_f32)
CONV_DEFINE(f64, double, kiln_dgemm, kiln_im2col_f64, depthwise_act_f64)

/* Prepared state of a float32 Conv with constant weights, made at the
 * first call that needs it (which one depends on the input's size): the
 * Winograd filters, or the weights packed for the GEMM (kernels/sgemm.h),
 * one packed Mg x Kd matrix per group. */
typedef struct conv_prep {
    const kiln_tensor *w; /* the weights it was made for */
    float *U[2];          /* F(2x2), F(4x4) */
    float *pa;
    size_t pa_group;      /* floats per group in pa */
} conv_prep;

static kiln_status conv_prepare(const kiln_prep_ctx *p, void **state) {
    const kiln_tensor *W = p->n_in > 1 ? p->in[1] : NULL;
    int64_t G = kiln_attr_int(p->node, "group", 1);
    /* depthwise convs (one input channel per group) read W as it is */
    if (!W || W->dtype != KILN_DTYPE_FLOAT || W->rank < 3 || W->numel == 0 || (W->dims[1] == 1 && G > 1))
        return KILN_OK;
    conv_prep *cp = kiln_calloc(1, sizeof *cp);
    if (!cp)
        return KILN_ERR_NOMEM;
    cp->w = W;
    *state = cp;
    return KILN_OK;
}

static void conv_release(void *state) {
    conv_prep *cp = state;
    free(cp->U[0]);
    free(cp->U[1]);
    free(cp->pa);
    free(cp);
}

/* The weights packed for the GEMM, G groups of Mg x Kd: prepared ones, made
 * now at the first call; else packed into this call's scratch. */
static kiln_status conv_packed_weights(kiln_op_ctx *c, const conv_job *j, const float *w, const float **pa,
                                       size_t *per) {
    conv_prep *cp = c->prep;
    *per = kiln_sgemm_pack_a_size((size_t)j->Mg, (size_t)j->Kd);
    size_t total;
    if (*per == SIZE_MAX || kiln_mul_overflow_size(*per, (size_t)j->G, &total) ||
        kiln_mul_overflow_size(total, sizeof(float), &total))
        return kiln_fail(KILN_ERR_INVALID, "Conv packed weights size overflows");
    bool mine = cp && cp->w->data == (const void *)w && cp->w->numel == j->M * j->Kd;
    if (mine && cp->pa) {
        *pa = cp->pa;
        return KILN_OK;
    }
    float *dst;
    if (mine) {
        if (!(dst = kiln_malloc(total ? total : 1)))
            return KILN_ERR_NOMEM;
        cp->pa = dst;
    } else
        KILN_TRY(kiln_op_scratch(c, total, (void **)&dst));
    for (int64_t g = 0; g < j->G; g++)
        kiln_sgemm_pack_a(false, (size_t)j->Mg, (size_t)j->Kd, 1.0f, w + g * j->Mg * j->Kd, (size_t)j->Kd,
                          dst + (size_t)g * *per);
    *pa = dst;
    return KILN_OK;
}

/* The prepared Winograd filters for this call, made now if this is the
 * first; NULL when there are none for these weights. */
static kiln_status conv_wino_filters(kiln_op_ctx *c, const kiln_conv_geom *g, int64_t C, int64_t M, const void *w,
                                     const float **U) {
    conv_prep *cp = c->prep;
    *U = NULL;
    if (!cp || cp->w->data != w || cp->w->dims[0] != M || cp->w->dims[1] != C)
        return KILN_OK;
    bool f4 = kiln_winograd_f4(g, C);
    if (!cp->U[f4]) {
        size_t n;
        KILN_TRY(kiln_winograd_filter_size(C, M, f4, &n));
        float *u = kiln_malloc(n * sizeof(float));
        if (!u)
            return KILN_ERR_NOMEM;
        kiln_status st = kiln_winograd_filter(kiln_op_pool(c), C, M, f4, w, u);
        if (st != KILN_OK) {
            free(u);
            return st;
        }
        cp->U[f4] = u;
    }
    *U = cp->U[f4];
    return KILN_OK;
}

/* Runs the conv core: x [N, C, in...], w [M, C/G, k...], b [M] or NULL, all
 * float32 (dbl false) or float64 (dbl true). */
static kiln_status conv_core(kiln_op_ctx *c, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M, int64_t G,
                             bool dbl, const void *x, const void *w, const void *b, void *y) {
    conv_job j;
    memset(&j, 0, sizeof j);
    j.clamp = c->act.on;
    j.lo = c->act.lo;
    j.hi = c->act.hi;
    j.g = g;
    j.x = x;
    j.w = w;
    j.b = b;
    j.y = y;
    j.C = C;
    j.M = M;
    j.G = G;
    j.Cg = C / G;
    j.Mg = M / G;
    if (kiln_mul_overflow_i64(j.Cg, g->k_size, &j.Kd))
        return kiln_fail(KILN_ERR_INVALID, "kernel size overflows");
    kiln_range_fn fn = dbl ? conv_parts_f64 : conv_parts_f32;
    int64_t es = dbl ? 8 : 4;
    int threads = kiln_op_threads(c);
    kiln_gemm_init();
    if (j.Cg == 1 && G > 1 && g->nsp <= 2 && !dbl && kiln_depthwise_suits(g)) {
        kiln_dw_params p = {.N = N, .C = C, .M = M, .clamp = j.clamp, .lo = (float)j.lo, .hi = (float)j.hi};
        kiln_threads *pool = kiln_op_pool(c);
        size_t bytes = (size_t)kiln_depthwise_scratch(g, &p, pool) * sizeof(float); /* <= threads * 16 MiB */
        void *s;
        KILN_TRY(kiln_op_scratch(c, bytes, &s));
        kiln_depthwise_f32(g, &p, x, w, b, y, s, pool);
        return KILN_OK;
    }
    if (j.Cg == 1 && G > 1 && g->nsp <= 2) {
        j.mode = CONV_DEPTHWISE;
        j.items = j.parts = N * M; /* one item per part: no scratch */
        double work = (double)g->out_size * (double)g->k_size;
        size_t grain = work >= 32768.0 ? 1 : (size_t)(32768.0 / (work + 1.0));
        kiln_parallel_for(c, (size_t)j.items, grain, fn, &j);
        return KILN_OK;
    }
    if (!dbl && kiln_winograd_suits(g, C, M, G)) {
        const float *U;
        KILN_TRY(conv_wino_filters(c, g, C, M, w, &U));
        return kiln_winograd_conv(kiln_op_pool(c), g, N, C, M, x, w, U, b, y, j.clamp, j.clamp ? (float)j.lo : 0.0f,
                                  j.clamp ? (float)j.hi : 0.0f);
    }
    if (!kiln_gemm_dims_ok(j.Mg, g->out_size, j.Kd))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Conv GEMM dimensions exceed the BLAS int range");
    bool unit = true;
    for (int d = 0; d < g->nsp; d++)
        if (g->k[d] != 1 || g->stride[d] != 1 || g->pb[d] != 0 || g->pe[d] != 0)
            unit = false;
    j.mode = unit ? CONV_POINTWISE : CONV_IM2COL;
    int64_t OS = g->out_size;
    int64_t slot_bytes = CONV_SCRATCH_BYTES / threads;
    if (slot_bytes < CONV_SLOT_MIN_BYTES)
        slot_bytes = CONV_SLOT_MIN_BYTES;
    j.tile = OS;
    /* keep an output tile (Mg x tile) near 256 KiB so the epilogue finds it
     * in cache */
    while (j.tile > 256 && j.Mg * j.tile > 65536)
        j.tile = (j.tile + 1) / 2;
    /* bound the im2col slot, then split further until every thread has work */
    if (j.mode == CONV_IM2COL)
        while (j.tile > 32 && j.Kd > slot_bytes / es / j.tile)
            j.tile = (j.tile + 1) / 2;
    j.ntiles = (OS + j.tile - 1) / j.tile;
    while (N * G * j.ntiles < threads && j.tile >= 128) {
        j.tile = (j.tile + 1) / 2;
        j.ntiles = (OS + j.tile - 1) / j.tile;
    }
    /* still fewer items than threads (small images): split the output
     * channels too, in blocks of 8 rows (a packed weight panel) */
    j.mblk = j.Mg;
    j.nmblk = 1;
    if (N * G * j.ntiles < threads && j.Mg >= 16) {
        int64_t want = threads / (N * G * j.ntiles);
        j.mblk = ((j.Mg + want - 1) / want + 7) / 8 * 8;
        j.nmblk = (j.Mg + j.mblk - 1) / j.mblk;
    }
    if (!dbl)
        KILN_TRY(conv_packed_weights(c, &j, w, &j.pa, &j.pa_group));
    j.items = N * G * j.ntiles * j.nmblk;
    j.parts = j.items < threads ? j.items : threads;
    j.slot = 0;
    if (j.mode == CONV_IM2COL) {
        size_t bytes;
        if (kiln_mul_overflow_i64(j.Kd, j.tile, &j.slot) ||
            kiln_mul_overflow_size((size_t)j.slot, (size_t)j.parts, &bytes) ||
            kiln_mul_overflow_size(bytes, (size_t)es, &bytes))
            return kiln_fail(KILN_ERR_INVALID, "Conv im2col buffer size overflows");
        KILN_TRY(kiln_op_scratch(c, bytes, &j.scratch));
    }
    if (j.parts == 1 && threads > 1)
        j.gemm_pool = kiln_op_pool(c);
    kiln_parallel_for(c, (size_t)j.parts, 1, fn, &j);
    return KILN_OK;
}

/* Validates X/W shapes and attributes, fills the geometry and output dims. */
static kiln_status conv_setup(kiln_op_ctx *c, const kiln_tensor *X, const kiln_tensor *W, int64_t *G,
                              kiln_conv_geom *g, int64_t *dims) {
    if (X->rank < 3 || X->rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", X->rank);
    if (W->rank != X->rank)
        return kiln_fail(KILN_ERR_INVALID, "W has rank %d, X has rank %d", W->rank, X->rank);
    *G = kiln_attr_int(c->node, "group", 1);
    int64_t C = X->dims[1], M = W->dims[0];
    if (*G < 1 || C % *G != 0 || M % *G != 0 || W->dims[1] != C / *G) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID, "W shape %s does not match %lld input channels with group %lld",
                         kiln_dims_str(W->rank, W->dims, s, sizeof s), (long long)C, (long long)*G);
    }
    memset(g, 0, sizeof *g);
    g->nsp = X->rank - 2;
    for (int d = 0; d < g->nsp; d++) {
        g->in[d] = X->dims[d + 2];
        g->k[d] = W->dims[d + 2];
    }
    size_t nks;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &nks);
    if (ks) {
        if (nks != (size_t)g->nsp)
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values, expected %d", nks, g->nsp);
        for (int d = 0; d < g->nsp; d++)
            if (ks[d] != g->k[d])
                return kiln_fail(KILN_ERR_INVALID, "kernel_shape[%d] = %lld differs from W's dimension %lld", d,
                                 (long long)ks[d], (long long)g->k[d]);
    }
    KILN_TRY(kiln_conv_read_attrs(g, c->node, true));
    KILN_TRY(kiln_conv_forward_shape(g, false));
    dims[0] = X->dims[0];
    dims[1] = M;
    for (int d = 0; d < g->nsp; d++)
        dims[d + 2] = g->out[d];
    return KILN_OK;
}

static kiln_status conv_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *W = c->in[1], *B = kiln_op_in(c, 2);
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (W->dtype != X->dtype || (B && B->dtype != X->dtype))
        return kiln_fail(KILN_ERR_INVALID, "X, W%s must have the same element type", B ? " and B" : "");
    int64_t G, dims[KILN_MAX_RANK];
    kiln_conv_geom g;
    KILN_TRY(conv_setup(c, X, W, &G, &g, dims));
    int64_t N = dims[0], C = X->dims[1], M = dims[1];
    if (B && (B->rank != 1 || B->dims[0] != M))
        return kiln_fail(KILN_ERR_INVALID, "B must be a vector of %lld values (one per output channel)", (long long)M);
    if (c->act.on && c->act.dtype != KILN_DTYPE_UNDEFINED && c->act.dtype != X->dtype)
        return kiln_fail(KILN_ERR_INVALID, "the fused Clip's bounds have element type %s, its input %s",
                         kiln_dtype_name(c->act.dtype), kiln_dtype_name(X->dtype));
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, X->rank, dims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    if (W->numel == 0) { /* no input channels: bias only */
        for (int64_t i = 0; i < Y->numel; i++) {
            double v = B ? kiln_tensor_get_f64(B, (i / g.out_size) % M) : 0.0;
            if (c->act.on) {
                v = v < c->act.lo ? c->act.lo : v;
                v = v > c->act.hi ? c->act.hi : v;
            }
            if (X->dtype == KILN_DTYPE_FLOAT)
                ((float *)Y->data)[i] = (float)v;
            else if (X->dtype == KILN_DTYPE_DOUBLE)
                ((double *)Y->data)[i] = v;
            else if (X->dtype == KILN_DTYPE_BFLOAT16)
                ((uint16_t *)Y->data)[i] = kiln_float_to_bf16((float)v);
            else
                ((uint16_t *)Y->data)[i] = kiln_float_to_half((float)v);
        }
        return KILN_OK;
    }
    if (X->dtype != KILN_DTYPE_FLOAT16 && X->dtype != KILN_DTYPE_BFLOAT16)
        return conv_core(c, &g, N, C, M, G, X->dtype == KILN_DTYPE_DOUBLE, X->data, W->data, B ? B->data : NULL,
                         Y->data);
    /* float16 / bfloat16 (opset 22): widen into one scratch block, run float32, narrow */
    float *s, *part[4];
    KILN_TRY(kiln_conv_widen(X, W, B, Y->numel, "Conv", &s, part));
    kiln_status st = conv_core(c, &g, N, C, M, G, false, part[0], part[1], B ? part[2] : NULL, part[3]);
    if (st == KILN_OK)
        kiln_conv_narrow(part[3], Y);
    free(s);
    return st;
}

static inline double conv_u8i8(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_DTYPE_UINT8 ? (double)((const uint8_t *)t->data)[i] : (double)((const int8_t *)t->data)[i];
}

static kiln_status conv_qparam(const kiln_tensor *t, const char *name, int64_t per, kiln_dtype want) {
    if (!t)
        return KILN_OK;
    if (t->dtype != want)
        return kiln_fail(KILN_ERR_INVALID, "%s must have element type %s, got %s", name, kiln_dtype_name(want),
                         kiln_dtype_name(t->dtype));
    if (t->numel == 1 || (per > 0 && t->rank == 1 && t->dims[0] == per))
        return KILN_OK;
    return kiln_fail(KILN_ERR_INVALID, "%s must be a scalar%s (got %lld values)", name,
                     per > 0 ? " or have one value per output channel" : "", (long long)t->numel);
}

/* ConvInteger: (x - x_zero_point) conv (w - w_zero_point) in int32.
 * QLinearConv: that sum plus the int32 bias B, requantized:
 * saturate(round_half_even(acc * x_scale * w_scale / y_scale) + y_zero_point).
 * Weight zero point and scale are per tensor or per output channel. */
static kiln_status conv_integer(kiln_op_ctx *c, bool qlinear) {
    KILN_TRY(kiln_op_need_inputs(c, qlinear ? 8 : 2));
    size_t iw = qlinear ? 3 : 1;
    const kiln_tensor *X = c->in[0], *W = c->in[iw], *xz = kiln_op_in(c, 2),
                      *wz = kiln_op_in(c, qlinear ? 5 : 3), *B = qlinear ? kiln_op_in(c, 8) : NULL;
    static const kiln_dtype ok[] = {KILN_DTYPE_INT8, KILN_DTYPE_UINT8};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, 2));
    KILN_TRY(kiln_op_need_dtype(c, iw, ok, 2));
    int64_t G, dims[KILN_MAX_RANK];
    kiln_conv_geom g;
    KILN_TRY(conv_setup(c, X, W, &G, &g, dims));
    int64_t M = dims[1];
    KILN_TRY(conv_qparam(xz, "x_zero_point", 0, X->dtype));
    KILN_TRY(conv_qparam(wz, "w_zero_point", M, W->dtype));
    kiln_dtype ydt = KILN_DTYPE_INT32;
    const kiln_tensor *xs = NULL, *ws = NULL, *ys = NULL, *yz = NULL;
    if (qlinear) {
        xs = c->in[1];
        ws = c->in[4];
        ys = kiln_op_in(c, 6);
        yz = kiln_op_in(c, 7);
        if (!ys || !yz)
            return kiln_fail(KILN_ERR_INVALID, "y_scale and y_zero_point are required");
        KILN_TRY(conv_qparam(xs, "x_scale", 0, KILN_DTYPE_FLOAT));
        KILN_TRY(conv_qparam(ws, "w_scale", M, KILN_DTYPE_FLOAT));
        KILN_TRY(conv_qparam(ys, "y_scale", 0, KILN_DTYPE_FLOAT));
        if (yz->dtype != KILN_DTYPE_UINT8 && yz->dtype != KILN_DTYPE_INT8)
            return kiln_fail(KILN_ERR_INVALID, "y_zero_point must be int8 or uint8");
        KILN_TRY(conv_qparam(yz, "y_zero_point", 0, yz->dtype));
        if (B && (B->dtype != KILN_DTYPE_INT32 || B->rank != 1 || B->dims[0] != M))
            return kiln_fail(KILN_ERR_INVALID, "B must be an int32 vector of %lld values", (long long)M);
        ydt = yz->dtype;
    }
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, ydt, X->rank, dims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    size_t total = 0;
    size_t parts[3] = {(size_t)X->numel, (size_t)W->numel, (size_t)Y->numel};
    for (int i = 0; i < 3; i++)
        if (__builtin_add_overflow(total, parts[i], &total))
            return kiln_fail(KILN_ERR_INVALID, "integer Conv scratch size overflows");
    if (kiln_mul_overflow_size(total, sizeof(double), &total))
        return kiln_fail(KILN_ERR_INVALID, "integer Conv scratch size overflows");
    double *s = kiln_malloc(total);
    if (!s)
        return KILN_ERR_NOMEM;
    double *dx = s, *dw = s + parts[0], *dy = dw + parts[1];
    double xzv = xz ? conv_u8i8(xz, 0) : 0.0;
    for (int64_t i = 0; i < X->numel; i++)
        dx[i] = conv_u8i8(X, i) - xzv;
    int64_t per_oc = W->numel / M; /* M > 0: Y is not empty */
    for (int64_t i = 0; i < W->numel; i++)
        dw[i] = conv_u8i8(W, i) - (wz ? conv_u8i8(wz, wz->numel == 1 ? 0 : i / per_oc) : 0.0);
    kiln_status st = KILN_OK;
    if (W->numel == 0)
        memset(dy, 0, (size_t)Y->numel * sizeof(double));
    else
        st = conv_core(c, &g, dims[0], X->dims[1], M, G, true, dx, dw, NULL, dy);
    for (int64_t i = 0; st == KILN_OK && i < Y->numel; i++) {
        int64_t oc = (i / g.out_size) % M;
        int32_t acc = (int32_t)(int64_t)llrint(dy[i]); /* exact; wraps like int32 accumulation */
        if (!qlinear) {
            ((int32_t *)Y->data)[i] = acc;
            continue;
        }
        if (B)
            acc = (int32_t)(uint32_t)((uint32_t)acc + (uint32_t)((const int32_t *)B->data)[oc]);
        float scale = *(const float *)xs->data * ((const float *)ws->data)[ws->numel == 1 ? 0 : oc] /
                      *(const float *)ys->data;
        kiln_store_q8(Y->data, ydt, i, nearbyintf((float)acc * scale) + (float)conv_u8i8(yz, 0));
    }
    free(s);
    return st;
}

static kiln_status convinteger_exec(kiln_op_ctx *c) { return conv_integer(c, false); }
static kiln_status qlinearconv_exec(kiln_op_ctx *c) { return conv_integer(c, true); }

/* ---- shape rules ---- */

/* [N, M, spatial...]: M from W, the window from the shared geometry. x_i,
 * w_i: the positions of X and W; out_dt: the output type (UNDEFINED: X's). */
static kiln_status conv_infer_at(kiln_infer_ctx *x, size_t x_i, size_t w_i, kiln_dtype out_dt) {
    const kiln_shape_fact *X = kiln_infer_in(x, x_i), *W = kiln_infer_in(x, w_i);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = out_dt != KILN_DTYPE_UNDEFINED ? out_dt : X->dt;
    if (X->rank < 3 || W->rank != X->rank)
        return KILN_OK;
    int64_t k[KILN_MAX_RANK];
    size_t nk;
    const int64_t *ks = kiln_attr_ints(x->node, "kernel_shape", &nk);
    for (int d = 0; d < X->rank - 2; d++) {
        if (ks) {
            if (nk != (size_t)(X->rank - 2))
                return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values for %d spatial dims", nk, X->rank - 2);
            k[d] = ks[d];
        } else if (kiln_sd_is_const(&W->dims[2 + d])) {
            k[d] = W->dims[2 + d].num;
        } else {
            return KILN_OK;
        }
    }
    o->rank = X->rank;
    o->dims[0] = X->dims[0];
    o->dims[1] = W->dims[0];
    for (int d = 2; d < X->rank; d++)
        o->dims[d] = kiln_sd_unknown();
    return kiln_infer_window(x, X, k, true, false, o);
}
static kiln_status conv_infer(kiln_infer_ctx *x) { return conv_infer_at(x, 0, 1, KILN_DTYPE_UNDEFINED); }
static kiln_status convinteger_infer(kiln_infer_ctx *x) { return conv_infer_at(x, 0, 1, KILN_DTYPE_INT32); }
/* QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B) */
static kiln_status qlinearconv_infer(kiln_infer_ctx *x) { return conv_infer_at(x, 0, 3, kiln_infer_in(x, 7)->dt); }

static const kiln_op_desc ops[] = {
    {"", "Conv", 1, 0, conv_exec, conv_infer, conv_prepare, conv_release},
    {"", "ConvInteger", 10, 0, convinteger_exec, convinteger_infer},
    {"", "QLinearConv", 10, 0, qlinearconv_exec, qlinearconv_infer},
};
KILN_OP_FAMILY(conv, ops);
