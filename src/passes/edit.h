/* The graph edits freeze passes are made of: name sets and fresh names, node
 * construction, insertion and removal, renaming uses across subgraphs,
 * constants (initializers) and their scopes. Passes change graphs only
 * through these, so names and consumers stay consistent. */
#ifndef KILN_PASSES_EDIT_H
#define KILN_PASSES_EDIT_H

#include "ir/ir.h"

/* ---- string sets (and name -> pointer maps) ---- */
typedef struct kiln_nameset {
    char **keys;
    void **vals;
    size_t cap, n;
} kiln_nameset;

kiln_status kiln_nameset_put(kiln_nameset *s, const char *name, void *val);
bool kiln_nameset_has(const kiln_nameset *s, const char *name);
void *kiln_nameset_get(const kiln_nameset *s, const char *name);
/* The set's own copy of `name` (stable until the set is freed), or NULL. */
const char *kiln_nameset_key(const kiln_nameset *s, const char *name);
void kiln_nameset_free(kiln_nameset *s, void (*free_val)(void *));
/* Adds every value name in g and its subgraphs. */
kiln_status kiln_nameset_collect(kiln_nameset *s, const kiln_graph *g);
/* A name not in s, derived from base; added to s; malloc'd. */
char *kiln_edit_fresh_name(kiln_nameset *s, const char *base);

/* ---- scopes: a graph and the graphs enclosing it ---- */
typedef struct kiln_scope {
    kiln_graph *g;
    const struct kiln_scope *up;
} kiln_scope;

/* The constant value of `name` seen from scope s: an initializer that is not
 * also a graph input (an overridable default), searched outwards. */
const kiln_tensor *kiln_edit_const(const kiln_scope *s, const char *name);
/* Whether g itself declares name as an input. */
bool kiln_edit_is_input(const kiln_graph *g, const char *name);
bool kiln_edit_is_output(const kiln_graph *g, const char *name);
/* Index of the node of g producing name, or -1. */
long kiln_edit_producer(const kiln_graph *g, const char *name);

/* ---- nodes ---- */
kiln_status kiln_edit_node_new(const char *op_type, const char *name, size_t n_in, const char *const *ins,
                               size_t n_out, const char *const *outs, kiln_node **out);
kiln_status kiln_edit_attr_int(kiln_node *n, const char *name, int64_t v);
kiln_status kiln_edit_attr_float(kiln_node *n, const char *name, float v);
kiln_status kiln_edit_attr_tensor(kiln_node *n, const char *name, kiln_tensor *t); /* takes t */
kiln_status kiln_edit_attr_ints(kiln_node *n, const char *name, size_t count, const int64_t *v);
/* Inserts n (taken) at position idx of g's node list. */
kiln_status kiln_edit_insert(kiln_graph *g, size_t idx, kiln_node *n);
/* Deep copy of a node (attributes and subgraphs included). */
kiln_status kiln_edit_node_clone(const kiln_node *n, kiln_node **out);
kiln_status kiln_edit_graph_clone(const kiln_graph *g, kiln_graph **out);
/* Deep copy of an attribute into *out (cleared on failure). */
kiln_status kiln_edit_attr_clone(const kiln_attr *a, kiln_attr *out);
/* Replaces node input name `from` by `to` in g and, as a capture, in every
 * nested subgraph. */
kiln_status kiln_edit_rename_uses(kiln_graph *g, const char *from, const char *to);
/* Renames every occurrence (definitions, uses, graph outputs, value_info). */
kiln_status kiln_edit_rename_all(kiln_graph *g, const char *from, const char *to);
/* Whether any node of g (or nested capture) or graph output reads name. */
bool kiln_edit_is_used(const kiln_graph *g, const char *name);
/* Makes readers of y read x instead, for removing a node y = f(x) that is an
 * identity. When y is a graph output, x's producer is renamed to y instead;
 * returns false (nothing changed) when that is not possible. In subgraphs
 * (positional_outputs) the output entry is renamed to x instead. */
bool kiln_edit_forward(kiln_graph *g, const char *y, const char *x, bool positional_outputs);

/* ---- renames collected by a pass, applied in one sweep ----
 * A pass that removes many identities y = f(x) records y -> x for each and
 * resolves names as it visits nodes, instead of rewriting the whole graph
 * once per removal. Chains (z -> y, y -> x) resolve to the last name. */
typedef struct kiln_renames {
    kiln_nameset map; /* from -> malloc'd to */
} kiln_renames;

kiln_status kiln_renames_add(kiln_renames *r, const char *from, const char *to);
/* What `name` reads now (name itself when not renamed). */
const char *kiln_renames_get(const kiln_renames *r, const char *name);
/* Renames n's inputs (not captures inside its subgraphs). */
kiln_status kiln_renames_apply_node(const kiln_renames *r, kiln_node *n);
/* Renames every reader in g: node inputs, captures and outputs of nested
 * subgraphs (g's own outputs keep their names). */
kiln_status kiln_renames_apply(const kiln_renames *r, kiln_graph *g);
void kiln_renames_free(kiln_renames *r);

/* ---- constants ---- */
/* Adds t (taken) as initializer `name` (t->name is replaced). An existing
 * initializer of that name is replaced. */
kiln_status kiln_edit_set_const(kiln_graph *g, const char *name, kiln_tensor *t);
/* A new initializer with a fresh name derived from base; *name_out borrowed
 * from the set. */
kiln_status kiln_edit_new_const(kiln_graph *g, kiln_nameset *names, const char *base, kiln_tensor *t,
                                const char **name_out);
kiln_status kiln_edit_const_i64(kiln_graph *g, kiln_nameset *names, const char *base, int rank,
                                const int64_t *dims, const int64_t *vals, const char **name_out);
/* Removes value_info entries for name. */
void kiln_edit_drop_value_info(kiln_graph *g, const char *name);

#endif
