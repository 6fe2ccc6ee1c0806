/* kiln convert: moving a model between ai.onnx opsets.
 *
 * The driver (convert.c) walks every ai.onnx node from the version its
 * schema has at the model's opset to the one it has at the target, one
 * schema version at a time. Each step is a rewrite, table-driven:
 *   - an adapter for that operator and version boundary (convert_adapt.c)
 *     when the change means more than new types or defaulted attributes
 *     (an attribute that became an input, a changed default, new semantics);
 *   - then the generic check of the node against the next schema (from the
 *     generated table, convert_schemas.inc): attributes the next version
 *     lacks are dropped when they hold their default, inputs and outputs
 *     must fit, element types must be allowed (else a Cast pair where that
 *     is exact, else a refusal).
 * An operator the target opset lacks is replaced by its decomposition
 * (convert_lower.c), written at an opset of its own and converted on like
 * any other node. A node that cannot be expressed is refused, by name and
 * reason; the model is then left unconverted.
 */
#ifndef KILN_PASSES_CONVERT_H
#define KILN_PASSES_CONVERT_H

#include "passes/passes.h"

/* ---- the schema table ---- */
typedef struct cv_formal {
    const char *name;
    uint8_t option;    /* 0 single, 1 optional, 2 variadic */
    uint8_t homog;     /* variadic: all of one type (else each its own: Loop, Scan, If) */
    int8_t tc;         /* index of its type constraint in the version, -1: a fixed type */
    uint32_t types[4]; /* bit dt allowed as tensor(dt), seq(tensor(dt)), optional(tensor(dt)), optional(seq(..)) */
} cv_formal;

typedef struct cv_attr_schema {
    const char *name;
    uint8_t type;     /* kiln_attr_type */
    uint8_t required;
    const char *dflt; /* "i:N", "f:X", "s:TEXT", "I:a,b", "F:a,b"; NULL: none */
} cv_attr_schema;

typedef struct cv_schema {
    const char *name;
    int since;
    uint8_t deprecated;
    int min_in, max_in, min_out, max_out;
    const cv_formal *in;
    int n_in;
    const cv_formal *out;
    int n_out;
    const cv_attr_schema *at;
    int n_at;
} cv_schema;

/* The version of op in force at opset v (deprecated ones included), or NULL. */
const cv_schema *cv_schema_at(const char *op, int64_t v);
/* The first version of op after `since`, or NULL. */
const cv_schema *cv_schema_after(const char *op, int since);
const cv_attr_schema *cv_schema_attr(const cv_schema *s, const char *name);
/* The formal an input (output) position falls on, variadic tails included; NULL past the end. */
const cv_formal *cv_formal_in(const cv_schema *s, size_t i);
const cv_formal *cv_formal_out(const cv_schema *s, size_t i);

/* ---- conversion state ---- */
typedef enum cv_result {
    CV_DONE = 0, /* the node is now in the next version's form (the generic check follows) */
    CV_REPLACED, /* the node is replaced by the emitted nodes */
    CV_REFUSED,  /* c->why tells why */
    CV_ERROR     /* c->st holds the error */
} cv_result;

typedef struct cv_value {
    kiln_dtype dt;
    int rank;
} cv_value;

typedef struct cv_ctx {
    kiln_model *m;
    int64_t from, to;
    kiln_freeze_ctx fc; /* facts of the last inference, names in use */
    kiln_freeze_report *rep;
    kiln_nameset vals;   /* types of values made by the conversion: name -> cv_value* */
    kiln_nameset prod;   /* value name -> the node making it (this sweep; NULL once gone) */
    kiln_nameset alias;  /* Loop/Scan body input -> the node input it receives (malloc'd) */
    kiln_tensor **cache; /* tensors made from Constant nodes' value_* attributes */
    size_t n_cache;
    kiln_nameset orphans; /* constants an adapter stopped reading: pruned at the end if unused */
    kiln_nameset fresh;   /* first outputs of the nodes the conversion made (value 1: checked at the target) */
    /* the node being converted */
    const kiln_scope *scope;
    kiln_node *n;
    int64_t at; /* its current opset */
    /* nodes an adapter emits: before the node (pre), or replacing it */
    kiln_node **emit;
    size_t n_emit, cap_emit;
    kiln_node **pre;
    size_t n_pre, cap_pre;
    kiln_node **post; /* after the node, while it is kept (Casts back) */
    size_t n_post, cap_post;
    int64_t emit_opset; /* opset given to emitted nodes */
    kiln_status st;
    char why[640];
    /* refusals collected over the whole model */
    kiln_sbuf refusals; /* JSON array items */
    kiln_sbuf first_refusal;
    size_t n_refused;
    kiln_sbuf changes; /* JSON array items */
    kiln_sbuf text;    /* human-readable lines */
    size_t n_changes;
    int64_t relabeled;
} cv_ctx;

/* ---- what adapters and decompositions use ---- */
cv_result cv_refuse(cv_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cv_result cv_error(cv_ctx *c, kiln_status st);
/* Records one change of the current node ("how" says what was done). */
void cv_note(cv_ctx *c, const kiln_node *n, int64_t from, int64_t to, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* What is known of a value: element type (UNDEFINED when unknown), rank (-1). */
kiln_dtype cv_dtype(cv_ctx *c, const char *name);
int cv_rank(cv_ctx *c, const char *name);
/* What kind of value a name holds: 0 tensor, 1 sequence, 2 optional tensor,
 * 3 optional sequence, -1 unknown; *dt its element type. */
int cv_kind(cv_ctx *c, const char *name, kiln_dtype *dt);
/* Dimension i of a value when known as a number, else -1. */
int64_t cv_dim(cv_ctx *c, const char *name, int i);
/* The constant value of a name seen from the current scope: an initializer
 * (not a graph input) or a Constant node's output; NULL when not constant. */
const kiln_tensor *cv_const(cv_ctx *c, const char *name);
/* A constant's elements as int64 (at most max); false when not constant or too long. */
bool cv_const_ints(cv_ctx *c, const char *name, int64_t *v, int *count, int max);
/* Remember that the node stopped reading name (removed at the end if nothing reads it). */
void cv_orphan(cv_ctx *c, const char *name);

/* Building: nodes go to c->emit (CV_REPLACED) or c->pre (before the node, kept).
 * Every call is a no-op once c->st is set; names returned are stable. */
kiln_node *cv_emit(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins);
kiln_node *cv_emit_n(cv_ctx *c, const char *op, size_t n_out, const char *const *outs, size_t n_in,
                     const char *const *ins);
kiln_node *cv_emit_pre(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins);
kiln_node *cv_emit_post(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins);
/* A node built but not queued (for a subgraph), a graph of such nodes with
 * one output (a tensor of type dt), a graph attribute (takes g). */
kiln_node *cv_node_new(cv_ctx *c, const char *op, const char *out, size_t n_in, const char *const *ins);
kiln_graph *cv_graph_of(cv_ctx *c, kiln_node **nodes, size_t n, const char *out, kiln_dtype dt);
void cv_agraph(cv_ctx *c, kiln_node *n, const char *name, kiln_graph *g);
/* The nodes emitted since c->n_emit was `mark`, moved into a graph with output `out`. */
kiln_graph *cv_take_graph(cv_ctx *c, size_t mark, const char *out, kiln_dtype dt);
static inline const char *cv_out(const kiln_node *nd) { return nd ? nd->outputs[0] : ""; }
#define CV_OUT(nd) cv_out(nd)
void cv_ai(cv_ctx *c, kiln_node *n, const char *name, int64_t v);
void cv_af(cv_ctx *c, kiln_node *n, const char *name, float v);
void cv_as(cv_ctx *c, kiln_node *n, const char *name, const char *v);
void cv_aints(cv_ctx *c, kiln_node *n, const char *name, size_t count, const int64_t *v);
void cv_afloats(cv_ctx *c, kiln_node *n, const char *name, size_t count, const float *v);
/* Copies attribute `name` of src (if it has it) to dst, optionally renamed. */
void cv_acopy(cv_ctx *c, kiln_node *dst, const kiln_node *src, const char *name, const char *as);
/* Removes an attribute; whether it was there. */
bool cv_adrop(kiln_node *n, const char *name);
/* Sets input i of n (growing the list with "" as needed). */
void cv_set_input(cv_ctx *c, kiln_node *n, size_t i, const char *name);
/* Drops trailing omitted ("") inputs and outputs. */
void cv_trim(kiln_node *n);
/* New constants in the current graph, fresh names. */
const char *cv_const_i64(cv_ctx *c, size_t n, const int64_t *v);    /* 1-D */
const char *cv_scalar_i64(cv_ctx *c, int64_t v);                    /* rank 0 */
const char *cv_const_f32(cv_ctx *c, size_t n, const float *v);      /* 1-D */
/* A scalar (rank 0) of element type dt holding v (floats rounded to dt). */
const char *cv_scalar(cv_ctx *c, kiln_dtype dt, double v);
/* A fresh value name derived from base. */
const char *cv_fresh(cv_ctx *c, const char *base);
/* Records the type of a value the conversion made. */
void cv_set_type(cv_ctx *c, const char *name, kiln_dtype dt, int rank);

/* ---- tables ---- */
/* Adapter for the step between schema version `since` of op and the one
 * before it: down converts a node in version `since`'s form to the earlier
 * one, up the other way. `a` is the node's schema, `b` the next one. */
typedef cv_result (*cv_step_fn)(cv_ctx *c, kiln_node *n, const cv_schema *a, const cv_schema *b);
typedef struct cv_adapter {
    const char *op;
    int since;
    cv_step_fn down, up;
} cv_adapter;
const cv_adapter *cv_find_adapter(const char *op, int since);

/* A decomposition: replaces n by nodes written at opset `opset` (emitted
 * through cv_emit with c->emit_opset set by the driver). */
typedef cv_result (*cv_lower_fn)(cv_ctx *c, kiln_node *n);
typedef struct cv_lowering {
    const char *op;
    int opset;
    cv_lower_fn fn;
    const char *how; /* for the table in docs and the report */
} cv_lowering;
const cv_lowering *cv_find_lowering(const char *op);
/* An operator of ai.onnx.preview with a decomposition into ai.onnx ones. */
const cv_lowering *cv_find_preview(const char *domain, const char *op);
/* An operator deprecated (or removed) on the way up: its replacement. */
const cv_lowering *cv_find_replacement(const char *op);

/* Cast policy for a type the next version does not allow (convert.c). */
typedef enum cv_cast_kind {
    CV_CAST_NONE = 0, /* refuse */
    CV_CAST_MOVE,     /* moves or compares values: any exact wider type */
    CV_CAST_ARITH,    /* computes: a wider type of the same kind, or float for small ints */
    CV_CAST_FLOAT     /* floating-point math: a wider float */
} cv_cast_kind;
cv_cast_kind cv_cast_policy(const char *op);

#endif
