/* kiln._kiln: the CPython extension, written over kiln's public C API
 * (kiln.h) only. The Python layer (kiln/__init__.py) adds the friendly
 * signatures; this module does the work:
 *
 *  - Model: a kiln_model (load from a path or bytes, metadata, freeze, save,
 *    serialise, describe, picture).
 *  - Session: a kiln_session over a Model; run() takes a dict of arrays and
 *    returns a dict of numpy arrays, state pairs carried across calls.
 *  - Tensor: the buffer-protocol exporter of an output kiln_tensor: outputs
 *    reach numpy without a copy.
 *  - check(): kiln_check with per-output errors.
 *
 * Arrays come in through the buffer protocol: a C-contiguous, aligned
 * buffer of a supported element type is wrapped (kiln_tensor_wrap) and read
 * in place; anything else is copied or handed to the Python layer's
 * converter (lists, scalars, strings, ml_dtypes types).
 *
 * Threads: the GIL is released while kiln works. A session runs one call at
 * a time (its lock); tensors a session made are only destroyed under that
 * lock, since their memory returns to the session's arena, so an output
 * array dropped while another thread runs the session is queued and
 * destroyed when the run ends. A model is not changed (freeze) while
 * sessions or other calls use it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static PyObject *Error, *ArgumentError, *ModelError, *MismatchError;
/* The Python layer's helpers (kiln/__init__.py sets them): numpy.asarray,
 * the input converter and the output converter for strings and the types
 * numpy lacks. */
static PyObject *hook_asarray, *hook_input, *hook_output;

/* ---- errors ---------------------------------------------------------------- */

static PyObject *error_class(kiln_status st) {
    switch (st) {
    case KILN_ERR_ARG: return ArgumentError;
    case KILN_ERR_PARSE:
    case KILN_ERR_INVALID:
    case KILN_ERR_UNSUPPORTED: return ModelError;
    case KILN_ERR_MISMATCH: return MismatchError;
    default: return Error;
    }
}

static void raise_with(PyObject *cls, kiln_status st, const char *msg) {
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (!text)
        return;
    PyObject *exc = PyObject_CallOneArg(cls, text);
    Py_DECREF(text);
    if (!exc)
        return;
    PyObject *name = PyUnicode_FromString(kiln_status_name(st));
    if (name) {
        PyObject_SetAttrString(exc, "status", name);
        Py_DECREF(name);
    }
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
}

/* Raises the kiln.Error subclass for st with the library's message. */
static PyObject *raise_status(kiln_status st) {
    const char *msg = kiln_last_error();
    if (st == KILN_ERR_NOMEM && (!msg || !*msg))
        return PyErr_NoMemory();
    raise_with(error_class(st), st, msg && *msg ? msg : kiln_status_name(st));
    return NULL;
}

static PyObject *raise_arg(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    raise_with(ArgumentError, KILN_ERR_ARG, buf);
    return NULL;
}

/* ---- element types ----------------------------------------------------------- */

/* The buffer format kiln's in-memory layout of dtype has (kiln.h: the types
 * numpy lacks are given as their storage: bfloat16 as uint16 bits, the
 * float8/6/4 codes and UINT4/UINT2 as uint8, INT4/INT2 as int8). */
static const char *storage_format(kiln_dtype t) {
    switch (t) {
    case KILN_DTYPE_FLOAT: return "f";
    case KILN_DTYPE_DOUBLE: return "d";
    case KILN_DTYPE_FLOAT16: return "e";
    case KILN_DTYPE_INT8:
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2: return "b";
    case KILN_DTYPE_UINT8:
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2:
    case KILN_DTYPE_FLOAT8E4M3FN:
    case KILN_DTYPE_FLOAT8E4M3FNUZ:
    case KILN_DTYPE_FLOAT8E5M2:
    case KILN_DTYPE_FLOAT8E5M2FNUZ:
    case KILN_DTYPE_FLOAT4E2M1:
    case KILN_DTYPE_FLOAT8E8M0:
    case KILN_DTYPE_FLOAT6E2M3:
    case KILN_DTYPE_FLOAT6E3M2: return "B";
    case KILN_DTYPE_INT16: return "h";
    case KILN_DTYPE_UINT16:
    case KILN_DTYPE_BFLOAT16: return "H";
    case KILN_DTYPE_INT32: return "i";
    case KILN_DTYPE_UINT32: return "I";
    case KILN_DTYPE_INT64: return "q";
    case KILN_DTYPE_UINT64: return "Q";
    case KILN_DTYPE_BOOL: return "?";
    case KILN_DTYPE_COMPLEX64: return "Zf";
    case KILN_DTYPE_COMPLEX128: return "Zd";
    default: return NULL;
    }
}

/* Whether numpy has the type itself (the others go through hook_output). */
static bool numpy_native(kiln_dtype t) {
    switch (t) {
    case KILN_DTYPE_BFLOAT16:
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2:
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2:
    case KILN_DTYPE_FLOAT8E4M3FN:
    case KILN_DTYPE_FLOAT8E4M3FNUZ:
    case KILN_DTYPE_FLOAT8E5M2:
    case KILN_DTYPE_FLOAT8E5M2FNUZ:
    case KILN_DTYPE_FLOAT4E2M1:
    case KILN_DTYPE_FLOAT8E8M0:
    case KILN_DTYPE_FLOAT6E2M3:
    case KILN_DTYPE_FLOAT6E3M2:
    case KILN_DTYPE_STRING: return false;
    default: return storage_format(t) != NULL;
    }
}

static bool little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* The element type a buffer's struct-module format describes, or UNDEFINED. */
static kiln_dtype format_dtype(const char *fmt, Py_ssize_t itemsize) {
    if (!fmt)
        return KILN_DTYPE_UINT8; /* no format: bytes */
    if (*fmt == '@' || *fmt == '=' || *fmt == '|')
        fmt++;
    else if (*fmt == '<' || *fmt == '>' || *fmt == '!') {
        bool little = *fmt == '<';
        fmt++;
        if (little != little_endian() && itemsize > 1)
            return KILN_DTYPE_UNDEFINED;
    }
    if (fmt[0] == 'Z' && fmt[1] && !fmt[2])
        return fmt[1] == 'f' && itemsize == 8 ? KILN_DTYPE_COMPLEX64
               : fmt[1] == 'd' && itemsize == 16 ? KILN_DTYPE_COMPLEX128
                                                 : KILN_DTYPE_UNDEFINED;
    if (!fmt[0] || fmt[1])
        return KILN_DTYPE_UNDEFINED;
    switch (fmt[0]) {
    case 'f': return itemsize == 4 ? KILN_DTYPE_FLOAT : KILN_DTYPE_UNDEFINED;
    case 'd': return itemsize == 8 ? KILN_DTYPE_DOUBLE : KILN_DTYPE_UNDEFINED;
    case 'e': return itemsize == 2 ? KILN_DTYPE_FLOAT16 : KILN_DTYPE_UNDEFINED;
    case '?': return itemsize == 1 ? KILN_DTYPE_BOOL : KILN_DTYPE_UNDEFINED;
    case 'b': return itemsize == 1 ? KILN_DTYPE_INT8 : KILN_DTYPE_UNDEFINED;
    case 'B': return itemsize == 1 ? KILN_DTYPE_UINT8 : KILN_DTYPE_UNDEFINED;
    case 'h':
    case 'H':
    case 'i':
    case 'I':
    case 'l':
    case 'L':
    case 'q':
    case 'Q': {
        bool u = fmt[0] == 'H' || fmt[0] == 'I' || fmt[0] == 'L' || fmt[0] == 'Q';
        switch (itemsize) {
        case 2: return u ? KILN_DTYPE_UINT16 : KILN_DTYPE_INT16;
        case 4: return u ? KILN_DTYPE_UINT32 : KILN_DTYPE_INT32;
        case 8: return u ? KILN_DTYPE_UINT64 : KILN_DTYPE_INT64;
        default: return KILN_DTYPE_UNDEFINED;
        }
    }
    default: return KILN_DTYPE_UNDEFINED;
    }
}

/* ---- arrays in: Python objects -> kiln tensors ---------------------------------- */

/* kiln calls this when the last tensor over a wrapped buffer goes, possibly
 * from a thread that released the GIL inside a kiln call. */
static void release_view(void *ctx) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_buffer *v = ctx;
    PyBuffer_Release(v);
    PyMem_RawFree(v);
    PyGILState_Release(g);
}

/* A tensor from an object exporting a buffer: wrapped when it is
 * C-contiguous and aligned, else copied. `as` (not UNDEFINED) reads the
 * buffer as that type's storage (the ml_dtypes types). Returns NULL with an
 * exception set, or sets *unsupported (no exception) when the buffer has no
 * element type kiln knows. */
static kiln_tensor *from_buffer(PyObject *obj, const char *name, kiln_dtype as, bool *unsupported) {
    *unsupported = false;
    Py_buffer *v = PyMem_RawMalloc(sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return NULL;
    }
    if (PyObject_GetBuffer(obj, v, PyBUF_RECORDS_RO) != 0) {
        PyMem_RawFree(v);
        PyErr_Clear();
        *unsupported = true;
        return NULL;
    }
    kiln_dtype dt = format_dtype(v->format, v->itemsize);
    if (as != KILN_DTYPE_UNDEFINED && dt != KILN_DTYPE_UNDEFINED && as != KILN_DTYPE_STRING &&
        kiln_dtype_size(as) == (size_t)v->itemsize)
        dt = as;
    if (dt == KILN_DTYPE_UNDEFINED || v->ndim > KILN_MAX_RANK) {
        bool rank = v->ndim > KILN_MAX_RANK;
        int ndim = v->ndim;
        PyBuffer_Release(v);
        PyMem_RawFree(v);
        if (rank)
            return (raise_arg("input '%s': rank %d is over kiln's limit of %d", name, ndim, KILN_MAX_RANK), NULL);
        *unsupported = true;
        return NULL;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < v->ndim; i++)
        dims[i] = (int64_t)v->shape[i];
    kiln_tensor *t = NULL;
    kiln_status st;
    size_t es = v->itemsize > 8 ? 8 : (size_t)v->itemsize;
    if (PyBuffer_IsContiguous(v, 'C') && ((uintptr_t)v->buf % es) == 0) {
        st = kiln_tensor_wrap(dt, v->ndim, dims, v->buf, (size_t)v->len, release_view, v, &t);
        if (st == KILN_OK)
            return t; /* v belongs to the tensor now */
    } else {
        st = kiln_tensor_create(dt, v->ndim, dims, &t);
        if (st == KILN_OK && v->len && PyBuffer_ToContiguous(kiln_tensor_data(t), v, v->len, 'C') != 0) {
            kiln_tensor_destroy(t);
            PyBuffer_Release(v);
            PyMem_RawFree(v);
            return NULL;
        }
    }
    PyBuffer_Release(v);
    PyMem_RawFree(v);
    if (st != KILN_OK)
        return (raise_status(st), NULL);
    return t;
}

/* A STRING tensor from a flat sequence of bytes and a shape. */
static kiln_tensor *from_strings(PyObject *items, PyObject *shape, const char *name) {
    PyObject *seq = PySequence_Fast(items, "strings");
    PyObject *sh = seq ? PySequence_Fast(shape, "shape") : NULL;
    kiln_tensor *t = NULL;
    if (!sh)
        goto out;
    Py_ssize_t rank = PySequence_Fast_GET_SIZE(sh);
    if (rank > KILN_MAX_RANK) {
        raise_arg("input '%s': rank %zd is over kiln's limit of %d", name, rank, KILN_MAX_RANK);
        goto out;
    }
    int64_t dims[KILN_MAX_RANK];
    for (Py_ssize_t i = 0; i < rank; i++) {
        dims[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(sh, i));
        if (dims[i] == -1 && PyErr_Occurred())
            goto out;
    }
    kiln_status st = kiln_tensor_create(KILN_DTYPE_STRING, (int)rank, dims, &t);
    if (st != KILN_OK) {
        raise_status(st);
        goto out;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != kiln_tensor_numel(t)) {
        raise_arg("input '%s': %zd strings for %lld elements", name, n, (long long)kiln_tensor_numel(t));
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char *s;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(seq, i), &s, &len) != 0)
            goto fail;
        if ((st = kiln_tensor_set_string(t, i, s, (size_t)len)) != KILN_OK) {
            raise_status(st);
            goto fail;
        }
    }
    goto out;
fail:
    kiln_tensor_destroy(t);
    t = NULL;
out:
    Py_XDECREF(seq);
    Py_XDECREF(sh);
    return t;
}

/* Any value given for input `name` (declared type `declared`, UNDEFINED if
 * unknown) as a new tensor; NULL with an exception set. */
static kiln_tensor *to_tensor(PyObject *obj, const char *name, kiln_dtype declared) {
    bool unsupported = false;
    kiln_tensor *t = NULL;
    if (!PyUnicode_Check(obj) && !PyBytes_Check(obj) && PyObject_CheckBuffer(obj)) {
        t = from_buffer(obj, name, KILN_DTYPE_UNDEFINED, &unsupported);
        if (t || !unsupported)
            return t;
    }
    if (!hook_input)
        return (raise_arg("input '%s': %s is not an array kiln reads", name, Py_TYPE(obj)->tp_name), NULL);
    /* the Python layer: an array (numpy), (array, dtype) for the types numpy
     * lacks, or ("strings", [bytes...], shape) */
    PyObject *r = PyObject_CallFunction(hook_input, "Ois", obj, (int)declared, name);
    if (!r)
        return NULL;
    if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3) {
        t = from_strings(PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(r, 2), name);
    } else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
        long as = PyLong_AsLong(PyTuple_GET_ITEM(r, 1));
        if (as == -1 && PyErr_Occurred()) {
            Py_DECREF(r);
            return NULL;
        }
        t = from_buffer(PyTuple_GET_ITEM(r, 0), name, (kiln_dtype)as, &unsupported);
    } else {
        t = from_buffer(r, name, KILN_DTYPE_UNDEFINED, &unsupported);
    }
    Py_DECREF(r);
    if (!t && unsupported && !PyErr_Occurred())
        raise_arg("input '%s': %s has no ONNX element type kiln knows", name, Py_TYPE(obj)->tp_name);
    return t;
}

/* ---- Model ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    kiln_model *m;
    Py_ssize_t sessions; /* open sessions over it */
    int busy;            /* > 0: calls reading it without the GIL; -1: being changed */
} ModelObject;

static PyTypeObject ModelType;

static bool model_ok(ModelObject *self) {
    if (!self->m) {
        raise_arg("the model is not loaded");
        return false;
    }
    if (self->busy < 0) {
        raise_arg("the model is being frozen in another thread");
        return false;
    }
    return true;
}

static int Model_init(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"source", "base_dir", "name", NULL};
    PyObject *src, *base = Py_None;
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Oz", kwlist, &src, &base, &name))
        return -1;
    if (self->m) {
        PyErr_SetString(PyExc_RuntimeError, "Model.__init__ called twice");
        return -1;
    }
    kiln_status st;
    kiln_model *m = NULL;
    if (PyUnicode_Check(src) || PyObject_HasAttrString(src, "__fspath__")) {
        PyObject *path;
        if (!PyUnicode_FSConverter(src, &path))
            return -1;
        const char *p = PyBytes_AS_STRING(path);
        Py_BEGIN_ALLOW_THREADS
        st = kiln_model_load(p, &m);
        Py_END_ALLOW_THREADS
        Py_DECREF(path);
    } else {
        Py_buffer v;
        if (PyObject_GetBuffer(src, &v, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            raise_arg("kiln.load takes a path, bytes or an onnx.ModelProto, not %s", Py_TYPE(src)->tp_name);
            return -1;
        }
        PyObject *bpath = NULL;
        if (base != Py_None && !PyUnicode_FSConverter(base, &bpath)) {
            PyBuffer_Release(&v);
            return -1;
        }
        const char *bdir = bpath ? PyBytes_AS_STRING(bpath) : NULL;
        Py_BEGIN_ALLOW_THREADS
        st = kiln_model_load_buffer(v.buf, (size_t)v.len, name, bdir, NULL, &m);
        Py_END_ALLOW_THREADS
        Py_XDECREF(bpath);
        PyBuffer_Release(&v);
    }
    if (st != KILN_OK) {
        raise_status(st);
        return -1;
    }
    self->m = m;
    return 0;
}

static void Model_dealloc(ModelObject *self) {
    kiln_model_destroy(self->m);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *type_tuple(const char *name, const kiln_value_type *t) {
    PyObject *shape;
    if (t->rank < 0) {
        shape = Py_NewRef(Py_None);
    } else {
        shape = PyList_New(t->rank);
        if (!shape)
            return NULL;
        for (int i = 0; i < t->rank; i++) {
            PyObject *d = t->dims[i] >= 0 ? PyLong_FromLongLong(t->dims[i])
                          : t->symbols[i] ? PyUnicode_DecodeUTF8(t->symbols[i], (Py_ssize_t)strlen(t->symbols[i]), "replace")
                                          : Py_NewRef(Py_None);
            if (!d) {
                Py_DECREF(shape);
                return NULL;
            }
            PyList_SET_ITEM(shape, i, d);
        }
    }
    PyObject *r = Py_BuildValue("(siN)", name, (int)t->dtype, shape);
    return r;
}

static PyObject *Model_values(ModelObject *self, bool outputs) {
    if (!model_ok(self))
        return NULL;
    size_t n = outputs ? kiln_model_output_count(self->m) : kiln_model_input_count(self->m);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        kiln_value_type t;
        kiln_status st = outputs ? kiln_model_output_type(self->m, i, &t) : kiln_model_input_type(self->m, i, &t);
        if (st != KILN_OK) {
            Py_DECREF(list);
            return raise_status(st);
        }
        const char *name = outputs ? kiln_model_output_name(self->m, i) : kiln_model_input_name(self->m, i);
        PyObject *item = type_tuple(name, &t);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *Model_inputs(ModelObject *self, PyObject *unused) { return Model_values(self, false); }
static PyObject *Model_outputs(ModelObject *self, PyObject *unused) { return Model_values(self, true); }

static PyObject *Model_input_dtype(ModelObject *self, PyObject *name) {
    if (!model_ok(self))
        return NULL;
    const char *s = PyUnicode_AsUTF8(name);
    if (!s)
        return NULL;
    return PyLong_FromLong((long)kiln_model_input_dtype(self->m, s));
}

/* Bound values: a sequence of (name, value) -> names (pointing into the
 * Python strings, kept by `keep`) and tensors; false with an exception. */
typedef struct bound {
    size_t n;
    const char **names;
    kiln_tensor **vals;
    PyObject *keep;
} bound;

static void bound_free(bound *b) {
    for (size_t i = 0; b->vals && i < b->n; i++)
        kiln_tensor_destroy(b->vals[i]);
    PyMem_Free(b->vals);
    PyMem_Free(b->names);
    Py_XDECREF(b->keep);
    memset(b, 0, sizeof *b);
}

static bool bound_parse(bound *b, PyObject *items, const kiln_model *m) {
    memset(b, 0, sizeof *b);
    b->keep = PySequence_Fast(items, "bind takes (name, value) pairs");
    if (!b->keep)
        return false;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(b->keep);
    b->names = PyMem_Calloc((size_t)n + 1, sizeof *b->names);
    b->vals = PyMem_Calloc((size_t)n + 1, sizeof *b->vals);
    if (!b->names || !b->vals) {
        PyErr_NoMemory();
        bound_free(b);
        return false;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(b->keep, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            raise_arg("bind takes {name: value}");
            bound_free(b);
            return false;
        }
        const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(pair, 0));
        if (!name) {
            bound_free(b);
            return false;
        }
        b->names[i] = name;
        b->vals[i] = to_tensor(PyTuple_GET_ITEM(pair, 1), name, kiln_model_input_dtype(m, name));
        b->n = (size_t)i + 1;
        if (!b->vals[i]) {
            bound_free(b);
            return false;
        }
    }
    return true;
}

static PyObject *Model_freeze(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"bind", "dims", "shapes", "unroll_limit", "unroll_node_limit", "fold_limit",
                             "prune_dead_inputs", "keep_functions", NULL};
    PyObject *binds, *dims, *shapes;
    kiln_freeze_options fo = {0};
    long long unroll = 0, unroll_nodes = 0, fold = 0;
    int prune = 0, keep = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|LLLpp", kwlist, &binds, &dims, &shapes, &unroll, &unroll_nodes,
                                     &fold, &prune, &keep))
        return NULL;
    if (!model_ok(self))
        return NULL;
    if (self->sessions || self->busy)
        return raise_arg("the model is in use (%zd open sessions); close them before freezing it", self->sessions);
    fo.unroll_limit = unroll;
    fo.unroll_node_limit = unroll_nodes;
    fo.fold_limit = fold;
    fo.prune_dead_inputs = prune;
    fo.keep_functions = keep;
    /* everything from Python first, so a bad argument changes nothing */
    PyObject *dl = PySequence_Fast(dims, "dims takes (symbol, size) pairs");
    PyObject *sl = dl ? PySequence_Fast(shapes, "shapes takes (input, dims) pairs") : NULL;
    bound b = {0};
    PyObject *result = NULL;
    char **dnames = NULL, **snames = NULL;
    int64_t *dvals = NULL, (*svals)[KILN_MAX_RANK] = NULL;
    int *sranks = NULL;
    char *json = NULL, *text = NULL;
    if (!sl)
        goto out;
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(dl), ns = PySequence_Fast_GET_SIZE(sl);
    dnames = PyMem_Calloc((size_t)nd + 1, sizeof *dnames);
    dvals = PyMem_Calloc((size_t)nd + 1, sizeof *dvals);
    snames = PyMem_Calloc((size_t)ns + 1, sizeof *snames);
    svals = PyMem_Calloc((size_t)ns + 1, sizeof *svals);
    sranks = PyMem_Calloc((size_t)ns + 1, sizeof *sranks);
    if (!dnames || !dvals || !snames || !svals || !sranks) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < nd; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(dl, i);
        const char *sym;
        long long v;
        if (!PyArg_ParseTuple(p, "sL;dims takes {symbol: size}", &sym, &v))
            goto out;
        dnames[i] = (char *)sym;
        dvals[i] = v;
    }
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(sl, i), *d;
        const char *in;
        if (!PyArg_ParseTuple(p, "sO;shapes takes {input: [d0, d1, ...]}", &in, &d))
            goto out;
        PyObject *ds = PySequence_Fast(d, "shapes takes {input: [d0, d1, ...]}");
        if (!ds)
            goto out;
        Py_ssize_t r = PySequence_Fast_GET_SIZE(ds);
        if (r > KILN_MAX_RANK) {
            Py_DECREF(ds);
            raise_arg("shapes: '%s' has rank %zd, over kiln's limit of %d", in, r, KILN_MAX_RANK);
            goto out;
        }
        for (Py_ssize_t k = 0; k < r; k++) {
            svals[i][k] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(ds, k));
            if (svals[i][k] == -1 && PyErr_Occurred()) {
                Py_DECREF(ds);
                goto out;
            }
        }
        Py_DECREF(ds);
        snames[i] = (char *)in;
        sranks[i] = (int)r;
    }
    if (!bound_parse(&b, binds, self->m))
        goto out;
    kiln_status st = KILN_OK;
    self->busy = -1;
    Py_BEGIN_ALLOW_THREADS
    kiln_freeze_report *rep = NULL;
    st = kiln_freeze_report_create(&rep);
    for (Py_ssize_t i = 0; st == KILN_OK && i < nd; i++)
        st = kiln_model_fix_dim(self->m, dnames[i], dvals[i], rep);
    for (Py_ssize_t i = 0; st == KILN_OK && i < ns; i++)
        st = kiln_model_fix_shape(self->m, snames[i], sranks[i], svals[i], rep);
    for (size_t i = 0; st == KILN_OK && i < b.n; i++)
        st = kiln_model_bind(self->m, b.names[i], b.vals[i], rep);
    if (st == KILN_OK)
        st = kiln_model_freeze(self->m, &fo, rep);
    if (st == KILN_OK)
        st = kiln_report_json(rep, &json);
    if (st == KILN_OK)
        st = kiln_report_text(rep, &text);
    kiln_freeze_report_destroy(rep);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != KILN_OK) {
        raise_status(st);
        goto out;
    }
    result = Py_BuildValue("(ss)", json, text);
out:
    free(json);
    free(text);
    bound_free(&b);
    PyMem_Free(dnames);
    PyMem_Free(dvals);
    PyMem_Free(snames);
    PyMem_Free(svals);
    PyMem_Free(sranks);
    Py_XDECREF(dl);
    Py_XDECREF(sl);
    return result;
}

static PyObject *Model_save(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "external_threshold", NULL};
    PyObject *path;
    Py_ssize_t ext = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|n", kwlist, PyUnicode_FSConverter, &path, &ext))
        return NULL;
    if (!model_ok(self) || ext < 0) {
        Py_DECREF(path);
        return ext < 0 ? raise_arg("external_threshold must be >= 0") : NULL;
    }
    kiln_save_options so = {.external_threshold = (size_t)ext};
    kiln_status st;
    self->busy++;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = kiln_model_save(self->m, p, &so);
    Py_END_ALLOW_THREADS
    self->busy--;
    Py_DECREF(path);
    if (st != KILN_OK)
        return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *Model_to_bytes(ModelObject *self, PyObject *unused) {
    if (!model_ok(self))
        return NULL;
    void *data;
    size_t n;
    kiln_status st;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    st = kiln_model_serialize(self->m, &data, &n);
    Py_END_ALLOW_THREADS
    self->busy--;
    if (st != KILN_OK)
        return raise_status(st);
    PyObject *r = PyBytes_FromStringAndSize(data, (Py_ssize_t)n);
    free(data);
    return r;
}

static PyObject *Model_describe(ModelObject *self, PyObject *args) {
    int json = 0;
    if (!PyArg_ParseTuple(args, "|p", &json) || !model_ok(self))
        return NULL;
    char *text;
    kiln_status st = kiln_model_describe(self->m, json, &text);
    if (st != KILN_OK)
        return raise_status(st);
    PyObject *r = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    free(text);
    return r;
}

static PyObject *Model_picture(ModelObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"frozen", "bound", "title", NULL};
    PyObject *frozen = Py_None, *boundl = Py_None;
    const char *title = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOz", kwlist, &frozen, &boundl, &title) || !model_ok(self))
        return NULL;
    if (frozen != Py_None && !PyObject_TypeCheck(frozen, &ModelType))
        return raise_arg("frozen must be a kiln model");
    ModelObject *fm = frozen == Py_None ? NULL : (ModelObject *)frozen;
    if (fm && !model_ok(fm))
        return NULL;
    PyObject *bl = boundl == Py_None ? PyList_New(0) : PySequence_Fast(boundl, "bound takes input names");
    if (!bl)
        return NULL;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(bl);
    const char **names = PyMem_Calloc((size_t)nb + 1, sizeof *names);
    if (!names) {
        Py_DECREF(bl);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nb; i++)
        if (!(names[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(bl, i)))) {
            PyMem_Free(names);
            Py_DECREF(bl);
            return NULL;
        }
    kiln_picture_options po = {.frozen = fm ? fm->m : NULL, .n_bound = (size_t)nb, .bound = names, .title = title};
    char *dot = NULL;
    kiln_status st;
    self->busy++;
    if (fm)
        fm->busy++;
    Py_BEGIN_ALLOW_THREADS
    st = kiln_model_picture(self->m, &po, &dot);
    Py_END_ALLOW_THREADS
    self->busy--;
    if (fm)
        fm->busy--;
    PyMem_Free(names);
    Py_DECREF(bl);
    if (st != KILN_OK)
        return raise_status(st);
    PyObject *r = PyUnicode_DecodeUTF8(dot, (Py_ssize_t)strlen(dot), "replace");
    free(dot);
    return r;
}

static PyObject *pairs_list(size_t n, const char **ins, const char **outs) {
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *p = Py_BuildValue("(ss)", ins[i], outs[i]);
        if (!p) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, p);
    }
    return l;
}

static PyObject *Model_find_states(ModelObject *self, PyObject *args) {
    const char *conv = NULL;
    if (!PyArg_ParseTuple(args, "|z", &conv) || !model_ok(self))
        return NULL;
    size_t n;
    const char **ins, **outs;
    kiln_status st = kiln_model_find_states(self->m, conv, &n, &ins, &outs);
    if (st != KILN_OK)
        return raise_status(st);
    PyObject *l = pairs_list(n, ins, outs);
    free(ins);
    free(outs);
    return l;
}

static PyMethodDef Model_methods[] = {
    {"inputs", (PyCFunction)Model_inputs, METH_NOARGS, "[(name, dtype code, shape)] of the required inputs"},
    {"outputs", (PyCFunction)Model_outputs, METH_NOARGS, "[(name, dtype code, shape)] of the outputs"},
    {"input_dtype", (PyCFunction)Model_input_dtype, METH_O, "declared dtype code of an input (0: unknown)"},
    {"freeze", (PyCFunction)(void (*)(void))Model_freeze, METH_VARARGS | METH_KEYWORDS,
     "freeze(bind, dims, shapes, ...) -> (report JSON, report text)"},
    {"save", (PyCFunction)(void (*)(void))Model_save, METH_VARARGS | METH_KEYWORDS, "save(path, external_threshold=0)"},
    {"to_bytes", (PyCFunction)Model_to_bytes, METH_NOARGS, "the model as ModelProto bytes"},
    {"describe", (PyCFunction)Model_describe, METH_VARARGS, "describe(json=False) -> kiln info's text"},
    {"picture", (PyCFunction)(void (*)(void))Model_picture, METH_VARARGS | METH_KEYWORDS,
     "picture(frozen=None, bound=None, title=None) -> DOT text"},
    {"find_states", (PyCFunction)Model_find_states, METH_VARARGS, "find_states(convention=None) -> [(input, output)]"},
    {NULL}};

static PyObject *Model_get_sessions(ModelObject *self, void *unused) { return PyLong_FromSsize_t(self->sessions); }

static PyGetSetDef Model_getset[] = {{"open_sessions", (getter)Model_get_sessions, NULL, "open sessions", NULL},
                                     {NULL}};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kiln._kiln.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded ONNX model (kiln_model).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Model_init,
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_methods = Model_methods,
    .tp_getset = Model_getset,
};

/* ---- Session ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    kiln_session *s;
    ModelObject *model;
    PyThread_type_lock lock;
    kiln_tensor **pending; /* output tensors dropped while the session was busy */
    size_t n_pending, cap_pending;
    PyObject *in_dtypes; /* input name -> declared dtype code */
    PyObject *out_names; /* tuple of the output names */
} SessionObject;

static PyTypeObject SessionType;

/* Takes the session's lock, waiting without the GIL when another thread has it. */
static void session_lock(SessionObject *self) {
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK))
        return;
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
}

/* Destroys the queued tensors, then lets go of the lock (GIL held). */
static void session_unlock(SessionObject *self) {
    for (size_t i = 0; i < self->n_pending; i++)
        kiln_tensor_destroy(self->pending[i]);
    self->n_pending = 0;
    PyThread_release_lock(self->lock);
}

/* Destroys a tensor the session made: now, or when its current run ends. */
static void session_drop(SessionObject *self, kiln_tensor *t) {
    if (!self || !self->lock) {
        kiln_tensor_destroy(t);
        return;
    }
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        kiln_tensor_destroy(t);
        PyThread_release_lock(self->lock);
        return;
    }
    if (self->n_pending == self->cap_pending) {
        size_t cap = self->cap_pending ? 2 * self->cap_pending : 16;
        kiln_tensor **p = realloc(self->pending, cap * sizeof *p);
        if (!p)
            return; /* leaks the tensor rather than racing the run */
        self->pending = p;
        self->cap_pending = cap;
    }
    self->pending[self->n_pending++] = t;
}

/* ---- Tensor: an output kiln_tensor seen through the buffer protocol ---- */

typedef struct {
    PyObject_HEAD
    kiln_tensor *t;
    SessionObject *owner; /* the session whose memory it may be, or NULL */
    int ndim;
    Py_ssize_t itemsize;
    const char *format;
    Py_ssize_t shape[KILN_MAX_RANK], strides[KILN_MAX_RANK];
} TensorObject;

static PyTypeObject TensorType;

static char empty_data[8];

static int Tensor_getbuffer(TensorObject *self, Py_buffer *view, int flags) {
    if (!self->format) {
        PyErr_SetString(PyExc_BufferError, "string tensors have no buffer");
        view->obj = NULL;
        return -1;
    }
    void *data = kiln_tensor_data(self->t);
    view->buf = data ? data : empty_data;
    view->obj = Py_NewRef((PyObject *)self);
    view->len = (Py_ssize_t)kiln_tensor_nbytes(self->t);
    view->readonly = 0;
    view->itemsize = self->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? (char *)self->format : NULL;
    view->ndim = self->ndim;
    view->shape = (flags & PyBUF_ND) ? self->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    if (!(flags & PyBUF_ND) && self->ndim > 1) {
        /* a flat view of contiguous data is fine: ndim 1 would lie about the
         * shape, so report it as unsigned bytes */
        view->ndim = 1;
    }
    return 0;
}

static PyBufferProcs Tensor_as_buffer = {.bf_getbuffer = (getbufferproc)Tensor_getbuffer};

static void Tensor_dealloc(TensorObject *self) {
    if (self->t)
        session_drop(self->owner, self->t);
    Py_XDECREF((PyObject *)self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Tensor_get_dtype(TensorObject *self, void *unused) {
    return PyLong_FromLong((long)kiln_tensor_dtype(self->t));
}

static PyObject *Tensor_get_shape(TensorObject *self, void *unused) {
    int r = kiln_tensor_rank(self->t);
    const int64_t *d = kiln_tensor_dims(self->t);
    PyObject *t = PyTuple_New(r);
    for (int i = 0; t && i < r; i++)
        PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(d[i]));
    return t;
}

static PyGetSetDef Tensor_getset[] = {{"dtype", (getter)Tensor_get_dtype, NULL, "ONNX dtype code", NULL},
                                      {"shape", (getter)Tensor_get_shape, NULL, "dimensions", NULL},
                                      {NULL}};

static PyTypeObject TensorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kiln._kiln.Tensor",
    .tp_basicsize = sizeof(TensorObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A tensor kiln made (exports the buffer protocol; numpy.asarray views it without a copy).",
    .tp_dealloc = (destructor)Tensor_dealloc,
    .tp_as_buffer = &Tensor_as_buffer,
    .tp_getset = Tensor_getset,
};

/* A tensor (taken) as what Python gets: a numpy array viewing it, or what
 * hook_output makes of strings and the types numpy lacks. */
static PyObject *tensor_to_py(SessionObject *owner, kiln_tensor *t) {
    kiln_dtype dt = kiln_tensor_dtype(t);
    if (dt == KILN_DTYPE_STRING) {
        int64_t n = kiln_tensor_numel(t);
        PyObject *items = PyList_New((Py_ssize_t)n);
        for (int64_t i = 0; items && i < n; i++) {
            size_t len;
            const char *s = kiln_tensor_string(t, i, &len);
            PyObject *b = PyBytes_FromStringAndSize(s, (Py_ssize_t)len);
            if (!b) {
                Py_CLEAR(items);
                break;
            }
            PyList_SET_ITEM(items, (Py_ssize_t)i, b);
        }
        int r = kiln_tensor_rank(t);
        const int64_t *d = kiln_tensor_dims(t);
        PyObject *shape = items ? PyTuple_New(r) : NULL;
        for (int i = 0; shape && i < r; i++)
            PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(d[i]));
        session_drop(owner, t);
        if (!shape) {
            Py_XDECREF(items);
            return NULL;
        }
        PyObject *res = hook_output ? PyObject_CallFunction(hook_output, "NiN", items, (int)dt, shape) : NULL;
        if (!hook_output) {
            Py_DECREF(items);
            Py_DECREF(shape);
            PyErr_SetString(PyExc_RuntimeError, "kiln._kiln: hooks not set");
        }
        return res;
    }
    const char *fmt = storage_format(dt);
    if (!fmt) {
        session_drop(owner, t);
        return raise_arg("kiln made a %s tensor, which has no Python form", kiln_dtype_name(dt));
    }
    TensorObject *o = PyObject_New(TensorObject, &TensorType);
    if (!o) {
        session_drop(owner, t);
        return NULL;
    }
    o->t = t;
    o->owner = owner;
    Py_XINCREF((PyObject *)owner);
    o->format = fmt;
    o->itemsize = (Py_ssize_t)kiln_dtype_size(dt);
    o->ndim = kiln_tensor_rank(t);
    const int64_t *d = kiln_tensor_dims(t);
    Py_ssize_t stride = o->itemsize;
    for (int i = o->ndim - 1; i >= 0; i--) {
        o->shape[i] = (Py_ssize_t)d[i];
        o->strides[i] = stride;
        stride *= d[i] > 0 ? (Py_ssize_t)d[i] : 1;
    }
    PyObject *hook = numpy_native(dt) ? hook_asarray : hook_output;
    if (!hook) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_RuntimeError, "kiln._kiln: hooks not set");
        return NULL;
    }
    PyObject *res = numpy_native(dt) ? PyObject_CallOneArg(hook, (PyObject *)o)
                                     : PyObject_CallFunction(hook, "OiO", (PyObject *)o, (int)dt, Py_None);
    Py_DECREF(o);
    return res;
}

static bool session_ok(SessionObject *self) {
    if (!self->s) {
        raise_arg("the session is closed");
        return false;
    }
    return true;
}

static int Session_init(SessionObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"model", "threads", "max_tensor_bytes", NULL};
    PyObject *model;
    int threads = 0;
    Py_ssize_t maxb = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|in", kwlist, &ModelType, &model, &threads, &maxb))
        return -1;
    if (self->s || self->model) {
        PyErr_SetString(PyExc_RuntimeError, "Session.__init__ called twice");
        return -1;
    }
    if (threads < 0 || maxb < 0) {
        raise_arg(threads < 0 ? "threads must be >= 0 (0: one per core)" : "max_tensor_bytes must be >= 0");
        return -1;
    }
    ModelObject *m = (ModelObject *)model;
    if (!model_ok(m))
        return -1;
    self->lock = PyThread_allocate_lock();
    self->in_dtypes = PyDict_New();
    if (!self->lock || !self->in_dtypes) {
        PyErr_NoMemory();
        return -1;
    }
    size_t ni = kiln_model_input_count(m->m), no = kiln_model_output_count(m->m);
    for (size_t i = 0; i < ni; i++) {
        const char *name = kiln_model_input_name(m->m, i);
        PyObject *code = PyLong_FromLong((long)kiln_model_input_dtype(m->m, name));
        if (!code || PyDict_SetItemString(self->in_dtypes, name, code) != 0) {
            Py_XDECREF(code);
            return -1;
        }
        Py_DECREF(code);
    }
    self->out_names = PyTuple_New((Py_ssize_t)no);
    if (!self->out_names)
        return -1;
    for (size_t i = 0; i < no; i++) {
        PyObject *s = PyUnicode_FromString(kiln_model_output_name(m->m, i));
        if (!s)
            return -1;
        PyTuple_SET_ITEM(self->out_names, (Py_ssize_t)i, s);
    }
    kiln_session_options so = {.threads = threads, .max_tensor_bytes = (size_t)maxb};
    kiln_status st;
    kiln_session *s = NULL;
    m->sessions++; /* from here the model is not frozen under the session */
    Py_BEGIN_ALLOW_THREADS
    st = kiln_session_create(m->m, &so, &s);
    Py_END_ALLOW_THREADS
    if (st != KILN_OK) {
        m->sessions--;
        raise_status(st);
        return -1;
    }
    self->s = s;
    self->model = (ModelObject *)Py_NewRef(model);
    return 0;
}

static void session_close(SessionObject *self) {
    if (!self->s)
        return;
    session_lock(self);
    kiln_session *s = self->s;
    self->s = NULL;
    for (size_t i = 0; i < self->n_pending; i++)
        kiln_tensor_destroy(self->pending[i]);
    self->n_pending = 0;
    kiln_session_destroy(s);
    PyThread_release_lock(self->lock);
    if (self->model) {
        self->model->sessions--;
        Py_CLEAR(self->model);
    }
}

static void Session_dealloc(SessionObject *self) {
    session_close(self);
    Py_CLEAR(self->model);
    if (self->lock)
        PyThread_free_lock(self->lock);
    free(self->pending);
    Py_XDECREF(self->in_dtypes);
    Py_XDECREF(self->out_names);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Session_close(SessionObject *self, PyObject *unused) {
    session_close(self);
    Py_RETURN_NONE;
}

static kiln_dtype declared_dtype(SessionObject *self, PyObject *name) {
    PyObject *c = PyDict_GetItemWithError(self->in_dtypes, name);
    return c ? (kiln_dtype)PyLong_AsLong(c) : KILN_DTYPE_UNDEFINED;
}

static PyObject *Session_run(SessionObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"feeds", "outputs", NULL};
    PyObject *feeds, *outputs = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O", kwlist, &feeds, &outputs))
        return NULL;
    if (!session_ok(self))
        return NULL;
    PyObject *items = PyDict_Check(feeds) ? PyDict_Items(feeds) : PyMapping_Items(feeds);
    if (!items) {
        PyErr_Clear();
        return raise_arg("run takes a dict of input name -> array, not %s", Py_TYPE(feeds)->tp_name);
    }
    PyObject *outl = NULL, *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(items), no = 0;
    const char **names = PyMem_Calloc((size_t)n + 1, sizeof *names);
    kiln_tensor **ins = PyMem_Calloc((size_t)n + 1, sizeof *ins);
    const char **onames = NULL;
    kiln_tensor **outs = NULL;
    if (!names || !ins) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i), *k = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_Check(k)) {
            raise_arg("input names are str, not %s", Py_TYPE(k)->tp_name);
            goto out;
        }
        names[i] = PyUnicode_AsUTF8(k);
        if (!names[i])
            goto out;
        kiln_dtype dt = declared_dtype(self, k);
        if (PyErr_Occurred())
            goto out;
        if (!(ins[i] = to_tensor(PyTuple_GET_ITEM(pair, 1), names[i], dt)))
            goto out;
    }
    if (outputs == Py_None) {
        outl = Py_NewRef(self->out_names);
    } else {
        if (PyUnicode_Check(outputs)) {
            raise_arg("outputs takes a list of output names");
            goto out;
        }
        outl = PySequence_Tuple(outputs);
        if (!outl)
            goto out;
    }
    no = PyTuple_GET_SIZE(outl);
    onames = PyMem_Calloc((size_t)no + 1, sizeof *onames);
    outs = PyMem_Calloc((size_t)no + 1, sizeof *outs);
    if (!onames || !outs) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < no; i++)
        if (!(onames[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(outl, i))))
            goto out;
    session_lock(self);
    if (!self->s) { /* closed by another thread meanwhile */
        session_unlock(self);
        raise_arg("the session is closed");
        goto out;
    }
    kiln_status st;
    kiln_session *s = self->s;
    Py_BEGIN_ALLOW_THREADS
    st = kiln_session_run(s, (size_t)n, names, (const kiln_tensor *const *)ins, (size_t)no,
                          outputs == Py_None ? NULL : onames, outs);
    /* outputs that share memory (with the state, the model, an input) get their own */
    for (Py_ssize_t i = 0; st == KILN_OK && i < no; i++)
        if (outs[i])
            st = kiln_tensor_make_writable(outs[i]);
    Py_END_ALLOW_THREADS
    if (st != KILN_OK) {
        raise_status(st);
        for (Py_ssize_t i = 0; i < no; i++) {
            kiln_tensor_destroy(outs[i]);
            outs[i] = NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        kiln_tensor_destroy(ins[i]);
        ins[i] = NULL;
    }
    if (st == KILN_OK) {
        result = PyDict_New();
        for (Py_ssize_t i = 0; i < no; i++) {
            kiln_tensor *t = outs[i];
            outs[i] = NULL;
            if (!result || !t) { /* (an output the graph does not compute: None) */
                if (t)
                    kiln_tensor_destroy(t);
                if (result && PyDict_SetItem(result, PyTuple_GET_ITEM(outl, i), Py_None) != 0)
                    Py_CLEAR(result);
                continue;
            }
            PyObject *a = tensor_to_py(self, t);
            if (!a || PyDict_SetItem(result, PyTuple_GET_ITEM(outl, i), a) != 0)
                Py_CLEAR(result);
            Py_XDECREF(a);
        }
    }
    session_unlock(self);
out:
    for (Py_ssize_t i = 0; ins && i < n; i++)
        kiln_tensor_destroy(ins[i]);
    PyMem_Free(names);
    PyMem_Free(ins);
    PyMem_Free(onames);
    PyMem_Free(outs);
    Py_XDECREF(outl);
    Py_DECREF(items);
    return result;
}

static PyObject *Session_add_state(SessionObject *self, PyObject *args) {
    const char *in, *outn;
    if (!PyArg_ParseTuple(args, "ss", &in, &outn) || !session_ok(self))
        return NULL;
    session_lock(self);
    kiln_status st = kiln_session_add_state(self->s, in, outn);
    if (st != KILN_OK)
        raise_status(st);
    session_unlock(self);
    if (st != KILN_OK)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Session_add_found_states(SessionObject *self, PyObject *args) {
    const char *conv = NULL;
    if (!PyArg_ParseTuple(args, "|z", &conv) || !session_ok(self))
        return NULL;
    size_t added = 0;
    session_lock(self);
    kiln_status st = kiln_session_add_found_states(self->s, conv, &added);
    if (st != KILN_OK)
        raise_status(st);
    session_unlock(self);
    if (st != KILN_OK)
        return NULL;
    return PyLong_FromSize_t(added);
}

static PyObject *Session_state_pairs(SessionObject *self, PyObject *unused) {
    if (!session_ok(self))
        return NULL;
    session_lock(self);
    size_t n = kiln_session_state_count(self->s);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *p = Py_BuildValue("(ss)", kiln_session_state_input(self->s, i), kiln_session_state_output(self->s, i));
        if (!p) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, p);
    }
    session_unlock(self);
    return l;
}

static PyObject *Session_get_state(SessionObject *self, PyObject *name) {
    const char *in = PyUnicode_AsUTF8(name);
    if (!in || !session_ok(self))
        return NULL;
    kiln_tensor *t = NULL;
    session_lock(self);
    kiln_status st = kiln_session_get_state(self->s, in, &t);
    if (st != KILN_OK)
        raise_status(st);
    PyObject *r = st != KILN_OK ? NULL : t ? tensor_to_py(self, t) : Py_NewRef(Py_None);
    session_unlock(self);
    return r;
}

static PyObject *Session_set_state(SessionObject *self, PyObject *args) {
    PyObject *name, *value;
    if (!PyArg_ParseTuple(args, "UO", &name, &value) || !session_ok(self))
        return NULL;
    const char *in = PyUnicode_AsUTF8(name);
    if (!in)
        return NULL;
    kiln_dtype dt = kiln_model_input_dtype(self->model->m, in);
    kiln_tensor *t = to_tensor(value, in, dt);
    if (!t)
        return NULL;
    session_lock(self);
    kiln_status st = kiln_session_set_state(self->s, in, t);
    if (st != KILN_OK)
        raise_status(st);
    kiln_tensor_destroy(t);
    session_unlock(self);
    if (st != KILN_OK)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Session_reset_state(SessionObject *self, PyObject *unused) {
    if (!session_ok(self))
        return NULL;
    session_lock(self);
    kiln_session_reset_state(self->s);
    session_unlock(self);
    Py_RETURN_NONE;
}

static PyObject *Session_state_dir(SessionObject *self, PyObject *arg, bool save) {
    PyObject *path;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    if (!session_ok(self)) {
        Py_DECREF(path);
        return NULL;
    }
    session_lock(self);
    kiln_status st;
    kiln_session *s = self->s;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    st = save ? kiln_session_save_state(s, p) : kiln_session_load_state(s, p);
    Py_END_ALLOW_THREADS
    if (st != KILN_OK)
        raise_status(st);
    session_unlock(self);
    Py_DECREF(path);
    if (st != KILN_OK)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Session_save_state(SessionObject *self, PyObject *arg) { return Session_state_dir(self, arg, true); }
static PyObject *Session_load_state(SessionObject *self, PyObject *arg) { return Session_state_dir(self, arg, false); }

static PyObject *Session_get_closed(SessionObject *self, void *unused) { return PyBool_FromLong(self->s == NULL); }

static PyObject *Session_get_peak(SessionObject *self, void *unused) {
    if (!session_ok(self))
        return NULL;
    return PyLong_FromSize_t(kiln_session_peak_bytes(self->s));
}

static PyObject *Session_get_model(SessionObject *self, void *unused) {
    return Py_NewRef(self->model ? (PyObject *)self->model : Py_None);
}

static PyMethodDef Session_methods[] = {
    {"run", (PyCFunction)(void (*)(void))Session_run, METH_VARARGS | METH_KEYWORDS,
     "run(feeds, outputs=None) -> {output name: numpy array}"},
    {"add_state", (PyCFunction)Session_add_state, METH_VARARGS, "add_state(input, output): carry output into input"},
    {"add_found_states", (PyCFunction)Session_add_found_states, METH_VARARGS,
     "add_found_states(convention=None) -> pairs added"},
    {"state_pairs", (PyCFunction)Session_state_pairs, METH_NOARGS, "[(input, output)] carried from run to run"},
    {"get_state", (PyCFunction)Session_get_state, METH_O, "current value fed to a state input (None: zeros)"},
    {"set_state", (PyCFunction)Session_set_state, METH_VARARGS, "set_state(input, value)"},
    {"reset_state", (PyCFunction)Session_reset_state, METH_NOARGS, "every state back to zeros"},
    {"save_state", (PyCFunction)Session_save_state, METH_O, "save_state(dir): DIR/<input>.npy"},
    {"load_state", (PyCFunction)Session_load_state, METH_O, "load_state(dir)"},
    {"close", (PyCFunction)Session_close, METH_NOARGS, "frees the session; later calls raise kiln.Error"},
    {NULL}};

static PyGetSetDef Session_getset[] = {
    {"closed", (getter)Session_get_closed, NULL, "whether close() was called", NULL},
    {"peak_bytes", (getter)Session_get_peak, NULL, "bytes the session's allocator held at its peak", NULL},
    {"_model", (getter)Session_get_model, NULL, "the model (kiln._kiln.Model)", NULL},
    {NULL}};

static PyTypeObject SessionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kiln._kiln.Session",
    .tp_basicsize = sizeof(SessionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A kiln_session over a Model.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Session_init,
    .tp_dealloc = (destructor)Session_dealloc,
    .tp_methods = Session_methods,
    .tp_getset = Session_getset,
};

/* ---- module functions --------------------------------------------------------------- */

typedef struct check_rec {
    PyObject *list;
    bool failed;
} check_rec;

/* kiln_check's per-output callback; runs without the GIL. */
static void on_output(void *ctx, int run, const char *output, double max_abs, double max_rel, int ok) {
    check_rec *r = ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *item = Py_BuildValue("(isddO)", run, output, max_abs, max_rel, ok ? Py_True : Py_False);
    if (!item || PyList_Append(r->list, item) != 0) {
        r->failed = true;
        PyErr_Clear();
    }
    Py_XDECREF(item);
    PyGILState_Release(g);
}

static PyObject *mod_check(PyObject *mod, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"original", "frozen", "bind", "runs", "seed", "rtol", "atol", "threads", "inputs", NULL};
    PyObject *a, *b, *binds;
    int runs = 3, threads = 0;
    unsigned long long seed = 1;
    double rtol = 1e-4, atol = 1e-5;
    PyObject *dir = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O|iKddiO", kwlist, &ModelType, &a, &ModelType, &b, &binds, &runs,
                                     &seed, &rtol, &atol, &threads, &dir))
        return NULL;
    ModelObject *ma = (ModelObject *)a, *mb = (ModelObject *)b;
    if (!model_ok(ma) || !model_ok(mb))
        return NULL;
    if (runs < 1 || rtol < 0 || atol < 0 || threads < 0)
        return raise_arg(runs < 1 ? "runs must be >= 1" : threads < 0 ? "threads must be >= 0" : "tolerances must be >= 0");
    PyObject *dpath = NULL;
    if (dir != Py_None && !PyUnicode_FSConverter(dir, &dpath))
        return NULL;
    bound bv;
    if (!bound_parse(&bv, binds, ma->m)) {
        Py_XDECREF(dpath);
        return NULL;
    }
    check_rec rec = {.list = PyList_New(0)};
    if (!rec.list) {
        bound_free(&bv);
        Py_XDECREF(dpath);
        return NULL;
    }
    kiln_check_options co = {.runs = runs,
                             .seed = seed,
                             .rtol = rtol,
                             .atol = atol,
                             .threads = threads,
                             .inputs_dir = dpath ? PyBytes_AS_STRING(dpath) : NULL,
                             .on_output = on_output,
                             .ctx = &rec};
    if (rtol == 0 && atol == 0)
        co.rtol = 1e-300; /* exact: kiln_check reads 0, 0 as "the defaults" */
    char *text = NULL;
    kiln_status st;
    ma->busy++;
    mb->busy++;
    Py_BEGIN_ALLOW_THREADS
    st = kiln_check(ma->m, mb->m, bv.n, bv.names, (const kiln_tensor *const *)bv.vals, &co, &text);
    Py_END_ALLOW_THREADS
    ma->busy--;
    mb->busy--;
    bound_free(&bv);
    Py_XDECREF(dpath);
    PyObject *res = NULL;
    if (st != KILN_OK && st != KILN_ERR_MISMATCH) {
        raise_status(st);
    } else if (rec.failed) {
        PyErr_NoMemory();
    } else {
        res = Py_BuildValue("(OsO)", st == KILN_OK ? Py_True : Py_False, text ? text : "", rec.list);
    }
    free(text);
    Py_DECREF(rec.list);
    return res;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused) {
    int a, b, c;
    const char *v = kiln_version(&a, &b, &c);
    return Py_BuildValue("(s(iii))", v, a, b, c);
}

static PyObject *mod_dtype_name(PyObject *mod, PyObject *arg) {
    long c = PyLong_AsLong(arg);
    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(kiln_dtype_name((kiln_dtype)c));
}

static PyObject *mod_set_hooks(PyObject *mod, PyObject *args) {
    PyObject *a, *i, *o;
    if (!PyArg_ParseTuple(args, "OOO", &a, &i, &o))
        return NULL;
    Py_XSETREF(hook_asarray, Py_NewRef(a));
    Py_XSETREF(hook_input, Py_NewRef(i));
    Py_XSETREF(hook_output, Py_NewRef(o));
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"check", (PyCFunction)(void (*)(void))mod_check, METH_VARARGS | METH_KEYWORDS,
     "check(original, frozen, bind, runs=3, seed=1, rtol=1e-4, atol=1e-5, threads=0, inputs=None)\n"
     "-> (ok, text, [(run, output, max_abs, max_rel, ok)])"},
    {"version", mod_version, METH_NOARGS, "(version string, (major, minor, patch)) of the linked library"},
    {"dtype_name", mod_dtype_name, METH_O, "kiln's name of an ONNX dtype code"},
    {"_set_hooks", mod_set_hooks, METH_VARARGS, "_set_hooks(asarray, convert_input, convert_output)"},
    {NULL}};

static struct PyModuleDef kiln_module = {
    PyModuleDef_HEAD_INIT, .m_name = "kiln._kiln", .m_doc = "kiln's C library (kiln.h) for Python.", .m_size = -1,
    .m_methods = mod_methods};

static PyObject *new_error(PyObject *m, const char *name, PyObject *bases, const char *doc) {
    char full[64];
    snprintf(full, sizeof full, "kiln.%s", name);
    /* .status: the kiln_status name; None for errors the Python layer raises */
    PyObject *dict = Py_BuildValue("{sO}", "status", Py_None);
    if (!dict)
        return NULL;
    PyObject *e = PyErr_NewExceptionWithDoc(full, doc, bases, dict);
    Py_DECREF(dict);
    if (e && PyModule_AddObjectRef(m, name, e) != 0)
        Py_CLEAR(e);
    return e;
}

PyMODINIT_FUNC PyInit__kiln(void) {
    if (PyType_Ready(&ModelType) < 0 || PyType_Ready(&SessionType) < 0 || PyType_Ready(&TensorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&kiln_module);
    if (!m)
        return NULL;
    if (!(Error = new_error(m, "Error", NULL, "An error from kiln; .status names the kiln_status.")))
        goto fail;
    PyObject *b = PyTuple_Pack(2, Error, PyExc_ValueError);
    ArgumentError = b ? new_error(m, "ArgumentError", b, "A bad argument (KILN_ERR_ARG): unknown input, wrong dtype or rank, closed session.") : NULL;
    Py_XDECREF(b);
    if (!ArgumentError)
        goto fail;
    if (!(ModelError = new_error(m, "ModelError", Error, "A model kiln cannot read or run (parse, invalid, unsupported).")))
        goto fail;
    if (!(MismatchError = new_error(m, "MismatchError", Error, "A frozen model's outputs differ from the original's.")))
        goto fail;
    if (PyModule_AddObjectRef(m, "Model", (PyObject *)&ModelType) != 0 ||
        PyModule_AddObjectRef(m, "Session", (PyObject *)&SessionType) != 0 ||
        PyModule_AddObjectRef(m, "Tensor", (PyObject *)&TensorType) != 0 ||
        PyModule_AddStringConstant(m, "HEADER_VERSION", KILN_VERSION_STRING) != 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
