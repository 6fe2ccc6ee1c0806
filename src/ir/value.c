/* Sequence and optional values: kiln_tensor handles of kind SEQUENCE or
 * OPTIONAL that own their elements. Copies share the elements' buffers
 * (refcounted), so a sequence passed along a graph costs one pointer and one
 * reference per element, never the data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

kiln_tensor *kiln_value_new(kiln_value_kind kind, kiln_value_kind elem_kind, kiln_dtype elem_dtype) {
    kiln_tensor *v = kiln_tensor_new();
    if (!v)
        return NULL;
    v->kind = kind;
    v->elem_kind = elem_kind;
    v->elem_dtype = elem_dtype;
    return v;
}

kiln_status kiln_value_push(kiln_tensor *v, kiln_tensor *item) {
    if (!item)
        return kiln_fail(KILN_ERR_INVALID, "no value to add");
    if (v->kind == KILN_VALUE_OPTIONAL && v->n_items) {
        kiln_tensor_destroy(item);
        return kiln_fail(KILN_ERR_INVALID, "an optional holds one value");
    }
    if (v->kind != KILN_VALUE_SEQUENCE && v->kind != KILN_VALUE_OPTIONAL) {
        kiln_tensor_destroy(item);
        return kiln_fail(KILN_ERR_INVALID, "a tensor holds no values");
    }
    if (v->n_items >= KILN_MAX_SEQUENCE_LENGTH) {
        kiln_tensor_destroy(item);
        return kiln_fail(KILN_ERR_LIMIT, "a sequence would have more than %zu elements", KILN_MAX_SEQUENCE_LENGTH);
    }
    if (v->n_items == v->cap_items) {
        size_t cap = v->cap_items ? v->cap_items * 2 : 4;
        kiln_tensor **items = kiln_realloc(v->items, cap * sizeof *items);
        if (!items) {
            kiln_tensor_destroy(item);
            return KILN_ERR_NOMEM;
        }
        v->items = items;
        v->cap_items = cap;
    }
    v->items[v->n_items++] = item;
    /* an optional learns its type from what it holds */
    if (v->kind == KILN_VALUE_OPTIONAL) {
        v->elem_kind = item->kind;
        v->elem_dtype = item->kind == KILN_VALUE_TENSOR ? item->dtype : item->elem_dtype;
    } else if (v->elem_dtype == KILN_DTYPE_UNDEFINED) {
        v->elem_dtype = item->kind == KILN_VALUE_TENSOR ? item->dtype : item->elem_dtype;
    }
    return KILN_OK;
}

kiln_status kiln_value_insert(kiln_tensor *v, size_t pos, kiln_tensor *item) {
    if (pos > v->n_items) {
        kiln_tensor_destroy(item);
        return kiln_fail(KILN_ERR_INVALID, "position %zu is past the end of the sequence", pos);
    }
    KILN_TRY(kiln_value_push(v, item));
    memmove(&v->items[pos + 1], &v->items[pos], (v->n_items - 1 - pos) * sizeof *v->items);
    v->items[pos] = item;
    return KILN_OK;
}

void kiln_value_erase(kiln_tensor *v, size_t pos) {
    if (pos >= v->n_items)
        return;
    kiln_tensor_destroy(v->items[pos]);
    memmove(&v->items[pos], &v->items[pos + 1], (v->n_items - 1 - pos) * sizeof *v->items);
    v->n_items--;
}

void kiln_value_move_items(kiln_tensor *dst, kiln_tensor *src) {
    kiln_value_clear_items(dst);
    dst->items = src->items;
    dst->n_items = src->n_items;
    dst->cap_items = src->cap_items;
    src->items = NULL;
    src->n_items = src->cap_items = 0;
}

void kiln_value_clear_items(kiln_tensor *v) {
    for (size_t i = 0; i < v->n_items; i++)
        kiln_tensor_destroy(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n_items = v->cap_items = 0;
}

typedef kiln_status (*copy_fn)(const kiln_tensor *t, kiln_tensor **out);

static kiln_status copy_value(const kiln_tensor *v, copy_fn copy, kiln_tensor **out) {
    *out = NULL;
    kiln_tensor *c = kiln_value_new(v->kind, v->elem_kind, v->elem_dtype);
    if (!c)
        return KILN_ERR_NOMEM;
    if (v->n_items) {
        c->items = kiln_calloc(v->n_items, sizeof *c->items);
        if (!c->items) {
            kiln_tensor_destroy(c);
            return KILN_ERR_NOMEM;
        }
        c->cap_items = v->n_items;
    }
    for (size_t i = 0; i < v->n_items; i++) {
        kiln_status st = copy(v->items[i], &c->items[i]);
        if (st != KILN_OK) {
            kiln_tensor_destroy(c);
            return st;
        }
        c->n_items++;
    }
    *out = c;
    return KILN_OK;
}

kiln_status kiln_value_clone(const kiln_tensor *v, kiln_tensor **out) { return copy_value(v, kiln_tensor_clone, out); }
kiln_status kiln_value_share(const kiln_tensor *v, kiln_tensor **out) { return copy_value(v, kiln_tensor_share, out); }

static void put_type(const kiln_tensor *v, char *buf, size_t n) {
    if (v->kind == KILN_VALUE_TENSOR) {
        char d[200];
        snprintf(buf, n, "tensor(%s%s)", kiln_dtype_name(v->dtype), kiln_dims_str(v->rank, v->dims, d, sizeof d));
        return;
    }
    const char *inner = v->elem_dtype != KILN_DTYPE_UNDEFINED ? kiln_dtype_name(v->elem_dtype) : "?";
    const char *outer = v->kind == KILN_VALUE_SEQUENCE ? "seq" : "optional";
    switch (v->elem_kind) {
    case KILN_VALUE_TENSOR: snprintf(buf, n, "%s(tensor(%s))", outer, inner); break;
    case KILN_VALUE_SEQUENCE: snprintf(buf, n, "%s(seq(tensor(%s)))", outer, inner); break;
    case KILN_VALUE_OPTIONAL: snprintf(buf, n, "%s(optional(...%s))", outer, inner); break;
    default: snprintf(buf, n, "%s(?)", outer); break;
    }
}

const char *kiln_value_str(const kiln_tensor *v, char *buf, size_t n) {
    if (!n)
        return buf;
    put_type(v, buf, n);
    size_t len = strlen(buf);
    if (v->kind == KILN_VALUE_SEQUENCE && len < n)
        snprintf(buf + len, n - len, " of %zu", v->n_items);
    else if (v->kind == KILN_VALUE_OPTIONAL && !v->n_items && len < n)
        snprintf(buf + len, n - len, ", empty");
    return buf;
}

const char *kiln_value_kind_a(kiln_value_kind k) {
    switch (k) {
    case KILN_VALUE_TENSOR: return "a tensor";
    case KILN_VALUE_SEQUENCE: return "a sequence";
    case KILN_VALUE_OPTIONAL: return "an optional";
    default: return "a value of unknown kind";
    }
}

/* ---- public API ---- */

kiln_value_kind kiln_value_kind_of(const kiln_tensor *v) { return v ? v->kind : KILN_VALUE_UNKNOWN; }

const char *kiln_value_kind_name(kiln_value_kind k) {
    switch (k) {
    case KILN_VALUE_TENSOR: return "tensor";
    case KILN_VALUE_SEQUENCE: return "sequence";
    case KILN_VALUE_OPTIONAL: return "optional";
    default: return "unknown";
    }
}

kiln_status kiln_sequence_create(kiln_dtype elem, size_t n, const kiln_tensor *const *items, kiln_tensor **out) {
    *out = NULL;
    if (n > KILN_MAX_SEQUENCE_LENGTH)
        return kiln_fail(KILN_ERR_LIMIT, "a sequence of %zu elements is longer than kiln's limit of %zu", n,
                         KILN_MAX_SEQUENCE_LENGTH);
    for (size_t i = 0; i < n; i++) {
        if (!items[i] || items[i]->kind != KILN_VALUE_TENSOR)
            return kiln_fail(KILN_ERR_ARG, "sequence element %zu is not a tensor", i);
        kiln_dtype want = elem != KILN_DTYPE_UNDEFINED ? elem : items[0]->dtype;
        if (items[i]->dtype != want)
            return kiln_fail(KILN_ERR_ARG, "sequence element %zu is %s, the sequence holds %s", i,
                             kiln_dtype_name(items[i]->dtype), kiln_dtype_name(want));
    }
    kiln_tensor *s = kiln_value_new(KILN_VALUE_SEQUENCE, KILN_VALUE_TENSOR, elem);
    if (!s)
        return KILN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        kiln_tensor *c;
        kiln_status st = kiln_tensor_share(items[i], &c);
        if (st == KILN_OK)
            st = kiln_value_push(s, c);
        if (st != KILN_OK) {
            kiln_tensor_destroy(s);
            return st;
        }
    }
    *out = s;
    return KILN_OK;
}

size_t kiln_sequence_length(const kiln_tensor *s) { return s && s->kind == KILN_VALUE_SEQUENCE ? s->n_items : 0; }

const kiln_tensor *kiln_sequence_at(const kiln_tensor *s, size_t i) {
    return s && s->kind == KILN_VALUE_SEQUENCE && i < s->n_items ? s->items[i] : NULL;
}

kiln_status kiln_optional_create(const kiln_tensor *value, kiln_tensor **out) {
    *out = NULL;
    if (value && value->kind != KILN_VALUE_TENSOR && value->kind != KILN_VALUE_SEQUENCE)
        return kiln_fail(KILN_ERR_ARG, "an optional holds a tensor or a sequence, not a %s",
                         kiln_value_kind_name(value->kind));
    kiln_tensor *o = kiln_value_new(KILN_VALUE_OPTIONAL, KILN_VALUE_UNKNOWN, KILN_DTYPE_UNDEFINED);
    if (!o)
        return KILN_ERR_NOMEM;
    if (value) {
        kiln_tensor *c;
        kiln_status st = kiln_tensor_share(value, &c);
        if (st == KILN_OK)
            st = kiln_value_push(o, c);
        if (st != KILN_OK) {
            kiln_tensor_destroy(o);
            return st;
        }
    }
    *out = o;
    return KILN_OK;
}

const kiln_tensor *kiln_optional_value(const kiln_tensor *o) {
    return o && o->kind == KILN_VALUE_OPTIONAL && o->n_items ? o->items[0] : NULL;
}
