/* Clip: bounds from the `min`/`max` attributes (opset 6) or from optional
 * scalar inputs 1 and 2 (opset 11; integer types since 12). Computed as
 * min(max(x, lo), hi) like the reference, so lo > hi gives hi everywhere;
 * NaN passes through. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "ops/op.h"

typedef struct clip_job {
    kiln_dtype dt;
    const void *x;
    void *y;
    double lo, hi;         /* float types */
    int64_t ilo, ihi;      /* signed integers */
    uint64_t ulo, uhi;     /* unsigned integers */
} clip_job;

#define CLIP_LOOP(T, LO, HI)                                    \
    do {                                                        \
        const T *x = (const T *)j->x + begin;                   \
        T *y = (T *)j->y + begin;                               \
        const T lo = (T)(LO), hi = (T)(HI);                     \
        for (size_t i = 0; i < n; i++) {                        \
            T v = x[i] < lo ? lo : x[i];                        \
            y[i] = v > hi ? hi : v;                             \
        }                                                       \
    } while (0)

KILN_CLONES static void clip_range(void *arg, size_t begin, size_t end) {
    const clip_job *j = arg;
    size_t n = end - begin;
    switch (j->dt) {
    case KILN_DTYPE_FLOAT: CLIP_LOOP(float, j->lo, j->hi); break;
    case KILN_DTYPE_DOUBLE: CLIP_LOOP(double, j->lo, j->hi); break;
    case KILN_DTYPE_INT8: CLIP_LOOP(int8_t, j->ilo, j->ihi); break;
    case KILN_DTYPE_INT16: CLIP_LOOP(int16_t, j->ilo, j->ihi); break;
    case KILN_DTYPE_INT32: CLIP_LOOP(int32_t, j->ilo, j->ihi); break;
    case KILN_DTYPE_INT64: CLIP_LOOP(int64_t, j->ilo, j->ihi); break;
    case KILN_DTYPE_UINT8: CLIP_LOOP(uint8_t, j->ulo, j->uhi); break;
    case KILN_DTYPE_UINT16: CLIP_LOOP(uint16_t, j->ulo, j->uhi); break;
    case KILN_DTYPE_UINT32: CLIP_LOOP(uint32_t, j->ulo, j->uhi); break;
    case KILN_DTYPE_UINT64: CLIP_LOOP(uint64_t, j->ulo, j->uhi); break;
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: {
        float buf[256];
        const uint16_t *x = (const uint16_t *)j->x + begin;
        uint16_t *y = (uint16_t *)j->y + begin;
        float lo = (float)j->lo, hi = (float)j->hi;
        for (size_t k = 0; k < n; k += 256) {
            size_t m = n - k < 256 ? n - k : 256;
            kiln_ew_half_to_float(j->dt, x + k, buf, m);
            for (size_t i = 0; i < m; i++) {
                float v = buf[i] < lo ? lo : buf[i];
                buf[i] = v > hi ? hi : v;
            }
            kiln_ew_float_to_half(j->dt, buf, y + k, m);
        }
        break;
    }
    default: break;
    }
}

static bool is_signed_int(kiln_dtype d) {
    return d == KILN_DTYPE_INT8 || d == KILN_DTYPE_INT16 || d == KILN_DTYPE_INT32 || d == KILN_DTYPE_INT64;
}
static bool is_unsigned_int(kiln_dtype d) {
    return d == KILN_DTYPE_UINT8 || d == KILN_DTYPE_UINT16 || d == KILN_DTYPE_UINT32 || d == KILN_DTYPE_UINT64;
}

/* Reads a bound input (a scalar or one-element tensor of X's type). */
static kiln_status clip_bound(const kiln_tensor *x, const kiln_tensor *t, const char *name, clip_job *j, bool is_min) {
    if (!t)
        return KILN_OK;
    if (t->dtype != x->dtype)
        return kiln_fail(KILN_ERR_INVALID, "input '%s' has element type %s, X has %s", name,
                         kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
    if (t->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "input '%s' must be a scalar, it has %lld elements", name,
                         (long long)t->numel);
    if (is_signed_int(x->dtype)) {
        int64_t v = kiln_tensor_get_i64(t, 0);
        *(is_min ? &j->ilo : &j->ihi) = v;
    } else if (is_unsigned_int(x->dtype)) {
        uint64_t v = x->dtype == KILN_DTYPE_UINT64 ? ((const uint64_t *)t->data)[0] : (uint64_t)kiln_tensor_get_i64(t, 0);
        *(is_min ? &j->ulo : &j->uhi) = v;
    } else {
        *(is_min ? &j->lo : &j->hi) = kiln_tensor_get_f64(t, 0);
    }
    return KILN_OK;
}

static kiln_status clip_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    static const kiln_dtype flt[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    static const kiln_dtype all[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                     KILN_DTYPE_INT8,  KILN_DTYPE_INT16,  KILN_DTYPE_INT32,   KILN_DTYPE_INT64,
                                     KILN_DTYPE_UINT8, KILN_DTYPE_UINT16, KILN_DTYPE_UINT32,  KILN_DTYPE_UINT64};
    if (c->opset < 12)
        KILN_TRY(kiln_op_need_dtype(c, 0, flt, sizeof flt / sizeof *flt));
    else
        KILN_TRY(kiln_op_need_dtype(c, 0, all, sizeof all / sizeof *all));
    clip_job j = {.dt = x->dtype, .x = x->data, .lo = -INFINITY, .hi = INFINITY,
                  .ilo = INT64_MIN, .ihi = INT64_MAX, .ulo = 0, .uhi = UINT64_MAX};
    if (c->opset < 11) {
        /* opset 6: attributes, defaulting to the float range */
        j.lo = kiln_attr_float(c->node, "min", -FLT_MAX);
        j.hi = kiln_attr_float(c->node, "max", FLT_MAX);
    } else {
        KILN_TRY(clip_bound(x, kiln_op_in(c, 1), "min", &j, true));
        KILN_TRY(clip_bound(x, kiln_op_in(c, 2), "max", &j, false));
    }
    /* Integer bounds outside the element type's range are clamped to it so the
     * cast in the kernel keeps their meaning. */
    switch (x->dtype) {
#define CLAMP_S(LO, HI)                                                   \
    j.ilo = j.ilo < LO ? LO : j.ilo > HI ? HI : j.ilo;                     \
    j.ihi = j.ihi < LO ? LO : j.ihi > HI ? HI : j.ihi;                     \
    break
#define CLAMP_U(HI)                                                       \
    j.ulo = j.ulo > HI ? HI : j.ulo;                                       \
    j.uhi = j.uhi > HI ? HI : j.uhi;                                       \
    break
    case KILN_DTYPE_INT8: CLAMP_S(INT8_MIN, INT8_MAX);
    case KILN_DTYPE_INT16: CLAMP_S(INT16_MIN, INT16_MAX);
    case KILN_DTYPE_INT32: CLAMP_S(INT32_MIN, INT32_MAX);
    case KILN_DTYPE_UINT8: CLAMP_U(UINT8_MAX);
    case KILN_DTYPE_UINT16: CLAMP_U(UINT16_MAX);
    case KILN_DTYPE_UINT32: CLAMP_U(UINT32_MAX);
    case KILN_DTYPE_FLOAT:
        /* keep double bounds inside float so the conversion is exact-ish */
        if (j.lo < -FLT_MAX) j.lo = -INFINITY;
        if (j.hi > FLT_MAX) j.hi = INFINITY;
        break;
    default: break;
#undef CLAMP_S
#undef CLAMP_U
    }
    kiln_tensor *y;
    KILN_TRY(kiln_op_output_reuse(c, 0, 0, x->dtype, x->rank, x->dims, &y));
    if (x->numel == 0)
        return KILN_OK;
    j.y = y->data;
    kiln_parallel_for(c, (size_t)x->numel, KILN_EW_GRAIN_CHEAP, clip_range, &j);
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "Clip", 6, 0, clip_exec, kiln_infer_same},
};
KILN_OP_FAMILY(clip, ops);
