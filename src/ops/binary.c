/* Two-input broadcasting operators other than Add/Sub/Mul/Div: Pow, Mod,
 * the comparisons (Equal Less Greater LessOrEqual GreaterOrEqual, bool out),
 * And Or Xor, BitShift (unsigned; signed too from opset 28), BitwiseAnd
 * BitwiseOr BitwiseXor and PRelu.
 *
 * float16/bfloat16 inputs are widened to float32 scratch copies, computed on,
 * and narrowed back; every other type runs on its own data through the
 * row walker of kernels/elementwise.h. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <math.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"
#include "ops/op.h"

typedef enum {
    B_POW, B_MOD, B_EQ, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_XOR, B_SHL, B_SHR, B_PRELU, B_BAND, B_BOR, B_BXOR
} bin_kind;

typedef struct bin_job {
    const kiln_ew_part *p;
    const void *x, *y;
    void *z;
    kiln_dtype xt, yt;
    bin_kind kind;
    bool fmod;
} bin_job;

/* float -> integer conversions that stay defined for NaN and out-of-range
 * values (C leaves those undefined). */
static inline int64_t sat_i64(double v) {
    if (!(v == v))
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}
static inline int32_t sat_i32(double v) {
    if (!(v == v))
        return 0;
    if (v >= 2147483647.0)
        return INT32_MAX;
    if (v <= -2147483648.0)
        return INT32_MIN;
    return (int32_t)v;
}

/* Integer power with wrapping; negative exponents give the integer part of
 * the real result (0 unless the base is 1 or -1). */
static inline int64_t ipow(int64_t a, int64_t e) {
    if (e < 0)
        return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    uint64_t k = (uint64_t)e;
    while (k) {
        if (k & 1)
            r *= base;
        base *= base;
        k >>= 1;
    }
    return (int64_t)r;
}
static inline int64_t exp_i64(uint64_t e) { return e > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)e; }

#define ROWS(TA, TB, TZ, EXPR) KILN_EW_BIN_ROWS(j->p, begin, end, TA, j->x, TB, j->y, TZ, j->z, EXPR)

/* Calls M(T, ...) with the C type of a numeric dtype (bool as uint8_t). */
#define EW_NUM_SWITCH(dt, M, ...)                                  \
    switch (dt) {                                                  \
    case KILN_DTYPE_FLOAT: M(float, __VA_ARGS__); break;           \
    case KILN_DTYPE_DOUBLE: M(double, __VA_ARGS__); break;         \
    case KILN_DTYPE_INT8: M(int8_t, __VA_ARGS__); break;           \
    case KILN_DTYPE_INT16: M(int16_t, __VA_ARGS__); break;         \
    case KILN_DTYPE_INT32: M(int32_t, __VA_ARGS__); break;         \
    case KILN_DTYPE_INT64: M(int64_t, __VA_ARGS__); break;         \
    case KILN_DTYPE_UINT8: M(uint8_t, __VA_ARGS__); break;         \
    case KILN_DTYPE_UINT16: M(uint16_t, __VA_ARGS__); break;       \
    case KILN_DTYPE_UINT32: M(uint32_t, __VA_ARGS__); break;       \
    case KILN_DTYPE_UINT64: M(uint64_t, __VA_ARGS__); break;       \
    case KILN_DTYPE_BOOL: M(uint8_t, __VA_ARGS__); break;          \
    default: break;                                                \
    }

/* ---- Pow ---- */

#define POW_FLOAT_BASE(TB, TA) ROWS(TA, TB, TA, pow((double)a, (double)c))
#define POW_INT_BASE(TB, TA, SAT)                                                                  \
    do {                                                                                           \
        if (j->yt == KILN_DTYPE_FLOAT || j->yt == KILN_DTYPE_DOUBLE)                               \
            ROWS(TA, TB, TA, SAT(pow((double)a, (double)c)));                                      \
        else if (j->yt == KILN_DTYPE_UINT64)                                                       \
            ROWS(TA, TB, TA, ipow(a, exp_i64((uint64_t)c)));                                       \
        else                                                                                       \
            ROWS(TA, TB, TA, ipow(a, (int64_t)c));                                                 \
    } while (0)

static void pow_range(const bin_job *j, size_t begin, size_t end) {
    switch (j->xt) {
    case KILN_DTYPE_FLOAT:
        if (j->yt == KILN_DTYPE_FLOAT)
            ROWS(float, float, float, powf(a, c));
        else
            EW_NUM_SWITCH(j->yt, POW_FLOAT_BASE, float)
        break;
    case KILN_DTYPE_DOUBLE: EW_NUM_SWITCH(j->yt, POW_FLOAT_BASE, double) break;
    case KILN_DTYPE_INT32: EW_NUM_SWITCH(j->yt, POW_INT_BASE, int32_t, sat_i32) break;
    case KILN_DTYPE_INT64: EW_NUM_SWITCH(j->yt, POW_INT_BASE, int64_t, sat_i64) break;
    default: break;
    }
}

/* Pow with one float exponent that has a cheaper exact form (x^2 is x*x,
 * x^0.5 is sqrt with pow's answers for -0 and -inf). */
typedef struct pow_scalar_job {
    const void *x;
    void *z;
    bool dbl;
    int form; /* 0: x^2, 1: x^3, 2: x^0.5, 3: x^-1, 4: x^1 */
} pow_scalar_job;

#define POW_SCALAR(T, SQRT)                                                        \
    do {                                                                           \
        const T *x = (const T *)j->x;                                              \
        T *z = (T *)j->z;                                                          \
        switch (j->form) {                                                         \
        case 0: for (size_t i = begin; i < end; i++) z[i] = x[i] * x[i]; break;    \
        case 1: for (size_t i = begin; i < end; i++) z[i] = x[i] * x[i] * x[i]; break; \
        case 2:                                                                    \
            for (size_t i = begin; i < end; i++)                                   \
                z[i] = x[i] == -(T)INFINITY ? (T)INFINITY : SQRT(x[i]) + (T)0;     \
            break;                                                                 \
        case 3: for (size_t i = begin; i < end; i++) z[i] = (T)1 / x[i]; break;    \
        default: for (size_t i = begin; i < end; i++) z[i] = x[i]; break;          \
        }                                                                          \
    } while (0)

static void pow_scalar_range(void *arg, size_t begin, size_t end) {
    const pow_scalar_job *j = arg;
    if (!j->dbl && j->form == 2) {
        /* vector sqrt, then pow's answers: +0 for -0, +inf for -inf */
        float t[256]; /* a copy of x: z may be x (in place) */
        for (size_t k = begin; k < end; k += 256) {
            size_t m = end - k < 256 ? end - k : 256;
            float *z = (float *)j->z + k;
            memcpy(t, (const float *)j->x + k, m * sizeof(float));
            kiln_vsqrt_f32(t, z, m);
            for (size_t i = 0; i < m; i++) {
                float v = z[i] + 0.0f;
                z[i] = t[i] == -INFINITY ? INFINITY : v;
            }
        }
        return;
    }
    if (j->dbl)
        POW_SCALAR(double, sqrt);
    else
        POW_SCALAR(float, sqrtf);
}

/* Returns true (and runs) when Pow(x, scalar) has a special form. */
static bool pow_scalar(kiln_op_ctx *c, const kiln_tensor *x, const kiln_tensor *y, kiln_status *st) {
    if (!(x->dtype == KILN_DTYPE_FLOAT || x->dtype == KILN_DTYPE_DOUBLE) || y->numel != 1 || y->rank > x->rank)
        return false;
    if (!(y->dtype == KILN_DTYPE_FLOAT || y->dtype == KILN_DTYPE_DOUBLE || y->dtype == KILN_DTYPE_INT32 ||
          y->dtype == KILN_DTYPE_INT64))
        return false;
    double e = kiln_tensor_get_f64(y, 0);
    int form = e == 2 ? 0 : e == 3 ? 1 : e == 0.5 ? 2 : e == -1 ? 3 : e == 1 ? 4 : -1;
    if (form < 0)
        return false;
    kiln_tensor *z;
    *st = kiln_op_output_reuse(c, 0, 0, x->dtype, x->rank, x->dims, &z);
    if (*st != KILN_OK || x->numel == 0)
        return true;
    pow_scalar_job j = {x->data, z->data, x->dtype == KILN_DTYPE_DOUBLE, form};
    kiln_parallel_for(c, (size_t)x->numel, KILN_EW_GRAIN_CHEAP, pow_scalar_range, &j);
    return true;
}

/* ---- Mod ---- */

/* fmod=0: the result takes the divisor's sign (Python's %); fmod=1: the
 * dividend's sign (C's fmod). Integer division by 0 gives 0 (unspecified by
 * ONNX; undefined in C), as does x % -1 (avoids INT_MIN % -1). */
#define MOD_SINT(T, _)                                                                             \
    if (j->fmod)                                                                                   \
        ROWS(T, T, T, (c == 0 || c == -1) ? 0 : a % c);                                            \
    else                                                                                           \
        ROWS(T, T, T, (c == 0 || c == -1) ? 0 : (a % c != 0 && ((a % c < 0) != (c < 0))) ? a % c + c : a % c)
#define MOD_UINT(T, _) ROWS(T, T, T, c == 0 ? 0 : a % c)
#define MOD_FLT(T, F)                                                                              \
    if (j->fmod)                                                                                   \
        ROWS(T, T, T, F(a, c));                                                                    \
    else                                                                                           \
        ROWS(T, T, T, (F(a, c) != 0 && ((F(a, c) < 0) != (c < 0))) ? F(a, c) + c : F(a, c))

static void mod_range(const bin_job *j, size_t begin, size_t end) {
    switch (j->xt) {
    case KILN_DTYPE_FLOAT: MOD_FLT(float, fmodf); break;
    case KILN_DTYPE_DOUBLE: MOD_FLT(double, fmod); break;
    case KILN_DTYPE_INT8: MOD_SINT(int8_t, 0); break;
    case KILN_DTYPE_INT16: MOD_SINT(int16_t, 0); break;
    case KILN_DTYPE_INT32: MOD_SINT(int32_t, 0); break;
    case KILN_DTYPE_INT64: MOD_SINT(int64_t, 0); break;
    case KILN_DTYPE_UINT8: MOD_UINT(uint8_t, 0); break;
    case KILN_DTYPE_UINT16: MOD_UINT(uint16_t, 0); break;
    case KILN_DTYPE_UINT32: MOD_UINT(uint32_t, 0); break;
    case KILN_DTYPE_UINT64: MOD_UINT(uint64_t, 0); break;
    default: break;
    }
}

/* ---- comparisons, logic, shifts, PRelu ---- */

#define CMP_T(T, _)                                                        \
    switch (j->kind) {                                                     \
    case B_EQ: ROWS(T, T, uint8_t, a == c); break;                         \
    case B_LT: ROWS(T, T, uint8_t, a < c); break;                          \
    case B_GT: ROWS(T, T, uint8_t, a > c); break;                          \
    case B_LE: ROWS(T, T, uint8_t, a <= c); break;                         \
    case B_GE: ROWS(T, T, uint8_t, a >= c); break;                         \
    default: break;                                                        \
    }

/* Shifting by a negative amount or by the type's width or more (undefined
 * in C) shifts every bit out: 0, or -1 for a negative value shifted right
 * (right shifts of signed values are arithmetic). */
#define SHIFT_T(T, _)                                                                          \
    if (j->kind == B_SHL)                                                                      \
        ROWS(T, T, T, c < 0 || c >= (T)(sizeof(T) * 8) ? 0 : (T)((uint64_t)a << c));          \
    else                                                                                       \
        ROWS(T, T, T, c < 0 || c >= (T)(sizeof(T) * 8) ? (a < 0 ? (T)-1 : 0) : (T)(a >> c));

#define BITWISE_T(T, _)                                                                        \
    switch (j->kind) {                                                                         \
    case B_BAND: ROWS(T, T, T, a & c); break;                                                  \
    case B_BOR: ROWS(T, T, T, a | c); break;                                                   \
    default: ROWS(T, T, T, a ^ c); break;                                                      \
    }

#define PRELU_FLT(T, _) ROWS(T, T, T, a < 0 ? a * c : a)
#define PRELU_INT(T, _) ROWS(T, T, T, a < 0 ? (T)((uint64_t)a * (uint64_t)c) : a)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
KILN_CLONES static void bin_range(void *arg, size_t begin, size_t end) {
    const bin_job *j = arg;
    switch (j->kind) {
    case B_POW: pow_range(j, begin, end); break;
    case B_MOD: mod_range(j, begin, end); break;
    case B_EQ: case B_LT: case B_GT: case B_LE: case B_GE: EW_NUM_SWITCH(j->xt, CMP_T, 0) break;
    case B_AND: ROWS(uint8_t, uint8_t, uint8_t, (a != 0) & (c != 0)); break;
    case B_OR: ROWS(uint8_t, uint8_t, uint8_t, (a != 0) | (c != 0)); break;
    case B_XOR: ROWS(uint8_t, uint8_t, uint8_t, (a != 0) ^ (c != 0)); break;
    case B_SHL:
    case B_SHR:
        switch (j->xt) {
        case KILN_DTYPE_UINT8: SHIFT_T(uint8_t, 0) break;
        case KILN_DTYPE_UINT16: SHIFT_T(uint16_t, 0) break;
        case KILN_DTYPE_UINT32: SHIFT_T(uint32_t, 0) break;
        case KILN_DTYPE_UINT64: SHIFT_T(uint64_t, 0) break;
        case KILN_DTYPE_INT8: SHIFT_T(int8_t, 0) break;
        case KILN_DTYPE_INT16: SHIFT_T(int16_t, 0) break;
        case KILN_DTYPE_INT32: SHIFT_T(int32_t, 0) break;
        case KILN_DTYPE_INT64: SHIFT_T(int64_t, 0) break;
        default: break;
        }
        break;
    case B_BAND:
    case B_BOR:
    case B_BXOR:
        switch (j->xt) {
        case KILN_DTYPE_INT8: case KILN_DTYPE_UINT8: BITWISE_T(uint8_t, 0) break;
        case KILN_DTYPE_INT16: case KILN_DTYPE_UINT16: BITWISE_T(uint16_t, 0) break;
        case KILN_DTYPE_INT32: case KILN_DTYPE_UINT32: BITWISE_T(uint32_t, 0) break;
        case KILN_DTYPE_INT64: case KILN_DTYPE_UINT64: BITWISE_T(uint64_t, 0) break;
        default: break;
        }
        break;
    case B_PRELU:
        switch (j->xt) {
        case KILN_DTYPE_FLOAT: PRELU_FLT(float, 0); break;
        case KILN_DTYPE_DOUBLE: PRELU_FLT(double, 0); break;
        case KILN_DTYPE_INT32: PRELU_INT(int32_t, 0); break;
        case KILN_DTYPE_INT64: PRELU_INT(int64_t, 0); break;
        case KILN_DTYPE_UINT32: PRELU_INT(uint32_t, 0); break;
        case KILN_DTYPE_UINT64: PRELU_INT(uint64_t, 0); break;
        default: break;
        }
        break;
    }
}
#pragma GCC diagnostic pop

/* ---- exec ---- */

static bool is_num(kiln_dtype d) {
    switch (d) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_DOUBLE: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        return true;
    default: return false;
    }
}

static bool is_sint(kiln_dtype d) {
    return d == KILN_DTYPE_INT8 || d == KILN_DTYPE_INT16 || d == KILN_DTYPE_INT32 || d == KILN_DTYPE_INT64;
}

static kiln_status bad_type(int i, kiln_dtype d) {
    return kiln_fail(KILN_ERR_UNSUPPORTED, "input %d has element type %s, which this operator does not take", i,
                     kiln_dtype_name(d));
}

/* Checks the input types of `kind`; sets the output type. */
static kiln_status bin_types(kiln_op_ctx *c, bin_kind kind, kiln_dtype xt, kiln_dtype yt, kiln_dtype *zt) {
    *zt = xt;
    if (kind == B_POW) {
        /* Pow-12 lets base (T) and exponent (T1) differ; the result is T. */
        if (!(xt == KILN_DTYPE_FLOAT || xt == KILN_DTYPE_DOUBLE || xt == KILN_DTYPE_FLOAT16 ||
              xt == KILN_DTYPE_BFLOAT16 || xt == KILN_DTYPE_INT32 || xt == KILN_DTYPE_INT64))
            return bad_type(0, xt);
        if (!is_num(yt))
            return bad_type(1, yt);
        if (c->opset < 12 && xt != yt)
            return kiln_fail(KILN_ERR_INVALID, "Pow before opset 12 needs equal input types (got %s and %s)",
                             kiln_dtype_name(xt), kiln_dtype_name(yt));
        return KILN_OK;
    }
    if (xt != yt)
        return kiln_fail(KILN_ERR_INVALID, "inputs have different element types (%s and %s)", kiln_dtype_name(xt),
                         kiln_dtype_name(yt));
    switch (kind) {
    case B_MOD:
        if (!is_num(xt))
            return bad_type(0, xt);
        break;
    case B_EQ: case B_LT: case B_GT: case B_LE: case B_GE:
        *zt = KILN_DTYPE_BOOL;
        if (!is_num(xt) && !(xt == KILN_DTYPE_BOOL && kind == B_EQ))
            return bad_type(0, xt);
        break;
    case B_AND: case B_OR: case B_XOR:
        if (xt != KILN_DTYPE_BOOL)
            return bad_type(0, xt);
        break;
    case B_SHL: case B_SHR:
        if (!(xt == KILN_DTYPE_UINT8 || xt == KILN_DTYPE_UINT16 || xt == KILN_DTYPE_UINT32 || xt == KILN_DTYPE_UINT64) &&
            !(c->opset >= 28 && is_sint(xt)))
            return bad_type(0, xt);
        break;
    case B_BAND: case B_BOR: case B_BXOR:
        if (!is_sint(xt) && !(xt == KILN_DTYPE_UINT8 || xt == KILN_DTYPE_UINT16 || xt == KILN_DTYPE_UINT32 ||
                              xt == KILN_DTYPE_UINT64))
            return bad_type(0, xt);
        break;
    case B_PRELU:
        if (!(xt == KILN_DTYPE_FLOAT || xt == KILN_DTYPE_DOUBLE || kiln_ew_is_half(xt) || xt == KILN_DTYPE_INT32 ||
              xt == KILN_DTYPE_INT64 || xt == KILN_DTYPE_UINT32 || xt == KILN_DTYPE_UINT64))
            return bad_type(0, xt);
        break;
    default: break;
    }
    return KILN_OK;
}

/* Equal on strings (opset 19): byte-wise equality, broadcast. */
static kiln_status equal_strings(kiln_op_ctx *c, const kiln_tensor *x, const kiln_tensor *y) {
    kiln_bcast b;
    KILN_TRY(kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){x, y}));
    kiln_tensor *z;
    KILN_TRY(kiln_op_output(c, 0, KILN_DTYPE_BOOL, b.rank, b.dims, &z));
    const kiln_string *xs = x->data, *ys = y->data;
    uint8_t *zs = z->data;
    for (int64_t r = 0; r < b.n_rows; r++) {
        int64_t off[KILN_BCAST_MAX_IN];
        kiln_bcast_row(&b, r, off);
        for (int64_t i = 0; i < b.row_len; i++) {
            const kiln_string *a = &xs[off[0] + i * b.step[0]], *e = &ys[off[1] + i * b.step[1]];
            zs[r * b.row_len + i] = a->len == e->len && (!a->len || !memcmp(a->data, e->data, a->len));
        }
    }
    return KILN_OK;
}

static kiln_status bin_exec(kiln_op_ctx *c, bin_kind kind) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *y = c->in[1];
    if (kind == B_EQ && c->opset >= 19 && x->dtype == KILN_DTYPE_STRING && y->dtype == KILN_DTYPE_STRING)
        return equal_strings(c, x, y);
    kiln_dtype zt;
    KILN_TRY(bin_types(c, kind, x->dtype, y->dtype, &zt));
    bin_job j = {.kind = kind};
    if (kind == B_MOD) {
        int64_t f = kiln_attr_int(c->node, "fmod", 0);
        if (f != 0 && f != 1)
            return kiln_fail(KILN_ERR_INVALID, "attribute 'fmod' must be 0 or 1, got %lld", (long long)f);
        j.fmod = f == 1;
    }
    if (kind == B_SHL) {
        const char *dir = kiln_attr_string(c->node, "direction", NULL);
        if (!dir || (strcmp(dir, "LEFT") && strcmp(dir, "RIGHT")))
            return kiln_fail(KILN_ERR_INVALID, "attribute 'direction' must be \"LEFT\" or \"RIGHT\", got %s%s%s",
                             dir ? "\"" : "", dir ? dir : "nothing", dir ? "\"" : "");
        j.kind = strcmp(dir, "LEFT") ? B_SHR : B_SHL;
    }
    kiln_status pst;
    if (kind == B_POW && pow_scalar(c, x, y, &pst))
        return pst;
    kiln_tensor slope_view;
    if (kind == B_PRELU && c->opset < 7 && y->rank == 1 && y->numel > 1 && x->rank >= 2 &&
        y->dims[0] == x->dims[1]) {
        /* PRelu-6 exporters (Caffe2 semantics) give one slope per channel
         * (axis 1); view it as [C,1,...,1] for the broadcast below. */
        slope_view = *y;
        slope_view.rank = x->rank - 1;
        for (int d = 1; d < slope_view.rank; d++)
            slope_view.dims[d] = 1;
        y = &slope_view;
    }
    kiln_bcast b;
    KILN_TRY(kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){x, y}));
    if (kind == B_PRELU) {
        /* the slope broadcasts to X, never the other way */
        bool same = b.rank == x->rank;
        for (int d = 0; same && d < b.rank; d++)
            same = b.dims[d] == x->dims[d];
        if (!same) {
            char s1[256], s2[256];
            return kiln_fail(KILN_ERR_INVALID, "slope of shape %s does not broadcast to X of shape %s",
                             kiln_dims_str(y->rank, y->dims, s1, sizeof s1),
                             kiln_dims_str(x->rank, x->dims, s2, sizeof s2));
        }
    }
    kiln_tensor *z;
    size_t reuse = b.numel == x->numel ? 0 : 1;
    KILN_TRY(kiln_op_output_reuse(c, 0, reuse, zt, b.rank, b.dims, &z));
    if (b.numel == 0)
        return KILN_OK;

    kiln_tensor wx = {0}, wy = {0}, wz = {0};
    kiln_status st = KILN_OK;
    j.x = x->data;
    j.y = y->data;
    j.z = z->data;
    j.xt = x->dtype;
    j.yt = y->dtype;
    if (kiln_ew_is_half(x->dtype)) {
        KILN_CHECK(st, kiln_ew_widen(x, &wx), done);
        j.x = wx.data;
        j.xt = KILN_DTYPE_FLOAT;
    }
    if (kiln_ew_is_half(y->dtype)) {
        KILN_CHECK(st, kiln_ew_widen(y, &wy), done);
        j.y = wy.data;
        j.yt = KILN_DTYPE_FLOAT;
    }
    if (kiln_ew_is_half(zt)) {
        KILN_CHECK(st, kiln_ew_float_scratch(b.rank, b.dims, &wz), done);
        j.z = wz.data;
    }
    kiln_ew_part part;
    kiln_ew_part_init(&part, &b);
    j.p = &part;
    size_t grain = kiln_ew_part_grain(&part, kind == B_POW ? KILN_EW_GRAIN_MATH : KILN_EW_GRAIN_CHEAP);
    kiln_parallel_for(c, kiln_ew_part_count(&part), grain, bin_range, &j);
    if (kiln_ew_is_half(zt))
        kiln_ew_float_to_half(zt, wz.data, z->data, (size_t)b.numel);
done:
    kiln_tensor_clear(&wx);
    kiln_tensor_clear(&wy);
    kiln_tensor_clear(&wz);
    return st;
}

#define BIN_OP(fn, KIND) \
    static kiln_status fn(kiln_op_ctx *c) { return bin_exec(c, KIND); }
BIN_OP(pow_exec, B_POW)
BIN_OP(mod_exec, B_MOD)
BIN_OP(equal_exec, B_EQ)
BIN_OP(less_exec, B_LT)
BIN_OP(greater_exec, B_GT)
BIN_OP(less_equal_exec, B_LE)
BIN_OP(greater_equal_exec, B_GE)
BIN_OP(and_exec, B_AND)
BIN_OP(or_exec, B_OR)
BIN_OP(xor_exec, B_XOR)
BIN_OP(bitshift_exec, B_SHL)
BIN_OP(prelu_exec, B_PRELU)
BIN_OP(bitand_exec, B_BAND)
BIN_OP(bitor_exec, B_BOR)
BIN_OP(bitxor_exec, B_BXOR)

/* Equal on shape values: a dim is never negative, so it differs from the
 * -1 placeholder even when it is symbolic. */
static kiln_status equal_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_bcast_bool(x));
    kiln_shape_fact *o = &x->out[0];
    const kiln_shape_fact *a = kiln_infer_in(x, 0), *b = kiln_infer_in(x, 1);
    if (x->n_out < 1 || a->nval < 0 || b->nval < 0 || o->rank > 1)
        return KILN_OK;
    int n = a->nval > b->nval ? a->nval : b->nval;
    if ((a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1))
        return KILN_OK;
    for (int i = 0; i < n; i++) {
        const kiln_sdim *p = &a->val[a->nval == 1 ? 0 : i], *q = &b->val[b->nval == 1 ? 0 : i];
        if (kiln_sd_is_const(p) && kiln_sd_is_const(q))
            o->val[i] = kiln_sd_const(p->num == q->num);
        else if (kiln_sdim_eq(p, q))
            o->val[i] = kiln_sd_const(1);
        else if ((p->known && p->n > 0 && p->num > 0 && kiln_sd_is_const(q) && q->num < 0) ||
                 (q->known && q->n > 0 && q->num > 0 && kiln_sd_is_const(p) && p->num < 0))
            o->val[i] = kiln_sd_const(0);
        else
            o->val[i] = kiln_sd_unknown();
    }
    o->nval = n;
    return KILN_OK;
}

/* Opset 7 brought numpy broadcasting to all of these (opset 1 used the
 * `broadcast`/`axis` attributes). Later versions only widened type sets,
 * except Pow-12 (mixed base/exponent types), Equal-19 (strings) and
 * BitShift-28 (signed types), handled in bin_exec / bin_types. PRelu-6
 * already allowed a slope broadcast to X. */
static const kiln_op_desc ops[] = {
    {"", "Pow", 7, 0, pow_exec, kiln_infer_bcast_all},
    {"", "Mod", 10, 0, mod_exec, kiln_infer_bcast_all},
    {"", "Equal", 7, 0, equal_exec, equal_infer},
    {"", "Less", 7, 0, less_exec, kiln_infer_bcast_bool},
    {"", "Greater", 7, 0, greater_exec, kiln_infer_bcast_bool},
    {"", "LessOrEqual", 12, 0, less_equal_exec, kiln_infer_bcast_bool},
    {"", "GreaterOrEqual", 12, 0, greater_equal_exec, kiln_infer_bcast_bool},
    {"", "And", 7, 0, and_exec, kiln_infer_bcast_bool},
    {"", "Or", 7, 0, or_exec, kiln_infer_bcast_bool},
    {"", "Xor", 7, 0, xor_exec, kiln_infer_bcast_bool},
    {"", "BitShift", 11, 0, bitshift_exec, kiln_infer_bcast_all},
    {"", "BitwiseAnd", 18, 0, bitand_exec, kiln_infer_bcast_all},
    {"", "BitwiseOr", 18, 0, bitor_exec, kiln_infer_bcast_all},
    {"", "BitwiseXor", 18, 0, bitxor_exec, kiln_infer_bcast_all},
    {"", "PRelu", 1, 0, prelu_exec, kiln_infer_bcast_all},
};
KILN_OP_FAMILY(binary, ops);
