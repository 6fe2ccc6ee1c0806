/* ConvTranspose: the adjoint of Conv. Per (image, group, chunk of output
 * channels): col = W^T * X (GEMM over a tile of input positions), then
 * col2im scatter-adds col into Y. Chunks own disjoint output channels, so
 * they run on separate threads with one bounded scratch slot each.
 *
 * Output size: output_shape when given (pads derived from it; a negative
 * total padding extends the tail), else
 * stride * (in - 1) + output_padding + dilated kernel - pads, with auto_pad
 * SAME_* giving in * stride. Splitting a total padding (spec, and
 * onnxruntime): SAME_UPPER puts the odd pad at the end, SAME_LOWER and
 * NOTSET (with output_shape) at the start. */
#include <stdlib.h>
#include <string.h>

#include "ops/conv_attrs.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "ops/op.h"

/* col budget as in conv.c: 32 MiB over the threads, >= 2 MiB per slot. */
#define CT_SCRATCH_FLOATS ((int64_t)1 << 23)
#define CT_SLOT_MIN_FLOATS ((int64_t)1 << 19)

typedef struct ct_job {
    const kiln_conv_geom *g; /* forward view: in = Y spatial, out = X spatial */
    const float *x, *w, *b;
    float *y;
    int64_t C, M, G, Cg, Mg, ks;
    int64_t mc, nchunks; /* output channels per chunk */
    int64_t tile, items, parts, slot;
    float *scratch;
} ct_job;

static void ct_item(const ct_job *j, int64_t it, float *col) {
    const kiln_conv_geom *g = j->g;
    int64_t YS = g->in_size, XS = g->out_size;
    int64_t ch = it % j->nchunks, ng = it / j->nchunks, grp = ng % j->G, n = ng / j->G;
    int64_t oc0 = ch * j->mc, mc = j->Mg - oc0 < j->mc ? j->Mg - oc0 : j->mc;
    float *yc = j->y + (n * j->M + grp * j->Mg + oc0) * YS;
    for (int64_t oc = 0; oc < mc; oc++) {
        float bv = j->b ? j->b[grp * j->Mg + oc0 + oc] : 0.0f;
        float *yr = yc + oc * YS;
        for (int64_t i = 0; i < YS; i++)
            yr[i] = bv;
    }
    const float *xg = j->x + (n * j->C + grp * j->Cg) * XS;
    /* W[grp] is Cg x (Mg * ks); its columns oc0*ks.. are this chunk's rows of W^T */
    const float *wg = j->w + grp * j->Cg * j->Mg * j->ks + oc0 * j->ks;
    for (int64_t o0 = 0; o0 < XS; o0 += j->tile) {
        int64_t cnt = XS - o0 < j->tile ? XS - o0 : j->tile;
        kiln_sgemm(true, false, mc * j->ks, cnt, j->Cg, 1.0f, wg, j->Mg * j->ks, xg + o0, XS, 0.0f, col, cnt);
        kiln_col2im(g, col, mc, o0, cnt, yc);
    }
}

static void ct_parts(void *arg, size_t begin, size_t end) {
    const ct_job *j = arg;
    for (size_t p = begin; p < end; p++) {
        int64_t lo = (int64_t)p * j->items / j->parts, hi = ((int64_t)p + 1) * j->items / j->parts;
        for (int64_t it = lo; it < hi; it++)
            ct_item(j, it, j->scratch + (int64_t)p * j->slot);
    }
}

static kiln_status ct_f32(kiln_op_ctx *c, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M, int64_t G,
                          const float *x, const float *w, const float *b, float *y) {
    ct_job j;
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
    j.ks = g->k_size;
    int threads = kiln_op_threads(c);
    j.mc = j.Mg;
    j.nchunks = 1;
    while (N * G * j.nchunks < threads && j.mc > 1) {
        j.mc = (j.mc + 1) / 2;
        j.nchunks = (j.Mg + j.mc - 1) / j.mc;
    }
    int64_t rows, lda; /* GEMM rows per item (mc * ks); W's row stride (Mg * ks) */
    if (kiln_mul_overflow_i64(j.Mg, j.ks, &lda) || !kiln_gemm_dims_ok(lda, g->out_size, j.Cg))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "ConvTranspose dimensions are too large");
    rows = j.mc * j.ks; /* <= lda */
    j.tile = g->out_size;
    int64_t slot_floats = CT_SCRATCH_FLOATS / threads;
    if (slot_floats < CT_SLOT_MIN_FLOATS)
        slot_floats = CT_SLOT_MIN_FLOATS;
    while (j.tile > 32 && rows > slot_floats / j.tile)
        j.tile = (j.tile + 1) / 2;
    j.items = N * G * j.nchunks;
    j.parts = j.items < threads ? j.items : threads;
    j.slot = rows * j.tile;
    size_t bytes;
    if (kiln_mul_overflow_size((size_t)j.slot, (size_t)j.parts, &bytes) ||
        kiln_mul_overflow_size(bytes, sizeof(float), &bytes))
        return kiln_fail(KILN_ERR_INVALID, "ConvTranspose scratch size overflows");
    j.scratch = kiln_malloc(bytes ? bytes : 1);
    if (!j.scratch)
        return KILN_ERR_NOMEM;
    kiln_gemm_init();
    kiln_parallel_for(c, (size_t)j.parts, 1, ct_parts, &j);
    free(j.scratch);
    return KILN_OK;
}

static kiln_status ct_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *W = c->in[1], *B = kiln_op_in(c, 2);
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (W->dtype != X->dtype || (B && B->dtype != X->dtype))
        return kiln_fail(KILN_ERR_INVALID, "X, W%s must have the same element type", B ? " and B" : "");
    if (X->rank < 3 || X->rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 (N, C, spatial...), got %d", X->rank);
    if (W->rank != X->rank)
        return kiln_fail(KILN_ERR_INVALID, "W has rank %d, X has rank %d", W->rank, X->rank);
    int64_t G = kiln_attr_int(c->node, "group", 1);
    int64_t N = X->dims[0], C = X->dims[1];
    if (G < 1 || C % G != 0 || W->dims[0] != C || W->dims[1] > INT64_MAX / G) {
        char s[128];
        return kiln_fail(KILN_ERR_INVALID, "W shape %s does not match %lld input channels with group %lld",
                         kiln_dims_str(W->rank, W->dims, s, sizeof s), (long long)C, (long long)G);
    }
    int64_t M = W->dims[1] * G;
    if (B && (B->rank != 1 || B->dims[0] != M))
        return kiln_fail(KILN_ERR_INVALID, "B must be a vector of %lld values (one per output channel)", (long long)M);
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    int nsp = g.nsp = X->rank - 2;
    for (int d = 0; d < nsp; d++) {
        g.out[d] = X->dims[d + 2];
        g.k[d] = W->dims[d + 2];
    }
    size_t n;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &n);
    if (ks) {
        if (n != (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape has %zu values, expected %d", n, nsp);
        for (int d = 0; d < nsp; d++)
            if (ks[d] != g.k[d])
                return kiln_fail(KILN_ERR_INVALID, "kernel_shape[%d] = %lld differs from W's dimension %lld", d,
                                 (long long)ks[d], (long long)g.k[d]);
    }
    KILN_TRY(kiln_conv_read_attrs(&g, c->node, true));
    int64_t opad[KILN_CONV_MAX_SP] = {0};
    const int64_t *op = kiln_attr_ints(c->node, "output_padding", &n);
    if (op) {
        if (n != (size_t)nsp)
            return kiln_fail(KILN_ERR_INVALID, "output_padding has %zu values, expected %d", n, nsp);
        for (int d = 0; d < nsp; d++) {
            if (op[d] < 0 || op[d] > KILN_CONV_MAX_DIM)
                return kiln_fail(KILN_ERR_INVALID, "output_padding[%d] = %lld is out of range", d, (long long)op[d]);
            opad[d] = op[d];
        }
    }
    const int64_t *os = kiln_attr_ints(c->node, "output_shape", &n);
    if (os && n != (size_t)nsp && n != (size_t)nsp + 2)
        return kiln_fail(KILN_ERR_INVALID, "output_shape has %zu values, expected %d", n, nsp);
    if (os && n == (size_t)nsp + 2)
        os += 2; /* some exporters include N and C */
    for (int d = 0; d < nsp; d++) {
        int64_t in = g.out[d], s = g.stride[d];
        if (in > KILN_CONV_MAX_DIM)
            return kiln_fail(KILN_ERR_INVALID, "input dimension too large");
        int64_t full = s * (in - 1) + opad[d] + (g.k[d] - 1) * g.dil[d] + 1;
        if (os || g.autopad == KILN_AUTOPAD_SAME_UPPER || g.autopad == KILN_AUTOPAD_SAME_LOWER) {
            int64_t out = os ? os[d] : in * s;
            if (out < 0 || out > KILN_CONV_MAX_DIM)
                return kiln_fail(KILN_ERR_INVALID, "output_shape[%d] = %lld is out of range", d, (long long)out);
            int64_t total = full - out;
            if (total < 0)
                total = 0; /* a larger requested output grows at the tail */
            bool upper = g.autopad == KILN_AUTOPAD_SAME_UPPER; /* spec: else the odd pad goes first */
            g.pb[d] = upper ? total / 2 : total - total / 2;
            g.pe[d] = total - g.pb[d];
            g.in[d] = out;
        } else {
            if (g.autopad == KILN_AUTOPAD_VALID)
                g.pb[d] = g.pe[d] = 0;
            g.in[d] = full - g.pb[d] - g.pe[d];
            if (g.in[d] < 0)
                return kiln_fail(KILN_ERR_INVALID, "pads (%lld, %lld) exceed the output size %lld along dimension %d",
                                 (long long)g.pb[d], (long long)g.pe[d], (long long)full, d);
        }
    }
    KILN_TRY(kiln_conv_sizes(&g));
    int64_t dims[KILN_MAX_RANK];
    dims[0] = N;
    dims[1] = M;
    for (int d = 0; d < nsp; d++)
        dims[d + 2] = g.in[d];
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, X->rank, dims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    if (X->dtype == KILN_DTYPE_FLOAT)
        return ct_f32(c, &g, N, C, M, G, X->data, W->data, B ? B->data : NULL, Y->data);
    /* float16, bfloat16 and float64 run in float32 */
    float *s, *part[4];
    KILN_TRY(kiln_conv_widen(X, W, B, Y->numel, "ConvTranspose", &s, part));
    kiln_status st = ct_f32(c, &g, N, C, M, G, part[0], part[1], B ? part[2] : NULL, part[3]);
    if (st == KILN_OK)
        kiln_conv_narrow(part[3], Y);
    free(s);
    return st;
}

/* Shape rule: [N, M, spatial...] with M = W.dims[1] * group; spatial sizes
 * from output_shape, or stride * (in - 1) + output_padding + dilated kernel
 * - pads (in * stride under SAME), as exec computes them. */
static kiln_status ct_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *W = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    if (X->rank < 3 || W->rank != X->rank)
        return KILN_OK;
    int nsp = X->rank - 2;
    o->rank = X->rank;
    o->dims[0] = X->dims[0];
    o->dims[1] = kiln_sd_mul(W->dims[1], kiln_sd_const(kiln_attr_int(x->node, "group", 1)));
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    g.nsp = nsp;
    for (int d = 0; d < nsp; d++) {
        o->dims[2 + d] = kiln_sd_unknown();
        if (!kiln_sd_is_const(&W->dims[2 + d]))
            return KILN_OK;
        g.k[d] = W->dims[2 + d].num;
    }
    KILN_TRY(kiln_conv_read_attrs(&g, x->node, true));
    size_t n, nop;
    const int64_t *os = kiln_attr_ints(x->node, "output_shape", &n);
    const int64_t *op = kiln_attr_ints(x->node, "output_padding", &nop);
    if (os && n == (size_t)nsp + 2)
        os += 2;
    else if (os && n != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "output_shape has %zu values, expected %d", n, nsp);
    if (op && nop != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "output_padding has %zu values, expected %d", nop, nsp);
    for (int d = 0; d < nsp; d++) {
        const kiln_sdim *in = &X->dims[2 + d];
        if (os) {
            o->dims[2 + d] = kiln_sd_const(os[d]);
        } else if (g.autopad == KILN_AUTOPAD_SAME_UPPER || g.autopad == KILN_AUTOPAD_SAME_LOWER) {
            o->dims[2 + d] = kiln_sd_mul(*in, kiln_sd_const(g.stride[d]));
        } else if (kiln_sd_is_const(in)) {
            int64_t pads = g.autopad == KILN_AUTOPAD_VALID ? 0 : g.pb[d] + g.pe[d];
            o->dims[2 + d] = kiln_sd_const(g.stride[d] * (in->num - 1) + (op ? op[d] : 0) + (g.k[d] - 1) * g.dil[d] +
                                           1 - pads);
        }
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "ConvTranspose", 1, 0, ct_exec, ct_infer},
};
KILN_OP_FAMILY(conv_transpose, ops);
