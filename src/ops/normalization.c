/* BatchNormalization (inference), InstanceNormalization, LayerNormalization,
 * GroupNormalization, RMSNormalization, MeanVarianceNormalization,
 * LpNormalization, LRN.
 *
 * Most of them work on "planes": contiguous runs of elements sharing
 * statistics (BatchNormalization and InstanceNormalization: one [n, c] plane
 * of the spatial dims; GroupNormalization: the [n, g] run of a group's
 * channels; LayerNormalization and RMSNormalization: one row of the
 * trailing axes). Statistics are accumulated in double; element loops are
 * contiguous. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "kernels/reduce.h"

static const kiln_dtype float_types[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16,
                                         KILN_DTYPE_BFLOAT16};

static inline double ld(kiln_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: return ((const float *)p)[i];
    case KILN_DTYPE_DOUBLE: return ((const double *)p)[i];
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(((const uint16_t *)p)[i]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(((const uint16_t *)p)[i]);
    default: return 0;
    }
}

/* Loads/stores a contiguous run of n elements through a double buffer. */
static void ld_run(kiln_dtype dt, const void *p, int64_t off, int64_t n, double *out) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: {
        const float *s = (const float *)p + off;
        for (int64_t i = 0; i < n; i++)
            out[i] = s[i];
        break;
    }
    case KILN_DTYPE_DOUBLE: memcpy(out, (const double *)p + off, (size_t)n * sizeof(double)); break;
    default:
        for (int64_t i = 0; i < n; i++)
            out[i] = ld(dt, p, off + i);
    }
}

static void st_run(kiln_dtype dt, void *p, int64_t off, int64_t n, const double *in) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: {
        float *d = (float *)p + off;
        for (int64_t i = 0; i < n; i++)
            d[i] = (float)in[i];
        break;
    }
    case KILN_DTYPE_DOUBLE: memcpy((double *)p + off, in, (size_t)n * sizeof(double)); break;
    case KILN_DTYPE_FLOAT16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)p)[off + i] = kiln_float_to_half((float)in[i]);
        break;
    case KILN_DTYPE_BFLOAT16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)p)[off + i] = kiln_float_to_bf16((float)in[i]);
        break;
    default: break;
    }
}

#define CHUNK 1024

/* ---- per-plane affine (BatchNormalization) and per-plane statistics
 * (InstanceNormalization, LayerNormalization) ---- */

typedef enum { PL_AFFINE, PL_INSTANCE, PL_LAYER, PL_GROUP, PL_RMS } plane_mode;

typedef struct plane_job {
    plane_mode mode;
    kiln_dtype dt;
    const void *x;
    void *y;
    int64_t planes, size, channels;
    /* AFFINE/INSTANCE: per channel; LAYER/RMS: per element of the row;
     * GROUP: per channel, `channels` of them, `inner` elements each */
    const double *a, *b;
    double eps;
    float *mean_out, *inv_out; /* LAYER, optional */
    int64_t inner, groups;     /* GROUP: elements per channel, groups per sample */
    kiln_dtype ydt;            /* RMS: Y's type (the scale's); else dt */
    const float *af, *bf;      /* LAYER on float32: a and b as floats */
} plane_job;

/* One float32 LayerNormalization row in three vectorised passes (sum; sum
 * of squared deviations; scale and shift), eight float lanes summed in
 * double at the end of each pass. */
KILN_CLONES static void layer_row_f32(const plane_job *j, int64_t p) {
    int64_t n = j->size, i;
    const float *x = (const float *)j->x + p * n;
    float *y = (float *)j->y + p * n;
    float acc[8] = {0};
    for (i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k];
    double sum = 0.0;
    for (int k = 0; k < 8; k++)
        sum += acc[k];
    for (; i < n; i++)
        sum += x[i];
    double mean = n ? sum / (double)n : 0.0;
    float fm = (float)mean;
    for (int k = 0; k < 8; k++)
        acc[k] = 0.0f;
    for (i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float d = x[i + k] - fm;
            acc[k] += d * d;
        }
    double sq = 0.0;
    for (int k = 0; k < 8; k++)
        sq += acc[k];
    for (; i < n; i++)
        sq += ((double)x[i] - mean) * ((double)x[i] - mean);
    double inv = 1.0 / sqrt((n ? sq / (double)n : 0.0) + j->eps);
    if (j->mean_out)
        j->mean_out[p] = fm;
    if (j->inv_out)
        j->inv_out[p] = (float)inv;
    float fi = (float)inv;
    const float *a = j->af, *b = j->bf;
    for (i = 0; i < n; i++)
        y[i] = (x[i] - fm) * fi * a[i] + b[i];
}

KILN_CLONES static void plane_range(void *arg, size_t begin, size_t end) {
    const plane_job *j = arg;
    double buf[CHUNK];
    for (size_t p = begin; p < end; p++) {
        int64_t base = (int64_t)p * j->size, c = (int64_t)p % j->channels;
        if (j->mode == PL_AFFINE) {
            double a = j->a[c], b = j->b[c];
            if (j->dt == KILN_DTYPE_FLOAT) {
                const float *x = (const float *)j->x + base;
                float *y = (float *)j->y + base;
                float fa = (float)a, fb = (float)b;
                for (int64_t i = 0; i < j->size; i++)
                    y[i] = x[i] * fa + fb;
                continue;
            }
            for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
                int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
                ld_run(j->dt, j->x, base + i0, n, buf);
                for (int64_t i = 0; i < n; i++)
                    buf[i] = buf[i] * a + b;
                st_run(j->dt, j->y, base + i0, n, buf);
            }
            continue;
        }
        if (j->mode == PL_RMS) {
            double sq = 0.0;
            for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
                int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
                ld_run(j->dt, j->x, base + i0, n, buf);
                for (int64_t i = 0; i < n; i++)
                    sq += buf[i] * buf[i];
            }
            double inv = 1.0 / sqrt((j->size ? sq / (double)j->size : 0.0) + j->eps);
            for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
                int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
                ld_run(j->dt, j->x, base + i0, n, buf);
                const double *sa = j->a + i0;
                for (int64_t i = 0; i < n; i++)
                    buf[i] = buf[i] * inv * sa[i];
                st_run(j->ydt, j->y, base + i0, n, buf);
            }
            continue;
        }
        if (j->mode == PL_LAYER && j->dt == KILN_DTYPE_FLOAT && j->af) {
            layer_row_f32(j, (int64_t)p);
            continue;
        }
        /* two-pass mean and variance (stable for large offsets) */
        double sum = 0.0, sq = 0.0;
        for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
            int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
            ld_run(j->dt, j->x, base + i0, n, buf);
            for (int64_t i = 0; i < n; i++)
                sum += buf[i];
        }
        double mean = j->size ? sum / (double)j->size : 0.0;
        for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
            int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
            ld_run(j->dt, j->x, base + i0, n, buf);
            for (int64_t i = 0; i < n; i++)
                sq += (buf[i] - mean) * (buf[i] - mean);
        }
        double var = j->size ? sq / (double)j->size : 0.0;
        double inv = 1.0 / sqrt(var + j->eps);
        if (j->mean_out)
            j->mean_out[p] = (float)mean;
        if (j->inv_out)
            j->inv_out[p] = (float)inv;
        for (int64_t i0 = 0; i0 < j->size; i0 += CHUNK) {
            int64_t n = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
            ld_run(j->dt, j->x, base + i0, n, buf);
            if (j->mode == PL_INSTANCE) {
                double a = j->a[c] * inv, b = j->b[c] - mean * a;
                for (int64_t i = 0; i < n; i++)
                    buf[i] = buf[i] * a + b;
            } else if (j->mode == PL_GROUP) {
                /* channel of each element: the group's first plus (i0 + i) / inner */
                int64_t ch0 = ((int64_t)p % j->groups) * (j->channels / j->groups);
                for (int64_t i = 0; i < n; i++) {
                    int64_t ch = ch0 + (i0 + i) / j->inner;
                    buf[i] = (buf[i] - mean) * inv * j->a[ch] + j->b[ch];
                }
            } else {
                const double *sa = j->a + i0, *sb = j->b + i0;
                for (int64_t i = 0; i < n; i++)
                    buf[i] = (buf[i] - mean) * inv * sa[i] + sb[i];
            }
            st_run(j->dt, j->y, base + i0, n, buf);
        }
    }
}

static void run_planes(kiln_op_ctx *c, plane_job *j) {
    if (j->planes == 0 || j->size == 0)
        return;
    size_t grain = j->size >= 16384 ? 1 : (size_t)(16384 / j->size);
    kiln_parallel_for(c, (size_t)j->planes, grain, plane_range, j);
}

/* A per-channel parameter (1-D, C entries) as doubles. */
static kiln_status channel_param(const kiln_tensor *t, const char *name, int64_t ch, double *out) {
    if (!t)
        return kiln_fail(KILN_ERR_INVALID, "input '%s' is missing", name);
    if (t->numel != ch || (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE &&
                           t->dtype != KILN_DTYPE_FLOAT16 && t->dtype != KILN_DTYPE_BFLOAT16))
        return kiln_fail(KILN_ERR_INVALID, "input '%s' must hold %lld floating-point values (one per channel), has %lld of %s",
                         name, (long long)ch, (long long)t->numel, kiln_dtype_name(t->dtype));
    for (int64_t i = 0; i < ch; i++)
        out[i] = ld(t->dtype, t->data, i);
    return KILN_OK;
}

static kiln_status batchnorm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 5));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    if (c->opset >= 14 && kiln_attr_int(c->node, "training_mode", 0) != 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "training_mode=1 (batch statistics) is not supported; kiln runs "
                                               "BatchNormalization in inference mode only");
    if (c->opset < 14 && (kiln_op_out_wanted(c, 1) || kiln_op_out_wanted(c, 2)))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "training outputs (mean, var, saved_mean, saved_var) are not "
                                               "supported; kiln runs BatchNormalization in inference mode only");
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 2, has %d", x->rank);
    double eps = kiln_attr_float(c->node, "epsilon", 1e-5f);
    /* spatial=0 (opset < 9): statistics per element of [C, D1, ...] */
    bool spatial = c->opset >= 9 || kiln_attr_int(c->node, "spatial", 1) != 0;
    int64_t ch = spatial ? x->dims[1] : kiln_dims_prod(x->dims, 1, x->rank);
    int64_t size = spatial ? kiln_dims_prod(x->dims, 2, x->rank) : 1;
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    double *p = kiln_malloc((size_t)(ch ? ch : 1) * 4 * sizeof(double));
    if (!p)
        return KILN_ERR_NOMEM;
    double *s = p, *b = p + ch, *m = p + 2 * ch, *v = p + 3 * ch;
    kiln_status st;
    KILN_CHECK(st, channel_param(c->in[1], "scale", ch, s), done);
    KILN_CHECK(st, channel_param(c->in[2], "B", ch, b), done);
    KILN_CHECK(st, channel_param(c->in[3], "input_mean", ch, m), done);
    KILN_CHECK(st, channel_param(c->in[4], "input_var", ch, v), done);
    for (int64_t i = 0; i < ch; i++) {
        double a = s[i] / sqrt(v[i] + eps);
        b[i] = b[i] - m[i] * a;
        s[i] = a;
    }
    plane_job j = {PL_AFFINE, x->dtype, x->data, y->data, x->dims[0] * ch, size, ch, s, b, eps, NULL, NULL, 0, 0, x->dtype};
    run_planes(c, &j);
done:
    free(p);
    return st;
}

static kiln_status instancenorm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input 'input' must have rank >= 2, has %d", x->rank);
    int64_t ch = x->dims[1];
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    double *p = kiln_malloc((size_t)(ch ? ch : 1) * 2 * sizeof(double));
    if (!p)
        return KILN_ERR_NOMEM;
    kiln_status st;
    KILN_CHECK(st, channel_param(c->in[1], "scale", ch, p), done);
    KILN_CHECK(st, channel_param(c->in[2], "B", ch, p + ch), done);
    plane_job j = {PL_INSTANCE, x->dtype, x->data, y->data, x->dims[0] * ch, kiln_dims_prod(x->dims, 2, x->rank), ch,
                   p, p + ch, kiln_attr_float(c->node, "epsilon", 1e-5f), NULL, NULL, 0, 0, x->dtype};
    run_planes(c, &j);
done:
    free(p);
    return st;
}

/* Expands t (unidirectionally broadcastable to dims[0..rank)) into n doubles. */
static kiln_status expand_param(const kiln_tensor *t, const char *name, int rank, const int64_t *dims, int64_t n,
                                double fill, double *out) {
    if (!t) {
        for (int64_t i = 0; i < n; i++)
            out[i] = fill;
        return KILN_OK;
    }
    if (t->dtype != KILN_DTYPE_FLOAT && t->dtype != KILN_DTYPE_DOUBLE && t->dtype != KILN_DTYPE_FLOAT16 &&
        t->dtype != KILN_DTYPE_BFLOAT16)
        return kiln_fail(KILN_ERR_INVALID, "input '%s' must be floating point, is %s", name, kiln_dtype_name(t->dtype));
    if (t->rank > rank)
        goto bad;
    int64_t st[KILN_MAX_RANK];
    int off = rank - t->rank;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        if (d < off) {
            st[d] = 0;
            continue;
        }
        int64_t td = t->dims[d - off];
        if (td != dims[d] && td != 1)
            goto bad;
        st[d] = td == 1 ? 0 : s;
        s *= td;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, o = 0;
        for (int d = rank - 1; d >= 0; d--) {
            o += (rem % dims[d]) * st[d];
            rem /= dims[d];
        }
        out[i] = ld(t->dtype, t->data, o);
    }
    return KILN_OK;
bad: {
    char a[128], b[128];
    return kiln_fail(KILN_ERR_INVALID, "input '%s' of shape %s does not broadcast to the normalised shape %s", name,
                     kiln_dims_str(t->rank, t->dims, a, sizeof a), kiln_dims_str(rank, dims, b, sizeof b));
}
}

/* scale_optional: the planner's fused form (exec/fuse.c), whose Scale may
 * be absent (ones). */
static kiln_status layernorm_run(kiln_op_ctx *c, bool scale_optional) {
    KILN_TRY(kiln_op_need_inputs(c, scale_optional ? 1 : 2));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    if (x->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 1");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -1), x->rank, &axis));
    int64_t rows = kiln_dims_prod(x->dims, 0, axis), cols = kiln_dims_prod(x->dims, axis, x->rank);
    kiln_tensor *y, *mean = NULL, *inv = NULL;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    int64_t sd[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        sd[d] = d < axis ? x->dims[d] : 1;
    /* Mean and InvStdDev are in the stash type (float32 by default) */
    int64_t stash = kiln_attr_int(c->node, "stash_type", 1);
    if (stash != 1)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'stash_type' = %lld is not supported (only 1, float32)",
                         (long long)stash);
    if (kiln_op_out_wanted(c, 1))
        KILN_TRY(kiln_op_output(c, 1, KILN_DTYPE_FLOAT, x->rank, sd, &mean));
    if (kiln_op_out_wanted(c, 2))
        KILN_TRY(kiln_op_output(c, 2, KILN_DTYPE_FLOAT, x->rank, sd, &inv));
    /* the row parameters as doubles, then (float32) as floats */
    double *p;
    KILN_TRY(kiln_op_scratch(c, (size_t)(cols ? cols : 1) * 2 * (sizeof(double) + sizeof(float)), (void **)&p));
    kiln_status st;
    KILN_CHECK(st, expand_param(kiln_op_in(c, 1), "Scale", x->rank - axis, x->dims + axis, cols, 1.0, p), done);
    KILN_CHECK(st, expand_param(kiln_op_in(c, 2), "B", x->rank - axis, x->dims + axis, cols, 0.0, p + cols), done);
    plane_job j = {PL_LAYER, x->dtype, x->data, y->data, rows, cols, 1, p, p + cols,
                   kiln_attr_float(c->node, "epsilon", 1e-5f), mean ? mean->data : NULL, inv ? inv->data : NULL, 0, 0, x->dtype,
                   NULL, NULL};
    if (x->dtype == KILN_DTYPE_FLOAT) {
        float *f = (float *)(p + 2 * cols);
        for (int64_t i = 0; i < 2 * cols; i++)
            f[i] = (float)p[i];
        j.af = f;
        j.bf = f + cols;
    }
    if (cols == 0) {
        /* nothing to normalise: statistics of an empty row */
        for (int64_t r = 0; r < rows; r++) {
            if (j.mean_out)
                j.mean_out[r] = 0.0f;
            if (j.inv_out)
                j.inv_out[r] = (float)(1.0 / sqrt(j.eps));
        }
    }
    run_planes(c, &j);
done:
    return st;
}

static kiln_status layernorm_exec(kiln_op_ctx *c) { return layernorm_run(c, false); }
static kiln_status layernorm_fused_exec(kiln_op_ctx *c) { return layernorm_run(c, true); }

/* MeanVarianceNormalization: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9)
 * over `axes` (default [0, 2, 3]), as the opset 9 function body defines. */
static kiln_status mvn_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    bool mask[KILN_MAX_RANK] = {false};
    size_t na;
    const int64_t *axes = kiln_attr_ints(c->node, "axes", &na);
    static const int64_t dflt[] = {0, 2, 3};
    if (!axes) {
        axes = dflt;
        na = 3;
    }
    for (size_t i = 0; i < na; i++) {
        int a;
        KILN_TRY(kiln_op_axis(c, axes[i], x->rank, &a));
        mask[a] = true;
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (x->numel == 0)
        return KILN_OK;
    /* kept-space strides: each element's statistics slot */
    int64_t ks[KILN_MAX_RANK], nk = 1, cnt = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        ks[d] = mask[d] ? 0 : nk;
        if (mask[d])
            cnt *= x->dims[d];
        else
            nk *= x->dims[d];
    }
    double *acc = kiln_calloc((size_t)nk * 2, sizeof(double));
    double *buf = kiln_malloc((size_t)(x->rank ? x->dims[x->rank - 1] : 1) * sizeof(double));
    if (!acc || !buf) {
        free(acc);
        free(buf);
        return KILN_ERR_NOMEM;
    }
    int rk = x->rank ? x->rank : 1;
    int64_t one = 1, zero = 0;
    const int64_t *dims = x->rank ? x->dims : &one, *kst = x->rank ? ks : &zero;
    int64_t n = dims[rk - 1], s = kst[rk - 1], rows = x->numel / n;
    for (int pass = 0; pass < 2; pass++) {
        int64_t idx[KILN_MAX_RANK] = {0}, ko = 0;
        for (int64_t r = 0; r < rows; r++) {
            ld_run(x->dtype, x->data, r * n, n, buf);
            if (pass == 0) {
                for (int64_t i = 0; i < n; i++) {
                    acc[2 * (ko + i * s)] += buf[i];
                    acc[2 * (ko + i * s) + 1] += buf[i] * buf[i];
                }
            } else {
                for (int64_t i = 0; i < n; i++) {
                    const double *a = acc + 2 * (ko + i * s);
                    buf[i] = (buf[i] - a[0]) / a[1];
                }
                st_run(x->dtype, y->data, r * n, n, buf);
            }
            for (int d = rk - 2; d >= 0; d--) {
                ko += kst[d];
                if (++idx[d] < dims[d])
                    break;
                ko -= kst[d] * dims[d];
                idx[d] = 0;
            }
        }
        if (pass == 0)
            for (int64_t k = 0; k < nk; k++) {
                double m = acc[2 * k] / (double)cnt, m2 = acc[2 * k + 1] / (double)cnt;
                double var = m2 - m * m;
                acc[2 * k] = m;
                acc[2 * k + 1] = sqrt(var > 0 ? var : 0) + 1e-9;
            }
    }
    free(acc);
    free(buf);
    return KILN_OK;
}

/* LRN: across channels, window [c - floor((size-1)/2), c + ceil((size-1)/2)]. */
typedef struct lrn_job {
    kiln_dtype dt;
    const void *x;
    void *y;
    int64_t ch, size, win;
    double alpha, beta, bias;
} lrn_job;

static void lrn_range(void *arg, size_t begin, size_t end) {
    const lrn_job *j = arg;
    int64_t lo_off = (j->win - 1) / 2, hi_off = j->win - 1 - lo_off;
    double xb[CHUNK], sq[CHUNK], cur[CHUNK];
    for (size_t t = begin; t < end; t++) {
        /* task = (n, c, chunk of spatial) */
        int64_t nchunk = (j->size + CHUNK - 1) / CHUNK;
        int64_t nc = (int64_t)t / nchunk, i0 = ((int64_t)t % nchunk) * CHUNK;
        int64_t n = nc / j->ch, cc = nc % j->ch;
        int64_t w = j->size - i0 < CHUNK ? j->size - i0 : CHUNK;
        int64_t lo = cc - lo_off < 0 ? 0 : cc - lo_off, hi = cc + hi_off > j->ch - 1 ? j->ch - 1 : cc + hi_off;
        for (int64_t i = 0; i < w; i++)
            sq[i] = 0.0;
        for (int64_t k = lo; k <= hi; k++) {
            ld_run(j->dt, j->x, (n * j->ch + k) * j->size + i0, w, xb);
            for (int64_t i = 0; i < w; i++)
                sq[i] += xb[i] * xb[i];
        }
        ld_run(j->dt, j->x, nc * j->size + i0, w, cur);
        for (int64_t i = 0; i < w; i++)
            cur[i] = cur[i] / pow(j->bias + j->alpha / (double)j->win * sq[i], j->beta);
        st_run(j->dt, j->y, nc * j->size + i0, w, cur);
    }
}

static kiln_status lrn_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    if (x->rank < 3)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 3 (N x C x D1 ...), has %d", x->rank);
    int64_t size = kiln_attr_int(c->node, "size", 0);
    if (size <= 0)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'size' must be positive, is %lld", (long long)size);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    lrn_job j = {x->dtype, x->data, y->data, x->dims[1], kiln_dims_prod(x->dims, 2, x->rank), size,
                 kiln_attr_float(c->node, "alpha", 1e-4f), kiln_attr_float(c->node, "beta", 0.75f),
                 kiln_attr_float(c->node, "bias", 1.0f)};
    if (y->numel == 0)
        return KILN_OK;
    size_t tasks = (size_t)(x->dims[0] * j.ch * ((j.size + CHUNK - 1) / CHUNK));
    kiln_parallel_for(c, tasks, 4, lrn_range, &j);
    return KILN_OK;
}

/* GroupNormalization: statistics per (n, group) over the group's channels
 * and the spatial dims; scale and bias per group (opset 18) or per channel
 * (21, which also has stash_type). */
static kiln_status groupnorm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 2, has %d", x->rank);
    int64_t G = kiln_attr_int(c->node, "num_groups", 0), ch = x->dims[1];
    if (!kiln_node_attr(c->node, "num_groups") || G <= 0 || ch % G)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'num_groups' (%lld) must be a positive divisor of the %lld "
                                           "channels",
                         (long long)G, (long long)ch);
    if (c->opset >= 21) {
        int64_t stash = kiln_attr_int(c->node, "stash_type", 1);
        if (stash != KILN_DTYPE_FLOAT && stash != KILN_DTYPE_DOUBLE)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'stash_type' = %lld is not supported (1 or 11; kiln "
                                                   "computes the statistics in double)",
                             (long long)stash);
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    bool per_group = c->opset < 21;
    double *p = kiln_malloc((size_t)(ch + (per_group ? G : 0)) * 2 * sizeof(double));
    if (!p)
        return KILN_ERR_NOMEM;
    kiln_status st;
    double *a = p, *b = p + ch;
    if (per_group) {
        double *ga = p + 2 * ch, *gb = ga + G;
        KILN_CHECK(st, channel_param(c->in[1], "scale", G, ga), done);
        KILN_CHECK(st, channel_param(c->in[2], "bias", G, gb), done);
        for (int64_t i = 0; i < ch; i++) {
            a[i] = ga[i / (ch / G)];
            b[i] = gb[i / (ch / G)];
        }
    } else {
        KILN_CHECK(st, channel_param(c->in[1], "scale", ch, a), done);
        KILN_CHECK(st, channel_param(c->in[2], "bias", ch, b), done);
    }
    int64_t inner = kiln_dims_prod(x->dims, 2, x->rank);
    plane_job j = {PL_GROUP, x->dtype, x->data, y->data, x->dims[0] * G, (ch / G) * inner, ch, a, b,
                   kiln_attr_float(c->node, "epsilon", 1e-5f), NULL, NULL, inner, G, x->dtype};
    run_planes(c, &j);
done:
    free(p);
    return st;
}

/* RMSNormalization: X / sqrt(mean(X^2 over axis..) + epsilon) * scale; Y
 * has the scale's type. */
static kiln_status rmsnorm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *sc = c->in[1];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    KILN_TRY(kiln_op_need_dtype(c, 1, float_types, 4));
    if (x->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'X' must have rank >= 1");
    int64_t stash = kiln_attr_int(c->node, "stash_type", 1);
    if (stash != KILN_DTYPE_FLOAT && stash != KILN_DTYPE_DOUBLE)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute 'stash_type' = %lld is not supported (1 or 11; kiln "
                                               "computes the statistics in double)",
                         (long long)stash);
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -1), x->rank, &axis));
    int64_t rows = kiln_dims_prod(x->dims, 0, axis), cols = kiln_dims_prod(x->dims, axis, x->rank);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, sc->dtype, x->rank, x->dims, &y));
    double *p = kiln_malloc((size_t)(cols ? cols : 1) * sizeof(double));
    if (!p)
        return KILN_ERR_NOMEM;
    kiln_status st;
    KILN_CHECK(st, expand_param(sc, "scale", x->rank - axis, x->dims + axis, cols, 1.0, p), done);
    plane_job j = {PL_RMS, x->dtype, x->data, y->data, rows, cols, 1, p, NULL,
                   kiln_attr_float(c->node, "epsilon", 1e-5f), NULL, NULL, 0, 0, sc->dtype};
    run_planes(c, &j);
done:
    free(p);
    return st;
}

static kiln_status rmsnorm_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 0 && kiln_infer_in(x, 1)->dt != KILN_DTYPE_UNDEFINED)
        x->out[0].dt = kiln_infer_in(x, 1)->dt;
    return KILN_OK;
}

/* LpNormalization: X / ||X||_p along `axis` (p 1 or 2); a zero norm gives 0. */
typedef struct lp_job {
    kiln_dtype dt;
    const void *x;
    void *y;
    int64_t r, inner, nblk;
    int p;
} lp_job;

static void lp_range(void *arg, size_t begin, size_t end) {
    const lp_job *j = arg;
    double acc[CHUNK], buf[CHUNK];
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / j->nblk, i0 = ((int64_t)t % j->nblk) * CHUNK;
        int64_t w = j->inner - i0 < CHUNK ? j->inner - i0 : CHUNK, base = o * j->r * j->inner + i0;
        for (int64_t i = 0; i < w; i++)
            acc[i] = 0.0;
        for (int64_t k = 0; k < j->r; k++) {
            ld_run(j->dt, j->x, base + k * j->inner, w, buf);
            if (j->p == 1)
                for (int64_t i = 0; i < w; i++)
                    acc[i] += fabs(buf[i]);
            else
                for (int64_t i = 0; i < w; i++)
                    acc[i] += buf[i] * buf[i];
        }
        for (int64_t i = 0; i < w; i++) {
            double n = j->p == 1 ? acc[i] : sqrt(acc[i]);
            acc[i] = n == 0 ? 0.0 : 1.0 / n;
        }
        for (int64_t k = 0; k < j->r; k++) {
            ld_run(j->dt, j->x, base + k * j->inner, w, buf);
            for (int64_t i = 0; i < w; i++)
                buf[i] = acc[i] == 0 ? 0.0 : buf[i] * acc[i];
            st_run(j->dt, j->y, base + k * j->inner, w, buf);
        }
    }
}

static kiln_status lpnorm_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    KILN_TRY(kiln_op_need_dtype(c, 0, float_types, 4));
    int64_t p = kiln_attr_int(c->node, "p", 2);
    if (p != 1 && p != 2)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'p' must be 1 or 2, is %lld", (long long)p);
    if (x->rank < 1)
        return kiln_fail(KILN_ERR_INVALID, "input 'input' must have rank >= 1");
    int axis;
    KILN_TRY(kiln_op_axis(c, kiln_attr_int(c->node, "axis", -1), x->rank, &axis));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, x->dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    lp_job j = {x->dtype, x->data, y->data, x->dims[axis], kiln_dims_prod(x->dims, axis + 1, x->rank), 0, (int)p};
    j.nblk = (j.inner + CHUNK - 1) / CHUNK;
    int64_t outer = kiln_dims_prod(x->dims, 0, axis), per = j.r * (j.inner < CHUNK ? j.inner : CHUNK);
    kiln_parallel_for(c, (size_t)(outer * j.nblk), per >= 16384 ? 1 : (size_t)(16384 / per), lp_range, &j);
    return KILN_OK;
}

/* LayerNormalization: Y as X; Mean and InvStdDev keep the leading dims
 * and are 1 from `axis` on, typed by stash_type (float by default). */
static kiln_status layernorm_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    for (size_t k = 1; k < x->n_out && k < 3; k++) {
        kiln_infer_copy_shape(&x->out[k], X, false);
        x->out[k].dt = (kiln_dtype)kiln_attr_int(x->node, "stash_type", KILN_DTYPE_FLOAT);
        if (X->rank < 0)
            continue;
        int a = kiln_infer_axis(kiln_attr_int(x->node, "axis", -1), X->rank);
        if (a < 0)
            return kiln_fail(KILN_ERR_INVALID, "axis is out of range for rank %d", X->rank);
        for (int d = a; d < X->rank; d++)
            x->out[k].dims[d] = kiln_sd_const(1);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "BatchNormalization", 1, 0, batchnorm_exec, kiln_infer_same},
    {"", "InstanceNormalization", 1, 0, instancenorm_exec, kiln_infer_same},
    {"", "LayerNormalization", 17, 0, layernorm_exec, layernorm_infer},
    {"", "GroupNormalization", 18, 20, groupnorm_exec, kiln_infer_same}, /* scale, bias per group */
    {"", "GroupNormalization", 21, 0, groupnorm_exec, kiln_infer_same},  /* per channel, stash_type */
    {"", "RMSNormalization", 23, 0, rmsnorm_exec, rmsnorm_infer},
    {"", "MeanVarianceNormalization", 9, 0, mvn_exec, kiln_infer_same},
    {"", "LpNormalization", 1, 0, lpnorm_exec, kiln_infer_same},
    {"", "LRN", 1, 0, lrn_exec, kiln_infer_same},
};
KILN_OP_FAMILY(normalization, ops);

/* The LayerNormalization the planner makes of ReduceMean-Sub-Pow-ReduceMean-
 * Add-Sqrt-Div(-Mul-Add) chains (exec/fuse.c): Scale and B optional. */
const kiln_op_desc kiln_op_layernorm_fused = {"", "LayerNormalization", 17, 0, layernorm_fused_exec, layernorm_infer};
