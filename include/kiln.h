/* kiln: freeze, run and verify ONNX models.
 *
 * The one public header. Every fallible call returns a kiln_status; on
 * failure kiln_last_error() gives a message naming the file, node and value
 * at fault (thread-local, valid until the next failing call on that thread).
 * The library never prints, aborts or exits.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's public functions: libkiln.so exports these and
 * nothing else (it is built with hidden visibility). A program may define
 * KILN_API itself before including this header. */
#ifndef KILN_API
#if defined(__GNUC__) || defined(__clang__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif
#endif

/* The version of this header; kiln_version() gives the library's (they
 * differ only when a program is run against another build than it was
 * compiled with). libkiln.so's SONAME carries the major version (before
 * 1.0, also the minor: libkiln.so.0.1). */
#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.1.0"

/* "MAJOR.MINOR.PATCH" of the linked library; *major, *minor, *patch may be NULL. */
KILN_API const char *kiln_version(int *major, int *minor, int *patch);

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_IO,          /* file missing, unreadable, unwritable */
    KILN_ERR_PARSE,       /* bytes are not what they claim to be */
    KILN_ERR_INVALID,     /* well-formed but inconsistent model or value */
    KILN_ERR_ARG,         /* bad argument from the caller */
    KILN_ERR_UNSUPPORTED, /* valid, but kiln does not handle it (yet) */
    KILN_ERR_NOMEM,       /* allocation failed */
    KILN_ERR_LIMIT,       /* a configured limit was exceeded */
    KILN_ERR_RUNTIME,     /* an operator failed while running */
    KILN_ERR_MISMATCH     /* verification found differing outputs */
} kiln_status;

KILN_API const char *kiln_last_error(void);
KILN_API const char *kiln_status_name(kiln_status s);

/* Element types: the values of onnx.TensorProto.DataType. */
typedef enum kiln_dtype {
    KILN_DTYPE_UNDEFINED = 0,
    KILN_DTYPE_FLOAT = 1,
    KILN_DTYPE_UINT8 = 2,
    KILN_DTYPE_INT8 = 3,
    KILN_DTYPE_UINT16 = 4,
    KILN_DTYPE_INT16 = 5,
    KILN_DTYPE_INT32 = 6,
    KILN_DTYPE_INT64 = 7,
    KILN_DTYPE_STRING = 8,
    KILN_DTYPE_BOOL = 9,
    KILN_DTYPE_FLOAT16 = 10,
    KILN_DTYPE_DOUBLE = 11,
    KILN_DTYPE_UINT32 = 12,
    KILN_DTYPE_UINT64 = 13,
    KILN_DTYPE_COMPLEX64 = 14,
    KILN_DTYPE_COMPLEX128 = 15,
    KILN_DTYPE_BFLOAT16 = 16,
    KILN_DTYPE_FLOAT8E4M3FN = 17,   /* 1-4-3, bias 7, NaN S.1111.111, no inf, max 448 */
    KILN_DTYPE_FLOAT8E4M3FNUZ = 18, /* 1-4-3, bias 8, NaN 0x80, no inf, no -0, max 240 */
    KILN_DTYPE_FLOAT8E5M2 = 19,     /* 1-5-2, bias 15, IEEE-like: inf and NaNs, max 57344 */
    KILN_DTYPE_FLOAT8E5M2FNUZ = 20, /* 1-5-2, bias 16, NaN 0x80, no inf, no -0, max 57344 */
    KILN_DTYPE_UINT4 = 21,          /* 0..15 */
    KILN_DTYPE_INT4 = 22,           /* -8..7 */
    KILN_DTYPE_FLOAT4E2M1 = 23,     /* 1-2-1, bias 1, no NaN or inf, max 6 */
    KILN_DTYPE_FLOAT8E8M0 = 24,     /* 2^(e-127), 0xff NaN: scales of MX formats */
    KILN_DTYPE_UINT2 = 25,          /* 0..3 */
    KILN_DTYPE_INT2 = 26,           /* -2..1 */
    KILN_DTYPE_FLOAT6E2M3 = 27,     /* 1-2-3, bias 1, no NaN or inf, max 7.5 */
    KILN_DTYPE_FLOAT6E3M2 = 28      /* 1-3-2, bias 3, no NaN or inf, max 28 */
} kiln_dtype;

/* In memory every element type takes whole bytes: the types narrower than a
 * byte take one byte per element, so kernels index them like uint8/int8.
 * INT4 and INT2 hold the value as a sign-extended int8, UINT4 and UINT2 as a
 * uint8, FLOAT4E2M1 and FLOAT6E* their bit code in the low bits (the upper
 * bits zero), the float8 types their 8-bit code. Only serialised tensors
 * (TensorProto raw_data, int32_data and external data, hence .pb files and
 * models) pack them, as ONNX defines: two 4-bit elements per byte (the first
 * in the low nibble), four 2-bit elements per byte (the first in bits 0-1),
 * four 6-bit elements per 3 bytes (least significant bit first). */

#define KILN_MAX_RANK 16

KILN_API const char *kiln_dtype_name(kiln_dtype t);
/* Bytes per element in memory (1 for the sub-byte types, see above); 0 for
 * STRING and UNDEFINED. */
KILN_API size_t kiln_dtype_size(kiln_dtype t);

/* ---- tensors ------------------------------------------------------------ */

typedef struct kiln_tensor kiln_tensor;

/* A new tensor of zeros (strings: empty). */
KILN_API kiln_status kiln_tensor_create(kiln_dtype dtype, int rank, const int64_t *dims,
                                        kiln_tensor **out);
/* A new tensor holding a copy of `data` (nbytes must match). */
KILN_API kiln_status kiln_tensor_create_copy(kiln_dtype dtype, int rank, const int64_t *dims,
                                             const void *data, size_t nbytes, kiln_tensor **out);
/* A tensor over the caller's memory, without a copy. `data` (nbytes, which
 * must match; aligned to the element size) must stay valid and unchanged
 * until release(ctx) is called: when the last tensor sharing it is destroyed,
 * which may be after kiln_tensor_destroy on this one (a session keeps a state
 * output that is a view of its input). release may be NULL. kiln never
 * writes into it (see kiln_tensor_make_writable). Not for STRING. */
KILN_API kiln_status kiln_tensor_wrap(kiln_dtype dtype, int rank, const int64_t *dims, void *data, size_t nbytes,
                                      void (*release)(void *ctx), void *ctx, kiln_tensor **out);
/* Makes t's data its own: copies it when it is shared with another tensor
 * (a session's state, another output), with the model (an output that is an
 * initializer, possibly in the read-only mapped file) or is caller memory
 * (kiln_tensor_wrap). Without a copy the data may be written in place. */
KILN_API kiln_status kiln_tensor_make_writable(kiln_tensor *t);
KILN_API void kiln_tensor_destroy(kiln_tensor *t);
KILN_API kiln_dtype kiln_tensor_dtype(const kiln_tensor *t);
KILN_API int kiln_tensor_rank(const kiln_tensor *t);
KILN_API const int64_t *kiln_tensor_dims(const kiln_tensor *t);
KILN_API int64_t kiln_tensor_numel(const kiln_tensor *t);
KILN_API size_t kiln_tensor_nbytes(const kiln_tensor *t);
/* The elements, writable. A tensor that shares its memory (a run's output
 * that views an input, a weight or the carried state; a mapped weight) is
 * first given its own copy, so writing never changes anything else; NULL
 * when that copy cannot be made. kiln_tensor_data_const never copies. */
KILN_API void *kiln_tensor_data(kiln_tensor *t);
KILN_API const void *kiln_tensor_data_const(const kiln_tensor *t);
/* For STRING tensors: element i and its length. */
KILN_API const char *kiln_tensor_string(const kiln_tensor *t, int64_t i, size_t *len);
/* For STRING tensors: element i becomes a copy of the len bytes at s. */
KILN_API kiln_status kiln_tensor_set_string(kiln_tensor *t, int64_t i, const char *s, size_t len);
/* Element i (in row-major order) of a numeric or bool tensor as a double:
 * float16, bfloat16 and the float8/6/4 types decoded, 4- and 2-bit integers
 * by value, 64-bit integers rounded beyond 2^53, bool as 0 or 1.
 * KILN_ERR_ARG when t is not a tensor or i is out of range;
 * KILN_ERR_UNSUPPORTED for STRING, COMPLEX64, COMPLEX128 and UNDEFINED
 * (*out is left alone on failure). */
KILN_API kiln_status kiln_tensor_element_f64(const kiln_tensor *t, int64_t i, double *out);

/* ---- sequences and optionals -------------------------------------------
 * Besides tensors, ONNX values may be sequences (of tensors; files may also
 * nest sequences and optionals in them) and optionals (empty, or holding a
 * tensor or a sequence). kiln carries them in the same kiln_tensor handle:
 * kiln_value_kind_of tells which. Such a handle has element type UNDEFINED,
 * rank 0 and no data; kiln_tensor_destroy frees it with its elements.
 * Sessions take them as inputs and give them as outputs like tensors. */

typedef enum kiln_value_kind {
    KILN_VALUE_TENSOR = 0,
    KILN_VALUE_SEQUENCE = 1,
    KILN_VALUE_OPTIONAL = 2,
    KILN_VALUE_UNKNOWN = 3 /* undeclared, or a kind kiln does not carry (map, sparse tensor) */
} kiln_value_kind;

KILN_API kiln_value_kind kiln_value_kind_of(const kiln_tensor *v);
/* "tensor", "sequence", "optional", "unknown". */
KILN_API const char *kiln_value_kind_name(kiln_value_kind k);
/* A new sequence of items[0..n) (copies that share the items' data); elem:
 * the element type of an empty sequence (UNDEFINED: unknown); items must be
 * tensors of that type. */
KILN_API kiln_status kiln_sequence_create(kiln_dtype elem, size_t n, const kiln_tensor *const *items,
                                          kiln_tensor **out);
KILN_API size_t kiln_sequence_length(const kiln_tensor *s); /* 0 for what is not a sequence */
/* Element i, borrowed; NULL when out of range or not a sequence. */
KILN_API const kiln_tensor *kiln_sequence_at(const kiln_tensor *s, size_t i);
/* A new optional holding a copy (sharing data) of `value`, a tensor or a
 * sequence; value NULL: an empty optional. */
KILN_API kiln_status kiln_optional_create(const kiln_tensor *value, kiln_tensor **out);
/* The value an optional holds, borrowed; NULL when empty or not an optional. */
KILN_API const kiln_tensor *kiln_optional_value(const kiln_tensor *o);

/* Tensor files: .npy (numpy) and .pb (onnx.TensorProto); by extension. */
KILN_API kiln_status kiln_tensor_load(const char *path, kiln_tensor **out);
KILN_API kiln_status kiln_tensor_save(const kiln_tensor *t, const char *path);
KILN_API kiln_status kiln_npy_read(const char *path, kiln_tensor **out);
KILN_API kiln_status kiln_npy_write(const kiln_tensor *t, const char *path);
KILN_API kiln_status kiln_pb_read(const char *path, kiln_tensor **out);
/* kiln_pb_write writes a sequence as onnx.SequenceProto and an optional as
 * onnx.OptionalProto. Their bytes do not say which message they hold, so
 * reading one takes the kind expected (TENSOR reads what kiln_pb_read does). */
KILN_API kiln_status kiln_pb_write(const kiln_tensor *t, const char *path);
KILN_API kiln_status kiln_pb_read_value(const char *path, kiln_value_kind kind, kiln_tensor **out);

/* Parses a value as given on a command line: `@file.npy`, `@file.pb`, a
 * number, `true`/`false`, or a nested list (`[[1,2],[3,4]]`). Literals take
 * `dtype` when it is not UNDEFINED (else int64 for integers, float32 for
 * anything with a point or exponent, bool for true/false). */
KILN_API kiln_status kiln_value_parse(const char *text, kiln_dtype dtype, kiln_tensor **out);

/* ---- models ------------------------------------------------------------- */

typedef struct kiln_model kiln_model;

KILN_API kiln_status kiln_model_load(const char *path, kiln_model **out);

/* Bounds a model must stay within; checked before anything is allocated for
 * it, so a hostile file fails with KILN_ERR_LIMIT instead of exhausting
 * memory or the stack. kiln_model_load uses kiln_limits_default(). */
typedef struct kiln_limits {
    /* Largest tensor, in bytes: initializers and tensor attributes when
     * loading (and the decoded message tree as a whole); the session also
     * holds every value it computes to it. */
    uint64_t max_tensor_bytes;
    int max_rank;          /* at most KILN_MAX_RANK */
    uint64_t max_nodes;    /* nodes in the model, subgraphs included */
    int max_nesting;       /* subgraphs inside subgraphs (If/Loop/Scan) */
    uint64_t max_string_bytes; /* any name, attribute or string element */
} kiln_limits;

/* 2 GiB tensors, rank KILN_MAX_RANK, 1,000,000 nodes, nesting 64, 16 MiB strings. */
KILN_API kiln_limits kiln_limits_default(void);
/* limits NULL: the defaults. Zero fields also take their default. */
KILN_API kiln_status kiln_model_load_ex(const char *path, const kiln_limits *limits, kiln_model **out);
KILN_API void kiln_model_destroy(kiln_model *m);
/* A model from `size` bytes of a serialised ModelProto, copied (the caller
 * may free `data` on return). External data is looked up in `base_dir`
 * (NULL: a model with external data is refused). `name` is used in messages
 * (NULL: "<memory>"); limits NULL: the defaults. */
KILN_API kiln_status kiln_model_load_buffer(const void *data, size_t size, const char *name, const char *base_dir,
                                            const kiln_limits *limits, kiln_model **out);

typedef struct kiln_save_options {
    /* With external data, tensors of at least this many bytes go to one data
     * file beside the model (offsets aligned to 64 bytes); 0: 1024. Set
     * alone (external 0), it asks for external data. */
    size_t external_threshold;
    /* 0: external data when the model was loaded with external data or
     * external_threshold is set; 1: external data; -1: every tensor inside
     * the model file. Whatever this says, a model whose file would pass
     * 2 GB (protobuf's limit) is saved with external data. */
    int external;
    /* The data file's name, in the model's folder; NULL: "<model file
     * name>.<16 hex digits of the data's SHA-256>.data", so a new data file
     * never replaces the one the old model on disk reads. */
    const char *external_file;
} kiln_save_options;

/* Writes to a temporary file beside `path`, renamed into place when
 * complete. With external data the data file is written and renamed first,
 * then the model, then the data files of the model it replaced (kiln's
 * names for this path) are removed: at every moment the model at `path`
 * loads with its data. Untouched tensors loaded from external data are
 * copied file to file (copy_file_range) where the system allows. */
KILN_API kiln_status kiln_model_save(const kiln_model *m, const char *path,
                                     const kiln_save_options *opts);

/* The graph checks every model must pass before it is planned, frozen or
 * written: each name a node, subgraph or graph output reads resolves to a
 * value (a subgraph's in its own or an enclosing graph), no value is produced
 * twice, no cycle, attribute types, no attribute reference outside a
 * function; local functions' bodies too. Returns KILN_ERR_INVALID with the
 * first problem as the message (naming the node and value); `problems` (may
 * be NULL) gets all of them, one per line, malloc'd (NULL when none). */
KILN_API kiln_status kiln_model_validate(const kiln_model *m, char **problems);

/* The model as ModelProto bytes (every tensor inside), malloc'd into *data;
 * free(). Fails with KILN_ERR_LIMIT beyond protobuf's 2 GiB (save with
 * external data instead). */
KILN_API kiln_status kiln_model_serialize(const kiln_model *m, void **data, size_t *size);

/* Human-readable (json = 0) or JSON (json = 1) summary, malloc'd; free(). */
KILN_API kiln_status kiln_model_describe(const kiln_model *m, int json, char **out);

KILN_API size_t kiln_model_input_count(const kiln_model *m);
KILN_API const char *kiln_model_input_name(const kiln_model *m, size_t i);
/* The model's metadata_props: entry i's key, with its value in *value
 * (value may be NULL); NULL past the end. Both are borrowed from the model
 * ("" for an unset key or value) and stay valid until it is changed or
 * destroyed. */
KILN_API size_t kiln_model_metadata_count(const kiln_model *m);
KILN_API const char *kiln_model_metadata(const kiln_model *m, size_t i, const char **value);

/* Declared element type of graph input `name` (UNDEFINED when unknown). */
KILN_API kiln_dtype kiln_model_input_dtype(const kiln_model *m, const char *name);
KILN_API size_t kiln_model_output_count(const kiln_model *m);
KILN_API const char *kiln_model_output_name(const kiln_model *m, size_t i);
/* Declared kind of graph input / output `name` (UNKNOWN when not declared
 * or not a graph input / output). */
KILN_API kiln_value_kind kiln_model_input_kind(const kiln_model *m, const char *name);
KILN_API kiln_value_kind kiln_model_output_kind(const kiln_model *m, const char *name);

/* The declared type of a graph input or output. */
typedef struct kiln_value_type {
    kiln_dtype dtype; /* UNDEFINED when not declared (or not a tensor: then rank is -1) */
    int rank;         /* -1 when the shape is not declared */
    int64_t dims[KILN_MAX_RANK];         /* >= 0: fixed; -1: symbolic or unknown */
    const char *symbols[KILN_MAX_RANK];  /* a symbolic dim's name or expression ("batch",
                                            "2*seq"), NULL for fixed and unknown dims;
                                            borrowed from the model */
} kiln_value_type;

/* Input i in kiln_model_input_name's numbering (inputs without an
 * initializer default) / output i. */
KILN_API kiln_status kiln_model_input_type(const kiln_model *m, size_t i, kiln_value_type *out);
KILN_API kiln_status kiln_model_output_type(const kiln_model *m, size_t i, kiln_value_type *out);

/* ---- pictures -------------------------------------------------------------
 * Graphviz DOT text of a model: one box per node with its operator, name and
 * output shapes (symbolic dims by name, as inferred from the declared
 * inputs), initializers folded into their consumer's box with their shapes,
 * graph inputs and outputs as ellipses, subgraphs (If/Loop/Scan bodies) as
 * clusters. With `frozen`, `m` is taken as the model before freezing and is
 * drawn with what freezing removed, folded into constants and bound marked
 * (with a legend), beside the frozen model. */
typedef struct kiln_picture_options {
    const kiln_model *frozen; /* NULL: just `m` */
    /* Inputs bound when freezing (inputs that became initializers are found
     * without it); may be 0 / NULL. */
    size_t n_bound;
    const char *const *bound;
    const char *title; /* graph label; NULL: the model's graph name */
} kiln_picture_options;

/* malloc'd DOT text into *dot; free(). opts may be NULL. */
KILN_API kiln_status kiln_model_picture(const kiln_model *m, const kiln_picture_options *opts, char **dot);

/* ---- sessions ----------------------------------------------------------- */

typedef struct kiln_session kiln_session;

typedef struct kiln_session_options {
    int threads;             /* 0: one per core */
    size_t max_tensor_bytes; /* largest tensor an operator may make; 0: the model's kiln_limits */
} kiln_session_options;

/* The session borrows the model; keep the model alive while it exists.
 * Sessions on one model may run at the same time on different threads. A
 * session runs one call at a time: kiln_session_run called while another
 * thread's call on the same session is running fails with KILN_ERR_ARG
 * ("already running"), leaving the session as it was. */
KILN_API kiln_status kiln_session_create(const kiln_model *m, const kiln_session_options *opts,
                                         kiln_session **out);
KILN_API void kiln_session_destroy(kiln_session *s);

/* Runs the graph. Inputs are borrowed. outputs[i] receives a new tensor the
 * caller destroys; output_names may be NULL for all graph outputs in order
 * (n_outputs must then equal kiln_model_output_count). */
KILN_API kiln_status kiln_session_run(kiln_session *s, size_t n_inputs, const char *const *input_names,
                                      const kiln_tensor *const *inputs, size_t n_outputs,
                                      const char *const *output_names, kiln_tensor **outputs);

/* ---- recurrent state carried from run to run ---------------------------
 * A state pair is a graph input and the graph output that holds its next
 * value. After each run the output becomes the next run's input, so a stream
 * processed chunk by chunk equals one call on the whole stream. State starts
 * as zeros (dynamic dims take their size from other inputs of the first run
 * that share the symbol) or from a value set with kiln_session_set_state.
 * A caller may still pass a state input explicitly: that value is used and
 * the pair carries on from its output. */

/* Declares a pair; dtypes and declared shapes must agree. */
KILN_API kiln_status kiln_session_add_state(kiln_session *s, const char *input, const char *output);
/* Adds the pairs kiln finds (see kiln_model_find_states); *added = count. */
KILN_API kiln_status kiln_session_add_found_states(kiln_session *s, const char *convention, size_t *added);
KILN_API size_t kiln_session_state_count(const kiln_session *s);
KILN_API const char *kiln_session_state_input(const kiln_session *s, size_t i);
KILN_API const char *kiln_session_state_output(const kiln_session *s, size_t i);
/* A copy of the current value of the state fed to `input` (NULL *out when
 * the state is still the implicit zero state). */
KILN_API kiln_status kiln_session_get_state(const kiln_session *s, const char *input, kiln_tensor **out);
KILN_API kiln_status kiln_session_set_state(kiln_session *s, const char *input, const kiln_tensor *value);
/* Back to zeros. */
KILN_API void kiln_session_reset_state(kiln_session *s);
/* DIR/<input name>.npy for every pair with a current value. */
KILN_API kiln_status kiln_session_save_state(const kiln_session *s, const char *dir);
KILN_API kiln_status kiln_session_load_state(kiln_session *s, const char *dir);

/* State pairs found in a model: the initial_h/initial_c inputs and Y_h/Y_c
 * outputs of LSTM/GRU/RNN nodes wired straight to graph inputs and outputs
 * (or through per-layer Slices of one input and a Concat of the layers),
 * and, with a convention such as "past_*=present_*", inputs and outputs whose
 * names pair up by it (NULL: none). ins/outs are malloc'd arrays of borrowed
 * names (free the arrays). */
KILN_API kiln_status kiln_model_find_states(const kiln_model *m, const char *convention, size_t *n, const char ***ins,
                                            const char ***outs);

/* Bytes the session's allocator held at its peak. */
KILN_API size_t kiln_session_peak_bytes(const kiln_session *s);

/* ---- streaming in chunks -------------------------------------------------
 * One long input processed as a stream: the inputs to split are cut along
 * `axis` into consecutive chunks, the session runs once per chunk in order
 * (its state pairs carry each chunk's state to the next, so for a causal
 * model the result equals one call on the whole input), and the chunks'
 * outputs are joined along `axis`. */

typedef struct kiln_chunk_options {
    int axis;           /* the axis inputs are split and outputs joined along (>= 0) */
    int64_t chunk_size; /* elements along `axis` per chunk (the last may be shorter) */
    int64_t chunks;     /* or, with chunk_size 0: the number of chunks, of equal size
                           rounded up (fewer when the input is shorter) */
    /* Per input (input_names' order): non-zero to split it, 0 to give it
     * whole to every chunk. NULL: split every input that is a tensor with
     * more than `axis` dims and not a state input. */
    const unsigned char *split;
} kiln_chunk_options;

/* Runs the session over the inputs chunk by chunk. Inputs, outputs and
 * output_names are as for kiln_session_run; inputs are borrowed, outputs[i]
 * receives a new tensor the caller destroys. A state input among the inputs
 * is fed to the first chunk only (it seeds the state). An output that is a
 * state output, or has no axis `axis`, is the last chunk's (for state: the
 * final state); the others are every chunk's joined along `axis`. An empty
 * input (length 0) is one chunk. Errors: KILN_ERR_ARG for bad options
 * (opts NULL, neither chunk_size nor chunks), when an input to split has no
 * axis `axis`, when the inputs to split differ in length along it, or when
 * nothing is split; a chunk that fails returns its run's status with the
 * message prefixed by "chunk I of N: " (when N > 1); outputs whose chunks
 * differ in type or other dims cannot be joined: KILN_ERR_INVALID, "output
 * 'NAME': ...". On failure every outputs[i] is NULL, and the state pairs
 * hold the state after the last chunk that ran. */
KILN_API kiln_status kiln_session_run_chunked(kiln_session *s, size_t n_inputs, const char *const *input_names,
                                              const kiln_tensor *const *inputs, const kiln_chunk_options *opts,
                                              size_t n_outputs, const char *const *output_names,
                                              kiln_tensor **outputs);

/* ---- profiling ------------------------------------------------------------
 * With profiling on, a session times every node it runs (CLOCK_MONOTONIC
 * around the operator's work) and adds the time to the node's record. Nodes
 * in subgraphs (If branches, Loop and Scan bodies) get records of their own,
 * named "<enclosing node>/<node>" and with depth > 0; their time is also in
 * the enclosing node's, so records of different depths overlap. A Conv the
 * engine fused with the Relu or Clip after it is one record (`fused` names
 * the activation). Records are listed in the order the nodes first ran
 * (the main graph's in plan order first) and accumulate across runs until
 * kiln_session_profile_reset. Off, it costs a branch per node. Call these
 * between runs, not while another thread is running the session. */

typedef struct kiln_profile_record {
    const char *name;   /* unnamed nodes: "<op>#<index in the plan>" */
    const char *op;     /* the node's op_type */
    const char *domain; /* "" for ai.onnx */
    const char *fused;  /* "Relu" / "Clip" run inside this node, or NULL */
    const char *shape;  /* output 0 at the last call: "[1,64,56,56]", a value type
                           ("seq(tensor(float))"), or "-" when not produced */
    int shape_varies;   /* output 0 had different shapes in different calls */
    int depth;          /* 0: a node of the main graph; n: inside n subgraphs */
    uint64_t total_ns;  /* summed over calls */
    uint64_t calls;
} kiln_profile_record;

/* Turns timing on or off for the following runs; the records stay. */
KILN_API void kiln_session_set_profiling(kiln_session *s, int on);
KILN_API int kiln_session_profiling(const kiln_session *s);
KILN_API size_t kiln_session_profile_count(const kiln_session *s);
/* Record i (0 .. count-1); its strings stay valid until the session is
 * destroyed. KILN_ERR_ARG past the end. */
KILN_API kiln_status kiln_session_profile_record(const kiln_session *s, size_t i, kiln_profile_record *out);
/* Sets every record's time and calls to zero (the records and their
 * strings stay; profiling stays on or off). */
KILN_API void kiln_session_profile_reset(kiln_session *s);

/* ---- freezing ------------------------------------------------------------
 * What functools.partial(model.forward, **frozen) does in PyTorch, done on
 * the ONNX graph: bind inputs to constants, fix dynamic dimensions, then
 * kiln_model_freeze folds what became static (shape arithmetic, constant
 * subgraphs through kiln's engine, If on constant conditions, Loops with
 * constant trip counts) and prunes what is left unused. All operate on the
 * model in memory; save it with kiln_model_save. */

typedef struct kiln_freeze_report kiln_freeze_report;

KILN_API kiln_status kiln_freeze_report_create(kiln_freeze_report **out);
KILN_API void kiln_freeze_report_destroy(kiln_freeze_report *r);
/* Human-readable summary / JSON, malloc'd; free(). */
KILN_API kiln_status kiln_report_text(const kiln_freeze_report *r, char **out);
KILN_API kiln_status kiln_report_json(const kiln_freeze_report *r, char **out);

/* The report's numbers as a structure (kiln_report_json has the same and the
 * lists: inputs removed, dims fixed, folds skipped with their reasons). */
typedef struct kiln_report_summary {
    int64_t nodes_before, nodes_after; /* subgraphs included */
    int64_t function_calls_inlined, ifs_inlined, loops_unrolled, nodes_folded, shape_values_folded;
    int64_t bytes_before, bytes_after; /* initializer bytes */
    size_t inputs_removed, dims_fixed, folds_skipped, functions_kept;
} kiln_report_summary;
KILN_API kiln_status kiln_report_summary_get(const kiln_freeze_report *r, kiln_report_summary *out);
/* Operators whose node count the report tracks: the i-th name (NULL past
 * the end) and its counts before and after (either may be NULL). */
KILN_API size_t kiln_report_op_count(const kiln_freeze_report *r);
KILN_API const char *kiln_report_op(const kiln_freeze_report *r, size_t i, int64_t *before, int64_t *after);

/* Input `name` becomes an initializer holding a copy of `value`. Its dtype
 * and shape must match the declared type; symbolic dimensions take the
 * value's sizes and are fixed everywhere they appear. `report` may be NULL. */
KILN_API kiln_status kiln_model_bind(kiln_model *m, const char *name, const kiln_tensor *value,
                                     kiln_freeze_report *report);
/* Every dimension named `symbol` becomes `value`. */
KILN_API kiln_status kiln_model_fix_dim(kiln_model *m, const char *symbol, int64_t value, kiln_freeze_report *report);
/* Input `input` gets these dims (symbols among them are fixed everywhere). */
KILN_API kiln_status kiln_model_fix_shape(kiln_model *m, const char *input, int rank, const int64_t *dims,
                                          kiln_freeze_report *report);

typedef struct kiln_freeze_options {
    int64_t unroll_limit;      /* max Loop iterations to unroll; 0: 64, < 0: never */
    int64_t unroll_node_limit; /* max nodes an unrolled Loop may add; 0: 4096 */
    int64_t fold_limit;        /* bytes a growing fold may produce; 0: 1 MiB, < 0: no limit */
    int prune_dead_inputs;     /* remove graph inputs nothing reads */
    int keep_functions;        /* leave calls of model-local functions and the functions as they are
                                  (default: inline them first, then drop the functions nothing calls) */
    int64_t target_opset;      /* 0: keep the opset; else kiln_model_convert to it as the last step */
} kiln_freeze_options;

/* Runs the passes. opts and report may be NULL. */
KILN_API kiln_status kiln_model_freeze(kiln_model *m, const kiln_freeze_options *opts, kiln_freeze_report *report);

/* Converts the model to ai.onnx opset `opset` (1..28), up or down. Each node
 * moves one schema version at a time: attributes that became inputs (and
 * back) when their value is constant, attributes dropped when they hold
 * their default, element types the target does not allow computed in a
 * wider type between Casts where that is exact; operators the target lacks
 * are decomposed into ones it has. Local functions are inlined first.
 * `report` (may be NULL) lists every change (kiln_report_json: "convert").
 * A node that cannot be expressed at the target is refused: KILN_ERR_UNSUPPORTED
 * naming the node, operator and reason (the report lists every refusal),
 * and the model is left part-converted: reload it. */
KILN_API kiln_status kiln_model_convert(kiln_model *m, int64_t opset, kiln_freeze_report *report);

typedef struct kiln_check_options {
    int runs;          /* 0: 3 */
    uint64_t seed;     /* random inputs */
    double rtol, atol; /* 0, 0: 1e-4, 1e-5 */
    const char *inputs_dir; /* DIR/<input>.npy (or .pb: sequences, optionals) used when present */
    int threads;
    /* Called for each output of each run (may be NULL): the errors between
     * original and frozen (max_abs and max_rel are 0 when the shapes or types
     * differ, ok is then 0) and whether they are within the tolerances. */
    void (*on_output)(void *ctx, int run, const char *output, double max_abs, double max_rel, int ok);
    void *ctx;
} kiln_check_options;

/* Runs `original` (fed the bound values as inputs) and `frozen` on the same
 * seeded inputs and compares every output. *text (malloc'd, may be NULL)
 * gets one line per output and run with max abs / rel error. Returns
 * KILN_ERR_MISMATCH when an output differs. */
KILN_API kiln_status kiln_check(const kiln_model *original, const kiln_model *frozen, size_t n_bound,
                                const char *const *bound_names, const kiln_tensor *const *bound_values,
                                const kiln_check_options *opts, char **text);

#ifdef __cplusplus
}
#endif
#endif
