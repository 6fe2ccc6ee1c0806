/* Command-line values: @file, numbers, true/false, nested lists. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct lit {
    const char *text, *p;
    double *vals;
    int64_t *ivals;
    size_t n, cap;
    int64_t dims[KILN_MAX_RANK];
    int rank; /* -1 until the first leaf fixes it */
    bool any_float, any_bool, any_number;
    int64_t counts[KILN_MAX_RANK]; /* elements seen at each depth in the current list */
} lit;

static void skip_ws(lit *l) {
    while (isspace((unsigned char)*l->p))
        l->p++;
}

static kiln_status push(lit *l, double v, int64_t iv) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > ((size_t)1 << 28))
            return kiln_fail(KILN_ERR_LIMIT, "value literal is too large");
        double *d = kiln_realloc(l->vals, cap * sizeof *d);
        if (!d)
            return KILN_ERR_NOMEM;
        l->vals = d;
        int64_t *iv2 = kiln_realloc(l->ivals, cap * sizeof *iv2);
        if (!iv2)
            return KILN_ERR_NOMEM;
        l->ivals = iv2;
        l->cap = cap;
    }
    l->vals[l->n] = v;
    l->ivals[l->n] = iv;
    l->n++;
    return KILN_OK;
}

static kiln_status parse_elem(lit *l, int depth);

static kiln_status parse_scalar(lit *l, int depth) {
    if (l->rank < 0)
        l->rank = depth;
    else if (l->rank != depth)
        return kiln_fail(KILN_ERR_ARG, "value '%s': nested lists have uneven depth", l->text);
    const char *s = l->p;
    if (strncmp(s, "true", 4) == 0 || strncmp(s, "True", 4) == 0) {
        l->p += 4;
        l->any_bool = true;
        return push(l, 1, 1);
    }
    if (strncmp(s, "false", 5) == 0 || strncmp(s, "False", 5) == 0) {
        l->p += 5;
        l->any_bool = true;
        return push(l, 0, 0);
    }
    char *end;
    errno = 0;
    bool is_float = false;
    for (const char *q = s; *q && *q != ',' && *q != ']' && !isspace((unsigned char)*q); q++)
        if (*q == '.' || *q == 'e' || *q == 'E' || *q == 'n' || *q == 'N' || *q == 'i' || *q == 'I')
            is_float = true;
    double v = strtod(s, &end);
    if (end == s)
        return kiln_fail(KILN_ERR_ARG, "value '%s': expected a number, true/false or a list at '%.20s'", l->text, s);
    int64_t iv = 0;
    if (!is_float) {
        errno = 0;
        char *e2;
        long long x = strtoll(s, &e2, 10);
        if (errno == ERANGE)
            return kiln_fail(KILN_ERR_ARG, "value '%s': integer out of range", l->text);
        iv = x;
        end = e2;
    } else {
        iv = isfinite(v) && fabs(v) < 9.2e18 ? (int64_t)v : 0;
        l->any_float = true;
    }
    l->any_number = true;
    l->p = end;
    return push(l, v, iv);
}

static kiln_status parse_list(lit *l, int depth) {
    if (depth >= KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "value '%s': lists nested deeper than %d", l->text, KILN_MAX_RANK);
    l->p++; /* '[' */
    int64_t count = 0;
    skip_ws(l);
    if (*l->p == ']') {
        l->p++;
        if (l->rank < 0)
            l->rank = depth + 1;
        else if (l->rank != depth + 1)
            return kiln_fail(KILN_ERR_ARG, "value '%s': nested lists have uneven depth", l->text);
    } else {
        for (;;) {
            KILN_TRY(parse_elem(l, depth + 1));
            count++;
            skip_ws(l);
            if (*l->p == ',') {
                l->p++;
                skip_ws(l);
                continue;
            }
            if (*l->p == ']') {
                l->p++;
                break;
            }
            return kiln_fail(KILN_ERR_ARG, "value '%s': expected ',' or ']' at '%.20s'", l->text, l->p);
        }
    }
    if (l->counts[depth] < 0)
        l->counts[depth] = count;
    else if (l->counts[depth] != count)
        return kiln_fail(KILN_ERR_ARG, "value '%s': lists at depth %d have different lengths (%lld and %lld)",
                         l->text, depth + 1, (long long)l->counts[depth], (long long)count);
    return KILN_OK;
}

static kiln_status parse_elem(lit *l, int depth) {
    skip_ws(l);
    if (*l->p == '[')
        return parse_list(l, depth);
    return parse_scalar(l, depth);
}

/* Integer literals must fit the input's type, never wrap. */
static bool int_fits(kiln_dtype dt, int64_t v) {
    switch (dt) {
    case KILN_DTYPE_INT8: return v >= INT8_MIN && v <= INT8_MAX;
    case KILN_DTYPE_UINT8: return v >= 0 && v <= UINT8_MAX;
    case KILN_DTYPE_INT16: return v >= INT16_MIN && v <= INT16_MAX;
    case KILN_DTYPE_UINT16: return v >= 0 && v <= UINT16_MAX;
    case KILN_DTYPE_INT32: return v >= INT32_MIN && v <= INT32_MAX;
    case KILN_DTYPE_UINT32: return v >= 0 && v <= (int64_t)UINT32_MAX;
    case KILN_DTYPE_UINT64: return v >= 0;
    case KILN_DTYPE_INT4: return v >= -8 && v <= 7;
    case KILN_DTYPE_UINT4: return v >= 0 && v <= 15;
    case KILN_DTYPE_INT2: return v >= -2 && v <= 1;
    case KILN_DTYPE_UINT2: return v >= 0 && v <= 3;
    default: return true;
    }
}

kiln_status kiln_value_parse(const char *text, kiln_dtype dtype, kiln_tensor **out) {
    *out = NULL;
    if (!text)
        return kiln_fail(KILN_ERR_ARG, "no value given");
    if (text[0] == '@') {
        kiln_tensor *t;
        KILN_TRY(kiln_tensor_load(text + 1, &t));
        *out = t;
        return KILN_OK;
    }
    /* Messages quote the value, shortened: it may be megabytes long. */
    char shown[64];
    snprintf(shown, sizeof shown, "%.40s%s", text, strlen(text) > 40 ? "..." : "");
    lit l = {.text = shown, .p = text, .rank = -1};
    for (int i = 0; i < KILN_MAX_RANK; i++)
        l.counts[i] = -1;
    kiln_status st = parse_elem(&l, 0);
    if (st == KILN_OK) {
        skip_ws(&l);
        if (*l.p)
            st = kiln_fail(KILN_ERR_ARG, "value '%s': unexpected text '%.20s'", l.text, l.p);
    }
    if (st == KILN_OK && l.any_bool && l.any_number)
        st = kiln_fail(KILN_ERR_ARG, "value '%s': mixes true/false with numbers", l.text);
    kiln_tensor *t = NULL;
    if (st == KILN_OK) {
        int rank = l.rank < 0 ? 0 : l.rank;
        for (int i = 0; i < rank; i++)
            l.dims[i] = l.counts[i] < 0 ? 0 : l.counts[i];
        kiln_dtype dt = dtype;
        if (dt == KILN_DTYPE_UNDEFINED)
            dt = l.any_bool ? KILN_DTYPE_BOOL : l.any_float ? KILN_DTYPE_FLOAT : KILN_DTYPE_INT64;
        if (dt == KILN_DTYPE_STRING)
            st = kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s': string literals are not supported; use a .pb file", l.text);
        else
            st = kiln_tensor_create(dt, rank, l.dims, &t);
        if (st == KILN_OK && (size_t)t->numel != l.n)
            st = kiln_fail(KILN_ERR_ARG, "value '%s': element count does not match its shape", l.text);
        bool is_int = dt != KILN_DTYPE_FLOAT && dt != KILN_DTYPE_DOUBLE && dt != KILN_DTYPE_FLOAT16 &&
                      dt != KILN_DTYPE_BFLOAT16 && !kiln_is_minifloat(dt);
        for (size_t i = 0; st == KILN_OK && i < l.n; i++) {
            double v = l.vals[i];
            int64_t iv = l.ivals[i];
            if (is_int && dt != KILN_DTYPE_BOOL && v != (double)iv && l.any_float)
                st = kiln_fail(KILN_ERR_ARG, "value '%s': %g is not an integer, but the input takes %s", l.text, v,
                               kiln_dtype_name(dt));
            else if (is_int && !int_fits(dt, iv))
                st = kiln_fail(KILN_ERR_ARG, "value '%s': %lld does not fit in %s", text, (long long)iv,
                               kiln_dtype_name(dt));
            void *d = t->data;
            switch (dt) {
            case KILN_DTYPE_FLOAT: ((float *)d)[i] = (float)v; break;
            case KILN_DTYPE_DOUBLE: ((double *)d)[i] = v; break;
            case KILN_DTYPE_FLOAT16: ((uint16_t *)d)[i] = kiln_float_to_half((float)v); break;
            case KILN_DTYPE_BFLOAT16: ((uint16_t *)d)[i] = kiln_float_to_bf16((float)v); break;
            case KILN_DTYPE_BOOL: ((uint8_t *)d)[i] = v != 0; break;
            case KILN_DTYPE_INT8: ((int8_t *)d)[i] = (int8_t)iv; break;
            case KILN_DTYPE_UINT8: ((uint8_t *)d)[i] = (uint8_t)iv; break;
            case KILN_DTYPE_INT16: ((int16_t *)d)[i] = (int16_t)iv; break;
            case KILN_DTYPE_UINT16: ((uint16_t *)d)[i] = (uint16_t)iv; break;
            case KILN_DTYPE_INT32: ((int32_t *)d)[i] = (int32_t)iv; break;
            case KILN_DTYPE_UINT32: ((uint32_t *)d)[i] = (uint32_t)iv; break;
            case KILN_DTYPE_INT64: ((int64_t *)d)[i] = iv; break;
            case KILN_DTYPE_UINT64: ((uint64_t *)d)[i] = (uint64_t)iv; break;
            case KILN_DTYPE_INT4:
            case KILN_DTYPE_INT2: ((int8_t *)d)[i] = (int8_t)iv; break;
            case KILN_DTYPE_UINT4:
            case KILN_DTYPE_UINT2: ((uint8_t *)d)[i] = (uint8_t)iv; break;
            /* rounded to nearest even and saturated, as onnx.helper.make_tensor does */
            case KILN_DTYPE_FLOAT8E4M3FN:
            case KILN_DTYPE_FLOAT8E4M3FNUZ:
            case KILN_DTYPE_FLOAT8E5M2:
            case KILN_DTYPE_FLOAT8E5M2FNUZ:
            case KILN_DTYPE_FLOAT8E8M0:
            case KILN_DTYPE_FLOAT4E2M1:
            case KILN_DTYPE_FLOAT6E2M3:
            case KILN_DTYPE_FLOAT6E3M2: ((uint8_t *)d)[i] = kiln_float_to_minifloat(dt, v, true); break;
            default: st = kiln_fail(KILN_ERR_UNSUPPORTED, "value '%s': cannot make a %s literal", l.text, kiln_dtype_name(dt));
            }
        }
    }
    free(l.vals);
    free(l.ivals);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}
