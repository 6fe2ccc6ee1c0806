/* The operator interface: what an op file implements and what it may call.
 *
 * An op file defines `exec` functions and lists descriptors in its family's
 * table (see registry.c). A descriptor covers one operator over an opset
 * range [since, until] (until 0: through KILN_OPSET_MAX). Lookup picks the entry whose
 * range contains the model's opset for the node's domain.
 *
 * exec reads inputs with kiln_op_in (NULL for an omitted optional input),
 * reads attributes with kiln_attr_* on ctx->node, and makes each output with
 * kiln_op_output (fresh memory from the session's arena), kiln_op_output_reuse
 * (may take over a dying input's buffer: for elementwise ops) or
 * kiln_op_output_alias (shares an input's buffer: Reshape, Identity, ...).
 * Outputs must be allocated before any kiln_parallel_for. Errors are
 * returned with kiln_fail(); the session prefixes node name and op type.
 *
 * infer (ops/infer.h) tells the output types and symbolic shapes from what
 * is known of the inputs; the freeze passes fold shape arithmetic with it.
 */
#ifndef KILN_OP_H
#define KILN_OP_H

#include "ir/ir.h"
#include "kernels/par.h"
#include "ops/infer.h"

typedef struct kiln_op_ctx kiln_op_ctx;
typedef struct kiln_frame kiln_frame;

typedef kiln_status (*kiln_op_exec_fn)(kiln_op_ctx *ctx);

/* What prepare sees: the node, and those of its inputs that are constant for
 * the session's life (initializers of the node's own graph that no graph
 * input can override); every other input is NULL in `in`, its type and
 * shape known only at exec. */
typedef struct kiln_prep_ctx {
    const kiln_node *node;
    int64_t opset;
    size_t n_in;
    const kiln_tensor *const *in;
    int threads; /* the session's thread count */
    bool fused;  /* the planner fused an activation into this node (ctx->act) */
} kiln_prep_ctx;

/* Made once when the session plans the graph, kept across runs, read (never
 * written) by exec through ctx->prep, released with the session: parsed and
 * checked attributes, weights packed for the kernel that will read them,
 * transformed filters. An error here fails session creation, naming the
 * node. *state stays NULL when there is nothing to prepare; exec must then
 * (and whenever what it prepared does not match the inputs it is given)
 * work from the node and inputs as they are. What depends on input shapes
 * exec may add to the state at its first call with them (a session runs
 * one call at a time). */
typedef kiln_status (*kiln_op_prepare_fn)(const kiln_prep_ctx *p, void **state);
typedef void (*kiln_op_release_fn)(void *state);

/* The newest ai.onnx opset kiln knows; a descriptor's `until` of 0 means
 * "through this one" (tests/conformance/check_opsets.py keeps every range
 * within the versions whose schema the descriptor implements). */
#define KILN_OPSET_MAX 28

typedef struct kiln_op_desc {
    const char *domain; /* "" for ai.onnx */
    const char *name;
    int since, until;
    kiln_op_exec_fn exec;
    /* The shape rule (ops/infer.h) for this opset range, beside exec; NULL:
     * outputs stay unknown to the freeze passes. */
    kiln_op_infer_fn infer;
    /* Optional per-node prepared state (see kiln_op_prepare_fn). */
    kiln_op_prepare_fn prepare;
    kiln_op_release_fn release;
} kiln_op_desc;

/* An activation the planner fused into this node (exec/fuse.c): the op
 * clamps output 0 to min(max(y, lo), hi) before returning. Only ops the
 * planner knows to handle it (Conv) ever see on == true. dtype: the element
 * type of the fused Clip's bounds (the op checks it matches its output), or
 * KILN_DTYPE_UNDEFINED when there is none (Relu, omitted bounds). */
typedef struct kiln_op_act {
    bool on;
    double lo, hi;
    kiln_dtype dtype;
} kiln_op_act;

struct kiln_op_ctx {
    const kiln_node *node;
    int64_t opset;               /* the model's opset for the node's domain */
    size_t n_in, n_out;
    const kiln_tensor **in;      /* n_in entries; NULL where omitted */
    const bool *in_dying;        /* input is at its last use here */
    kiln_tensor **out;           /* n_out slots, filled by the kiln_op_output* calls */
    kiln_frame *frame;           /* session internals (arena, threads, scope) */
    kiln_op_act act;             /* fused activation; act.on false normally */
    void *prep;                  /* what the descriptor's prepare made, or NULL */
    void **scratch;              /* 4 slots for kiln_op_scratch blocks (session-held) */
};

static inline const kiln_tensor *kiln_op_in(const kiln_op_ctx *c, size_t i) {
    return i < c->n_in ? c->in[i] : NULL;
}
/* Whether output i is wanted (present and named). */
bool kiln_op_out_wanted(const kiln_op_ctx *c, size_t i);

kiln_status kiln_op_output(kiln_op_ctx *c, size_t i, kiln_dtype dtype, int rank, const int64_t *dims,
                           kiln_tensor **out);
/* Like kiln_op_output, but takes input `in_idx`'s buffer when that input dies
 * here, is not shared, and has the output's element count and width (so an
 * elementwise kernel writes each element over the one it has just read). */
kiln_status kiln_op_output_reuse(kiln_op_ctx *c, size_t i, size_t in_idx, kiln_dtype dtype, int rank,
                                 const int64_t *dims, kiln_tensor **out);
/* Output i views `src`'s data with a new shape (same dtype and numel). */
kiln_status kiln_op_output_alias(kiln_op_ctx *c, size_t i, const kiln_tensor *src, int rank,
                                 const int64_t *dims);
/* Output i becomes `t` (ownership passes to the session). */
kiln_status kiln_op_output_take(kiln_op_ctx *c, size_t i, kiln_tensor *t);

/* ---- sequences and optionals ----
 * Values of kind SEQUENCE or OPTIONAL (kiln.h) reach only the operators
 * kiln_op_takes_values names (Identity, If, Loop, SequenceMap and the
 * Sequence and Optional operators); the session refuses them as inputs of
 * every other operator, so tensor operators never see one. Such an operator
 * reads them through kiln_op_in like tensors and checks the kind. */
static inline kiln_value_kind kiln_op_in_kind(const kiln_op_ctx *c, size_t i) {
    const kiln_tensor *t = kiln_op_in(c, i);
    return t ? t->kind : KILN_VALUE_UNKNOWN;
}
/* Input i when it is a sequence / an optional; NULL otherwise. */
static inline const kiln_tensor *kiln_op_in_seq(const kiln_op_ctx *c, size_t i) {
    const kiln_tensor *t = kiln_op_in(c, i);
    return t && t->kind == KILN_VALUE_SEQUENCE ? t : NULL;
}
static inline const kiln_tensor *kiln_op_in_opt(const kiln_op_ctx *c, size_t i) {
    const kiln_tensor *t = kiln_op_in(c, i);
    return t && t->kind == KILN_VALUE_OPTIONAL ? t : NULL;
}
/* Output i becomes a new empty sequence of `elem` tensors (UNDEFINED:
 * unknown), filled with kiln_op_seq_push. */
kiln_status kiln_op_output_seq(kiln_op_ctx *c, size_t i, kiln_dtype elem, kiln_tensor **seq);
/* Output i becomes a sequence holding input in_idx's elements (a sequence):
 * taken over when that input dies here and no other input is the same
 * value (no copying: a Loop-carried sequence grows in place), else copies
 * sharing their data. */
kiln_status kiln_op_output_seq_from(kiln_op_ctx *c, size_t i, size_t in_idx, kiln_tensor **seq);
/* Appends tensor `item` (taken, also on failure) to a sequence being made;
 * its element type must be the sequence's. */
kiln_status kiln_op_seq_push(kiln_tensor *seq, kiln_tensor *item);
/* Output i becomes an optional holding a copy of `value` (a tensor or a
 * sequence), or an empty one of the given element kind and type (value
 * NULL). */
kiln_status kiln_op_output_optional(kiln_op_ctx *c, size_t i, const kiln_tensor *value, kiln_value_kind elem_kind,
                                    kiln_dtype elem);
/* Output i becomes a copy of `value`, of any kind, sharing its data. */
kiln_status kiln_op_output_share(kiln_op_ctx *c, size_t i, const kiln_tensor *value);
/* A new tensor from the session's arena, held to its size limit, that is
 * no output: for the elements of a sequence (the caller owns it). */
kiln_status kiln_op_new_tensor(kiln_op_ctx *c, kiln_dtype dtype, int rank, const int64_t *dims, kiln_tensor **out);
/* Whether an operator may take sequence/optional inputs, and whether it
 * makes such outputs (not folded into initializers). */
bool kiln_op_takes_values(const kiln_op_desc *d);
bool kiln_op_makes_values(const kiln_op_desc *d);

/* Scratch memory for this call (im2col columns, packed panels): from the
 * session's arena, so it counts in the arena peak and is held to the tensor
 * size limit; 64-byte aligned, contents undefined; returned when exec ends.
 * At most 4 blocks per call. */
kiln_status kiln_op_scratch(kiln_op_ctx *c, size_t bytes, void **out);

/* Runs fn over [0, n) split into contiguous ranges across the session's
 * threads; ranges are at least `grain` long. fn must not allocate outputs. */
void kiln_parallel_for(kiln_op_ctx *c, size_t n, size_t grain, kiln_range_fn fn, void *arg);
int kiln_op_threads(const kiln_op_ctx *c);
/* The session's thread pool, for kernels (kernels/par.h). */
kiln_threads *kiln_op_pool(const kiln_op_ctx *c);

/* Runs a subgraph (If branch, Loop/Scan body) with the node's scope visible.
 * Outputs are new tensors owned by the caller. */
kiln_status kiln_op_run_subgraph(kiln_op_ctx *c, const kiln_graph *g, size_t n_in,
                                 const kiln_tensor *const *in, size_t n_out, kiln_tensor **out);
/* The same, giving the subgraph in[i] where give[i]: it owns them (in[i]
 * becomes NULL), so they may die at their last use in it (a Loop-carried
 * sequence grows in place). */
kiln_status kiln_op_run_subgraph_give(kiln_op_ctx *c, const kiln_graph *g, size_t n_in, kiln_tensor **in,
                                      const bool *give, size_t n_out, kiln_tensor **out);

/* Operators the planner makes (exec/fuse.c), not in the registry. */
extern const kiln_op_desc kiln_op_layernorm_fused;
extern const kiln_op_desc kiln_op_matmul_bias;

/* Registry. */
const kiln_op_desc *kiln_op_find(const char *domain, const char *name, int64_t opset);
/* Every descriptor, sorted by (domain, name, since); for tests and tools. */
size_t kiln_op_table(const kiln_op_desc *const **out);
/* The opset ranges kiln implements for an operator, as "1-12, 13-28" (for
 * messages); empty when none. */
void kiln_op_versions(const char *domain, const char *name, char *buf, size_t n);

/* Family tables, one per source group (defined in the family's files). */
typedef struct kiln_op_family {
    const kiln_op_desc *ops;
    size_t count;
} kiln_op_family;

#define KILN_OP_FAMILY(fam, table) \
    const kiln_op_family kiln_ops_##fam = {table, sizeof(table) / sizeof((table)[0])}

/* Common checks that produce clear messages. */
kiln_status kiln_op_need_inputs(const kiln_op_ctx *c, size_t min);
kiln_status kiln_op_need_dtype(const kiln_op_ctx *c, size_t i, const kiln_dtype *allowed, size_t n);
/* Normalises a possibly negative axis into [0, rank). */
kiln_status kiln_op_axis(const kiln_op_ctx *c, int64_t axis, int rank, int *out);

#endif
