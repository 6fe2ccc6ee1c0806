/* Attention and the other sequence mixers of language models: Attention
 * (opsets 23, 24, 25), FlexAttention (ai.onnx.preview 1), RotaryEmbedding
 * (23), TensorScatter (24, the KV-cache update), LinearAttention and
 * CausalConvWithState (27).
 *
 * Attention is scaled dot-product attention with an online softmax. Each
 * task is one (batch, query head, block of query rows). It makes one pass
 * over the keys in blocks: the block of scores Q*K^T comes from a small
 * matrix product, gets softcap and the attention bias, and folds into a
 * running row maximum, running sum and unnormalised output (rescaled when
 * the maximum grows), so no row of scores is ever materialised. Key blocks
 * that the bias masks entirely (past the causal frontier, outside the
 * window, past nonpad_kv_seqlen or a short attn_mask) are skipped unless
 * qk_matmul_output asks for every score.
 *
 * Layouts: 4-D (batch, heads, seq, head_size) or 3-D (batch, seq,
 * heads * head_size) are read in place through strides. Query head h reads
 * key/value head h / (q_heads / kv_heads) (GQA, MQA). past_key/past_value
 * come first along the sequence; when present_key/present_value are wanted
 * they are written first and the kernel reads the keys from them.
 *
 * The bias of score (b, h, i, j) is the sum of attn_mask (bool: 0 or -inf;
 * numeric: its value; -inf past its last dim), the causal frontier
 * j <= i + offset (offset: past length, or nonpad_kv_seqlen[b] - q_seq
 * with an external cache), the opset-25 window around i + offset, and
 * j < nonpad_kv_seqlen[b]. A row whose bias is -inf everywhere gives zeros
 * (Y and the mode-3 probabilities). qk_matmul_output modes follow the
 * operator's function body (mode 0: the scaled product before softcap).
 *
 * float and double compute in their own precision, float16 and bfloat16 in
 * float32 (softmax_precision asks for at least that much); the element code
 * is written once and instantiated per type by including this file into
 * itself. For bfloat16 with the softmax in T1 precision (softmax_precision
 * unset or bfloat16), see att_block_bf16 below.
 */
#ifndef ATT_T

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/elementwise_math.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/valio.h"
#include "ops/op.h"

#define ATT_BQ 32  /* query rows per task */
#define ATT_BK 128 /* keys per block */

/* Rows of K or V: rows [0, split) from seg[0], [split, T) from seg[1]
 * (element strides per batch, head and row; the last dim is contiguous). */
typedef struct att_seg {
    const void *p;
    int64_t sb, sh, ss;
} att_seg;

typedef struct att_job {
    int64_t B, Hq, Hkv, group, Sq, T, D, Dv, P;
    const void *q;
    kiln_dtype qdt;
    int64_t qsb, qsh, qss;
    kiln_dtype kdt, vdt;
    att_seg k[2], v[2];
    int64_t ksplit, vsplit;
    void *y;
    int64_t ysb, ysh, yss;
    void *qk; /* (B, Hq, Sq, T) in qdt, or NULL */
    int mode;
    const void *mask;
    kiln_dtype mdt;
    int64_t msb, msh, msq, mlen;
    const int64_t *nonpad;
    double scale, softcap;
    bool causal, has_past, round16;
    int64_t left, right; /* window, -1: unbounded */
    int64_t nqb;
    int failed;
} att_job;

/* offset of the causal frontier / window centre for batch b */
static inline int64_t att_offset(const att_job *j, int64_t b) {
    if (j->has_past)
        return j->P;
    if (j->nonpad)
        return j->nonpad[b] - j->Sq;
    return 0;
}

static inline double att_bias(const att_job *j, int64_t b, int64_t h, int64_t i, int64_t k, int64_t off) {
    double v = 0.0;
    if (j->mask) {
        if (k >= j->mlen)
            return -INFINITY;
        int64_t o = b * j->msb + h * j->msh + i * j->msq + k;
        if (j->mdt == KILN_DTYPE_BOOL)
            v = ((const uint8_t *)j->mask)[o] ? 0.0 : -INFINITY;
        else
            v = kiln_load_f64(j->mask, j->mdt, o);
    }
    int64_t p = i + off;
    if (j->causal && k > p)
        v += -INFINITY;
    if (j->left >= 0 && p - k > j->left)
        v += -INFINITY;
    if (j->right >= 0 && k - p > j->right)
        v += -INFINITY;
    if (j->nonpad && k >= j->nonpad[b])
        v += -INFINITY;
    return v;
}

/* The keys rows [i0, i1) can attend (outside it the bias is -inf). */
static void att_key_range(const att_job *j, int64_t b, int64_t i0, int64_t i1, int64_t *ks, int64_t *ke) {
    int64_t off = att_offset(j, b), s = 0, e = j->T;
    if (j->causal && i1 - 1 + off + 1 < e)
        e = i1 - 1 + off + 1;
    if (j->right >= 0 && i1 - 1 + off + j->right + 1 < e)
        e = i1 - 1 + off + j->right + 1;
    if (j->nonpad && j->nonpad[b] < e)
        e = j->nonpad[b];
    if (j->mask && j->mlen < e)
        e = j->mlen;
    if (j->left >= 0 && i0 + off - j->left > s)
        s = i0 + off - j->left;
    if (e < s)
        e = s;
    *ks = s;
    *ke = e;
}

static inline void att_store(void *p, kiln_dtype dt, int64_t i, double v) { kiln_store_f64(p, dt, i, v); }

#define ATT_T float
#define ATT_FN(name) name##_f32
#define ATT_GEMM kiln_sgemm
#define ATT_EXP expf
#define ATT_TANH tanhf
#define ATT_F32 1 /* the float instance: vector exp and the bfloat16 path */
#include "ops/attention.c"
#undef ATT_F32
#undef ATT_T
#undef ATT_FN
#undef ATT_GEMM
#undef ATT_EXP
#undef ATT_TANH

#define ATT_T double
#define ATT_FN(name) name##_f64
#define ATT_GEMM kiln_dgemm
#define ATT_EXP exp
#define ATT_TANH tanh
#include "ops/attention.c"
#undef ATT_T
#undef ATT_FN
#undef ATT_GEMM
#undef ATT_EXP
#undef ATT_TANH

static bool is_float_dt(kiln_dtype d) { return kiln_is_float_dtype(d); }

/* Copies past (B, H, P, d) and the new rows (strided) into present (B, H, T, d). */
typedef struct att_cat_job {
    const void *past, *cur;
    void *out;
    size_t es;
    int64_t H, P, S, d, csb, csh, css;
} att_cat_job;

static void att_cat_range(void *arg, size_t begin, size_t end) {
    const att_cat_job *c = arg;
    for (size_t t = begin; t < end; t++) {
        int64_t b = (int64_t)t / c->H, h = (int64_t)t % c->H;
        char *o = (char *)c->out + (size_t)(t * (size_t)(c->P + c->S) * (size_t)c->d) * c->es;
        if (c->P)
            memcpy(o, (const char *)c->past + (size_t)(t * (size_t)c->P * (size_t)c->d) * c->es,
                   (size_t)(c->P * c->d) * c->es);
        o += (size_t)(c->P * c->d) * c->es;
        for (int64_t s = 0; s < c->S; s++)
            memcpy(o + (size_t)(s * c->d) * c->es,
                   (const char *)c->cur + (size_t)(b * c->csb + h * c->csh + s * c->css) * c->es,
                   (size_t)c->d * c->es);
    }
}

static kiln_status att_write_present(kiln_op_ctx *c, const kiln_tensor *past, const kiln_tensor *cur,
                                     kiln_tensor *out, int64_t H, int64_t P, int64_t S, int64_t d, int64_t csb,
                                     int64_t csh, int64_t css) {
    att_cat_job cj = {past ? past->data : NULL, cur->data, out->data, kiln_dtype_size(out->dtype),
                      H, P, S, d, csb, csh, css};
    if (out->numel)
        kiln_parallel_for(c, (size_t)(out->dims[0] * H), 16, att_cat_range, &cj);
    return KILN_OK;
}

static const char *const att_in_names[] = {"Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen"};

static kiln_status attention_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *Q = c->in[0], *K = c->in[1], *V = c->in[2];
    const kiln_tensor *M = kiln_op_in(c, 3), *PK = kiln_op_in(c, 4), *PV = kiln_op_in(c, 5);
    const kiln_tensor *NP = c->opset >= 24 ? kiln_op_in(c, 6) : NULL;
    const kiln_node *nd = c->node;
    for (int i = 0; i < 3; i++)
        if (!is_float_dt(c->in[i]->dtype))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "input '%s' has element type %s; Attention takes float, double, "
                                                   "float16 and bfloat16",
                             att_in_names[i], kiln_dtype_name(c->in[i]->dtype));
    if (K->dtype != Q->dtype)
        return kiln_fail(KILN_ERR_INVALID, "inputs 'Q' and 'K' must have the same element type (%s, %s)",
                         kiln_dtype_name(Q->dtype), kiln_dtype_name(K->dtype));
    int rank = Q->rank;
    if ((rank != 3 && rank != 4) || K->rank != rank || V->rank != rank)
        return kiln_fail(KILN_ERR_INVALID, "Q, K and V must all be 3-D or all 4-D (ranks %d, %d, %d)", Q->rank,
                         K->rank, V->rank);
    int64_t B = Q->dims[0], Hq, Hkv, Sq, Skv, D, Dv;
    int64_t qh = kiln_attr_int(nd, "q_num_heads", 0), kh = kiln_attr_int(nd, "kv_num_heads", 0);
    att_job j = {0};
    if (rank == 3) {
        if (qh <= 0 || kh <= 0)
            return kiln_fail(KILN_ERR_INVALID, "3-D inputs need positive attributes 'q_num_heads' and "
                                               "'kv_num_heads' (have %lld, %lld)",
                             (long long)qh, (long long)kh);
        Hq = qh;
        Hkv = kh;
        if (Q->dims[2] % Hq || K->dims[2] % Hkv || V->dims[2] % Hkv)
            return kiln_fail(KILN_ERR_INVALID, "hidden sizes of Q, K, V (%lld, %lld, %lld) must be multiples of "
                                               "q_num_heads %lld and kv_num_heads %lld",
                             (long long)Q->dims[2], (long long)K->dims[2], (long long)V->dims[2], (long long)Hq,
                             (long long)Hkv);
        Sq = Q->dims[1];
        Skv = K->dims[1];
        D = Q->dims[2] / Hq;
        if (K->dims[2] / Hkv != D)
            return kiln_fail(KILN_ERR_INVALID, "head size of K (%lld) differs from that of Q (%lld)",
                             (long long)(K->dims[2] / Hkv), (long long)D);
        Dv = V->dims[2] / Hkv;
        j.qsb = Sq * Hq * D, j.qsh = D, j.qss = Hq * D;
        j.k[1] = (att_seg){K->data, Skv * Hkv * D, D, Hkv * D};
        j.v[1] = (att_seg){V->data, V->dims[1] * Hkv * Dv, Dv, Hkv * Dv};
        if (V->dims[1] != Skv)
            goto bad_kv;
    } else {
        Hq = Q->dims[1];
        Hkv = K->dims[1];
        Sq = Q->dims[2];
        Skv = K->dims[2];
        D = Q->dims[3];
        Dv = V->dims[3];
        if ((qh && qh != Hq) || (kh && kh != Hkv))
            return kiln_fail(KILN_ERR_INVALID, "q_num_heads/kv_num_heads (%lld, %lld) disagree with the 4-D "
                                               "inputs' heads (%lld, %lld)",
                             (long long)qh, (long long)kh, (long long)Hq, (long long)Hkv);
        if (K->dims[3] != D)
            return kiln_fail(KILN_ERR_INVALID, "head size of K (%lld) differs from that of Q (%lld)",
                             (long long)K->dims[3], (long long)D);
        if (V->dims[1] != Hkv || V->dims[2] != Skv)
            goto bad_kv;
        j.qsb = Hq * Sq * D, j.qsh = Sq * D, j.qss = D;
        j.k[1] = (att_seg){K->data, Hkv * Skv * D, Skv * D, D};
        j.v[1] = (att_seg){V->data, Hkv * Skv * Dv, Skv * Dv, Dv};
    }
    if (K->dims[0] != B || V->dims[0] != B)
        return kiln_fail(KILN_ERR_INVALID, "Q, K and V must have the same batch size (%lld, %lld, %lld)",
                         (long long)B, (long long)K->dims[0], (long long)V->dims[0]);
    if (Hkv <= 0 || Hq % Hkv)
        return kiln_fail(KILN_ERR_INVALID, "query heads (%lld) must be a multiple of key/value heads (%lld)",
                         (long long)Hq, (long long)Hkv);
    if (!PK != !PV)
        return kiln_fail(KILN_ERR_INVALID, "past_key and past_value must be given together");
    int64_t P = 0;
    if (PK) {
        if (NP)
            return kiln_fail(KILN_ERR_INVALID, "nonpad_kv_seqlen cannot be combined with past_key/past_value");
        if (PK->dtype != K->dtype || PV->dtype != V->dtype)
            return kiln_fail(KILN_ERR_INVALID, "past_key/past_value must have the element types of K and V");
        if (PK->rank != 4 || PV->rank != 4 || PK->dims[0] != B || PK->dims[1] != Hkv || PK->dims[3] != D ||
            PV->dims[0] != B || PV->dims[1] != Hkv || PV->dims[2] != PK->dims[2] || PV->dims[3] != Dv) {
            char a[128], b2[128];
            return kiln_fail(KILN_ERR_INVALID, "past_key %s / past_value %s must be (%lld, %lld, past, %lld) and "
                                               "(%lld, %lld, past, %lld)",
                             kiln_dims_str(PK->rank, PK->dims, a, sizeof a),
                             kiln_dims_str(PV->rank, PV->dims, b2, sizeof b2), (long long)B, (long long)Hkv,
                             (long long)D, (long long)B, (long long)Hkv, (long long)Dv);
        }
        P = PK->dims[2];
    }
    int64_t T = P + Skv;
    if (NP) {
        if (NP->dtype != KILN_DTYPE_INT64 || NP->numel != B || NP->rank != 1)
            return kiln_fail(KILN_ERR_INVALID, "nonpad_kv_seqlen must be an int64 vector of batch size %lld",
                             (long long)B);
        j.nonpad = NP->data;
    }
    /* attributes */
    int64_t mode = kiln_attr_int(nd, "qk_matmul_output_mode", 0);
    if (mode < 0 || mode > 3)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'qk_matmul_output_mode' must be 0..3, is %lld",
                         (long long)mode);
    const kiln_attr *sp = kiln_node_attr(nd, "softmax_precision");
    int64_t prec = sp ? kiln_attr_int(nd, "softmax_precision", 0) : 0;
    if (sp && prec != KILN_DTYPE_FLOAT && prec != KILN_DTYPE_FLOAT16 && prec != KILN_DTYPE_DOUBLE &&
        prec != KILN_DTYPE_BFLOAT16)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'softmax_precision' must be 1, 10, 11 or 16, is %lld",
                         (long long)prec);
    j.left = j.right = -1;
    if (c->opset >= 25) {
        j.left = kiln_attr_int(nd, "left_window_size", -1);
        j.right = kiln_attr_int(nd, "right_window_size", -1);
        if (j.left < -1 || j.right < -1)
            return kiln_fail(KILN_ERR_INVALID, "window sizes must be -1 or nonnegative (left %lld, right %lld)",
                             (long long)j.left, (long long)j.right);
    }
    const kiln_attr *sa = kiln_node_attr(nd, "scale");
    j.scale = sa ? (double)kiln_attr_float(nd, "scale", 1.0f) : 1.0 / sqrt((double)D);
    j.softcap = kiln_attr_float(nd, "softcap", 0.0f);
    j.causal = kiln_attr_int(nd, "is_causal", 0) != 0;
    /* attn_mask: broadcast to (B, Hq, Sq, T), last dim padded with -inf */
    if (M) {
        if (M->dtype == KILN_DTYPE_STRING || M->dtype == KILN_DTYPE_COMPLEX64 || M->dtype == KILN_DTYPE_COMPLEX128)
            return kiln_fail(KILN_ERR_INVALID, "attn_mask of type %s is not supported", kiln_dtype_name(M->dtype));
        int64_t want[4] = {B, Hq, Sq, T}, st[4] = {0, 0, 0, 0};
        if (M->rank < 1 || M->rank > 4)
            goto bad_mask;
        int64_t s = 1;
        for (int d = 3; d >= 4 - M->rank; d--) {
            int64_t md = M->dims[d - (4 - M->rank)];
            if (d == 3) {
                if (md > T)
                    goto bad_mask;
                j.mlen = md;
            } else if (md != want[d] && md != 1)
                goto bad_mask;
            else
                st[d] = md == 1 ? 0 : s;
            s *= md;
        }
        j.mask = M->data;
        j.mdt = M->dtype;
        j.msb = st[0], j.msh = st[1], j.msq = st[2];
        if (M->numel == 0)
            j.mlen = 0;
    }
    /* outputs */
    kiln_tensor *Y, *PKo = NULL, *PVo = NULL, *QK = NULL;
    int64_t yd[4];
    if (rank == 3) {
        yd[0] = B, yd[1] = Sq, yd[2] = Hq * Dv;
        j.ysb = Sq * Hq * Dv, j.ysh = Dv, j.yss = Hq * Dv;
    } else {
        yd[0] = B, yd[1] = Hq, yd[2] = Sq, yd[3] = Dv;
        j.ysb = Hq * Sq * Dv, j.ysh = Sq * Dv, j.yss = Dv;
    }
    KILN_TRY(kiln_op_output(c, 0, Q->dtype, rank, yd, &Y));
    int64_t pkd[4] = {B, Hkv, T, D}, pvd[4] = {B, Hkv, T, Dv}, qkd[4] = {B, Hq, Sq, T};
    if (kiln_op_out_wanted(c, 1))
        KILN_TRY(kiln_op_output(c, 1, K->dtype, 4, pkd, &PKo));
    if (kiln_op_out_wanted(c, 2))
        KILN_TRY(kiln_op_output(c, 2, V->dtype, 4, pvd, &PVo));
    if (kiln_op_out_wanted(c, 3))
        KILN_TRY(kiln_op_output(c, 3, Q->dtype, 4, qkd, &QK));
    /* caches */
    if (PKo)
        KILN_TRY(att_write_present(c, PK, K, PKo, Hkv, P, Skv, D, j.k[1].sb, j.k[1].sh, j.k[1].ss));
    if (PVo)
        KILN_TRY(att_write_present(c, PV, V, PVo, Hkv, P, Skv, Dv, j.v[1].sb, j.v[1].sh, j.v[1].ss));
    if (PKo)
        j.k[1] = (att_seg){PKo->data, Hkv * T * D, T * D, D};
    else if (PK) {
        j.k[0] = (att_seg){PK->data, Hkv * P * D, P * D, D};
        j.ksplit = P;
    }
    if (PVo)
        j.v[1] = (att_seg){PVo->data, Hkv * T * Dv, T * Dv, Dv};
    else if (PV) {
        j.v[0] = (att_seg){PV->data, Hkv * P * Dv, P * Dv, Dv};
        j.vsplit = P;
    }
    j.B = B, j.Hq = Hq, j.Hkv = Hkv, j.group = Hq / Hkv, j.Sq = Sq, j.T = T, j.D = D, j.Dv = Dv, j.P = P;
    j.q = Q->data, j.qdt = Q->dtype, j.kdt = K->dtype, j.vdt = V->dtype;
    j.y = Y->data;
    j.qk = QK ? QK->data : NULL;
    j.mode = (int)mode;
    j.has_past = PK != NULL;
    j.nqb = (Sq + ATT_BQ - 1) / ATT_BQ;
    /* bfloat16 keeps its softmax in bfloat16 unless asked for more */
    j.round16 = Q->dtype == KILN_DTYPE_BFLOAT16 && (!sp || prec == KILN_DTYPE_BFLOAT16);
    if (Y->numel == 0 && !QK)
        return KILN_OK;
    size_t tasks = (size_t)(B * Hq * j.nqb);
    if (tasks == 0)
        return KILN_OK;
    double cost = (double)(Sq < ATT_BQ ? Sq : ATT_BQ) * (double)(T + 1) * (double)(D + Dv + 1);
    size_t grain = cost >= 65536.0 ? 1 : (size_t)(65536.0 / cost);
    kiln_gemm_init(); /* single-threaded BLAS inside kiln's threads */
    bool dbl = Q->dtype == KILN_DTYPE_DOUBLE || V->dtype == KILN_DTYPE_DOUBLE ||
               (sp && prec == KILN_DTYPE_DOUBLE);
    if (dbl)
        j.round16 = false;
    kiln_parallel_for(c, tasks, grain, dbl ? att_range_f64 : att_range_f32, &j);
    if (j.failed)
        return KILN_ERR_NOMEM;
    return KILN_OK;
bad_kv: {
    char a[128], b2[128];
    return kiln_fail(KILN_ERR_INVALID, "K %s and V %s must agree in batch, heads and sequence length",
                     kiln_dims_str(K->rank, K->dims, a, sizeof a), kiln_dims_str(V->rank, V->dims, b2, sizeof b2));
}
bad_mask: {
    char a[128];
    return kiln_fail(KILN_ERR_INVALID, "attn_mask %s does not broadcast to (batch %lld, heads %lld, q_seq %lld, "
                                       "total_seq %lld)",
                     kiln_dims_str(M->rank, M->dims, a, sizeof a), (long long)B, (long long)Hq, (long long)Sq,
                     (long long)T);
}
}

/* ---- shape rules ---- */

static kiln_status attention_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *Q = kiln_infer_in(x, 0), *K = kiln_infer_in(x, 1), *V = kiln_infer_in(x, 2);
    const kiln_shape_fact *PK = kiln_infer_in(x, 4), *PV = kiln_infer_in(x, 5);
    bool past = kiln_infer_has(x, 4);
    for (size_t k = 0; k < x->n_out && k < 4; k++)
        x->out[k].dt = k == 2 ? V->dt : k == 1 ? K->dt : Q->dt;
    if (Q->rank < 0 || K->rank < 0 || V->rank < 0)
        return KILN_OK;
    if ((Q->rank != 3 && Q->rank != 4) || K->rank != Q->rank || V->rank != Q->rank)
        return kiln_fail(KILN_ERR_INVALID, "Q, K and V must all be 3-D or all 4-D (ranks %d, %d, %d)", Q->rank,
                         K->rank, V->rank);
    kiln_sdim b = Q->dims[0], hq, hkv, sq, skv, d, dv;
    if (Q->rank == 3) {
        int64_t qh = kiln_attr_int(x->node, "q_num_heads", 0), kh = kiln_attr_int(x->node, "kv_num_heads", 0);
        if (qh <= 0 || kh <= 0)
            return kiln_fail(KILN_ERR_INVALID, "3-D inputs need positive attributes 'q_num_heads' and 'kv_num_heads'");
        hq = kiln_sd_const(qh), hkv = kiln_sd_const(kh);
        sq = Q->dims[1], skv = K->dims[1];
        d = kiln_sd_div_exact(K->dims[2], hkv);
        dv = kiln_sd_div_exact(V->dims[2], hkv);
    } else {
        hq = Q->dims[1], hkv = K->dims[1], sq = Q->dims[2], skv = K->dims[2], d = K->dims[3], dv = V->dims[3];
    }
    kiln_sdim total = skv, total_v = skv;
    if (past) {
        total = PK->rank == 4 ? kiln_sd_add(PK->dims[2], skv, 1) : kiln_sd_unknown();
        total_v = PV->rank == 4 ? kiln_sd_add(PV->dims[2], skv, 1) : kiln_sd_unknown();
        if (!total.known)
            total = total_v;
    }
    kiln_shape_fact *o = &x->out[0];
    if (Q->rank == 3) {
        o->rank = 3;
        o->dims[0] = b, o->dims[1] = sq, o->dims[2] = kiln_sd_mul(hq, dv);
    } else {
        o->rank = 4;
        o->dims[0] = b, o->dims[1] = hq, o->dims[2] = sq, o->dims[3] = dv;
    }
    if (x->n_out > 1) {
        kiln_shape_fact *p = &x->out[1];
        p->rank = 4;
        p->dims[0] = b, p->dims[1] = hkv, p->dims[2] = total, p->dims[3] = d;
    }
    if (x->n_out > 2) {
        kiln_shape_fact *p = &x->out[2];
        p->rank = 4;
        p->dims[0] = b, p->dims[1] = hkv, p->dims[2] = total_v, p->dims[3] = dv;
    }
    if (x->n_out > 3) {
        kiln_shape_fact *p = &x->out[3];
        p->rank = 4;
        p->dims[0] = b, p->dims[1] = hq, p->dims[2] = sq, p->dims[3] = total;
    }
    return KILN_OK;
}

/* ---- RotaryEmbedding (23) ----
 * X: (B, H, S, head) or (B, S, H * head) with num_heads. The first
 * rotary_embedding_dim (default: head) elements of each head rotate as
 * pairs (k, k + dim/2), or (2k, 2k + 1) when interleaved, by the angle whose
 * cos/sin come from cos_cache/sin_cache: rows position_ids[b, s] of
 * (max_pos, dim/2) caches, or (B, S, dim/2) caches without position_ids.
 * The rest of the head is copied. Computed in float. */
typedef struct rope_job {
    const void *x, *cosc, *sinc;
    void *y;
    kiln_dtype dt;
    const int64_t *pos;
    int64_t B, H, S, hd, rd, npos;
    bool four_d, interleaved;
    int failed;
} rope_job;

static void rope_range(void *arg, size_t begin, size_t end) {
    rope_job *j = arg;
    int64_t half = j->rd / 2;
    float xb[2048], cs[1024], sn[1024];
    for (size_t t = begin; t < end; t++) {
        int64_t b = (int64_t)t / j->S, s = (int64_t)t % j->S, row = b * j->S + s;
        if (j->pos) {
            row = j->pos[b * j->S + s];
            if (row < 0 || row >= j->npos) {
                __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
                continue;
            }
        }
        for (int64_t k = 0; k < half; k++) {
            cs[k] = (float)kiln_load_f64(j->cosc, j->dt, row * half + k);
            sn[k] = (float)kiln_load_f64(j->sinc, j->dt, row * half + k);
        }
        for (int64_t h = 0; h < j->H; h++) {
            int64_t off = j->four_d ? ((b * j->H + h) * j->S + s) * j->hd : ((b * j->S + s) * j->H + h) * j->hd;
            for (int64_t d = 0; d < j->hd; d++)
                xb[d] = (float)kiln_load_f64(j->x, j->dt, off + d);
            for (int64_t k = 0; k < half; k++) {
                int64_t i1 = j->interleaved ? 2 * k : k, i2 = j->interleaved ? 2 * k + 1 : k + half;
                float x1 = xb[i1], x2 = xb[i2];
                kiln_store_f64(j->y, j->dt, off + i1, (double)(cs[k] * x1 - sn[k] * x2));
                kiln_store_f64(j->y, j->dt, off + i2, (double)(sn[k] * x1 + cs[k] * x2));
            }
            for (int64_t d = j->rd; d < j->hd; d++)
                kiln_store_f64(j->y, j->dt, off + d, (double)xb[d]);
        }
    }
}

static kiln_status rope_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0], *cc = c->in[1], *sc = c->in[2], *pid = kiln_op_in(c, 3);
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, 3));
    if (cc->dtype != x->dtype || sc->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "cos_cache and sin_cache must have the input's element type %s",
                         kiln_dtype_name(x->dtype));
    rope_job j = {.x = x->data, .cosc = cc->data, .sinc = sc->data, .dt = x->dtype};
    int64_t nh = kiln_attr_int(c->node, "num_heads", 0);
    if (x->rank == 4) {
        j.four_d = true;
        j.B = x->dims[0], j.H = x->dims[1], j.S = x->dims[2], j.hd = x->dims[3];
    } else if (x->rank == 3) {
        if (nh <= 0 || x->dims[2] % nh)
            return kiln_fail(KILN_ERR_INVALID, "a 3-D input needs attribute 'num_heads' dividing its hidden size "
                                               "%lld (num_heads %lld)",
                             (long long)x->dims[2], (long long)nh);
        j.B = x->dims[0], j.S = x->dims[1], j.H = nh, j.hd = x->dims[2] / nh;
    } else
        return kiln_fail(KILN_ERR_INVALID, "input must be 3-D or 4-D, is %d-D", x->rank);
    j.rd = kiln_attr_int(c->node, "rotary_embedding_dim", 0);
    if (j.rd == 0)
        j.rd = j.hd;
    if (j.rd < 0 || j.rd > j.hd || j.rd % 2 || j.hd > 2048)
        return kiln_fail(KILN_ERR_INVALID, "rotary_embedding_dim %lld must be even and at most the head size %lld "
                                           "(kiln takes heads up to 2048)",
                         (long long)j.rd, (long long)j.hd);
    j.interleaved = kiln_attr_int(c->node, "interleaved", 0) != 0;
    int64_t half = j.rd / 2;
    if (pid) {
        if (pid->dtype != KILN_DTYPE_INT64 || pid->rank != 2 || pid->dims[0] != j.B || pid->dims[1] != j.S)
            return kiln_fail(KILN_ERR_INVALID, "position_ids must be int64 (batch %lld, seq %lld)", (long long)j.B,
                             (long long)j.S);
        if (cc->rank != 2 || sc->rank != 2 || cc->dims[1] != half || sc->dims[1] != half || sc->dims[0] != cc->dims[0])
            goto bad_cache;
        j.pos = pid->data;
        j.npos = cc->dims[0];
    } else if (cc->rank != 3 || sc->rank != 3 || cc->dims[0] != j.B || cc->dims[1] != j.S || cc->dims[2] != half ||
               sc->dims[0] != j.B || sc->dims[1] != j.S || sc->dims[2] != half)
        goto bad_cache;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    j.y = y->data;
    if (y->numel == 0)
        return KILN_OK;
    kiln_parallel_for(c, (size_t)(j.B * j.S), (size_t)(j.H * j.hd >= 4096 ? 1 : 4096 / (j.H * j.hd)), rope_range, &j);
    if (j.failed)
        return kiln_fail(KILN_ERR_INVALID, "position_ids hold a value outside [0, %lld)", (long long)j.npos);
    return KILN_OK;
bad_cache: {
    char a[128];
    return kiln_fail(KILN_ERR_INVALID, "cos_cache %s / sin_cache must be (max_position, %lld) with position_ids, "
                                       "(batch, seq, %lld) without",
                     kiln_dims_str(cc->rank, cc->dims, a, sizeof a), (long long)half, (long long)half);
}
}

/* ---- TensorScatter (24) ----
 * present = past_cache with update written along `axis` from
 * write_indices[b] (0 when absent) in each batch entry; mode "circular"
 * wraps the index modulo the cache length, "linear" must fit. */
static kiln_status tensorscatter_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *past = c->in[0], *up = c->in[1], *wi = kiln_op_in(c, 2);
    if (past->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "string caches are not supported");
    if (up->dtype != past->dtype)
        return kiln_fail(KILN_ERR_INVALID, "update (%s) must have past_cache's element type %s",
                         kiln_dtype_name(up->dtype), kiln_dtype_name(past->dtype));
    const char *mode = kiln_attr_string(c->node, "mode", "linear");
    bool circular = strcmp(mode, "circular") == 0;
    if (!circular && strcmp(mode, "linear"))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'mode' must be \"linear\" or \"circular\", is \"%s\"", mode);
    if (past->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "past_cache must have rank >= 2, has %d", past->rank);
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -2), past->rank, &axis));
    if (axis == 0)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'axis' cannot be the batch axis");
    bool shape_ok = up->rank == past->rank;
    for (int d = 0; shape_ok && d < past->rank; d++)
        shape_ok = d == axis ? up->dims[d] <= past->dims[d] : up->dims[d] == past->dims[d];
    if (!shape_ok) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID, "update %s does not fit past_cache %s along axis %d",
                         kiln_dims_str(up->rank, up->dims, a, sizeof a),
                         kiln_dims_str(past->rank, past->dims, b, sizeof b), axis);
    }
    int64_t B = past->dims[0], maxs = past->dims[axis], seq = up->dims[axis];
    if (wi && (wi->dtype != KILN_DTYPE_INT64 || wi->numel != B))
        return kiln_fail(KILN_ERR_INVALID, "write_indices must be int64 with one entry per batch (%lld)", (long long)B);
    const int64_t *w = wi ? wi->data : NULL;
    for (int64_t b = 0; b < B && seq > 0; b++) {
        int64_t v = w ? w[b] : 0;
        if (v < 0 || (!circular && v + seq > maxs))
            return kiln_fail(KILN_ERR_INVALID, "write index %lld of batch %lld with %lld updates does not fit the "
                                               "cache length %lld",
                             (long long)v, (long long)b, (long long)seq, (long long)maxs);
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, past->dtype, past->rank, past->dims, &y));
    if (y->data != past->data && past->nbytes)
        memcpy(y->data, past->data, past->nbytes);
    size_t es = kiln_dtype_size(past->dtype);
    int64_t inner = kiln_dims_prod(past->dims, axis + 1, past->rank), mid = kiln_dims_prod(past->dims, 1, axis);
    for (int64_t b = 0; b < B; b++)
        for (int64_t m = 0; m < mid; m++) {
            int64_t pre = b * mid + m, base = w ? w[b] : 0;
            for (int64_t s = 0; s < seq; s++) {
                int64_t d = base + s;
                if (circular)
                    d %= maxs;
                memcpy((char *)y->data + (size_t)((pre * maxs + d) * inner) * es,
                       (const char *)up->data + (size_t)((pre * seq + s) * inner) * es, (size_t)inner * es);
            }
        }
    return KILN_OK;
}

/* ---- LinearAttention (27) ----
 * Per (batch, kv head) a d_k x d_v state S, token by token:
 *   gated:  S *= exp(g_t)  (g per head, or per key dim: per row of S)
 *   delta:  v_t = beta_t * (v_t - S^T k_t)
 *   S += k_t v_t^T;  o_t = scale * q_t^T S  for each query head of the group.
 * 3-D packed (B, T, heads * d) inputs; present_state (B, H_kv, d_k, d_v) in
 * past_state's type (the query's without one). float32 throughout. */
typedef struct la_job {
    const kiln_tensor *q, *k, *v, *past, *decay, *beta;
    void *out, *state;
    kiln_dtype sdt;
    int64_t B, T, Hq, Hkv, dk, dv;
    bool gated, delta, decay_per_dim, beta_per_head;
    float scale;
    int failed;
} la_job;

static void la_range(void *arg, size_t begin, size_t end) {
    la_job *j = arg;
    const int64_t dk = j->dk, dv = j->dv, G = j->Hq / j->Hkv;
    float *S = malloc((size_t)(dk * dv + dk + 2 * dv + dk) * sizeof(float));
    if (!S) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    float *kt = S + dk * dv, *vt = kt + dk, *rt = vt + dv, *qt = rt + dv;
    for (size_t t = begin; t < end; t++) {
        int64_t b = (int64_t)t / j->Hkv, h = (int64_t)t % j->Hkv;
        for (int64_t i = 0; i < dk * dv; i++)
            S[i] = j->past ? (float)kiln_load_f64(j->past->data, j->past->dtype, (int64_t)t * dk * dv + i) : 0.0f;
        for (int64_t s = 0; s < j->T; s++) {
            int64_t row = b * j->T + s;
            for (int64_t d = 0; d < dk; d++)
                kt[d] = (float)kiln_load_f64(j->k->data, j->k->dtype, row * j->Hkv * dk + h * dk + d);
            for (int64_t m = 0; m < dv; m++)
                vt[m] = (float)kiln_load_f64(j->v->data, j->v->dtype, row * j->Hkv * dv + h * dv + m);
            if (j->gated) {
                for (int64_t d = 0; d < dk; d++) {
                    int64_t gi = j->decay_per_dim ? row * j->Hkv * dk + h * dk + d : row * j->Hkv + h;
                    float g = expf((float)kiln_load_f64(j->decay->data, j->decay->dtype, gi));
                    float *sr = S + d * dv;
                    for (int64_t m = 0; m < dv; m++)
                        sr[m] *= g;
                }
            }
            if (j->delta) {
                float be = (float)kiln_load_f64(j->beta->data, j->beta->dtype,
                                                j->beta_per_head ? row * j->Hkv + h : row);
                for (int64_t m = 0; m < dv; m++)
                    rt[m] = 0.0f;
                for (int64_t d = 0; d < dk; d++) {
                    const float *sr = S + d * dv;
                    for (int64_t m = 0; m < dv; m++)
                        rt[m] += sr[m] * kt[d];
                }
                for (int64_t m = 0; m < dv; m++)
                    vt[m] = be * (vt[m] - rt[m]);
            }
            for (int64_t d = 0; d < dk; d++) {
                float *sr = S + d * dv;
                for (int64_t m = 0; m < dv; m++)
                    sr[m] += kt[d] * vt[m];
            }
            for (int64_t g = 0; g < G; g++) {
                int64_t hq = h * G + g;
                for (int64_t d = 0; d < dk; d++)
                    qt[d] = (float)kiln_load_f64(j->q->data, j->q->dtype, row * j->Hq * dk + hq * dk + d);
                for (int64_t m = 0; m < dv; m++)
                    rt[m] = 0.0f;
                for (int64_t d = 0; d < dk; d++) {
                    const float *sr = S + d * dv;
                    for (int64_t m = 0; m < dv; m++)
                        rt[m] += qt[d] * sr[m];
                }
                for (int64_t m = 0; m < dv; m++)
                    kiln_store_f64(j->out, j->q->dtype, row * j->Hq * dv + hq * dv + m, (double)(j->scale * rt[m]));
            }
        }
        if (j->state)
            for (int64_t i = 0; i < dk * dv; i++)
                kiln_store_f64(j->state, j->sdt, (int64_t)t * dk * dv + i, (double)S[i]);
    }
    free(S);
}

static kiln_status linattn_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    la_job j = {.q = c->in[0], .k = c->in[1], .v = c->in[2], .past = kiln_op_in(c, 3), .decay = kiln_op_in(c, 4),
                .beta = kiln_op_in(c, 5)};
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    for (size_t i = 0; i < 6; i++)
        if (kiln_op_in(c, i))
            KILN_TRY(kiln_op_need_dtype(c, i, ok, 3));
    const char *rule = kiln_attr_string(c->node, "update_rule", "gated_delta");
    if (!strcmp(rule, "linear"))
        ;
    else if (!strcmp(rule, "gated"))
        j.gated = true;
    else if (!strcmp(rule, "delta"))
        j.delta = true;
    else if (!strcmp(rule, "gated_delta"))
        j.gated = j.delta = true;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'update_rule' must be linear, gated, delta or gated_delta, is "
                                           "\"%s\"",
                         rule);
    j.Hq = kiln_attr_int(c->node, "q_num_heads", 0);
    j.Hkv = kiln_attr_int(c->node, "kv_num_heads", 0);
    if (j.Hq <= 0 || j.Hkv <= 0 || j.Hq % j.Hkv)
        return kiln_fail(KILN_ERR_INVALID, "q_num_heads (%lld) must be a positive multiple of kv_num_heads (%lld)",
                         (long long)j.Hq, (long long)j.Hkv);
    if (j.gated != (j.decay != NULL))
        return kiln_fail(KILN_ERR_INVALID, "update_rule '%s' %s the decay input", rule, j.gated ? "needs" : "forbids");
    if (j.delta != (j.beta != NULL))
        return kiln_fail(KILN_ERR_INVALID, "update_rule '%s' %s the beta input", rule, j.delta ? "needs" : "forbids");
    const kiln_tensor *q = j.q, *k = j.k, *v = j.v;
    if (q->rank != 3 || k->rank != 3 || v->rank != 3)
        return kiln_fail(KILN_ERR_INVALID, "query, key and value must be 3-D (batch, seq, heads * size)");
    j.B = q->dims[0], j.T = q->dims[1];
    if (q->dims[2] % j.Hq || v->dims[2] % j.Hkv)
        goto bad;
    j.dk = q->dims[2] / j.Hq, j.dv = v->dims[2] / j.Hkv;
    if (k->dims[0] != j.B || v->dims[0] != j.B || k->dims[1] != j.T || v->dims[1] != j.T || k->dims[2] != j.Hkv * j.dk)
        goto bad;
    if (j.decay) {
        const kiln_tensor *g = j.decay;
        j.decay_per_dim = g->rank == 3 && g->dims[2] == j.Hkv * j.dk;
        if (g->rank != 3 || g->dims[0] != j.B || g->dims[1] != j.T || (g->dims[2] != j.Hkv && !j.decay_per_dim))
            goto bad;
        if (j.Hkv * j.dk == j.Hkv)
            j.decay_per_dim = true; /* d_k 1: the two forms agree */
    }
    if (j.beta) {
        const kiln_tensor *be = j.beta;
        if (be->rank != 3 || be->dims[0] != j.B || be->dims[1] != j.T || (be->dims[2] != j.Hkv && be->dims[2] != 1))
            goto bad;
        j.beta_per_head = be->dims[2] == j.Hkv && j.Hkv != 1;
    }
    if (j.past && (j.past->rank != 4 || j.past->dims[0] != j.B || j.past->dims[1] != j.Hkv ||
                   j.past->dims[2] != j.dk || j.past->dims[3] != j.dv))
        goto bad;
    float sc = kiln_attr_float(c->node, "scale", 0.0f);
    j.scale = sc != 0.0f ? sc : (float)(1.0 / sqrt((double)j.dk));
    j.sdt = j.past ? j.past->dtype : q->dtype;
    kiln_tensor *o, *st = NULL;
    int64_t od[3] = {j.B, j.T, j.Hq * j.dv}, sd[4] = {j.B, j.Hkv, j.dk, j.dv};
    KILN_TRY(kiln_op_output(c, 0, q->dtype, 3, od, &o));
    if (kiln_op_out_wanted(c, 1))
        KILN_TRY(kiln_op_output(c, 1, j.sdt, 4, sd, &st));
    j.out = o->data;
    j.state = st ? st->data : NULL;
    if (j.B * j.Hkv == 0 || j.dk * j.dv == 0)
        return KILN_OK;
    kiln_parallel_for(c, (size_t)(j.B * j.Hkv), 1, la_range, &j);
    return j.failed ? KILN_ERR_NOMEM : KILN_OK;
bad:
    return kiln_fail(KILN_ERR_INVALID, "inconsistent shapes: query, key, value must be (B, T, heads * d), decay (B, "
                                       "T, H_kv[*d_k]), beta (B, T, H_kv or 1), past_state (B, H_kv, d_k, d_v)");
}

static kiln_status linattn_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *q = kiln_infer_in(x, 0), *v = kiln_infer_in(x, 2), *ps = kiln_infer_in(x, 3);
    int64_t hq = kiln_attr_int(x->node, "q_num_heads", 0), hkv = kiln_attr_int(x->node, "kv_num_heads", 0);
    if (x->n_out > 0)
        x->out[0].dt = q->dt;
    if (x->n_out > 1)
        x->out[1].dt = kiln_infer_has(x, 3) ? ps->dt : q->dt;
    if (hq <= 0 || hkv <= 0 || q->rank != 3 || v->rank != 3)
        return KILN_OK;
    kiln_sdim dv = kiln_sd_div_exact(v->dims[2], kiln_sd_const(hkv));
    x->out[0].rank = 3;
    x->out[0].dims[0] = q->dims[0], x->out[0].dims[1] = q->dims[1];
    x->out[0].dims[2] = kiln_sd_mul(kiln_sd_const(hq), dv);
    if (x->n_out > 1) {
        x->out[1].rank = 4;
        x->out[1].dims[0] = q->dims[0], x->out[1].dims[1] = kiln_sd_const(hkv);
        x->out[1].dims[2] = kiln_sd_div_exact(q->dims[2], kiln_sd_const(hq)), x->out[1].dims[3] = dv;
    }
    return KILN_OK;
}

/* ---- CausalConvWithState (27) ----
 * Depthwise causal conv1d over (B, C, L) with a (C, 1, k) kernel, the
 * k - 1 positions before the input from past_state (zeros without it);
 * optional bias and fused SiLU. present_state: the last k - 1 positions of
 * past + input. Computed in float. */
typedef struct ccs_job {
    const kiln_tensor *x, *w, *bias, *past;
    void *y, *state;
    int64_t C, L, K;
    bool silu;
} ccs_job;

static void ccs_range(void *arg, size_t begin, size_t end) {
    const ccs_job *j = arg;
    const int64_t L = j->L, K = j->K, P = K - 1;
    float wk[64], pad[1024];
    for (size_t t = begin; t < end; t++) {
        int64_t c = (int64_t)t % j->C;
        for (int64_t i = 0; i < K; i++)
            wk[i] = (float)kiln_load_f64(j->w->data, j->w->dtype, c * K + i);
        float bv = j->bias ? (float)kiln_load_f64(j->bias->data, j->bias->dtype, c) : 0.0f;
        /* padded = past (P) ++ x (L), streamed through a window of P + chunk */
        for (int64_t i = 0; i < P; i++)
            pad[i] = j->past ? (float)kiln_load_f64(j->past->data, j->past->dtype, (int64_t)t * P + i) : 0.0f;
        const int64_t CH = 1024 - 64;
        for (int64_t l0 = 0; l0 < L; l0 += CH) {
            int64_t n = L - l0 < CH ? L - l0 : CH;
            for (int64_t i = 0; i < n; i++)
                pad[P + i] = (float)kiln_load_f64(j->x->data, j->x->dtype, (int64_t)t * L + l0 + i);
            for (int64_t i = 0; i < n; i++) {
                float acc = bv;
                for (int64_t q = 0; q < K; q++)
                    acc += wk[q] * pad[i + q];
                if (j->silu)
                    acc = acc / (1.0f + expf(-acc));
                kiln_store_f64(j->y, j->x->dtype, (int64_t)t * L + l0 + i, (double)acc);
            }
            memmove(pad, pad + n, (size_t)P * sizeof(float));
        }
        if (j->state)
            for (int64_t i = 0; i < P; i++)
                kiln_store_f64(j->state, j->x->dtype, (int64_t)t * P + i, (double)pad[i]);
    }
}

static kiln_status ccs_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    ccs_job j = {.x = c->in[0], .w = c->in[1], .bias = kiln_op_in(c, 2), .past = kiln_op_in(c, 3)};
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    for (size_t i = 0; i < 4; i++)
        if (kiln_op_in(c, i)) {
            KILN_TRY(kiln_op_need_dtype(c, i, ok, 3));
            if (c->in[i]->dtype != j.x->dtype)
                return kiln_fail(KILN_ERR_INVALID, "all inputs must have the input's element type %s",
                                 kiln_dtype_name(j.x->dtype));
        }
    const char *act = kiln_attr_string(c->node, "activation", "none");
    j.silu = !strcmp(act, "silu") || !strcmp(act, "swish");
    if (!j.silu && strcmp(act, "none"))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'activation' must be silu, swish or none, is \"%s\"", act);
    const kiln_tensor *x = j.x, *w = j.w;
    if (x->rank != 3 || w->rank != 3 || w->dims[0] != x->dims[1] || w->dims[1] != 1 || w->dims[2] < 1)
        return kiln_fail(KILN_ERR_INVALID, "input must be (B, C, L) and weight (C, 1, k)");
    j.C = x->dims[1], j.L = x->dims[2], j.K = w->dims[2];
    if (j.K > 64)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "kernel size %lld (kiln takes up to 64)", (long long)j.K);
    if (j.bias && (j.bias->rank != 1 || j.bias->dims[0] != j.C))
        return kiln_fail(KILN_ERR_INVALID, "bias must be (C) = (%lld)", (long long)j.C);
    if (j.past && (j.past->rank != 3 || j.past->dims[0] != x->dims[0] || j.past->dims[1] != j.C ||
                   j.past->dims[2] != j.K - 1))
        return kiln_fail(KILN_ERR_INVALID, "past_state must be (B, C, k - 1) = (%lld, %lld, %lld)",
                         (long long)x->dims[0], (long long)j.C, (long long)(j.K - 1));
    kiln_tensor *y, *st = NULL;
    int64_t sd[3] = {x->dims[0], j.C, j.K - 1};
    KILN_TRY(kiln_op_output(c, 0, x->dtype, 3, x->dims, &y));
    if (kiln_op_out_wanted(c, 1))
        KILN_TRY(kiln_op_output(c, 1, x->dtype, 3, sd, &st));
    j.y = y->data;
    j.state = st ? st->data : NULL;
    size_t rows = (size_t)(x->dims[0] * j.C);
    if (rows)
        kiln_parallel_for(c, rows, j.L * j.K >= 8192 ? 1 : (size_t)(8192 / (j.L * j.K + 1)), ccs_range, &j);
    return KILN_OK;
}

static kiln_status ccs_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    const kiln_shape_fact *in = kiln_infer_in(x, 0), *w = kiln_infer_in(x, 1);
    if (x->n_out > 1) {
        x->out[1].dt = in->dt;
        if (in->rank == 3 && w->rank == 3) {
            x->out[1].rank = 3;
            x->out[1].dims[0] = in->dims[0], x->out[1].dims[1] = in->dims[1];
            x->out[1].dims[2] = kiln_sd_add(w->dims[2], kiln_sd_const(1), -1);
        }
    }
    return KILN_OK;
}

/* ---- FlexAttention (ai.onnx.preview 1) ----
 * softmax(score_mod(scale * Q K^T)) then prob_mod, times V; 4-D inputs, GQA.
 * Without modifier subgraphs it is the Attention kernel above. With them
 * the subgraphs see the whole (B, Hq, L, S) tensor, so the scores are
 * materialised in the softmax precision (float, or double for double
 * inputs, or softmax_precision), computed here in double. */
typedef struct flex_job {
    const kiln_tensor *q, *k, *v;
    kiln_tensor *s; /* scores or probabilities (B, Hq, L, S) in the compute type */
    const kiln_tensor *p;
    void *y;
    int64_t Hq, Hkv, L, S, E, Ev;
    double scale;
    int stage; /* 0: scores, 1: softmax (s from p), 2: Y = p V */
    int failed;
} flex_job;

static void flex_range(void *arg, size_t begin, size_t end) {
    flex_job *j = arg;
    const int64_t L = j->L, S = j->S, E = j->E, Ev = j->Ev;
    size_t n = j->stage == 0 ? (size_t)(L * E + S * E + L * S) : j->stage == 1 ? (size_t)S : (size_t)(L * S + S * Ev + L * Ev);
    double *buf = malloc((n ? n : 1) * sizeof(double));
    if (!buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (size_t t = begin; t < end; t++) {
        int64_t b = (int64_t)t / j->Hq, h = (int64_t)t % j->Hq, hk = h / (j->Hq / j->Hkv);
        int64_t so = (int64_t)t * L * S;
        if (j->stage == 0) {
            double *qb = buf, *kb = qb + L * E, *sb = kb + S * E;
            att_load_f64(qb, j->q->data, j->q->dtype, (int64_t)t * L * E, E, L, E);
            att_load_f64(kb, j->k->data, j->k->dtype, (b * j->Hkv + hk) * S * E, E, S, E);
            if (E > 0)
                kiln_dgemm(false, true, L, S, E, j->scale, qb, E, kb, E, 0, sb, S > 0 ? S : 1);
            else
                memset(sb, 0, (size_t)(L * S) * sizeof(double));
            for (int64_t i = 0; i < L * S; i++)
                kiln_store_f64(j->s->data, j->s->dtype, so + i, sb[i]);
        } else if (j->stage == 1) {
            for (int64_t i = 0; i < L; i++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t k = 0; k < S; k++) {
                    buf[k] = kiln_load_f64(j->p->data, j->p->dtype, so + i * S + k);
                    mx = buf[k] > mx ? buf[k] : mx;
                }
                for (int64_t k = 0; k < S; k++) {
                    buf[k] = exp(buf[k] - mx);
                    sum += buf[k];
                }
                for (int64_t k = 0; k < S; k++)
                    kiln_store_f64(j->s->data, j->s->dtype, so + i * S + k, buf[k] / sum);
            }
        } else {
            double *pb = buf, *vb = pb + L * S, *yb = vb + S * Ev;
            att_load_f64(pb, j->p->data, j->p->dtype, so, S, L, S);
            att_load_f64(vb, j->v->data, j->v->dtype, (b * j->Hkv + hk) * S * Ev, Ev, S, Ev);
            if (S > 0 && Ev > 0)
                kiln_dgemm(false, false, L, Ev, S, 1.0, pb, S, vb, Ev, 0, yb, Ev);
            else
                memset(yb, 0, (size_t)(L * Ev) * sizeof(double));
            att_store_row_f64(j->y, j->q->dtype, (int64_t)t * L * Ev, yb, L * Ev, 1.0);
        }
    }
    free(buf);
}

/* Runs a modifier subgraph on t (consumed), checking its one output keeps
 * t's type and shape. */
static kiln_status flex_mod(kiln_op_ctx *c, const char *name, kiln_tensor **t) {
    const kiln_graph *g = kiln_attr_graph(c->node, name);
    if (!g)
        return KILN_OK;
    if (g->n_inputs != 1 || g->n_outputs != 1)
        return kiln_fail(KILN_ERR_INVALID, "subgraph '%s' must have one input and one output (has %zu, %zu)", name,
                         g->n_inputs, g->n_outputs);
    kiln_tensor *out = NULL;
    const kiln_tensor *in[1] = {*t};
    kiln_status st = kiln_op_run_subgraph(c, g, 1, in, 1, &out);
    if (st == KILN_OK && (out->dtype != (*t)->dtype || out->rank != 4 ||
                          memcmp(out->dims, (*t)->dims, 4 * sizeof(int64_t)))) {
        char a[128], b[128];
        st = kiln_fail(KILN_ERR_INVALID, "subgraph '%s' returned %s %s for %s %s", name, kiln_dtype_name(out->dtype),
                       kiln_dims_str(out->rank, out->dims, a, sizeof a), kiln_dtype_name((*t)->dtype),
                       kiln_dims_str(4, (*t)->dims, b, sizeof b));
    }
    kiln_tensor_destroy(*t);
    *t = out;
    return st;
}

static kiln_status flex_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *Q = c->in[0], *K = c->in[1], *V = c->in[2];
    for (int i = 0; i < 3; i++)
        if (!kiln_is_float_dtype(c->in[i]->dtype) || c->in[i]->dtype != Q->dtype || c->in[i]->rank != 4)
            return kiln_fail(KILN_ERR_INVALID, "Q, K and V must be 4-D with one floating-point element type");
    int64_t B = Q->dims[0], Hq = Q->dims[1], L = Q->dims[2], E = Q->dims[3];
    int64_t Hkv = K->dims[1], S = K->dims[2], Ev = V->dims[3];
    if (K->dims[0] != B || V->dims[0] != B || V->dims[1] != Hkv || V->dims[2] != S || K->dims[3] != E || Hkv <= 0 ||
        Hq % Hkv)
        return kiln_fail(KILN_ERR_INVALID, "Q (B, Hq, L, E), K (B, Hkv, S, E), V (B, Hkv, S, Ev) disagree, or Hq is "
                                           "not a multiple of Hkv");
    kiln_dtype cdt = Q->dtype == KILN_DTYPE_DOUBLE ? KILN_DTYPE_DOUBLE : KILN_DTYPE_FLOAT;
    if (kiln_node_attr(c->node, "softmax_precision")) {
        int64_t p = kiln_attr_int(c->node, "softmax_precision", 1);
        if (p != KILN_DTYPE_FLOAT && p != KILN_DTYPE_FLOAT16 && p != KILN_DTYPE_DOUBLE && p != KILN_DTYPE_BFLOAT16)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'softmax_precision' must be 1, 10, 11 or 16, is %lld",
                             (long long)p);
        cdt = (kiln_dtype)p;
    }
    double scale = kiln_node_attr(c->node, "scale") ? (double)kiln_attr_float(c->node, "scale", 1.0f)
                                                     : 1.0 / sqrt((double)E);
    kiln_tensor *Y;
    int64_t yd[4] = {B, Hq, L, Ev};
    KILN_TRY(kiln_op_output(c, 0, Q->dtype, 4, yd, &Y));
    bool mods = kiln_attr_graph(c->node, "score_mod") || kiln_attr_graph(c->node, "prob_mod");
    kiln_gemm_init();
    if (!mods) {
        att_job j = {.B = B, .Hq = Hq, .Hkv = Hkv, .group = Hq / Hkv, .Sq = L, .T = S, .D = E, .Dv = Ev,
                     .q = Q->data, .qdt = Q->dtype, .qsb = Hq * L * E, .qsh = L * E, .qss = E,
                     .kdt = K->dtype, .vdt = V->dtype, .y = Y->data, .ysb = Hq * L * Ev, .ysh = L * Ev, .yss = Ev,
                     .scale = scale, .left = -1, .right = -1, .nqb = (L + ATT_BQ - 1) / ATT_BQ};
        j.k[1] = (att_seg){K->data, Hkv * S * E, S * E, E};
        j.v[1] = (att_seg){V->data, Hkv * S * Ev, S * Ev, Ev};
        size_t tasks = (size_t)(B * Hq * j.nqb);
        if (tasks)
            kiln_parallel_for(c, tasks, 1, Q->dtype == KILN_DTYPE_DOUBLE || cdt == KILN_DTYPE_DOUBLE ? att_range_f64
                                                                                                     : att_range_f32,
                              &j);
        return j.failed ? KILN_ERR_NOMEM : KILN_OK;
    }
    int64_t sd[4] = {B, Hq, L, S};
    kiln_tensor *sc = NULL, *pr = NULL;
    KILN_TRY(kiln_tensor_create(cdt, 4, sd, &sc));
    flex_job j = {.q = Q, .k = K, .v = V, .s = sc, .y = Y->data, .Hq = Hq, .Hkv = Hkv, .L = L, .S = S, .E = E,
                  .Ev = Ev, .scale = scale};
    size_t tasks = (size_t)(B * Hq);
    kiln_status st = KILN_OK;
    if (tasks)
        kiln_parallel_for(c, tasks, 1, flex_range, &j);
    if (j.failed)
        st = KILN_ERR_NOMEM;
    if (st == KILN_OK)
        st = flex_mod(c, "score_mod", &sc);
    if (st == KILN_OK)
        st = kiln_tensor_create(cdt, 4, sd, &pr);
    if (st == KILN_OK) {
        j.stage = 1, j.p = sc, j.s = pr;
        if (tasks)
            kiln_parallel_for(c, tasks, 1, flex_range, &j);
        st = j.failed ? KILN_ERR_NOMEM : flex_mod(c, "prob_mod", &pr);
    }
    if (st == KILN_OK) {
        j.stage = 2, j.p = pr;
        if (tasks)
            kiln_parallel_for(c, tasks, 1, flex_range, &j);
        if (j.failed)
            st = KILN_ERR_NOMEM;
    }
    kiln_tensor_destroy(sc);
    kiln_tensor_destroy(pr);
    return st;
}

static kiln_status flex_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *Q = kiln_infer_in(x, 0), *V = kiln_infer_in(x, 2);
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = Q->dt;
    if (Q->rank == 4 && V->rank == 4) {
        x->out[0].rank = 4;
        for (int d = 0; d < 3; d++)
            x->out[0].dims[d] = Q->dims[d];
        x->out[0].dims[3] = V->dims[3];
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Attention", 23, 23, attention_exec, attention_infer},
    {"", "Attention", 24, 24, attention_exec, attention_infer}, /* + nonpad_kv_seqlen */
    {"", "Attention", 25, 0, attention_exec, attention_infer},  /* + left/right_window_size */
    {"", "RotaryEmbedding", 23, 0, rope_exec, kiln_infer_same},
    {"", "TensorScatter", 24, 0, tensorscatter_exec, kiln_infer_same},
    {"", "LinearAttention", 27, 0, linattn_exec, linattn_infer},
    {"", "CausalConvWithState", 27, 0, ccs_exec, ccs_infer},
    {"ai.onnx.preview", "FlexAttention", 1, 0, flex_exec, flex_infer},
};
KILN_OP_FAMILY(attention, ops);

#else /* ATT_T: the element code, instantiated per type */

typedef ATT_T ATT_FN(att_real);
#define R_ ATT_FN(att_real)

/* x[i] = exp(x[i]) over a block */
static inline void ATT_FN(att_vexp)(R_ *x, int64_t n) {
#ifdef ATT_F32
    kiln_vexp_f32(x, x, (size_t)n);
#else
    for (int64_t i = 0; i < n; i++)
        x[i] = ATT_EXP(x[i]);
#endif
}

/* rows x cols of src (element offset off, row stride ld) into dst (ld cols) */
static void ATT_FN(att_load)(R_ *dst, const void *src, kiln_dtype dt, int64_t off, int64_t ld, int64_t rows,
                             int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        R_ *d = dst + r * cols;
        int64_t o = off + r * ld;
        switch (dt) {
        case KILN_DTYPE_FLOAT: {
            const float *s = (const float *)src + o;
            for (int64_t i = 0; i < cols; i++)
                d[i] = (R_)s[i];
            break;
        }
        case KILN_DTYPE_DOUBLE: {
            const double *s = (const double *)src + o;
            for (int64_t i = 0; i < cols; i++)
                d[i] = (R_)s[i];
            break;
        }
        case KILN_DTYPE_FLOAT16: {
            const uint16_t *s = (const uint16_t *)src + o;
            for (int64_t i = 0; i < cols; i++)
                d[i] = (R_)kiln_half_to_float(s[i]);
            break;
        }
        case KILN_DTYPE_BFLOAT16: {
            const uint16_t *s = (const uint16_t *)src + o;
            for (int64_t i = 0; i < cols; i++)
                d[i] = (R_)kiln_bf16_to_float(s[i]);
            break;
        }
        default: break;
        }
    }
}

static void ATT_FN(att_store_row)(void *dst, kiln_dtype dt, int64_t off, const R_ *src, int64_t n, R_ mul) {
    switch (dt) {
    case KILN_DTYPE_FLOAT:
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[off + i] = (float)(src[i] * mul);
        break;
    case KILN_DTYPE_DOUBLE:
        for (int64_t i = 0; i < n; i++)
            ((double *)dst)[off + i] = (double)(src[i] * mul);
        break;
    case KILN_DTYPE_FLOAT16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[off + i] = kiln_float_to_half((float)(src[i] * mul));
        break;
    case KILN_DTYPE_BFLOAT16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[off + i] = kiln_float_to_bf16((float)(src[i] * mul));
        break;
    default: break;
    }
}

/* A block of key or value rows [r0, r0 + n) of head (b, h) as an R_ matrix:
 * in place when the stored type is R_, else converted into scratch. */
static const R_ *ATT_FN(att_rows)(const att_seg *seg, int64_t split, kiln_dtype dt, int64_t b, int64_t h,
                                  int64_t r0, int64_t n, int64_t cols, R_ *scratch, int64_t *ld) {
    const att_seg *s = r0 < split ? &seg[0] : &seg[1];
    int64_t r = r0 < split ? r0 : r0 - split;
    int64_t off = b * s->sb + h * s->sh + r * s->ss;
    if ((sizeof(R_) == sizeof(float) && dt == KILN_DTYPE_FLOAT) ||
        (sizeof(R_) == sizeof(double) && dt == KILN_DTYPE_DOUBLE)) {
        *ld = s->ss;
        return (const R_ *)s->p + off;
    }
    ATT_FN(att_load)(scratch, s->p, dt, off, s->ss, n, cols);
    *ld = cols;
    return scratch;
}

/* Scores of a block: S[i][k] = scale * q_i . k_k, then softcap. */
static void ATT_FN(att_scores)(const att_job *j, const R_ *q, int64_t ldq, int64_t nq, int64_t b, int64_t hk,
                               int64_t k0, int64_t nk, R_ *S, R_ *kbuf) {
    int64_t ldk;
    if (j->D == 0) { /* empty dot products (and no valid leading dims for BLAS) */
        memset(S, 0, (size_t)(nq * nk) * sizeof(R_));
        return;
    }
    const R_ *kp = ATT_FN(att_rows)(j->k, j->ksplit, j->kdt, b, hk, k0, nk, j->D, kbuf, &ldk);
    ATT_GEMM(false, true, nq, nk, j->D, (R_)j->scale, q, ldq, kp, ldk, 0, S, nk);
}

static void ATT_FN(att_block)(const att_job *j, int64_t b, int64_t h, int64_t i0, int64_t nq, R_ *buf) {
    const int64_t D = j->D, Dv = j->Dv, T = j->T, hk = h / j->group;
    R_ *qb = buf, *S = qb + ATT_BQ * D, *O = S + ATT_BQ * ATT_BK, *kb = O + ATT_BQ * Dv, *vb = kb + ATT_BK * D;
    R_ *m = vb + ATT_BK * Dv, *l = m + ATT_BQ, *any = l + ATT_BQ;
    const R_ cap = (R_)j->softcap;
    const int64_t off = att_offset(j, b);
    /* the query rows */
    int64_t ldq;
    const R_ *q;
    {
        int64_t qo = b * j->qsb + h * j->qsh + i0 * j->qss;
        if ((sizeof(R_) == sizeof(float) && j->qdt == KILN_DTYPE_FLOAT) ||
            (sizeof(R_) == sizeof(double) && j->qdt == KILN_DTYPE_DOUBLE)) {
            q = (const R_ *)j->q + qo;
            ldq = j->qss;
        } else {
            ATT_FN(att_load)(qb, j->q, j->qdt, qo, j->qss, nq, D);
            q = qb;
            ldq = D;
        }
    }
    for (int64_t i = 0; i < nq; i++) {
        m[i] = -(R_)INFINITY;
        l[i] = 0;
        any[i] = 0;
    }
    memset(O, 0, (size_t)(nq * Dv) * sizeof(R_));
    int64_t ks = 0, ke = T;
    if (!j->qk)
        att_key_range(j, b, i0, i0 + nq, &ks, &ke);
    for (int64_t k0 = ks; k0 < ke;) {
        int64_t k1 = k0 + ATT_BK < ke ? k0 + ATT_BK : ke;
        if (k0 < j->ksplit && k1 > j->ksplit)
            k1 = j->ksplit;
        if (k0 < j->vsplit && k1 > j->vsplit)
            k1 = j->vsplit;
        int64_t nk = k1 - k0;
        ATT_FN(att_scores)(j, q, ldq, nq, b, hk, k0, nk, S, kb);
        for (int64_t i = 0; i < nq; i++) {
            R_ *row = S + i * nk;
            int64_t qi = i0 + i;
            int64_t qko = ((b * j->Hq + h) * j->Sq + qi) * T + k0;
            R_ mx = -(R_)INFINITY;
            for (int64_t k = 0; k < nk; k++) {
                R_ s = row[k];
                if (j->qk && j->mode == 0)
                    att_store(j->qk, j->qdt, qko + k, (double)s);
                if (cap > 0)
                    s = cap * ATT_TANH(s / cap);
                if (j->qk && j->mode == 1)
                    att_store(j->qk, j->qdt, qko + k, (double)s);
                R_ bias = (R_)att_bias(j, b, h, qi, k0 + k, off);
                if (bias != -(R_)INFINITY)
                    any[i] = 1;
                s += bias;
                if (j->qk && j->mode == 2)
                    att_store(j->qk, j->qdt, qko + k, (double)s);
                row[k] = s;
                if (s > mx)
                    mx = s;
            }
            R_ mn = m[i] > mx ? m[i] : mx, sum = 0;
            if (mn == -(R_)INFINITY) {
                /* nothing attended yet: NaN scores still poison the row */
                for (int64_t k = 0; k < nk; k++) {
                    row[k] = row[k] != row[k] ? row[k] : 0;
                    sum += row[k];
                }
                l[i] += sum;
                continue;
            }
            for (int64_t k = 0; k < nk; k++)
                row[k] -= mn;
            ATT_FN(att_vexp)(row, nk);
            for (int64_t k = 0; k < nk; k++)
                sum += row[k];
            if (mn != m[i]) {
                R_ corr = ATT_EXP(m[i] - mn);
                l[i] *= corr;
                R_ *o = O + i * Dv;
                for (int64_t d = 0; d < Dv; d++)
                    o[d] *= corr;
                m[i] = mn;
            }
            l[i] += sum;
        }
        int64_t ldv;
        if (Dv > 0) {
            const R_ *vp = ATT_FN(att_rows)(j->v, j->vsplit, j->vdt, b, hk, k0, nk, Dv, vb, &ldv);
            ATT_GEMM(false, false, nq, Dv, nk, 1, S, nk, vp, ldv, 1, O, Dv);
        }
        k0 = k1;
    }
    for (int64_t i = 0; i < nq; i++) {
        R_ mul = (any[i] != 0 && l[i] != 0) ? 1 / l[i] : 0;
        if (mul == 0)
            for (int64_t d = 0; d < Dv; d++)
                O[i * Dv + d] = 0;
        ATT_FN(att_store_row)(j->y, j->qdt, b * j->ysb + h * j->ysh + (i0 + i) * j->yss, O + i * Dv, Dv, mul);
    }
    if (!j->qk || j->mode != 3)
        return;
    /* mode 3: the probabilities, from a second pass over the scores */
    for (int64_t k0 = 0; k0 < T;) {
        int64_t k1 = k0 + ATT_BK < T ? k0 + ATT_BK : T;
        if (k0 < j->ksplit && k1 > j->ksplit)
            k1 = j->ksplit;
        if (k0 < j->vsplit && k1 > j->vsplit)
            k1 = j->vsplit;
        int64_t nk = k1 - k0;
        ATT_FN(att_scores)(j, q, ldq, nq, b, hk, k0, nk, S, kb);
        for (int64_t i = 0; i < nq; i++) {
            R_ *row = S + i * nk;
            int64_t qi = i0 + i;
            int64_t qko = ((b * j->Hq + h) * j->Sq + qi) * T + k0;
            bool zero = any[i] == 0 || l[i] == 0;
            for (int64_t k = 0; k < nk; k++) {
                R_ s = row[k];
                if (cap > 0)
                    s = cap * ATT_TANH(s / cap);
                s += (R_)att_bias(j, b, h, qi, k0 + k, off);
                row[k] = zero ? 0 : ATT_EXP(s - m[i]) / l[i];
            }
            ATT_FN(att_store_row)(j->qk, j->qdt, qko, row, nk, 1);
        }
        k0 = k1;
    }
}

#ifdef ATT_F32
/* bfloat16 with its softmax in bfloat16 (softmax_precision unset or 16):
 * the operator's definition rounds to T1 after each step (the scaled Q and
 * K, the product, softcap, the bias, x - max, exp, each partial sum of the
 * row, the division, the product with V). With 8 significant bits those
 * roundings move results by more than one ulp of the output, and they
 * depend on the row's final maximum and sum, which an online softmax does
 * not know until the end; so this path keeps the block's rows of scores
 * (nq x keys) and follows the definition step by step, products
 * accumulating in float32. */
static inline float att_rb(float x) { return kiln_bf16_to_float(kiln_float_to_bf16(x)); }

static void att_block_bf16(const att_job *j, int64_t b, int64_t h, int64_t i0, int64_t nq, float *buf,
                           float *rows) {
    const int64_t D = j->D, Dv = j->Dv, T = j->T, hk = h / j->group;
    float *qb = buf, *S = qb + ATT_BQ * D, *O = S + ATT_BQ * ATT_BK, *kb = O + ATT_BQ * Dv, *vb = kb + ATT_BK * D;
    float *any = vb + ATT_BK * Dv + 2 * ATT_BQ;
    const float cap = (float)j->softcap, sq = att_rb((float)sqrt(j->scale));
    const int64_t off = att_offset(j, b);
    att_load_f32(qb, j->q, j->qdt, b * j->qsb + h * j->qsh + i0 * j->qss, j->qss, nq, D);
    for (int64_t i = 0; i < nq * D; i++)
        qb[i] = att_rb(qb[i] * sq);
    int64_t ks = 0, ke = T;
    if (!j->qk)
        att_key_range(j, b, i0, i0 + nq, &ks, &ke);
    int64_t n = ke - ks;
    for (int64_t i = 0; i < nq; i++)
        any[i] = 0;
    for (int64_t k0 = ks; k0 < ke;) {
        int64_t k1 = k0 + ATT_BK < ke ? k0 + ATT_BK : ke;
        if (k0 < j->ksplit && k1 > j->ksplit)
            k1 = j->ksplit;
        int64_t nk = k1 - k0;
        const att_seg *sg = k0 < j->ksplit ? &j->k[0] : &j->k[1];
        int64_t r = k0 < j->ksplit ? k0 : k0 - j->ksplit;
        att_load_f32(kb, sg->p, j->kdt, b * sg->sb + hk * sg->sh + r * sg->ss, sg->ss, nk, D);
        for (int64_t i = 0; i < nk * D; i++)
            kb[i] = att_rb(kb[i] * sq);
        if (D > 0)
            kiln_sgemm(false, true, nq, nk, D, 1.0f, qb, D, kb, D, 0, S, nk);
        else
            memset(S, 0, (size_t)(nq * nk) * sizeof(float));
        for (int64_t i = 0; i < nq; i++) {
            int64_t qi = i0 + i, qko = ((b * j->Hq + h) * j->Sq + qi) * T + k0;
            float *x = rows + i * n + (k0 - ks);
            for (int64_t k = 0; k < nk; k++) {
                float v = att_rb(S[i * nk + k]);
                if (j->qk && j->mode == 0)
                    att_store(j->qk, j->qdt, qko + k, v);
                if (cap > 0)
                    v = att_rb(att_rb(tanhf(att_rb(v / cap))) * cap);
                if (j->qk && j->mode == 1)
                    att_store(j->qk, j->qdt, qko + k, v);
                float bias = att_rb((float)att_bias(j, b, h, qi, k0 + k, off));
                if (bias != -INFINITY)
                    any[i] = 1;
                v = att_rb(v + bias);
                if (j->qk && j->mode == 2)
                    att_store(j->qk, j->qdt, qko + k, v);
                x[k] = v;
            }
        }
        k0 = k1;
    }
    for (int64_t i = 0; i < nq; i++) {
        float *x = rows + i * n, mx = -INFINITY, sum = 0;
        for (int64_t k = 0; k < n; k++)
            mx = x[k] > mx ? x[k] : mx;
        if (mx == -INFINITY)
            mx = 0;
        for (int64_t k = 0; k < n; k++) {
            x[k] = att_rb(expf(att_rb(x[k] - mx)));
            sum = att_rb(sum + x[k]);
        }
        if (sum == 0)
            sum = 1;
        for (int64_t k = 0; k < n; k++)
            x[k] = any[i] != 0 ? att_rb(x[k] / sum) : 0.0f;
        if (j->qk && j->mode == 3)
            att_store_row_f32(j->qk, j->qdt, ((b * j->Hq + h) * j->Sq + i0 + i) * T, x, n, 1);
    }
    memset(O, 0, (size_t)(nq * Dv) * sizeof(float));
    for (int64_t k0 = ks; k0 < ke && Dv > 0;) {
        int64_t k1 = k0 + ATT_BK < ke ? k0 + ATT_BK : ke;
        if (k0 < j->vsplit && k1 > j->vsplit)
            k1 = j->vsplit;
        int64_t nk = k1 - k0, ldv;
        const float *vp = att_rows_f32(j->v, j->vsplit, j->vdt, b, hk, k0, nk, Dv, vb, &ldv);
        kiln_sgemm(false, false, nq, Dv, nk, 1.0f, rows + (k0 - ks), n, vp, ldv, 1.0f, O, Dv);
        k0 = k1;
    }
    for (int64_t i = 0; i < nq; i++)
        att_store_row_f32(j->y, j->qdt, b * j->ysb + h * j->ysh + (i0 + i) * j->yss, O + i * Dv, Dv, 1);
}
#endif

static void ATT_FN(att_range)(void *arg, size_t begin, size_t end) {
    att_job *j = arg;
    size_t n = (size_t)(ATT_BQ * j->D + ATT_BQ * ATT_BK + ATT_BQ * j->Dv + ATT_BK * j->D + ATT_BK * j->Dv +
                        3 * ATT_BQ);
    R_ *buf = malloc(n * sizeof(R_));
    if (!buf) {
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    R_ *rows = NULL;
#ifdef ATT_F32
    if (j->round16 && !(rows = malloc((size_t)(ATT_BQ * (j->T ? j->T : 1)) * sizeof(R_)))) {
        free(buf);
        __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
#endif
    for (size_t t = begin; t < end; t++) {
        int64_t bh = (int64_t)t / j->nqb, qb = (int64_t)t % j->nqb;
        int64_t b = bh / j->Hq, h = bh % j->Hq, i0 = qb * ATT_BQ;
        int64_t nq = j->Sq - i0 < ATT_BQ ? j->Sq - i0 : ATT_BQ;
#ifdef ATT_F32
        if (rows) {
            att_block_bf16(j, b, h, i0, nq, buf, rows);
            continue;
        }
#endif
        ATT_FN(att_block)(j, b, h, i0, nq, buf);
    }
    free(rows);
    free(buf);
}

#undef R_
#endif
