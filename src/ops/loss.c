/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12+).
 *
 * input [N, C, d1..dk] (log-probabilities; SCE takes scores and applies
 * log-softmax over C), target [N, d1..dk] of class indices, optional weight
 * [C]. Per element: loss = -weight[t] * input[n, t, d], 0 where
 * t == ignore_index. reduction "mean" divides by the sum of the weights used
 * (the count of non-ignored elements without weights), as the spec's
 * reference does; "sum" sums; "none" keeps target's shape. A target outside
 * [0, C) that is not ignore_index is an error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef enum { RED_NONE, RED_SUM, RED_MEAN } loss_red;

/* lp: log-probabilities (as double when lpd != NULL, else read from x). */
static kiln_status loss_core(kiln_op_ctx *c, const kiln_tensor *x, const double *lpd, const kiln_tensor *t,
                             const kiln_tensor *w) {
    const kiln_node *nd = c->node;
    const char *red = kiln_attr_string(nd, "reduction", "mean");
    loss_red r;
    if (!strcmp(red, "none"))
        r = RED_NONE;
    else if (!strcmp(red, "sum"))
        r = RED_SUM;
    else if (!strcmp(red, "mean"))
        r = RED_MEAN;
    else
        return kiln_fail(KILN_ERR_INVALID, "reduction '%s' is not one of none, sum, mean", red);
    bool has_ii = kiln_node_attr(nd, "ignore_index") != NULL;
    int64_t ii = kiln_attr_int(nd, "ignore_index", 0);

    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input must have rank >= 2 ([N, C, ...]), got rank %d", x->rank);
    if (t->dtype != KILN_DTYPE_INT32 && t->dtype != KILN_DTYPE_INT64)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "target must be int32 or int64, got %s", kiln_dtype_name(t->dtype));
    bool shape_ok = t->rank == x->rank - 1 && t->dims[0] == x->dims[0];
    for (int i = 1; shape_ok && i < t->rank; i++)
        shape_ok = t->dims[i] == x->dims[i + 1];
    if (!shape_ok) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID, "target shape %s does not match input shape %s (want [N, d1..dk])",
                         kiln_dims_str(t->rank, t->dims, a, sizeof a), kiln_dims_str(x->rank, x->dims, b, sizeof b));
    }
    int64_t N = x->dims[0], C = x->dims[1];
    int64_t D;
    KILN_TRY(kiln_dims_numel(x->rank - 2, x->dims + 2, &D));
    if (w) {
        if (w->rank != 1 || w->dims[0] != C)
            return kiln_fail(KILN_ERR_INVALID, "weight must have shape [C] = [%lld]", (long long)C);
        if (w->dtype != x->dtype)
            return kiln_fail(KILN_ERR_INVALID, "weight type %s differs from input type %s",
                             kiln_dtype_name(w->dtype), kiln_dtype_name(x->dtype));
    }
    kiln_tensor *out;
    if (r == RED_NONE)
        KILN_TRY(kiln_op_output(c, 0, x->dtype, t->rank, t->dims, &out));
    else
        KILN_TRY(kiln_op_output(c, 0, x->dtype, 0, NULL, &out));

    double sum = 0.0, wsum = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            int64_t ti = n * D + d;
            int64_t cls = kiln_tensor_get_i64(t, ti);
            double l = 0.0, wt = 0.0;
            if (!(has_ii && cls == ii)) {
                if (cls < 0 || cls >= C)
                    return kiln_fail(KILN_ERR_INVALID,
                                     "target[%lld] = %lld is outside [0, %lld) and is not ignore_index",
                                     (long long)ti, (long long)cls, (long long)C);
                int64_t xi = (n * C + cls) * D + d;
                double v = lpd ? lpd[xi] : kiln_load_f64(x->data, x->dtype, xi);
                wt = w ? kiln_load_f64(w->data, w->dtype, cls) : 1.0;
                l = -v * wt;
            }
            if (r == RED_NONE)
                kiln_store_f64(out->data, out->dtype, ti, l);
            sum += l;
            wsum += wt;
        }
    if (r == RED_SUM)
        kiln_store_f64(out->data, out->dtype, 0, sum);
    else if (r == RED_MEAN)
        kiln_store_f64(out->data, out->dtype, 0, sum / wsum);
    return KILN_OK;
}

static const kiln_dtype float_types[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16,
                                         KILN_DTYPE_BFLOAT16};

static kiln_status nll_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    return loss_core(c, c->in[0], NULL, c->in[1], kiln_op_in(c, 2));
}

static kiln_status sce_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    const kiln_tensor *x = c->in[0];
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "scores must have rank >= 2 ([N, C, ...]), got rank %d", x->rank);
    size_t bytes;
    if (kiln_mul_overflow_size((size_t)x->numel, sizeof(double), &bytes))
        return kiln_fail(KILN_ERR_INVALID, "scores are too large");
    double *lp = kiln_malloc(bytes ? bytes : 1);
    if (!lp)
        return KILN_ERR_NOMEM;
    /* log-softmax over axis 1, computed with the maximum subtracted */
    int64_t N = x->dims[0], C = x->dims[1], D;
    kiln_status st = kiln_dims_numel(x->rank - 2, x->dims + 2, &D);
    if (st != KILN_OK) {
        free(lp);
        return st;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            double mx = -INFINITY;
            for (int64_t k = 0; k < C; k++) {
                double v = kiln_load_f64(x->data, x->dtype, (n * C + k) * D + d);
                if (v > mx)
                    mx = v;
            }
            double s = 0.0;
            for (int64_t k = 0; k < C; k++)
                s += exp(kiln_load_f64(x->data, x->dtype, (n * C + k) * D + d) - mx);
            double ls = log(s) + mx;
            for (int64_t k = 0; k < C; k++) {
                int64_t i = (n * C + k) * D + d;
                lp[i] = kiln_load_f64(x->data, x->dtype, i) - ls;
            }
        }
    st = loss_core(c, x, lp, c->in[1], kiln_op_in(c, 2));
    if (st == KILN_OK && kiln_op_out_wanted(c, 1)) {
        kiln_tensor *lo;
        st = kiln_op_output(c, 1, x->dtype, x->rank, x->dims, &lo);
        if (st == KILN_OK)
            for (int64_t i = 0; i < x->numel; i++)
                kiln_store_f64(lo->data, lo->dtype, i, lp[i]);
    }
    free(lp);
    return st;
}

/* Shape rules: the loss is the target's shape with reduction "none", else
 * a scalar; SoftmaxCrossEntropyLoss's log_prob (output 1) is the scores'. */
static kiln_status loss_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    const kiln_shape_fact *S = kiln_infer_in(x, 0), *T = kiln_infer_in(x, 1);
    kiln_shape_fact *o = &x->out[0];
    o->dt = S->dt;
    if (!strcmp(kiln_attr_string(x->node, "reduction", "mean"), "none"))
        kiln_infer_copy_shape(o, T, false);
    else
        o->rank = 0;
    if (x->n_out > 1) {
        x->out[1].dt = S->dt;
        kiln_infer_copy_shape(&x->out[1], S, false);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "NegativeLogLikelihoodLoss", 12, 0, nll_exec, loss_infer},
    {"", "SoftmaxCrossEntropyLoss", 12, 0, sce_exec, loss_infer},
};
KILN_OP_FAMILY(loss, ops);
