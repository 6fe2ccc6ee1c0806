/* Cast (target from the `to` attribute) and CastLike (target from input 1's
 * type): every numeric type, bool, float16, bfloat16, the float8, float6 and
 * float4 types, the 4- and 2-bit integers, and string.
 *
 * Float to integer conversions saturate and map NaN to 0 (C leaves
 * out-of-range conversions undefined; ONNX leaves them unspecified), except
 * to the 4- and 2-bit integers: there, as in ONNX's reference (and for every
 * integer source), the value truncated toward zero keeps its low bits
 * (-9 -> int4 7; NaN, inf -> 0), so 200 -> int4 -8 like 200 (int16) -> int8 -56.
 * float16/bfloat16 go through float32. To a float8 type values round to
 * nearest even and, with `saturate` (opset 19+, default 1), out-of-range
 * values and infinities clamp to the largest finite value; without it they
 * become inf (E5M2) or NaN (see kiln_float_to_minifloat). FLOAT8E8M0 takes
 * `round_mode` (opset 24+: up, down, nearest). The new types convert through
 * double, exactly (so double -> float8 rounds once). Numbers become strings
 * in their shortest round-trip form ("0.47892547"); strings parse with
 * strtod, which also reads "NaN", "INF", "+INF", "-INF" in any case. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "ops/op.h"

typedef struct cast_job {
    kiln_dtype from, to;
    const void *x;
    void *y;
    bool saturate;          /* to float8 */
    kiln_round_mode round;  /* to FLOAT8E8M0 */
} cast_job;

#define SAT_FN(NAME, TD, LO, HI)                          \
    static inline TD NAME(double v) {                     \
        if (!(v == v))                                    \
            return 0;                                     \
        if (v <= (double)(LO))                            \
            return (LO);                                  \
        if (v >= (double)(HI))                            \
            return (HI);                                  \
        return (TD)v;                                     \
    }
SAT_FN(sat_i8, int8_t, INT8_MIN, INT8_MAX)
SAT_FN(sat_i16, int16_t, INT16_MIN, INT16_MAX)
SAT_FN(sat_i32, int32_t, INT32_MIN, INT32_MAX)
SAT_FN(sat_i64, int64_t, INT64_MIN, INT64_MAX)
SAT_FN(sat_u8, uint8_t, 0, UINT8_MAX)
SAT_FN(sat_u16, uint16_t, 0, UINT16_MAX)
SAT_FN(sat_u32, uint32_t, 0, UINT32_MAX)
SAT_FN(sat_u64, uint64_t, 0, UINT64_MAX)

#define CLOOP(TS, TD, EXPR)                             \
    do {                                                \
        const TS *s = (const TS *)xs;                   \
        TD *d = (TD *)ys;                               \
        for (size_t i = 0; i < n; i++) {                \
            TS v = s[i];                                \
            d[i] = (TD)(EXPR);                          \
        }                                               \
    } while (0)

/* Source of an integer (or bool) type TS. */
#define FROM_INT(TS)                                                   \
    switch (to) {                                                      \
    case KILN_DTYPE_FLOAT: CLOOP(TS, float, v); break;                 \
    case KILN_DTYPE_DOUBLE: CLOOP(TS, double, v); break;               \
    case KILN_DTYPE_INT8: CLOOP(TS, int8_t, v); break;                 \
    case KILN_DTYPE_INT16: CLOOP(TS, int16_t, v); break;               \
    case KILN_DTYPE_INT32: CLOOP(TS, int32_t, v); break;               \
    case KILN_DTYPE_INT64: CLOOP(TS, int64_t, v); break;               \
    case KILN_DTYPE_UINT8: CLOOP(TS, uint8_t, v); break;               \
    case KILN_DTYPE_UINT16: CLOOP(TS, uint16_t, v); break;             \
    case KILN_DTYPE_UINT32: CLOOP(TS, uint32_t, v); break;             \
    case KILN_DTYPE_UINT64: CLOOP(TS, uint64_t, v); break;             \
    case KILN_DTYPE_BOOL: CLOOP(TS, uint8_t, v != 0); break;           \
    default: break;                                                    \
    }

/* Source of a floating type TS. */
#define FROM_FLT(TS)                                                   \
    switch (to) {                                                      \
    case KILN_DTYPE_FLOAT: CLOOP(TS, float, v); break;                 \
    case KILN_DTYPE_DOUBLE: CLOOP(TS, double, v); break;               \
    case KILN_DTYPE_INT8: CLOOP(TS, int8_t, sat_i8(v)); break;         \
    case KILN_DTYPE_INT16: CLOOP(TS, int16_t, sat_i16(v)); break;      \
    case KILN_DTYPE_INT32: CLOOP(TS, int32_t, sat_i32(v)); break;      \
    case KILN_DTYPE_INT64: CLOOP(TS, int64_t, sat_i64(v)); break;      \
    case KILN_DTYPE_UINT8: CLOOP(TS, uint8_t, sat_u8(v)); break;       \
    case KILN_DTYPE_UINT16: CLOOP(TS, uint16_t, sat_u16(v)); break;    \
    case KILN_DTYPE_UINT32: CLOOP(TS, uint32_t, sat_u32(v)); break;    \
    case KILN_DTYPE_UINT64: CLOOP(TS, uint64_t, sat_u64(v)); break;    \
    case KILN_DTYPE_BOOL: CLOOP(TS, uint8_t, v != 0); break;           \
    default: break;                                                    \
    }

/* Converts n elements between two non-half, non-string types. */
static void cast_plain(kiln_dtype from, kiln_dtype to, const void *xs, void *ys, size_t n) {
    switch (from) {
    case KILN_DTYPE_FLOAT: FROM_FLT(float) break;
    case KILN_DTYPE_DOUBLE: FROM_FLT(double) break;
    case KILN_DTYPE_INT8: FROM_INT(int8_t) break;
    case KILN_DTYPE_INT16: FROM_INT(int16_t) break;
    case KILN_DTYPE_INT32: FROM_INT(int32_t) break;
    case KILN_DTYPE_INT64: FROM_INT(int64_t) break;
    case KILN_DTYPE_UINT8: FROM_INT(uint8_t) break;
    case KILN_DTYPE_UINT16: FROM_INT(uint16_t) break;
    case KILN_DTYPE_UINT32: FROM_INT(uint32_t) break;
    case KILN_DTYPE_UINT64: FROM_INT(uint64_t) break;
    case KILN_DTYPE_BOOL: FROM_INT(uint8_t) break;
    default: break;
    }
}

static bool is_small_int(kiln_dtype d) {
    return d == KILN_DTYPE_INT4 || d == KILN_DTYPE_UINT4 || d == KILN_DTYPE_INT2 || d == KILN_DTYPE_UINT2;
}

/* The types opset 19 and later added (one byte per element, kiln.h). */
static bool is_new_type(kiln_dtype d) {
    return is_small_int(d) || kiln_is_minifloat(d);
}

/* The classic type a 4-/2-bit integer is stored as. */
static kiln_dtype small_int_storage(kiln_dtype d) {
    return d == KILN_DTYPE_INT4 || d == KILN_DTYPE_INT2 ? KILN_DTYPE_INT8 : KILN_DTYPE_UINT8;
}

static bool is_float_type(kiln_dtype d) {
    return d == KILN_DTYPE_FLOAT || d == KILN_DTYPE_DOUBLE || kiln_ew_is_half(d) || kiln_is_minifloat(d);
}

/* v's low bits as the 4-/2-bit integer `to` (sign-extended for INT4/INT2). */
static uint8_t wrap_small(kiln_dtype to, int64_t v) {
    int bits = to == KILN_DTYPE_INT4 || to == KILN_DTYPE_UINT4 ? 4 : 2;
    unsigned mask = (1u << bits) - 1, u = (unsigned)((uint64_t)v & mask);
    if ((to == KILN_DTYPE_INT4 || to == KILN_DTYPE_INT2) && (u >> (bits - 1)))
        u |= ~mask;
    return (uint8_t)u;
}

/* n elements of any castable non-string type to double. */
static void load_f64(kiln_dtype from, const void *xs, double *d, size_t n) {
    const uint8_t *b = xs;
    if (kiln_is_minifloat(from)) {
        for (size_t i = 0; i < n; i++)
            d[i] = kiln_minifloat_to_float(from, b[i]);
    } else if (kiln_ew_is_half(from)) {
        const uint16_t *h = xs;
        for (size_t i = 0; i < n; i++)
            d[i] = from == KILN_DTYPE_FLOAT16 ? kiln_half_to_float(h[i]) : kiln_bf16_to_float(h[i]);
    } else {
        cast_plain(is_small_int(from) ? small_int_storage(from) : from, KILN_DTYPE_DOUBLE, xs, d, n);
    }
}

/* n doubles to any castable non-string type. */
static void store_f64(const cast_job *j, const double *d, void *ys, size_t n) {
    uint8_t *b = ys;
    kiln_dtype to = j->to;
    if (to == KILN_DTYPE_FLOAT8E8M0) {
        for (size_t i = 0; i < n; i++)
            b[i] = kiln_float_to_e8m0((float)d[i], j->saturate, j->round);
    } else if (kiln_is_minifloat(to)) {
        for (size_t i = 0; i < n; i++)
            b[i] = kiln_float_to_minifloat(to, d[i], j->saturate);
    } else if (is_small_int(to)) {
        for (size_t i = 0; i < n; i++) {
            double v = d[i];
            /* truncated toward zero; NaN and values beyond int64 give 0 */
            int64_t w = v == v && fabs(v) < 9223372036854775808.0 ? (int64_t)v : 0;
            b[i] = wrap_small(to, w);
        }
    } else if (kiln_ew_is_half(to)) {
        uint16_t *h = ys;
        for (size_t i = 0; i < n; i++)
            h[i] = to == KILN_DTYPE_FLOAT16 ? kiln_float_to_half((float)d[i]) : kiln_float_to_bf16((float)d[i]);
    } else {
        cast_plain(KILN_DTYPE_DOUBLE, to, d, ys, n);
    }
}

/* Conversions from or to a new type, in blocks through double (or, from an
 * integer to a 4-/2-bit integer, through int64 so every bit counts). */
static void cast_new(const cast_job *j, const char *x, char *y, size_t n) {
    size_t sin = kiln_dtype_size(j->from), sout = kiln_dtype_size(j->to);
    bool via_int = is_small_int(j->to) && !is_float_type(j->from);
    double buf[256];
    int64_t ibuf[256];
    for (size_t k = 0; k < n; k += 256) {
        size_t m = n - k < 256 ? n - k : 256;
        if (via_int) {
            kiln_dtype f = is_small_int(j->from) ? small_int_storage(j->from) : j->from;
            cast_plain(f, KILN_DTYPE_INT64, x + k * sin, ibuf, m);
            for (size_t i = 0; i < m; i++)
                ((uint8_t *)y)[k + i] = wrap_small(j->to, ibuf[i]);
        } else {
            load_f64(j->from, x + k * sin, buf, m);
            store_f64(j, buf, y + k * sout, m);
        }
    }
}

static void cast_range(void *arg, size_t begin, size_t end) {
    const cast_job *j = arg;
    size_t sin = kiln_dtype_size(j->from), sout = kiln_dtype_size(j->to);
    const char *x = (const char *)j->x + begin * sin;
    char *y = (char *)j->y + begin * sout;
    size_t n = end - begin;
    if (is_new_type(j->from) || is_new_type(j->to)) {
        cast_new(j, x, y, n);
        return;
    }
    bool hin = kiln_ew_is_half(j->from), hout = kiln_ew_is_half(j->to);
    if (!hin && !hout) {
        cast_plain(j->from, j->to, x, y, n);
        return;
    }
    if (hin && hout) {
        float buf[256];
        for (size_t k = 0; k < n; k += 256) {
            size_t m = n - k < 256 ? n - k : 256;
            kiln_ew_half_to_float(j->from, (const uint16_t *)x + k, buf, m);
            kiln_ew_float_to_half(j->to, buf, (uint16_t *)y + k, m);
        }
        return;
    }
    /* one side is half: convert the other side through a float block */
    float buf[256];
    for (size_t k = 0; k < n; k += 256) {
        size_t m = n - k < 256 ? n - k : 256;
        if (hin) {
            kiln_ew_half_to_float(j->from, (const uint16_t *)x + k, buf, m);
            cast_plain(KILN_DTYPE_FLOAT, j->to, buf, y + k * sout, m);
        } else {
            cast_plain(j->from, KILN_DTYPE_FLOAT, x + k * sin, buf, m);
            kiln_ew_float_to_half(j->to, buf, (uint16_t *)y + k, m);
        }
    }
}

/* Shortest "%.*g" text that reads back as the same value; integral values
 * get a ".0" like numpy's str(). */
static void fmt_float(char *buf, size_t n, double v, bool single) {
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v < 0 ? "-inf" : "inf");
        return;
    }
    int maxp = single ? 9 : 17;
    for (int p = 1; p <= maxp; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eEn"))
        strncat(buf, ".0", n - strlen(buf) - 1);
}

static kiln_status to_string(const kiln_tensor *x, kiln_tensor *y) {
    kiln_string *d = y->data;
    char buf[64];
    for (int64_t i = 0; i < x->numel; i++) {
        switch (x->dtype) {
        case KILN_DTYPE_FLOAT: fmt_float(buf, sizeof buf, ((const float *)x->data)[i], true); break;
        case KILN_DTYPE_FLOAT16:
        case KILN_DTYPE_BFLOAT16: fmt_float(buf, sizeof buf, kiln_tensor_get_f64(x, i), true); break;
        case KILN_DTYPE_FLOAT8E4M3FN:
        case KILN_DTYPE_FLOAT8E4M3FNUZ:
        case KILN_DTYPE_FLOAT8E5M2:
        case KILN_DTYPE_FLOAT8E5M2FNUZ:
        case KILN_DTYPE_FLOAT8E8M0:
        case KILN_DTYPE_FLOAT4E2M1:
        case KILN_DTYPE_FLOAT6E2M3:
        case KILN_DTYPE_FLOAT6E3M2: fmt_float(buf, sizeof buf, kiln_tensor_get_f64(x, i), true); break;
        case KILN_DTYPE_DOUBLE: fmt_float(buf, sizeof buf, ((const double *)x->data)[i], false); break;
        case KILN_DTYPE_BOOL: snprintf(buf, sizeof buf, "%s", ((const uint8_t *)x->data)[i] ? "True" : "False"); break;
        case KILN_DTYPE_UINT64:
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)((const uint64_t *)x->data)[i]);
            break;
        case KILN_DTYPE_STRING: {
            const kiln_string *s = &((const kiln_string *)x->data)[i];
            d[i].data = kiln_strndup(s->data ? s->data : "", s->len);
            if (!d[i].data)
                return KILN_ERR_NOMEM;
            d[i].len = s->len;
            continue;
        }
        default: snprintf(buf, sizeof buf, "%lld", (long long)kiln_tensor_get_i64(x, i)); break;
        }
        d[i].len = strlen(buf);
        d[i].data = kiln_strdup(buf);
        if (!d[i].data)
            return KILN_ERR_NOMEM;
    }
    return KILN_OK;
}

/* Converts n elements with the job's settings (between non-string types). */
static void convert(const cast_job *tmpl, kiln_dtype from, const void *x, void *y, size_t n) {
    cast_job j = *tmpl;
    j.from = from;
    j.x = x;
    j.y = y;
    cast_range(&j, 0, n);
}

/* Parses one string element into element i of y. */
static kiln_status parse_one(const cast_job *cj, const char *buf, kiln_tensor *y, int64_t i) {
    size_t es = kiln_dtype_size(y->dtype);
    void *dst = (char *)y->data + (size_t)i * es;
    bool is_int = !is_float_type(y->dtype) && y->dtype != KILN_DTYPE_BOOL;
    char *end;
    /* integers parse exactly when the text is an integer ("1000") */
    if (is_int && y->dtype == KILN_DTYPE_UINT64) {
        unsigned long long u = strtoull(buf, &end, 10);
        if (end != buf && !*end) {
            *(uint64_t *)dst = u;
            return KILN_OK;
        }
    } else if (is_int) {
        long long v = strtoll(buf, &end, 10);
        if (end != buf && !*end) {
            int64_t w = v;
            convert(cj, KILN_DTYPE_INT64, &w, dst, 1);
            return KILN_OK;
        }
    }
    double v = strtod(buf, &end);
    if (end == buf && y->dtype == KILN_DTYPE_BOOL)
        v = !strcmp(buf, "True") || !strcmp(buf, "true");
    else if (end == buf || *end)
        return kiln_fail(KILN_ERR_INVALID, "element %lld (\"%.64s\") is not a number", (long long)i, buf);
    convert(cj, KILN_DTYPE_DOUBLE, &v, dst, 1);
    return KILN_OK;
}

static kiln_status from_string(const cast_job *cj, const kiln_tensor *x, kiln_tensor *y) {
    const kiln_string *s = x->data;
    for (int64_t i = 0; i < x->numel; i++) {
        char small[128], *buf = small;
        size_t len = s[i].len;
        if (len >= sizeof small && !(buf = kiln_malloc(len + 1)))
            return KILN_ERR_NOMEM;
        if (len)
            memcpy(buf, s[i].data, len);
        buf[len] = 0;
        kiln_status st = parse_one(cj, buf, y, i);
        if (buf != small)
            free(buf);
        KILN_TRY(st);
    }
    return KILN_OK;
}

static bool castable(kiln_dtype d) {
    switch (d) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_DOUBLE: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
    case KILN_DTYPE_BOOL: case KILN_DTYPE_STRING:
        return true;
    default: return is_new_type(d);
    }
}

/* `saturate` (opset 19+) and `round_mode` (opset 24+). */
static kiln_status cast_settings(const kiln_op_ctx *c, cast_job *j) {
    j->saturate = c->opset < 19 || kiln_attr_int(c->node, "saturate", 1) != 0;
    j->round = KILN_ROUND_UP;
    if (c->opset >= 24) {
        const char *m = kiln_attr_string(c->node, "round_mode", "up");
        if (!strcmp(m, "up"))
            j->round = KILN_ROUND_UP;
        else if (!strcmp(m, "down"))
            j->round = KILN_ROUND_DOWN;
        else if (!strcmp(m, "nearest"))
            j->round = KILN_ROUND_NEAREST;
        else
            return kiln_fail(KILN_ERR_INVALID, "attribute 'round_mode' is '%s' (up, down or nearest)", m);
    }
    return KILN_OK;
}

static kiln_status cast_to(kiln_op_ctx *c, kiln_dtype to) {
    const kiln_tensor *x = c->in[0];
    if (!castable(x->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "cannot cast from element type %s", kiln_dtype_name(x->dtype));
    if (!castable(to))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "cannot cast to element type %d (%s)", (int)to, kiln_dtype_name(to));
    if (to == x->dtype)
        return kiln_op_output_alias(c, 0, x, x->rank, x->dims);
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, to, x->rank, x->dims, &y));
    /* kiln_op_output does not fill its out-pointer for strings: read the slot */
    y = c->out[0];
    if (x->numel == 0)
        return KILN_OK;
    cast_job j = {x->dtype, to, x->data, y->data, true, KILN_ROUND_UP};
    KILN_TRY(cast_settings(c, &j));
    if (to == KILN_DTYPE_STRING)
        return to_string(x, y);
    if (x->dtype == KILN_DTYPE_STRING)
        return from_string(&j, x, y);
    kiln_parallel_for(c, (size_t)x->numel, KILN_EW_GRAIN_CHEAP, cast_range, &j);
    return KILN_OK;
}

static kiln_status cast_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_attr *a = kiln_node_attr(c->node, "to");
    if (!a || a->type != KILN_ATTR_INT)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'to' (an integer element type) is missing");
    if (a->i < 0 || a->i > 64)
        return kiln_fail(KILN_ERR_INVALID, "attribute 'to' has unknown element type %lld", (long long)a->i);
    return cast_to(c, (kiln_dtype)a->i);
}

static kiln_status castlike_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    return cast_to(c, c->in[1]->dtype);
}

/* Cast keeps the shape; integer to integer keeps the elements. */
static void cast_infer_to(kiln_infer_ctx *x, kiln_dtype to) {
    if (x->n_out < 1)
        return;
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    bool ints = (to == KILN_DTYPE_INT64 || to == KILN_DTYPE_INT32) &&
                (X->dt == KILN_DTYPE_INT64 || X->dt == KILN_DTYPE_INT32);
    x->out[0].dt = to;
    kiln_infer_copy_shape(&x->out[0], X, ints);
}

static kiln_status cast_infer(kiln_infer_ctx *x) {
    cast_infer_to(x, (kiln_dtype)kiln_attr_int(x->node, "to", KILN_DTYPE_UNDEFINED));
    return KILN_OK;
}

static kiln_status castlike_infer(kiln_infer_ctx *x) {
    cast_infer_to(x, kiln_infer_in(x, 1)->dt);
    return KILN_OK;
}

/* Cast-1 took `to` as a string and is not served; 6, 9 (string types) and 13
 * (bfloat16) only widened the type set. 19 added `saturate` and float8, 21
 * the 4-bit integers, 23 FLOAT4E2M1, 24 `round_mode` and FLOAT8E8M0, 25 the
 * 2-bit integers, 28 the float6 types: one kernel reads the node's opset. */
static const kiln_op_desc ops[] = {
    {"", "Cast", 6, 18, cast_exec, cast_infer},
    {"", "Cast", 19, 23, cast_exec, cast_infer},
    {"", "Cast", 24, 0, cast_exec, cast_infer},
    {"", "CastLike", 15, 18, castlike_exec, castlike_infer},
    {"", "CastLike", 19, 23, castlike_exec, castlike_infer},
    {"", "CastLike", 24, 0, castlike_exec, castlike_infer},
};
KILN_OP_FAMILY(cast, ops);
