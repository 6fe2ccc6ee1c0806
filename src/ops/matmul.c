/* MatMul (numpy matmul: batched, broadcast batch dims, 1-D promotion) and
 * MatMulInteger. float32/float64 go through kiln_sgemm/kiln_dgemm, float16
 * and bfloat16 through float32, integers through the wrapping integer kernel. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/broadcast.h"
#include "kernels/gemm.h"
#include "kernels/sgemm.h"
#include "kernels/valio.h"
#include "ops/op.h"

typedef struct mm_job {
    kiln_dtype dt; /* FLOAT, DOUBLE or an integer type */
    const float *bias; /* float32, planner-fused MatMul + Add: n values added to every row, or NULL */
    const void *a, *b;
    void *c;
    int64_t m, n, k;
    int brank;                    /* batch rank of the output */
    int64_t bdims[KILN_MAX_RANK]; /* output batch dims */
    int64_t astr[KILN_MAX_RANK], bstr[KILN_MAX_RANK]; /* matrix strides per batch dim, 0 if broadcast */
} mm_job;

static void mm_batch_offsets(const mm_job *j, int64_t idx, int64_t *ao, int64_t *bo) {
    int64_t oa = 0, ob = 0;
    for (int d = j->brank - 1; d >= 0; d--) {
        int64_t i = idx % j->bdims[d];
        idx /= j->bdims[d];
        oa += i * j->astr[d];
        ob += i * j->bstr[d];
    }
    *ao = oa;
    *bo = ob;
}

static void mm_range(void *arg, size_t begin, size_t end) {
    const mm_job *j = arg;
    size_t es = kiln_dtype_size(j->dt);
    for (size_t t = begin; t < end; t++) {
        int64_t ao, bo;
        mm_batch_offsets(j, (int64_t)t, &ao, &bo);
        const char *a = (const char *)j->a + (size_t)(ao * j->m * j->k) * es;
        const char *b = (const char *)j->b + (size_t)(bo * j->k * j->n) * es;
        char *c = (char *)j->c + (size_t)((int64_t)t * j->m * j->n) * es;
        if (j->dt == KILN_DTYPE_FLOAT)
            kiln_sgemm(false, false, j->m, j->n, j->k, 1.0f, (const float *)a, j->k, (const float *)b, j->n, 0.0f,
                       (float *)c, j->n);
        else if (j->dt == KILN_DTYPE_DOUBLE)
            kiln_dgemm(false, false, j->m, j->n, j->k, 1.0, (const double *)a, j->k, (const double *)b, j->n, 0.0,
                       (double *)c, j->n);
        else
            kiln_igemm(j->dt, false, false, j->m, j->n, j->k, a, j->k, b, j->n, c, j->n, false);
    }
}

/* Prepared state of a float32 MatMul whose B is a constant matrix: B packed
 * for kernels/sgemm.h once per session. */
typedef struct mm_prep {
    const kiln_tensor *b;
    float *pb;
} mm_prep;

static kiln_status matmul_prepare(const kiln_prep_ctx *p, void **state) {
    const kiln_tensor *B = p->n_in > 1 ? p->in[1] : NULL;
    if (!B || B->dtype != KILN_DTYPE_FLOAT || B->rank != 2 || B->numel == 0)
        return KILN_OK;
    size_t n = kiln_sgemm_pack_b_size((size_t)B->dims[0], (size_t)B->dims[1]);
    if (n == SIZE_MAX || n > SIZE_MAX / sizeof(float))
        return KILN_OK;
    mm_prep *mp = kiln_calloc(1, sizeof *mp);
    float *pb = kiln_malloc(n * sizeof(float));
    if (!mp || !pb) {
        free(mp);
        free(pb);
        return KILN_ERR_NOMEM;
    }
    kiln_sgemm_pack_b(false, (size_t)B->dims[0], (size_t)B->dims[1], 1.0f, B->data, (size_t)B->dims[1], pb);
    mp->b = B;
    mp->pb = pb;
    *state = mp;
    return KILN_OK;
}

static void matmul_release(void *state) {
    mm_prep *mp = state;
    free(mp->pb);
    free(mp);
}

/* Runs all batches: one big GEMM when B has no batch dims (A's batch folds into
 * M), else batches across threads, or one threaded GEMM per batch when few. */
static void mm_run(kiln_op_ctx *c, mm_job *j, int64_t nbatch, bool b_unbatched) {
    if (nbatch == 0 || j->m == 0 || j->n == 0)
        return;
    bool fl = j->dt == KILN_DTYPE_FLOAT, db = j->dt == KILN_DTYPE_DOUBLE;
    const mm_prep *mp = c->prep;
    if (fl && b_unbatched && mp && mp->b->data == j->b && mp->b->dims[0] == j->k && mp->b->dims[1] == j->n) {
        kiln_sgemm_epilogue ep = {.col_bias = j->bias};
        kiln_sgemm_packed_b(kiln_op_pool(c), (size_t)(nbatch * j->m), (size_t)j->n, (size_t)j->k, j->a,
                            (size_t)j->k, mp->pb, 0.0f, j->c, (size_t)j->n, j->bias ? &ep : NULL);
        return;
    }
    if (j->bias) { /* not prepared: the product, then the bias on every row */
        const float *bias = j->bias;
        j->bias = NULL;
        mm_run(c, j, nbatch, b_unbatched);
        float *y = j->c;
        for (int64_t r = 0; r < nbatch * j->m; r++)
            for (int64_t i = 0; i < j->n; i++)
                y[r * j->n + i] += bias[i];
        return;
    }
    if (b_unbatched && (fl || db)) {
        int64_t m = nbatch * j->m;
        if (fl)
            kiln_sgemm_par(kiln_op_pool(c), false, false, m, j->n, j->k, 1.0f, j->a, j->k, j->b, j->n, 0.0f, j->c, j->n);
        else
            kiln_dgemm_par(kiln_op_pool(c), false, false, m, j->n, j->k, 1.0, j->a, j->k, j->b, j->n, 0.0, j->c, j->n);
        return;
    }
    int threads = kiln_op_threads(c);
    if ((fl || db) && nbatch < threads) {
        size_t es = kiln_dtype_size(j->dt);
        for (int64_t t = 0; t < nbatch; t++) {
            int64_t ao, bo;
            mm_batch_offsets(j, t, &ao, &bo);
            const char *a = (const char *)j->a + (size_t)(ao * j->m * j->k) * es;
            const char *b = (const char *)j->b + (size_t)(bo * j->k * j->n) * es;
            char *o = (char *)j->c + (size_t)(t * j->m * j->n) * es;
            if (fl)
                kiln_sgemm_par(kiln_op_pool(c), false, false, j->m, j->n, j->k, 1.0f, (const float *)a, j->k, (const float *)b,
                               j->n, 0.0f, (float *)o, j->n);
            else
                kiln_dgemm_par(kiln_op_pool(c), false, false, j->m, j->n, j->k, 1.0, (const double *)a, j->k,
                               (const double *)b, j->n, 0.0, (double *)o, j->n);
        }
        return;
    }
    double work = (double)j->m * (double)j->n * (double)(j->k + 1);
    size_t grain = work >= 65536.0 ? 1 : (size_t)(65536.0 / work);
    kiln_parallel_for(c, (size_t)nbatch, grain, mm_range, j);
}

/* Shape logic shared by MatMul and MatMulInteger: fills j (except pointers and
 * dtype) and the output shape. */
static kiln_status mm_shape(const kiln_tensor *A, const kiln_tensor *B, mm_job *j, int *orank, int64_t *odims,
                            int64_t *nbatch, bool *b_unbatched) {
    if (A->rank < 1 || B->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "inputs must have rank >= 1 (got ranks %d and %d)", A->rank,
                         B->rank);
    int64_t ad[KILN_MAX_RANK + 1], bd[KILN_MAX_RANK + 1];
    int ar = A->rank, br = B->rank;
    memcpy(ad, A->dims, sizeof(int64_t) * (size_t)ar);
    memcpy(bd, B->dims, sizeof(int64_t) * (size_t)br);
    if (ar == 1) { /* [K] -> [1, K] */
        ad[1] = ad[0];
        ad[0] = 1;
        ar = 2;
    }
    if (br == 1) { /* [K] -> [K, 1] */
        bd[1] = 1;
        br = 2;
    }
    j->m = ad[ar - 2];
    j->k = ad[ar - 1];
    j->n = bd[br - 1];
    if (bd[br - 2] != j->k) {
        char s1[128], s2[128];
        return kiln_fail(KILN_ERR_INVALID, "inner dimensions differ: A %s, B %s",
                         kiln_dims_str(A->rank, A->dims, s1, sizeof s1), kiln_dims_str(B->rank, B->dims, s2, sizeof s2));
    }
    int abr = ar - 2, bbr = br - 2;
    int obr = abr > bbr ? abr : bbr;
    if (obr + 2 > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID, "MatMul output rank too large");
    const int ranks[2] = {abr, bbr};
    const int64_t *dimsp[2] = {ad, bd};
    int r;
    KILN_TRY(kiln_bcast_shape(2, ranks, dimsp, &r, j->bdims));
    j->brank = r;
    /* matrix-count strides of each operand's batch dims, aligned right */
    int64_t sa = 1, sb = 1;
    for (int d = r - 1; d >= 0; d--) {
        int ia = d - (r - abr), ib = d - (r - bbr);
        int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
        j->astr[d] = da == 1 ? 0 : sa;
        j->bstr[d] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    *b_unbatched = true;
    for (int d = 0; d < r; d++)
        if (j->bstr[d] != 0)
            *b_unbatched = false;
    /* folding A's batch into M needs A's batch to be full (not broadcast) */
    for (int d = 0; d < r && *b_unbatched; d++)
        if (j->astr[d] == 0 && j->bdims[d] != 1)
            *b_unbatched = false;
    int n = 0;
    for (int d = 0; d < r; d++)
        odims[n++] = j->bdims[d];
    if (A->rank > 1)
        odims[n++] = j->m;
    if (B->rank > 1)
        odims[n++] = j->n;
    *orank = n;
    KILN_TRY(kiln_dims_numel(r, j->bdims, nbatch));
    int64_t tmp;
    KILN_TRY(kiln_dims_numel(n, odims, &tmp));
    if (!kiln_gemm_dims_ok(*b_unbatched ? *nbatch * j->m : j->m, j->n, j->k))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "MatMul dimensions exceed the BLAS int range");
    return KILN_OK;
}

/* bias: the planner's MatMul + Add (exec/fuse.c), input 2 */
static kiln_status matmul_run(kiln_op_ctx *c, bool bias) {
    KILN_TRY(kiln_op_need_inputs(c, bias ? 3 : 2));
    const kiln_tensor *A = c->in[0], *B = c->in[1];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT,  KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                    KILN_DTYPE_INT32,  KILN_DTYPE_INT64,  KILN_DTYPE_UINT32,  KILN_DTYPE_UINT64};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (A->dtype != B->dtype)
        return kiln_fail(KILN_ERR_INVALID, "inputs have different element types (%s and %s)",
                         kiln_dtype_name(A->dtype), kiln_dtype_name(B->dtype));
    mm_job j;
    memset(&j, 0, sizeof j);
    int orank;
    int64_t odims[KILN_MAX_RANK], nbatch;
    bool bun;
    KILN_TRY(mm_shape(A, B, &j, &orank, odims, &nbatch, &bun));
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, A->dtype, orank, odims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    if (j.k == 0) { /* empty sum */
        memset(Y->data, 0, Y->nbytes);
        return KILN_OK;
    }
    bool half = A->dtype == KILN_DTYPE_FLOAT16;
    if (bias) {
        const kiln_tensor *t = c->in[2];
        if (A->dtype != KILN_DTYPE_FLOAT || t->dtype != KILN_DTYPE_FLOAT || t->numel != j.n)
            return kiln_fail(KILN_ERR_INVALID, "the fused bias must be %lld float32 values", (long long)j.n);
        j.bias = t->data;
    }
    if (!half && A->dtype != KILN_DTYPE_BFLOAT16) {
        j.dt = A->dtype;
        j.a = A->data;
        j.b = B->data;
        j.c = Y->data;
        mm_run(c, &j, nbatch, bun);
        return KILN_OK;
    }
    /* float16 / bfloat16: widen both operands and the result into one scratch block */
    size_t total;
    if (__builtin_add_overflow((size_t)A->numel, (size_t)B->numel, &total) ||
        __builtin_add_overflow(total, (size_t)Y->numel, &total) || kiln_mul_overflow_size(total, 4, &total))
        return kiln_fail(KILN_ERR_INVALID, "MatMul scratch size overflows");
    float *s = kiln_malloc(total);
    if (!s)
        return KILN_ERR_NOMEM;
    float *fa = s, *fb = s + A->numel, *fy = fb + B->numel;
    const uint16_t *ha = A->data, *hb = B->data;
    for (int64_t i = 0; i < A->numel; i++)
        fa[i] = half ? kiln_half_to_float(ha[i]) : kiln_bf16_to_float(ha[i]);
    for (int64_t i = 0; i < B->numel; i++)
        fb[i] = half ? kiln_half_to_float(hb[i]) : kiln_bf16_to_float(hb[i]);
    j.dt = KILN_DTYPE_FLOAT;
    j.a = fa;
    j.b = fb;
    j.c = fy;
    mm_run(c, &j, nbatch, bun);
    uint16_t *hy = Y->data;
    for (int64_t i = 0; i < Y->numel; i++)
        hy[i] = half ? kiln_float_to_half(fy[i]) : kiln_float_to_bf16(fy[i]);
    free(s);
    return KILN_OK;
}

static kiln_status matmul_exec(kiln_op_ctx *c) { return matmul_run(c, false); }
static kiln_status matmul_bias_exec(kiln_op_ctx *c) { return matmul_run(c, true); }

/* Per-tensor (one value) or per-row / per-column (vector of `len`, 2-D
 * operand only) quantization parameter. */
static kiln_status mm_qparam(const kiln_tensor *t, const char *name, int64_t len, int operand_rank,
                             kiln_dtype want) {
    if (!t)
        return KILN_OK;
    if (t->dtype != want)
        return kiln_fail(KILN_ERR_INVALID, "%s must have element type %s, got %s", name, kiln_dtype_name(want),
                         kiln_dtype_name(t->dtype));
    if (t->numel == 1 || (t->rank == 1 && t->dims[0] == len && operand_rank == 2))
        return KILN_OK;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "%s must be a scalar or a vector of %lld values (2-D operand)", name,
                     (long long)len);
}

static inline int32_t mm_q8(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_DTYPE_UINT8 ? ((const uint8_t *)t->data)[i] : ((const int8_t *)t->data)[i];
}

/* MatMulInteger: (A - a_zero_point) * (B - b_zero_point) in int32, A and B
 * int8 or uint8, zero points per tensor or per row (A) / column (B).
 * QLinearMatMul: the same product requantized: saturate(round_half_even(acc *
 * a_scale * b_scale / y_scale) + y_zero_point), in y_zero_point's type. */
static kiln_status mm_integer(kiln_op_ctx *c, bool qlinear) {
    KILN_TRY(kiln_op_need_inputs(c, qlinear ? 8 : 2));
    size_t ia_ = 0, iaz = 2, ib_ = qlinear ? 3 : 1, ibz = qlinear ? 5 : 3;
    const kiln_tensor *A = c->in[ia_], *B = c->in[ib_], *az = kiln_op_in(c, iaz), *bz = kiln_op_in(c, ibz);
    const kiln_tensor *as = NULL, *bs = NULL, *ys = NULL, *yz = NULL;
    static const kiln_dtype ok[] = {KILN_DTYPE_INT8, KILN_DTYPE_UINT8};
    KILN_TRY(kiln_op_need_dtype(c, ia_, ok, 2));
    KILN_TRY(kiln_op_need_dtype(c, ib_, ok, 2));
    mm_job j;
    memset(&j, 0, sizeof j);
    int orank;
    int64_t odims[KILN_MAX_RANK], nbatch;
    bool bun;
    KILN_TRY(mm_shape(A, B, &j, &orank, odims, &nbatch, &bun));
    KILN_TRY(mm_qparam(az, "a_zero_point", j.m, A->rank, A->dtype));
    KILN_TRY(mm_qparam(bz, "b_zero_point", j.n, B->rank, B->dtype));
    kiln_dtype ydt = KILN_DTYPE_INT32;
    if (qlinear) {
        as = c->in[1];
        bs = c->in[4];
        ys = kiln_op_in(c, 6);
        yz = kiln_op_in(c, 7);
        if (!ys || !yz)
            return kiln_fail(KILN_ERR_INVALID, "y_scale and y_zero_point are required");
        /* opset 21 lets the scales be float16 or bfloat16 (all of one type) */
        kiln_dtype sdt = as->dtype;
        if (!(sdt == KILN_DTYPE_FLOAT || (c->opset >= 21 && (sdt == KILN_DTYPE_FLOAT16 || sdt == KILN_DTYPE_BFLOAT16))))
            return kiln_fail(KILN_ERR_INVALID, "a_scale must have element type float32%s, got %s",
                             c->opset >= 21 ? ", float16 or bfloat16" : "", kiln_dtype_name(sdt));
        KILN_TRY(mm_qparam(as, "a_scale", j.m, A->rank, sdt));
        KILN_TRY(mm_qparam(bs, "b_scale", j.n, B->rank, sdt));
        if (ys->dtype != sdt || ys->numel != 1 || yz->numel != 1 ||
            (yz->dtype != KILN_DTYPE_UINT8 && yz->dtype != KILN_DTYPE_INT8))
            return kiln_fail(KILN_ERR_INVALID, "y_scale must be one %s and y_zero_point one int8/uint8 value",
                             kiln_dtype_name(sdt));
        ydt = yz->dtype;
    }
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, ydt, orank, odims, &Y));
    if (Y->numel == 0)
        return KILN_OK;
    size_t total;
    if (__builtin_add_overflow((size_t)A->numel, (size_t)B->numel, &total) ||
        __builtin_add_overflow(total, qlinear ? (size_t)Y->numel : 0, &total) ||
        kiln_mul_overflow_size(total, 4, &total))
        return kiln_fail(KILN_ERR_INVALID, "integer MatMul scratch size overflows");
    int32_t *s = kiln_malloc(total ? total : 1);
    if (!s)
        return KILN_ERR_NOMEM;
    int32_t *ia = s, *ib = s + A->numel, *acc = qlinear ? ib + B->numel : Y->data;
    int64_t K = j.k ? j.k : 1, M = j.m ? j.m : 1, N = j.n ? j.n : 1;
    for (int64_t i = 0; i < A->numel; i++)
        ia[i] = mm_q8(A, i) - (az ? mm_q8(az, az->numel == 1 ? 0 : (i / K) % M) : 0);
    for (int64_t i = 0; i < B->numel; i++)
        ib[i] = mm_q8(B, i) - (bz ? mm_q8(bz, bz->numel == 1 ? 0 : i % N) : 0);
    j.dt = KILN_DTYPE_INT32;
    j.a = ia;
    j.b = ib;
    j.c = acc;
    if (j.k == 0)
        memset(acc, 0, (size_t)Y->numel * sizeof(int32_t));
    else
        mm_run(c, &j, nbatch, false);
    if (qlinear && as->dtype != KILN_DTYPE_FLOAT) {
        /* float16 / bfloat16 scales: a_scale * b_scale / y_scale rounded to
         * the scales' type at each step, as the definition computes it */
        bool half = as->dtype == KILN_DTYPE_FLOAT16;
#define MM_ROUND(v) (half ? kiln_half_to_float(kiln_float_to_half(v)) : kiln_bf16_to_float(kiln_float_to_bf16(v)))
        float ysv = (float)kiln_load_f64(ys->data, ys->dtype, 0);
        int32_t zp = mm_q8(yz, 0);
        for (int64_t i = 0; i < Y->numel; i++) {
            int64_t col = i % N, row = (i / N) % M;
            float sa = (float)kiln_load_f64(as->data, as->dtype, as->numel == 1 ? 0 : row);
            float sb = (float)kiln_load_f64(bs->data, bs->dtype, bs->numel == 1 ? 0 : col);
            float scale = MM_ROUND(MM_ROUND(sa * sb) / ysv);
            kiln_store_q8(Y->data, ydt, i, (float)(nearbyint((double)acc[i] * scale) + zp));
        }
#undef MM_ROUND
    } else if (qlinear) {
        const float *asp = as->data, *bsp = bs->data;
        float ysv = *(const float *)ys->data;
        int32_t zp = mm_q8(yz, 0);
        for (int64_t i = 0; i < Y->numel; i++) {
            int64_t col = i % N, row = (i / N) % M;
            float scale = asp[as->numel == 1 ? 0 : row] * bsp[bs->numel == 1 ? 0 : col] / ysv;
            kiln_store_q8(Y->data, ydt, i, nearbyintf((float)acc[i] * scale) + (float)zp);
        }
    }
    free(s);
    return KILN_OK;
}

static kiln_status matmulinteger_exec(kiln_op_ctx *c) { return mm_integer(c, false); }
static kiln_status qlinearmatmul_exec(kiln_op_ctx *c) { return mm_integer(c, true); }

/* Shape rule (numpy matmul): batch dims broadcast, then [M, N]; 1-D
 * operands gain and lose their unit dim. out_dt: the output's type. */
static kiln_status matmul_infer_as(kiln_infer_ctx *x, int ia, int ib, kiln_dtype out_dt) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = out_dt;
    kiln_shape_fact a, b, bo;
    kiln_fact_copy(&a, kiln_infer_in(x, (size_t)ia));
    kiln_fact_copy(&b, kiln_infer_in(x, (size_t)ib));
    if (a.rank < 1 || b.rank < 1)
        return KILN_OK;
    bool va = a.rank == 1, vb = b.rank == 1;
    if (va) {
        a.dims[1] = a.dims[0];
        a.dims[0] = kiln_sd_const(1);
        a.rank = 2;
    }
    if (vb) {
        b.dims[1] = kiln_sd_const(1);
        b.rank = 2;
    }
    kiln_shape_fact ba = a, bb = b;
    ba.rank -= 2;
    bb.rank -= 2;
    const kiln_shape_fact *fs[2] = {&ba, &bb};
    kiln_fact_unknown(&bo, out_dt);
    if (!kiln_infer_bcast(fs, 2, &bo) || bo.rank + 2 > KILN_MAX_RANK)
        return KILN_OK;
    o->rank = bo.rank;
    memcpy(o->dims, bo.dims, (size_t)bo.rank * sizeof *bo.dims);
    if (!va)
        o->dims[o->rank++] = a.dims[a.rank - 2];
    if (!vb)
        o->dims[o->rank++] = b.dims[b.rank - 1];
    return KILN_OK;
}
static kiln_status matmul_infer(kiln_infer_ctx *x) { return matmul_infer_as(x, 0, 1, kiln_infer_in(x, 0)->dt); }
static kiln_status matmulinteger_infer(kiln_infer_ctx *x) { return matmul_infer_as(x, 0, 1, KILN_DTYPE_INT32); }
/* QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp): y_zp's type */
static kiln_status qlinearmatmul_infer(kiln_infer_ctx *x) { return matmul_infer_as(x, 0, 3, kiln_infer_in(x, 7)->dt); }

static const kiln_op_desc ops[] = {
    {"", "MatMul", 1, 0, matmul_exec, matmul_infer, matmul_prepare, matmul_release},
    {"", "MatMulInteger", 10, 0, matmulinteger_exec, matmulinteger_infer},
    {"", "QLinearMatMul", 10, 0, qlinearmatmul_exec, qlinearmatmul_infer},
};
KILN_OP_FAMILY(matmul, ops);

/* MatMul(A, B) + bias with B a constant matrix and bias a constant row, as
 * the planner fuses them (exec/fuse.c): the bias is added in the GEMM's
 * epilogue. */
const kiln_op_desc kiln_op_matmul_bias = {"", "MatMul", 13, 0, matmul_bias_exec, matmul_infer, matmul_prepare,
                                          matmul_release};
