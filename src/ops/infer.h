/* Shape rules: what an operator's `infer` knows about its outputs before it
 * runs. Each descriptor (op.h) carries its rule beside its `exec`, per opset
 * range; the freeze passes (passes/shape_infer.c) and the planner call the
 * rules through the descriptor and never name an operator.
 *
 * A rule reads what is known about the node's inputs (x->in: dtype, symbolic
 * shape, and for small integer tensors the elements; x->k: the value where
 * the input is a constant) and fills x->out, which starts unknown. It leaves
 * unknown what it cannot tell: an unknown fact is always safe, a wrong one
 * never is. Dims are monomials over the model's dimension symbols
 * (batch, batch*16, seq/2) so shape arithmetic folds as far as the symbols
 * allow. A rule returns KILN_OK, or an error (kiln_fail, KILN_ERR_INVALID)
 * when the inputs it sees can never be valid for the operator.
 *
 * Shapes that exec computes as well (broadcasting, pooling windows) come
 * from the shared helpers below, so the engine and the passes agree. */
#ifndef KILN_INFER_H
#define KILN_INFER_H

#include "ir/ir.h"

/* A symbolic dimension: num/den * sym[0] * ... * sym[n-1] (symbols sorted,
 * interned by the caller), or unknown. Constants have n == 0 and den == 1. */
#define KILN_SDIM_MAXSYM 4
typedef struct kiln_sdim {
    bool known;
    int n;
    int64_t num, den;
    const char *sym[KILN_SDIM_MAXSYM];
} kiln_sdim;

#define KILN_FACT_MAXVAL 64
/* What shape inference knows about a value: type, shape, and for small
 * integer or bool tensors (shape arithmetic and its masks) the elements.
 * `val` is last: stored facts hold only nval of them (kiln_fact_size). */
typedef struct kiln_shape_fact {
    kiln_dtype dt; /* KILN_DTYPE_UNDEFINED: unknown */
    int rank;      /* -1: unknown */
    kiln_sdim dims[KILN_MAX_RANK];
    int nval; /* -1: elements unknown */
    kiln_sdim val[KILN_FACT_MAXVAL];
} kiln_shape_fact;

/* Bytes of a fact with its nval elements (the rest of `val` left out). */
size_t kiln_fact_size(const kiln_shape_fact *f);
/* Copies a (possibly compactly stored) fact into a full one. */
void kiln_fact_copy(kiln_shape_fact *dst, const kiln_shape_fact *src);

/* ---- symbolic dims ---- */
kiln_sdim kiln_sd_unknown(void);
kiln_sdim kiln_sd_const(int64_t v);
kiln_sdim kiln_sd_sym(const char *interned);
bool kiln_sd_is_const(const kiln_sdim *d);
bool kiln_sd_is(const kiln_sdim *d, int64_t v);
bool kiln_sdim_eq(const kiln_sdim *a, const kiln_sdim *b);
kiln_sdim kiln_sd_mul(kiln_sdim a, kiln_sdim b);
kiln_sdim kiln_sd_div_exact(kiln_sdim a, kiln_sdim b); /* a = q * b, or unknown */
kiln_sdim kiln_sd_div(kiln_sdim a, kiln_sdim b);  /* as integer Div: truncating */
kiln_sdim kiln_sd_add(kiln_sdim a, kiln_sdim b, int sign);
/* A dim as text ("?" when unknown). */
void kiln_sdim_str(const kiln_sdim *d, char *buf, size_t n);

/* ---- facts ---- */
void kiln_fact_unknown(kiln_shape_fact *f, kiln_dtype dt);
/* Exact facts of a tensor (its elements too when small and integer). */
void kiln_fact_from_tensor(const kiln_tensor *t, kiln_shape_fact *f);
/* Whether two facts describe the same (fully known) shape. */
bool kiln_fact_same_shape(const kiln_shape_fact *a, const kiln_shape_fact *b);
bool kiln_fact_vals_const(const kiln_shape_fact *f);
/* Types whose elements facts carry. */
bool kiln_fact_has_vals(kiln_dtype t);
/* Product of dims [from, to). */
kiln_sdim kiln_fact_prod(const kiln_shape_fact *f, int from, int to);
/* Merge of two possible facts (If branches): what both agree on. */
void kiln_fact_merge(kiln_shape_fact *a, const kiln_shape_fact *b);

/* ---- the rule interface ---- */
typedef struct kiln_infer_ctx kiln_infer_ctx;
struct kiln_infer_ctx {
    const kiln_node *node;
    int64_t opset; /* the model's opset for the node's domain */
    size_t n_in, n_out;
    const kiln_shape_fact *in;   /* n_in facts; unknown where omitted */
    const bool *has;             /* input i is present (named) */
    const kiln_tensor *const *k; /* input i's constant value, or NULL */
    kiln_shape_fact *out;        /* n_out facts, unknown on entry */
    /* Facts of output k of a subgraph (a graph attribute of the node),
     * inferred before the node; NULL when not known. */
    const kiln_shape_fact *(*graph_out)(const kiln_infer_ctx *x, const kiln_graph *g, size_t k);
    void *drv; /* the caller's state for graph_out */
};
typedef kiln_status (*kiln_op_infer_fn)(kiln_infer_ctx *x);

static inline const kiln_shape_fact *kiln_infer_in(const kiln_infer_ctx *x, size_t i) {
    static const kiln_shape_fact unknown = {.rank = -1, .nval = -1};
    return i < x->n_in ? &x->in[i] : &unknown;
}
static inline bool kiln_infer_has(const kiln_infer_ctx *x, size_t i) { return i < x->n_in && x->has[i]; }

/* Integer list from constant input `input` (-1: none) or, when the node has
 * no such input, from attribute `attr` (NULL: none). false when unknown. */
bool kiln_infer_ints(const kiln_infer_ctx *x, int input, const char *attr, int64_t *v, int *count, int max);
/* Numpy broadcasting of n facts' shapes into o (false when a rank is unknown). */
bool kiln_infer_bcast(const kiln_shape_fact *const *fs, int n, kiln_shape_fact *o);
/* Sets o's shape to f's (and its elements when `vals`). */
void kiln_infer_copy_shape(kiln_shape_fact *o, const kiln_shape_fact *f, bool vals);
/* An axis attribute normalised into [0, rank), or -1 when out of range. */
int kiln_infer_axis(int64_t axis, int rank);

/* A reduction's output shape (shared by Reduce* exec and infer): for each
 * output dim, the input axis it keeps, or -1 for a kept reduced axis (1).
 * Returns the output rank. */
int kiln_reduce_shape(int rank, const bool *mask, bool keepdims, int *src);

/* Slice of one axis of size d by start s, end e, step st (st != 0), as
 * the spec clamps them: the first index taken and the count (shared by
 * Slice exec and infer). */
void kiln_slice_axis(int64_t d, int64_t s, int64_t e, int64_t st, int64_t *first, int64_t *count);

/* Checks n's rule against what exec made: with inputs `in` (n->n_inputs,
 * NULL where omitted) the rule's known types, dims and elements must equal
 * those of `out` (n->n_outputs). KILN_ERR_MISMATCH with a message in msg
 * otherwise; KILN_OK also when the operator has no rule. */
kiln_status kiln_infer_check(const kiln_model *m, const kiln_node *n, const kiln_tensor *const *in,
                             const kiln_tensor *const *out, char *msg, size_t len);

/* Ready-made rules. */
kiln_status kiln_infer_same(kiln_infer_ctx *x);       /* out0 = in0 (type and shape) */
kiln_status kiln_infer_same_bool(kiln_infer_ctx *x);  /* out0 = in0's shape, bool */
kiln_status kiln_infer_bcast_all(kiln_infer_ctx *x);  /* out0: in0's type, inputs broadcast */
kiln_status kiln_infer_bcast_bool(kiln_infer_ctx *x); /* ... bool (comparisons, logic) */

/* Conv and pooling windows: output dims 2.. of o from X's spatial dims
 * through kernels/conv.h's geometry, the same kiln_conv_forward_shape exec
 * calls. k: the kernel's spatial sizes (NULL: attribute kernel_shape);
 * use_dil: read `dilations`. A symbolic dim stays itself where the window
 * keeps sizes (1x1 stride 1 unpadded, SAME with stride 1), else unknown. */
kiln_status kiln_infer_window(const kiln_infer_ctx *x, const kiln_shape_fact *X, const int64_t *k, bool use_dil,
                              bool ceil_mode, kiln_shape_fact *o);

#endif
