/* Sequence and optional values in protobuf: SequenceProto and OptionalProto
 * (onnx-data.proto, the format of ONNX's test data for such values), and the
 * kinds of declared types (TypeProto).
 *
 * The onnx.proto kiln generates its protobuf code from does not define
 * SequenceProto or OptionalProto, so they are read and written here in the
 * wire format directly; both have the same fields:
 *   1 name (string), 2 elem_type (int32: 0 undefined, 1 tensor,
 *   2 sparse tensor, 3 sequence, 4 map, 5 optional), 3 tensor value(s),
 *   4 sparse tensor value(s), 5 sequence value(s), 6 map value(s),
 *   7 optional value(s) (repeated in SequenceProto, one in OptionalProto).
 * Their TensorProto elements go through protobuf-c. Reading bounds nesting
 * (KILN_MAX_VALUE_NESTING), element counts (KILN_MAX_SEQUENCE_LENGTH in all)
 * and name lengths before anything is allocated for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "onnx.pb-c.h"

enum { ELEM_UNDEFINED = 0, ELEM_TENSOR = 1, ELEM_SPARSE = 2, ELEM_SEQUENCE = 3, ELEM_MAP = 4, ELEM_OPTIONAL = 5 };
enum { F_NAME = 1, F_ELEM_TYPE = 2, F_TENSOR = 3, F_SPARSE = 4, F_SEQUENCE = 5, F_MAP = 6, F_OPTIONAL = 7 };

/* ---- declared types ---- */

static kiln_value_kind proto_kind(const Onnx__TypeProto *tp, kiln_value_kind *elem_kind, kiln_dtype *elem) {
    kiln_value_kind kind = KILN_VALUE_UNKNOWN, ek = KILN_VALUE_UNKNOWN;
    kiln_dtype dt = KILN_DTYPE_UNDEFINED;
    /* the innermost tensor type, through at most a bounded chain */
    const Onnx__TypeProto *t = tp;
    for (int depth = 0; t && depth < 64; depth++) {
        kiln_value_kind k = KILN_VALUE_UNKNOWN;
        const Onnx__TypeProto *next = NULL;
        switch (t->value_case) {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            k = KILN_VALUE_TENSOR;
            if (t->tensor_type && t->tensor_type->has_elem_type)
                dt = (kiln_dtype)t->tensor_type->elem_type;
            break;
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            k = KILN_VALUE_SEQUENCE;
            next = t->sequence_type ? t->sequence_type->elem_type : NULL;
            break;
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            k = KILN_VALUE_OPTIONAL;
            next = t->optional_type ? t->optional_type->elem_type : NULL;
            break;
        default: break;
        }
        if (depth == 0)
            kind = k;
        else if (depth == 1)
            ek = k;
        if (k == KILN_VALUE_UNKNOWN) {
            dt = KILN_DTYPE_UNDEFINED;
            break;
        }
        t = next;
    }
    if (elem_kind)
        *elem_kind = ek;
    if (elem)
        *elem = dt;
    return kind;
}

kiln_value_kind kiln_value_info_kind(const kiln_value_info *vi, kiln_value_kind *elem_kind, kiln_dtype *elem) {
    if (elem_kind)
        *elem_kind = KILN_VALUE_UNKNOWN;
    if (elem)
        *elem = KILN_DTYPE_UNDEFINED;
    if (!vi || vi->type.kind == KILN_TYPE_NONE)
        return KILN_VALUE_UNKNOWN;
    if (vi->type.kind == KILN_TYPE_TENSOR) {
        if (elem)
            *elem = vi->type.elem;
        return KILN_VALUE_TENSOR;
    }
    const Onnx__ValueInfoProto *p = vi->src;
    return p ? proto_kind(p->type, elem_kind, elem) : KILN_VALUE_UNKNOWN;
}

kiln_value_kind kiln_attr_type_kind(const kiln_attr *a, kiln_value_kind *elem_kind, kiln_dtype *elem) {
    if (elem_kind)
        *elem_kind = KILN_VALUE_UNKNOWN;
    if (elem)
        *elem = KILN_DTYPE_UNDEFINED;
    const Onnx__AttributeProto *p = a ? a->src : NULL;
    if (!p || a->type != KILN_ATTR_TYPE_PROTO || !p->tp)
        return KILN_VALUE_UNKNOWN;
    return proto_kind(p->tp, elem_kind, elem);
}

static void put_type(kiln_sbuf *b, const Onnx__TypeProto *t, int depth) {
    if (!t || depth > 64) {
        kiln_sbuf_printf(b, "?");
        return;
    }
    switch (t->value_case) {
    case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
        kiln_sbuf_printf(b, "tensor(%s)",
                         t->tensor_type && t->tensor_type->has_elem_type
                             ? kiln_dtype_name((kiln_dtype)t->tensor_type->elem_type)
                             : "?");
        break;
    case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
        kiln_sbuf_printf(b, "sparse_tensor(%s)",
                         t->sparse_tensor_type && t->sparse_tensor_type->has_elem_type
                             ? kiln_dtype_name((kiln_dtype)t->sparse_tensor_type->elem_type)
                             : "?");
        break;
    case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
        kiln_sbuf_printf(b, "seq(");
        put_type(b, t->sequence_type ? t->sequence_type->elem_type : NULL, depth + 1);
        kiln_sbuf_printf(b, ")");
        break;
    case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
        kiln_sbuf_printf(b, "optional(");
        put_type(b, t->optional_type ? t->optional_type->elem_type : NULL, depth + 1);
        kiln_sbuf_printf(b, ")");
        break;
    case ONNX__TYPE_PROTO__VALUE_MAP_TYPE:
        kiln_sbuf_printf(b, "map(%s, ",
                         t->map_type && t->map_type->has_key_type ? kiln_dtype_name((kiln_dtype)t->map_type->key_type)
                                                                   : "?");
        put_type(b, t->map_type ? t->map_type->value_type : NULL, depth + 1);
        kiln_sbuf_printf(b, ")");
        break;
    default: kiln_sbuf_printf(b, "?"); break;
    }
}

const char *kiln_value_info_type_str(const kiln_value_info *vi, char *buf, size_t n) {
    if (!n)
        return buf;
    const Onnx__ValueInfoProto *p = vi->src;
    if (vi->type.kind != KILN_TYPE_OTHER || !p || !p->type) {
        snprintf(buf, n, "%s", vi->type.kind == KILN_TYPE_TENSOR ? kiln_dtype_name(vi->type.elem) : "untyped");
        return buf;
    }
    kiln_sbuf b = {0};
    put_type(&b, p->type, 0);
    snprintf(buf, n, "%s", b.data && !b.failed ? b.data : "?");
    free(b.data);
    return buf;
}

/* ---- reading ---- */

typedef struct reader {
    const char *path;
    size_t n_values; /* elements read so far, at every level */
} reader;

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

typedef struct field_ref {
    uint32_t field;
    const uint8_t *data;
    size_t len;
} field_ref;

static const char *msg_name(kiln_value_kind kind) {
    return kind == KILN_VALUE_SEQUENCE ? "SequenceProto" : "OptionalProto";
}

static kiln_status read_value(reader *r, const uint8_t *p, size_t len, kiln_value_kind kind, int depth,
                              kiln_tensor **out);

static kiln_status read_tensor(reader *r, const uint8_t *p, size_t len, kiln_tensor **out) {
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, len ? p : (const uint8_t *)"");
    if (!tp)
        return kiln_fail(KILN_ERR_PARSE, "%s: a tensor in it is not a valid TensorProto", r->path);
    kiln_tensor *t = kiln_tensor_new();
    kiln_status st = t ? kiln_tensor_from_proto(tp, NULL, NULL, t) : KILN_ERR_NOMEM;
    if (t)
        t->src = NULL; /* the message goes away now */
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

static kiln_value_kind field_kind(uint32_t field) {
    switch (field) {
    case F_TENSOR: return KILN_VALUE_TENSOR;
    case F_SEQUENCE: return KILN_VALUE_SEQUENCE;
    case F_OPTIONAL: return KILN_VALUE_OPTIONAL;
    default: return KILN_VALUE_UNKNOWN;
    }
}

static uint32_t elem_field(int64_t elem_type) {
    switch (elem_type) {
    case ELEM_TENSOR: return F_TENSOR;
    case ELEM_SPARSE: return F_SPARSE;
    case ELEM_SEQUENCE: return F_SEQUENCE;
    case ELEM_MAP: return F_MAP;
    case ELEM_OPTIONAL: return F_OPTIONAL;
    default: return 0;
    }
}

static kiln_status read_fields(reader *r, const uint8_t *p, const uint8_t *end, kiln_value_kind kind, char **name,
                               int64_t *elem_type, field_ref **refs, size_t *n_refs) {
    size_t cap = 0;
    while (p < end) {
        uint64_t tag, v;
        if (!get_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
            return kiln_fail(KILN_ERR_PARSE, "%s: not a valid %s (bad field tag)", r->path, msg_name(kind));
        uint32_t field = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        switch (wt) {
        case 0:
            if (!get_varint(&p, end, &v))
                goto trunc;
            if (field == F_ELEM_TYPE)
                *elem_type = (int64_t)(int32_t)(uint32_t)v;
            break;
        case 1:
            if (end - p < 8)
                goto trunc;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                goto trunc;
            p += 4;
            break;
        case 2: {
            if (!get_varint(&p, end, &v) || v > (uint64_t)(end - p))
                goto trunc;
            const uint8_t *payload = p;
            p += v;
            if (field == F_NAME) {
                if (v > kiln_limits_default().max_string_bytes)
                    return kiln_fail(KILN_ERR_LIMIT, "%s: a name of %llu bytes is longer than the limit of %llu", r->path,
                                     (unsigned long long)v,
                                     (unsigned long long)kiln_limits_default().max_string_bytes);
                free(*name);
                *name = kiln_strndup((const char *)payload, (size_t)v);
                if (!*name)
                    return KILN_ERR_NOMEM;
            } else if (field >= F_TENSOR && field <= F_OPTIONAL) {
                if (++r->n_values > KILN_MAX_SEQUENCE_LENGTH)
                    return kiln_fail(KILN_ERR_LIMIT, "%s: more than %zu values (kiln's limit on sequence elements)",
                                     r->path, KILN_MAX_SEQUENCE_LENGTH);
                if (*n_refs == cap) {
                    cap = cap ? cap * 2 : 8;
                    field_ref *nr = kiln_realloc(*refs, cap * sizeof *nr);
                    if (!nr)
                        return KILN_ERR_NOMEM;
                    *refs = nr;
                }
                (*refs)[(*n_refs)++] = (field_ref){field, payload, (size_t)v};
            }
            break;
        }
        default: return kiln_fail(KILN_ERR_PARSE, "%s: not a valid %s (wire type %u)", r->path, msg_name(kind), wt);
        }
    }
    return KILN_OK;
trunc:
    return kiln_fail(KILN_ERR_PARSE, "%s: not a valid %s (truncated)", r->path, msg_name(kind));
}

static kiln_status read_value(reader *r, const uint8_t *p, size_t len, kiln_value_kind kind, int depth,
                              kiln_tensor **out) {
    *out = NULL;
    if (kind == KILN_VALUE_TENSOR)
        return read_tensor(r, p, len, out);
    if (depth >= KILN_MAX_VALUE_NESTING)
        return kiln_fail(KILN_ERR_LIMIT, "%s: values nested more than %d deep", r->path, KILN_MAX_VALUE_NESTING);
    char *name = NULL;
    int64_t elem_type = -1;
    field_ref *refs = NULL;
    size_t n_refs = 0;
    kiln_tensor *v = NULL;
    kiln_status st = read_fields(r, p, p + len, kind, &name, &elem_type, &refs, &n_refs);
    if (st != KILN_OK)
        goto done;
    /* which field holds the values: elem_type's, else the one that is used */
    uint32_t want = elem_type > 0 ? elem_field(elem_type) : 0;
    if (elem_type > 0 && !want) {
        st = kiln_fail(KILN_ERR_INVALID, "%s: %s has unknown elem_type %lld", r->path, msg_name(kind),
                       (long long)elem_type);
        goto done;
    }
    for (size_t i = 0; i < n_refs; i++) {
        if (!want)
            want = refs[i].field;
        if (refs[i].field != want) {
            st = kiln_fail(KILN_ERR_INVALID, "%s: %s holds values of another kind than its elem_type says", r->path,
                           msg_name(kind));
            goto done;
        }
    }
    if (want == F_SPARSE || want == F_MAP) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: %s of %s are not supported", r->path,
                       kind == KILN_VALUE_SEQUENCE ? "sequences" : "optionals", want == F_SPARSE ? "sparse tensors" : "maps");
        goto done;
    }
    if (kind == KILN_VALUE_OPTIONAL && n_refs > 1) {
        st = kiln_fail(KILN_ERR_INVALID, "%s: OptionalProto holds %zu values, at most one is allowed", r->path, n_refs);
        goto done;
    }
    if (kind == KILN_VALUE_OPTIONAL && want == F_OPTIONAL) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: an optional of an optional is not supported", r->path);
        goto done;
    }
    v = kiln_value_new(kind, want ? field_kind(want) : KILN_VALUE_UNKNOWN, KILN_DTYPE_UNDEFINED);
    if (!v) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_refs; i++) {
        kiln_tensor *item;
        st = read_value(r, refs[i].data, refs[i].len, field_kind(want), depth + 1, &item);
        if (st != KILN_OK)
            goto done;
        kiln_dtype dt = item->kind == KILN_VALUE_TENSOR ? item->dtype : item->elem_dtype;
        if (kind == KILN_VALUE_SEQUENCE && v->elem_dtype != KILN_DTYPE_UNDEFINED && dt != KILN_DTYPE_UNDEFINED &&
            dt != v->elem_dtype) {
            st = kiln_fail(KILN_ERR_INVALID, "%s: sequence element %zu is of %s, the first of %s", r->path, i,
                           kiln_dtype_name(dt), kiln_dtype_name(v->elem_dtype));
            kiln_tensor_destroy(item);
            goto done;
        }
        free(item->name); /* only the outermost value keeps its name */
        item->name = NULL;
        if ((st = kiln_value_push(v, item)) != KILN_OK)
            goto done;
    }
    v->name = name;
    name = NULL;
    *out = v;
    v = NULL;
done:
    if (st != KILN_OK && !strstr(kiln_last_error(), r->path))
        kiln_fail_prefix(st, "%s: ", r->path);
    kiln_tensor_destroy(v);
    free(name);
    free(refs);
    return st;
}

kiln_status kiln_value_from_bytes(const void *data, size_t len, kiln_value_kind kind, const char *path,
                                  kiln_tensor **out) {
    *out = NULL;
    if (kind != KILN_VALUE_SEQUENCE && kind != KILN_VALUE_OPTIONAL)
        return kiln_fail(KILN_ERR_ARG, "%s: values of kind %s are read as TensorProto", path, kiln_value_kind_name(kind));
    reader r = {.path = path};
    return read_value(&r, data, len, kind, 0, out);
}

/* ---- writing ---- */

static void put_varint(kiln_sbuf *b, uint64_t v) {
    char o[10];
    size_t n = 0;
    do {
        o[n] = (char)(v & 0x7f);
        v >>= 7;
        if (v)
            o[n] |= (char)0x80;
        n++;
    } while (v);
    kiln_sbuf_append(b, o, n);
}

static void put_bytes(kiln_sbuf *b, uint32_t field, const void *data, size_t len) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, len);
    kiln_sbuf_append(b, len ? data : "", len);
}

static int elem_code(kiln_value_kind k) {
    switch (k) {
    case KILN_VALUE_TENSOR: return ELEM_TENSOR;
    case KILN_VALUE_SEQUENCE: return ELEM_SEQUENCE;
    case KILN_VALUE_OPTIONAL: return ELEM_OPTIONAL;
    default: return ELEM_UNDEFINED;
    }
}

static kiln_status write_value(kiln_sbuf *b, const kiln_tensor *v, const char *name, int depth) {
    if (v->kind == KILN_VALUE_TENSOR) {
        Onnx__TensorProto p;
        kiln_tensor tmp = *v;
        tmp.src = NULL;
        tmp.name = (char *)name;
        KILN_TRY(kiln_tensor_to_proto(&tmp, &p));
        size_t len = onnx__tensor_proto__get_packed_size(&p);
        uint8_t *buf = kiln_malloc(len ? len : 1);
        if (!buf) {
            kiln_tensor_proto_free(&p);
            return KILN_ERR_NOMEM;
        }
        onnx__tensor_proto__pack(&p, buf);
        kiln_tensor_proto_free(&p);
        kiln_sbuf_append(b, (const char *)buf, len);
        free(buf);
        return KILN_OK;
    }
    if (depth >= KILN_MAX_VALUE_NESTING) /* what the reader accepts */
        return kiln_fail(KILN_ERR_LIMIT, "values nested more than %d deep", KILN_MAX_VALUE_NESTING);
    if (name)
        put_bytes(b, F_NAME, name, strlen(name));
    kiln_value_kind ek = v->n_items ? v->items[0]->kind : v->elem_kind;
    /* an empty optional says UNDEFINED, as onnx.numpy_helper.from_optional(None)
     * writes it (its reader takes any other elem_type for a present value) */
    int code = v->kind == KILN_VALUE_OPTIONAL && !v->n_items ? ELEM_UNDEFINED : elem_code(ek);
    put_varint(b, (uint64_t)F_ELEM_TYPE << 3 | 0);
    put_varint(b, (uint64_t)code);
    for (size_t i = 0; i < v->n_items; i++) {
        const kiln_tensor *it = v->items[i];
        uint32_t field = it->kind == KILN_VALUE_TENSOR     ? F_TENSOR
                         : it->kind == KILN_VALUE_SEQUENCE ? F_SEQUENCE
                         : it->kind == KILN_VALUE_OPTIONAL ? F_OPTIONAL
                                                           : 0;
        if (!field)
            return kiln_fail(KILN_ERR_INVALID, "a value of unknown kind cannot be saved");
        kiln_sbuf sub = {0};
        kiln_status st = write_value(&sub, it, NULL, depth + 1);
        if (st == KILN_OK && sub.failed)
            st = KILN_ERR_NOMEM;
        if (st == KILN_OK)
            put_bytes(b, field, sub.data, sub.len);
        free(sub.data);
        if (st != KILN_OK)
            return st;
    }
    return b->failed ? KILN_ERR_NOMEM : KILN_OK;
}

kiln_status kiln_value_to_bytes(const kiln_tensor *v, kiln_sbuf *out) {
    memset(out, 0, sizeof *out);
    if (v->kind != KILN_VALUE_SEQUENCE && v->kind != KILN_VALUE_OPTIONAL)
        return kiln_fail(KILN_ERR_ARG, "not a sequence or optional");
    kiln_status st = write_value(out, v, v->name, 0);
    if (st == KILN_OK && out->failed)
        st = KILN_ERR_NOMEM;
    if (st != KILN_OK) {
        free(out->data);
        memset(out, 0, sizeof *out);
    }
    return st;
}
