/* Saving a model: IR -> protobuf-c messages that borrow the IR's data, packed
 * in a stream into a temporary file, renamed into place when complete.
 * Messages start from a shallow copy of the loaded message (src), so fields
 * kiln does not model, and unknown fields, are written back unchanged. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/ir.h"
#include "onnx.pb-c.h"

typedef struct ext_entry {
    const kiln_tensor *t;
    Onnx__TensorProto *p;
    uint64_t offset;
    const void *data; /* the bytes written: t's data, or its packed form */
    size_t len;
} ext_entry;

typedef struct saver {
    void **allocs;
    size_t n_allocs, cap_allocs;
    bool oom;
    size_t ext_threshold;
    const char *ext_name; /* basename of the side file */
    ext_entry *ext;
    size_t n_ext, cap_ext;
    uint64_t ext_size;
    const kiln_model *m;
    kiln_status err; /* a model kiln cannot write (message set) */
} saver;

static bool s_track(saver *s, void *p) {
    if (s->n_allocs == s->cap_allocs) {
        size_t cap = s->cap_allocs ? s->cap_allocs * 2 : 256;
        void **a = realloc(s->allocs, cap * sizeof *a);
        if (!a) {
            s->oom = true;
            return false;
        }
        s->allocs = a;
        s->cap_allocs = cap;
    }
    s->allocs[s->n_allocs++] = p;
    return true;
}

static void *s_alloc(saver *s, size_t n) {
    if (s->oom)
        return NULL;
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        s->oom = true;
        return NULL;
    }
    if (!s_track(s, p)) {
        free(p);
        return NULL;
    }
    return p;
}

static char *s_printf(saver *s, const char *fmt, unsigned long long v) {
    char *p = s_alloc(s, 32);
    if (p)
        snprintf(p, 32, fmt, v);
    return p;
}

/* ---- fields newer than kiln's schema, written as unknown fields ---- */

#define FN_ATTRIBUTE_PROTO 11u
#define FN_VALUE_INFO 12u
#define FN_OVERLOAD 13u
#define NODE_OVERLOAD 8u

typedef struct extra_fields {
    ProtobufCMessageUnknownField *v;
    size_t n, cap;
} extra_fields;

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void varint_put(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
}

/* A length-delimited field of `len` bytes; returns where its payload goes. */
static uint8_t *extra_add(saver *s, extra_fields *x, uint32_t tag, size_t len) {
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        ProtobufCMessageUnknownField *v = s_alloc(s, cap * sizeof *v);
        if (!v)
            return NULL;
        if (x->n)
            memcpy(v, x->v, x->n * sizeof *v);
        x->v = v;
        x->cap = cap;
    }
    size_t pl = varint_len(len);
    uint8_t *d = s_alloc(s, pl + len);
    if (!d)
        return NULL;
    varint_put(d, len);
    x->v[x->n++] = (ProtobufCMessageUnknownField){
        .tag = tag, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = pl + len, .data = d};
    return d + pl;
}

static void extra_string(saver *s, extra_fields *x, uint32_t tag, const char *str) {
    size_t n = strlen(str);
    uint8_t *d = extra_add(s, x, tag, n);
    if (d && n)
        memcpy(d, str, n);
}

static void extra_message(saver *s, extra_fields *x, uint32_t tag, const ProtobufCMessage *msg) {
    if (!msg) {
        s->oom = true;
        return;
    }
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *d = extra_add(s, x, tag, n);
    if (d)
        protobuf_c_message_pack(msg, d);
}

/* The copy's unknown fields: the original's without the `drop` tags, with
 * `x` inserted where their tag numbers place them (so a file written in
 * field order is written back the same). */
static void set_unknowns(saver *s, ProtobufCMessage *copy, const uint32_t *drop, size_t n_drop,
                         const extra_fields *x) {
    size_t n = copy->n_unknown_fields;
    bool touched = x->n > 0;
    for (size_t i = 0; i < n && !touched; i++)
        for (size_t k = 0; k < n_drop; k++)
            if (copy->unknown_fields[i].tag == drop[k])
                touched = true;
    if (!touched)
        return;
    ProtobufCMessageUnknownField *v = s_alloc(s, (n + x->n) * sizeof *v);
    if (!v)
        return;
    size_t out = 0, next = 0;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageUnknownField *u = &copy->unknown_fields[i];
        bool dropped = false;
        for (size_t k = 0; k < n_drop; k++)
            dropped = dropped || u->tag == drop[k];
        if (dropped)
            continue;
        while (next < x->n && x->v[next].tag < u->tag)
            v[out++] = x->v[next++];
        v[out++] = *u;
    }
    while (next < x->n)
        v[out++] = x->v[next++];
    copy->n_unknown_fields = (unsigned)out;
    copy->unknown_fields = v;
}

static Onnx__TypeProto *save_type(saver *s, const kiln_type *t, const Onnx__TypeProto *orig) {
    if (t->kind == KILN_TYPE_NONE)
        return NULL;
    if (t->kind == KILN_TYPE_OTHER)
        return (Onnx__TypeProto *)orig;
    Onnx__TypeProto *tp = s_alloc(s, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = s_alloc(s, sizeof *tt);
    if (!tp || !tt)
        return NULL;
    if (orig)
        *tp = *orig;
    else
        onnx__type_proto__init(tp);
    const Onnx__TypeProto__Tensor *ott =
        orig && orig->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? orig->tensor_type : NULL;
    if (ott)
        *tt = *ott;
    else
        onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = t->elem != KILN_DTYPE_UNDEFINED;
    tt->elem_type = (int32_t)t->elem;
    tt->shape = NULL;
    if (t->rank >= 0) {
        Onnx__TensorShapeProto *sh = s_alloc(s, sizeof *sh);
        if (!sh)
            return NULL;
        if (ott && ott->shape)
            *sh = *ott->shape;
        else
            onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)t->rank;
        sh->dim = s_alloc(s, (size_t)t->rank * sizeof *sh->dim);
        if (t->rank && !sh->dim)
            return NULL;
        for (int i = 0; i < t->rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = s_alloc(s, sizeof *d);
            if (!d)
                return NULL;
            if (ott && ott->shape && (size_t)i < ott->shape->n_dim)
                *d = *ott->shape->dim[i]; /* keeps denotation */
            else
                onnx__tensor_shape_proto__dimension__init(d);
            if (t->dims[i].value >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = t->dims[i].value;
            } else if (t->dims[i].param) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = t->dims[i].param;
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE__NOT_SET;
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    return tp;
}

static Onnx__ValueInfoProto **save_value_infos(saver *s, const kiln_value_info *v, size_t n) {
    Onnx__ValueInfoProto **arr = s_alloc(s, n * sizeof *arr);
    if (!arr)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        Onnx__ValueInfoProto *p = s_alloc(s, sizeof *p);
        if (!p)
            return NULL;
        const Onnx__ValueInfoProto *o = v[i].src;
        if (o)
            *p = *o;
        else
            onnx__value_info_proto__init(p);
        p->name = v[i].name;
        p->doc_string = v[i].doc;
        p->type = save_type(s, &v[i].type, o ? o->type : NULL);
        arr[i] = p;
    }
    return arr;
}

static Onnx__TensorProto *save_tensor(saver *s, const kiln_tensor *t) {
    Onnx__TensorProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    if (kiln_tensor_to_proto(t, p) != KILN_OK) {
        s->oom = true;
        return NULL;
    }
    if (p->string_data && !s_track(s, p->string_data)) {
        free(p->string_data);
        return NULL;
    }
    uint8_t *packed = kiln_tensor_proto_packed(p);
    if (packed && !s_track(s, packed)) {
        free(packed);
        return NULL;
    }
    const void *bytes = packed ? (const void *)packed : t->data;
    size_t nbytes = packed ? p->raw_data.len : t->nbytes;
    if (s->ext_threshold && t->dtype != KILN_DTYPE_STRING && nbytes >= s->ext_threshold) {
        if (s->n_ext == s->cap_ext) {
            size_t cap = s->cap_ext ? s->cap_ext * 2 : 64;
            ext_entry *e = realloc(s->ext, cap * sizeof *e);
            if (!e) {
                s->oom = true;
                return NULL;
            }
            s->ext = e;
            s->cap_ext = cap;
        }
        uint64_t off = (s->ext_size + 63) & ~(uint64_t)63;
        s->ext[s->n_ext++] = (ext_entry){t, p, off, bytes, nbytes};
        s->ext_size = off + nbytes;
        Onnx__StringStringEntryProto **kv = s_alloc(s, 3 * sizeof *kv);
        if (!kv)
            return NULL;
        const char *keys[3] = {"location", "offset", "length"};
        for (int i = 0; i < 3; i++) {
            kv[i] = s_alloc(s, sizeof **kv);
            if (!kv[i])
                return NULL;
            onnx__string_string_entry_proto__init(kv[i]);
            kv[i]->key = (char *)keys[i];
        }
        kv[0]->value = (char *)s->ext_name;
        kv[1]->value = s_printf(s, "%llu", (unsigned long long)off);
        kv[2]->value = s_printf(s, "%llu", (unsigned long long)nbytes);
        p->n_external_data = 3;
        p->external_data = kv;
        p->has_data_location = 1;
        p->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        p->has_raw_data = 0;
        p->raw_data.data = NULL;
        p->raw_data.len = 0;
    }
    return p;
}

static Onnx__GraphProto *save_graph(saver *s, const kiln_graph *g);

static Onnx__AttributeProto *save_attr(saver *s, const kiln_attr *a) {
    Onnx__AttributeProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    if (a->src)
        *p = *(const Onnx__AttributeProto *)a->src;
    else
        onnx__attribute_proto__init(p);
    p->name = a->name;
    p->has_type = 1;
    p->type = (Onnx__AttributeProto__AttributeType)a->type;
    p->ref_attr_name = a->ref;
    if (a->ref) /* a reference has no value */
        return p;
    switch (a->type) {
    case KILN_ATTR_FLOAT:
        p->has_f = 1;
        p->f = a->f;
        break;
    case KILN_ATTR_INT:
        p->has_i = 1;
        p->i = a->i;
        break;
    case KILN_ATTR_STRING:
        p->has_s = 1;
        p->s.len = a->s.len;
        p->s.data = (uint8_t *)a->s.data;
        break;
    case KILN_ATTR_TENSOR: p->t = save_tensor(s, a->t); break;
    case KILN_ATTR_GRAPH: p->g = save_graph(s, a->g); break;
    case KILN_ATTR_FLOATS:
        p->n_floats = a->n;
        p->floats = a->floats;
        break;
    case KILN_ATTR_INTS:
        p->n_ints = a->n;
        p->ints = a->ints;
        break;
    case KILN_ATTR_STRINGS:
        p->n_strings = a->n;
        p->strings = s_alloc(s, a->n * sizeof *p->strings);
        for (size_t i = 0; p->strings && i < a->n; i++) {
            p->strings[i].len = a->strings[i].len;
            p->strings[i].data = (uint8_t *)a->strings[i].data;
        }
        break;
    case KILN_ATTR_TENSORS:
        p->n_tensors = a->n;
        p->tensors = s_alloc(s, a->n * sizeof *p->tensors);
        for (size_t i = 0; p->tensors && i < a->n; i++)
            p->tensors[i] = save_tensor(s, a->tensors[i]);
        break;
    case KILN_ATTR_GRAPHS:
        p->n_graphs = a->n;
        p->graphs = s_alloc(s, a->n * sizeof *p->graphs);
        for (size_t i = 0; p->graphs && i < a->n; i++)
            p->graphs[i] = save_graph(s, a->graphs[i]);
        break;
    default: break; /* sparse tensors, type protos: kept from src */
    }
    return p;
}

static Onnx__NodeProto *save_node(saver *s, const kiln_node *n) {
    Onnx__NodeProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    if (n->src)
        *p = *(const Onnx__NodeProto *)n->src;
    else
        onnx__node_proto__init(p);
    p->name = n->name && *n->name ? n->name : NULL;
    p->op_type = n->op_type;
    /* The default domain is "" in the IR; write it back as the file had it
     * (absent, "" or "ai.onnx"), so a round trip changes nothing. */
    const char *src_domain = n->src ? ((const Onnx__NodeProto *)n->src)->domain : NULL;
    if (n->domain && *n->domain)
        p->domain = n->domain;
    else if (src_domain && (!*src_domain || strcmp(src_domain, "ai.onnx") == 0))
        p->domain = (char *)src_domain;
    else
        p->domain = NULL;
    p->doc_string = n->doc;
    p->n_input = n->n_inputs;
    p->input = n->inputs;
    p->n_output = n->n_outputs;
    p->output = n->outputs;
    p->n_attribute = n->n_attrs;
    p->attribute = s_alloc(s, n->n_attrs * sizeof *p->attribute);
    for (size_t i = 0; p->attribute && i < n->n_attrs; i++)
        p->attribute[i] = save_attr(s, &n->attrs[i]);
    extra_fields x = {0};
    if (n->overload)
        extra_string(s, &x, NODE_OVERLOAD, n->overload);
    static const uint32_t drop[] = {NODE_OVERLOAD};
    set_unknowns(s, &p->base, drop, 1, &x);
    if (n->opset && s->m && n->opset != kiln_model_opset(s->m, n->domain) && s->err == KILN_OK)
        s->err = kiln_fail(KILN_ERR_INVALID, "node '%s' (%s) runs at opset %lld of its domain, which the model does "
                           "not import (it was inlined from a local function); it cannot be saved",
                           n->name, n->op_type, (long long)n->opset);
    return p;
}

static Onnx__GraphProto *save_graph(saver *s, const kiln_graph *g) {
    Onnx__GraphProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    if (g->src)
        *p = *(const Onnx__GraphProto *)g->src;
    else
        onnx__graph_proto__init(p);
    p->name = g->name;
    p->doc_string = g->doc;
    p->n_node = g->n_nodes;
    p->node = s_alloc(s, g->n_nodes * sizeof *p->node);
    for (size_t i = 0; p->node && i < g->n_nodes; i++)
        p->node[i] = save_node(s, g->nodes[i]);
    p->n_initializer = g->n_inits;
    p->initializer = s_alloc(s, g->n_inits * sizeof *p->initializer);
    for (size_t i = 0; p->initializer && i < g->n_inits; i++)
        p->initializer[i] = save_tensor(s, g->inits[i]);
    p->n_input = g->n_inputs;
    p->input = save_value_infos(s, g->inputs, g->n_inputs);
    p->n_output = g->n_outputs;
    p->output = save_value_infos(s, g->outputs, g->n_outputs);
    p->n_value_info = g->n_value_info;
    p->value_info = save_value_infos(s, g->value_info, g->n_value_info);
    return p;
}

/* An opset list, starting from the original's entry for the same domain so
 * an absent domain stays absent. */
static Onnx__OperatorSetIdProto **save_opsets(saver *s, const kiln_opset *v, size_t n,
                                              Onnx__OperatorSetIdProto *const *orig, size_t n_orig) {
    Onnx__OperatorSetIdProto **arr = s_alloc(s, n * sizeof *arr);
    for (size_t i = 0; arr && i < n; i++) {
        Onnx__OperatorSetIdProto *o = s_alloc(s, sizeof *o);
        if (!o)
            return NULL;
        const Onnx__OperatorSetIdProto *from = NULL;
        for (size_t k = 0; k < n_orig && !from; k++) {
            const char *d = orig[k]->domain ? orig[k]->domain : "";
            if (strcmp(d, v[i].domain) == 0)
                from = orig[k];
        }
        if (from)
            *o = *from;
        else
            onnx__operator_set_id_proto__init(o);
        o->domain = from ? from->domain : (*v[i].domain ? v[i].domain : NULL);
        o->has_version = 1;
        o->version = v[i].version;
        arr[i] = o;
    }
    return arr;
}

static Onnx__FunctionProto *save_function(saver *s, const kiln_function *f) {
    Onnx__FunctionProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    const Onnx__FunctionProto *o = f->src;
    if (o)
        *p = *o;
    else
        onnx__function_proto__init(p);
    p->name = f->name;
    /* the default domain as the file had it, as for nodes */
    if (f->domain && *f->domain)
        p->domain = f->domain;
    else if (o && o->domain && (!*o->domain || strcmp(o->domain, "ai.onnx") == 0))
        p->domain = o->domain;
    else
        p->domain = NULL;
    p->doc_string = f->doc;
    p->n_input = f->n_inputs;
    p->input = f->inputs;
    p->n_output = f->n_outputs;
    p->output = f->outputs;
    p->n_attribute = f->n_attr_names;
    p->attribute = f->attr_names;
    const kiln_graph *g = f->body;
    p->n_node = g ? g->n_nodes : 0;
    p->node = s_alloc(s, p->n_node * sizeof *p->node);
    for (size_t i = 0; p->node && i < p->n_node; i++)
        p->node[i] = save_node(s, g->nodes[i]);
    p->n_opset_import = f->n_opsets;
    p->opset_import = save_opsets(s, f->opsets, f->n_opsets, o ? o->opset_import : NULL, o ? o->n_opset_import : 0);
    extra_fields x = {0};
    for (size_t i = 0; i < f->n_attr_defaults; i++)
        extra_message(s, &x, FN_ATTRIBUTE_PROTO, (const ProtobufCMessage *)save_attr(s, &f->attr_defaults[i]));
    if (g && g->n_value_info) {
        Onnx__ValueInfoProto **vi = save_value_infos(s, g->value_info, g->n_value_info);
        for (size_t i = 0; vi && i < g->n_value_info; i++)
            extra_message(s, &x, FN_VALUE_INFO, (const ProtobufCMessage *)vi[i]);
    }
    if (f->overload)
        extra_string(s, &x, FN_OVERLOAD, f->overload);
    static const uint32_t drop[] = {FN_ATTRIBUTE_PROTO, FN_VALUE_INFO, FN_OVERLOAD};
    set_unknowns(s, &p->base, drop, 3, &x);
    return p;
}

static Onnx__ModelProto *save_model(saver *s, const kiln_model *m) {
    Onnx__ModelProto *p = s_alloc(s, sizeof *p);
    if (!p)
        return NULL;
    if (m->proto)
        *p = *(const Onnx__ModelProto *)m->proto;
    else
        onnx__model_proto__init(p);
    p->has_ir_version = 1;
    p->ir_version = m->ir_version;
    p->n_opset_import = m->n_opsets;
    p->opset_import = s_alloc(s, m->n_opsets * sizeof *p->opset_import);
    for (size_t i = 0; p->opset_import && i < m->n_opsets; i++) {
        Onnx__OperatorSetIdProto *o = s_alloc(s, sizeof *o);
        if (!o)
            return NULL;
        /* Start from the file's entry for the same domain when there is one,
         * so an absent domain stays absent (the IR says ""). */
        const Onnx__ModelProto *mp = m->proto;
        const Onnx__OperatorSetIdProto *orig = NULL;
        for (size_t k = 0; mp && k < mp->n_opset_import && !orig; k++) {
            const char *d = mp->opset_import[k]->domain ? mp->opset_import[k]->domain : "";
            if (strcmp(d, m->opsets[i].domain) == 0)
                orig = mp->opset_import[k];
        }
        if (orig)
            *o = *orig;
        else
            onnx__operator_set_id_proto__init(o);
        o->domain = orig ? orig->domain : (*m->opsets[i].domain ? m->opsets[i].domain : NULL);
        o->has_version = 1;
        o->version = m->opsets[i].version;
        p->opset_import[i] = o;
    }
    p->producer_name = m->producer_name;
    p->producer_version = m->producer_version;
    p->domain = m->domain;
    p->doc_string = m->doc;
    p->has_model_version = m->has_model_version;
    p->model_version = m->model_version;
    p->n_metadata_props = m->n_meta;
    p->metadata_props = s_alloc(s, m->n_meta * sizeof *p->metadata_props);
    for (size_t i = 0; p->metadata_props && i < m->n_meta; i++) {
        Onnx__StringStringEntryProto *e = s_alloc(s, sizeof *e);
        if (!e)
            return NULL;
        onnx__string_string_entry_proto__init(e);
        e->key = m->meta_keys[i].data;
        e->value = m->meta_values[i].data;
        p->metadata_props[i] = e;
    }
    p->graph = save_graph(s, m->graph);
    p->n_functions = m->n_functions;
    p->functions = s_alloc(s, m->n_functions * sizeof *p->functions);
    for (size_t i = 0; p->functions && i < m->n_functions; i++)
        p->functions[i] = save_function(s, m->functions[i]);
    return p;
}

/* A ProtobufCBuffer that streams into a file through a staging block. */
typedef struct file_sink {
    ProtobufCBuffer base;
    int fd;
    const char *path;
    char *block;
    size_t used, cap;
    kiln_status st;
} file_sink;

static void sink_flush(file_sink *f) {
    if (f->st == KILN_OK && f->used)
        f->st = kiln_write_all(f->fd, f->block, f->used, f->path);
    f->used = 0;
}

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    file_sink *f = (file_sink *)b;
    if (f->st != KILN_OK || len == 0) /* an empty tensor's data may be NULL */
        return;
    if (len >= f->cap) { /* big payloads (weights) go straight through */
        sink_flush(f);
        if (f->st == KILN_OK)
            f->st = kiln_write_all(f->fd, data, len, f->path);
        return;
    }
    if (f->used + len > f->cap)
        sink_flush(f);
    memcpy(f->block + f->used, data, len);
    f->used += len;
}

typedef struct write_ctx {
    const ProtobufCMessage *msg;
    const char *path;
    saver *s;
} write_ctx;

static kiln_status write_model(void *vctx, int fd) {
    write_ctx *w = vctx;
    file_sink f = {.base = {.append = sink_append}, .fd = fd, .path = w->path, .cap = 1 << 20};
    f.block = malloc(f.cap);
    if (!f.block)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    protobuf_c_message_pack_to_buffer(w->msg, &f.base);
    sink_flush(&f);
    free(f.block);
    return f.st;
}

static kiln_status write_side(void *vctx, int fd) {
    write_ctx *w = vctx;
    static const char zeros[64];
    uint64_t pos = 0;
    for (size_t i = 0; i < w->s->n_ext; i++) {
        const ext_entry *e = &w->s->ext[i];
        if (e->offset > pos)
            KILN_TRY(kiln_write_all(fd, zeros, (size_t)(e->offset - pos), w->path));
        KILN_TRY(kiln_write_all(fd, e->data, e->len, w->path));
        pos = e->offset + e->len;
    }
    return KILN_OK;
}

/* Reserves a unique name beside `path` (an empty file, replaced later). */
static char *reserve_name(const char *path) {
    size_t n = strlen(path) + 32;
    char *name = kiln_malloc(n);
    if (!name)
        return NULL;
    snprintf(name, n, "%s.kiln-tmp-XXXXXX", path);
    int fd = mkstemp(name);
    if (fd < 0) {
        kiln_fail(KILN_ERR_IO, "%s: cannot create output file: %s", path, strerror(errno));
        free(name);
        return NULL;
    }
    close(fd);
    return name;
}

static kiln_status save_pair(saver *s, write_ctx *w, const char *path, const char *side_path) {
    kiln_status st = KILN_OK;
    char *side_tmp = reserve_name(side_path);
    char *model_tmp = side_tmp ? reserve_name(path) : NULL;
    if (!side_tmp || !model_tmp) {
        st = KILN_ERR_IO;
        goto out;
    }
    write_ctx ws = {.path = side_path, .s = s};
    KILN_CHECK(st, kiln_write_atomic(side_tmp, write_side, &ws), out);
    KILN_CHECK(st, kiln_write_atomic(model_tmp, write_model, w), out);
    if (rename(side_tmp, side_path) != 0) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot rename into place: %s", side_path, strerror(errno));
        goto out;
    }
    if (rename(model_tmp, path) != 0) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(side_path);
        goto out;
    }
out:
    if (st != KILN_OK) {
        if (side_tmp)
            unlink(side_tmp);
        if (model_tmp)
            unlink(model_tmp);
    }
    free(side_tmp);
    free(model_tmp);
    return st;
}

kiln_status kiln_model_save(const kiln_model *m, const char *path, const kiln_save_options *opts) {
    saver s = {.m = m};
    char *side_path = NULL;
    kiln_status st = KILN_OK;
    if (opts && opts->external_threshold) {
        s.ext_threshold = opts->external_threshold;
        size_t n = strlen(path) + 8;
        side_path = malloc(n);
        if (!side_path) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
            goto out;
        }
        snprintf(side_path, n, "%s.data", path);
        s.ext_name = strrchr(side_path, '/') ? strrchr(side_path, '/') + 1 : side_path;
    }
    Onnx__ModelProto *p = save_model(&s, m);
    if (s.err != KILN_OK) {
        st = kiln_fail_prefix(s.err, "%s: ", path);
        goto out;
    }
    if (!p || s.oom) {
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory while preparing '%s'", path);
        goto out;
    }
    write_ctx w = {.msg = &p->base, .path = path, .s = &s};
    if (side_path && s.n_ext) {
        /* Both files are written completely under reserved temporary names
         * before either is renamed into place: a failure on the way leaves
         * neither a half-written file nor a side file without its model,
         * and never pairs an old model with new external data. */
        st = save_pair(&s, &w, path, side_path);
        goto out;
    }
    st = kiln_write_atomic(path, write_model, &w);
out:
    for (size_t i = 0; i < s.n_allocs; i++)
        free(s.allocs[i]);
    free(s.allocs);
    free(s.ext);
    free(side_path);
    return st;
}

kiln_status kiln_model_serialize(const kiln_model *m, void **data, size_t *size) {
    if (!m || !data || !size)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_serialize: no model or no place for the bytes");
    *data = NULL;
    *size = 0;
    saver s = {.m = m};
    kiln_status st = KILN_OK;
    Onnx__ModelProto *p = save_model(&s, m);
    if (s.err != KILN_OK) {
        st = s.err;
    } else if (!p || s.oom) {
        st = kiln_fail(KILN_ERR_NOMEM, "out of memory while serialising the model");
    } else {
        size_t n = protobuf_c_message_get_packed_size(&p->base);
        if (n > (size_t)INT32_MAX) {
            st = kiln_fail(KILN_ERR_LIMIT, "the model takes %zu bytes, over protobuf's 2 GiB; save it with external data",
                           n);
        } else {
            uint8_t *buf = malloc(n ? n : 1);
            if (!buf) {
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory for %zu bytes", n);
            } else {
                protobuf_c_message_pack(&p->base, buf);
                *data = buf;
                *size = n;
            }
        }
    }
    for (size_t i = 0; i < s.n_allocs; i++)
        free(s.allocs[i]);
    free(s.allocs);
    free(s.ext);
    return st;
}
