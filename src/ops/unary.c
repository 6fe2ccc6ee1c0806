/* Unary elementwise maths and activations: Abs Neg Reciprocal Floor Ceil
 * Round Sign Sqrt Exp Log Erf Tanh Sigmoid, trigonometric and hyperbolic
 * functions, Softsign Softplus Relu LeakyRelu Elu Selu Celu HardSigmoid
 * HardSwish ThresholdedRelu Mish Gelu Swish, and the bool-valued Not IsNaN
 * IsInf.
 *
 * float32 Sqrt Exp Log Erf Tanh Sigmoid Softplus Mish Elu Selu Celu use the
 * vectorised kernels of kernels/elementwise_math.h; the rest of float, and
 * double, use libm (expf for float). float16 and bfloat16 go through float32
 * in small blocks. Outputs take over a dying input's buffer when they can
 * (the kernels work in place). */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. Without
 * FP-trap semantics (kiln enables no traps) floor and ceil become vector
 * instructions too; results are unchanged. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")
#endif
#include <math.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"
#include "ops/op.h"

typedef enum {
    U_ABS, U_NEG, U_SIGN, U_RELU, /* these four also take integers */
    U_RECIP, U_FLOOR, U_CEIL, U_ROUND, U_SQRT, U_EXP, U_LOG, U_ERF, U_TANH, U_SIGMOID,
    U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH,
    U_SOFTSIGN, U_SOFTPLUS, U_LEAKY, U_ELU, U_SELU, U_CELU, U_HSIGMOID, U_HSWISH, U_THRELU, U_MISH,
    U_GELU, U_GELU_TANH, U_SWISH,
    U_NOT, U_BITNOT, U_ISNAN, U_ISINF
} un_kind;

typedef struct un_job {
    un_kind kind;
    kiln_dtype dt;
    const void *x;
    void *y;
    float alpha, beta, gamma;
    bool neg_inf, pos_inf;
} un_job;

#define UN_SQRT1_2 0.70710678118654752440   /* 1/sqrt(2), Gelu */
#define UN_SQRT2_PI 0.79788456080286535588  /* sqrt(2/pi), Gelu's tanh form */
#define UN_CLAMP01(v) ((v) < 0 ? (un_elem)0 : (v) > 1 ? (un_elem)1 : (v))

#define FN_F(fn) fn##f
#define FN_D(fn) fn

#define UN_LOOP(EXPR)                       \
    for (size_t i = 0; i < n; i++) {        \
        un_elem x = xs[i];                  \
        ys[i] = (un_elem)(EXPR);            \
    }                                       \
    break

/* Float kernels for type T with libm names made by F (expf or exp). */
#define UN_FLOAT_FN(NAME, T, F, VEC)                                                               \
    static void NAME(const un_job *j, const T *xs, T *ys, size_t n) {                             \
        typedef T un_elem;                                                                         \
        if (VEC(j, xs, ys, n))                                                               \
            return;                                                                                \
        const T al = (T)j->alpha, be = (T)j->beta, ga = (T)j->gamma;                               \
        (void)al, (void)be, (void)ga;                                                              \
        switch (j->kind) {                                                                         \
        case U_ABS: UN_LOOP(F(fabs)(x));                                                           \
        case U_NEG: UN_LOOP(-x);                                                                   \
        case U_SIGN: UN_LOOP(x > 0 ? (T)1 : x < 0 ? (T)-1 : x);                                    \
        case U_RELU: UN_LOOP(x < 0 ? (T)0 : x);                                                    \
        case U_RECIP: UN_LOOP((T)1 / x);                                                           \
        case U_FLOOR: UN_LOOP(F(floor)(x));                                                        \
        case U_CEIL: UN_LOOP(F(ceil)(x));                                                          \
        case U_ROUND: UN_LOOP(F(nearbyint)(x)); /* halves to even */                               \
        case U_SQRT: UN_LOOP(F(sqrt)(x));                                                          \
        case U_EXP: UN_LOOP(F(exp)(x));                                                            \
        case U_LOG: UN_LOOP(F(log)(x));                                                            \
        case U_ERF: UN_LOOP(F(erf)(x));                                                            \
        case U_TANH: UN_LOOP(F(tanh)(x));                                                          \
        case U_SIGMOID:                                                                            \
            for (size_t i = 0; i < n; i++) {                                                       \
                T x = xs[i];                                                                       \
                if (x >= 0) {                                                                      \
                    ys[i] = (T)1 / ((T)1 + F(exp)(-x));                                            \
                } else {                                                                           \
                    T e = F(exp)(x);                                                               \
                    ys[i] = e / ((T)1 + e);                                                        \
                }                                                                                  \
            }                                                                                      \
            break;                                                                                 \
        case U_SIN: UN_LOOP(F(sin)(x));                                                            \
        case U_COS: UN_LOOP(F(cos)(x));                                                            \
        case U_TAN: UN_LOOP(F(tan)(x));                                                            \
        case U_ASIN: UN_LOOP(F(asin)(x));                                                          \
        case U_ACOS: UN_LOOP(F(acos)(x));                                                          \
        case U_ATAN: UN_LOOP(F(atan)(x));                                                          \
        case U_SINH: UN_LOOP(F(sinh)(x));                                                          \
        case U_COSH: UN_LOOP(F(cosh)(x));                                                          \
        case U_ASINH: UN_LOOP(F(asinh)(x));                                                        \
        case U_ACOSH: UN_LOOP(F(acosh)(x));                                                        \
        case U_ATANH: UN_LOOP(F(atanh)(x));                                                        \
        case U_SOFTSIGN: UN_LOOP(x / ((T)1 + F(fabs)(x)));                                         \
        /* log(1 + exp(x)) without overflow for large x */                                         \
        case U_SOFTPLUS: UN_LOOP(x > 0 ? x + F(log1p)(F(exp)(-x)) : F(log1p)(F(exp)(x)));         \
        case U_LEAKY: UN_LOOP(x < 0 ? al * x : x);                                                 \
        case U_ELU: UN_LOOP(x < 0 ? al * F(expm1)(x) : x);                                         \
        case U_SELU: UN_LOOP(x > 0 ? ga * x : ga * al * F(expm1)(x));                              \
        case U_CELU: UN_LOOP(x > 0 ? x : al * F(expm1)(x / al));                                   \
        /* clamps as selects (fmaxf/fminf are calls); NaN passes through */                       \
        case U_HSIGMOID: UN_LOOP(UN_CLAMP01(al * x + be));                                         \
        case U_HSWISH: UN_LOOP(x * UN_CLAMP01(x / (T)6 + (T)0.5));                                 \
        case U_THRELU: UN_LOOP(x > al ? x : (T)0);                                                 \
        case U_MISH:                                                                               \
            UN_LOOP(x * F(tanh)(x > 0 ? x + F(log1p)(F(exp)(-x)) : F(log1p)(F(exp)(x))));          \
        case U_GELU: UN_LOOP((T)0.5 * x * ((T)1 + F(erf)(x * (T)UN_SQRT1_2)));                     \
        case U_GELU_TANH:                                                                          \
            UN_LOOP((T)0.5 * x * ((T)1 + F(tanh)((T)UN_SQRT2_PI * (x + (T)0.044715 * x * x * x)))); \
        case U_SWISH:                                                                              \
            UN_LOOP(al * x >= 0 ? x / ((T)1 + F(exp)(-al * x)) : x * F(exp)(al * x) / ((T)1 + F(exp)(al * x))); \
        default: break;                                                                            \
        }                                                                                          \
    }

/* float32 exp/sigmoid/tanh/erf/log/softplus/mish/elu/selu/celu use the
 * vectorised kernels;
 * double keeps libm. */
static bool un_vec_f32(const un_job *j, const float *xs, float *ys, size_t n) {
    switch (j->kind) {
    case U_SQRT: kiln_vsqrt_f32(xs, ys, n); return true;
    case U_EXP: kiln_vexp_f32(xs, ys, n); return true;
    case U_SIGMOID: kiln_vsigmoid_f32(xs, ys, n); return true;
    case U_TANH: kiln_vtanh_f32(xs, ys, n); return true;
    case U_ERF: kiln_verf_f32(xs, ys, n); return true;
    case U_LOG: kiln_vlog_f32(xs, ys, n); return true;
    case U_SOFTPLUS: kiln_vsoftplus_f32(xs, ys, n); return true;
    case U_MISH: kiln_vmish_f32(xs, ys, n); return true;
    case U_GELU:
    case U_GELU_TANH:
    case U_SWISH: {
        /* erf / tanh / sigmoid of a block into t, then the product (in place ok) */
        float t[256], al = j->alpha;
        for (size_t k = 0; k < n; k += 256) {
            size_t m = n - k < 256 ? n - k : 256;
            const float *x = xs + k;
            float *y = ys + k;
            if (j->kind == U_GELU) {
                for (size_t i = 0; i < m; i++)
                    t[i] = x[i] * (float)UN_SQRT1_2;
                kiln_verf_f32(t, t, m);
            } else if (j->kind == U_GELU_TANH) {
                for (size_t i = 0; i < m; i++)
                    t[i] = (float)UN_SQRT2_PI * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
                kiln_vtanh_f32(t, t, m);
            } else {
                for (size_t i = 0; i < m; i++)
                    t[i] = al * x[i];
                kiln_vsigmoid_f32(t, t, m);
                for (size_t i = 0; i < m; i++)
                    y[i] = x[i] * t[i];
                continue;
            }
            for (size_t i = 0; i < m; i++)
                y[i] = 0.5f * x[i] * (1.0f + t[i]);
        }
        return true;
    }
    case U_ELU:
    case U_SELU:
    case U_CELU: {
        /* expm1 of a block into t, then the select (works in place) */
        float t[256], al = j->alpha, ga = j->gamma, inv = j->kind == U_CELU ? 1.0f / al : 1.0f;
        for (size_t k = 0; k < n; k += 256) {
            size_t m = n - k < 256 ? n - k : 256;
            const float *x = xs + k;
            float *y = ys + k;
            for (size_t i = 0; i < m; i++)
                t[i] = x[i] * inv;
            kiln_vexpm1_f32(t, t, m);
            if (j->kind == U_ELU)
                for (size_t i = 0; i < m; i++)
                    y[i] = x[i] < 0 ? al * t[i] : x[i];
            else if (j->kind == U_SELU)
                for (size_t i = 0; i < m; i++)
                    y[i] = x[i] > 0 ? ga * x[i] : ga * al * t[i];
            else
                for (size_t i = 0; i < m; i++)
                    y[i] = x[i] > 0 ? x[i] : al * t[i];
        }
        return true;
    }
    default: return false;
    }
}
static bool un_vec_f64(const un_job *j, const double *xs, double *ys, size_t n) {
    (void)j, (void)xs, (void)ys, (void)n;
    return false;
}

UN_FLOAT_FN(un_f32, float, FN_F, un_vec_f32)
UN_FLOAT_FN(un_f64, double, FN_D, un_vec_f64)

/* Integer kernels (Abs Neg Sign Relu); negation wraps through the unsigned
 * type so the most negative value stays defined. */
#define UN_INT_FN(NAME, T, UT)                                                \
    static void NAME(const un_job *j, const T *xs, T *ys, size_t n) {        \
        typedef T un_elem;                                                    \
        switch (j->kind) {                                                    \
        case U_ABS: UN_LOOP(x < 0 ? (T)(UT)(0u - (UT)x) : x);                 \
        case U_NEG: UN_LOOP((T)(UT)(0u - (UT)x));                             \
        case U_SIGN: UN_LOOP(x > 0 ? 1 : x < 0 ? -1 : 0);                     \
        case U_RELU: UN_LOOP(x < 0 ? 0 : x);                                  \
        default: break;                                                       \
        }                                                                     \
    }

/* Comparisons against 0 are always false for unsigned types; that is the
 * intent, so the warning is silenced for these kernels. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
UN_INT_FN(un_i8, int8_t, uint8_t)
UN_INT_FN(un_i16, int16_t, uint16_t)
UN_INT_FN(un_i32, int32_t, uint32_t)
UN_INT_FN(un_i64, int64_t, uint64_t)
UN_INT_FN(un_u8, uint8_t, uint8_t)
UN_INT_FN(un_u16, uint16_t, uint16_t)
UN_INT_FN(un_u32, uint32_t, uint32_t)
UN_INT_FN(un_u64, uint64_t, uint64_t)
#pragma GCC diagnostic pop

KILN_CLONES static void un_range(void *arg, size_t begin, size_t end) {
    const un_job *j = arg;
    size_t n = end - begin;
#define UN_CALL(FN, T) FN(j, (const T *)j->x + begin, (T *)j->y + begin, n)
    switch (j->kind) {
    case U_NOT: {
        const uint8_t *x = (const uint8_t *)j->x + begin;
        uint8_t *y = (uint8_t *)j->y + begin;
        for (size_t i = 0; i < n; i++)
            y[i] = !x[i];
        return;
    }
    case U_BITNOT: {
        /* every integer width: complement the bytes */
        size_t es = kiln_dtype_size(j->dt);
        const uint8_t *x = (const uint8_t *)j->x + begin * es;
        uint8_t *y = (uint8_t *)j->y + begin * es;
        for (size_t i = 0; i < n * es; i++)
            y[i] = (uint8_t)~x[i];
        return;
    }
    case U_ISNAN:
    case U_ISINF: {
        /* IsNaN/IsInf write bool; float16/bfloat16 are widened first */
        uint8_t *y = (uint8_t *)j->y + begin;
        bool isinf = j->kind == U_ISINF, ng = j->neg_inf, ps = j->pos_inf;
        for (size_t i = 0; i < n; i++) {
            double v;
            if (j->dt == KILN_DTYPE_FLOAT)
                v = ((const float *)j->x)[begin + i];
            else if (j->dt == KILN_DTYPE_DOUBLE)
                v = ((const double *)j->x)[begin + i];
            else if (j->dt == KILN_DTYPE_FLOAT16)
                v = kiln_half_to_float(((const uint16_t *)j->x)[begin + i]);
            else
                v = kiln_bf16_to_float(((const uint16_t *)j->x)[begin + i]);
            y[i] = isinf ? (uint8_t)((ps && v == INFINITY) || (ng && v == -INFINITY)) : (uint8_t)isnan(v);
        }
        return;
    }
    default: break;
    }
    switch (j->dt) {
    case KILN_DTYPE_FLOAT: UN_CALL(un_f32, float); break;
    case KILN_DTYPE_DOUBLE: UN_CALL(un_f64, double); break;
    case KILN_DTYPE_INT8: UN_CALL(un_i8, int8_t); break;
    case KILN_DTYPE_INT16: UN_CALL(un_i16, int16_t); break;
    case KILN_DTYPE_INT32: UN_CALL(un_i32, int32_t); break;
    case KILN_DTYPE_INT64: UN_CALL(un_i64, int64_t); break;
    case KILN_DTYPE_UINT8: UN_CALL(un_u8, uint8_t); break;
    case KILN_DTYPE_UINT16: UN_CALL(un_u16, uint16_t); break;
    case KILN_DTYPE_UINT32: UN_CALL(un_u32, uint32_t); break;
    case KILN_DTYPE_UINT64: UN_CALL(un_u64, uint64_t); break;
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: {
        float buf[256];
        const uint16_t *x = (const uint16_t *)j->x + begin;
        uint16_t *y = (uint16_t *)j->y + begin;
        for (size_t k = 0; k < n; k += 256) {
            size_t m = n - k < 256 ? n - k : 256;
            kiln_ew_half_to_float(j->dt, x + k, buf, m);
            un_f32(j, buf, buf, m);
            kiln_ew_float_to_half(j->dt, buf, y + k, m);
        }
        break;
    }
    default: break;
    }
#undef UN_CALL
}

static bool dt_is_float(kiln_dtype d) {
    return d == KILN_DTYPE_FLOAT || d == KILN_DTYPE_DOUBLE || d == KILN_DTYPE_FLOAT16 || d == KILN_DTYPE_BFLOAT16;
}

static bool dt_is_int(kiln_dtype d) {
    switch (d) {
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        return true;
    default: return false;
    }
}

static kiln_status unary_exec(kiln_op_ctx *c, un_kind kind) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    const kiln_node *nd = c->node;
    bool ok;
    kiln_dtype odt = x->dtype;
    if (kind == U_NOT)
        ok = x->dtype == KILN_DTYPE_BOOL;
    else if (kind == U_BITNOT)
        ok = dt_is_int(x->dtype);
    else if (kind == U_ISNAN || kind == U_ISINF) {
        ok = dt_is_float(x->dtype);
        odt = KILN_DTYPE_BOOL;
    } else if (kind <= U_RELU)
        ok = dt_is_float(x->dtype) || dt_is_int(x->dtype);
    else
        ok = dt_is_float(x->dtype);
    if (!ok)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "input 'X' has element type %s, which this operator does not take",
                         kiln_dtype_name(x->dtype));
    un_job j = {.kind = kind, .dt = x->dtype, .x = x->data};
    switch (kind) {
    case U_LEAKY: j.alpha = kiln_attr_float(nd, "alpha", 0.01f); break;
    case U_ELU: case U_CELU: case U_THRELU: case U_SWISH: j.alpha = kiln_attr_float(nd, "alpha", 1.0f); break;
    case U_SELU:
        j.alpha = kiln_attr_float(nd, "alpha", 1.67326319217681884765625f);
        j.gamma = kiln_attr_float(nd, "gamma", 1.05070102214813232421875f);
        break;
    case U_HSIGMOID:
        j.alpha = kiln_attr_float(nd, "alpha", 0.2f);
        j.beta = kiln_attr_float(nd, "beta", 0.5f);
        break;
    case U_ISINF:
        j.neg_inf = kiln_attr_int(nd, "detect_negative", 1) != 0;
        j.pos_inf = kiln_attr_int(nd, "detect_positive", 1) != 0;
        break;
    default: break;
    }
    if (kind == U_CELU && j.alpha == 0)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'alpha' of Celu must not be 0");
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, odt, x->rank, x->dims, &y));
    if (x->numel == 0)
        return KILN_OK;
    j.y = y->data;
    size_t grain = kind <= U_CEIL || kind == U_NOT || kind == U_BITNOT || kind == U_LEAKY || kind == U_THRELU ||
                           kind == U_HSIGMOID || kind == U_HSWISH || kind == U_ISNAN || kind == U_ISINF
                       ? KILN_EW_GRAIN_CHEAP
                       : KILN_EW_GRAIN_MATH;
    kiln_parallel_for(c, (size_t)x->numel, grain, un_range, &j);
    return KILN_OK;
}

#define UN_OP(fn, KIND) \
    static kiln_status fn(kiln_op_ctx *c) { return unary_exec(c, KIND); }
UN_OP(abs_exec, U_ABS)
UN_OP(neg_exec, U_NEG)
UN_OP(sign_exec, U_SIGN)
UN_OP(relu_exec, U_RELU)
UN_OP(recip_exec, U_RECIP)
UN_OP(floor_exec, U_FLOOR)
UN_OP(ceil_exec, U_CEIL)
UN_OP(round_exec, U_ROUND)
UN_OP(sqrt_exec, U_SQRT)
UN_OP(exp_exec, U_EXP)
UN_OP(log_exec, U_LOG)
UN_OP(erf_exec, U_ERF)
UN_OP(tanh_exec, U_TANH)
UN_OP(sigmoid_exec, U_SIGMOID)
UN_OP(sin_exec, U_SIN)
UN_OP(cos_exec, U_COS)
UN_OP(tan_exec, U_TAN)
UN_OP(asin_exec, U_ASIN)
UN_OP(acos_exec, U_ACOS)
UN_OP(atan_exec, U_ATAN)
UN_OP(sinh_exec, U_SINH)
UN_OP(cosh_exec, U_COSH)
UN_OP(asinh_exec, U_ASINH)
UN_OP(acosh_exec, U_ACOSH)
UN_OP(atanh_exec, U_ATANH)
UN_OP(softsign_exec, U_SOFTSIGN)
UN_OP(softplus_exec, U_SOFTPLUS)
UN_OP(leaky_exec, U_LEAKY)
UN_OP(elu_exec, U_ELU)
UN_OP(selu_exec, U_SELU)
UN_OP(celu_exec, U_CELU)
UN_OP(hsigmoid_exec, U_HSIGMOID)
UN_OP(hswish_exec, U_HSWISH)
UN_OP(threlu_exec, U_THRELU)
UN_OP(mish_exec, U_MISH)
UN_OP(swish_exec, U_SWISH)

static kiln_status gelu_exec(kiln_op_ctx *c) {
    const char *ap = kiln_attr_string(c->node, "approximate", "none");
    if (strcmp(ap, "none") && strcmp(ap, "tanh"))
        return kiln_fail(KILN_ERR_INVALID, "attribute 'approximate' must be \"none\" or \"tanh\", is \"%s\"", ap);
    return unary_exec(c, strcmp(ap, "tanh") ? U_GELU : U_GELU_TANH);
}
UN_OP(not_exec, U_NOT)
UN_OP(bitnot_exec, U_BITNOT)
UN_OP(isnan_exec, U_ISNAN)
UN_OP(isinf_exec, U_ISINF)

/* Opset 1 versions of Abs...Relu, LeakyRelu, Elu, Selu, HardSigmoid carried
 * the legacy `consumed_inputs` attribute; opset 6 dropped it and is the first
 * one served. Later versions only widened the type sets (bfloat16 in 13,
 * integers for Relu in 14), which every entry here accepts. */
static const kiln_op_desc ops[] = {
    {"", "Abs", 6, 0, abs_exec, kiln_infer_same},
    {"", "Neg", 6, 0, neg_exec, kiln_infer_same},
    {"", "Sign", 9, 0, sign_exec, kiln_infer_same},
    {"", "Relu", 6, 0, relu_exec, kiln_infer_same},
    {"", "Reciprocal", 6, 0, recip_exec, kiln_infer_same},
    {"", "Floor", 6, 0, floor_exec, kiln_infer_same},
    {"", "Ceil", 6, 0, ceil_exec, kiln_infer_same},
    {"", "Round", 11, 0, round_exec, kiln_infer_same},
    {"", "Sqrt", 6, 0, sqrt_exec, kiln_infer_same},
    {"", "Exp", 6, 0, exp_exec, kiln_infer_same},
    {"", "Log", 6, 0, log_exec, kiln_infer_same},
    {"", "Erf", 9, 0, erf_exec, kiln_infer_same},
    {"", "Tanh", 6, 0, tanh_exec, kiln_infer_same},
    {"", "Sigmoid", 6, 0, sigmoid_exec, kiln_infer_same},
    {"", "Sin", 7, 0, sin_exec, kiln_infer_same},
    {"", "Cos", 7, 0, cos_exec, kiln_infer_same},
    {"", "Tan", 7, 0, tan_exec, kiln_infer_same},
    {"", "Asin", 7, 0, asin_exec, kiln_infer_same},
    {"", "Acos", 7, 0, acos_exec, kiln_infer_same},
    {"", "Atan", 7, 0, atan_exec, kiln_infer_same},
    {"", "Sinh", 9, 0, sinh_exec, kiln_infer_same},
    {"", "Cosh", 9, 0, cosh_exec, kiln_infer_same},
    {"", "Asinh", 9, 0, asinh_exec, kiln_infer_same},
    {"", "Acosh", 9, 0, acosh_exec, kiln_infer_same},
    {"", "Atanh", 9, 0, atanh_exec, kiln_infer_same},
    {"", "Softsign", 1, 0, softsign_exec, kiln_infer_same},
    {"", "Softplus", 1, 0, softplus_exec, kiln_infer_same},
    {"", "LeakyRelu", 6, 0, leaky_exec, kiln_infer_same},
    {"", "Elu", 6, 0, elu_exec, kiln_infer_same},
    {"", "Selu", 6, 0, selu_exec, kiln_infer_same},
    {"", "Celu", 12, 0, celu_exec, kiln_infer_same},
    {"", "HardSigmoid", 6, 0, hsigmoid_exec, kiln_infer_same},
    {"", "HardSwish", 14, 0, hswish_exec, kiln_infer_same},
    {"", "ThresholdedRelu", 10, 0, threlu_exec, kiln_infer_same},
    {"", "Mish", 18, 0, mish_exec, kiln_infer_same},
    {"", "Gelu", 20, 0, gelu_exec, kiln_infer_same},
    {"", "Swish", 24, 0, swish_exec, kiln_infer_same},
    {"", "Not", 1, 0, not_exec, kiln_infer_same},
    {"", "BitwiseNot", 18, 0, bitnot_exec, kiln_infer_same},
    {"", "IsNaN", 9, 0, isnan_exec, kiln_infer_same_bool},
    {"", "IsInf", 10, 0, isinf_exec, kiln_infer_same_bool},
};
KILN_OP_FAMILY(unary, ops);
