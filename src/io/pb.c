/* ONNX TensorProto files (.pb), the format of ONNX's test data sets, and
 * SequenceProto / OptionalProto files for sequence and optional values. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "onnx.pb-c.h"

/* A tensor file holds its data in exactly one place: raw_data, or the one
 * typed field its data type uses (the count against its dims is checked by
 * kiln_tensor_from_proto). A second source, a typed field of another type,
 * or raw_data for strings would be read one way here and another elsewhere:
 * refused. */
static kiln_status check_sources(const char *path, const Onnx__TensorProto *p) {
    const char *name = p->name && *p->name ? p->name : "(unnamed)";
    struct {
        const char *field;
        size_t n;
    } f[] = {{"raw_data", p->has_raw_data ? 1u : 0u}, {"float_data", p->n_float_data},
             {"int32_data", p->n_int32_data},         {"string_data", p->n_string_data},
             {"int64_data", p->n_int64_data},         {"double_data", p->n_double_data},
             {"uint64_data", p->n_uint64_data},       {"external_data", p->n_external_data}};
    const char *first = NULL;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        if (!f[i].n)
            continue;
        if (first)
            return kiln_fail(KILN_ERR_INVALID, "%s: tensor '%s' has data in both %s and %s; a tensor holds it in one",
                             path, name, first, f[i].field);
        first = f[i].field;
    }
    if (!p->has_data_type)
        return kiln_fail(KILN_ERR_INVALID, "%s: tensor '%s' has no data_type", path, name);
    int dt = p->data_type;
    const char *want;
    switch (dt) {
    case KILN_DTYPE_FLOAT:
    case KILN_DTYPE_COMPLEX64: want = "float_data"; break;
    case KILN_DTYPE_DOUBLE:
    case KILN_DTYPE_COMPLEX128: want = "double_data"; break;
    case KILN_DTYPE_INT64: want = "int64_data"; break;
    case KILN_DTYPE_UINT32:
    case KILN_DTYPE_UINT64: want = "uint64_data"; break;
    case KILN_DTYPE_STRING: want = "string_data"; break;
    default: want = "int32_data"; break;
    }
    if (first && strcmp(first, "raw_data") && strcmp(first, "external_data") && strcmp(first, want))
        return kiln_fail(KILN_ERR_INVALID, "%s: tensor '%s' of type %s has its data in %s; that type uses %s or "
                         "raw_data", path, name, kiln_dtype_name((kiln_dtype)dt), first, want);
    if (first && dt == KILN_DTYPE_STRING && strcmp(first, "string_data"))
        return kiln_fail(KILN_ERR_INVALID, "%s: tensor '%s' of type string has its data in %s; strings use "
                         "string_data", path, name, first);
    if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL &&
        (!first || strcmp(first, "external_data")))
        return kiln_fail(KILN_ERR_INVALID, "%s: tensor '%s' says its data is external but has no external_data "
                         "entries", path, name);
    return KILN_OK;
}

kiln_status kiln_pb_read(const char *path, kiln_tensor **out) {
    *out = NULL;
    kiln_buffer *map;
    KILN_TRY(kiln_map_file(path, &map));
    Onnx__TensorProto *p = onnx__tensor_proto__unpack(NULL, map->size, map->ptr ? map->ptr : (void *)"");
    kiln_buffer_unref(map);
    if (!p)
        return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX TensorProto", path);
    kiln_status st = check_sources(path, p);
    if (st != KILN_OK) {
        onnx__tensor_proto__free_unpacked(p, NULL);
        return st;
    }
    kiln_tensor *t = kiln_tensor_new();
    st = t ? kiln_tensor_from_proto(p, NULL, NULL, t) : KILN_ERR_NOMEM;
    if (t)
        t->src = NULL; /* the message goes away now */
    onnx__tensor_proto__free_unpacked(p, NULL);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return kiln_fail_prefix(st, "%s: ", path);
    }
    *out = t;
    return KILN_OK;
}

typedef struct pb_write {
    const uint8_t *data;
    size_t len;
    const char *path;
} pb_write;

static kiln_status write_bytes(void *ctx, int fd) {
    pb_write *w = ctx;
    return kiln_write_all(fd, w->data, w->len, w->path);
}

kiln_status kiln_pb_read_value(const char *path, kiln_value_kind kind, kiln_tensor **out) {
    *out = NULL;
    if (kind == KILN_VALUE_TENSOR || kind == KILN_VALUE_UNKNOWN)
        return kiln_pb_read(path, out);
    kiln_buffer *map;
    KILN_TRY(kiln_map_file(path, &map));
    kiln_status st = kiln_value_from_bytes(map->ptr ? map->ptr : (void *)"", map->size, kind, path, out);
    kiln_buffer_unref(map);
    return st;
}

kiln_status kiln_pb_write(const kiln_tensor *t, const char *path) {
    if (t->kind != KILN_VALUE_TENSOR) {
        kiln_sbuf b;
        KILN_TRY(kiln_value_to_bytes(t, &b));
        pb_write w = {(const uint8_t *)(b.data ? b.data : ""), b.len, path};
        kiln_status st = kiln_write_atomic(path, write_bytes, &w);
        free(b.data);
        return st;
    }
    Onnx__TensorProto p;
    kiln_tensor tmp = *t;
    tmp.src = NULL;
    KILN_TRY(kiln_tensor_to_proto(&tmp, &p));
    size_t len = onnx__tensor_proto__get_packed_size(&p);
    uint8_t *buf = kiln_malloc(len);
    if (!buf) {
        kiln_tensor_proto_free(&p);
        return KILN_ERR_NOMEM;
    }
    onnx__tensor_proto__pack(&p, buf);
    kiln_tensor_proto_free(&p);
    pb_write w = {buf, len, path};
    kiln_status st = kiln_write_atomic(path, write_bytes, &w);
    free(buf);
    return st;
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

kiln_status kiln_tensor_load(const char *path, kiln_tensor **out) {
    if (ends_with(path, ".npy"))
        return kiln_npy_read(path, out);
    if (ends_with(path, ".pb"))
        return kiln_pb_read(path, out);
    return kiln_fail(KILN_ERR_ARG, "%s: unknown tensor file type (use .npy or .pb)", path);
}

kiln_status kiln_tensor_save(const kiln_tensor *t, const char *path) {
    if (ends_with(path, ".npy"))
        return kiln_npy_write(t, path);
    if (ends_with(path, ".pb"))
        return kiln_pb_write(t, path);
    return kiln_fail(KILN_ERR_ARG, "%s: unknown tensor file type (use .npy or .pb)", path);
}
