/* Execution internals: plans (one per graph, subgraphs included), the arena,
 * the thread pool and frames (one per running graph, chained for scope). */
#ifndef KILN_EXEC_H
#define KILN_EXEC_H

#include <pthread.h>

#include "kernels/par.h"
#include "ops/op.h"

/* ---- arena: reuses freed blocks best-fit; counts the peak ---- */
typedef struct kiln_arena kiln_arena;
kiln_arena *kiln_arena_create(void);
/* The session lets go; the arena is freed once its last block comes back. */
void kiln_arena_release(kiln_arena *a);
kiln_buffer *kiln_arena_alloc(kiln_arena *a, size_t size);
size_t kiln_arena_peak(const kiln_arena *a);

/* ---- threads ---- */
kiln_threads *kiln_threads_create(int n);
void kiln_threads_destroy(kiln_threads *t);

/* ---- plans ---- */
typedef struct kiln_name_map kiln_name_map;

typedef struct kiln_plan_node {
    const kiln_node *node;
    const kiln_op_desc *op;
    int64_t opset;
    int *in_ids;   /* value ids, -1 for omitted */
    int *out_ids;  /* -1 for omitted */
    int *free_ids; /* values whose last use is this node */
    size_t n_free;
    kiln_op_act act; /* activation fused in by kiln_plan_fuse */
    bool values;     /* the op may take sequences/optionals (kiln_op_takes_values) */
    void *prep;      /* op->prepare's state (released with the plan), or NULL */
} kiln_plan_node;

typedef struct kiln_plan {
    const kiln_graph *graph;
    size_t n_values;
    char **value_names;        /* borrowed from the graph */
    kiln_name_map *names;
    size_t n_inputs;
    int *input_ids;            /* graph inputs in order */
    size_t n_outputs;
    int *output_ids;
    size_t n_consts;
    int *const_ids;            /* initializers */
    const kiln_tensor **const_vals;
    size_t n_outer;
    int *outer_ids;            /* values taken from enclosing scopes */
    size_t n_nodes;
    kiln_plan_node *nodes;     /* topological order */
    bool *is_output;           /* per value: graph output, never freed */
    kiln_node **made;          /* nodes the planner made (fusions), owned */
    size_t n_made;
    struct kiln_plan *next;    /* session's list of plans */
} kiln_plan;

/* ---- profiling (session.c): one record per node of each plan run while
 * profiling is on, allocated the first time the plan runs profiled ---- */
typedef struct kiln_prof_rec {
    char *name;         /* node name; in a subgraph "<enclosing record's name>/<name>" */
    const char *op, *domain; /* borrowed from the node */
    const char *fused;  /* activation kiln_plan_fuse folded in ("Relu", "Clip"), or NULL */
    int depth;          /* 0: the main graph */
    uint64_t ns, calls;
    kiln_value_kind kind; /* of output 0 at the last call; UNKNOWN: not produced */
    int rank;
    int64_t dims[KILN_MAX_RANK];
    bool varies;        /* output 0's shape differed between calls */
    char shape[128];
} kiln_prof_rec;

typedef struct kiln_prof_plan {
    const kiln_plan *plan;
    size_t base; /* its nodes' records start here */
} kiln_prof_plan;

typedef struct kiln_prof {
    bool on;
    kiln_prof_rec *recs;
    size_t n_recs, cap_recs;
    kiln_prof_plan *plans;
    size_t n_plans, cap_plans;
} kiln_prof;

typedef struct kiln_session_core {
    const kiln_model *model;
    kiln_arena *arena;
    kiln_threads *threads;
    kiln_plan *plans; /* list; first is the main graph's */
    kiln_graph *inlined; /* the model's graph with local functions inlined (owned), or NULL */
    kiln_tensor **aligned_copies;
    size_t n_aligned_copies;
    size_t max_tensor_bytes;
    kiln_prof prof;
} kiln_session_core;

typedef struct kiln_state_pair {
    char *input, *output;
    size_t input_index;  /* in the graph's inputs */
    size_t output_index; /* in the graph's outputs */
    kiln_tensor *value;  /* NULL: zeros of the declared shape */
} kiln_state_pair;

struct kiln_session {
    kiln_session_core core;
    kiln_state_pair *states;
    size_t n_states;
    _Atomic bool busy; /* a run is in progress (runs are refused, not interleaved) */
};

struct kiln_frame {
    kiln_session_core *core;
    const kiln_plan *plan;
    kiln_tensor **vals; /* per value */
    bool *owned;        /* vals[i] is this frame's to destroy */
    kiln_frame *parent;
    bool prof;          /* timing its nodes: records from prof_base on */
    size_t prof_base;
    size_t prof_cur;    /* the node running (names the records of its subgraphs) */
};

/* State pairs (state.c): fill unfed state inputs (zero tensors made here go
 * to zeros[], which the caller destroys); after a run keep the outputs. */
kiln_status kiln_state_feed(kiln_session *s, const kiln_tensor **feed, kiln_tensor **zeros);
kiln_status kiln_state_capture(kiln_session *s, const kiln_tensor *const *feed, kiln_tensor *const *all);
void kiln_state_free(kiln_session *s);
kiln_status kiln_check_input(const kiln_value_info *vi, const kiln_tensor *t);

int kiln_name_map_get(const kiln_name_map *m, const char *name);

/* Fuses Conv -> Relu/Clip pairs and LayerNormalization chains of a
 * topologically sorted plan (fuse.c):
 * the fused node takes the activation's slot and outputs, the Conv's slot
 * gets node == NULL (the caller drops it). pinned[v]: value v is read by a
 * subgraph or is a graph output, so it must stay materialised. */
kiln_status kiln_plan_fuse(kiln_plan *p, const bool *pinned);

kiln_status kiln_plan_get(kiln_session_core *core, const kiln_graph *g, const kiln_plan *parent,
                          const kiln_plan **out);

/* Runs a plan in a new frame: inputs borrowed, except in[i] where own_in[i]
 * (own_in NULL: none), which the frame takes (destroys when done with it,
 * also on failure); outputs new tensors (values the frame owned are handed
 * over, not copied). */
kiln_status kiln_frame_run(kiln_session_core *core, const kiln_plan *plan, kiln_frame *parent,
                           size_t n_in, const kiln_tensor *const *in, const bool *own_in, size_t n_out,
                           kiln_tensor **out);

#endif
