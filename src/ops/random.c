/* RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike,
 * Bernoulli, Multinomial, and MaxRoiPool.
 *
 * The random operators draw from xoshiro256** seeded by the `seed`
 * attribute (the same seed gives the same values) or, without one, from the
 * clock and a process-wide counter (the spec leaves the generator and the
 * default seed to the runtime). Normal values use the Box-Muller transform
 * in double. Later versions (22) only widened the type sets. Freezing never
 * folds these operators (passes/fold.c). */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, const kiln_node *n) {
    static _Atomic uint64_t counter;
    uint64_t x;
    const kiln_attr *sa = kiln_node_attr(n, "seed");
    if (sa) {
        double sd = kiln_attr_float(n, "seed", 0.0f);
        memcpy(&x, &sd, sizeof x);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull;
    }
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

static uint64_t rng_next(rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

/* Uniform in [0, 1). */
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static double rng_normal(rng *r) {
    double u = rng_unit(r), v = rng_unit(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586476925 * v);
}

static kiln_status need_float_dtype(int64_t dt) {
    if (dt == KILN_DTYPE_FLOAT || dt == KILN_DTYPE_DOUBLE || dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16)
        return KILN_OK;
    return kiln_fail(KILN_ERR_INVALID, "attribute 'dtype' %lld is not a floating-point type", (long long)dt);
}

/* Output dims: attribute `shape`, or the input's (the *Like forms). */
static kiln_status random_shape(kiln_op_ctx *c, bool like, int *rank, int64_t *dims, kiln_dtype *dt) {
    if (like) {
        KILN_TRY(kiln_op_need_inputs(c, 1));
        const kiln_tensor *x = c->in[0];
        *rank = x->rank;
        memcpy(dims, x->dims, (size_t)x->rank * sizeof *dims);
        *dt = (kiln_dtype)kiln_attr_int(c->node, "dtype", x->dtype);
    } else {
        size_t n;
        const int64_t *s = kiln_attr_ints(c->node, "shape", &n);
        if (!s)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'shape' is required");
        if (n > KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'shape' has %zu dims, more than %d", n, KILN_MAX_RANK);
        for (size_t i = 0; i < n; i++)
            if (s[i] < 0)
                return kiln_fail(KILN_ERR_INVALID, "attribute 'shape' has a negative dim %lld", (long long)s[i]);
        *rank = (int)n;
        memcpy(dims, s, n * sizeof *dims);
        *dt = (kiln_dtype)kiln_attr_int(c->node, "dtype", KILN_DTYPE_FLOAT);
    }
    return need_float_dtype(*dt);
}

static kiln_status random_exec(kiln_op_ctx *c, bool like, bool normal) {
    int rank = 0;
    int64_t dims[KILN_MAX_RANK];
    kiln_dtype dt = KILN_DTYPE_FLOAT;
    KILN_TRY(random_shape(c, like, &rank, dims, &dt));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, rank, dims, &y));
    rng r;
    rng_seed(&r, c->node);
    double a = kiln_attr_float(c->node, normal ? "mean" : "low", 0.0f),
           b = kiln_attr_float(c->node, normal ? "scale" : "high", 1.0f);
    for (int64_t i = 0; i < y->numel; i++)
        kiln_store_f64(y->data, dt, i, normal ? a + b * rng_normal(&r) : a + (b - a) * rng_unit(&r));
    return KILN_OK;
}

static kiln_status rnormal_exec(kiln_op_ctx *c) { return random_exec(c, false, true); }
static kiln_status runiform_exec(kiln_op_ctx *c) { return random_exec(c, false, false); }
static kiln_status rnormal_like_exec(kiln_op_ctx *c) { return random_exec(c, true, true); }
static kiln_status runiform_like_exec(kiln_op_ctx *c) { return random_exec(c, true, false); }

/* Bernoulli: 1 with the input's probability, else 0, typed by `dtype`
 * (default: the input's type). */
static kiln_status bernoulli_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *p = c->in[0];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    kiln_dtype dt = (kiln_dtype)kiln_attr_int(c->node, "dtype", p->dtype);
    if (dt == KILN_DTYPE_STRING || dt <= KILN_DTYPE_UNDEFINED || dt >= KILN_DTYPE_FLOAT8E4M3FN ||
        dt == KILN_DTYPE_COMPLEX64 || dt == KILN_DTYPE_COMPLEX128)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'dtype' %d is not a numeric or bool type", (int)dt);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, p->rank, p->dims, &y));
    rng r;
    rng_seed(&r, c->node);
    for (int64_t i = 0; i < y->numel; i++)
        kiln_store_any(y->data, dt, i, rng_unit(&r) < kiln_load_f64(p->data, p->dtype, i) ? 1.0 : 0.0);
    return KILN_OK;
}

/* Multinomial: sample_size draws per row of unnormalised log-probabilities
 * [batch, classes], as int32 (default) or int64 class indices. */
static kiln_status multinomial_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    if (x->rank != 2)
        return kiln_fail(KILN_ERR_INVALID, "input must be [batch, classes], got rank %d", x->rank);
    kiln_dtype dt = (kiln_dtype)kiln_attr_int(c->node, "dtype", KILN_DTYPE_INT32);
    if (dt != KILN_DTYPE_INT32 && dt != KILN_DTYPE_INT64)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'dtype' must be int32 or int64, got %d", (int)dt);
    int64_t ns = kiln_attr_int(c->node, "sample_size", 1), B = x->dims[0], K = x->dims[1];
    if (ns < 0)
        return kiln_fail(KILN_ERR_INVALID, "sample_size %lld is negative", (long long)ns);
    int64_t dims[2] = {B, ns};
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, dt, 2, dims, &y));
    if (y->numel == 0)
        return KILN_OK;
    if (K == 0)
        return kiln_fail(KILN_ERR_INVALID, "input has no classes to draw from");
    rng r;
    rng_seed(&r, c->node);
    for (int64_t b = 0; b < B; b++) {
        double mx = -INFINITY, total = 0;
        for (int64_t k = 0; k < K; k++)
            mx = fmax(mx, kiln_load_f64(x->data, x->dtype, b * K + k));
        for (int64_t k = 0; k < K; k++)
            total += exp(kiln_load_f64(x->data, x->dtype, b * K + k) - mx);
        for (int64_t s = 0; s < ns; s++) {
            double u = rng_unit(&r) * total, acc = 0;
            int64_t pick = K - 1;
            for (int64_t k = 0; k < K; k++) {
                acc += exp(kiln_load_f64(x->data, x->dtype, b * K + k) - mx);
                if (u < acc) {
                    pick = k;
                    break;
                }
            }
            kiln_store_any(y->data, dt, b * ns + s, (double)pick);
        }
    }
    return KILN_OK;
}

/* MaxRoiPool: per region of interest (batch index, x1, y1, x2, y2 scaled by
 * spatial_scale and rounded), the maximum over each of pooled_shape's bins
 * (bin edges floor / ceil, clipped to the image; an empty bin gives 0). */
static kiln_status maxroipool_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *X = c->in[0], *R = c->in[1];
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    KILN_TRY(kiln_op_need_dtype(c, 1, ok, sizeof ok / sizeof *ok));
    if (X->rank != 4 || R->rank != 2 || R->dims[1] != 5)
        return kiln_fail(KILN_ERR_INVALID, "X must be [N, C, H, W] and rois [num_rois, 5]");
    size_t np;
    const int64_t *ps = kiln_attr_ints(c->node, "pooled_shape", &np);
    if (!ps || np != 2 || ps[0] < 1 || ps[1] < 1)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'pooled_shape' must be two positive sizes");
    double scale = kiln_attr_float(c->node, "spatial_scale", 1.0f);
    int64_t N = X->dims[0], C = X->dims[1], H = X->dims[2], W = X->dims[3], PH = ps[0], PW = ps[1];
    int64_t dims[4] = {R->dims[0], C, PH, PW};
    kiln_tensor *Y;
    KILN_TRY(kiln_op_output(c, 0, X->dtype, 4, dims, &Y));
    for (int64_t n = 0; n < R->dims[0]; n++) {
        double v[5];
        for (int k = 0; k < 5; k++)
            v[k] = kiln_load_f64(R->data, R->dtype, n * 5 + k);
        if (!(v[0] >= 0 && v[0] < (double)N))
            return kiln_fail(KILN_ERR_INVALID, "roi %lld has batch index %g outside [0, %lld)", (long long)n, v[0],
                             (long long)N);
        int64_t b = (int64_t)v[0];
        int64_t x1 = (int64_t)llround(v[1] * scale), y1 = (int64_t)llround(v[2] * scale);
        int64_t x2 = (int64_t)llround(v[3] * scale), y2 = (int64_t)llround(v[4] * scale);
        int64_t rh = y2 - y1 + 1 > 1 ? y2 - y1 + 1 : 1, rw = x2 - x1 + 1 > 1 ? x2 - x1 + 1 : 1;
        double bh = (double)rh / (double)PH, bw = (double)rw / (double)PW;
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t ph = 0; ph < PH; ph++)
                for (int64_t pw = 0; pw < PW; pw++) {
                    int64_t hs = (int64_t)floor((double)ph * bh) + y1, he = (int64_t)ceil((double)(ph + 1) * bh) + y1;
                    int64_t ws = (int64_t)floor((double)pw * bw) + x1, we = (int64_t)ceil((double)(pw + 1) * bw) + x1;
                    hs = hs < 0 ? 0 : hs > H ? H : hs;
                    he = he < 0 ? 0 : he > H ? H : he;
                    ws = ws < 0 ? 0 : ws > W ? W : ws;
                    we = we < 0 ? 0 : we > W ? W : we;
                    double m = -INFINITY;
                    for (int64_t h = hs; h < he; h++)
                        for (int64_t w = ws; w < we; w++)
                            m = fmax(m, kiln_load_f64(X->data, X->dtype, ((b * C + ch) * H + h) * W + w));
                    kiln_store_f64(Y->data, X->dtype, ((n * C + ch) * PH + ph) * PW + pw, m == -INFINITY ? 0.0 : m);
                }
    }
    return KILN_OK;
}

/* ---- shape rules ---- */

static kiln_status random_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = (kiln_dtype)kiln_attr_int(x->node, "dtype", KILN_DTYPE_FLOAT);
    int64_t s[KILN_MAX_RANK];
    int n;
    if (kiln_infer_ints(x, -1, "shape", s, &n, KILN_MAX_RANK)) {
        o->rank = n;
        for (int i = 0; i < n; i++)
            o->dims[i] = kiln_sd_const(s[i]);
    }
    return KILN_OK;
}

static kiln_status random_like_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_same(x));
    if (x->n_out > 0 && kiln_node_attr(x->node, "dtype"))
        x->out[0].dt = (kiln_dtype)kiln_attr_int(x->node, "dtype", 0);
    return KILN_OK;
}

static kiln_status multinomial_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = (kiln_dtype)kiln_attr_int(x->node, "dtype", KILN_DTYPE_INT32);
    o->rank = 2;
    o->dims[0] = X->rank == 2 ? X->dims[0] : kiln_sd_unknown();
    o->dims[1] = kiln_sd_const(kiln_attr_int(x->node, "sample_size", 1));
    return KILN_OK;
}

static kiln_status maxroipool_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0), *R = kiln_infer_in(x, 1);
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    o->dt = X->dt;
    int64_t ps[2];
    int n;
    if (!kiln_infer_ints(x, -1, "pooled_shape", ps, &n, 2) || n != 2)
        return KILN_OK;
    o->rank = 4;
    o->dims[0] = R->rank == 2 ? R->dims[0] : kiln_sd_unknown();
    o->dims[1] = X->rank == 4 ? X->dims[1] : kiln_sd_unknown();
    o->dims[2] = kiln_sd_const(ps[0]);
    o->dims[3] = kiln_sd_const(ps[1]);
    return KILN_OK;
}

/* Version 22 of each only added bfloat16 (and wider output types). */
static const kiln_op_desc ops[] = {
    {"", "RandomNormal", 1, 0, rnormal_exec, random_infer},
    {"", "RandomUniform", 1, 0, runiform_exec, random_infer},
    {"", "RandomNormalLike", 1, 0, rnormal_like_exec, random_like_infer},
    {"", "RandomUniformLike", 1, 0, runiform_like_exec, random_like_infer},
    {"", "Bernoulli", 15, 0, bernoulli_exec, random_like_infer},
    {"", "Multinomial", 7, 0, multinomial_exec, multinomial_infer},
    {"", "MaxRoiPool", 1, 0, maxroipool_exec, maxroipool_infer},
};
KILN_OP_FAMILY(random, ops);
