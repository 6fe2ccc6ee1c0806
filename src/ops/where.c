/* Where(condition, X, Y): three-way broadcasting select, any element type
 * (strings are deep-copied). Numeric data moves as 1/2/4/8-byte words. */
/* Loop vectorisation: -O2 (GCC 12's "very cheap" model) skips loops whose
 * trip count is not a known multiple of the vector width, i.e. all of these
 * kernels; the dynamic model vectorises them with runtime checks. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include <string.h>

#include "kernels/elementwise.h"
#include "ops/op.h"

typedef struct where_job {
    const kiln_ew_part *p;
    const uint8_t *cond;
    const void *x, *y;
    void *z;
    size_t es;
} where_job;

/* Both operands are loaded unconditionally so the select becomes a blend. */
#define WHERE_LOOP(T, CI, XI, YI)                                               \
    for (int64_t i = 0; i < n; i++) {                                          \
        T xv = xp[XI], yv = yp[YI];                                            \
        zp[i] = cp[CI] ? xv : yv;                                              \
    }

/* One loop per broadcast pattern of the row (each operand steps or not), so
 * the inner loops carry no index arithmetic. */
#define WHERE_ROWS(T)                                                                              \
    do {                                                                                           \
        const T *xa = j->x, *ya = j->y;                                                            \
        T *za = j->z;                                                                              \
        int pat = (b->step[0] ? 4 : 0) | (b->step[1] ? 2 : 0) | (b->step[2] ? 1 : 0);              \
        for (size_t t = begin; t < end; t++) {                                                     \
            int64_t off[3], zo;                                                                    \
            int64_t n = kiln_ew_part_locate(j->p, t, off, &zo);                                    \
            const uint8_t *cp = j->cond + off[0];                                                  \
            const T *xp = xa + off[1], *yp = ya + off[2];                                          \
            T *zp = za + zo;                                                                       \
            switch (pat) {                                                                         \
            case 7: WHERE_LOOP(T, i, i, i); break;                                                 \
            case 6: WHERE_LOOP(T, i, i, 0); break;                                                 \
            case 5: WHERE_LOOP(T, i, 0, i); break;                                                 \
            case 4: WHERE_LOOP(T, i, 0, 0); break;                                                 \
            case 3: WHERE_LOOP(T, 0, i, i); break;                                                 \
            case 2: WHERE_LOOP(T, 0, i, 0); break;                                                 \
            case 1: WHERE_LOOP(T, 0, 0, i); break;                                                 \
            default: WHERE_LOOP(T, 0, 0, 0); break;                                                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

KILN_CLONES static void where_range(void *arg, size_t begin, size_t end) {
    const where_job *j = arg;
    const kiln_bcast *b = j->p->b;
    switch (j->es) {
    case 1: WHERE_ROWS(uint8_t); break;
    case 2: WHERE_ROWS(uint16_t); break;
    case 4: WHERE_ROWS(uint32_t); break;
    case 8: WHERE_ROWS(uint64_t); break;
    default: break;
    }
}

static kiln_status where_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 3));
    const kiln_tensor *cond = c->in[0], *x = c->in[1], *y = c->in[2];
    if (cond->dtype != KILN_DTYPE_BOOL)
        return kiln_fail(KILN_ERR_INVALID, "input 'condition' must be bool, got %s", kiln_dtype_name(cond->dtype));
    if (x->dtype != y->dtype)
        return kiln_fail(KILN_ERR_INVALID, "inputs X and Y have different element types (%s and %s)",
                         kiln_dtype_name(x->dtype), kiln_dtype_name(y->dtype));
    size_t es = x->dtype == KILN_DTYPE_STRING ? 0 : kiln_dtype_size(x->dtype);
    if (x->dtype != KILN_DTYPE_STRING && es != 1 && es != 2 && es != 4 && es != 8)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "element type %s is not supported", kiln_dtype_name(x->dtype));
    kiln_bcast b;
    KILN_TRY(kiln_bcast_init(&b, 3, (const kiln_tensor *const[]){cond, x, y}));
    kiln_tensor *z;
    size_t reuse = b.numel == x->numel ? 1 : 2;
    KILN_TRY(kiln_op_output_reuse(c, 0, reuse, x->dtype, b.rank, b.dims, &z));
    z = c->out[0]; /* kiln_op_output leaves its out-pointer unset for strings */
    if (b.numel == 0)
        return KILN_OK;
    if (x->dtype == KILN_DTYPE_STRING) {
        /* single-threaded: copies allocate */
        const kiln_string *xs = x->data, *ys = y->data;
        kiln_string *zs = z->data;
        for (int64_t r = 0; r < b.n_rows; r++) {
            int64_t off[3];
            kiln_bcast_row(&b, r, off);
            for (int64_t i = 0; i < b.row_len; i++) {
                bool pick = cond->data && ((const uint8_t *)cond->data)[off[0] + i * b.step[0]];
                const kiln_string *s = pick ? &xs[off[1] + i * b.step[1]] : &ys[off[2] + i * b.step[2]];
                kiln_string *d = &zs[r * b.row_len + i];
                d->data = kiln_strndup(s->data ? s->data : "", s->len);
                if (!d->data)
                    return KILN_ERR_NOMEM;
                d->len = s->len;
            }
        }
        return KILN_OK;
    }
    kiln_ew_part part;
    kiln_ew_part_init(&part, &b);
    where_job j = {&part, cond->data, x->data, y->data, z->data, es};
    kiln_parallel_for(c, kiln_ew_part_count(&part), kiln_ew_part_grain(&part, KILN_EW_GRAIN_CHEAP), where_range, &j);
    return KILN_OK;
}

/* Shape rule: broadcasting of the three inputs, X's type; on small
 * integer tensors the elements a known condition picks. */
static kiln_status where_infer(kiln_infer_ctx *x) {
    KILN_TRY(kiln_infer_bcast_all(x));
    if (x->n_out < 1)
        return KILN_OK;
    kiln_shape_fact *o = &x->out[0];
    const kiln_shape_fact *c = kiln_infer_in(x, 0), *a = kiln_infer_in(x, 1), *b = kiln_infer_in(x, 2);
    o->dt = a->dt;
    if (c->nval < 0 || a->nval < 0 || b->nval < 0 || o->rank > 1)
        return KILN_OK;
    int n = c->nval;
    if (a->nval > n)
        n = a->nval;
    if (b->nval > n)
        n = b->nval;
    if ((c->nval != n && c->nval != 1) || (a->nval != n && a->nval != 1) || (b->nval != n && b->nval != 1))
        return KILN_OK;
    for (int i = 0; i < n; i++) {
        const kiln_sdim *k = &c->val[c->nval == 1 ? 0 : i];
        o->val[i] = !kiln_sd_is_const(k) ? kiln_sd_unknown()
                    : k->num             ? a->val[a->nval == 1 ? 0 : i]
                                         : b->val[b->nval == 1 ? 0 : i];
    }
    o->nval = n;
    return KILN_OK;
}

/* Where-16 only added bfloat16 to the type set. */
static const kiln_op_desc ops[] = {
    {"", "Where", 9, 0, where_exec, where_infer},
};
KILN_OP_FAMILY(where, ops);
