/* Add Sub Mul Div (numpy broadcasting), all numeric types; float16 and
 * bfloat16 through float32 blocks. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "kernels/elementwise.h"
#include "ops/op.h"

typedef enum { ADD, SUB, MUL, DIV } arith_kind;

typedef struct arith_job {
    const kiln_ew_part *p;
    const void *x, *y;
    void *z;
    kiln_dtype dt;
    arith_kind kind;
} arith_job;

#define ARITH_ROWS(T, EXPR) KILN_EW_BIN_ROWS(j->p, begin, end, T, j->x, T, j->y, T, j->z, EXPR)

#define ARITH_ALL(T)                                                          \
    switch (j->kind) {                                                        \
    case ADD: ARITH_ROWS(T, a + c); break;                                    \
    case SUB: ARITH_ROWS(T, a - c); break;                                    \
    case MUL: ARITH_ROWS(T, a * c); break;                                    \
    case DIV: ARITH_ROWS(T, a / c); break;                                    \
    }

/* Integer division by zero is undefined in C; ONNX leaves it unspecified, we
 * give 0. Wrapping arithmetic goes through uint64_t to stay defined. */
#define ARITH_WRAP(T, DIVEXPR)                                                \
    switch (j->kind) {                                                        \
    case ADD: ARITH_ROWS(T, (T)((uint64_t)a + (uint64_t)c)); break;           \
    case SUB: ARITH_ROWS(T, (T)((uint64_t)a - (uint64_t)c)); break;           \
    case MUL: ARITH_ROWS(T, (T)((uint64_t)a * (uint64_t)c)); break;           \
    case DIV: ARITH_ROWS(T, DIVEXPR); break;                                  \
    }
#define ARITH_SINT(T) ARITH_WRAP(T, c == 0 ? 0 : c == -1 ? (T)(0 - (uint64_t)a) : a / c)
#define ARITH_UINT(T) ARITH_WRAP(T, c == 0 ? 0 : a / c)

/* float16/bfloat16: each row goes through float32 in blocks. */
static void arith_half_rows(const arith_job *j, size_t begin, size_t end) {
    const kiln_bcast *b = j->p->b;
    float xb[256], yb[256];
    for (size_t t = begin; t < end; t++) {
        int64_t off[2], zo;
        int64_t n = kiln_ew_part_locate(j->p, t, off, &zo);
        const uint16_t *xp = (const uint16_t *)j->x + off[0], *yp = (const uint16_t *)j->y + off[1];
        uint16_t *zp = (uint16_t *)j->z + zo;
        for (int64_t k = 0; k < n; k += 256) {
            size_t m = (size_t)(n - k < 256 ? n - k : 256);
            /* a broadcast operand (step 0) is one value repeated */
            kiln_ew_half_to_float(j->dt, xp + (b->step[0] ? k : 0), xb, b->step[0] ? m : 1);
            kiln_ew_half_to_float(j->dt, yp + (b->step[1] ? k : 0), yb, b->step[1] ? m : 1);
            for (size_t i = 1; !b->step[0] && i < m; i++)
                xb[i] = xb[0];
            for (size_t i = 1; !b->step[1] && i < m; i++)
                yb[i] = yb[0];
            switch (j->kind) {
            case ADD: for (size_t i = 0; i < m; i++) xb[i] += yb[i]; break;
            case SUB: for (size_t i = 0; i < m; i++) xb[i] -= yb[i]; break;
            case MUL: for (size_t i = 0; i < m; i++) xb[i] *= yb[i]; break;
            case DIV: for (size_t i = 0; i < m; i++) xb[i] /= yb[i]; break;
            }
            kiln_ew_float_to_half(j->dt, xb, zp + k, m);
        }
    }
}

KILN_CLONES static void arith_range(void *arg, size_t begin, size_t end) {
    arith_job *j = arg;
    switch (j->dt) {
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: arith_half_rows(j, begin, end); break;
    case KILN_DTYPE_FLOAT: ARITH_ALL(float); break;
    case KILN_DTYPE_DOUBLE: ARITH_ALL(double); break;
    case KILN_DTYPE_INT8: ARITH_SINT(int8_t); break;
    case KILN_DTYPE_INT16: ARITH_SINT(int16_t); break;
    case KILN_DTYPE_INT32: ARITH_SINT(int32_t); break;
    case KILN_DTYPE_INT64: ARITH_SINT(int64_t); break;
    case KILN_DTYPE_UINT8: ARITH_UINT(uint8_t); break;
    case KILN_DTYPE_UINT16: ARITH_UINT(uint16_t); break;
    case KILN_DTYPE_UINT32: ARITH_UINT(uint32_t); break;
    case KILN_DTYPE_UINT64: ARITH_UINT(uint64_t); break;
    default: break;
    }
}

static kiln_status arith_exec(kiln_op_ctx *c, arith_kind kind) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *y = c->in[1];
    if (x->dtype != y->dtype)
        return kiln_fail(KILN_ERR_INVALID, "inputs have different element types (%s and %s)",
                         kiln_dtype_name(x->dtype), kiln_dtype_name(y->dtype));
    static const kiln_dtype ok[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_INT8,   KILN_DTYPE_INT16,
                                    KILN_DTYPE_INT32, KILN_DTYPE_INT64,  KILN_DTYPE_UINT8,  KILN_DTYPE_UINT16,
                                    KILN_DTYPE_UINT32, KILN_DTYPE_UINT64, KILN_DTYPE_FLOAT16,
                                    KILN_DTYPE_BFLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ok, sizeof ok / sizeof *ok));
    kiln_bcast b;
    KILN_TRY(kiln_bcast_init(&b, 2, (const kiln_tensor *const[]){x, y}));
    kiln_tensor *z;
    size_t reuse = b.numel == x->numel ? 0 : 1;
    KILN_TRY(kiln_op_output_reuse(c, 0, reuse, x->dtype, b.rank, b.dims, &z));
    if (b.numel == 0)
        return KILN_OK;
    kiln_ew_part part;
    kiln_ew_part_init(&part, &b);
    arith_job j = {&part, x->data, y->data, z->data, x->dtype, kind};
    kiln_parallel_for(c, kiln_ew_part_count(&part), kiln_ew_part_grain(&part, KILN_EW_GRAIN_CHEAP), arith_range, &j);
    return KILN_OK;
}

/* Shape rule: broadcasting, and on small integer tensors (shape
 * arithmetic) the symbolic elements. */
static kiln_status arith_infer(kiln_infer_ctx *x, arith_kind kind) {
    KILN_TRY(kiln_infer_bcast_all(x));
    kiln_shape_fact *o = &x->out[0];
    const kiln_shape_fact *a = kiln_infer_in(x, 0), *b = kiln_infer_in(x, 1);
    if (x->n_out < 1 || a->nval < 0 || b->nval < 0 || (o->dt != KILN_DTYPE_INT64 && o->dt != KILN_DTYPE_INT32) ||
        o->rank > 1)
        return KILN_OK;
    int n = a->nval > b->nval ? a->nval : b->nval;
    if ((a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1))
        return KILN_OK;
    for (int i = 0; i < n; i++) {
        kiln_sdim p = a->val[a->nval == 1 ? 0 : i], q = b->val[b->nval == 1 ? 0 : i];
        o->val[i] = kind == ADD   ? kiln_sd_add(p, q, 1)
                    : kind == SUB ? kiln_sd_add(p, q, -1)
                    : kind == MUL ? kiln_sd_mul(p, q)
                                  : kiln_sd_div(p, q);
    }
    o->nval = n;
    return KILN_OK;
}
static kiln_status add_infer(kiln_infer_ctx *x) { return arith_infer(x, ADD); }
static kiln_status sub_infer(kiln_infer_ctx *x) { return arith_infer(x, SUB); }
static kiln_status mul_infer(kiln_infer_ctx *x) { return arith_infer(x, MUL); }
static kiln_status div_infer(kiln_infer_ctx *x) { return arith_infer(x, DIV); }

static kiln_status add_exec(kiln_op_ctx *c) { return arith_exec(c, ADD); }
static kiln_status sub_exec(kiln_op_ctx *c) { return arith_exec(c, SUB); }
static kiln_status mul_exec(kiln_op_ctx *c) { return arith_exec(c, MUL); }
static kiln_status div_exec(kiln_op_ctx *c) { return arith_exec(c, DIV); }

/* Opset 7 brought numpy broadcasting; earlier versions used the `broadcast`
 * attribute and are not supported. */
static const kiln_op_desc ops[] = {
    {"", "Add", 7, 0, add_exec, add_infer},
    {"", "Sub", 7, 0, sub_exec, sub_infer},
    {"", "Mul", 7, 0, mul_exec, mul_infer},
    {"", "Div", 7, 0, div_exec, div_infer},
};
KILN_OP_FAMILY(arith, ops);
