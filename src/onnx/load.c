/* Loading a model: map the file, lift large raw_data out of the bytes (so the
 * weights are used in place, never copied), unpack with protobuf-c, convert
 * to kiln's IR. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "onnx.pb-c.h"
#include "onnx/onnx_io.h"

/* ---- pre-pass over the wire format ----
 * Walks every message with protobuf-c's descriptors, before protobuf-c
 * unpacks anything, and
 *  - bounds message nesting (protobuf-c's unpacker recurses once per level
 *    and has no limit of its own: TypeProto.sequence_type nests without end,
 *    and so do subgraphs) and subgraph nesting;
 *  - bounds every string and bytes field (names, attribute strings, string
 *    elements) by kiln_limits.max_string_bytes;
 *  - replaces each TensorProto.raw_data of at least LIFT_MIN bytes in the
 *    Model -> Graph -> Node -> Attribute -> Tensor chain by a varint field
 *    KILN_RAW_MARKER_FIELD holding the index of a slice that records where
 *    the bytes are in the file (weights are then used in place). Messages
 *    outside that chain are only checked, and copied through unchanged. */

#define LIFT_MIN 256

typedef struct prepass {
    const uint8_t *base;
    kiln_slice *slices;
    size_t n_slices, cap_slices;
    const char *path;
    const kiln_limits *lim;
    int max_depth;    /* message nesting */
    uint64_t n_nodes; /* NodeProtos seen, subgraphs and functions included */
    uint64_t est;     /* upper bound of what protobuf-c will allocate */
} prepass;

/* Bytes protobuf-c allocates for one field, at most: the wire size of a
 * small message can be tiny (2 bytes for an empty node) while its unpacked
 * struct is hundreds of bytes, so the tree is bounded separately. */
static uint64_t field_cost(const ProtobufCFieldDescriptor *fd, uint32_t wt, uint64_t len) {
    if (!fd) /* an unknown field: kept as a copy */
        return sizeof(ProtobufCMessageUnknownField) + (wt == 2 ? len : 10);
    uint64_t slot = fd->label == PROTOBUF_C_LABEL_REPEATED ? 16 : 0;
    if (wt != 2)
        return slot;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES: return slot + len + 1;
    case PROTOBUF_C_TYPE_MESSAGE: return slot; /* counted when walked */
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64: return slot + len; /* packed, same size unpacked */
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT64: return slot + len * 8; /* packed varints: >= 1 byte each */
    default: return slot + len * 4;
    }
}

/* Messages re-emitted by the pre-pass (the ones on the path to raw_data). */
static bool rewrites(const ProtobufCMessageDescriptor *d) {
    return d == &onnx__model_proto__descriptor || d == &onnx__graph_proto__descriptor ||
           d == &onnx__node_proto__descriptor || d == &onnx__attribute_proto__descriptor ||
           d == &onnx__tensor_proto__descriptor || d == &onnx__function_proto__descriptor;
}

/* Fields newer than the schema kiln is built from (/usr/include/onnx), which
 * protobuf-c keeps as unknown fields and the loader reads itself: the
 * pre-pass checks them like known ones. */
#define FN_ATTRIBUTE_PROTO 11u /* FunctionProto.attribute_proto: AttributeProto */
#define FN_VALUE_INFO 12u      /* FunctionProto.value_info: ValueInfoProto */
#define FN_OVERLOAD 13u        /* FunctionProto.overload: string */
#define NODE_OVERLOAD 8u       /* NodeProto.overload: string */

static const ProtobufCMessageDescriptor *extra_message(const ProtobufCMessageDescriptor *d, uint32_t field) {
    if (d == &onnx__function_proto__descriptor && field == FN_ATTRIBUTE_PROTO)
        return &onnx__attribute_proto__descriptor;
    if (d == &onnx__function_proto__descriptor && field == FN_VALUE_INFO)
        return &onnx__value_info_proto__descriptor;
    return NULL;
}

static bool extra_string(const ProtobufCMessageDescriptor *d, uint32_t field) {
    return (d == &onnx__function_proto__descriptor && field == FN_OVERLOAD) ||
           (d == &onnx__node_proto__descriptor && field == NODE_OVERLOAD);
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
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

static void put_varint(kiln_sbuf *o, uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    kiln_sbuf_append(o, (const char *)b, n);
}

/* `out` NULL: check only. `depth` counts messages, `gdepth` graphs. */
static kiln_status rewrite(prepass *pp, const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *desc,
                           int depth, int gdepth, kiln_sbuf *out) {
    if (desc == &onnx__graph_proto__descriptor && ++gdepth > pp->lim->max_nesting + 1)
        return kiln_fail(KILN_ERR_LIMIT, "%s: subgraphs nested more than %d deep (kiln_limits.max_nesting)",
                         pp->path, pp->lim->max_nesting);
    if (depth > pp->max_depth)
        return kiln_fail(KILN_ERR_LIMIT, "%s: protobuf messages nested more than %d deep", pp->path, pp->max_depth);
    bool is_tensor = desc == &onnx__tensor_proto__descriptor;
    pp->est += desc->sizeof_message;
    while (p < end) {
        const uint8_t *field_start = p;
        uint64_t tag;
        if (!read_varint(&p, end, &tag))
            return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (bad field tag at byte %zu)", pp->path,
                             (size_t)(field_start - pp->base));
        uint64_t field64 = tag >> 3;
        uint32_t wt = (uint32_t)(tag & 7);
        if (field64 == 0 || field64 > 0x1fffffff)
            return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (field number %llu at byte %zu)", pp->path,
                             (unsigned long long)field64, (size_t)(field_start - pp->base));
        uint32_t field = (uint32_t)field64;
        uint64_t v;
        switch (wt) {
        case 0:
            if (!read_varint(&p, end, &v))
                goto trunc;
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
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                goto trunc;
            const uint8_t *payload = p;
            p += v;
            const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, (unsigned)field);
            if (!(is_tensor && field == 9 && v >= LIFT_MIN && out)) /* lifted raw_data costs nothing */
                pp->est += field_cost(fd, wt, v);
            if (pp->est > pp->lim->max_tensor_bytes)
                return kiln_fail(KILN_ERR_LIMIT, "%s: decoding the model's structure would take more than %llu bytes "
                                 "(kiln_limits.max_tensor_bytes)", pp->path,
                                 (unsigned long long)pp->lim->max_tensor_bytes);
            /* Counted here, before protobuf-c allocates a node for each. */
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE && fd->descriptor == &onnx__node_proto__descriptor &&
                ++pp->n_nodes > pp->lim->max_nodes)
                return kiln_fail(KILN_ERR_LIMIT, "%s: more than %llu nodes (kiln_limits.max_nodes)", pp->path,
                                 (unsigned long long)pp->lim->max_nodes);
            bool raw_data = is_tensor && field == 9;
            if (((fd && (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_BYTES)) ||
                 (!fd && extra_string(desc, field))) &&
                !raw_data && v > pp->lim->max_string_bytes)
                return kiln_fail(KILN_ERR_LIMIT, "%s: field '%s' of %s at byte %zu holds %llu bytes, more than the "
                                 "limit of %llu (kiln_limits.max_string_bytes)",
                                 pp->path, fd ? fd->name : "overload", desc->short_name,
                                 (size_t)(field_start - pp->base), (unsigned long long)v,
                                 (unsigned long long)pp->lim->max_string_bytes);
            const ProtobufCMessageDescriptor *xd = fd ? NULL : extra_message(desc, field);
            if (xd) { /* unpacked by the loader later: checked, copied through */
                KILN_TRY(rewrite(pp, payload, payload + v, xd, depth + 1, gdepth, NULL));
                break;
            }
            if (raw_data && v > pp->lim->max_tensor_bytes)
                return kiln_fail(KILN_ERR_LIMIT, "%s: a tensor's raw_data at byte %zu holds %llu bytes, more than the "
                                 "limit of %llu (kiln_limits.max_tensor_bytes)",
                                 pp->path, (size_t)(field_start - pp->base), (unsigned long long)v,
                                 (unsigned long long)pp->lim->max_tensor_bytes);
            if (out && raw_data && v >= LIFT_MIN) {
                if (pp->n_slices == pp->cap_slices) {
                    size_t cap = pp->cap_slices ? pp->cap_slices * 2 : 64;
                    kiln_slice *s = kiln_realloc(pp->slices, cap * sizeof *s);
                    if (!s)
                        return KILN_ERR_NOMEM;
                    pp->slices = s;
                    pp->cap_slices = cap;
                }
                pp->slices[pp->n_slices].offset = (uint64_t)(payload - pp->base);
                pp->slices[pp->n_slices].len = v;
                put_varint(out, (uint64_t)KILN_RAW_MARKER_FIELD << 3);
                put_varint(out, pp->n_slices);
                pp->n_slices++;
                continue;
            }
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                const ProtobufCMessageDescriptor *cd = fd->descriptor;
                if (out && rewrites(cd)) {
                    kiln_sbuf sub = {0};
                    kiln_status st = rewrite(pp, payload, payload + v, cd, depth + 1, gdepth, &sub);
                    if (st == KILN_OK) {
                        put_varint(out, tag);
                        put_varint(out, sub.len);
                        kiln_sbuf_append(out, sub.data ? sub.data : "", sub.len);
                        if (sub.failed)
                            out->failed = true;
                    }
                    free(sub.data);
                    if (st != KILN_OK)
                        return st;
                    continue;
                }
                KILN_TRY(rewrite(pp, payload, payload + v, cd, depth + 1, gdepth, NULL));
            }
            break;
        }
        default:
            return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (wire type %u at byte %zu)", pp->path, wt,
                             (size_t)(field_start - pp->base));
        }
        if (wt != 2)
            pp->est += field_cost(protobuf_c_message_descriptor_get_field(desc, (unsigned)field), wt, 0);
        if (is_tensor && field == KILN_RAW_MARKER_FIELD)
            return kiln_fail(KILN_ERR_PARSE, "%s: field %u is reserved by kiln", pp->path, KILN_RAW_MARKER_FIELD);
        if (out)
            kiln_sbuf_append(out, (const char *)field_start, (size_t)(p - field_start));
    }
    if (out && out->failed)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    return KILN_OK;
trunc:
    return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (truncated or corrupt near byte %zu)", pp->path,
                     (size_t)(p - pp->base));
}

/* Public limits: zero fields take the default; hard ceilings keep recursion
 * within a normal thread stack. */
#define KILN_NESTING_CEILING 256

kiln_limits kiln_limits_default(void) {
    kiln_limits l = {.max_tensor_bytes = (uint64_t)1 << 31,
                     .max_rank = KILN_MAX_RANK,
                     .max_nodes = 1000000,
                     .max_nesting = KILN_MAX_NESTING,
                     .max_string_bytes = (uint64_t)16 << 20};
    return l;
}

static kiln_limits effective_limits(const kiln_limits *in) {
    kiln_limits d = kiln_limits_default(), l = in ? *in : d;
    if (!l.max_tensor_bytes)
        l.max_tensor_bytes = d.max_tensor_bytes;
    if (l.max_rank <= 0 || l.max_rank > KILN_MAX_RANK)
        l.max_rank = l.max_rank <= 0 ? d.max_rank : KILN_MAX_RANK;
    if (!l.max_nodes)
        l.max_nodes = d.max_nodes;
    if (l.max_nesting <= 0)
        l.max_nesting = d.max_nesting;
    if (l.max_nesting > KILN_NESTING_CEILING)
        l.max_nesting = KILN_NESTING_CEILING;
    if (!l.max_string_bytes)
        l.max_string_bytes = d.max_string_bytes;
    return l;
}

/* ---- protobuf -> IR ---- */

typedef struct conv {
    const char *path;
    kiln_buffer *backing;
    kiln_ext_ctx ext;
    const kiln_limits *lim;
    uint64_t n_nodes; /* so far, subgraphs included */
    kiln_model *m;    /* keeps the messages unpacked from unknown fields */
} conv;

/* The next length-delimited unknown field number `field` of msg, from *pos
 * on: its payload (the length prefix protobuf-c keeps is skipped). */
static bool unknown_next(const void *msg, uint32_t field, unsigned *pos, const uint8_t **data, size_t *len) {
    const ProtobufCMessage *m = msg;
    for (; *pos < m->n_unknown_fields; (*pos)++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[*pos];
        if (u->tag != field || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            continue;
        const uint8_t *p = u->data, *end = u->data + u->len;
        uint64_t n;
        if (!read_varint(&p, end, &n) || n != (uint64_t)(end - p))
            continue;
        *data = p;
        *len = (size_t)n;
        (*pos)++;
        return true;
    }
    return false;
}

/* The last occurrence of a string field kept as unknown (protobuf keeps the
 * last one of a repeated optional field), or NULL. */
static kiln_status unknown_string(const void *msg, uint32_t field, char **out) {
    *out = NULL;
    unsigned pos = 0;
    const uint8_t *d, *last = NULL;
    size_t n, last_n = 0;
    while (unknown_next(msg, field, &pos, &d, &n)) {
        last = d;
        last_n = n;
    }
    if (!last)
        return KILN_OK;
    *out = kiln_strndup((const char *)last, last_n);
    return *out ? KILN_OK : KILN_ERR_NOMEM;
}

/* Unpacks a message out of an unknown field; the model frees it. */
static kiln_status unpack_extra(conv *c, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                                ProtobufCMessage **out) {
    void **v = kiln_realloc(c->m->extra_protos, (c->m->n_extra_protos + 1) * sizeof *v);
    if (!v)
        return KILN_ERR_NOMEM;
    c->m->extra_protos = v;
    ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, len, data);
    if (!msg)
        return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (a %s in a field newer than kiln's schema does "
                         "not decode)", c->path, d->short_name);
    v[c->m->n_extra_protos++] = msg;
    *out = msg;
    return KILN_OK;
}

static kiln_status dup_str(char **dst, const char *s) {
    if (!s) {
        *dst = NULL;
        return KILN_OK;
    }
    *dst = kiln_strdup(s);
    return *dst ? KILN_OK : KILN_ERR_NOMEM;
}

static kiln_status conv_graph(conv *c, Onnx__GraphProto *p, int depth, kiln_graph **out);

static kiln_status conv_type(const conv *c, const Onnx__TypeProto *p, kiln_type *t) {
    memset(t, 0, sizeof *t);
    t->rank = -1;
    if (!p)
        return KILN_OK;
    if (p->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !p->tensor_type) {
        t->kind = KILN_TYPE_OTHER;
        return KILN_OK;
    }
    const Onnx__TypeProto__Tensor *tt = p->tensor_type;
    t->kind = KILN_TYPE_TENSOR;
    t->elem = tt->has_elem_type ? (kiln_dtype)tt->elem_type : KILN_DTYPE_UNDEFINED;
    if (!tt->shape)
        return KILN_OK;
    if (tt->shape->n_dim > (size_t)c->lim->max_rank)
        return kiln_fail(KILN_ERR_LIMIT, "rank %zu exceeds the limit of %d (kiln_limits.max_rank)", tt->shape->n_dim,
                         c->lim->max_rank);
    t->rank = (int)tt->shape->n_dim;
    if (t->rank) {
        t->dims = kiln_calloc((size_t)t->rank, sizeof(kiln_dim));
        if (!t->dims)
            return KILN_ERR_NOMEM;
    }
    for (int i = 0; i < t->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        t->dims[i].value = -1;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            /* exporters such as paddle2onnx write dynamic dims as -1: an
             * unknown dim, like one with neither value nor name */
            if (d->dim_value < -1)
                return kiln_fail(KILN_ERR_INVALID, "dimension %d is %lld; dimensions must not be negative", i,
                                 (long long)d->dim_value);
            t->dims[i].value = d->dim_value;
        }
        else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param)
            KILN_TRY(dup_str(&t->dims[i].param, d->dim_param));
    }
    return KILN_OK;
}

/* Sets *count as soon as the array exists, so a failure half-way leaves
 * nothing the graph's destructor cannot free. */
static kiln_status conv_value_infos(const conv *c, Onnx__ValueInfoProto **in, size_t n, kiln_value_info **out,
                                    size_t *count, const char *what) {
    *out = NULL;
    *count = 0;
    if (!n)
        return KILN_OK;
    kiln_value_info *v = kiln_calloc(n, sizeof *v);
    if (!v)
        return KILN_ERR_NOMEM;
    *out = v;
    *count = n;
    for (size_t i = 0; i < n; i++) {
        v[i].type.rank = -1;
        v[i].src = in[i];
        KILN_TRY(dup_str(&v[i].name, in[i]->name ? in[i]->name : ""));
        KILN_TRY(dup_str(&v[i].doc, in[i]->doc_string));
        kiln_status st = conv_type(c, in[i]->type, &v[i].type);
        if (st != KILN_OK)
            return kiln_fail_prefix(st, "%s '%s': ", what, v[i].name);
    }
    return KILN_OK;
}

static kiln_attr_type infer_attr_type(const Onnx__AttributeProto *a) {
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return (kiln_attr_type)a->type;
    /* Old models may leave `type` out: take it from the field that is set. */
    if (a->has_f) return KILN_ATTR_FLOAT;
    if (a->has_i) return KILN_ATTR_INT;
    if (a->has_s) return KILN_ATTR_STRING;
    if (a->t) return KILN_ATTR_TENSOR;
    if (a->g) return KILN_ATTR_GRAPH;
    if (a->n_floats) return KILN_ATTR_FLOATS;
    if (a->n_ints) return KILN_ATTR_INTS;
    if (a->n_strings) return KILN_ATTR_STRINGS;
    if (a->n_tensors) return KILN_ATTR_TENSORS;
    if (a->n_graphs) return KILN_ATTR_GRAPHS;
    return KILN_ATTR_UNDEFINED;
}

static kiln_status conv_tensor(conv *c, Onnx__TensorProto *p, kiln_tensor **out) {
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_from_proto(p, c->backing, &c->ext, t);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

/* Tensor attributes (Constant's value, ...) go straight to operators, which
 * read them as typed arrays: raw_data used in place sits at whatever offset
 * the file put it, so misaligned ones get an aligned copy (initializers are
 * aligned by the planner instead). */
static kiln_status conv_attr_tensor(conv *c, Onnx__TensorProto *p, kiln_tensor **out) {
    KILN_TRY(conv_tensor(c, p, out));
    if (kiln_tensor_is_aligned(*out))
        return KILN_OK;
    kiln_tensor *copy;
    kiln_status st = kiln_tensor_clone(*out, &copy);
    if (st != KILN_OK)
        return st; /* *out stays owned by the caller's attribute */
    copy->src = (*out)->src;
    kiln_tensor_destroy(*out);
    *out = copy;
    return KILN_OK;
}

static kiln_status conv_attr(conv *c, Onnx__AttributeProto *p, int depth, kiln_attr *a) {
    a->src = p;
    KILN_TRY(dup_str(&a->name, p->name ? p->name : ""));
    a->type = infer_attr_type(p);
    if (p->ref_attr_name && *p->ref_attr_name) /* a reference: no value of its own */
        return dup_str(&a->ref, p->ref_attr_name);
    a->f = p->f;
    a->i = p->i;
    switch (a->type) {
    case KILN_ATTR_STRING:
        a->s.len = p->s.len;
        a->s.data = kiln_strndup((const char *)(p->s.data ? p->s.data : (uint8_t *)""), p->s.len);
        return a->s.data ? KILN_OK : KILN_ERR_NOMEM;
    case KILN_ATTR_TENSOR:
        if (!p->t)
            return kiln_fail(KILN_ERR_INVALID, "attribute '%s' of type tensor has no tensor", a->name);
        return conv_attr_tensor(c, p->t, &a->t);
    case KILN_ATTR_GRAPH:
        if (!p->g)
            return kiln_fail(KILN_ERR_INVALID, "attribute '%s' of type graph has no graph", a->name);
        return conv_graph(c, p->g, depth + 1, &a->g);
    case KILN_ATTR_FLOATS:
        a->n = p->n_floats;
        if (a->n) {
            if (!(a->floats = kiln_malloc(a->n * sizeof(float))))
                return KILN_ERR_NOMEM;
            memcpy(a->floats, p->floats, a->n * sizeof(float));
        }
        return KILN_OK;
    case KILN_ATTR_INTS:
        a->n = p->n_ints;
        if (a->n) {
            if (!(a->ints = kiln_malloc(a->n * sizeof(int64_t))))
                return KILN_ERR_NOMEM;
            memcpy(a->ints, p->ints, a->n * sizeof(int64_t));
        }
        return KILN_OK;
    case KILN_ATTR_STRINGS:
        a->n = p->n_strings;
        if (a->n && !(a->strings = kiln_calloc(a->n, sizeof(kiln_string))))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++) {
            a->strings[i].len = p->strings[i].len;
            a->strings[i].data = kiln_strndup((const char *)(p->strings[i].data ? p->strings[i].data : (uint8_t *)""),
                                              p->strings[i].len);
            if (!a->strings[i].data)
                return KILN_ERR_NOMEM;
        }
        return KILN_OK;
    case KILN_ATTR_TENSORS:
        a->n = p->n_tensors;
        if (a->n && !(a->tensors = kiln_calloc(a->n, sizeof(kiln_tensor *))))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++)
            KILN_TRY(conv_attr_tensor(c, p->tensors[i], &a->tensors[i]));
        return KILN_OK;
    case KILN_ATTR_GRAPHS:
        a->n = p->n_graphs;
        if (a->n && !(a->graphs = kiln_calloc(a->n, sizeof(kiln_graph *))))
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < a->n; i++)
            KILN_TRY(conv_graph(c, p->graphs[i], depth + 1, &a->graphs[i]));
        return KILN_OK;
    default:
        return KILN_OK; /* float/int above; sparse and type protos stay in src */
    }
}

static kiln_status conv_node(conv *c, Onnx__NodeProto *p, int depth, kiln_node **out) {
    if (++c->n_nodes > c->lim->max_nodes)
        return kiln_fail(KILN_ERR_LIMIT, "more than %llu nodes (kiln_limits.max_nodes)",
                         (unsigned long long)c->lim->max_nodes);
    kiln_node *n = kiln_calloc(1, sizeof *n);
    if (!n)
        return KILN_ERR_NOMEM;
    *out = n;
    n->src = p;
    KILN_TRY(dup_str(&n->name, p->name ? p->name : ""));
    if (!p->op_type || !*p->op_type)
        return kiln_fail(KILN_ERR_INVALID, "node '%s' has no op_type", n->name);
    KILN_TRY(dup_str(&n->op_type, p->op_type));
    KILN_TRY(dup_str(&n->domain, p->domain && strcmp(p->domain, "ai.onnx") != 0 ? p->domain : ""));
    KILN_TRY(dup_str(&n->doc, p->doc_string));
    KILN_TRY(unknown_string(p, NODE_OVERLOAD, &n->overload));
    /* Counts only once the arrays exist: the destructor walks them. */
    if (p->n_input && !(n->inputs = kiln_calloc(p->n_input, sizeof(char *))))
        return KILN_ERR_NOMEM;
    n->n_inputs = p->n_input;
    if (p->n_output && !(n->outputs = kiln_calloc(p->n_output, sizeof(char *))))
        return KILN_ERR_NOMEM;
    n->n_outputs = p->n_output;
    for (size_t i = 0; i < p->n_input; i++)
        KILN_TRY(dup_str(&n->inputs[i], p->input[i] ? p->input[i] : ""));
    for (size_t i = 0; i < p->n_output; i++)
        KILN_TRY(dup_str(&n->outputs[i], p->output[i] ? p->output[i] : ""));
    if (p->n_attribute && !(n->attrs = kiln_calloc(p->n_attribute, sizeof(kiln_attr))))
        return KILN_ERR_NOMEM;
    for (size_t i = 0; i < p->n_attribute; i++) {
        n->n_attrs = i + 1;
        kiln_status st = conv_attr(c, p->attribute[i], depth, &n->attrs[i]);
        if (st != KILN_OK)
            return kiln_fail_prefix(st, "node '%s' (%s): ", n->name, n->op_type);
    }
    return KILN_OK;
}

static kiln_status conv_graph(conv *c, Onnx__GraphProto *p, int depth, kiln_graph **out) {
    if (depth > c->lim->max_nesting)
        return kiln_fail(KILN_ERR_LIMIT, "subgraphs nested more than %d deep (kiln_limits.max_nesting)",
                         c->lim->max_nesting);
    kiln_graph *g = kiln_graph_new();
    if (!g)
        return KILN_ERR_NOMEM;
    *out = g;
    g->src = p;
    KILN_TRY(dup_str(&g->name, p->name));
    KILN_TRY(dup_str(&g->doc, p->doc_string));
    KILN_TRY(conv_value_infos(c, p->input, p->n_input, &g->inputs, &g->n_inputs, "input"));
    KILN_TRY(conv_value_infos(c, p->output, p->n_output, &g->outputs, &g->n_outputs, "output"));
    KILN_TRY(conv_value_infos(c, p->value_info, p->n_value_info, &g->value_info, &g->n_value_info, "value_info"));
    for (size_t i = 0; i < p->n_initializer; i++) {
        kiln_tensor *t;
        KILN_TRY(conv_tensor(c, p->initializer[i], &t));
        if (kiln_graph_add_init(g, t) != KILN_OK) {
            kiln_tensor_destroy(t);
            return KILN_ERR_NOMEM;
        }
    }
    for (size_t i = 0; i < p->n_node; i++) {
        kiln_node *n = NULL;
        kiln_status st = conv_node(c, p->node[i], depth, &n);
        if (n && kiln_graph_add_node(g, n) != KILN_OK) {
            kiln_node_destroy(n);
            return KILN_ERR_NOMEM;
        }
        KILN_TRY(st);
    }
    return KILN_OK;
}

static kiln_status dup_names(char **in, size_t n, char ***out, size_t *count, bool unique, const char *what) {
    *out = NULL;
    *count = 0;
    if (!n)
        return KILN_OK;
    if (!(*out = kiln_calloc(n, sizeof **out)))
        return KILN_ERR_NOMEM;
    *count = n;
    for (size_t i = 0; i < n; i++) {
        const char *s = in[i] ? in[i] : "";
        if (unique && !*s)
            return kiln_fail(KILN_ERR_INVALID, "%s %zu has no name", what, i);
        for (size_t k = 0; unique && k < i; k++)
            if (strcmp((*out)[k], s) == 0)
                return kiln_fail(KILN_ERR_INVALID, "%s '%s' is listed twice", what, s);
        KILN_TRY(dup_str(&(*out)[i], s));
    }
    return KILN_OK;
}

static kiln_status conv_opsets(Onnx__OperatorSetIdProto **in, size_t n, kiln_opset **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (!n)
        return KILN_OK;
    if (!(*out = kiln_calloc(n, sizeof **out)))
        return KILN_ERR_NOMEM;
    *count = n;
    for (size_t i = 0; i < n; i++) {
        KILN_TRY(dup_str(&(*out)[i].domain, in[i]->domain ? in[i]->domain : ""));
        (*out)[i].version = in[i]->version;
    }
    return KILN_OK;
}

static kiln_status conv_function_body(conv *c, Onnx__FunctionProto *p, kiln_function *f) {
    KILN_TRY(dup_str(&f->domain, p->domain && strcmp(p->domain, "ai.onnx") != 0 ? p->domain : ""));
    KILN_TRY(dup_str(&f->doc, p->doc_string));
    KILN_TRY(unknown_string(p, FN_OVERLOAD, &f->overload));
    KILN_TRY(dup_names(p->input, p->n_input, &f->inputs, &f->n_inputs, true, "input"));
    KILN_TRY(dup_names(p->output, p->n_output, &f->outputs, &f->n_outputs, true, "output"));
    KILN_TRY(dup_names(p->attribute, p->n_attribute, &f->attr_names, &f->n_attr_names, true, "attribute"));
    KILN_TRY(conv_opsets(p->opset_import, p->n_opset_import, &f->opsets, &f->n_opsets));
    /* attribute_proto: attributes with their defaults */
    unsigned pos = 0;
    const uint8_t *d;
    size_t len;
    size_t n_defaults = 0;
    while (unknown_next(p, FN_ATTRIBUTE_PROTO, &pos, &d, &len))
        n_defaults++;
    if (n_defaults && !(f->attr_defaults = kiln_calloc(n_defaults, sizeof *f->attr_defaults)))
        return KILN_ERR_NOMEM;
    pos = 0;
    for (size_t i = 0; i < n_defaults && unknown_next(p, FN_ATTRIBUTE_PROTO, &pos, &d, &len); i++) {
        ProtobufCMessage *msg;
        KILN_TRY(unpack_extra(c, &onnx__attribute_proto__descriptor, d, len, &msg));
        f->n_attr_defaults = i + 1;
        kiln_attr *a = &f->attr_defaults[i];
        KILN_TRY(conv_attr(c, (Onnx__AttributeProto *)msg, 0, a));
        if (!*a->name)
            return kiln_fail(KILN_ERR_INVALID, "attribute default %zu has no name", i);
        if (a->ref)
            return kiln_fail(KILN_ERR_INVALID, "the default of attribute '%s' refers to another attribute", a->name);
        for (size_t k = 0; k < f->n_attr_names; k++)
            if (strcmp(f->attr_names[k], a->name) == 0)
                return kiln_fail(KILN_ERR_INVALID, "attribute '%s' is listed both with and without a default",
                                 a->name);
        for (size_t k = 0; k < i; k++)
            if (strcmp(f->attr_defaults[k].name, a->name) == 0)
                return kiln_fail(KILN_ERR_INVALID, "attribute '%s' has two defaults", a->name);
    }
    kiln_graph *g = f->body = kiln_graph_new();
    if (!g)
        return KILN_ERR_NOMEM;
    /* value_info */
    size_t n_vi = 0;
    pos = 0;
    while (unknown_next(p, FN_VALUE_INFO, &pos, &d, &len))
        n_vi++;
    if (n_vi) {
        Onnx__ValueInfoProto **vis = kiln_calloc(n_vi, sizeof *vis);
        if (!vis)
            return KILN_ERR_NOMEM;
        kiln_status st = KILN_OK;
        pos = 0;
        for (size_t i = 0; i < n_vi && st == KILN_OK && unknown_next(p, FN_VALUE_INFO, &pos, &d, &len); i++) {
            ProtobufCMessage *msg;
            st = unpack_extra(c, &onnx__value_info_proto__descriptor, d, len, &msg);
            vis[i] = (Onnx__ValueInfoProto *)msg;
        }
        if (st == KILN_OK)
            st = conv_value_infos(c, vis, n_vi, &g->value_info, &g->n_value_info, "value_info");
        free(vis);
        KILN_TRY(st);
    }
    for (size_t i = 0; i < p->n_node; i++) {
        kiln_node *n = NULL;
        kiln_status st = conv_node(c, p->node[i], 0, &n);
        if (n && kiln_graph_add_node(g, n) != KILN_OK) {
            kiln_node_destroy(n);
            return KILN_ERR_NOMEM;
        }
        KILN_TRY(st);
    }
    return KILN_OK;
}

static kiln_status conv_functions(conv *c, Onnx__ModelProto *p, kiln_model *m) {
    if (!p->n_functions)
        return KILN_OK;
    if (!(m->functions = kiln_calloc(p->n_functions, sizeof *m->functions)))
        return KILN_ERR_NOMEM;
    for (size_t i = 0; i < p->n_functions; i++) {
        Onnx__FunctionProto *fp = p->functions[i];
        kiln_function *f = kiln_calloc(1, sizeof *f);
        if (!f)
            return KILN_ERR_NOMEM;
        m->functions[m->n_functions++] = f;
        f->src = fp;
        if (!fp->name || !*fp->name)
            return kiln_fail(KILN_ERR_INVALID, "%s: local function %zu has no name", c->path, i);
        KILN_TRY(dup_str(&f->name, fp->name));
        kiln_status st = conv_function_body(c, fp, f);
        if (st != KILN_OK) {
            char l[512];
            return kiln_fail_prefix(st, "%s: local function '%s': ", c->path, kiln_function_label(f, l, sizeof l));
        }
    }
    KILN_TRY(kiln_model_functions_changed(m));
    return kiln_model_check_function_calls(m, c->lim->max_nesting);
}

static kiln_status conv_model(conv *c, Onnx__ModelProto *p, kiln_model *m) {
    m->ir_version = p->has_ir_version ? p->ir_version : 0;
    m->n_opsets = p->n_opset_import;
    if (m->n_opsets && !(m->opsets = kiln_calloc(m->n_opsets, sizeof(kiln_opset))))
        return KILN_ERR_NOMEM;
    for (size_t i = 0; i < m->n_opsets; i++) {
        KILN_TRY(dup_str(&m->opsets[i].domain, p->opset_import[i]->domain ? p->opset_import[i]->domain : ""));
        m->opsets[i].version = p->opset_import[i]->version;
    }
    KILN_TRY(dup_str(&m->producer_name, p->producer_name));
    KILN_TRY(dup_str(&m->producer_version, p->producer_version));
    KILN_TRY(dup_str(&m->domain, p->domain));
    KILN_TRY(dup_str(&m->doc, p->doc_string));
    m->has_model_version = p->has_model_version;
    m->model_version = p->model_version;
    m->n_meta = p->n_metadata_props;
    if (m->n_meta) {
        m->meta_keys = kiln_calloc(m->n_meta, sizeof(kiln_string));
        m->meta_values = kiln_calloc(m->n_meta, sizeof(kiln_string));
        if (!m->meta_keys || !m->meta_values)
            return KILN_ERR_NOMEM;
        for (size_t i = 0; i < m->n_meta; i++) {
            const char *k = p->metadata_props[i]->key ? p->metadata_props[i]->key : "";
            const char *v = p->metadata_props[i]->value ? p->metadata_props[i]->value : "";
            KILN_TRY(dup_str(&m->meta_keys[i].data, k));
            KILN_TRY(dup_str(&m->meta_values[i].data, v));
            m->meta_keys[i].len = strlen(k);
            m->meta_values[i].len = strlen(v);
        }
    }
    if (!p->graph)
        return kiln_fail(KILN_ERR_INVALID, "%s: model has no graph", c->path);
    KILN_TRY(conv_graph(c, p->graph, 0, &m->graph));
    return conv_functions(c, p, m);
}

void kiln_model_destroy(kiln_model *m) {
    if (!m)
        return;
    kiln_graph_destroy(m->graph);
    kiln_model_drop_functions(m);
    for (size_t i = 0; i < m->n_extra_protos; i++)
        protobuf_c_message_free_unpacked(m->extra_protos[i], NULL);
    free(m->extra_protos);
    for (size_t i = 0; i < m->n_opsets; i++)
        free(m->opsets[i].domain);
    free(m->opsets);
    free(m->producer_name);
    free(m->producer_version);
    free(m->domain);
    free(m->doc);
    for (size_t i = 0; i < m->n_meta; i++) {
        free(m->meta_keys[i].data);
        free(m->meta_values[i].data);
    }
    free(m->meta_keys);
    free(m->meta_values);
    free(m->path);
    free(m->dir);
    if (m->proto)
        protobuf_c_message_free_unpacked(m->proto, NULL);
    kiln_buffer_unref(m->mapping);
    for (size_t i = 0; i < m->n_ext_maps; i++)
        kiln_buffer_unref(m->ext_maps[i]);
    free(m->ext_maps);
    free(m);
}

kiln_status kiln_model_from_bytes(kiln_buffer *bytes, const char *path, const char *dir, kiln_model **out) {
    return kiln_model_from_bytes_ex(bytes, path, dir, NULL, out);
}

kiln_status kiln_model_from_bytes_ex(kiln_buffer *bytes, const char *path, const char *dir,
                                     const kiln_limits *limits, kiln_model **out) {
    *out = NULL;
    kiln_limits lim = effective_limits(limits);
    prepass pp = {.base = bytes->ptr, .path = path, .lim = &lim, .max_depth = 3 * (lim.max_nesting + 1) + 32};
    kiln_sbuf small = {0};
    const uint8_t *data = bytes->ptr ? bytes->ptr : (const uint8_t *)"";
    kiln_status st = rewrite(&pp, data, data + bytes->size, &onnx__model_proto__descriptor, 0, 0, &small);
    if (st != KILN_OK) {
        free(small.data);
        free(pp.slices);
        return st;
    }
    Onnx__ModelProto *proto =
        onnx__model_proto__unpack(NULL, small.len, (const uint8_t *)(small.data ? small.data : ""));
    free(small.data);
    if (!proto) {
        free(pp.slices);
        return kiln_fail(KILN_ERR_PARSE, "%s: not a valid ONNX model (protobuf decoding failed)", path);
    }
    kiln_model *m = kiln_calloc(1, sizeof *m);
    if (!m) {
        onnx__model_proto__free_unpacked(proto, NULL);
        free(pp.slices);
        return KILN_ERR_NOMEM;
    }
    m->proto = proto;
    m->limits = lim;
    m->mapping = kiln_buffer_ref(bytes);
    if (dup_str(&m->path, path) != KILN_OK || dup_str(&m->dir, dir) != KILN_OK) {
        free(pp.slices);
        kiln_model_destroy(m);
        return KILN_ERR_NOMEM;
    }
    conv c = {.path = path,
              .backing = bytes,
              .ext = {.base_dir = dir,
                      .model_path = path,
                      .maps = &m->ext_maps,
                      .n_maps = &m->n_ext_maps,
                      .slices = pp.slices,
                      .n_slices = pp.n_slices,
                      .limits = &lim},
              .lim = &lim,
              .m = m};
    st = conv_model(&c, proto, m);
    free(pp.slices);
    if (st != KILN_OK) {
        kiln_model_destroy(m);
        if (strncmp(kiln_last_error(), path, strlen(path)) != 0)
            kiln_fail_prefix(st, "%s: ", path);
        return st;
    }
    *out = m;
    return KILN_OK;
}

kiln_status kiln_model_load(const char *path, kiln_model **out) {
    return kiln_model_load_ex(path, NULL, out);
}

kiln_status kiln_model_load_ex(const char *path, const kiln_limits *limits, kiln_model **out) {
    if (!out)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_load: no place for the model");
    *out = NULL;
    if (!path)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_load: no path");
    kiln_buffer *map;
    KILN_TRY(kiln_map_file(path, &map));
    if (map->size == 0) {
        kiln_buffer_unref(map);
        return kiln_fail(KILN_ERR_PARSE, "%s: empty file, not an ONNX model", path);
    }
    char *tmp = kiln_strdup(path);
    if (!tmp) {
        kiln_buffer_unref(map);
        return KILN_ERR_NOMEM;
    }
    char *dir = dirname(tmp);
    kiln_status st = kiln_model_from_bytes_ex(map, path, dir, limits, out);
    free(tmp);
    kiln_buffer_unref(map);
    return st;
}

kiln_status kiln_model_load_buffer(const void *data, size_t size, const char *name, const char *base_dir,
                                   const kiln_limits *limits, kiln_model **out) {
    if (!out)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_load_buffer: no place for the model");
    *out = NULL;
    if (!data && size)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_load_buffer: no data");
    if (!name)
        name = "<memory>";
    if (size == 0)
        return kiln_fail(KILN_ERR_PARSE, "%s: no bytes, not an ONNX model", name);
    kiln_buffer *b = kiln_buffer_alloc(size);
    if (!b)
        return kiln_fail(KILN_ERR_NOMEM, "%s: out of memory for %zu bytes", name, size);
    memcpy(b->ptr, data, size);
    kiln_status st = kiln_model_from_bytes_ex(b, name, base_dir, limits, out);
    kiln_buffer_unref(b);
    return st;
}
