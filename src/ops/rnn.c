/* Recurrent operators: RNN, GRU and LSTM (ai.onnx, every opset; 7 and 14 mainly).
 *
 * The three share one engine per element type. The input projection X*W^T
 * (plus the biases that do not depend on the state) is computed for every
 * time step and both directions in one matrix product; each step then does
 * H*R^T and the gate maths.
 *
 * float32 (and float16/bfloat16, which run in float32) uses weights laid out
 * for the kernels (see "the float32 engine" below): made once per session
 * by the descriptor's prepare when W, R, B and P are constant initializers,
 * else for the call. A step is a panel GEMV (kernels/gemv.h) and a fused
 * cell (kernels/rnn_cell.h), with no allocation and, below a size where it
 * pays, no thread hand-off. double keeps a plain engine: its own register-
 * tiled product on R^T, work inside a step split across threads by hidden
 * unit.
 *
 * Opset 14 added `layout` (batch-major X, Y, initial and final states).
 * sequence_lens: steps at or past a batch entry's length give zeros in Y, and
 * the final states are those of its last valid step (the initial state when
 * the length is 0). The activation code is written once and instantiated for
 * float and double by including this file into itself (the double engine
 * too, under RNN_ENGINE).
 */
#ifndef RNN_T

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/gemm.h"
#include "kernels/gemv.h"
#include "kernels/rnn_cell.h"
#include "ops/op.h"

typedef enum { RNN_SIMPLE, RNN_GRU, RNN_LSTM } rnn_kind;

typedef enum {
    ACT_RELU,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_AFFINE,
    ACT_LEAKYRELU,
    ACT_THRESHOLDEDRELU,
    ACT_SCALEDTANH,
    ACT_HARDSIGMOID,
    ACT_ELU,
    ACT_SOFTSIGN,
    ACT_SOFTPLUS
} rnn_act_kind;

typedef struct rnn_act {
    rnn_act_kind kind;
    float alpha, beta;
} rnn_act;

/* Activation names, how many of (alpha, beta) each takes from the attribute
 * lists, and their defaults (those of the matching ONNX operators). */
static const struct {
    const char *name;
    rnn_act_kind kind;
    int n_params;
    float alpha, beta;
} act_table[] = {
    {"Relu", ACT_RELU, 0, 0, 0},
    {"Tanh", ACT_TANH, 0, 0, 0},
    {"Sigmoid", ACT_SIGMOID, 0, 0, 0},
    {"Affine", ACT_AFFINE, 2, 1.0f, 0.0f},
    {"LeakyRelu", ACT_LEAKYRELU, 1, 0.01f, 0},
    {"ThresholdedRelu", ACT_THRESHOLDEDRELU, 1, 1.0f, 0},
    {"ScaledTanh", ACT_SCALEDTANH, 2, 1.0f, 1.0f},
    {"HardSigmoid", ACT_HARDSIGMOID, 2, 0.2f, 0.5f},
    {"Elu", ACT_ELU, 1, 1.0f, 0},
    {"Softsign", ACT_SOFTSIGN, 0, 0, 0},
    {"Softplus", ACT_SOFTPLUS, 0, 0, 0},
};

typedef struct rnn_params {
    rnn_kind kind;
    int n_gates; /* 1 (RNN), 3 (GRU: z r h), 4 (LSTM: i o f c) */
    int n_acts;  /* activations per direction: 1, 2, 3 */
    int nd;      /* number of directions */
    bool reverse; /* direction == "reverse" (single direction) */
    int layout;
    int64_t seq, batch, input, hidden;
    bool has_clip;
    float clip;
    bool input_forget;        /* LSTM */
    bool linear_before_reset; /* GRU */
    rnn_act act[2][3];
    const kiln_tensor *x, *w, *r, *b, *h0, *c0, *p;
    int64_t *lens; /* [batch], malloc'd */
    kiln_tensor *y, *yh, *yc;
} rnn_params;

/* Index helpers for the two layouts. */
static inline int64_t rnn_x_row(const rnn_params *p, int64_t t, int64_t b) {
    return p->layout ? b * p->seq + t : t * p->batch + b;
}
static inline int64_t rnn_y_off(const rnn_params *p, int64_t t, int d, int64_t b) {
    return (p->layout ? (b * p->seq + t) * p->nd + d : (t * p->nd + d) * p->batch + b) * p->hidden;
}
static inline int64_t rnn_state_off(const rnn_params *p, int d, int64_t b) {
    return (p->layout ? b * p->nd + d : d * p->batch + b) * p->hidden;
}

#define RNN_T float
#define RNN_FN(name) name##_f32
#define RNN_EXP expf
#define RNN_TANH tanhf
#define RNN_LOG1P log1pf
#include "ops/rnn.c"
#undef RNN_T
#undef RNN_FN
#undef RNN_EXP
#undef RNN_TANH
#undef RNN_LOG1P

#define RNN_T double
#define RNN_ENGINE
#define RNN_FN(name) name##_f64
#define RNN_EXP exp
#define RNN_TANH tanh
#define RNN_LOG1P log1p
#include "ops/rnn.c"
#undef RNN_T
#undef RNN_ENGINE
#undef RNN_FN
#undef RNN_EXP
#undef RNN_TANH
#undef RNN_LOG1P

static const char *kind_name(rnn_kind k) { return k == RNN_LSTM ? "LSTM" : k == RNN_GRU ? "GRU" : "RNN"; }

static kiln_status parse_activations(const kiln_op_ctx *c, rnn_params *p) {
    static const rnn_act_kind defaults[3][3] = {
        {ACT_TANH}, {ACT_SIGMOID, ACT_TANH}, {ACT_SIGMOID, ACT_TANH, ACT_TANH}};
    int na = p->n_acts;
    const kiln_attr *a = kiln_node_attr(c->node, "activations");
    if (!a || a->type != KILN_ATTR_STRINGS) {
        if (a)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'activations' must be a list of strings");
        for (int d = 0; d < p->nd; d++)
            for (int i = 0; i < na; i++) {
                rnn_act_kind k = defaults[na - 1][i];
                p->act[d][i] = (rnn_act){k, 0, 0};
            }
        return KILN_OK;
    }
    size_t n = a->n;
    /* One set per direction; a single set for a bidirectional node is used
     * for both, and extra entries for a one-way node are ignored (RNN's
     * schema default lists two). */
    bool dup = n == (size_t)na && p->nd == 2;
    if (!dup && n < (size_t)(na * p->nd))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'activations' has %zu entries; %s with %d direction(s) needs %d",
                         n, kind_name(p->kind), p->nd, na * p->nd);
    size_t n_alpha = 0, n_beta = 0;
    const float *alpha = kiln_attr_floats(c->node, "activation_alpha", &n_alpha);
    const float *beta = kiln_attr_floats(c->node, "activation_beta", &n_beta);
    size_t ia = 0, ib = 0;
    for (int d = 0; d < p->nd; d++)
        for (int i = 0; i < na; i++) {
            size_t idx = dup ? (size_t)i : (size_t)(d * na + i);
            const kiln_string *s = &a->strings[idx];
            size_t k;
            for (k = 0; k < sizeof act_table / sizeof *act_table; k++)
                if (strlen(act_table[k].name) == s->len && strncasecmp(act_table[k].name, s->data, s->len) == 0)
                    break;
            if (k == sizeof act_table / sizeof *act_table)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "activation '%.*s' is not one of the RNN activation functions",
                                 (int)(s->len > 64 ? 64 : s->len), s->data ? s->data : "");
            rnn_act act = {act_table[k].kind, act_table[k].alpha, act_table[k].beta};
            /* alpha and beta are consumed in activation order by the
             * functions that take them; missing ones keep the default. */
            if (act_table[k].n_params >= 1 && alpha && ia < n_alpha)
                act.alpha = alpha[ia++];
            if (act_table[k].n_params >= 2 && beta && ib < n_beta)
                act.beta = beta[ib++];
            p->act[d][i] = act;
        }
    return KILN_OK;
}

static kiln_status check_shape(const kiln_tensor *t, const char *name, int rank, const int64_t *want) {
    char a[96], b[96];
    bool ok = t->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = t->dims[i] == want[i];
    if (!ok)
        return kiln_fail(KILN_ERR_INVALID, "input %s has shape %s, expected %s", name,
                         kiln_dims_str(t->rank, t->dims, a, sizeof a), kiln_dims_str(rank, want, b, sizeof b));
    return KILN_OK;
}

static kiln_status parse(kiln_op_ctx *c, rnn_kind kind, rnn_params *p) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->n_gates = kind == RNN_LSTM ? 4 : kind == RNN_GRU ? 3 : 1;
    p->n_acts = kind == RNN_LSTM ? 3 : kind == RNN_GRU ? 2 : 1;
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0], *w = c->in[1], *r = c->in[2];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, 4));
    static const char *const in_names[] = {"X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"};
    size_t max_in = kind == RNN_LSTM ? 8 : 6;
    for (size_t i = 1; i < c->n_in && i < max_in; i++) {
        const kiln_tensor *t = c->in[i];
        if (t && i != 4 && t->dtype != x->dtype)
            return kiln_fail(KILN_ERR_INVALID, "input %s is %s but X is %s", in_names[i], kiln_dtype_name(t->dtype),
                             kiln_dtype_name(x->dtype));
    }

    const char *dir = kiln_attr_string(c->node, "direction", "forward");
    if (strcmp(dir, "forward") == 0)
        p->nd = 1;
    else if (strcmp(dir, "reverse") == 0)
        p->nd = 1, p->reverse = true;
    else if (strcmp(dir, "bidirectional") == 0)
        p->nd = 2;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute direction is '%s'; expected forward, reverse or bidirectional",
                         dir);
    int64_t layout = c->opset >= 14 ? kiln_attr_int(c->node, "layout", 0) : 0;
    if (layout != 0 && layout != 1)
        return kiln_fail(KILN_ERR_INVALID, "attribute layout is %lld; expected 0 or 1", (long long)layout);
    p->layout = (int)layout;

    if (x->rank != 3)
        return kiln_fail(KILN_ERR_INVALID, "input X must have rank 3, got rank %d", x->rank);
    if (w->rank != 3 || r->rank != 3)
        return kiln_fail(KILN_ERR_INVALID, "inputs W and R must have rank 3, got ranks %d and %d", w->rank, r->rank);
    p->seq = x->dims[layout ? 1 : 0];
    p->batch = x->dims[layout ? 0 : 1];
    p->input = x->dims[2];
    int64_t G = p->n_gates;
    int64_t hs = kiln_attr_int(c->node, "hidden_size", -1);
    if (hs < -1 || (hs == -1 && kiln_node_attr(c->node, "hidden_size")))
        return kiln_fail(KILN_ERR_INVALID, "attribute hidden_size is %lld; must not be negative", (long long)hs);
    if (hs < 0)
        hs = r->dims[2];
    p->hidden = hs;
    int64_t gh;
    if (kiln_mul_overflow_i64(G, hs, &gh))
        return kiln_fail(KILN_ERR_INVALID, "hidden_size %lld is too large", (long long)hs);
    if (w->dims[0] != p->nd || w->dims[1] != gh || w->dims[2] != p->input) {
        char a[96];
        return kiln_fail(KILN_ERR_INVALID,
                         "input W has shape %s, expected [%d,%lld,%lld] (num_directions %d for direction '%s', "
                         "%lld gates x hidden_size %lld, input_size %lld)",
                         kiln_dims_str(w->rank, w->dims, a, sizeof a), p->nd, (long long)gh, (long long)p->input,
                         p->nd, dir, (long long)G, (long long)hs, (long long)p->input);
    }
    KILN_TRY(check_shape(r, "R", 3, (int64_t[]){p->nd, gh, hs}));
    const kiln_tensor *b = kiln_op_in(c, 3);
    if (b) {
        int64_t gh2;
        if (kiln_mul_overflow_i64(gh, 2, &gh2))
            return kiln_fail(KILN_ERR_INVALID, "hidden_size %lld is too large", (long long)hs);
        KILN_TRY(check_shape(b, "B", 2, (int64_t[]){p->nd, gh2}));
    }
    p->x = x, p->w = w, p->r = r, p->b = b;
    int64_t sdims[3] = {p->nd, p->batch, hs};
    if (layout)
        sdims[0] = p->batch, sdims[1] = p->nd;
    p->h0 = kiln_op_in(c, 5);
    if (p->h0)
        KILN_TRY(check_shape(p->h0, "initial_h", 3, sdims));
    if (kind == RNN_LSTM) {
        p->c0 = kiln_op_in(c, 6);
        if (p->c0)
            KILN_TRY(check_shape(p->c0, "initial_c", 3, sdims));
        p->p = kiln_op_in(c, 7);
        if (p->p) {
            int64_t h3;
            if (kiln_mul_overflow_i64(hs, 3, &h3))
                return kiln_fail(KILN_ERR_INVALID, "hidden_size %lld is too large", (long long)hs);
            KILN_TRY(check_shape(p->p, "P", 2, (int64_t[]){p->nd, h3}));
        }
        p->input_forget = kiln_attr_int(c->node, "input_forget", 0) != 0;
    }
    if (kind == RNN_GRU)
        p->linear_before_reset = kiln_attr_int(c->node, "linear_before_reset", 0) != 0;
    const kiln_attr *clip = kiln_node_attr(c->node, "clip");
    if (clip) {
        if (clip->type != KILN_ATTR_FLOAT)
            return kiln_fail(KILN_ERR_INVALID, "attribute clip must be a float");
        if (!(clip->f > 0))
            return kiln_fail(KILN_ERR_INVALID, "attribute clip is %g; it must be positive", (double)clip->f);
        p->has_clip = true;
        p->clip = clip->f;
    }
    KILN_TRY(parse_activations(c, p));

    const kiln_tensor *sl = kiln_op_in(c, 4);
    if (sl) {
        if (sl->dtype != KILN_DTYPE_INT32 && sl->dtype != KILN_DTYPE_INT64)
            return kiln_fail(KILN_ERR_INVALID, "input sequence_lens must be int32, got %s", kiln_dtype_name(sl->dtype));
        KILN_TRY(check_shape(sl, "sequence_lens", 1, (int64_t[]){p->batch}));
    }
    p->lens = kiln_malloc((size_t)(p->batch ? p->batch : 1) * sizeof *p->lens);
    if (!p->lens)
        return KILN_ERR_NOMEM;
    for (int64_t i = 0; i < p->batch; i++) {
        int64_t v = sl ? kiln_tensor_get_i64(sl, i) : p->seq;
        if (v < 0 || v > p->seq) {
            free(p->lens);
            p->lens = NULL;
            return kiln_fail(KILN_ERR_INVALID, "sequence_lens[%lld] is %lld; must be within [0, %lld]", (long long)i,
                             (long long)v, (long long)p->seq);
        }
        p->lens[i] = v;
    }
    return KILN_OK;
}

/* ---- the float32 engine ----
 *
 * Weights are laid out once (rnn_prep, see rnn_prepare_f32) so that a step
 * streams them in the order the kernels read: hidden units go in blocks of
 * RB, and the gates of one block sit side by side, [block][gate][RB], both
 * in the columns of the projection and in R's panels (kernels/gemv.h). One
 * matrix product projects every step of both directions (with both biases
 * folded in); a step is then one panel GEMV per gate group over H_{t-1} and
 * the fused gate maths (kernels/rnn_cell.h) for the ONNX default
 * activations, scalar code for the others. GRU keeps its h gate in a second
 * group: its product takes r (.) H_{t-1}, or adds Rbh apart from the
 * projection (linear_before_reset). A step is split across threads only when
 * its products are large; two directions share the threads when the
 * sequence is long enough to pay for the wake-up. */

#define RB KILN_GEMV_PANEL

typedef struct rnn_prep {
    rnn_kind kind;
    int nd;
    int64_t H, I, G;
    int64_t nb, hp; /* blocks of RB units; hp = nb * RB (padded hidden size) */
    int64_t gcol;   /* columns per direction: G * hp */
    int64_t ld;     /* projection columns: nd * gcol */
    bool lbr;       /* GRU linear_before_reset */
    float *wp;      /* W as ld / RB panels of I x RB (both directions, block order) */
    float *bias;    /* [ld]: Wb + Rb (GRU with linear_before_reset: Wb alone for the h gate) */
    float *bias_g;  /* the same in W's own row order, [nd * G * H] */
    float *rp[2];   /* R, gcol / RB panels of H x RB per direction */
    float *rbh[2];  /* GRU with linear_before_reset: Rb of the h gate, [hp] (0 without B) */
    float *peep[2]; /* LSTM with P: i, o, f, each [hp] */
} rnn_prep;

/* Column of gate g of unit j among one direction's columns. */
static int64_t prep_col(const rnn_prep *q, int64_t g, int64_t j) {
    int64_t jb = j / RB, l = j % RB;
    if (q->kind == RNN_GRU)
        return g < 2 ? (jb * 2 + g) * RB + l : 2 * q->hp + jb * RB + l;
    return (jb * q->G + g) * RB + l;
}

static void rnn_prep_free(rnn_prep *q) {
    if (!q)
        return;
    free(q->wp);
    free(q->bias);
    free(q->bias_g);
    for (int d = 0; d < 2; d++) {
        free(q->rp[d]);
        free(q->rbh[d]);
        free(q->peep[d]);
    }
    free(q);
}

/* Lays out W [nd, G*H, I], R [nd, G*H, H], B [nd, 2*G*H] (or NULL) and P
 * [nd, 3*H] (or NULL) for the engine. */
static kiln_status rnn_prepare_f32(const rnn_params *p, const float *w, const float *r, const float *b,
                                   const float *peep, rnn_prep **out) {
    *out = NULL;
    int64_t H = p->hidden, I = p->input, G = p->n_gates, GH = G * H;
    rnn_prep *q = calloc(1, sizeof *q);
    if (!q)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory preparing %s weights", kind_name(p->kind));
    q->kind = p->kind, q->nd = p->nd, q->H = H, q->I = I, q->G = G;
    q->lbr = p->kind == RNN_GRU && p->linear_before_reset;
    q->nb = (H + RB - 1) / RB;
    q->hp = q->nb * RB;
    q->gcol = G * q->hp;
    q->ld = p->nd * q->gcol;
    size_t n_wp, n_rp;
    if (kiln_mul_overflow_size((size_t)I, (size_t)q->ld, &n_wp) || kiln_mul_overflow_size(n_wp, sizeof(float), &n_wp) ||
        kiln_mul_overflow_size((size_t)q->gcol, (size_t)H, &n_rp) || kiln_mul_overflow_size(n_rp, sizeof(float), &n_rp)) {
        rnn_prep_free(q);
        return kiln_fail(KILN_ERR_INVALID, "weights of %lld x %lld x %lld are too large", (long long)GH,
                         (long long)I, (long long)H);
    }
    q->wp = kiln_aligned_alloc(n_wp);
    q->bias = kiln_aligned_alloc((size_t)q->ld * sizeof(float));
    q->bias_g = kiln_aligned_alloc((size_t)(p->nd * GH) * sizeof(float));
    bool ok = q->wp && q->bias && q->bias_g;
    for (int d = 0; d < q->nd && ok; d++) {
        q->rp[d] = kiln_aligned_alloc(n_rp);
        ok = q->rp[d] != NULL;
        if (ok && q->lbr) {
            q->rbh[d] = kiln_aligned_alloc((size_t)q->hp * sizeof(float));
            ok = q->rbh[d] != NULL;
        }
        if (ok && peep) {
            q->peep[d] = kiln_aligned_alloc(3 * (size_t)q->hp * sizeof(float));
            ok = q->peep[d] != NULL;
        }
    }
    if (!ok) {
        rnn_prep_free(q);
        return KILN_ERR_NOMEM;
    }
    memset(q->bias, 0, (size_t)q->ld * sizeof(float));
    for (int d = 0; d < q->nd; d++) {
        float *bias = q->bias + d * q->gcol, *bias_g = q->bias_g + d * GH;
        const float *bd = b ? b + d * 2 * GH : NULL;
        for (int64_t g = 0; g < G; g++)
            for (int64_t j = 0; j < H; j++) {
                int64_t n = g * H + j;
                bias_g[n] = bd ? bd[n] + (q->lbr && g == 2 ? 0.0f : bd[GH + n]) : 0.0f;
                bias[prep_col(q, g, j)] = bias_g[n];
            }
        /* W's and R's panels: panel col/RB holds gate g of units [jb*RB, jb*RB + RB) */
        for (int64_t g = 0; g < G; g++)
            for (int64_t jb = 0; jb < q->nb; jb++) {
                int64_t j0 = jb * RB, rows = H - j0 < RB ? H - j0 : RB;
                int64_t panel = prep_col(q, g, j0) / RB;
                kiln_gemv_pack_panel(rows, I, w + (d * GH + g * H + j0) * I, I,
                                     q->wp + (d * q->gcol / RB + panel) * I * RB);
                kiln_gemv_pack_panel(rows, H, r + (d * GH + g * H + j0) * H, H, q->rp[d] + panel * H * RB);
            }
        if (q->lbr) {
            memset(q->rbh[d], 0, (size_t)q->hp * sizeof(float));
            if (bd)
                memcpy(q->rbh[d], bd + GH + 2 * H, (size_t)H * sizeof(float));
        }
        if (peep) {
            memset(q->peep[d], 0, 3 * (size_t)q->hp * sizeof(float));
            for (int k = 0; k < 3; k++)
                memcpy(q->peep[d] + k * q->hp, peep + (d * 3 + k) * H, (size_t)H * sizeof(float));
        }
    }
    *out = q;
    return KILN_OK;
}

/* Whether a direction's activations are the defaults the fused cells do. */
static bool rnn_default_acts(const rnn_params *p, int d) {
    const rnn_act *a = p->act[d];
    switch (p->kind) {
    case RNN_LSTM: return a[0].kind == ACT_SIGMOID && a[1].kind == ACT_TANH && a[2].kind == ACT_TANH;
    case RNN_GRU: return a[0].kind == ACT_SIGMOID && a[1].kind == ACT_TANH;
    case RNN_SIMPLE: return a[0].kind == ACT_TANH;
    }
    return false;
}

/* One direction while it runs. States are [batch, hp]; gates [batch, gcol]. */
typedef struct fdir {
    const rnn_params *p;
    const rnn_prep *q;
    int d;
    bool reverse, fused;
    const float *xw; /* projection rows; this direction's columns start at xw_off */
    int64_t xw_ld, xw_off, xw_bs; /* xw_bs: rows between batch entries of one step */
    float *gates, *h[2], *cs[2], *rh;
    float *y;
    float clip; /* INFINITY without clip */
    int64_t t;
    int cur;   /* h[cur] is H_{t-1} */
    int phase; /* GRU without linear_before_reset: 1 (z, r) then 2 (h) */
    size_t grain;
} fdir;

/* The projection row of step t, batch entry 0, this direction. */
static const float *fdir_xw(const fdir *s) {
    return s->xw + rnn_x_row(s->p, s->t, 0) * s->xw_ld + s->xw_off;
}

/* Gate maths of units [j0, j1) of batch entry b with any activations (the
 * equations of the double engine, on the block layout). */
static void fdir_cell_generic(fdir *s, int64_t b, int64_t j0, int64_t j1) {
    const rnn_params *p = s->p;
    const rnn_prep *q = s->q;
    const rnn_act *act = p->act[s->d];
    int64_t hp = q->hp;
    float *g = s->gates + b * q->gcol;
    const float *hpv = s->h[s->cur] + b * hp;
    float *hn = s->h[s->cur ^ 1] + b * hp;
    for (int64_t j = j0; j < j1; j++) {
        switch (p->kind) {
        case RNN_SIMPLE:
            hn[j] = act_f32(&act[0], clip_f32(p, g[prep_col(q, 0, j)]));
            break;
        case RNN_LSTM: {
            const float *pe = q->peep[s->d];
            float c_prev = s->cs[s->cur][b * hp + j];
            float gi = g[prep_col(q, 0, j)], go = g[prep_col(q, 1, j)], gf = g[prep_col(q, 2, j)];
            float gc = g[prep_col(q, 3, j)];
            if (pe) {
                gi += pe[j] * c_prev;
                gf += pe[2 * hp + j] * c_prev;
            }
            float i = act_f32(&act[0], clip_f32(p, gi));
            float f = p->input_forget ? 1 - i : act_f32(&act[0], clip_f32(p, gf));
            float cc = act_f32(&act[1], clip_f32(p, gc));
            float c_new = f * c_prev + i * cc;
            if (pe)
                go += pe[hp + j] * c_new;
            float o = act_f32(&act[0], clip_f32(p, go));
            s->cs[s->cur ^ 1][b * hp + j] = c_new;
            hn[j] = o * act_f32(&act[2], c_new);
            break;
        }
        case RNN_GRU: {
            float *gz = &g[prep_col(q, 0, j)], gr = g[prep_col(q, 1, j)], gh = g[prep_col(q, 2, j)];
            if (q->lbr) {
                const float *xw = fdir_xw(s) + b * s->xw_bs;
                float z = act_f32(&act[0], clip_f32(p, *gz));
                float r = act_f32(&act[0], clip_f32(p, gr));
                float hh = act_f32(&act[1], clip_f32(p, xw[prep_col(q, 2, j)] + r * gh));
                hn[j] = (1 - z) * hh + z * hpv[j];
            } else if (s->phase == 1) {
                *gz = act_f32(&act[0], clip_f32(p, *gz));
                s->rh[b * hp + j] = act_f32(&act[0], clip_f32(p, gr)) * hpv[j];
            } else {
                float z = *gz;
                float hh = act_f32(&act[1], clip_f32(p, gh));
                hn[j] = (1 - z) * hh + z * hpv[j];
            }
            break;
        }
        }
    }
}

/* Gate maths of blocks [jb0, jb1) of batch entry b with the default
 * activations, through the fused cells. */
static void fdir_cell_fused(fdir *s, int64_t b, int64_t jb0, int64_t jb1) {
    const rnn_params *p = s->p;
    const rnn_prep *q = s->q;
    int64_t hp = q->hp;
    float *g = s->gates + b * q->gcol;
    const float *hpv = s->h[s->cur] + b * hp;
    float *hn = s->h[s->cur ^ 1] + b * hp;
    for (int64_t jb = jb0; jb < jb1; jb++) {
        int64_t j = jb * RB;
        switch (p->kind) {
        case RNN_SIMPLE: kiln_rnn_tanh_f32(RB, s->clip, g + j, hn + j); break;
        case RNN_LSTM: {
            const float *gb = g + jb * 4 * RB, *pe = q->peep[s->d];
            kiln_lstm_cell cell = {RB, gb, gb + RB, gb + 2 * RB, gb + 3 * RB, s->cs[s->cur] + b * hp + j,
                                   pe ? pe + j : NULL, pe ? pe + hp + j : NULL, pe ? pe + 2 * hp + j : NULL,
                                   s->clip, p->input_forget, s->cs[s->cur ^ 1] + b * hp + j, hn + j};
            kiln_lstm_cell_f32(&cell);
            break;
        }
        case RNN_GRU: {
            float *gz = g + jb * 2 * RB, *gh = g + 2 * hp + j;
            if (q->lbr) {
                const float *xh = fdir_xw(s) + b * s->xw_bs + 2 * hp + j;
                kiln_gru_lbr_f32(RB, s->clip, gz, gz + RB, xh, gh, hpv + j, hn + j);
            } else if (s->phase == 1)
                kiln_gru_zr_f32(RB, s->clip, gz, gz + RB, hpv + j, s->rh + b * hp + j);
            else
                kiln_gru_out_f32(RB, s->clip, gz, gh, hpv + j, hn + j);
            break;
        }
        }
    }
}

/* One step (or GRU phase) for blocks [jb0, jb1): the products, then the
 * gates, then Y; batch entries past their length carry their state. */
static void fdir_step(fdir *s, int64_t jb0, int64_t jb1) {
    const rnn_params *p = s->p;
    const rnn_prep *q = s->q;
    int64_t H = q->H, hp = q->hp, B = p->batch, nbk = jb1 - jb0;
    const float *rp = q->rp[s->d], *hprev = s->h[s->cur], *xw = fdir_xw(s);
    float *gates = s->gates;
    int64_t pan = H * RB; /* floats per panel */
    switch (p->kind) {
    case RNN_SIMPLE:
    case RNN_LSTM: {
        int64_t G = q->G;
        kiln_sgemv_panels(B, nbk * G, H, rp + jb0 * G * pan, hprev, hp, xw + jb0 * G * RB, s->xw_bs,
                          gates + jb0 * G * RB, q->gcol);
        break;
    }
    case RNN_GRU:
        if (s->phase != 2)
            kiln_sgemv_panels(B, nbk * 2, H, rp + jb0 * 2 * pan, hprev, hp, xw + jb0 * 2 * RB, s->xw_bs,
                              gates + jb0 * 2 * RB, q->gcol);
        if (q->lbr)
            kiln_sgemv_panels(B, nbk, H, rp + (2 * q->nb + jb0) * pan, hprev, hp, q->rbh[s->d] + jb0 * RB, 0,
                              gates + 2 * hp + jb0 * RB, q->gcol);
        else if (s->phase == 2)
            kiln_sgemv_panels(B, nbk, H, rp + (2 * q->nb + jb0) * pan, s->rh, hp, xw + 2 * hp + jb0 * RB,
                              s->xw_bs, gates + 2 * hp + jb0 * RB, q->gcol);
        break;
    }
    bool last_phase = !(p->kind == RNN_GRU && !q->lbr && s->phase == 1);
    int64_t j0 = jb0 * RB, j1 = jb1 * RB < H ? jb1 * RB : H;
    for (int64_t b = 0; b < B; b++) {
        bool live = s->t < p->lens[b];
        if (!live) {
            if (!last_phase)
                continue;
            memcpy(s->h[s->cur ^ 1] + b * hp + j0, hprev + b * hp + j0, (size_t)(j1 - j0) * sizeof(float));
            if (p->kind == RNN_LSTM)
                memcpy(s->cs[s->cur ^ 1] + b * hp + j0, s->cs[s->cur] + b * hp + j0,
                       (size_t)(j1 - j0) * sizeof(float));
        } else if (s->fused)
            fdir_cell_fused(s, b, jb0, jb1);
        else
            fdir_cell_generic(s, b, j0, j1);
        if (last_phase && s->y) {
            float *y = s->y + rnn_y_off(p, s->t, s->d, b) + j0;
            if (live)
                memcpy(y, s->h[s->cur ^ 1] + b * hp + j0, (size_t)(j1 - j0) * sizeof(float));
            else
                memset(y, 0, (size_t)(j1 - j0) * sizeof(float));
        }
    }
}

static void fdir_step_range(void *arg, size_t begin, size_t end) {
    fdir_step(arg, (int64_t)begin, (int64_t)end);
}

/* Every step of one direction; c non-NULL splits each step's blocks across
 * the session's threads. */
static void fdir_run(fdir *s, kiln_op_ctx *c) {
    const rnn_params *p = s->p;
    bool two_phase = p->kind == RNN_GRU && !s->q->lbr;
    for (int64_t k = 0; k < p->seq; k++) {
        s->t = s->reverse ? p->seq - 1 - k : k;
        for (int ph = two_phase ? 1 : 0; ph <= (two_phase ? 2 : 0); ph++) {
            s->phase = ph;
            if (c)
                kiln_parallel_for(c, (size_t)s->q->nb, s->grain, fdir_step_range, s);
            else
                fdir_step(s, 0, s->q->nb);
        }
        s->cur ^= 1;
    }
}

static void fdirs_range(void *arg, size_t begin, size_t end) {
    fdir *dirs = arg;
    for (size_t i = begin; i < end; i++)
        fdir_run(&dirs[i], NULL);
}

/* The projection goes through the panel kernel when it has SIMD code (it
 * reads W's panels once per eight rows, from cache for the sizes RNNs have,
 * and measured faster than packing W for a GEMM at every length tried, 1 to
 * 1024 steps) or when the input is short; otherwise one GEMM. */
#define RNN_PANEL_ROWS 16

typedef struct proj_job {
    int64_t rows, I, ld;
    const float *wp, *x, *bias;
    float *xw;
} proj_job;

static void proj_range(void *arg, size_t begin, size_t end) {
    const proj_job *j = arg;
    kiln_sgemv_panels(j->rows, (int64_t)(end - begin), j->I, j->wp + (int64_t)begin * j->I * RB, j->x, j->I,
                      j->bias + (int64_t)begin * RB, 0, j->xw + (int64_t)begin * RB, j->ld);
}

/* xw [rows, ld] = bias + X * W^T, columns in block order. */
static kiln_status rnn_project(kiln_op_ctx *c, const rnn_params *p, const rnn_prep *q, const float *x, float *xw) {
    int64_t rows = p->seq * p->batch, I = p->input, ld = q->ld, H = q->H, GH = q->G * H, ng = p->nd * GH;
    if (rows == 0)
        return KILN_OK;
    if (rows <= RNN_PANEL_ROWS || I == 0 || kiln_gemv_isa() != KILN_ISA_PORTABLE) {
        /* split by panels when each thread gets 256k multiply-adds */
        proj_job j = {rows, I, ld, q->wp, x, q->bias, xw};
        double per_panel = (double)rows * (double)I * RB + 1;
        size_t grain = per_panel >= 262144.0 ? 1 : (size_t)(262144.0 / per_panel);
        kiln_threads_run(kiln_op_pool(c), (size_t)(ld / RB), grain, proj_range, &j);
        return KILN_OK;
    }
    /* One GEMM for both directions on W as it is ([nd*G*H, I], the biases
     * in C), then the columns moved into block order. */
    size_t n;
    if (kiln_mul_overflow_size((size_t)rows, (size_t)ng, &n) || kiln_mul_overflow_size(n, sizeof(float), &n))
        return kiln_fail(KILN_ERR_INVALID, "projection of %lld rows by %lld gate columns is too large",
                         (long long)rows, (long long)ng);
    float *xo;
    KILN_TRY(kiln_op_scratch(c, n, (void **)&xo));
    for (int64_t r = 0; r < rows; r++)
        memcpy(xo + r * ng, q->bias_g, (size_t)ng * sizeof(float));
    kiln_sgemm_par(kiln_op_pool(c), false, true, rows, ng, I, 1.0f, x, I, p->w->data, I, 1.0f, xo, ng);
    for (int64_t r = 0; r < rows; r++)
        for (int d = 0; d < p->nd; d++)
            for (int64_t g = 0; g < q->G; g++)
                for (int64_t jb = 0; jb < q->nb; jb++) {
                    int64_t j0 = jb * RB, m = H - j0 < RB ? H - j0 : RB;
                    float *dst = xw + r * ld + d * q->gcol + prep_col(q, g, j0);
                    memcpy(dst, xo + r * ng + d * GH + g * H + j0, (size_t)m * sizeof(float));
                    memset(dst + m, 0, (size_t)(RB - m) * sizeof(float));
                }
    return KILN_OK;
}

/* Multiply-adds of a step's products from which the step is split across
 * threads (hidden 512 for LSTM at batch 1); a smaller step is at most a few
 * microseconds of work and stays on the calling thread, with no hand-off
 * per step. */
#define RNN_SPLIT_STEP 1048576.0

/* Runs the float32 engine on prepared weights; x, h0, c0 are float32 data
 * (NULL: zeros) and the outputs p->y, yh, yc float32 tensors. */
static kiln_status rnn_run_prepared(kiln_op_ctx *c, rnn_params *p, const rnn_prep *q, const float *x,
                                    const float *h0, const float *c0) {
    int64_t H = p->hidden, B = p->batch, hp = q->hp, gcol = q->gcol, ld = q->ld;
    int64_t rows = p->seq * B;
    size_t n_xw, n_dir;
    if (kiln_mul_overflow_size((size_t)rows, (size_t)ld, &n_xw) || kiln_mul_overflow_size(n_xw, sizeof(float), &n_xw))
        return kiln_fail(KILN_ERR_INVALID, "projection of %lld rows by %lld gate columns is too large",
                         (long long)rows, (long long)ld);
    /* per direction: gates [B, gcol]; h x2, c x2, rh, each [B, hp] */
    if (kiln_mul_overflow_size((size_t)B, (size_t)gcol + 5 * (size_t)hp, &n_dir) ||
        kiln_mul_overflow_size(n_dir, sizeof(float), &n_dir))
        return kiln_fail(KILN_ERR_INVALID, "state of %lld x %lld is too large", (long long)B, (long long)gcol);
    size_t n_all;
    if (kiln_mul_overflow_size(n_dir, (size_t)p->nd, &n_all) || __builtin_add_overflow(n_all, n_xw, &n_all))
        return kiln_fail(KILN_ERR_INVALID, "state of %lld x %lld is too large", (long long)B, (long long)gcol);
    /* n_xw and n_dir are multiples of 4 floats; the kernels do unaligned loads */
    float *xw;
    KILN_TRY(kiln_op_scratch(c, n_all, (void **)&xw));
    float *dbuf[2] = {(float *)((char *)xw + n_xw), (float *)((char *)xw + n_xw + n_dir)};
    KILN_TRY(rnn_project(c, p, q, x, xw));

    int threads = kiln_op_threads(c);
    double step_work = (double)B * (double)q->G * (double)H * (double)H; /* multiply-adds per step */
    bool split_steps = threads >= 2 && step_work >= RNN_SPLIT_STEP;
    bool split_dirs = !split_steps && p->nd == 2 && threads >= 2 && step_work * (double)p->seq >= 65536.0;
    fdir dirs[2];
    for (int d = 0; d < p->nd; d++) {
        fdir *s = &dirs[d];
        memset(s, 0, sizeof *s);
        float *m = dbuf[d];
        memset(m, 0, n_dir);
        s->p = p, s->q = q, s->d = d;
        s->reverse = d == 1 || p->reverse;
        s->fused = rnn_default_acts(p, d);
        s->xw = xw, s->xw_ld = ld, s->xw_off = d * gcol;
        s->xw_bs = (p->layout ? p->seq : 1) * ld;
        s->gates = m, m += B * gcol;
        s->h[0] = m, m += B * hp;
        s->h[1] = m, m += B * hp;
        s->cs[0] = m, m += B * hp;
        s->cs[1] = m, m += B * hp;
        s->rh = m;
        s->y = p->y ? p->y->data : NULL;
        s->clip = p->has_clip ? p->clip : INFINITY;
        for (int64_t b = 0; b < B; b++) {
            int64_t off = rnn_state_off(p, d, b);
            if (h0)
                memcpy(s->h[0] + b * hp, h0 + off, (size_t)H * sizeof(float));
            if (c0 && p->kind == RNN_LSTM)
                memcpy(s->cs[0] + b * hp, c0 + off, (size_t)H * sizeof(float));
        }
        double block_work = (double)B * (double)q->G * RB * (double)H + 1;
        s->grain = block_work >= 262144.0 ? 1 : (size_t)(262144.0 / block_work);
    }
    if (split_dirs)
        kiln_parallel_for(c, 2, 1, fdirs_range, dirs);
    else
        for (int d = 0; d < p->nd; d++)
            fdir_run(&dirs[d], split_steps ? c : NULL);

    for (int d = 0; d < p->nd; d++) {
        const fdir *s = &dirs[d];
        for (int64_t b = 0; b < B; b++) {
            int64_t off = rnn_state_off(p, d, b);
            if (p->yh)
                memcpy((float *)p->yh->data + off, s->h[s->cur] + b * hp, (size_t)H * sizeof(float));
            if (p->yc)
                memcpy((float *)p->yc->data + off, s->cs[s->cur] + b * hp, (size_t)H * sizeof(float));
        }
    }
    return KILN_OK;
}

/* The session's prepared state: the layout of constant float32 weights,
 * made once when the session plans the graph. */
typedef struct rnn_node_prep {
    const void *w, *r, *b, *p; /* the data it was made from (b, p NULL when omitted) */
    rnn_prep *q;
} rnn_node_prep;

static void rnn_release(void *state) {
    rnn_node_prep *np = state;
    rnn_prep_free(np->q);
    free(np);
}

/* A constant float32 input of the node, or NULL; *dynamic is set when the
 * input is given but not constant. */
static const kiln_tensor *prep_in(const kiln_prep_ctx *pc, size_t i, bool *dynamic) {
    const kiln_tensor *t = i < pc->n_in ? pc->in[i] : NULL;
    bool given = i < pc->node->n_inputs && pc->node->inputs[i][0];
    if (given && (!t || t->dtype != KILN_DTYPE_FLOAT))
        *dynamic = true;
    return given ? t : NULL;
}

/* Prepares the weight layout when W, R (and B, P when given) are constant
 * float32 tensors of the shapes the attributes call for; anything else is
 * left to exec (which also gives the errors). */
static kiln_status rnn_prepare_kind(const kiln_prep_ctx *pc, void **state, rnn_kind kind) {
    bool dynamic = false;
    const kiln_tensor *w = prep_in(pc, 1, &dynamic), *r = prep_in(pc, 2, &dynamic);
    const kiln_tensor *b = prep_in(pc, 3, &dynamic), *pp = kind == RNN_LSTM ? prep_in(pc, 7, &dynamic) : NULL;
    if (dynamic || !w || !r || w->rank != 3 || r->rank != 3)
        return KILN_OK;
    rnn_params p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.n_gates = kind == RNN_LSTM ? 4 : kind == RNN_GRU ? 3 : 1;
    const char *dir = kiln_attr_string(pc->node, "direction", "forward");
    p.nd = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    p.hidden = kiln_attr_int(pc->node, "hidden_size", r->dims[2]);
    p.input = w->dims[2];
    p.linear_before_reset = kind == RNN_GRU && kiln_attr_int(pc->node, "linear_before_reset", 0) != 0;
    int64_t H = p.hidden, G = p.n_gates;
    if (H <= 0 || H > ((int64_t)1 << 24) || w->dims[0] != p.nd || w->dims[1] != G * H || r->dims[0] != p.nd ||
        r->dims[1] != G * H || r->dims[2] != H)
        return KILN_OK;
    if (b && (b->rank != 2 || b->dims[0] != p.nd || b->dims[1] != 2 * G * H))
        return KILN_OK;
    if (pp && (pp->rank != 2 || pp->dims[0] != p.nd || pp->dims[1] != 3 * H))
        return KILN_OK;
    rnn_node_prep *np = kiln_calloc(1, sizeof *np);
    if (!np)
        return KILN_ERR_NOMEM;
    kiln_status st = rnn_prepare_f32(&p, w->data, r->data, b ? b->data : NULL, pp ? pp->data : NULL, &np->q);
    if (st != KILN_OK) {
        free(np);
        return st;
    }
    np->w = w->data, np->r = r->data, np->b = b ? b->data : NULL, np->p = pp ? pp->data : NULL;
    *state = np;
    return KILN_OK;
}

static kiln_status rnn_simple_prepare(const kiln_prep_ctx *pc, void **state) {
    return rnn_prepare_kind(pc, state, RNN_SIMPLE);
}
static kiln_status gru_prepare(const kiln_prep_ctx *pc, void **state) { return rnn_prepare_kind(pc, state, RNN_GRU); }
static kiln_status lstm_prepare(const kiln_prep_ctx *pc, void **state) {
    return rnn_prepare_kind(pc, state, RNN_LSTM);
}

/* float32 (and float16/bfloat16 converted to it): the session's prepared
 * layout when it was made from these weights, else one made for this call. */
static kiln_status run_f32(kiln_op_ctx *c, rnn_params *p) {
    if (p->hidden == 0 || p->batch == 0)
        return KILN_OK; /* every output is empty */
    const void *b = p->b ? p->b->data : NULL, *pp = p->p ? p->p->data : NULL;
    const rnn_node_prep *np = c->prep;
    if (np && np->w == p->w->data && np->r == p->r->data && np->b == b && np->p == pp && np->q->H == p->hidden &&
        np->q->I == p->input && np->q->nd == p->nd)
        return rnn_run_prepared(c, p, np->q, p->x->data, p->h0 ? p->h0->data : NULL, p->c0 ? p->c0->data : NULL);
    rnn_prep *q;
    KILN_TRY(rnn_prepare_f32(p, p->w->data, p->r->data, b, pp, &q));
    kiln_status st = rnn_run_prepared(c, p, q, p->x->data, p->h0 ? p->h0->data : NULL, p->c0 ? p->c0->data : NULL);
    rnn_prep_free(q);
    return st;
}

/* float16 and bfloat16 (opset 22) run in float32: a float tensor shaped like
 * t (a shallow shell that owns only `data`), holding t's values when
 * `convert`. */
static kiln_status half_to_float_copy(const kiln_tensor *t, kiln_tensor *out, bool convert) {
    *out = *t;
    out->dtype = KILN_DTYPE_FLOAT;
    out->nbytes = (size_t)t->numel * sizeof(float);
    out->buf = NULL;
    float *d = kiln_aligned_alloc(out->nbytes);
    if (!d)
        return KILN_ERR_NOMEM;
    if (convert)
        for (int64_t i = 0; i < t->numel; i++)
            d[i] = t->dtype == KILN_DTYPE_BFLOAT16 ? kiln_bf16_to_float(((const uint16_t *)t->data)[i])
                                                   : kiln_half_to_float(((const uint16_t *)t->data)[i]);
    out->data = d;
    return KILN_OK;
}

static kiln_status rnn_exec(kiln_op_ctx *c, rnn_kind kind) {
    rnn_params p;
    KILN_TRY(parse(c, kind, &p));
    kiln_status st = KILN_OK;
    kiln_dtype dt = p.x->dtype;
    bool half = dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16;
    kiln_tensor f_in[7], f_out[3];
    size_t n_f_in = 0;
    float *f_out_data[3] = {NULL, NULL, NULL};
    int64_t sdims[3] = {p.nd, p.batch, p.hidden};
    if (p.layout)
        sdims[0] = p.batch, sdims[1] = p.nd;
    if (kiln_op_out_wanted(c, 0)) {
        int64_t yd[4] = {p.seq, p.nd, p.batch, p.hidden};
        if (p.layout)
            yd[0] = p.batch, yd[1] = p.seq, yd[2] = p.nd;
        KILN_CHECK(st, kiln_op_output(c, 0, dt, 4, yd, &p.y), done);
    }
    if (kiln_op_out_wanted(c, 1))
        KILN_CHECK(st, kiln_op_output(c, 1, dt, 3, sdims, &p.yh), done);
    if (kind == RNN_LSTM && kiln_op_out_wanted(c, 2))
        KILN_CHECK(st, kiln_op_output(c, 2, dt, 3, sdims, &p.yc), done);
    if (half) {
        const kiln_tensor **ins[] = {&p.x, &p.w, &p.r, &p.b, &p.h0, &p.c0, &p.p};
        for (size_t i = 0; i < sizeof ins / sizeof *ins; i++)
            if (*ins[i]) {
                KILN_CHECK(st, half_to_float_copy(*ins[i], &f_in[n_f_in], true), done);
                *ins[i] = &f_in[n_f_in++];
            }
        kiln_tensor **outs[] = {&p.y, &p.yh, &p.yc};
        kiln_tensor *real[3] = {p.y, p.yh, p.yc};
        for (size_t i = 0; i < 3; i++)
            if (real[i]) {
                KILN_CHECK(st, half_to_float_copy(real[i], &f_out[i], false), done);
                f_out_data[i] = f_out[i].data;
                *outs[i] = &f_out[i];
            }
        KILN_CHECK(st, run_f32(c, &p), done);
        for (size_t i = 0; i < 3; i++)
            if (real[i])
                for (int64_t e = 0; e < real[i]->numel; e++)
                    ((uint16_t *)real[i]->data)[e] = dt == KILN_DTYPE_BFLOAT16 ? kiln_float_to_bf16(f_out_data[i][e])
                                                                               : kiln_float_to_half(f_out_data[i][e]);
    } else {
        st = dt == KILN_DTYPE_FLOAT ? run_f32(c, &p) : run_f64(c, &p);
    }
done:
    for (size_t i = 0; i < n_f_in; i++)
        free(f_in[i].data);
    for (size_t i = 0; i < 3; i++)
        free(f_out_data[i]);
    free(p.lens);
    return st;
}

static kiln_status rnn_simple_exec(kiln_op_ctx *c) { return rnn_exec(c, RNN_SIMPLE); }
static kiln_status gru_exec(kiln_op_ctx *c) { return rnn_exec(c, RNN_GRU); }
static kiln_status lstm_exec(kiln_op_ctx *c) { return rnn_exec(c, RNN_LSTM); }

/* Shape rule: Y [seq, dirs, batch, hidden] and Y_h / Y_c [dirs, batch,
 * hidden] (layout 1 puts batch first), typed as X. */
static kiln_status rnn_infer_v(kiln_infer_ctx *x, bool has_layout) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    int64_t hidden = kiln_attr_int(x->node, "hidden_size", -1);
    int64_t dirs = !strcmp(kiln_attr_string(x->node, "direction", "forward"), "bidirectional") ? 2 : 1;
    bool bf = has_layout && kiln_attr_int(x->node, "layout", 0) != 0;
    for (size_t k = 0; k < x->n_out && k < 3; k++)
        x->out[k].dt = X->dt;
    if (X->rank != 3 || hidden < 1)
        return KILN_OK;
    kiln_sdim seq = X->dims[bf ? 1 : 0], batch = X->dims[bf ? 0 : 1];
    kiln_sdim d = kiln_sd_const(dirs), h = kiln_sd_const(hidden);
    if (x->n_out > 0) {
        kiln_shape_fact *y = &x->out[0];
        y->rank = 4;
        kiln_sdim v[4] = {seq, d, batch, h}, vb[4] = {batch, seq, d, h};
        memcpy(y->dims, bf ? vb : v, sizeof v);
    }
    for (size_t k = 1; k < x->n_out && k < 3; k++) {
        kiln_shape_fact *y = &x->out[k];
        y->rank = 3;
        kiln_sdim v[3] = {d, batch, h}, vb[3] = {batch, d, h};
        memcpy(y->dims, bf ? vb : v, sizeof v);
    }
    return KILN_OK;
}
static kiln_status rnn_infer(kiln_infer_ctx *x) { return rnn_infer_v(x, false); }
static kiln_status rnn_infer14(kiln_infer_ctx *x) { return rnn_infer_v(x, true); }

/* All versions share the code: 14 added `layout` (read from 14 on); before 7
 * there was an `output_sequence` flag that only said whether Y is wanted,
 * which the node's outputs already tell; GRU before 3 had no
 * linear_before_reset (absent means 0). */
static const kiln_op_desc ops[] = {
    {"", "RNN", 1, 6, rnn_simple_exec, rnn_infer, rnn_simple_prepare, rnn_release},
    {"", "RNN", 7, 13, rnn_simple_exec, rnn_infer, rnn_simple_prepare, rnn_release},
    {"", "RNN", 14, 0, rnn_simple_exec, rnn_infer14, rnn_simple_prepare, rnn_release},
    {"", "GRU", 1, 6, gru_exec, rnn_infer, gru_prepare, rnn_release},
    {"", "GRU", 7, 13, gru_exec, rnn_infer, gru_prepare, rnn_release},
    {"", "GRU", 14, 0, gru_exec, rnn_infer14, gru_prepare, rnn_release},
    {"", "LSTM", 1, 6, lstm_exec, rnn_infer, lstm_prepare, rnn_release},
    {"", "LSTM", 7, 13, lstm_exec, rnn_infer, lstm_prepare, rnn_release},
    {"", "LSTM", 14, 0, lstm_exec, rnn_infer14, lstm_prepare, rnn_release},
};
KILN_OP_FAMILY(rnn, ops);

#else /* RNN_T: the element code, instantiated per type */

#define T_ RNN_T

static inline T_ RNN_FN(act)(const rnn_act *a, T_ x) {
    switch (a->kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_TANH: return RNN_TANH(x);
    case ACT_SIGMOID:
        if (x >= 0)
            return 1 / (1 + RNN_EXP(-x));
        else {
            T_ e = RNN_EXP(x);
            return e / (1 + e);
        }
    case ACT_AFFINE: return (T_)a->alpha * x + (T_)a->beta;
    case ACT_LEAKYRELU: return x >= 0 ? x : (T_)a->alpha * x;
    case ACT_THRESHOLDEDRELU: return x >= (T_)a->alpha ? x : 0;
    case ACT_SCALEDTANH: return (T_)a->alpha * RNN_TANH((T_)a->beta * x);
    case ACT_HARDSIGMOID: {
        T_ v = (T_)a->alpha * x + (T_)a->beta;
        return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    case ACT_ELU: return x >= 0 ? x : (T_)a->alpha * (RNN_EXP(x) - 1);
    case ACT_SOFTSIGN: return x / (1 + (x < 0 ? -x : x));
    case ACT_SOFTPLUS: return x > 0 ? x + RNN_LOG1P(RNN_EXP(-x)) : RNN_LOG1P(RNN_EXP(x));
    }
    return x;
}

static inline T_ RNN_FN(clip)(const rnn_params *p, T_ v) {
    if (p->has_clip) {
        T_ lim = (T_)p->clip;
        v = v < -lim ? -lim : v > lim ? lim : v;
    }
    return v;
}

#ifdef RNN_ENGINE

/* C[M,N] += A[M,K] * B[K,N] (row-major, leading dimensions lda, ldb, ldc).
 * Register tiles of 4 rows x 2 vectors (1 row x 4 vectors for the last rows)
 * accumulate over all of K, so C is read and written once per tile; scalar
 * loops finish the right edge. To be replaced by kiln_sgemm. */
typedef T_ RNN_FN(vec) __attribute__((vector_size(32)));
#define RNN_VL ((int64_t)(32 / sizeof(T_)))

/* Unaligned loads and stores as macros: passing 32-byte vectors to
 * functions changes the ABI on targets without AVX. */
#define RNN_VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define RNN_VSTORE(p, v) memcpy((p), &(v), sizeof(v))

static void RNN_FN(gemm)(int64_t M, int64_t N, int64_t K, const T_ *A, int64_t lda, const T_ *B, int64_t ldb,
                         T_ *C, int64_t ldc) {
    typedef RNN_FN(vec) V;
    const int64_t VL = RNN_VL;
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
        const T_ *a0 = A + m * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        T_ *c0 = C + m * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int64_t n = 0;
        for (; n + 2 * VL <= N; n += 2 * VL) {
            V s00, s01, s10, s11, s20, s21, s30, s31, b0, b1;
            RNN_VLOAD(s00, c0 + n), RNN_VLOAD(s01, c0 + n + VL);
            RNN_VLOAD(s10, c1 + n), RNN_VLOAD(s11, c1 + n + VL);
            RNN_VLOAD(s20, c2 + n), RNN_VLOAD(s21, c2 + n + VL);
            RNN_VLOAD(s30, c3 + n), RNN_VLOAD(s31, c3 + n + VL);
            const T_ *bp = B + n;
            for (int64_t k = 0; k < K; k++, bp += ldb) {
                RNN_VLOAD(b0, bp), RNN_VLOAD(b1, bp + VL);
                T_ x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                s00 += x0 * b0, s01 += x0 * b1;
                s10 += x1 * b0, s11 += x1 * b1;
                s20 += x2 * b0, s21 += x2 * b1;
                s30 += x3 * b0, s31 += x3 * b1;
            }
            RNN_VSTORE(c0 + n, s00), RNN_VSTORE(c0 + n + VL, s01);
            RNN_VSTORE(c1 + n, s10), RNN_VSTORE(c1 + n + VL, s11);
            RNN_VSTORE(c2 + n, s20), RNN_VSTORE(c2 + n + VL, s21);
            RNN_VSTORE(c3 + n, s30), RNN_VSTORE(c3 + n + VL, s31);
        }
        for (; n < N; n++) {
            T_ s0 = c0[n], s1 = c1[n], s2 = c2[n], s3 = c3[n];
            for (int64_t k = 0; k < K; k++) {
                T_ v = B[k * ldb + n];
                s0 += a0[k] * v, s1 += a1[k] * v, s2 += a2[k] * v, s3 += a3[k] * v;
            }
            c0[n] = s0, c1[n] = s1, c2[n] = s2, c3[n] = s3;
        }
    }
    for (; m < M; m++) {
        const T_ *a0 = A + m * lda;
        T_ *c0 = C + m * ldc;
        int64_t n = 0;
        for (; n + 4 * VL <= N; n += 4 * VL) {
            V s0, s1, s2, s3, b0, b1, b2, b3;
            RNN_VLOAD(s0, c0 + n), RNN_VLOAD(s1, c0 + n + VL);
            RNN_VLOAD(s2, c0 + n + 2 * VL), RNN_VLOAD(s3, c0 + n + 3 * VL);
            const T_ *bp = B + n;
            for (int64_t k = 0; k < K; k++, bp += ldb) {
                T_ x = a0[k];
                RNN_VLOAD(b0, bp), RNN_VLOAD(b1, bp + VL), RNN_VLOAD(b2, bp + 2 * VL), RNN_VLOAD(b3, bp + 3 * VL);
                s0 += x * b0, s1 += x * b1, s2 += x * b2, s3 += x * b3;
            }
            RNN_VSTORE(c0 + n, s0), RNN_VSTORE(c0 + n + VL, s1);
            RNN_VSTORE(c0 + n + 2 * VL, s2), RNN_VSTORE(c0 + n + 3 * VL, s3);
        }
        for (; n + VL <= N; n += VL) {
            V s0, b0;
            RNN_VLOAD(s0, c0 + n);
            const T_ *bp = B + n;
            for (int64_t k = 0; k < K; k++, bp += ldb) {
                RNN_VLOAD(b0, bp);
                s0 += a0[k] * b0;
            }
            RNN_VSTORE(c0 + n, s0);
        }
        for (; n < N; n++) {
            T_ s0 = c0[n];
            for (int64_t k = 0; k < K; k++)
                s0 += a0[k] * B[k * ldb + n];
            c0[n] = s0;
        }
    }
}
#undef RNN_VL
#undef RNN_VLOAD
#undef RNN_VSTORE

/* One direction's state while it runs. */
typedef struct RNN_FN(rnn_dir) {
    const rnn_params *p;
    int d;
    bool reverse;
    const T_ *xw;     /* projections: row rnn_x_row(t, b), this direction's columns at xw_off */
    int64_t xw_ld, xw_off;
    const T_ *rt;     /* R^T: [hidden, G*hidden] */
    const T_ *rbh;    /* GRU with linear_before_reset: Rb of the h gate, else NULL */
    const T_ *peep;   /* LSTM peepholes [3*hidden] (i o f) or NULL */
    T_ *gates;        /* [batch, G*hidden] */
    T_ *h[2], *cs[2]; /* states, double-buffered: [batch, hidden] */
    T_ *rh;           /* GRU: r (.) H_{t-1}, [batch, hidden] */
    T_ *y;            /* output Y or NULL */
    int64_t t;
    int cur;          /* h[cur] is H_{t-1} */
    int phase;        /* GRU without linear_before_reset: 1 (z, r) then 2 (h) */
    size_t grain;
} RNN_FN(rnn_dir);

/* Loads this step's projection into gate columns [g*H + j0, g*H + j1) for
 * gates g in [g0, g1), then adds state * R^T for those columns. */
static void RNN_FN(gates_in)(RNN_FN(rnn_dir) * s, const T_ *state, int g0, int g1, int64_t j0, int64_t j1,
                             bool with_xw) {
    const rnn_params *p = s->p;
    int64_t H = p->hidden, GH = p->n_gates * H;
    for (int64_t b = 0; b < p->batch; b++) {
        const T_ *xw = s->xw + rnn_x_row(p, s->t, b) * s->xw_ld + s->xw_off;
        T_ *g = s->gates + b * GH;
        for (int gi = g0; gi < g1; gi++)
            for (int64_t j = j0; j < j1; j++)
                g[gi * H + j] = with_xw ? xw[gi * H + j] : 0;
    }
    for (int gi = g0; gi < g1; gi++)
        RNN_FN(gemm)(p->batch, j1 - j0, H, state, H, s->rt + gi * H + j0, GH, s->gates + gi * H + j0, GH);
}

/* Finishes an inactive batch row (past its sequence length): state carried
 * over, zeros in Y. */
static void RNN_FN(carry)(RNN_FN(rnn_dir) * s, int64_t b, int64_t j0, int64_t j1) {
    const rnn_params *p = s->p;
    int64_t H = p->hidden;
    for (int64_t j = j0; j < j1; j++) {
        s->h[s->cur ^ 1][b * H + j] = s->h[s->cur][b * H + j];
        if (p->kind == RNN_LSTM)
            s->cs[s->cur ^ 1][b * H + j] = s->cs[s->cur][b * H + j];
    }
    if (s->y) {
        T_ *y = s->y + rnn_y_off(p, s->t, s->d, b);
        for (int64_t j = j0; j < j1; j++)
            y[j] = 0;
    }
}

static void RNN_FN(step_units)(RNN_FN(rnn_dir) * s, int64_t j0, int64_t j1) {
    const rnn_params *p = s->p;
    int64_t H = p->hidden, GH = p->n_gates * H;
    const rnn_act *act = p->act[s->d];
    const T_ *hp = s->h[s->cur];
    T_ *hn = s->h[s->cur ^ 1];
    switch (p->kind) {
    case RNN_SIMPLE:
        RNN_FN(gates_in)(s, hp, 0, 1, j0, j1, true);
        for (int64_t b = 0; b < p->batch; b++) {
            if (s->t >= p->lens[b]) {
                RNN_FN(carry)(s, b, j0, j1);
                continue;
            }
            const T_ *g = s->gates + b * GH;
            T_ *y = s->y ? s->y + rnn_y_off(p, s->t, s->d, b) : NULL;
            for (int64_t j = j0; j < j1; j++) {
                T_ v = RNN_FN(act)(&act[0], RNN_FN(clip)(p, g[j]));
                hn[b * H + j] = v;
                if (y)
                    y[j] = v;
            }
        }
        break;
    case RNN_LSTM: {
        RNN_FN(gates_in)(s, hp, 0, 4, j0, j1, true);
        const T_ *cp = s->cs[s->cur];
        T_ *cn = s->cs[s->cur ^ 1];
        const T_ *pi = s->peep, *po = s->peep ? s->peep + H : NULL, *pf = s->peep ? s->peep + 2 * H : NULL;
        for (int64_t b = 0; b < p->batch; b++) {
            if (s->t >= p->lens[b]) {
                RNN_FN(carry)(s, b, j0, j1);
                continue;
            }
            const T_ *g = s->gates + b * GH;
            T_ *y = s->y ? s->y + rnn_y_off(p, s->t, s->d, b) : NULL;
            for (int64_t j = j0; j < j1; j++) {
                T_ c_prev = cp[b * H + j];
                T_ gi = g[j], go = g[H + j], gf = g[2 * H + j], gc = g[3 * H + j];
                if (pi) {
                    gi += pi[j] * c_prev;
                    gf += pf[j] * c_prev;
                }
                T_ i = RNN_FN(act)(&act[0], RNN_FN(clip)(p, gi));
                /* input_forget couples the gates: f = 1 - i. */
                T_ f = p->input_forget ? 1 - i : RNN_FN(act)(&act[0], RNN_FN(clip)(p, gf));
                T_ cc = RNN_FN(act)(&act[1], RNN_FN(clip)(p, gc));
                T_ c_new = f * c_prev + i * cc;
                if (po)
                    go += po[j] * c_new;
                T_ o = RNN_FN(act)(&act[0], RNN_FN(clip)(p, go));
                T_ h = o * RNN_FN(act)(&act[2], c_new);
                cn[b * H + j] = c_new;
                hn[b * H + j] = h;
                if (y)
                    y[j] = h;
            }
        }
        break;
    }
    case RNN_GRU:
        if (p->linear_before_reset) {
            /* h = g(Xh*Wh^T + Wbh + r (.) (H*Rh^T + Rbh)): the h gate's
             * recurrent part is computed alone, without the projection. */
            RNN_FN(gates_in)(s, hp, 0, 2, j0, j1, true);
            RNN_FN(gates_in)(s, hp, 2, 3, j0, j1, false);
            for (int64_t b = 0; b < p->batch; b++) {
                if (s->t >= p->lens[b]) {
                    RNN_FN(carry)(s, b, j0, j1);
                    continue;
                }
                const T_ *g = s->gates + b * GH;
                const T_ *xw = s->xw + rnn_x_row(p, s->t, b) * s->xw_ld + s->xw_off;
                T_ *y = s->y ? s->y + rnn_y_off(p, s->t, s->d, b) : NULL;
                for (int64_t j = j0; j < j1; j++) {
                    T_ z = RNN_FN(act)(&act[0], RNN_FN(clip)(p, g[j]));
                    T_ r = RNN_FN(act)(&act[0], RNN_FN(clip)(p, g[H + j]));
                    T_ rec = g[2 * H + j] + (s->rbh ? s->rbh[j] : 0);
                    T_ hh = RNN_FN(act)(&act[1], RNN_FN(clip)(p, xw[2 * H + j] + r * rec));
                    T_ hv = (1 - z) * hh + z * hp[b * H + j];
                    hn[b * H + j] = hv;
                    if (y)
                        y[j] = hv;
                }
            }
        } else if (s->phase == 1) {
            /* z and r first; (r (.) H) * Rh^T needs every unit's r. */
            RNN_FN(gates_in)(s, hp, 0, 2, j0, j1, true);
            for (int64_t b = 0; b < p->batch; b++) {
                T_ *g = s->gates + b * GH;
                bool live = s->t < p->lens[b];
                for (int64_t j = j0; j < j1; j++) {
                    if (!live) {
                        s->rh[b * H + j] = 0;
                        continue;
                    }
                    g[j] = RNN_FN(act)(&act[0], RNN_FN(clip)(p, g[j]));
                    T_ r = RNN_FN(act)(&act[0], RNN_FN(clip)(p, g[H + j]));
                    s->rh[b * H + j] = r * hp[b * H + j];
                }
            }
        } else {
            RNN_FN(gates_in)(s, s->rh, 2, 3, j0, j1, true);
            for (int64_t b = 0; b < p->batch; b++) {
                if (s->t >= p->lens[b]) {
                    RNN_FN(carry)(s, b, j0, j1);
                    continue;
                }
                const T_ *g = s->gates + b * GH;
                T_ *y = s->y ? s->y + rnn_y_off(p, s->t, s->d, b) : NULL;
                for (int64_t j = j0; j < j1; j++) {
                    T_ z = g[j];
                    T_ hh = RNN_FN(act)(&act[1], RNN_FN(clip)(p, g[2 * H + j]));
                    T_ hv = (1 - z) * hh + z * hp[b * H + j];
                    hn[b * H + j] = hv;
                    if (y)
                        y[j] = hv;
                }
            }
        }
        break;
    }
}

static void RNN_FN(step_range)(void *arg, size_t begin, size_t end) {
    RNN_FN(step_units)(arg, (int64_t)begin, (int64_t)end);
}

/* Runs every step of one direction; c non-NULL splits each step's hidden
 * units across the session's threads. */
static void RNN_FN(run_dir)(RNN_FN(rnn_dir) * s, kiln_op_ctx *c) {
    const rnn_params *p = s->p;
    bool two_phase = p->kind == RNN_GRU && !p->linear_before_reset;
    for (int64_t k = 0; k < p->seq; k++) {
        s->t = s->reverse ? p->seq - 1 - k : k;
        for (int ph = two_phase ? 1 : 0; ph <= (two_phase ? 2 : 0); ph++) {
            s->phase = ph;
            if (c)
                kiln_parallel_for(c, (size_t)p->hidden, s->grain, RNN_FN(step_range), s);
            else
                RNN_FN(step_units)(s, 0, p->hidden);
        }
        s->cur ^= 1;
    }
}

static void RNN_FN(dirs_range)(void *arg, size_t begin, size_t end) {
    RNN_FN(rnn_dir) *dirs = arg;
    for (size_t i = begin; i < end; i++)
        RNN_FN(run_dir)(&dirs[i], NULL);
}

typedef struct RNN_FN(proj_job) {
    int64_t rows, in, n;
    const T_ *x, *wt, *bias;
    T_ *xw;
} RNN_FN(proj_job);

/* Projection rows in blocks of four: XW = bias + X * W^T. */
static void RNN_FN(proj_range)(void *arg, size_t begin, size_t end) {
    const RNN_FN(proj_job) *j = arg;
    int64_t r0 = (int64_t)begin * 4, r1 = (int64_t)end * 4;
    if (r1 > j->rows)
        r1 = j->rows;
    for (int64_t r = r0; r < r1; r++)
        memcpy(j->xw + r * j->n, j->bias, (size_t)j->n * sizeof(T_));
    if (j->in > 0)
        RNN_FN(gemm)(r1 - r0, j->n, j->in, j->x + r0 * j->in, j->in, j->wt, j->n, j->xw + r0 * j->n, j->n);
}

static kiln_status RNN_FN(run)(kiln_op_ctx *c, rnn_params *p) {
    int64_t H = p->hidden, G = p->n_gates, GH = G * H, nd = p->nd, I = p->input, B = p->batch;
    int64_t ngh = nd * GH; /* W's leading dims: nd*GH*I elements exist */
    int64_t rows = p->seq * B; /* X's dims */
    size_t n_xw, n_wt, n_rt, n_dir, n_state;
    if (kiln_mul_overflow_size((size_t)rows, (size_t)ngh, &n_xw) || kiln_mul_overflow_size(n_xw, sizeof(T_), &n_xw))
        return kiln_fail(KILN_ERR_INVALID, "projection of %lld rows by %lld gate columns is too large",
                         (long long)rows, (long long)ngh);
    n_wt = (size_t)(I * ngh) * sizeof(T_);
    n_rt = (size_t)(H * GH) * sizeof(T_);
    /* per direction: gates [B, GH], h x2, c x2, rh, each [B, H] */
    if (kiln_mul_overflow_size((size_t)B, (size_t)GH + 6 * (size_t)H, &n_state) ||
        kiln_mul_overflow_size(n_state, sizeof(T_), &n_state) || __builtin_add_overflow(n_rt, n_state, &n_dir))
        return kiln_fail(KILN_ERR_INVALID, "state of %lld x %lld is too large", (long long)B, (long long)GH);

    if (H == 0 || B == 0)
        return KILN_OK; /* every output is empty */
    kiln_status st = KILN_OK;
    T_ *xw = kiln_aligned_alloc(n_xw), *wt = kiln_aligned_alloc(n_wt);
    T_ *bias = kiln_aligned_alloc((size_t)ngh * sizeof(T_));
    T_ *dbuf[2] = {NULL, NULL};
    for (int d = 0; d < nd; d++)
        dbuf[d] = kiln_aligned_alloc(n_dir);
    if (!xw || !wt || !bias || !dbuf[0] || (nd == 2 && !dbuf[1])) {
        st = KILN_ERR_NOMEM;
        goto done;
    }

    /* W^T for both directions side by side, [I, nd*GH], and the biases that
     * can be folded into the projection. */
    const T_ *w = p->w->data, *r = p->r->data, *bsrc = p->b ? p->b->data : NULL;
    for (int64_t d = 0; d < nd; d++)
        for (int64_t n = 0; n < GH; n++) {
            const T_ *wr = w + (d * GH + n) * I;
            for (int64_t k = 0; k < I; k++)
                wt[k * ngh + d * GH + n] = wr[k];
            T_ bv = 0;
            if (bsrc) {
                const T_ *bd = bsrc + d * 2 * GH;
                bv = bd[n];
                /* GRU with linear_before_reset keeps Rbh inside r (.) (...). */
                if (!(p->kind == RNN_GRU && p->linear_before_reset && n >= 2 * H))
                    bv += bd[GH + n];
            }
            bias[d * GH + n] = bv;
        }

    RNN_FN(proj_job) pj = {rows, I, ngh, p->x->data, wt, bias, xw};
    size_t blocks = (size_t)((rows + 3) / 4);
    double work = 8.0 * (double)I * (double)ngh + 1;
    size_t pgrain = work >= 65536 ? 1 : (size_t)(65536 / work);
    kiln_parallel_for(c, blocks, pgrain, RNN_FN(proj_range), &pj);

    RNN_FN(rnn_dir) dirs[2];
    for (int d = 0; d < nd; d++) {
        RNN_FN(rnn_dir) *s = &dirs[d];
        memset(s, 0, sizeof *s);
        T_ *m = dbuf[d];
        T_ *rt = m;
        m += H * GH;
        for (int64_t n = 0; n < GH; n++)
            for (int64_t k = 0; k < H; k++)
                rt[k * GH + n] = r[(d * GH + n) * H + k];
        s->p = p;
        s->d = d;
        s->reverse = d == 1 || p->reverse;
        s->xw = xw;
        s->xw_ld = ngh;
        s->xw_off = d * GH;
        s->rt = rt;
        s->gates = m, m += B * GH;
        s->h[0] = m, m += B * H;
        s->h[1] = m, m += B * H;
        s->cs[0] = m, m += B * H;
        s->cs[1] = m, m += B * H;
        s->rh = m, m += B * H;
        if (p->kind == RNN_GRU && p->linear_before_reset && bsrc)
            s->rbh = bsrc + d * 2 * GH + GH + 2 * H;
        if (p->kind == RNN_LSTM && p->p)
            s->peep = (const T_ *)p->p->data + d * 3 * H;
        s->y = p->y ? p->y->data : NULL;
        for (int64_t b = 0; b < B; b++) {
            const T_ *h0 = p->h0 ? (const T_ *)p->h0->data + rnn_state_off(p, d, b) : NULL;
            const T_ *c0 = p->c0 ? (const T_ *)p->c0->data + rnn_state_off(p, d, b) : NULL;
            for (int64_t j = 0; j < H; j++) {
                s->h[0][b * H + j] = h0 ? h0[j] : 0;
                s->cs[0][b * H + j] = c0 ? c0[j] : 0;
                s->h[1][b * H + j] = 0;
                s->cs[1][b * H + j] = 0;
                s->rh[b * H + j] = 0;
            }
        }
        double uw = 2.0 * (double)B * (double)GH + 1; /* flops per hidden unit and step */
        s->grain = uw >= 32768 ? 1 : (size_t)(32768 / uw);
    }

    if (nd == 2 && kiln_op_threads(c) >= 2)
        kiln_parallel_for(c, 2, 1, RNN_FN(dirs_range), dirs);
    else
        for (int d = 0; d < nd; d++)
            RNN_FN(run_dir)(&dirs[d], c);

    for (int d = 0; d < nd; d++) {
        const RNN_FN(rnn_dir) *s = &dirs[d];
        for (int64_t b = 0; b < B; b++) {
            int64_t off = rnn_state_off(p, d, b);
            if (p->yh)
                memcpy((T_ *)p->yh->data + off, s->h[s->cur] + b * H, (size_t)H * sizeof(T_));
            if (p->yc)
                memcpy((T_ *)p->yc->data + off, s->cs[s->cur] + b * H, (size_t)H * sizeof(T_));
        }
    }
done:
    free(xw);
    free(wt);
    free(bias);
    free(dbuf[0]);
    free(dbuf[1]);
    return st;
}

#endif /* RNN_ENGINE */

#undef T_
#endif
