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

const char *kiln_last_error(void);
const char *kiln_status_name(kiln_status s);

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

const char *kiln_dtype_name(kiln_dtype t);
/* Bytes per element in memory (1 for the sub-byte types, see above); 0 for
 * STRING and UNDEFINED. */
size_t kiln_dtype_size(kiln_dtype t);

/* ---- tensors ------------------------------------------------------------ */

typedef struct kiln_tensor kiln_tensor;

/* A new tensor of zeros (strings: empty). */
kiln_status kiln_tensor_create(kiln_dtype dtype, int rank, const int64_t *dims,
                               kiln_tensor **out);
/* A new tensor holding a copy of `data` (nbytes must match). */
kiln_status kiln_tensor_create_copy(kiln_dtype dtype, int rank, const int64_t *dims,
                                    const void *data, size_t nbytes, kiln_tensor **out);
void kiln_tensor_destroy(kiln_tensor *t);
kiln_dtype kiln_tensor_dtype(const kiln_tensor *t);
int kiln_tensor_rank(const kiln_tensor *t);
const int64_t *kiln_tensor_dims(const kiln_tensor *t);
int64_t kiln_tensor_numel(const kiln_tensor *t);
size_t kiln_tensor_nbytes(const kiln_tensor *t);
void *kiln_tensor_data(kiln_tensor *t);
const void *kiln_tensor_data_const(const kiln_tensor *t);
/* For STRING tensors: element i and its length. */
const char *kiln_tensor_string(const kiln_tensor *t, int64_t i, size_t *len);

/* Tensor files: .npy (numpy) and .pb (onnx.TensorProto); by extension. */
kiln_status kiln_tensor_load(const char *path, kiln_tensor **out);
kiln_status kiln_tensor_save(const kiln_tensor *t, const char *path);
kiln_status kiln_npy_read(const char *path, kiln_tensor **out);
kiln_status kiln_npy_write(const kiln_tensor *t, const char *path);
kiln_status kiln_pb_read(const char *path, kiln_tensor **out);
kiln_status kiln_pb_write(const kiln_tensor *t, const char *path);

/* Parses a value as given on a command line: `@file.npy`, `@file.pb`, a
 * number, `true`/`false`, or a nested list (`[[1,2],[3,4]]`). Literals take
 * `dtype` when it is not UNDEFINED (else int64 for integers, float32 for
 * anything with a point or exponent, bool for true/false). */
kiln_status kiln_value_parse(const char *text, kiln_dtype dtype, kiln_tensor **out);

/* ---- models ------------------------------------------------------------- */

typedef struct kiln_model kiln_model;

kiln_status kiln_model_load(const char *path, kiln_model **out);

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
kiln_limits kiln_limits_default(void);
/* limits NULL: the defaults. Zero fields also take their default. */
kiln_status kiln_model_load_ex(const char *path, const kiln_limits *limits, kiln_model **out);
void kiln_model_destroy(kiln_model *m);

typedef struct kiln_save_options {
    /* Tensors of at least this many bytes go to one side file
     * (`<output name>.data`, offsets aligned to 64 bytes); 0 keeps every
     * tensor inside the model file. */
    size_t external_threshold;
} kiln_save_options;

/* Writes to a temporary file beside `path`, renamed into place when complete. */
kiln_status kiln_model_save(const kiln_model *m, const char *path,
                            const kiln_save_options *opts);

/* Human-readable (json = 0) or JSON (json = 1) summary, malloc'd; free(). */
kiln_status kiln_model_describe(const kiln_model *m, int json, char **out);

size_t kiln_model_input_count(const kiln_model *m);
const char *kiln_model_input_name(const kiln_model *m, size_t i);
/* Declared element type of graph input `name` (UNDEFINED when unknown). */
kiln_dtype kiln_model_input_dtype(const kiln_model *m, const char *name);
size_t kiln_model_output_count(const kiln_model *m);
const char *kiln_model_output_name(const kiln_model *m, size_t i);

/* ---- sessions ----------------------------------------------------------- */

typedef struct kiln_session kiln_session;

typedef struct kiln_session_options {
    int threads;             /* 0: one per core */
    size_t max_tensor_bytes; /* largest tensor an operator may make; 0: the model's kiln_limits */
} kiln_session_options;

/* The session borrows the model; keep the model alive while it exists. */
kiln_status kiln_session_create(const kiln_model *m, const kiln_session_options *opts,
                                kiln_session **out);
void kiln_session_destroy(kiln_session *s);

/* Runs the graph. Inputs are borrowed. outputs[i] receives a new tensor the
 * caller destroys; output_names may be NULL for all graph outputs in order
 * (n_outputs must then equal kiln_model_output_count). */
kiln_status kiln_session_run(kiln_session *s, size_t n_inputs, const char *const *input_names,
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
kiln_status kiln_session_add_state(kiln_session *s, const char *input, const char *output);
/* Adds the pairs kiln finds (see kiln_model_find_states); *added = count. */
kiln_status kiln_session_add_found_states(kiln_session *s, const char *convention, size_t *added);
size_t kiln_session_state_count(const kiln_session *s);
const char *kiln_session_state_input(const kiln_session *s, size_t i);
const char *kiln_session_state_output(const kiln_session *s, size_t i);
/* A copy of the current value of the state fed to `input` (NULL *out when
 * the state is still the implicit zero state). */
kiln_status kiln_session_get_state(const kiln_session *s, const char *input, kiln_tensor **out);
kiln_status kiln_session_set_state(kiln_session *s, const char *input, const kiln_tensor *value);
/* Back to zeros. */
void kiln_session_reset_state(kiln_session *s);
/* DIR/<input name>.npy for every pair with a current value. */
kiln_status kiln_session_save_state(const kiln_session *s, const char *dir);
kiln_status kiln_session_load_state(kiln_session *s, const char *dir);

/* State pairs found in a model: the initial_h/initial_c inputs and Y_h/Y_c
 * outputs of LSTM/GRU/RNN nodes wired straight to graph inputs and outputs,
 * and, with a convention such as "past_*=present_*", inputs and outputs whose
 * names pair up by it (NULL: none). ins/outs are malloc'd arrays of borrowed
 * names (free the arrays). */
kiln_status kiln_model_find_states(const kiln_model *m, const char *convention, size_t *n, const char ***ins,
                                   const char ***outs);

/* Bytes the session's allocator held at its peak. */
size_t kiln_session_peak_bytes(const kiln_session *s);

/* ---- freezing ------------------------------------------------------------
 * What functools.partial(model.forward, **frozen) does in PyTorch, done on
 * the ONNX graph: bind inputs to constants, fix dynamic dimensions, then
 * kiln_model_freeze folds what became static (shape arithmetic, constant
 * subgraphs through kiln's engine, If on constant conditions, Loops with
 * constant trip counts) and prunes what is left unused. All operate on the
 * model in memory; save it with kiln_model_save. */

typedef struct kiln_freeze_report kiln_freeze_report;

kiln_status kiln_freeze_report_create(kiln_freeze_report **out);
void kiln_freeze_report_destroy(kiln_freeze_report *r);
/* Human-readable summary / JSON, malloc'd; free(). */
kiln_status kiln_report_text(const kiln_freeze_report *r, char **out);
kiln_status kiln_report_json(const kiln_freeze_report *r, char **out);

/* Input `name` becomes an initializer holding a copy of `value`. Its dtype
 * and shape must match the declared type; symbolic dimensions take the
 * value's sizes and are fixed everywhere they appear. `report` may be NULL. */
kiln_status kiln_model_bind(kiln_model *m, const char *name, const kiln_tensor *value, kiln_freeze_report *report);
/* Every dimension named `symbol` becomes `value`. */
kiln_status kiln_model_fix_dim(kiln_model *m, const char *symbol, int64_t value, kiln_freeze_report *report);
/* Input `input` gets these dims (symbols among them are fixed everywhere). */
kiln_status kiln_model_fix_shape(kiln_model *m, const char *input, int rank, const int64_t *dims,
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
kiln_status kiln_model_freeze(kiln_model *m, const kiln_freeze_options *opts, kiln_freeze_report *report);

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
kiln_status kiln_model_convert(kiln_model *m, int64_t opset, kiln_freeze_report *report);

typedef struct kiln_check_options {
    int runs;          /* 0: 3 */
    uint64_t seed;     /* random inputs */
    double rtol, atol; /* 0, 0: 1e-4, 1e-5 */
    const char *inputs_dir; /* DIR/<input>.npy used when present */
    int threads;
} kiln_check_options;

/* Runs `original` (fed the bound values as inputs) and `frozen` on the same
 * seeded inputs and compares every output. *text (malloc'd, may be NULL)
 * gets one line per output and run with max abs / rel error. Returns
 * KILN_ERR_MISMATCH when an output differs. */
kiln_status kiln_check(const kiln_model *original, const kiln_model *frozen, size_t n_bound,
                       const char *const *bound_names, const kiln_tensor *const *bound_values,
                       const kiln_check_options *opts, char **text);

#ifdef __cplusplus
}
#endif
#endif
