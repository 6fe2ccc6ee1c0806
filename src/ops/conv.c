/* Conv (1-D/2-D/3-D, groups, dilations, strides, pads, auto_pad, bias).
 *
 * float32 core: im2col tiles + GEMM per (image, group, tile of output
 * positions); 1x1 stride-1 unpadded convs run GEMM straight on the input;
 * depthwise convs (one input channel per group, <= 2 spatial dims) use a
 * direct kernel. Work items are spread over the session's threads, each
 * thread owning one slot of a single bounded im2col allocation. float16 and
 * float64 run through float32.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "ops/op.h"

/* im2col slot budget per thread, in floats (16 MiB). */
#define CONV_SLOT_FLOATS ((int64_t)1 << 22)

typedef enum { CONV_IM2COL, CONV_POINTWISE, CONV_DEPTHWISE } conv_mode;

typedef struct conv_job {
    const kiln_conv_geom *g;
    const float *x, *w, *b;
    float *y;
    int64_t C, M, G, Cg, Mg, Kd; /* Kd = Cg * kernel size: GEMM depth */
    int64_t tile, ntiles, items, parts;
    conv_mode mode;
    float *scratch;
    int64_t slot; /* floats per thread slot */
} conv_job;

static void conv_item(const conv_job *j, int64_t it, float *col) {
    const kiln_conv_geom *g = j->g;
    int64_t IS = g->in_size, OS = g->out_size;
    if (j->mode == CONV_DEPTHWISE) {
        int64_t n = it / j->M, oc = it % j->M, ic = oc / j->Mg;
        kiln_conv_depthwise(g, j->x + (n * j->C + ic) * IS, j->w + oc * g->k_size, j->b ? j->b[oc] : 0.0f,
                            j->y + it * OS);
        return;
    }
    int64_t t = it % j->ntiles, ng = it / j->ntiles, grp = ng % j->G, n = ng / j->G;
    int64_t o0 = t * j->tile, cnt = OS - o0 < j->tile ? OS - o0 : j->tile;
    const float *xg = j->x + (n * j->C + grp * j->Cg) * IS;
    float *yg = j->y + (n * j->M + grp * j->Mg) * OS + o0;
    const float *wg = j->w + grp * j->Mg * j->Kd;
    if (j->b)
        for (int64_t oc = 0; oc < j->Mg; oc++) {
            float bv = j->b[grp * j->Mg + oc];
            float *yr = yg + oc * OS;
            for (int64_t i = 0; i < cnt; i++)
                yr[i] = bv;
        }
    float beta = j->b ? 1.0f : 0.0f;
    if (j->mode == CONV_POINTWISE) {
        kiln_sgemm(false, false, j->Mg, cnt, j->Cg, 1.0f, wg, j->Kd, xg + o0, IS, beta, yg, OS);
    } else {
        kiln_im2col(g, xg, j->Cg, o0, cnt, col);
        kiln_sgemm(false, false, j->Mg, cnt, j->Kd, 1.0f, wg, j->Kd, col, cnt, beta, yg, OS);
    }
}

static void conv_parts(void *arg, size_t begin, size_t end) {
    const conv_job *j = arg;
    for (size_t p = begin; p < end; p++) {
        int64_t lo = (int64_t)p * j->items / j->parts, hi = ((int64_t)p + 1) * j->items / j->parts;
        float *col = j->scratch ? j->scratch + (int64_t)p * j->slot : NULL;
        for (int64_t it = lo; it < hi; it++)
            conv_item(j, it, col);
    }
}

/* Runs the float32 conv: x [N, C, in...], w [M, C/G, k...], b [M] or NULL. */
static kiln_status conv_f32(kiln_op_ctx *c, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M, int64_t G,
                            const float *x, const float *w, const float *b, float *y) {
    conv_job j;
    memset(&j, 0, sizeof j);
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
    int threads = kiln_op_threads(c);
    bool unit = true;
    for (int d = 0; d < g->nsp; d++)
        if (g->k[d] != 1 || g->stride[d] != 1 || g->pb[d] != 0 || g->pe[d] != 0)
            unit = false;
    if (j.Cg == 1 && G > 1 && g->nsp <= 2) {
        j.mode = CONV_DEPTHWISE;
        j.items = N * M;
        double work = (double)g->out_size * (double)g->k_size;
        size_t grain = work >= 32768.0 ? 1 : (size_t)(32768.0 / (work + 1.0));
        j.parts = j.items; /* one item per part: no scratch */
        kiln_parallel_for(c, (size_t)j.items, grain, conv_parts, &j);
        return KILN_OK;
    }
    if (!kiln_gemm_dims_ok(j.Mg, g->out_size, j.Kd))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Conv GEMM dimensions exceed the BLAS int range");
    j.mode = unit ? CONV_POINTWISE : CONV_IM2COL;
    int64_t OS = g->out_size;
    j.tile = OS;
    /* bound the im2col slot, then split further until every thread has work */
    if (j.mode == CONV_IM2COL)
        while (j.tile > 32 && (j.Kd > CONV_SLOT_FLOATS / j.tile))
            j.tile = (j.tile + 1) / 2;
    j.ntiles = (OS + j.tile - 1) / j.tile;
    while (N * G * j.ntiles < threads && j.tile >= 128) {
        j.tile = (j.tile + 1) / 2;
        j.ntiles = (OS + j.tile - 1) / j.tile;
    }
    j.items = N * G * j.ntiles;
    j.parts = j.items < threads ? j.items : threads;
    if (j.mode == CONV_IM2COL) {
        size_t bytes;
        j.slot = j.Kd * j.tile; /* <= CONV_SLOT_FLOATS unless the tile is at its floor */
        if (kiln_mul_overflow_size((size_t)j.slot, (size_t)j.parts, &bytes) ||
            kiln_mul_overflow_size(bytes, sizeof(float), &bytes))
            return kiln_fail(KILN_ERR_INVALID, "Conv im2col buffer size overflows");
        j.scratch = kiln_malloc(bytes);
        if (!j.scratch)
            return KILN_ERR_NOMEM;
    }
    kiln_gemm_init();
    kiln_parallel_for(c, (size_t)j.parts, 1, conv_parts, &j);
    free(j.scratch);
    return KILN_OK;
}

static kiln_status conv_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *W = c->in[1], *B = kiln_op_in(c, 2);
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (W->dtype != X->dtype || (B && B->dtype != X->dtype))
        return kiln_fail(KILN_ERR_INVALID, "X, W%s must have the same element type", B ? " and B" : "");
    if (X->rank < 3 || X->rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", X->rank);
    if (W->rank != X->rank)
        return kiln_fail(KILN_ERR_INVALID, "W has rank %d, X has rank %d", W->rank, X->rank);
    int64_t G = kiln_attr_int(c->node, "group", 1);
    int64_t N = X->dims[0], C = X->dims[1], M = W->dims[0];
    if (G < 1 || C % G != 0 || M % G != 0 || W->dims[1] * G != C) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID, "W shape %s does not match %lld input channels with group %lld",
                         kiln_dims_str(W->rank, W->dims, s, sizeof s), (long long)C, (long long)G);
    }
    if (B && (B->rank != 1 || B->dims[0] != M))
        return kiln_fail(KILN_ERR_INVALID, "B must be a vector of %lld values (one per output channel)", (long long)M);
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    g.nsp = X->rank - 2;
    for (int d = 0; d < g.nsp; d++) {
        g.in[d] = X->dims[d + 2];
        g.k[d] = W->dims[d + 2];
    }
    size_t nks;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &nks);
    if (ks) {
        if (nks != (size_t)g.nsp)
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values, expected %d", nks, g.nsp);
        for (int d = 0; d < g.nsp; d++)
            if (ks[d] != g.k[d])
                return kiln_fail(KILN_ERR_INVALID, "kernel_shape[%d] = %lld differs from W's dimension %lld", d,
                                 (long long)ks[d], (long long)g.k[d]);
    }
    KILN_TRY(kiln_conv_read_attrs(&g, c->node, true));
    KILN_TRY(kiln_conv_forward_shape(&g, false));
    int64_t dims[KILN_MAX_RANK];
    dims[0] = N;
    dims[1] = M;
    for (int d = 0; d < g.nsp; d++)
        dims[d + 2] = g.out[d];
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, X->rank, dims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    if (X->numel == 0 || W->numel == 0) { /* no input channels: bias only */
        for (int64_t i = 0; i < Y->numel; i++) {
            double v = B ? kiln_tensor_get_f64(B, (i / g.out_size) % M) : 0.0;
            if (X->dtype == KILN_DTYPE_FLOAT)
                ((float *)Y->data)[i] = (float)v;
            else if (X->dtype == KILN_DTYPE_DOUBLE)
                ((double *)Y->data)[i] = v;
            else
                ((uint16_t *)Y->data)[i] = kiln_float_to_half((float)v);
        }
        return KILN_OK;
    }
    if (X->dtype == KILN_DTYPE_FLOAT)
        return conv_f32(c, &g, N, C, M, G, X->data, W->data, B ? B->data : NULL, Y->data);
    /* float16 / float64: widen into one scratch block, run float32, narrow */
    size_t total = 0;
    size_t parts[4] = {(size_t)X->numel, (size_t)W->numel, B ? (size_t)B->numel : 0, (size_t)Y->numel};
    for (int i = 0; i < 4; i++)
        if (__builtin_add_overflow(total, parts[i], &total))
            return kiln_fail(KILN_ERR_INVALID, "Conv scratch size overflows");
    if (kiln_mul_overflow_size(total, sizeof(float), &total))
        return kiln_fail(KILN_ERR_INVALID, "Conv scratch size overflows");
    float *s = kiln_malloc(total);
    if (!s)
        return KILN_ERR_NOMEM;
    const kiln_tensor *src[3] = {X, W, B};
    float *dst[4];
    dst[0] = s;
    dst[1] = dst[0] + parts[0];
    dst[2] = dst[1] + parts[1];
    dst[3] = dst[2] + parts[2];
    for (int t = 0; t < 3; t++) {
        if (!src[t])
            continue;
        for (int64_t i = 0; i < src[t]->numel; i++)
            dst[t][i] = X->dtype == KILN_DTYPE_DOUBLE ? (float)((const double *)src[t]->data)[i]
                                                      : kiln_half_to_float(((const uint16_t *)src[t]->data)[i]);
    }
    kiln_status st = conv_f32(c, &g, N, C, M, G, dst[0], dst[1], B ? dst[2] : NULL, dst[3]);
    if (st == KILN_OK)
        for (int64_t i = 0; i < Y->numel; i++) {
            if (X->dtype == KILN_DTYPE_DOUBLE)
                ((double *)Y->data)[i] = dst[3][i];
            else
                ((uint16_t *)Y->data)[i] = kiln_float_to_half(dst[3][i]);
        }
    free(s);
    return st;
}

static const kiln_op_desc ops[] = {
    {"", "Conv", 1, 0, conv_exec},
};
KILN_OP_FAMILY(conv, ops);
