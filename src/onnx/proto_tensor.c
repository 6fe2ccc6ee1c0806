/* onnx.TensorProto <-> kiln_tensor: every data field, external data, checks.
 * The sub-byte types are packed in raw_data, int32_data and external data
 * (two 4-bit, four 2-bit or four-per-3-bytes 6-bit elements, first element in
 * the least significant bits) and unpacked to one byte per element here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir/ir.h"
#include "onnx.pb-c.h"

static const char *tname(const Onnx__TensorProto *p) {
    return p->name && *p->name ? p->name : "(unnamed)";
}

static bool dtype_known(int32_t dt) {
    return dt >= KILN_DTYPE_FLOAT && dt <= KILN_DTYPE_FLOAT6E3M2;
}

/* Marker left by the loader's pre-pass: the index of a lifted raw_data slice. */
static bool take_marker(Onnx__TensorProto *p, uint64_t *index) {
    for (size_t i = 0; i < p->base.n_unknown_fields; i++) {
        ProtobufCMessageUnknownField *u = &p->base.unknown_fields[i];
        if (u->tag != KILN_RAW_MARKER_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT)
            continue;
        uint64_t v = 0;
        for (size_t k = 0; k < u->len && k < 10; k++)
            v |= (uint64_t)(u->data[k] & 0x7f) << (7 * k);
        *index = v;
        free(u->data);
        p->base.unknown_fields[i] = p->base.unknown_fields[p->base.n_unknown_fields - 1];
        if (--p->base.n_unknown_fields == 0) {
            free(p->base.unknown_fields);
            p->base.unknown_fields = NULL;
        }
        return true;
    }
    return false;
}

static void release_region(kiln_buffer *b) {
    if (b->owner)
        munmap(b->owner, (size_t)(uintptr_t)b->ptr - (uintptr_t)b->owner + b->size);
    free(b);
}

static bool has_dotdot(const char *loc) {
    const char *p = loc;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

/* Unpacks `len` serialised bytes of a sub-byte type into t's own storage. */
static kiln_status unpack_into(const Onnx__TensorProto *p, const uint8_t *src, size_t len, const char *what,
                               kiln_tensor *t) {
    size_t want = kiln_dtype_packed_size(t->dtype, (size_t)t->numel);
    if (len != want)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': %s has %zu bytes, but shape %s of %s needs %zu (%d bits per "
                         "element, packed)", tname(p), what, len,
                         kiln_dims_str(t->rank, t->dims, (char[256]){0}, 256), kiln_dtype_name(t->dtype), want,
                         kiln_dtype_storage_bits(t->dtype));
    KILN_TRY(kiln_tensor_alloc_data(t));
    if (t->numel > 0)
        kiln_unpack_subbyte(t->dtype, src, (size_t)t->numel, t->data);
    return KILN_OK;
}

static kiln_status load_external(const Onnx__TensorProto *p, const kiln_ext_ctx *ext,
                                 kiln_tensor *t) {
    const char *loc = NULL;
    uint64_t offset = 0, length = 0;
    bool has_length = false;
    for (size_t i = 0; i < p->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = p->external_data[i];
        if (!e->key || !e->value)
            continue;
        char *end;
        if (strcmp(e->key, "location") == 0) {
            loc = e->value;
        } else if (strcmp(e->key, "offset") == 0 || strcmp(e->key, "length") == 0) {
            errno = 0;
            unsigned long long v = strtoull(e->value, &end, 10);
            if (errno || *end || !*e->value || e->value[0] == '-')
                return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data %s '%s' is not a number",
                                 tname(p), e->key, e->value);
            if (e->key[0] == 'o')
                offset = v;
            else {
                length = v;
                has_length = true;
            }
        }
    }
    if (!loc || !*loc)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data without a location", tname(p));
    if (!ext || !ext->base_dir)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data '%s' but no model folder to resolve it in",
                         tname(p), loc);
    if (loc[0] == '/')
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data location '%s' is absolute; only paths inside the model's folder are allowed",
                         tname(p), loc);
    if (has_dotdot(loc))
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data location '%s' contains '..'; only paths inside the model's folder are allowed",
                         tname(p), loc);
    char joined[PATH_MAX], real_base[PATH_MAX], real_file[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", ext->base_dir, loc) >= sizeof joined)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data path too long", tname(p));
    if (!realpath(ext->base_dir, real_base))
        return kiln_fail(KILN_ERR_IO, "%s: cannot resolve folder: %s", ext->base_dir, strerror(errno));
    if (!realpath(joined, real_file))
        return kiln_fail(KILN_ERR_IO, "tensor '%s': external data file '%s' cannot be opened: %s",
                         tname(p), joined, strerror(errno));
    size_t bl = strlen(real_base);
    if (strncmp(real_file, real_base, bl) != 0 || (real_file[bl] != '/' && strcmp(real_base, "/") != 0))
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data '%s' resolves to '%s', outside the model's folder",
                         tname(p), loc, real_file);
    /* O_NONBLOCK: a FIFO must not block the open; fstat rejects it next. */
    int fd = open(real_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0)
        return kiln_fail(KILN_ERR_IO, "tensor '%s': cannot open external data '%s': %s", tname(p), joined,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data '%s' is not a regular file", tname(p), joined);
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (!has_length)
        length = offset <= fsize ? fsize - offset : 0;
    if (offset > fsize || length > fsize - offset) {
        close(fd);
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data '%s' has %llu bytes, but offset %llu + length %llu goes past its end",
                         tname(p), joined, (unsigned long long)fsize, (unsigned long long)offset,
                         (unsigned long long)length);
    }
    size_t need = kiln_dtype_packed_size(t->dtype, (size_t)t->numel);
    if (length != need) {
        close(fd);
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': external data length %llu, but shape and type need %zu bytes",
                         tname(p), (unsigned long long)length, need);
    }
    kiln_buffer *b = kiln_calloc(1, sizeof *b);
    if (!b) {
        close(fd);
        return KILN_ERR_NOMEM;
    }
    b->refs = 1;
    b->release = release_region;
    if (length > 0) {
        long pg = sysconf(_SC_PAGESIZE);
        uint64_t start = offset - offset % (uint64_t)pg;
        size_t maplen = (size_t)(offset - start + length);
        void *m = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
        if (m == MAP_FAILED) {
            close(fd);
            free(b);
            return kiln_fail(KILN_ERR_IO, "tensor '%s': cannot map external data '%s': %s", tname(p), joined,
                             strerror(errno));
        }
        b->owner = m;
        b->ptr = (char *)m + (offset - start);
        b->size = (size_t)length;
    }
    close(fd);
    kiln_status ust = KILN_OK;
    if (kiln_dtype_is_packed(t->dtype))
        ust = unpack_into(p, b->ptr, b->size, "external data", t); /* the mapping goes */
    else
        kiln_tensor_set_buffer(t, b, b->ptr);
    kiln_buffer_unref(b);
    return ust;
}

/* Copies `n` typed-field values into t's buffer, converting per dtype. */
static kiln_status from_typed(const Onnx__TensorProto *p, kiln_tensor *t) {
    if (kiln_dtype_is_packed(t->dtype) && kiln_dtype_storage_bits(t->dtype) < 6) {
        /* int32_data holds the packed bytes, one per entry */
        size_t have = p->n_int32_data, want = kiln_dtype_packed_size(t->dtype, (size_t)t->numel);
        if (have != want)
            return kiln_fail(KILN_ERR_INVALID, "tensor '%s': has %zu int32_data entries, but %zu %s elements need %zu "
                             "(%d per entry)", tname(p), have, (size_t)t->numel, kiln_dtype_name(t->dtype), want,
                             8 / kiln_dtype_storage_bits(t->dtype));
        uint8_t *bytes = kiln_malloc(have ? have : 1);
        if (!bytes)
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < have; i++)
            bytes[i] = (uint8_t)p->int32_data[i];
        kiln_status st = unpack_into(p, bytes, have, "int32_data", t);
        free(bytes);
        return st;
    }
    size_t want = (size_t)t->numel;
    if (t->dtype == KILN_DTYPE_COMPLEX64 || t->dtype == KILN_DTYPE_COMPLEX128)
        want *= 2;
    size_t have;
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT:
    case KILN_DTYPE_COMPLEX64: have = p->n_float_data; break;
    case KILN_DTYPE_DOUBLE:
    case KILN_DTYPE_COMPLEX128: have = p->n_double_data; break;
    case KILN_DTYPE_INT64: have = p->n_int64_data; break;
    case KILN_DTYPE_UINT32:
    case KILN_DTYPE_UINT64: have = p->n_uint64_data; break;
    case KILN_DTYPE_STRING: have = p->n_string_data; break;
    default: have = p->n_int32_data; break;
    }
    if (have == 0 && want > 0)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': no data for %zu %s elements", tname(p),
                         (size_t)t->numel, kiln_dtype_name(t->dtype));
    if (have != want)
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': has %zu values but its shape needs %zu", tname(p),
                         have, want);
    KILN_TRY(kiln_tensor_alloc_data(t));
    void *d = t->data;
    for (size_t i = 0; i < want; i++) {
        switch (t->dtype) {
        case KILN_DTYPE_FLOAT:
        case KILN_DTYPE_COMPLEX64: ((float *)d)[i] = p->float_data[i]; break;
        case KILN_DTYPE_DOUBLE:
        case KILN_DTYPE_COMPLEX128: ((double *)d)[i] = p->double_data[i]; break;
        case KILN_DTYPE_INT64: ((int64_t *)d)[i] = p->int64_data[i]; break;
        case KILN_DTYPE_UINT32: ((uint32_t *)d)[i] = (uint32_t)p->uint64_data[i]; break;
        case KILN_DTYPE_UINT64: ((uint64_t *)d)[i] = p->uint64_data[i]; break;
        case KILN_DTYPE_INT32: ((int32_t *)d)[i] = p->int32_data[i]; break;
        case KILN_DTYPE_INT16: ((int16_t *)d)[i] = (int16_t)p->int32_data[i]; break;
        case KILN_DTYPE_UINT16:
        case KILN_DTYPE_FLOAT16:
        case KILN_DTYPE_BFLOAT16: ((uint16_t *)d)[i] = (uint16_t)p->int32_data[i]; break;
        case KILN_DTYPE_INT8: ((int8_t *)d)[i] = (int8_t)p->int32_data[i]; break;
        case KILN_DTYPE_UINT8: ((uint8_t *)d)[i] = (uint8_t)p->int32_data[i]; break;
        case KILN_DTYPE_BOOL: ((uint8_t *)d)[i] = p->int32_data[i] != 0; break;
        case KILN_DTYPE_FLOAT8E4M3FN:
        case KILN_DTYPE_FLOAT8E4M3FNUZ:
        case KILN_DTYPE_FLOAT8E5M2:
        case KILN_DTYPE_FLOAT8E5M2FNUZ:
        case KILN_DTYPE_FLOAT8E8M0: ((uint8_t *)d)[i] = (uint8_t)p->int32_data[i]; break;
        /* one 6-bit code per entry, in bits 0-5 */
        case KILN_DTYPE_FLOAT6E2M3:
        case KILN_DTYPE_FLOAT6E3M2: ((uint8_t *)d)[i] = (uint8_t)(p->int32_data[i] & 0x3f); break;
        case KILN_DTYPE_STRING: {
            kiln_string *s = &((kiln_string *)d)[i];
            s->len = p->string_data[i].len;
            /* protobuf-c leaves data NULL for an empty string */
            s->data = kiln_strndup(s->len ? (const char *)p->string_data[i].data : "", s->len);
            if (!s->data)
                return KILN_ERR_NOMEM;
            break;
        }
        default: break;
        }
    }
    return KILN_OK;
}

kiln_status kiln_tensor_from_proto(Onnx__TensorProto *p, kiln_buffer *backing, const kiln_ext_ctx *ext,
                                   kiln_tensor *t) {
    memset(t, 0, sizeof *t);
    if (!p->has_data_type || !dtype_known(p->data_type))
        return kiln_fail(KILN_ERR_INVALID, "tensor '%s': unknown data type %d", tname(p),
                         p->has_data_type ? (int)p->data_type : 0);
    kiln_limits lim = ext && ext->limits ? *ext->limits : kiln_limits_default();
    if (p->n_dims > (size_t)lim.max_rank)
        return kiln_fail(KILN_ERR_LIMIT, "tensor '%s': rank %zu exceeds the limit of %d (kiln_limits.max_rank)",
                         tname(p), p->n_dims, lim.max_rank);
    for (size_t i = 0; i < p->n_dims; i++)
        if (p->dims[i] < 0)
            return kiln_fail(KILN_ERR_INVALID, "tensor '%s': negative dimension %lld", tname(p),
                             (long long)p->dims[i]);
    kiln_status st = kiln_tensor_init_shape(t, (kiln_dtype)p->data_type, (int)p->n_dims, p->dims);
    if (st != KILN_OK)
        return kiln_fail_prefix(st, "tensor '%s': ", tname(p));
    if ((uint64_t)t->nbytes > lim.max_tensor_bytes)
        return kiln_fail(KILN_ERR_LIMIT, "tensor '%s': shape %s of %s needs %zu bytes, more than the limit of %llu "
                         "(kiln_limits.max_tensor_bytes)", tname(p),
                         kiln_dims_str(t->rank, t->dims, (char[256]){0}, 256), kiln_dtype_name(t->dtype), t->nbytes,
                         (unsigned long long)lim.max_tensor_bytes);
    if (p->segment)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tensor '%s': segmented tensors are not supported", tname(p));
    if (p->name && !(t->name = kiln_strdup(p->name)))
        return KILN_ERR_NOMEM;
    if (p->doc_string && !(t->doc = kiln_strdup(p->doc_string)))
        return KILN_ERR_NOMEM;
    t->src = p;
    uint64_t slice;
    if (take_marker(p, &slice)) {
        if (!backing || !ext || slice >= ext->n_slices)
            return kiln_fail(KILN_ERR_PARSE, "tensor '%s': field %u is reserved by kiln", tname(p),
                             KILN_RAW_MARKER_FIELD);
        const kiln_slice *s = &((const kiln_slice *)ext->slices)[slice];
        if (kiln_dtype_is_packed(t->dtype))
            return unpack_into(p, (const uint8_t *)backing->ptr + s->offset, (size_t)s->len, "raw_data", t);
        if (s->len != t->nbytes || t->dtype == KILN_DTYPE_STRING)
            return kiln_fail(KILN_ERR_INVALID, "tensor '%s': raw_data has %llu bytes, but shape %s of %s needs %zu",
                             tname(p), (unsigned long long)s->len,
                             kiln_dims_str(t->rank, t->dims, (char[256]){0}, 256), kiln_dtype_name(t->dtype),
                             t->nbytes);
        kiln_tensor_set_buffer(t, backing, (char *)backing->ptr + s->offset);
        return KILN_OK;
    }
    if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (t->dtype == KILN_DTYPE_STRING)
            return kiln_fail(KILN_ERR_INVALID, "tensor '%s': string tensors cannot use external data", tname(p));
        st = load_external(p, ext, t);
        if (st == KILN_OK && ext && ext->maps && t->buf && !kiln_dtype_is_packed(t->dtype)) {
            kiln_buffer **m = kiln_realloc(*ext->maps, (*ext->n_maps + 1) * sizeof *m);
            if (!m)
                return KILN_ERR_NOMEM;
            m[(*ext->n_maps)++] = kiln_buffer_ref(t->buf);
            *ext->maps = m;
        }
        return st;
    }
    if (p->has_raw_data && kiln_dtype_is_packed(t->dtype))
        return unpack_into(p, p->raw_data.data, p->raw_data.len, "raw_data", t);
    if (p->has_raw_data && t->dtype != KILN_DTYPE_STRING) {
        if (p->raw_data.len != t->nbytes)
            return kiln_fail(KILN_ERR_INVALID, "tensor '%s': raw_data has %zu bytes, but shape %s of %s needs %zu",
                             tname(p), p->raw_data.len,
                             kiln_dims_str(t->rank, t->dims, (char[256]){0}, 256), kiln_dtype_name(t->dtype),
                             t->nbytes);
        if (t->nbytes == 0)
            return kiln_tensor_alloc_data(t);
        /* Take the unpacked bytes instead of copying them (protobuf-c's default
         * allocator is malloc). */
        kiln_buffer *b = kiln_buffer_wrap(p->raw_data.data, p->raw_data.len);
        if (!b)
            return KILN_ERR_NOMEM;
        p->raw_data.data = NULL;
        p->raw_data.len = 0;
        p->has_raw_data = 0;
        kiln_tensor_set_buffer(t, b, b->ptr);
        kiln_buffer_unref(b);
        return KILN_OK;
    }
    return from_typed(p, t);
}

kiln_status kiln_tensor_to_proto(const kiln_tensor *t, Onnx__TensorProto *out) {
    if (t->src)
        *out = *(const Onnx__TensorProto *)t->src;
    else
        onnx__tensor_proto__init(out);
    /* Everything about data is rewritten; the rest of src stays. */
    out->n_dims = (size_t)t->rank;
    out->dims = (int64_t *)t->dims;
    out->has_data_type = 1;
    out->data_type = (int32_t)t->dtype;
    out->name = t->name;
    out->doc_string = t->doc;
    out->n_float_data = out->n_int32_data = out->n_int64_data = 0;
    out->n_double_data = out->n_uint64_data = out->n_string_data = 0;
    out->float_data = NULL;
    out->int32_data = NULL;
    out->int64_data = NULL;
    out->double_data = NULL;
    out->uint64_data = NULL;
    out->string_data = NULL;
    out->n_external_data = 0;
    out->external_data = NULL;
    out->has_data_location = 0;
    out->segment = NULL;
    out->has_raw_data = 0;
    out->raw_data.len = 0;
    out->raw_data.data = NULL;
    if (t->dtype == KILN_DTYPE_STRING) {
        if (t->numel > 0) {
            ProtobufCBinaryData *sd = kiln_calloc((size_t)t->numel, sizeof *sd);
            if (!sd)
                return KILN_ERR_NOMEM;
            const kiln_string *s = t->data;
            for (int64_t i = 0; i < t->numel; i++) {
                sd[i].len = s[i].len;
                sd[i].data = (uint8_t *)s[i].data;
            }
            out->n_string_data = (size_t)t->numel;
            out->string_data = sd;
        }
    } else if (kiln_dtype_is_packed(t->dtype)) {
        /* packed into new memory that kiln_tensor_proto_free releases */
        size_t len = kiln_dtype_packed_size(t->dtype, (size_t)t->numel);
        uint8_t *buf = kiln_malloc(len ? len : 1);
        if (!buf)
            return KILN_ERR_NOMEM;
        if (t->numel > 0)
            kiln_pack_subbyte(t->dtype, t->data, (size_t)t->numel, buf);
        out->has_raw_data = 1;
        out->raw_data.len = len;
        out->raw_data.data = buf;
    } else {
        out->has_raw_data = 1;
        out->raw_data.len = t->nbytes;
        out->raw_data.data = (uint8_t *)t->data;
    }
    return KILN_OK;
}

uint8_t *kiln_tensor_proto_packed(const Onnx__TensorProto *p) {
    if (p->has_data_type && kiln_dtype_is_packed((kiln_dtype)p->data_type) && p->has_raw_data)
        return p->raw_data.data;
    return NULL;
}

void kiln_tensor_proto_free(Onnx__TensorProto *p) {
    free(p->string_data);
    p->string_data = NULL;
    uint8_t *packed = kiln_tensor_proto_packed(p);
    if (packed) {
        free(packed);
        p->raw_data.data = NULL;
        p->raw_data.len = 0;
        p->has_raw_data = 0;
    }
}
