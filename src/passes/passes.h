/* The freeze pipeline: shared context, the report, and one entry per pass.
 * Every pass is graph -> graph through passes/edit.h. */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "ops/infer.h"
#include "passes/edit.h"

typedef struct kiln_count {
    char *key;
    int64_t before, after;
} kiln_count;

struct kiln_freeze_report {
    kiln_sbuf inputs_removed; /* JSON array items */
    kiln_sbuf dims_fixed;     /* JSON object items */
    kiln_sbuf skipped;        /* JSON array items */
    size_t n_inputs_removed, n_dims_fixed, n_skipped;
    int64_t ifs_inlined, loops_unrolled, folded, shapes_folded, simplified, nodes_pruned;
    int64_t bytes_before, bytes_after;
    size_t n_ops;
    kiln_count *ops;
    kiln_sbuf text_skipped; /* human-readable lines */
    kiln_sbuf text_bound;
    int64_t calls_inlined;     /* calls of local functions replaced by their bodies */
    kiln_sbuf text_functions;  /* lines about functions kept */
    kiln_sbuf functions_kept;  /* JSON array items */
    size_t n_functions_kept;
    kiln_sbuf provenance; /* "key\0value\0" pairs for metadata_props, in the order given */
    struct kiln_convert_log *convert; /* kiln_model_convert's changes (convert.c), or NULL */
};

/* The conversion part of a report (convert.c). */
struct kiln_convert_log;
void kiln_convert_log_free(struct kiln_convert_log *l);
void kiln_convert_log_json(const struct kiln_convert_log *l, kiln_sbuf *b);
void kiln_convert_log_text(const struct kiln_convert_log *l, kiln_sbuf *b);

typedef struct kiln_freeze_ctx {
    kiln_model *m;
    int64_t opset;
    int64_t unroll_limit, unroll_node_limit, fold_limit;
    kiln_freeze_report *rep; /* never NULL inside passes */
    kiln_nameset names;
    bool changed;
    kiln_nameset facts; /* value name -> kiln_shape_fact*, from the last shapes run */
    kiln_nameset syms;  /* interned symbol names */
    bool check_only;    /* kiln_shapes_check: infer and report, never edit */
} kiln_freeze_ctx;

const kiln_shape_fact *kiln_fact(const kiln_freeze_ctx *c, const char *name);
void kiln_shapes_free(kiln_freeze_ctx *c);
/* Plan-time check of graph g of model m with the operators' shape rules: a
 * rule that finds a node's inputs invalid, or a declared type (value_info,
 * graph output) whose known element type, rank or dim contradicts what the
 * rules infer, is an error naming the node or value. Edits nothing. */
kiln_status kiln_shapes_check(const kiln_model *m, const kiln_graph *g);
/* shape_fold.c: the rewrites facts allow on node n (whose facts are x). */
kiln_status kiln_shape_fold_node(kiln_freeze_ctx *c, kiln_graph *g, kiln_node *n, const kiln_infer_ctx *x);
/* A known small integer/bool value as a tensor; whether f is one. */
kiln_status kiln_fact_make_const(const kiln_shape_fact *f, kiln_tensor **out);
bool kiln_fact_foldable(const kiln_shape_fact *f);

void kiln_report_skip(kiln_freeze_ctx *c, const kiln_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Calls fn on every subgraph of g's nodes, with the scope chained. */
kiln_status kiln_pass_subgraphs(kiln_freeze_ctx *c, kiln_scope *s,
                                kiln_status (*fn)(kiln_freeze_ctx *, kiln_scope *));

/* Constant nodes become initializers. */
kiln_status kiln_pass_constants(kiln_freeze_ctx *c, kiln_graph *g);
/* Symbolic shape inference and what it folds (Shape, shape arithmetic,
 * Reshape targets, partial Concats). */
kiln_status kiln_pass_shapes(kiln_freeze_ctx *c, kiln_scope *s);
/* Nodes whose inputs are all constant, evaluated by kiln's engine. */
kiln_status kiln_pass_fold(kiln_freeze_ctx *c, kiln_scope *s);
/* If on a constant condition, Loop with a constant trip count. */
kiln_status kiln_pass_control(kiln_freeze_ctx *c, kiln_scope *s);
/* Identities, Where on constant conditions, duplicate constants. */
kiln_status kiln_pass_simplify(kiln_freeze_ctx *c, kiln_scope *s);
/* Dead nodes and unused initializers (and inputs when asked). */
kiln_status kiln_pass_prune(kiln_freeze_ctx *c, kiln_graph *g, bool top, bool inputs);

/* One node through kiln's engine: inputs borrowed, outputs new tensors. */
kiln_status kiln_eval_node(const kiln_model *m, const kiln_node *n, const kiln_tensor *const *in,
                           kiln_tensor **out);
bool kiln_eval_supported(const kiln_model *m, const kiln_node *n);


#endif
