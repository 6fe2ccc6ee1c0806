/* kiln's in-memory model: graphs, nodes, attributes, typed values, tensors.
 *
 * Objects loaded from a file keep `src`, a pointer to the protobuf message
 * they came from (kept alive by the model). Saving starts from a shallow copy
 * of that message, so fields kiln does not model, and unknown fields, survive
 * a load/save round trip untouched. Objects made by passes have src == NULL.
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "kiln.h"

/* ---- buffers: refcounted bytes, owned or borrowed from a mapping ---- */

typedef struct kiln_buffer kiln_buffer;
struct kiln_buffer {
    int refs;
    void *ptr;
    size_t size;
    void (*release)(kiln_buffer *b); /* frees ptr (if owned) and b */
    void *owner;                     /* release's context (mapping, pool) */
};

kiln_buffer *kiln_buffer_alloc(size_t size); /* 64-aligned, zeroed */
kiln_buffer *kiln_buffer_wrap(void *ptr, size_t size); /* takes ownership of malloc'd ptr */
kiln_buffer *kiln_buffer_ref(kiln_buffer *b);
void kiln_buffer_unref(kiln_buffer *b);
/* Whether b has a single reference (its holder may write it in place). */
bool kiln_buffer_sole(const kiln_buffer *b);

/* A read-only memory-mapped file; a buffer that keeps the mapping alive. */
kiln_status kiln_map_file(const char *path, kiln_buffer **out);

/* ---- tensors ---- */

typedef struct kiln_string {
    size_t len;
    char *data;
} kiln_string;

struct kiln_tensor {
    kiln_dtype dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t numel;
    size_t nbytes;      /* numel * dtype size; for STRING numel * sizeof(kiln_string) */
    void *data;         /* points into buf (may be NULL when numel == 0) */
    kiln_buffer *buf;   /* owner of data; strings own each element's data too */
    char *name;         /* for initializers and tensor attributes */
    char *doc;
    const void *src;    /* Onnx__TensorProto this came from, if any */
    /* Sequences and optionals (kiln.h, kiln_value_kind) travel in the same
     * struct: kind != TENSOR, dtype UNDEFINED, rank 0, numel 0, no data.
     * items: a sequence's elements in order, or an optional's one value (none
     * when empty), each owned. elem_kind / elem_dtype: the declared type of
     * the elements (of what an empty optional would hold); elem_dtype is the
     * innermost tensor element type; UNKNOWN / UNDEFINED when not known. */
    kiln_value_kind kind;
    kiln_value_kind elem_kind;
    kiln_dtype elem_dtype;
    size_t n_items, cap_items;
    struct kiln_tensor **items;
};

/* ---- sequence and optional values (ir/value.c) ---- */

/* Longest sequence kiln makes or reads; deepest nesting of values in files
 * (seq(seq(...)), optional(seq(...))). */
#define KILN_MAX_SEQUENCE_LENGTH ((size_t)1 << 18)
#define KILN_MAX_VALUE_NESTING 8

static inline bool kiln_is_tensor(const kiln_tensor *t) { return t && t->kind == KILN_VALUE_TENSOR; }
/* An empty sequence or optional (kind SEQUENCE or OPTIONAL). */
kiln_tensor *kiln_value_new(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype elem_dtype);
/* Appends item (taken: destroyed on failure) to a sequence, or sets an
 * empty optional's value. Fails past KILN_MAX_SEQUENCE_LENGTH. */
kiln_status kiln_value_push(kiln_tensor *v, kiln_tensor *item);
/* "a tensor", "a sequence", "an optional": for messages. */
const char *kiln_value_kind_a(kiln_value_kind k);
/* Inserts item (taken) before element pos (pos == length: appends); removes
 * element pos; moves all of src's elements to dst (src is left empty). */
kiln_status kiln_value_insert(kiln_tensor *v, size_t pos, kiln_tensor *item);
void kiln_value_erase(kiln_tensor *v, size_t pos);
void kiln_value_move_items(kiln_tensor *dst, kiln_tensor *src);
/* "tensor(float32[2,3])", "seq(tensor(float32)) of 3", "optional(empty)"... for messages. */
const char *kiln_value_str(const kiln_tensor *v, char *buf, size_t n);
/* Deep copy / buffer-sharing copy of a sequence or optional (tensor.c calls
 * these for kind != TENSOR). */
kiln_status kiln_value_clone(const kiln_tensor *v, kiln_tensor **out);
kiln_status kiln_value_share(const kiln_tensor *v, kiln_tensor **out);
void kiln_value_clear_items(kiln_tensor *v);

/* Serialised form of the sub-byte types (kiln.h): bits per element (2, 4 or
 * 6 for them, 8 * kiln_dtype_size otherwise) and bytes for n elements. */
int kiln_dtype_storage_bits(kiln_dtype dt);
size_t kiln_dtype_packed_size(kiln_dtype dt, size_t n);
static inline bool kiln_dtype_is_packed(kiln_dtype dt) {
    int b = kiln_dtype_storage_bits(dt);
    return b > 0 && b < 8;
}
/* n one-byte elements <-> kiln_dtype_packed_size(dt, n) packed bytes, as
 * ONNX packs them; unpacking sign-extends INT4/INT2, packing keeps the low
 * bits of each element (padding bits are zero). */
void kiln_pack_subbyte(kiln_dtype dt, const uint8_t *src, size_t n, uint8_t *dst);
void kiln_unpack_subbyte(kiln_dtype dt, const uint8_t *src, size_t n, uint8_t *dst);

/* An empty tensor shell (no data) with the given shape. */
kiln_status kiln_tensor_init_shape(kiln_tensor *t, kiln_dtype dtype, int rank, const int64_t *dims);
/* Allocates storage for a shaped shell (zeroed). */
kiln_status kiln_tensor_alloc_data(kiln_tensor *t);
/* Points a shaped shell at a range of an existing buffer (takes a ref). */
void kiln_tensor_set_buffer(kiln_tensor *t, kiln_buffer *b, void *data);
kiln_tensor *kiln_tensor_new(void);
/* Deep copy (strings included); a copy of a borrowed tensor owns its data. */
kiln_status kiln_tensor_clone(const kiln_tensor *t, kiln_tensor **out);
/* A second tensor sharing t's buffer (cheap). */
kiln_status kiln_tensor_share(const kiln_tensor *t, kiln_tensor **out);
void kiln_tensor_clear(kiln_tensor *t); /* frees contents, keeps the struct */
bool kiln_tensor_is_aligned(const kiln_tensor *t);
/* Reads element i as double / int64 whatever the numeric dtype. */
double kiln_tensor_get_f64(const kiln_tensor *t, int64_t i);
int64_t kiln_tensor_get_i64(const kiln_tensor *t, int64_t i);
/* New tensor: [start, start+len) along axis / the pieces joined along axis. */
kiln_status kiln_tensor_slice_axis(const kiln_tensor *t, int axis, int64_t start, int64_t len, kiln_tensor **out);
kiln_status kiln_tensor_concat_axis(kiln_tensor *const *ts, size_t n, int axis, kiln_tensor **out);
/* "DIR/<name>.npy" for a value name ('/' in the name becomes '_'); free(). */
kiln_status kiln_npy_path(const char *dir, const char *name, char **out);
/* Shape as "[2,3,4]" into buf. */
const char *kiln_dims_str(int rank, const int64_t *dims, char *buf, size_t n);

/* ---- types of graph values ---- */

typedef struct kiln_dim {
    int64_t value; /* >= 0 when fixed, -1 when symbolic or unknown */
    char *param;   /* symbol name, or NULL */
} kiln_dim;

typedef enum kiln_type_kind {
    KILN_TYPE_NONE = 0,   /* no type recorded */
    KILN_TYPE_TENSOR,
    KILN_TYPE_OTHER       /* sequence/map/optional/sparse: kept as src */
} kiln_type_kind;

typedef struct kiln_type {
    kiln_type_kind kind;
    kiln_dtype elem;
    int rank;       /* -1: shape unknown */
    kiln_dim *dims; /* rank entries */
} kiln_type;

typedef struct kiln_value_info {
    char *name;
    kiln_type type;
    char *doc;
    const void *src; /* Onnx__ValueInfoProto */
} kiln_value_info;

/* ---- attributes, nodes, graphs ---- */

typedef enum kiln_attr_type {
    KILN_ATTR_UNDEFINED = 0,
    KILN_ATTR_FLOAT = 1,
    KILN_ATTR_INT = 2,
    KILN_ATTR_STRING = 3,
    KILN_ATTR_TENSOR = 4,
    KILN_ATTR_GRAPH = 5,
    KILN_ATTR_FLOATS = 6,
    KILN_ATTR_INTS = 7,
    KILN_ATTR_STRINGS = 8,
    KILN_ATTR_TENSORS = 9,
    KILN_ATTR_GRAPHS = 10,
    KILN_ATTR_SPARSE_TENSOR = 11,
    KILN_ATTR_SPARSE_TENSORS = 12,
    KILN_ATTR_TYPE_PROTO = 13,
    KILN_ATTR_TYPE_PROTOS = 14
} kiln_attr_type;

typedef struct kiln_graph kiln_graph;

typedef struct kiln_attr {
    char *name;
    kiln_attr_type type;
    float f;
    int64_t i;
    kiln_string s;
    kiln_tensor *t;
    kiln_graph *g;
    size_t n; /* count for the list kinds */
    float *floats;
    int64_t *ints;
    kiln_string *strings;
    kiln_tensor **tensors;
    kiln_graph **graphs;
    /* Inside a function body: the attribute takes the value of the calling
     * node's attribute of this name (ref_attr_name), or the function's
     * default; NULL otherwise. `type` is the declared type, no value is set. */
    char *ref;
    const void *src; /* Onnx__AttributeProto */
} kiln_attr;

typedef struct kiln_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default ai.onnx domain */
    size_t n_inputs, n_outputs;
    char **inputs;  /* "" marks an omitted optional input */
    char **outputs;
    size_t n_attrs;
    kiln_attr *attrs;
    char *doc;
    char *overload; /* NodeProto.overload (IR 10): picks a local function; NULL if absent */
    /* Opset of the node's domain when it is not the model's: set on nodes
     * inlined from a function that imports another version (engine only;
     * such a node cannot be saved). 0: the model's import. */
    int64_t opset;
    /* For nodes inlined from local functions: "function 'f' called by node
     * 'c'" (nested calls chained), for messages; NULL otherwise. */
    char *origin;
    const void *src; /* Onnx__NodeProto */
} kiln_node;

struct kiln_graph {
    char *name;
    char *doc;
    size_t n_nodes, cap_nodes;
    kiln_node **nodes;
    size_t n_inputs, n_outputs, n_value_info;
    kiln_value_info *inputs, *outputs, *value_info;
    size_t n_inits, cap_inits;
    kiln_tensor **inits;
    const void *src; /* Onnx__GraphProto */
    /* Initializer look-up by name (graph.c): kept up to date by
     * kiln_graph_add_init, marked stale by kiln_graph_remove_init and by
     * kiln_graph_inits_changed (call it after renaming or moving inits
     * directly); a stale index is rebuilt by the next add or by
     * kiln_graph_inits_reindex, and look-ups meanwhile scan. */
    struct kiln_init_index *init_index;
};

typedef struct kiln_opset {
    char *domain;
    int64_t version;
} kiln_opset;

/* A model-local function (FunctionProto). Its body is kept as a graph with
 * nodes and value_info only; the formal inputs and outputs are names. */
typedef struct kiln_function {
    char *name;
    char *domain;   /* "" for ai.onnx, like nodes */
    char *overload; /* NULL if absent */
    size_t n_inputs, n_outputs;
    char **inputs, **outputs;
    size_t n_attr_names;
    char **attr_names; /* `attribute`: attributes without a default */
    size_t n_attr_defaults;
    kiln_attr *attr_defaults; /* `attribute_proto`: attributes with their default */
    kiln_graph *body;
    size_t n_opsets;
    kiln_opset *opsets;
    char *doc;
    const void *src; /* Onnx__FunctionProto */
} kiln_function;

struct kiln_model {
    int64_t ir_version;
    size_t n_opsets;
    kiln_opset *opsets;
    char *producer_name, *producer_version, *domain, *doc;
    int64_t model_version;
    bool has_model_version;
    size_t n_meta;
    kiln_string *meta_keys, *meta_values;
    kiln_graph *graph;
    size_t n_functions;
    kiln_function **functions;
    struct kiln_function_index *fn_index; /* look-up by (domain, name, overload); see function.c */
    char *path; /* where it was loaded from, or NULL */
    char *dir;  /* folder of path (external data base) */
    /* Loader state keeping `src` pointers and borrowed data valid. */
    void *proto;          /* Onnx__ModelProto */
    kiln_buffer *mapping; /* the model file, while tensors point into it */
    size_t n_ext_maps;
    kiln_buffer **ext_maps;
    size_t n_extra_protos; /* messages the loader unpacked from unknown fields */
    void **extra_protos;
    kiln_limits limits; /* loaded within these; the session keeps to max_tensor_bytes */
};

/* Opset version the model imports for a domain ("" or "ai.onnx" for the
 * default one); 0 if not imported. */
/* Dimension expressions in dim_param (ir/dimexpr.c). Whether a param is
 * an expression rather than one symbol name; the expression with symbol
 * `sym` replaced by v (NULL when it does not name it or on no memory); its
 * value when no symbol is left in it. */
bool kiln_dim_is_expr(const char *param);
char *kiln_dim_expr_subst(const char *expr, const char *sym, int64_t v);
bool kiln_dim_expr_value(const char *expr, int64_t *out);
int64_t kiln_model_opset(const kiln_model *m, const char *domain);

kiln_graph *kiln_graph_new(void);
void kiln_graph_destroy(kiln_graph *g);
void kiln_node_destroy(kiln_node *n);
void kiln_attr_clear(kiln_attr *a);
void kiln_type_clear(kiln_type *t);
kiln_status kiln_type_copy(kiln_type *dst, const kiln_type *src);
void kiln_value_info_clear(kiln_value_info *v);

/* Attribute look-ups (NULL / default when absent). */
const kiln_attr *kiln_node_attr(const kiln_node *n, const char *name);
int64_t kiln_attr_int(const kiln_node *n, const char *name, int64_t dflt);
float kiln_attr_float(const kiln_node *n, const char *name, float dflt);
/* Returns dflt when absent; the string is NUL-terminated. */
const char *kiln_attr_string(const kiln_node *n, const char *name, const char *dflt);
/* Count through *count; NULL when absent. */
const int64_t *kiln_attr_ints(const kiln_node *n, const char *name, size_t *count);
const float *kiln_attr_floats(const kiln_node *n, const char *name, size_t *count);
const kiln_tensor *kiln_attr_tensor(const kiln_node *n, const char *name);
const kiln_graph *kiln_attr_graph(const kiln_node *n, const char *name);
/* The getters above note an attribute found with another type; this returns
 * (and clears) that note, or NULL. */
const char *kiln_attr_mismatch_take(void);

/* Graph edits used by passes. */
kiln_status kiln_graph_add_node(kiln_graph *g, kiln_node *n); /* takes n */
void kiln_graph_remove_node(kiln_graph *g, size_t i);          /* destroys it */
kiln_status kiln_graph_add_init(kiln_graph *g, kiln_tensor *t); /* takes t */
void kiln_graph_remove_init(kiln_graph *g, size_t i);
kiln_tensor *kiln_graph_find_init(const kiln_graph *g, const char *name, size_t *index);
void kiln_graph_inits_changed(kiln_graph *g);
kiln_status kiln_graph_inits_reindex(kiln_graph *g);
kiln_value_info *kiln_graph_find_input(const kiln_graph *g, const char *name, size_t *index);

/* Names of the model-local functions; *names is malloc'd (free it), the
 * strings are borrowed. */
size_t kiln_model_function_names(const kiln_model *m, const char ***names);

/* ---- model-local functions (function.c) ---- */
void kiln_function_destroy(kiln_function *f);
/* Destroys all of m's functions and their look-up. */
void kiln_model_drop_functions(kiln_model *m);
/* Rebuilds the look-up after m->functions changed. Fails (naming them) on
 * two functions with the same domain, name and overload. */
kiln_status kiln_model_functions_changed(kiln_model *m);
/* The function a node calls (same domain, op_type and overload), or NULL. */
const kiln_function *kiln_model_find_function(const kiln_model *m, const char *domain, const char *name,
                                              const char *overload);
const kiln_function *kiln_node_function(const kiln_model *m, const kiln_node *n);
/* Its position in m->functions, or -1. */
long kiln_node_function_pos(const kiln_model *m, const kiln_node *n);
/* "domain.name" or "name" (and ":overload"), into buf. */
const char *kiln_function_label(const kiln_function *f, char *buf, size_t n);
/* The version f imports for a domain, or 0. */
int64_t kiln_function_opset(const kiln_function *f, const char *domain);
/* Refuses functions that call themselves, directly or through others
 * (naming the cycle), and chains of calls deeper than max_depth. */
kiln_status kiln_model_check_function_calls(const kiln_model *m, int max_depth);

/* Walks every graph (the graph, then nested subgraphs depth first). */
typedef kiln_status (*kiln_graph_visit_fn)(kiln_graph *g, int depth, void *ctx);
kiln_status kiln_graph_walk(kiln_graph *g, kiln_graph_visit_fn fn, void *ctx);

/* Tensor <-> protobuf (src/onnx/proto_tensor.c); used by the loader, the
 * saver and the .pb reader. `base_dir` resolves external data (NULL: refuse);
 * `maps` collects the mappings it opens. */
struct Onnx__TensorProto;
typedef struct kiln_slice {
    uint64_t offset, len;
} kiln_slice;
typedef struct kiln_ext_ctx {
    const char *base_dir;   /* NULL: external data refused */
    const char *model_path; /* for messages */
    kiln_buffer ***maps;
    size_t *n_maps;
    /* raw_data lifted out of the file by the loader's pre-pass */
    const kiln_slice *slices;
    size_t n_slices;
    const kiln_limits *limits; /* NULL: kiln_limits_default() */
} kiln_ext_ctx;
/* Field number of the marker the loader leaves where it lifted raw_data. */
#define KILN_RAW_MARKER_FIELD 536870000u
#define KILN_MAX_NESTING 64
kiln_status kiln_tensor_from_proto(struct Onnx__TensorProto *p, kiln_buffer *backing,
                                   const kiln_ext_ctx *ext, kiln_tensor *out);

/* IR tensor -> protobuf (data pointers borrowed from t, except string_data
 * and the packed raw_data of the sub-byte types; free with
 * kiln_tensor_proto_free). */
kiln_status kiln_tensor_to_proto(const kiln_tensor *t, struct Onnx__TensorProto *out);
/* The packed raw_data kiln_tensor_to_proto allocated, or NULL. */
uint8_t *kiln_tensor_proto_packed(const struct Onnx__TensorProto *p);
void kiln_tensor_proto_free(struct Onnx__TensorProto *p);

/* Sequence and optional values <-> SequenceProto / OptionalProto bytes, and
 * declared value kinds (src/onnx/proto_value.c). */
kiln_status kiln_value_from_bytes(const void *data, size_t len, kiln_value_kind kind, const char *path,
                                  kiln_tensor **out);
kiln_status kiln_value_to_bytes(const kiln_tensor *v, kiln_sbuf *out); /* free(out->data) */
/* The kind a value_info declares (UNKNOWN when untyped or a map / sparse
 * tensor), with its elements' kind and innermost element type (NULL: not
 * wanted). */
kiln_value_kind kiln_value_info_kind(const kiln_value_info *vi, kiln_value_kind *elem_kind, kiln_dtype *elem);
/* The same for a TYPE_PROTO attribute (Optional's `type`). */
kiln_value_kind kiln_attr_type_kind(const kiln_attr *a, kiln_value_kind *elem_kind, kiln_dtype *elem);
/* The declared type as text: "float32" for tensors, "seq(tensor(float32))",
 * "optional(seq(tensor(int64)))", "map(int64, tensor(float32))"... */
const char *kiln_value_info_type_str(const kiln_value_info *vi, char *buf, size_t n);
#endif
