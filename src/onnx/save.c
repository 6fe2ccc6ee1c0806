/* Saving a model: IR -> protobuf-c messages that borrow the IR's data, packed
 * in a stream into a temporary file, renamed into place when complete.
 * Messages start from a shallow copy of the loaded message (src), so fields
 * kiln does not model, and unknown fields, are written back unchanged. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/sha256.h"
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
    char ext_name[NAME_MAX + 1]; /* basename of the data file, set once its content is known */
    bool keep_external; /* tensors loaded from external data stay there, whatever their size */
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
    bool was_external = false; /* loaded from external data, and untouched */
    for (size_t i = 0; s->keep_external && t->buf && i < s->m->n_ext_maps && !was_external; i++)
        was_external = s->m->ext_maps[i] == t->buf;
    if (s->ext_threshold && t->dtype != KILN_DTYPE_STRING && (nbytes >= s->ext_threshold || was_external)) {
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
        kv[0]->value = s->ext_name; /* filled in when the data file is written */
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

/* ---- the data file ---- */

/* Where an untouched tensor's bytes are in the file it was loaded from:
 * its data is still the whole region the loader mapped for it. */
typedef struct ext_source {
    int fd; /* -1: none */
    uint64_t offset;
} ext_source;

typedef struct open_file {
    char *path;
    int fd;
} open_file;

typedef struct src_files {
    open_file *v;
    size_t n;
} src_files;

static int src_open(src_files *f, const char *path) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].path, path))
            return f->v[i].fd;
    open_file *v = realloc(f->v, (f->n + 1) * sizeof *v);
    if (!v)
        return -1;
    f->v = v;
    char *p = strdup(path);
    int fd = p ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    f->v[f->n++] = (open_file){p, fd};
    return fd;
}

static void src_close(src_files *f) {
    for (size_t i = 0; i < f->n; i++) {
        if (f->v[i].fd >= 0)
            close(f->v[i].fd);
        free(f->v[i].path);
    }
    free(f->v);
}

static ext_source find_source(const kiln_model *m, const ext_entry *e, src_files *files) {
    ext_source none = {-1, 0};
    const kiln_tensor *t = e->t;
    if (!m || !m->dir || !t->buf || !t->src || kiln_dtype_is_packed(t->dtype) || e->data != t->data)
        return none;
    bool mapped = false;
    for (size_t i = 0; i < m->n_ext_maps && !mapped; i++)
        mapped = m->ext_maps[i] == t->buf && t->buf->ptr == t->data && t->buf->size == t->nbytes;
    if (!mapped)
        return none;
    const Onnx__TensorProto *p = t->src;
    const char *loc = NULL;
    uint64_t off = 0;
    for (size_t i = 0; i < p->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = p->external_data[i];
        if (!kv->key || !kv->value)
            continue;
        if (!strcmp(kv->key, "location"))
            loc = kv->value;
        else if (!strcmp(kv->key, "offset"))
            off = strtoull(kv->value, NULL, 10);
    }
    if (!loc)
        return none;
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", m->dir, loc) >= sizeof full)
        return none;
    int fd = src_open(files, full);
    if (fd < 0)
        return none;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < off + e->len)
        return none;
    return (ext_source){fd, off};
}

/* Copies len bytes from (in, off) to out's position; false when the
 * system cannot (another file system, no support): the caller writes. */
static bool copy_range(int in, uint64_t off, int out, size_t len, size_t *done) {
    *done = 0;
#if defined(__linux__)
    loff_t o = (loff_t)off;
    while (*done < len) {
        ssize_t r = copy_file_range(in, &o, out, NULL, len - *done, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        *done += (size_t)r;
    }
    return true;
#else
    (void)in, (void)off, (void)out, (void)len;
    return false;
#endif
}

/* Writes the entries, 64-byte aligned, into fd; hashes what is written. */
static kiln_status write_data(saver *s, int fd, const char *path, uint8_t digest[32], size_t *n_copied) {
    static const char zeros[64];
    kiln_sha256 h;
    kiln_sha256_init(&h);
    src_files files = {0};
    uint64_t pos = 0;
    kiln_status st = KILN_OK;
    *n_copied = 0;
    for (size_t i = 0; i < s->n_ext && st == KILN_OK; i++) {
        const ext_entry *e = &s->ext[i];
        if (e->offset > pos) {
            size_t pad = (size_t)(e->offset - pos);
            kiln_sha256_update(&h, zeros, pad);
            if ((st = kiln_write_all(fd, zeros, pad, path)) != KILN_OK)
                break;
        }
        kiln_sha256_update(&h, e->data, e->len);
        ext_source src = find_source(s->m, e, &files);
        size_t done = 0;
        if (src.fd >= 0 && e->len && copy_range(src.fd, src.offset, fd, e->len, &done)) {
            (*n_copied)++;
        } else {
            if (done && lseek(fd, -(off_t)done, SEEK_CUR) < 0) /* a partial copy is written over */
                st = kiln_fail(KILN_ERR_IO, "%s: seek failed: %s", path, strerror(errno));
            if (st == KILN_OK)
                st = kiln_write_all(fd, e->data, e->len, path);
        }
        pos = e->offset + e->len;
    }
    src_close(&files);
    kiln_sha256_final(&h, digest);
    return st;
}

static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- which data files the old and the saved model read ---- */

typedef struct name_set {
    char **v;
    size_t n;
} name_set;

static void names_add(name_set *s, const char *name) {
    if (!name || !*name || strchr(name, '/'))
        return; /* only files directly beside the model are ever removed */
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], name))
            return;
    char **v = realloc(s->v, (s->n + 1) * sizeof *v);
    if (!v)
        return;
    s->v = v;
    if ((s->v[s->n] = strdup(name)))
        s->n++;
}

static bool names_has(const name_set *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], name))
            return true;
    return false;
}

static void names_free(name_set *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static void proto_location(const Onnx__TensorProto *p, name_set *out) {
    if (!p || !p->has_data_location || p->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return;
    for (size_t i = 0; i < p->n_external_data; i++)
        if (p->external_data[i]->key && !strcmp(p->external_data[i]->key, "location"))
            names_add(out, p->external_data[i]->value);
}

static void proto_graph_locations(const Onnx__GraphProto *g, name_set *out, int depth) {
    if (!g || depth > 64)
        return;
    for (size_t i = 0; i < g->n_initializer; i++)
        proto_location(g->initializer[i], out);
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t a = 0; a < g->node[i]->n_attribute; a++) {
            const Onnx__AttributeProto *at = g->node[i]->attribute[a];
            proto_location(at->t, out);
            for (size_t k = 0; k < at->n_tensors; k++)
                proto_location(at->tensors[k], out);
            proto_graph_locations(at->g, out, depth + 1);
            for (size_t k = 0; k < at->n_graphs; k++)
                proto_graph_locations(at->graphs[k], out, depth + 1);
        }
}

/* The data files the model file at `path` reads (one of at most 64 MiB: a
 * model with external data is small). */
static void file_locations(const char *path, name_set *out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0)
        return;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && sb.st_size <= (64 << 20)) {
        void *mp = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mp != MAP_FAILED) {
            Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)sb.st_size, mp);
            if (m) {
                proto_graph_locations(m->graph, out, 0);
                onnx__model_proto__free_unpacked(m, NULL);
            }
            munmap(mp, (size_t)sb.st_size);
        }
    }
    close(fd);
}

/* The data files the in-memory model was loaded from (kept whatever the
 * old model at the output path says: another model may be reading them). */
static void model_locations(const kiln_graph *g, name_set *out, int depth) {
    if (!g || depth > 64)
        return;
    for (size_t i = 0; i < g->n_inits; i++)
        proto_location(g->inits[i]->src, out);
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t a = 0; a < g->nodes[i]->n_attrs; a++) {
            const kiln_attr *at = &g->nodes[i]->attrs[a];
            if (at->t)
                proto_location(at->t->src, out);
            for (size_t k = 0; at->tensors && k < at->n; k++)
                proto_location(at->tensors[k]->src, out);
            model_locations(at->g, out, depth + 1);
            for (size_t k = 0; at->graphs && k < at->n; k++)
                model_locations(at->graphs[k], out, depth + 1);
        }
}

/* kiln's own data-file names for the model file `base`: "<base>.data" (its
 * older name) and "<base>.<16 hex>.data". */
static bool kiln_data_name(const char *name, const char *base) {
    size_t bl = strlen(base), nl = strlen(name);
    if (nl <= bl || strncmp(name, base, bl) != 0 || name[bl] != '.')
        return false;
    const char *rest = name + bl + 1;
    if (!strcmp(rest, "data"))
        return true;
    if (strlen(rest) != 16 + 5 || strcmp(rest + 16, ".data") != 0)
        return false;
    for (int i = 0; i < 16; i++)
        if (!((rest[i] >= '0' && rest[i] <= '9') || (rest[i] >= 'a' && rest[i] <= 'f')))
            return false;
    return true;
}

/* After the model at dir/base was replaced: removes the data files the
 * replaced one read (`old_refs`) and those of kiln's names for it that an
 * interrupted save left, except `new_name` (NULL: none) and the files the
 * saved model was loaded from. */
static void remove_old_data(const kiln_model *m, const char *dir, const char *base, const name_set *old_refs,
                            const char *new_name) {
    name_set keep = {0};
    /* kept: the new data file, and (when the loaded model sits in this
     * folder) the files it was loaded from */
    if (new_name)
        names_add(&keep, new_name);
    if (m && m->dir) {
        /* unless it was loaded from the very file replaced */
        char a[PATH_MAX], b[PATH_MAX], pa[PATH_MAX], pb[PATH_MAX], saved[PATH_MAX];
        bool same_file = false;
        if (m->path && (size_t)snprintf(saved, sizeof saved, "%s/%s", dir, base) < sizeof saved)
            same_file = realpath(m->path, pa) && realpath(saved, pb) && !strcmp(pa, pb);
        if (!same_file && realpath(m->dir, a) && realpath(dir, b) && !strcmp(a, b))
            model_locations(m->graph, &keep, 0);
    }
    /* the model in place reads the new data file: the old ones can go */
    for (size_t i = 0; i < old_refs->n; i++) {
        char old[PATH_MAX];
        if (!names_has(&keep, old_refs->v[i]) &&
            (size_t)snprintf(old, sizeof old, "%s/%s", dir, old_refs->v[i]) < sizeof old)
            unlink(old);
    }
    /* and data files of kiln's names for this model left by an interrupted save */
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        char old[PATH_MAX];
        if (kiln_data_name(de->d_name, base) && strcmp(de->d_name + strlen(base), ".data") &&
            !names_has(&keep, de->d_name) && (size_t)snprintf(old, sizeof old, "%s/%s", dir, de->d_name) < sizeof old)
            unlink(old);
    }
    if (d)
        closedir(d);
    names_free(&keep);
}

/* Data file, then model; then the data files of kiln's names for this model
 * that the new model does not read. */
static kiln_status save_pair(saver *s, write_ctx *w, const char *path, const char *explicit_name) {
    kiln_status st = KILN_OK;
    char dir[PATH_MAX], base[NAME_MAX + 1], data_path[PATH_MAX];
    {
        char tmp[PATH_MAX];
        if (strlen(path) >= sizeof tmp)
            return kiln_fail(KILN_ERR_IO, "%s: path too long", path);
        strcpy(tmp, path);
        snprintf(dir, sizeof dir, "%s", dirname(tmp));
        strcpy(tmp, path);
        snprintf(base, sizeof base, "%s", basename(tmp));
    }
    size_t tl = strlen(path) + 32;
    char *tmp_name = malloc(tl);
    if (!tmp_name)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    snprintf(tmp_name, tl, "%s.kiln-tmp-XXXXXX", path);
    int fd = mkstemp(tmp_name);
    if (fd < 0) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot create output file: %s", path, strerror(errno));
        free(tmp_name);
        return st;
    }
    uint8_t digest[32];
    size_t copied = 0;
    st = write_data(s, fd, path, digest, &copied);
    if (st == KILN_OK && fsync(fd) != 0 && errno != EINVAL)
        st = kiln_fail(KILN_ERR_IO, "%s: fsync failed: %s", tmp_name, strerror(errno));
    if (close(fd) != 0 && st == KILN_OK)
        st = kiln_fail(KILN_ERR_IO, "%s: close failed: %s", tmp_name, strerror(errno));
    if (st != KILN_OK) {
        unlink(tmp_name);
        free(tmp_name);
        return st;
    }
    mode_t mask = umask(0);
    umask(mask);
    chmod(tmp_name, 0666 & ~mask);
    int nlen;
    if (explicit_name) {
        nlen = snprintf(s->ext_name, sizeof s->ext_name, "%s", explicit_name);
    } else {
        char hex[65];
        kiln_sha256_hex(digest, hex);
        hex[16] = 0;
        nlen = snprintf(s->ext_name, sizeof s->ext_name, "%s.%s.data", base, hex);
    }
    if (nlen < 0 || (size_t)nlen >= sizeof s->ext_name ||
        (size_t)snprintf(data_path, sizeof data_path, "%s/%s", dir, s->ext_name) >= sizeof data_path) {
        unlink(tmp_name);
        free(tmp_name);
        return kiln_fail(KILN_ERR_IO, "%s: the data file's name would be too long", path);
    }
    /* the data files the model being replaced reads */
    name_set old_refs = {0};
    file_locations(path, &old_refs);
    bool existed = access(data_path, F_OK) == 0;
    if (rename(tmp_name, data_path) != 0) {
        st = kiln_fail(KILN_ERR_IO, "%s: cannot rename into place: %s", data_path, strerror(errno));
        unlink(tmp_name);
        free(tmp_name);
        names_free(&old_refs);
        return st;
    }
    free(tmp_name);
    sync_dir(dir);
    st = kiln_write_atomic(path, write_model, w);
    if (st != KILN_OK) {
        if (!existed)
            unlink(data_path);
        names_free(&old_refs);
        return st;
    }
    sync_dir(dir);
    remove_old_data(s->m, dir, base, &old_refs, s->ext_name);
    names_free(&old_refs);
    return KILN_OK;
}

static void saver_reset(saver *s) {
    for (size_t i = 0; i < s->n_allocs; i++)
        free(s->allocs[i]);
    free(s->allocs);
    free(s->ext);
    const kiln_model *m = s->m;
    *s = (saver){.m = m};
}

/* protobuf's limit on a message: 2 GiB - 1 (a test may lower it). */
static uint64_t proto_limit(void) {
    const char *e = getenv("KILN_TEST_PROTO_LIMIT");
    if (e && *e)
        return strtoull(e, NULL, 10);
    return (uint64_t)INT32_MAX;
}

kiln_status kiln_model_save(const kiln_model *m, const char *path, const kiln_save_options *opts) {
    saver s = {.m = m};
    kiln_status st = KILN_OK;
    int mode = opts ? opts->external : 0;
    size_t threshold = opts && opts->external_threshold ? opts->external_threshold : 1024;
    bool ext = mode > 0 || (mode == 0 && ((opts && opts->external_threshold) || m->n_ext_maps > 0));
    const char *explicit_name = opts ? opts->external_file : NULL;
    if (explicit_name) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", path);
        const char *b = basename(tmp);
        if (!*explicit_name || strchr(explicit_name, '/') || !strcmp(explicit_name, ".") ||
            !strcmp(explicit_name, "..") || !strcmp(explicit_name, b) || strlen(explicit_name) > NAME_MAX)
            return kiln_fail(KILN_ERR_ARG, "%s: external data file name '%s' must be a file name in the model's "
                             "folder, other than the model's", path, explicit_name);
    }
    Onnx__ModelProto *p = NULL;
    for (int attempt = 0;; attempt++) {
        s.ext_threshold = ext ? threshold : 0;
        s.keep_external = ext && !(opts && opts->external_threshold) && threshold > 64;
        p = save_model(&s, m);
        if (s.err != KILN_OK) {
            st = kiln_fail_prefix(s.err, "%s: ", path);
            goto out;
        }
        if (!p || s.oom) {
            st = kiln_fail(KILN_ERR_NOMEM, "out of memory while preparing '%s'", path);
            goto out;
        }
        uint64_t size = protobuf_c_message_get_packed_size(&p->base);
        if (size <= proto_limit())
            break;
        /* past protobuf's 2 GB: external data, whatever was asked; then
         * every tensor of 64 bytes or more out */
        if (attempt == 2 || (ext && threshold <= 64)) {
            st = kiln_fail(KILN_ERR_LIMIT, "%s: the model would be %llu bytes even with its tensors in an external "
                           "data file, past protobuf's limit of 2 GB", path, (unsigned long long)size);
            goto out;
        }
        saver_reset(&s);
        if (ext)
            threshold = 64;
        ext = true;
    }
    write_ctx w = {.msg = &p->base, .path = path, .s = &s};
    if (s.n_ext) {
        /* the data file complete under a temporary name, renamed to a name
         * of its own (never the one the old model reads, unless the content
         * is the same), then the model, then the old data files */
        st = save_pair(&s, &w, path, explicit_name);
        goto out;
    }
    {
        /* inline: the data files the replaced model read go after it */
        char dir[PATH_MAX], base[NAME_MAX + 1], tmp[PATH_MAX];
        name_set old_refs = {0};
        bool names_ok = strlen(path) < sizeof tmp;
        if (names_ok) {
            strcpy(tmp, path);
            snprintf(dir, sizeof dir, "%s", dirname(tmp));
            strcpy(tmp, path);
            snprintf(base, sizeof base, "%s", basename(tmp));
            file_locations(path, &old_refs);
        }
        st = kiln_write_atomic(path, write_model, &w);
        if (st == KILN_OK && names_ok && old_refs.n) {
            sync_dir(dir);
            remove_old_data(m, dir, base, &old_refs, NULL);
        }
        names_free(&old_refs);
    }
out:
    for (size_t i = 0; i < s.n_allocs; i++)
        free(s.allocs[i]);
    free(s.allocs);
    free(s.ext);
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
