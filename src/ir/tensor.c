/* Buffers and tensors: storage, shapes, element access, the public tensor API. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/ir.h"

const char *kiln_dtype_name(kiln_dtype t) {
    static const char *names[] = {"undefined", "float32", "uint8",  "int8",   "uint16",
                                  "int16",     "int32",   "int64",  "string", "bool",
                                  "float16",   "float64", "uint32", "uint64", "complex64",
                                  "complex128", "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
                                  "float8e5m2fnuz", "uint4", "int4", "float4e2m1", "float8e8m0", "uint2",
                                  "int2", "float6e2m3", "float6e3m2"};
    if ((unsigned)t < sizeof names / sizeof *names)
        return names[t];
    return "unknown";
}

size_t kiln_dtype_size(kiln_dtype t) {
    switch (t) {
    case KILN_DTYPE_FLOAT: return 4;
    case KILN_DTYPE_UINT8: return 1;
    case KILN_DTYPE_INT8: return 1;
    case KILN_DTYPE_UINT16: return 2;
    case KILN_DTYPE_INT16: return 2;
    case KILN_DTYPE_INT32: return 4;
    case KILN_DTYPE_INT64: return 8;
    case KILN_DTYPE_BOOL: return 1;
    case KILN_DTYPE_FLOAT16: return 2;
    case KILN_DTYPE_DOUBLE: return 8;
    case KILN_DTYPE_UINT32: return 4;
    case KILN_DTYPE_UINT64: return 8;
    case KILN_DTYPE_COMPLEX64: return 8;
    case KILN_DTYPE_COMPLEX128: return 16;
    case KILN_DTYPE_BFLOAT16: return 2;
    case KILN_DTYPE_FLOAT8E4M3FN:
    case KILN_DTYPE_FLOAT8E4M3FNUZ:
    case KILN_DTYPE_FLOAT8E5M2:
    case KILN_DTYPE_FLOAT8E5M2FNUZ:
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_FLOAT4E2M1:
    case KILN_DTYPE_FLOAT8E8M0:
    case KILN_DTYPE_UINT2:
    case KILN_DTYPE_INT2:
    case KILN_DTYPE_FLOAT6E2M3:
    case KILN_DTYPE_FLOAT6E3M2: return 1; /* one byte per element in memory (kiln.h) */
    default: return 0;
    }
}

int kiln_dtype_storage_bits(kiln_dtype t) {
    switch (t) {
    case KILN_DTYPE_UINT2:
    case KILN_DTYPE_INT2: return 2;
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_FLOAT4E2M1: return 4;
    case KILN_DTYPE_FLOAT6E2M3:
    case KILN_DTYPE_FLOAT6E3M2: return 6;
    default: return (int)kiln_dtype_size(t) * 8;
    }
}

size_t kiln_dtype_packed_size(kiln_dtype t, size_t n) {
    size_t bits = (size_t)kiln_dtype_storage_bits(t);
    /* ceil(n * bits / 8) without overflowing n * bits */
    return n / 8 * bits + ((n % 8) * bits + 7) / 8;
}

void kiln_pack_subbyte(kiln_dtype t, const uint8_t *src, size_t n, uint8_t *dst) {
    int bits = kiln_dtype_storage_bits(t);
    size_t out = kiln_dtype_packed_size(t, n);
    memset(dst, 0, out);
    unsigned mask = (1u << bits) - 1;
    for (size_t i = 0; i < n; i++) {
        size_t bit = i * (size_t)bits;
        unsigned v = src[i] & mask;
        dst[bit / 8] |= (uint8_t)(v << (bit % 8));
        if (bit % 8 + (size_t)bits > 8) /* a 6-bit element across two bytes */
            dst[bit / 8 + 1] |= (uint8_t)(v >> (8 - bit % 8));
    }
}

void kiln_unpack_subbyte(kiln_dtype t, const uint8_t *src, size_t n, uint8_t *dst) {
    int bits = kiln_dtype_storage_bits(t);
    unsigned mask = (1u << bits) - 1;
    bool sign = t == KILN_DTYPE_INT4 || t == KILN_DTYPE_INT2;
    for (size_t i = 0; i < n; i++) {
        size_t bit = i * (size_t)bits;
        unsigned v = src[bit / 8] >> (bit % 8);
        if (bit % 8 + (size_t)bits > 8)
            v |= (unsigned)src[bit / 8 + 1] << (8 - bit % 8);
        v &= mask;
        if (sign && (v >> (bits - 1)))
            v |= ~mask; /* sign-extend into the byte */
        dst[i] = (uint8_t)v;
    }
}

/* ---- buffers ---- */

static void release_owned(kiln_buffer *b) {
    free(b->ptr);
    free(b);
}

kiln_buffer *kiln_buffer_alloc(size_t size) {
    kiln_buffer *b = kiln_malloc(sizeof *b);
    if (!b)
        return NULL;
    b->ptr = kiln_aligned_alloc(size);
    if (!b->ptr) {
        free(b);
        return NULL;
    }
    memset(b->ptr, 0, size);
    b->refs = 1;
    b->size = size;
    b->release = release_owned;
    b->owner = NULL;
    return b;
}

kiln_buffer *kiln_buffer_wrap(void *ptr, size_t size) {
    kiln_buffer *b = kiln_malloc(sizeof *b);
    if (!b)
        return NULL;
    b->refs = 1;
    b->ptr = ptr;
    b->size = size;
    b->release = release_owned;
    b->owner = NULL;
    return b;
}

/* Counts are atomic: a model's weights and a caller's inputs are shared by
 * sessions running on several threads. */
kiln_buffer *kiln_buffer_ref(kiln_buffer *b) {
    if (b)
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void kiln_buffer_unref(kiln_buffer *b) {
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        b->release(b);
}

bool kiln_buffer_sole(const kiln_buffer *b) { return __atomic_load_n(&b->refs, __ATOMIC_ACQUIRE) == 1; }

static void release_map(kiln_buffer *b) {
    if (b->ptr && b->size)
        munmap(b->ptr, b->size);
    free(b);
}

kiln_status kiln_map_file(const char *path, kiln_buffer **out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0)
        return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: not a regular file", path);
    }
    void *p = NULL;
    if (st.st_size > 0) {
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return kiln_fail(KILN_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    kiln_buffer *b = kiln_malloc(sizeof *b);
    if (!b) {
        if (p)
            munmap(p, (size_t)st.st_size);
        return KILN_ERR_NOMEM;
    }
    b->refs = 1;
    b->ptr = p;
    b->size = (size_t)st.st_size;
    b->release = release_map;
    b->owner = NULL;
    *out = b;
    return KILN_OK;
}

/* ---- tensors ---- */

kiln_tensor *kiln_tensor_new(void) { return kiln_calloc(1, sizeof(kiln_tensor)); }

kiln_status kiln_tensor_init_shape(kiln_tensor *t, kiln_dtype dtype, int rank, const int64_t *dims) {
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "rank %d exceeds kiln's limit of %d", rank, KILN_MAX_RANK);
    size_t es = dtype == KILN_DTYPE_STRING ? sizeof(kiln_string) : kiln_dtype_size(dtype);
    if (es == 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "element type %d is not supported", (int)dtype);
    int64_t numel;
    KILN_TRY(kiln_dims_numel(rank, dims, &numel));
    size_t nbytes;
    if (kiln_mul_overflow_size((size_t)numel, es, &nbytes) || numel > (int64_t)(SIZE_MAX / 2))
        return kiln_fail(KILN_ERR_LIMIT, "tensor size overflows");
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->numel = numel;
    t->nbytes = nbytes;
    return KILN_OK;
}

kiln_status kiln_tensor_alloc_data(kiln_tensor *t) {
    kiln_buffer *b = kiln_buffer_alloc(t->nbytes);
    if (!b)
        return KILN_ERR_NOMEM;
    if (t->dtype == KILN_DTYPE_STRING) {
        /* Strings own their bytes; the buffer's release frees them. */
        extern void kiln_string_buffer_release(kiln_buffer * b);
        b->release = kiln_string_buffer_release;
    }
    kiln_buffer_unref(t->buf);
    t->buf = b;
    t->data = b->ptr;
    return KILN_OK;
}

void kiln_string_buffer_release(kiln_buffer *b) {
    kiln_string *s = b->ptr;
    size_t n = b->size / sizeof(kiln_string);
    for (size_t i = 0; i < n; i++)
        free(s[i].data);
    free(b->ptr);
    free(b);
}

void kiln_tensor_set_buffer(kiln_tensor *t, kiln_buffer *b, void *data) {
    kiln_buffer_ref(b);
    kiln_buffer_unref(t->buf);
    t->buf = b;
    t->data = data;
}

void kiln_tensor_clear(kiln_tensor *t) {
    if (!t)
        return;
    kiln_buffer_unref(t->buf);
    kiln_value_clear_items(t);
    free(t->name);
    free(t->doc);
    memset(t, 0, sizeof *t);
}

kiln_status kiln_tensor_clone(const kiln_tensor *t, kiln_tensor **out) {
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_value_clone(t, out);
    kiln_tensor *c = kiln_tensor_new();
    if (!c)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(c, t->dtype, t->rank, t->dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(c);
    if (st == KILN_OK && t->name && !(c->name = kiln_strdup(t->name)))
        st = KILN_ERR_NOMEM;
    if (st == KILN_OK && t->doc && !(c->doc = kiln_strdup(t->doc)))
        st = KILN_ERR_NOMEM;
    if (st == KILN_OK) {
        if (t->dtype == KILN_DTYPE_STRING) {
            const kiln_string *s = t->data;
            kiln_string *d = c->data;
            for (int64_t i = 0; i < t->numel && st == KILN_OK; i++) {
                d[i].len = s[i].len;
                d[i].data = kiln_strndup(s[i].data ? s[i].data : "", s[i].len);
                if (!d[i].data)
                    st = KILN_ERR_NOMEM;
            }
        } else if (t->nbytes) {
            memcpy(c->data, t->data, t->nbytes);
        }
    }
    if (st != KILN_OK) {
        kiln_tensor_destroy(c);
        return st;
    }
    *out = c;
    return KILN_OK;
}

kiln_status kiln_tensor_share(const kiln_tensor *t, kiln_tensor **out) {
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_value_share(t, out);
    kiln_tensor *c = kiln_tensor_new();
    if (!c)
        return KILN_ERR_NOMEM;
    kiln_tensor_init_shape(c, t->dtype, t->rank, t->dims);
    kiln_tensor_set_buffer(c, t->buf, t->data);
    *out = c;
    return KILN_OK;
}

bool kiln_tensor_is_aligned(const kiln_tensor *t) {
    size_t es = t->dtype == KILN_DTYPE_STRING ? sizeof(void *) : kiln_dtype_size(t->dtype);
    if (es > 8)
        es = 8;
    return es == 0 || ((uintptr_t)t->data % es) == 0;
}

/* Element i of an array of T at d, read with memcpy: a zero-copy initializer
 * sits where the file put it, not always aligned for T (the planner aligns
 * what the engine runs; freeze passes read initializers where they are). */
#define LOAD_AS(T)                                                                                                    \
    static inline T load_##T(const void *d, int64_t i) {                                                              \
        T v;                                                                                                          \
        memcpy(&v, (const char *)d + (size_t)i * sizeof v, sizeof v);                                                 \
        return v;                                                                                                     \
    }
LOAD_AS(float)
LOAD_AS(double)
LOAD_AS(uint16_t)
LOAD_AS(int16_t)
LOAD_AS(int32_t)
LOAD_AS(uint32_t)
LOAD_AS(int64_t)
LOAD_AS(uint64_t)
#undef LOAD_AS

double kiln_tensor_get_f64(const kiln_tensor *t, int64_t i) {
    const void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT: return load_float(d, i);
    case KILN_DTYPE_DOUBLE: return load_double(d, i);
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(load_uint16_t(d, i));
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(load_uint16_t(d, i));
    case KILN_DTYPE_INT8: return ((const int8_t *)d)[i];
    case KILN_DTYPE_UINT8: return ((const uint8_t *)d)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)d)[i] != 0;
    case KILN_DTYPE_INT16: return load_int16_t(d, i);
    case KILN_DTYPE_UINT16: return load_uint16_t(d, i);
    case KILN_DTYPE_INT32: return load_int32_t(d, i);
    case KILN_DTYPE_UINT32: return load_uint32_t(d, i);
    case KILN_DTYPE_INT64: return (double)load_int64_t(d, i);
    case KILN_DTYPE_UINT64: return (double)load_uint64_t(d, i);
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2: return ((const int8_t *)d)[i];
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2: return ((const uint8_t *)d)[i];
    default:
        if (kiln_is_minifloat(t->dtype))
            return kiln_minifloat_to_float(t->dtype, ((const uint8_t *)d)[i]);
        return 0;
    }
}

int64_t kiln_tensor_get_i64(const kiln_tensor *t, int64_t i) {
    const void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_INT8: return ((const int8_t *)d)[i];
    case KILN_DTYPE_UINT8: return ((const uint8_t *)d)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)d)[i] != 0;
    case KILN_DTYPE_INT16: return load_int16_t(d, i);
    case KILN_DTYPE_UINT16: return load_uint16_t(d, i);
    case KILN_DTYPE_INT32: return load_int32_t(d, i);
    case KILN_DTYPE_UINT32: return load_uint32_t(d, i);
    case KILN_DTYPE_INT64: return load_int64_t(d, i);
    case KILN_DTYPE_UINT64: return (int64_t)load_uint64_t(d, i);
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2: return ((const int8_t *)d)[i];
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2: return ((const uint8_t *)d)[i];
    default: {
        double v = kiln_tensor_get_f64(t, i);
        if (v != v)
            return 0;
        if (v >= 9.2e18)
            return INT64_MAX;
        if (v <= -9.2e18)
            return INT64_MIN;
        return (int64_t)v;
    }
    }
}

const char *kiln_dims_str(int rank, const int64_t *dims, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < rank && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
    return buf;
}

/* ---- public API ---- */

kiln_status kiln_tensor_create(kiln_dtype dtype, int rank, const int64_t *dims, kiln_tensor **out) {
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, dtype, rank, dims);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_tensor_create_copy(kiln_dtype dtype, int rank, const int64_t *dims,
                                    const void *data, size_t nbytes, kiln_tensor **out) {
    if (dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_create_copy does not take strings");
    kiln_tensor *t;
    KILN_TRY(kiln_tensor_create(dtype, rank, dims, &t));
    if (nbytes != t->nbytes) {
        size_t need = t->nbytes;
        char shape[256];
        kiln_dims_str(t->rank, t->dims, shape, sizeof shape);
        kiln_tensor_destroy(t);
        return kiln_fail(KILN_ERR_ARG, "data has %zu bytes, shape %s of %s needs %zu", nbytes, shape,
                         kiln_dtype_name(dtype), need);
    }
    if (nbytes)
        memcpy(t->data, data, nbytes);
    *out = t;
    return KILN_OK;
}

void kiln_tensor_destroy(kiln_tensor *t) {
    if (!t)
        return;
    kiln_tensor_clear(t);
    free(t);
}

kiln_dtype kiln_tensor_dtype(const kiln_tensor *t) { return t->dtype; }
int kiln_tensor_rank(const kiln_tensor *t) { return t->rank; }
const int64_t *kiln_tensor_dims(const kiln_tensor *t) { return t->dims; }
int64_t kiln_tensor_numel(const kiln_tensor *t) { return t->numel; }
size_t kiln_tensor_nbytes(const kiln_tensor *t) { return t->nbytes; }
/* Writable data is the caller's own: a tensor whose buffer is shared (a
 * view of an input, a weight, the carried state, another output) or is not
 * kiln's heap memory (a mapped file, a session's arena) first gets a private
 * copy, so writing through the pointer changes nothing else. */
void *kiln_tensor_data(kiln_tensor *t) {
    if (!t || t->kind != KILN_VALUE_TENSOR || !t->buf || !t->nbytes)
        return t ? t->data : NULL;
    if (kiln_buffer_sole(t->buf) && t->buf->release == release_owned && t->data == t->buf->ptr)
        return t->data;
    kiln_tensor *c;
    if (kiln_tensor_clone(t, &c) != KILN_OK)
        return NULL;
    kiln_tensor_set_buffer(t, c->buf, c->data);
    kiln_tensor_destroy(c);
    return t->data;
}
const void *kiln_tensor_data_const(const kiln_tensor *t) { return t->data; }

const char *kiln_tensor_string(const kiln_tensor *t, int64_t i, size_t *len) {
    if (t->dtype != KILN_DTYPE_STRING || i < 0 || i >= t->numel)
        return NULL;
    const kiln_string *s = t->data;
    if (len)
        *len = s[i].len;
    return s[i].data ? s[i].data : "";
}

/* ---- axis slicing and concatenation (streaming, scans) ---- */

static size_t elem_bytes(kiln_dtype dt) { return dt == KILN_DTYPE_STRING ? sizeof(kiln_string) : kiln_dtype_size(dt); }

kiln_status kiln_tensor_slice_axis(const kiln_tensor *t, int axis, int64_t start, int64_t len, kiln_tensor **out) {
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_ARG, "a %s cannot be sliced along an axis", kiln_value_kind_name(t->kind));
    if (axis < 0 || axis >= t->rank || start < 0 || len < 0 || start + len > t->dims[axis])
        return kiln_fail(KILN_ERR_ARG, "slice [%lld, %lld) of axis %d is out of range for that tensor",
                         (long long)start, (long long)(start + len), axis);
    if (t->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "slicing string tensors is not supported");
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[axis] = len;
    kiln_tensor *s;
    KILN_TRY(kiln_tensor_create(t->dtype, t->rank, dims, &s));
    size_t es = elem_bytes(t->dtype), outer = 1, inner = es;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= (size_t)t->dims[d];
    for (size_t q = 0; q < outer && len; q++)
        memcpy((char *)s->data + q * (size_t)len * inner,
               (const char *)t->data + (q * (size_t)t->dims[axis] + (size_t)start) * inner, (size_t)len * inner);
    *out = s;
    return KILN_OK;
}

kiln_status kiln_tensor_concat_axis(kiln_tensor *const *ts, size_t n, int axis, kiln_tensor **out) {
    if (n == 0)
        return kiln_fail(KILN_ERR_ARG, "nothing to concatenate");
    const kiln_tensor *f = ts[0];
    for (size_t i = 0; i < n; i++)
        if (ts[i]->kind != KILN_VALUE_TENSOR)
            return kiln_fail(KILN_ERR_ARG, "a %s cannot be joined along an axis", kiln_value_kind_name(ts[i]->kind));
    if (axis < 0 || axis >= f->rank)
        return kiln_fail(KILN_ERR_ARG, "axis %d is out of range for rank %d", axis, f->rank);
    if (f->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "concatenating string tensors is not supported");
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, f->dims, sizeof dims);
    dims[axis] = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = ts[i]->dtype == f->dtype && ts[i]->rank == f->rank;
        for (int d = 0; ok && d < f->rank; d++)
            ok = d == axis || ts[i]->dims[d] == f->dims[d];
        if (!ok)
            return kiln_fail(KILN_ERR_INVALID, "pieces to concatenate along axis %d differ in type or other dims", axis);
        dims[axis] += ts[i]->dims[axis];
    }
    kiln_tensor *c;
    KILN_TRY(kiln_tensor_create(f->dtype, f->rank, dims, &c));
    size_t es = elem_bytes(f->dtype), outer = 1, inner = es;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)f->dims[d];
    for (int d = axis + 1; d < f->rank; d++)
        inner *= (size_t)f->dims[d];
    char *dst = c->data;
    for (size_t q = 0; q < outer; q++)
        for (size_t i = 0; i < n; i++) {
            size_t chunk = (size_t)ts[i]->dims[axis] * inner;
            memcpy(dst, (const char *)ts[i]->data + q * chunk, chunk);
            dst += chunk;
        }
    *out = c;
    return KILN_OK;
}

/* ---- caller memory and copy-on-write (kiln.h) ---- */

typedef struct wrapped_buffer {
    kiln_buffer b; /* must stay first */
    void (*release)(void *ctx);
    void *ctx;
} wrapped_buffer;

static void release_wrapped(kiln_buffer *b) {
    wrapped_buffer *w = (wrapped_buffer *)b;
    if (w->release)
        w->release(w->ctx);
    free(w);
}

kiln_status kiln_tensor_wrap(kiln_dtype dtype, int rank, const int64_t *dims, void *data, size_t nbytes,
                             void (*release)(void *ctx), void *ctx, kiln_tensor **out) {
    if (!out)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_wrap: no place for the tensor");
    *out = NULL;
    if (dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_wrap does not take strings");
    if (rank < 0 || rank > KILN_MAX_RANK || (rank > 0 && !dims))
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_wrap: rank %d out of range", rank);
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, dtype, rank, dims);
    if (st == KILN_OK && nbytes != t->nbytes)
        st = kiln_fail(KILN_ERR_ARG, "data has %zu bytes, shape needs %zu", nbytes, t->nbytes);
    if (st == KILN_OK && nbytes && !data)
        st = kiln_fail(KILN_ERR_ARG, "kiln_tensor_wrap: no data");
    size_t es = kiln_dtype_size(dtype) > 8 ? 8 : kiln_dtype_size(dtype);
    if (st == KILN_OK && es && (uintptr_t)data % es)
        st = kiln_fail(KILN_ERR_ARG, "kiln_tensor_wrap: data is not aligned to %zu bytes", es);
    wrapped_buffer *w = st == KILN_OK ? kiln_calloc(1, sizeof *w) : NULL;
    if (st == KILN_OK && !w)
        st = KILN_ERR_NOMEM;
    if (st != KILN_OK) {
        free(t);
        return st;
    }
    w->b.refs = 1;
    w->b.ptr = data;
    w->b.size = nbytes;
    w->b.release = release_wrapped;
    w->release = release;
    w->ctx = ctx;
    t->buf = &w->b;
    t->data = data;
    *out = t;
    return KILN_OK;
}

extern bool kiln_arena_owns_buffer(const kiln_buffer *b);

kiln_status kiln_tensor_make_writable(kiln_tensor *t) {
    if (!t)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_make_writable: no tensor");
    kiln_buffer *b = t->buf;
    if (!b || t->numel == 0)
        return KILN_OK;
    bool own = kiln_buffer_sole(b) && (b->release == release_owned || b->release == kiln_string_buffer_release ||
                                kiln_arena_owns_buffer(b));
    if (own)
        return KILN_OK;
    kiln_tensor *c;
    KILN_TRY(kiln_tensor_clone(t, &c));
    kiln_tensor_set_buffer(t, c->buf, c->data);
    kiln_tensor_destroy(c);
    return KILN_OK;
}

kiln_status kiln_tensor_set_string(kiln_tensor *t, int64_t i, const char *s, size_t len) {
    if (!t || t->dtype != KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_set_string: not a string tensor");
    if (i < 0 || i >= t->numel)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_set_string: element %lld of %lld", (long long)i,
                         (long long)t->numel);
    if (!s && len)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_set_string: no bytes");
    /* shared with another tensor: give this one its own strings first */
    KILN_TRY(kiln_tensor_make_writable(t));
    char *c = kiln_strndup(len ? s : "", len);
    if (!c)
        return KILN_ERR_NOMEM;
    kiln_string *e = (kiln_string *)t->data + i;
    free(e->data);
    e->data = c;
    e->len = len;
    return KILN_OK;
}
