/* Axis reductions: the input is split into [outer, r, inner] (after merging
 * neighbouring axes, and a transposing copy when the reduced axes are not one
 * contiguous run); each task reduces `r` slices of a block of up to RED_BLK
 * inner elements, so inner loops walk memory contiguously. */
#include "kernels/reduce.h"
#include "kernels/tensor_copy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RED_BLK 256

int64_t kiln_dims_prod(const int64_t *dims, int a, int b) {
    /* a zero dim makes the product 0 whatever the others (which may then be
     * large enough to overflow) */
    for (int i = a; i < b; i++)
        if (dims[i] == 0)
            return 0;
    int64_t p = 1;
    for (int i = a; i < b; i++)
        p *= dims[i];
    return p;
}

/* ---- reductions ---- */

bool kiln_reduce_dtype_ok(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: case KILN_DTYPE_DOUBLE: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        return true;
    default:
        return false;
    }
}

typedef struct red_job {
    kiln_red_op op;
    kiln_dtype dt;
    const void *x;
    void *y;
    int64_t outer, r, inner, nblk;
} red_job;

/* Float-like types accumulate in double. */
#define RED_FLOAT(NAME, T, LOAD, STORE)                                                          \
    static void NAME(const red_job *j, int64_t o, int64_t i0, int64_t w) {                       \
        const T *x = (const T *)j->x + o * j->r * j->inner + i0;                                 \
        T *y = (T *)j->y + o * j->inner + i0;                                                    \
        int64_t R = j->r, S = j->inner;                                                          \
        double a[RED_BLK], m[RED_BLK];                                                           \
        double init = j->op == KILN_RED_PROD ? 1.0                                               \
                      : j->op == KILN_RED_MAX || j->op == KILN_RED_LOGSUMEXP ? -INFINITY         \
                      : j->op == KILN_RED_MIN ? INFINITY : 0.0;                                  \
        for (int64_t i = 0; i < w; i++)                                                          \
            a[i] = init;                                                                         \
        switch (j->op) {                                                                         \
        case KILN_RED_SUM: case KILN_RED_MEAN: case KILN_RED_LOGSUM:                             \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] += (double)LOAD(x[r * S + i]);                                          \
            break;                                                                               \
        case KILN_RED_PROD:                                                                      \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] *= (double)LOAD(x[r * S + i]);                                          \
            break;                                                                               \
        case KILN_RED_L1:                                                                        \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] += fabs((double)LOAD(x[r * S + i]));                                    \
            break;                                                                               \
        case KILN_RED_L2: case KILN_RED_SUMSQ:                                                   \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    double v = (double)LOAD(x[r * S + i]);                                       \
                    a[i] += v * v;                                                               \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_MAX: case KILN_RED_LOGSUMEXP:                                              \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    double v = (double)LOAD(x[r * S + i]);                                       \
                    a[i] = (v > a[i] || v != v) ? v : a[i];                                      \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_MIN:                                                                       \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    double v = (double)LOAD(x[r * S + i]);                                       \
                    a[i] = (v < a[i] || v != v) ? v : a[i];                                      \
                }                                                                                \
            break;                                                                               \
        }                                                                                        \
        if (j->op == KILN_RED_LOGSUMEXP) {                                                       \
            /* log(sum(exp(x - max))) + max, stable for large inputs */                          \
            for (int64_t i = 0; i < w; i++) {                                                    \
                m[i] = isfinite(a[i]) ? a[i] : 0.0;                                              \
                a[i] = 0.0;                                                                      \
            }                                                                                    \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] += exp((double)LOAD(x[r * S + i]) - m[i]);                              \
            for (int64_t i = 0; i < w; i++)                                                      \
                a[i] = log(a[i]) + m[i];                                                         \
        }                                                                                        \
        for (int64_t i = 0; i < w; i++) {                                                        \
            double v = a[i];                                                                     \
            switch (j->op) {                                                                     \
            case KILN_RED_MEAN: v = v / (double)R; break;                                        \
            case KILN_RED_L2: v = sqrt(v); break;                                                \
            case KILN_RED_LOGSUM: v = log(v); break;                                             \
            default: break;                                                                      \
            }                                                                                    \
            y[i] = STORE(v);                                                                     \
        }                                                                                        \
    }

/* Integer types: sums and products wrap (computed in 64-bit unsigned), the
 * transcendental forms go through double and truncate like a numpy cast. */
#define RED_INT(NAME, T, A, LO, HI, ABSU)                                                              \
    static void NAME(const red_job *j, int64_t o, int64_t i0, int64_t w) {                       \
        const T *x = (const T *)j->x + o * j->r * j->inner + i0;                                 \
        T *y = (T *)j->y + o * j->inner + i0;                                                    \
        int64_t R = j->r, S = j->inner;                                                          \
        A a[RED_BLK];                                                                            \
        double d[RED_BLK];                                                                       \
        A init = j->op == KILN_RED_PROD ? (A)1 : j->op == KILN_RED_MAX ? (A)(LO)                 \
                 : j->op == KILN_RED_MIN ? (A)(HI) : (A)0;                                       \
        for (int64_t i = 0; i < w; i++)                                                          \
            a[i] = init;                                                                         \
        switch (j->op) {                                                                         \
        case KILN_RED_SUM: case KILN_RED_MEAN:                                                   \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] = (A)((uint64_t)a[i] + (uint64_t)(A)x[r * S + i]);                      \
            break;                                                                               \
        case KILN_RED_PROD:                                                                      \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++)                                                  \
                    a[i] = (A)((uint64_t)a[i] * (uint64_t)(A)x[r * S + i]);                      \
            break;                                                                               \
        case KILN_RED_L1:                                                                        \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    A v = (A)x[r * S + i];                                                       \
                    uint64_t av = ABSU(v);                                                   \
                    a[i] = (A)((uint64_t)a[i] + av);                                             \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_SUMSQ:                                                                     \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    uint64_t v = (uint64_t)(A)x[r * S + i];                                      \
                    a[i] = (A)((uint64_t)a[i] + v * v);                                          \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_MAX:                                                                       \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    A v = (A)x[r * S + i];                                                       \
                    a[i] = v > a[i] ? v : a[i];                                                  \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_MIN:                                                                       \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    A v = (A)x[r * S + i];                                                       \
                    a[i] = v < a[i] ? v : a[i];                                                  \
                }                                                                                \
            break;                                                                               \
        case KILN_RED_L2: case KILN_RED_LOGSUM:                                                  \
            for (int64_t i = 0; i < w; i++)                                                      \
                d[i] = 0.0;                                                                      \
            for (int64_t r = 0; r < R; r++)                                                      \
                for (int64_t i = 0; i < w; i++) {                                                \
                    double v = (double)x[r * S + i];                                             \
                    d[i] += j->op == KILN_RED_L2 ? v * v : v;                                    \
                }                                                                                \
            for (int64_t i = 0; i < w; i++) {                                                    \
                double v = j->op == KILN_RED_L2 ? sqrt(d[i]) : log(d[i]);                        \
                y[i] = !isfinite(v) ? (T)0 : v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)v; \
            }                                                                                    \
            return;                                                                              \
        case KILN_RED_LOGSUMEXP: {                                                               \
            for (int64_t i = 0; i < w; i++) {                                                    \
                double mx = -INFINITY, s = 0.0;                                                  \
                for (int64_t r = 0; r < R; r++)                                                  \
                    mx = (double)x[r * S + i] > mx ? (double)x[r * S + i] : mx;                  \
                for (int64_t r = 0; r < R; r++)                                                  \
                    s += exp((double)x[r * S + i] - mx);                                         \
                double v = log(s) + mx;                                                          \
                y[i] = !isfinite(v) ? (T)0 : v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)v; \
            }                                                                                    \
            return;                                                                              \
        }                                                                                        \
        }                                                                                        \
        for (int64_t i = 0; i < w; i++)                                                          \
            y[i] = j->op == KILN_RED_MEAN ? (R ? (T)(a[i] / (A)R) : (T)0) : (T)a[i];             \
    }

#define ID(v) (v)
static inline float st_f32(double v) { return (float)v; }
static inline uint16_t st_f16(double v) { return kiln_float_to_half((float)v); }
static inline uint16_t st_bf16(double v) { return kiln_float_to_bf16((float)v); }

RED_FLOAT(red_f32, float, ID, st_f32)
RED_FLOAT(red_f64, double, ID, ID)
RED_FLOAT(red_f16, uint16_t, kiln_half_to_float, st_f16)
RED_FLOAT(red_bf16, uint16_t, kiln_bf16_to_float, st_bf16)
#define ABS_S(v) ((v) < 0 ? (uint64_t)0 - (uint64_t)(v) : (uint64_t)(v))
#define ABS_U(v) ((uint64_t)(v))
RED_INT(red_i8, int8_t, int64_t, INT8_MIN, INT8_MAX, ABS_S)
RED_INT(red_i16, int16_t, int64_t, INT16_MIN, INT16_MAX, ABS_S)
RED_INT(red_i32, int32_t, int64_t, INT32_MIN, INT32_MAX, ABS_S)
RED_INT(red_i64, int64_t, int64_t, INT64_MIN, INT64_MAX, ABS_S)
RED_INT(red_u8, uint8_t, uint64_t, 0, UINT8_MAX, ABS_U)
RED_INT(red_u16, uint16_t, uint64_t, 0, UINT16_MAX, ABS_U)
RED_INT(red_u32, uint32_t, uint64_t, 0, UINT32_MAX, ABS_U)
RED_INT(red_u64, uint64_t, uint64_t, 0, UINT64_MAX, ABS_U)

static void red_range(void *arg, size_t begin, size_t end) {
    const red_job *j = arg;
    for (size_t t = begin; t < end; t++) {
        int64_t o = (int64_t)t / j->nblk, b = (int64_t)t % j->nblk;
        int64_t i0 = b * RED_BLK, w = j->inner - i0 < RED_BLK ? j->inner - i0 : RED_BLK;
        switch (j->dt) {
        case KILN_DTYPE_FLOAT: red_f32(j, o, i0, w); break;
        case KILN_DTYPE_DOUBLE: red_f64(j, o, i0, w); break;
        case KILN_DTYPE_FLOAT16: red_f16(j, o, i0, w); break;
        case KILN_DTYPE_BFLOAT16: red_bf16(j, o, i0, w); break;
        case KILN_DTYPE_INT8: red_i8(j, o, i0, w); break;
        case KILN_DTYPE_INT16: red_i16(j, o, i0, w); break;
        case KILN_DTYPE_INT32: red_i32(j, o, i0, w); break;
        case KILN_DTYPE_INT64: red_i64(j, o, i0, w); break;
        case KILN_DTYPE_UINT8: red_u8(j, o, i0, w); break;
        case KILN_DTYPE_UINT16: red_u16(j, o, i0, w); break;
        case KILN_DTYPE_UINT32: red_u32(j, o, i0, w); break;
        case KILN_DTYPE_UINT64: red_u64(j, o, i0, w); break;
        default: break;
        }
    }
}

kiln_status kiln_reduce(kiln_threads *pool, kiln_red_op op, const kiln_tensor *x, const bool *mask, kiln_tensor *y) {
    if (!kiln_reduce_dtype_ok(x->dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "reduction of element type %s is not supported",
                         kiln_dtype_name(x->dtype));
    if (y->numel == 0)
        return KILN_OK;
    if (x->numel == 0) {
        /* every output reduces an empty set: the op's identity */
        red_job e = {.op = op, .dt = x->dtype, .x = x->data, .y = y->data, .outer = y->numel, .r = 0, .inner = 1,
                     .nblk = 1};
        red_range(&e, 0, (size_t)y->numel);
        return KILN_OK;
    }
    /* merge neighbouring axes with the same role, dropping size-1 axes */
    int m = 0;
    int64_t md[KILN_MAX_RANK];
    bool mr[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] == 1)
            continue;
        if (m && mr[m - 1] == mask[d]) {
            md[m - 1] *= x->dims[d];
        } else {
            md[m] = x->dims[d];
            mr[m] = mask[d];
            m++;
        }
    }
    int n_red_groups = 0;
    for (int d = 0; d < m; d++)
        n_red_groups += mr[d];
    red_job j = {.op = op, .dt = x->dtype, .x = x->data, .y = y->data};
    void *tmp = NULL;
    if (n_red_groups <= 1) {
        int g = 0;
        while (g < m && !mr[g])
            g++;
        j.outer = kiln_dims_prod(md, 0, g);
        j.r = g < m ? md[g] : 1;
        j.inner = g < m ? kiln_dims_prod(md, g + 1, m) : 1;
    } else {
        /* bring kept axes first, reduced last, in one strided copy */
        int64_t pd[KILN_MAX_RANK], ps[KILN_MAX_RANK], st[KILN_MAX_RANK];
        kiln_dims_strides(m, md, st);
        int k = 0;
        j.outer = 1;
        j.r = 1;
        for (int d = 0; d < m; d++)
            if (!mr[d]) {
                pd[k] = md[d];
                ps[k++] = st[d];
                j.outer *= md[d];
            }
        for (int d = 0; d < m; d++)
            if (mr[d]) {
                pd[k] = md[d];
                ps[k++] = st[d];
                j.r *= md[d];
            }
        j.inner = 1;
        tmp = kiln_malloc(x->nbytes ? x->nbytes : 1);
        if (!tmp)
            return KILN_ERR_NOMEM;
        kiln_strided_copy(pool, tmp, x->data, kiln_dtype_size(x->dtype), m, pd, ps);
        j.x = tmp;
    }
    j.nblk = (j.inner + RED_BLK - 1) / RED_BLK;
    size_t tasks = (size_t)(j.outer * j.nblk);
    int64_t per = j.r * (j.inner < RED_BLK ? j.inner : RED_BLK);
    size_t grain = per >= 32768 ? 1 : (size_t)(32768 / (per ? per : 1));
    kiln_threads_run(pool, tasks, grain, red_range, &j);
    free(tmp);
    return KILN_OK;
}
