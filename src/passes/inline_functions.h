/* Inlining model-local functions: every node calling a FunctionProto of the
 * model is replaced by the function's body (inline_functions.c). */
#ifndef KILN_PASSES_INLINE_FUNCTIONS_H
#define KILN_PASSES_INLINE_FUNCTIONS_H

#include "ir/ir.h"

typedef struct kiln_inline_stats {
    int64_t calls;  /* call nodes replaced, nested ones included */
    int64_t nodes;  /* nodes the bodies brought in */
} kiln_inline_stats;

/* Replaces the calls in g (a graph of m, or a copy of one; subgraphs
 * included) by the bodies, nested calls expanded, with fresh value names.
 * keep[i] (may be NULL): calls to m->functions[i] stay as they are. Nodes
 * whose function imports another opset of their domain than the model get
 * n->opset (the engine runs them at that version; such nodes cannot be
 * saved). stats may be NULL. */
kiln_status kiln_inline_calls(const kiln_model *m, kiln_graph *g, const bool *keep, kiln_inline_stats *stats);

/* Whether any node of g (or of its subgraphs) calls one of m's functions. */
bool kiln_graph_calls_functions(const kiln_model *m, const kiln_graph *g);

/* For kiln freeze: inlines every call in m->graph whose function imports the
 * same opsets as the model (domains the model lacks are added to it), keeps
 * the calls to the others, and drops the functions nothing calls any more.
 * `kept` (may be NULL) gets one line per function kept, with the reason. */
kiln_status kiln_model_inline_functions(kiln_model *m, kiln_inline_stats *stats, kiln_sbuf *kept);

#endif
