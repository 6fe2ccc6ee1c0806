/* Gemm: Y = alpha * op(A) * op(B) + beta * C, with C broadcast
 * unidirectionally to (M, N). C became optional in opset 11; before opset 7
 * broadcasting of C needed the `broadcast` attribute (else C is exactly
 * (M, N)). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/sgemm.h"
#include "ops/op.h"

/* Y = beta * C (broadcast), read as double; written in Y's type. */
static void gemm_fill_c(const kiln_tensor *C, kiln_tensor *Y, int64_t m, int64_t n, double beta) {
    int64_t cm = C->rank == 2 ? C->dims[0] : 1;
    int64_t cn = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t ci = (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j);
            int64_t yi = i * n + j;
            switch (Y->dtype) {
            case KILN_DTYPE_FLOAT: ((float *)Y->data)[yi] = (float)beta * ((const float *)C->data)[ci]; break;
            case KILN_DTYPE_DOUBLE: ((double *)Y->data)[yi] = beta * ((const double *)C->data)[ci]; break;
            default: break;
            }
        }
}

/* Prepared state of a float32 Gemm with constant B: alpha * op(B) packed for
 * kernels/sgemm.h, and, when C is a constant row ([N] or [1, N]), beta * C
 * as the GEMM's column bias. */
typedef struct gemm_prep {
    const kiln_tensor *b, *c;
    float alpha, beta;
    bool tb;
    float *pb;
    float *bias; /* beta * C per column, or NULL */
} gemm_prep;

static void gemm_release(void *state) {
    gemm_prep *gp = state;
    free(gp->pb);
    free(gp->bias);
    free(gp);
}

static kiln_status gemm_prepare(const kiln_prep_ctx *p, void **state) {
    const kiln_tensor *B = p->n_in > 1 ? p->in[1] : NULL, *C = p->n_in > 2 ? p->in[2] : NULL;
    if (!B || B->dtype != KILN_DTYPE_FLOAT || B->rank != 2 || B->numel == 0 || p->opset < 7)
        return KILN_OK;
    bool tb = kiln_attr_int(p->node, "transB", 0) != 0;
    size_t k = (size_t)(tb ? B->dims[1] : B->dims[0]), n = (size_t)(tb ? B->dims[0] : B->dims[1]);
    size_t sz = kiln_sgemm_pack_b_size(k, n);
    if (sz == SIZE_MAX || sz > SIZE_MAX / sizeof(float))
        return KILN_OK;
    gemm_prep *gp = kiln_calloc(1, sizeof *gp);
    if (!gp)
        return KILN_ERR_NOMEM;
    gp->b = B;
    gp->tb = tb;
    gp->alpha = kiln_attr_float(p->node, "alpha", 1.0f);
    gp->beta = kiln_attr_float(p->node, "beta", 1.0f);
    if (!(gp->pb = kiln_malloc(sz * sizeof(float)))) {
        gemm_release(gp);
        return KILN_ERR_NOMEM;
    }
    kiln_sgemm_pack_b(tb, k, n, gp->alpha, B->data, (size_t)B->dims[1], gp->pb);
    if (C && C->dtype == KILN_DTYPE_FLOAT && C->numel == (int64_t)n && C->rank >= 1 && C->rank <= 2 &&
        C->dims[C->rank - 1] == (int64_t)n) {
        if (!(gp->bias = kiln_malloc(n * sizeof(float)))) {
            gemm_release(gp);
            return KILN_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++)
            gp->bias[i] = gp->beta * ((const float *)C->data)[i];
        gp->c = C;
    }
    *state = gp;
    return KILN_OK;
}

static kiln_status gemm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *A = c->in[0], *B = c->in[1], *C = kiln_op_in(c, 2);
    if (!C && c->opset < 11)
        return kiln_fail(KILN_ERR_INVALID, "input C is required before opset 11");
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT,  KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                    KILN_DTYPE_INT32,  KILN_DTYPE_INT64,  KILN_DTYPE_UINT32,  KILN_DTYPE_UINT64};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (B->dtype != A->dtype || (C && C->dtype != A->dtype))
        return kiln_fail(KILN_ERR_INVALID, "inputs A, B%s must have the same element type", C ? ", C" : "");
    if (A->rank != 2 || B->rank != 2)
        return kiln_fail(KILN_ERR_INVALID, "A and B must be 2-D (got ranks %d and %d)", A->rank, B->rank);
    bool ta = kiln_attr_int(c->node, "transA", 0) != 0, tb = kiln_attr_int(c->node, "transB", 0) != 0;
    double alpha = kiln_attr_float(c->node, "alpha", 1.0f), beta = kiln_attr_float(c->node, "beta", 1.0f);
    int64_t m = ta ? A->dims[1] : A->dims[0], k = ta ? A->dims[0] : A->dims[1];
    int64_t kb = tb ? B->dims[1] : B->dims[0], n = tb ? B->dims[0] : B->dims[1];
    if (k != kb)
        return kiln_fail(KILN_ERR_INVALID, "inner dimensions differ: op(A) is %lldx%lld, op(B) is %lldx%lld",
                         (long long)m, (long long)k, (long long)kb, (long long)n);
    if (C) {
        bool good = C->rank <= 2;
        if (good && C->rank >= 1 && C->dims[C->rank - 1] != 1 && C->dims[C->rank - 1] != n)
            good = false;
        if (good && C->rank == 2 && C->dims[0] != 1 && C->dims[0] != m)
            good = false;
        if (!good) {
            char s[128];
            return kiln_fail(KILN_ERR_INVALID, "C of shape %s cannot broadcast to [%lld,%lld]",
                             kiln_dims_str(C->rank, C->dims, s, sizeof s), (long long)m, (long long)n);
        }
    }
    if (C && c->opset < 7 && kiln_attr_int(c->node, "broadcast", 0) == 0 &&
        (C->rank != 2 || C->dims[0] != m || C->dims[1] != n))
        return kiln_fail(KILN_ERR_INVALID, "C must have shape [%lld,%lld] when attribute 'broadcast' is 0",
                         (long long)m, (long long)n);
    if (!kiln_gemm_dims_ok(m, n, k))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Gemm dimensions exceed the BLAS int range");
    int64_t dims[2] = {m, n};
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, A->dtype, 2, dims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    bool has_c = C && C->numel > 0 && beta != 0.0; /* like onnxruntime: beta 0 ignores C */
    switch (A->dtype) {
    case KILN_DTYPE_FLOAT: {
        const gemm_prep *gp = c->prep;
        if (gp && !ta && gp->b->data == B->data && gp->tb == tb && (!has_c || gp->c == C)) {
            kiln_sgemm_epilogue ep = {.col_bias = has_c ? gp->bias : NULL};
            kiln_sgemm_packed_b(kiln_op_pool(c), (size_t)m, (size_t)n, (size_t)k, A->data, (size_t)A->dims[1],
                                gp->pb, 0.0f, Y->data, (size_t)n, has_c ? &ep : NULL);
            return KILN_OK;
        }
    }
        if (has_c)
            gemm_fill_c(C, Y, m, n, beta);
        kiln_sgemm_par(kiln_op_pool(c), ta, tb, m, n, k, (float)alpha, A->data, A->dims[1], B->data, B->dims[1],
                       has_c ? 1.0f : 0.0f, Y->data, n);
        return KILN_OK;
    case KILN_DTYPE_DOUBLE:
        if (has_c)
            gemm_fill_c(C, Y, m, n, beta);
        kiln_dgemm_par(kiln_op_pool(c), ta, tb, m, n, k, alpha, A->data, A->dims[1], B->data, B->dims[1], has_c ? 1.0 : 0.0,
                       Y->data, n);
        return KILN_OK;
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: {
        bool half = A->dtype == KILN_DTYPE_FLOAT16;
#define GEMM_WIDEN(v) (half ? kiln_half_to_float(v) : kiln_bf16_to_float(v))
        size_t total;
        if (__builtin_add_overflow((size_t)A->numel, (size_t)B->numel, &total) ||
            __builtin_add_overflow(total, (size_t)Y->numel, &total) || kiln_mul_overflow_size(total, 4, &total))
            return kiln_fail(KILN_ERR_INVALID, "Gemm scratch size overflows");
        float *s = kiln_malloc(total);
        if (!s)
            return KILN_ERR_NOMEM;
        float *fa = s, *fb = s + A->numel, *fy = fb + B->numel;
        for (int64_t i = 0; i < A->numel; i++)
            fa[i] = GEMM_WIDEN(((const uint16_t *)A->data)[i]);
        for (int64_t i = 0; i < B->numel; i++)
            fb[i] = GEMM_WIDEN(((const uint16_t *)B->data)[i]);
        if (has_c) {
            int64_t cm = C->rank == 2 ? C->dims[0] : 1, cn = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    fy[i * n + j] = (float)beta * GEMM_WIDEN(((const uint16_t *)C->data)[
                                                      (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)]);
        }
        kiln_sgemm_par(kiln_op_pool(c), ta, tb, m, n, k, (float)alpha, fa, A->dims[1], fb, B->dims[1], has_c ? 1.0f : 0.0f, fy,
                       n);
        for (int64_t i = 0; i < Y->numel; i++)
            ((uint16_t *)Y->data)[i] = half ? kiln_float_to_half(fy[i]) : kiln_float_to_bf16(fy[i]);
#undef GEMM_WIDEN
        free(s);
        return KILN_OK;
    }
    default: {
        /* integers: exact product, alpha/beta applied in double only when not 1 */
        kiln_igemm(A->dtype, ta, tb, m, n, k, A->data, A->dims[1], B->data, B->dims[1], Y->data, n, false);
        int64_t cm = has_c && C->rank == 2 ? C->dims[0] : 1, cn = has_c && C->rank >= 1 ? C->dims[C->rank - 1] : 1;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t yi = i * n + j, ci = (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j);
                double cv = has_c ? kiln_tensor_get_f64(C, ci) : 0.0;
/* scaled results saturate to T's range (NaN gives 0): the cast stays defined */
#define GEMM_INT_FIX(T, LO, HI)                                                                              \
    do {                                                                                                     \
        T *y = (T *)Y->data + yi;                                                                            \
        if (alpha == 1.0 && (beta == 1.0 || !has_c)) {                                                       \
            *y = (T)((uint64_t)*y + (has_c ? (uint64_t)((const T *)C->data)[ci] : 0));                       \
        } else {                                                                                             \
            double v = alpha * (double)*y + beta * cv;                                                       \
            *y = v != v ? (T)0 : v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)v;           \
        }                                                                                                    \
    } while (0)
                switch (A->dtype) {
                case KILN_DTYPE_INT32: GEMM_INT_FIX(int32_t, INT32_MIN, INT32_MAX); break;
                case KILN_DTYPE_INT64: GEMM_INT_FIX(int64_t, INT64_MIN, INT64_MAX); break;
                case KILN_DTYPE_UINT32: GEMM_INT_FIX(uint32_t, 0, UINT32_MAX); break;
                case KILN_DTYPE_UINT64: GEMM_INT_FIX(uint64_t, 0, UINT64_MAX); break;
                default: break;
                }
#undef GEMM_INT_FIX
            }
        return KILN_OK;
    }
    }
}

/* Shape rule: [M, N] from A (transA) and B (transB), A's type. */
static kiln_status gemm_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *A = kiln_infer_in(x, 0), *B = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = A->dt;
    if (A->rank != 2 || B->rank != 2)
        return KILN_OK;
    o->rank = 2;
    o->dims[0] = kiln_attr_int(x->node, "transA", 0) ? A->dims[1] : A->dims[0];
    o->dims[1] = kiln_attr_int(x->node, "transB", 0) ? B->dims[0] : B->dims[1];
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Gemm", 1, 0, gemm_exec, gemm_infer, gemm_prepare, gemm_release},
};
KILN_OP_FAMILY(gemm, ops);
