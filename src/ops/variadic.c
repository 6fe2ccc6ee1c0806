/* Variadic broadcasting reductions over inputs: Min Max Sum Mean.
 *
 * The output (broadcast of all inputs) is built in passes: the first combines
 * inputs 0 and 1 (or copies input 0 when more inputs widen the shape), each
 * later pass folds one more input into the output in place. float16 and
 * bfloat16 run on a float32 accumulator. Min/Max propagate NaN like numpy. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <string.h>

#include "kernels/elementwise.h"
#include "ops/op.h"

typedef enum { V_MIN, V_MAX, V_SUM, V_MEAN } var_kind;

typedef struct var_job {
    const kiln_ew_part *p;
    const void *x, *y;
    void *z;
    kiln_dtype dt;
    var_kind kind;
    bool copy; /* z = broadcast of y */
    double scale; /* Mean: applied to the finished output */
} var_job;

#define VROWS(T, EXPR) KILN_EW_BIN_ROWS(j->p, begin, end, T, j->x, T, j->y, T, j->z, EXPR)

#define VAR_FLT(T)                                                         \
    if (j->copy)                                                           \
        VROWS(T, ((void)a, c));                                                     \
    else                                                                   \
        switch (j->kind) {                                                 \
        case V_MIN: VROWS(T, (a < c || a != a) ? a : c); break;            \
        case V_MAX: VROWS(T, (a > c || a != a) ? a : c); break;            \
        default: VROWS(T, a + c); break;                                   \
        }
#define VAR_INT(T)                                                         \
    if (j->copy)                                                           \
        VROWS(T, ((void)a, c));                                                     \
    else                                                                   \
        switch (j->kind) {                                                 \
        case V_MIN: VROWS(T, a < c ? a : c); break;                        \
        case V_MAX: VROWS(T, a > c ? a : c); break;                        \
        default: VROWS(T, (T)((uint64_t)a + (uint64_t)c)); break;          \
        }

KILN_CLONES static void var_range(void *arg, size_t begin, size_t end) {
    const var_job *j = arg;
    switch (j->dt) {
    case KILN_DTYPE_FLOAT: VAR_FLT(float) break;
    case KILN_DTYPE_DOUBLE: VAR_FLT(double) break;
    case KILN_DTYPE_INT8: VAR_INT(int8_t) break;
    case KILN_DTYPE_INT16: VAR_INT(int16_t) break;
    case KILN_DTYPE_INT32: VAR_INT(int32_t) break;
    case KILN_DTYPE_INT64: VAR_INT(int64_t) break;
    case KILN_DTYPE_UINT8: VAR_INT(uint8_t) break;
    case KILN_DTYPE_UINT16: VAR_INT(uint16_t) break;
    case KILN_DTYPE_UINT32: VAR_INT(uint32_t) break;
    case KILN_DTYPE_UINT64: VAR_INT(uint64_t) break;
    default: break;
    }
}

static void scale_range(void *arg, size_t begin, size_t end) {
    const var_job *j = arg;
    if (j->dt == KILN_DTYPE_FLOAT) {
        float *z = j->z, s = (float)j->scale;
        for (size_t i = begin; i < end; i++)
            z[i] *= s;
    } else {
        double *z = j->z, s = j->scale;
        for (size_t i = begin; i < end; i++)
            z[i] *= s;
    }
}

static bool same_shape(int r1, const int64_t *d1, int r2, const int64_t *d2) {
    if (r1 != r2)
        return false;
    for (int i = 0; i < r1; i++)
        if (d1[i] != d2[i])
            return false;
    return true;
}

static kiln_status var_exec(kiln_op_ctx *c, var_kind kind) {
    size_t n = c->n_in;
    if (n == 0)
        return kiln_fail(KILN_ERR_INVALID, "needs at least one input");
    KILN_TRY(kiln_op_need_inputs(c, n));
    kiln_dtype dt = c->in[0]->dtype;
    for (size_t i = 1; i < n; i++)
        if (c->in[i]->dtype != dt)
            return kiln_fail(KILN_ERR_INVALID, "input %zu has element type %s, input 0 has %s", i,
                             kiln_dtype_name(c->in[i]->dtype), kiln_dtype_name(dt));
    static const kiln_dtype flt[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16};
    static const kiln_dtype all[] = {KILN_DTYPE_FLOAT,  KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16, KILN_DTYPE_BFLOAT16,
                                     KILN_DTYPE_INT8,   KILN_DTYPE_INT16,  KILN_DTYPE_INT32,   KILN_DTYPE_INT64,
                                     KILN_DTYPE_UINT8,  KILN_DTYPE_UINT16, KILN_DTYPE_UINT32,  KILN_DTYPE_UINT64};
    /* Sum and Mean are float-only in the spec; Min and Max take integers
     * since opset 12 (accepted at every opset here). */
    if (kind == V_SUM || kind == V_MEAN)
        KILN_TRY(kiln_op_need_dtype(c, 0, flt, sizeof flt / sizeof *flt));
    else
        KILN_TRY(kiln_op_need_dtype(c, 0, all, sizeof all / sizeof *all));

    int ranks[64];
    const int64_t *dims[64];
    if (n > 64)
        return kiln_fail(KILN_ERR_LIMIT, "%zu inputs exceed kiln's limit of 64", n);
    for (size_t i = 0; i < n; i++) {
        ranks[i] = c->in[i]->rank;
        dims[i] = c->in[i]->dims;
    }
    int orank;
    int64_t odims[KILN_MAX_RANK];
    KILN_TRY(kiln_bcast_shape((int)n, ranks, dims, &orank, odims));

    /* Take input 0's buffer only when no other input shares it (it is
     * overwritten before the later inputs are read). */
    const kiln_tensor *x0 = c->in[0];
    bool can_reuse = true;
    for (size_t i = 1; i < n; i++)
        if (c->in[i]->data == x0->data)
            can_reuse = false;
    kiln_tensor *z;
    if (can_reuse)
        KILN_TRY(kiln_op_output_reuse(c, 0, 0, dt, orank, odims, &z));
    else
        KILN_TRY(kiln_op_output(c, 0, dt, orank, odims, &z));
    if (z->numel == 0)
        return KILN_OK;

    bool half = kiln_ew_is_half(dt);
    kiln_tensor acc = {0}, wx = {0}, wy = {0};
    kiln_status st = KILN_OK;
    /* a shape-only tensor standing for the accumulated output */
    kiln_tensor shell = {0};
    KILN_TRY(kiln_tensor_init_shape(&shell, dt, orank, odims));
    void *zd = z->data;
    if (half) {
        KILN_CHECK(st, kiln_ew_float_scratch(orank, odims, &acc), done);
        zd = acc.data;
    }
    var_job j = {.z = zd, .dt = half ? KILN_DTYPE_FLOAT : dt, .kind = kind};
    /* inputs 0 and 1 combine in one pass when together they span the output */
    bool pair_first = false;
    if (n >= 2) {
        int r01;
        int64_t d01[KILN_MAX_RANK];
        KILN_CHECK(st, kiln_bcast_shape(2, ranks, dims, &r01, d01), done);
        pair_first = same_shape(r01, d01, orank, odims);
    }
    for (size_t k = 0; k < n;) {
        kiln_bcast b;
        const kiln_tensor *a, *y;
        if (k == 0 && pair_first) {
            KILN_CHECK(st, kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){c->in[0], c->in[1]}), done);
            a = c->in[0];
            y = c->in[1];
            j.copy = false;
            k = 2;
        } else {
            a = &shell;
            y = c->in[k];
            j.copy = k == 0;
            k++;
            KILN_CHECK(st, kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){a, y}), done);
        }
        kiln_ew_part part;
        kiln_ew_part_init(&part, &b);
        j.p = &part;
        j.x = a == &shell ? zd : a->data;
        j.y = y->data;
        if (half) {
            if (a != &shell) {
                kiln_tensor_clear(&wx);
                KILN_CHECK(st, kiln_ew_widen(a, &wx), done);
                j.x = wx.data;
            }
            kiln_tensor_clear(&wy);
            KILN_CHECK(st, kiln_ew_widen(y, &wy), done);
            j.y = wy.data;
        }
        kiln_parallel_for(c, kiln_ew_part_count(&part), kiln_ew_part_grain(&part, KILN_EW_GRAIN_CHEAP), var_range,
                          &j);
    }
    if (kind == V_MEAN) {
        j.scale = 1.0 / (double)n;
        kiln_parallel_for(c, (size_t)z->numel, KILN_EW_GRAIN_CHEAP, scale_range, &j);
    }
    if (half)
        kiln_ew_float_to_half(dt, acc.data, z->data, (size_t)z->numel);
done:
    kiln_tensor_clear(&acc);
    kiln_tensor_clear(&wx);
    kiln_tensor_clear(&wy);
    return st;
}

static kiln_status min_exec(kiln_op_ctx *c) { return var_exec(c, V_MIN); }
static kiln_status max_exec(kiln_op_ctx *c) { return var_exec(c, V_MAX); }
static kiln_status sum_exec(kiln_op_ctx *c) { return var_exec(c, V_SUM); }
static kiln_status mean_exec(kiln_op_ctx *c) { return var_exec(c, V_MEAN); }

/* Opset 8 brought broadcasting (opset 6 required equal shapes, which the
 * broadcasting code also serves, so 6 is accepted too). */
static const kiln_op_desc ops[] = {
    {"", "Min", 6, 0, min_exec, kiln_infer_bcast_all},
    {"", "Max", 6, 0, max_exec, kiln_infer_bcast_all},
    {"", "Sum", 6, 0, sum_exec, kiln_infer_bcast_all},
    {"", "Mean", 6, 0, mean_exec, kiln_infer_bcast_all},
};
KILN_OP_FAMILY(variadic, ops);
