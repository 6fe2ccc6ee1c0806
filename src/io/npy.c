/* numpy .npy files: versions 1-3, C order, every numeric dtype, bool, float16. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static const struct {
    const char *descr; /* without the byte-order character */
    kiln_dtype dtype;
} npy_types[] = {
    {"f4", KILN_DTYPE_FLOAT},   {"f8", KILN_DTYPE_DOUBLE}, {"f2", KILN_DTYPE_FLOAT16}, {"i1", KILN_DTYPE_INT8},
    {"u1", KILN_DTYPE_UINT8},   {"i2", KILN_DTYPE_INT16},  {"u2", KILN_DTYPE_UINT16},  {"i4", KILN_DTYPE_INT32},
    {"u4", KILN_DTYPE_UINT32},  {"i8", KILN_DTYPE_INT64},  {"u8", KILN_DTYPE_UINT64},  {"b1", KILN_DTYPE_BOOL},
    {"c8", KILN_DTYPE_COMPLEX64}, {"c16", KILN_DTYPE_COMPLEX128},
};

/* Finds `'key':` in the header dict and returns a pointer past the colon. */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

kiln_status kiln_npy_read(const char *path, kiln_tensor **out) {
    *out = NULL;
    kiln_buffer *map;
    KILN_TRY(kiln_map_file(path, &map));
    const unsigned char *d = map->ptr;
    size_t n = map->size;
    kiln_status st = KILN_OK;
    char *header = NULL;
    kiln_tensor *t = NULL;
    if (n < 10 || memcmp(d, "\x93NUMPY", 6) != 0) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    int major = d[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)d[8] | (size_t)d[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) {
            st = kiln_fail(KILN_ERR_PARSE, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
        hoff = 12;
    } else {
        st = kiln_fail(KILN_ERR_PARSE, "%s: unsupported .npy version %d", path, major);
        goto done;
    }
    if (hlen > n - hoff || hlen > (1u << 20)) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: truncated .npy header", path);
        goto done;
    }
    header = kiln_strndup((const char *)d + hoff, hlen);
    if (!header) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    const char *descr = dict_value(header, "descr");
    const char *fortran = dict_value(header, "fortran_order");
    const char *shape = dict_value(header, "shape");
    if (descr && *descr == '[') {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: structured (record) dtypes are not supported", path);
        goto done;
    }
    if (!descr || !fortran || !shape || *descr != '\'' || *shape != '(') {
        st = kiln_fail(KILN_ERR_PARSE, "%s: malformed .npy header", path);
        goto done;
    }
    if (strncmp(fortran, "True", 4) == 0) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported; save with np.ascontiguousarray", path);
        goto done;
    }
    descr++;
    char order = *descr;
    if (order == '<' || order == '|' || order == '=' || order == '>')
        descr++;
    else
        order = '|';
    if (order == '>') {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: big-endian arrays are not supported", path);
        goto done;
    }
    const char *dend = strchr(descr, '\'');
    if (!dend) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: malformed dtype in .npy header", path);
        goto done;
    }
    size_t dlen = (size_t)(dend - descr);
    kiln_dtype dtype = KILN_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        if (strlen(npy_types[i].descr) == dlen && strncmp(descr, npy_types[i].descr, dlen) == 0)
            dtype = npy_types[i].dtype;
    if (dlen == 1 && descr[0] == '?')
        dtype = KILN_DTYPE_BOOL;
    if (dlen == 1 && descr[0] == 'O') {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: object arrays are not supported", path);
        goto done;
    }
    if (dtype == KILN_DTYPE_UNDEFINED) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unsupported dtype '%.*s'", path, (int)dlen, descr);
        goto done;
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    const char *p = shape + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        if (*p < '0' || *p > '9') {
            st = kiln_fail(KILN_ERR_PARSE, "%s: malformed shape in .npy header", path);
            goto done;
        }
        if (rank == KILN_MAX_RANK) {
            st = kiln_fail(KILN_ERR_LIMIT, "%s: rank exceeds kiln's limit of %d", path, KILN_MAX_RANK);
            goto done;
        }
        char *e;
        unsigned long long v = strtoull(p, &e, 10);
        if (v > (unsigned long long)INT64_MAX) {
            st = kiln_fail(KILN_ERR_LIMIT, "%s: dimension too large", path);
            goto done;
        }
        dims[rank++] = (int64_t)v;
        p = e;
        while (*p == 'L')
            p++;
    }
    t = kiln_tensor_new();
    if (!t) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    st = kiln_tensor_init_shape(t, dtype, rank, dims);
    if (st != KILN_OK) {
        kiln_fail_prefix(st, "%s: ", path);
        goto done;
    }
    size_t data_off = hoff + hlen;
    if (n - data_off < t->nbytes) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: file has %zu data bytes, shape needs %zu", path, n - data_off, t->nbytes);
        goto done;
    }
    KILN_CHECK(st, kiln_tensor_alloc_data(t), done);
    if (t->nbytes)
        memcpy(t->data, d + data_off, t->nbytes);
    if (dtype == KILN_DTYPE_BOOL) {
        uint8_t *b = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            b[i] = b[i] != 0;
    }
    *out = t;
    t = NULL;
done:
    kiln_tensor_destroy(t);
    free(header);
    kiln_buffer_unref(map);
    return st;
}

typedef struct npy_write {
    const kiln_tensor *t;
    const char *path;
} npy_write;

static kiln_status write_npy(void *ctx, int fd) {
    npy_write *w = ctx;
    const kiln_tensor *t = w->t;
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        if (npy_types[i].dtype == t->dtype)
            descr = npy_types[i].descr;
    char dict[1024];
    int o = snprintf(dict, sizeof dict, "{'descr': '%s%s', 'fortran_order': False, 'shape': (",
                     t->dtype == KILN_DTYPE_BOOL ? "|" : (kiln_dtype_size(t->dtype) == 1 ? "|" : "<"),
                     t->dtype == KILN_DTYPE_BOOL ? "b1" : descr);
    for (int i = 0; i < t->rank; i++)
        o += snprintf(dict + o, sizeof dict - (size_t)o, "%lld%s", (long long)t->dims[i],
                      t->rank == 1 ? "," : (i + 1 < t->rank ? ", " : ""));
    o += snprintf(dict + o, sizeof dict - (size_t)o, "), }");
    /* Pad with spaces so the data starts on a 64-byte boundary; end with \n. */
    size_t total = 10 + (size_t)o + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)o + pad + 1;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                              (unsigned char)(hlen >> 8)};
    KILN_TRY(kiln_write_all(fd, head, 10, w->path));
    memset(dict + o, ' ', pad);
    dict[(size_t)o + pad] = '\n';
    KILN_TRY(kiln_write_all(fd, dict, hlen, w->path));
    return kiln_write_all(fd, t->data, t->nbytes, w->path);
}

kiln_status kiln_npy_write(const kiln_tensor *t, const char *path) {
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: .npy holds tensors, not a %s (use .pb)", path,
                         kiln_value_kind_name(t->kind));
    bool known = false;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        known |= npy_types[i].dtype == t->dtype;
    /* numpy has no bfloat16, float8, 4-bit, 2-bit or 6-bit types (ml_dtypes' are not portable .npy) */
    if (!known)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: .npy cannot hold %s tensors (use .pb)", path,
                         kiln_dtype_name(t->dtype));
    npy_write w = {t, path};
    return kiln_write_atomic(path, write_npy, &w);
}

kiln_status kiln_npy_path(const char *dir, const char *name, char **out) {
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = kiln_malloc(n);
    if (!p)
        return KILN_ERR_NOMEM;
    snprintf(p, n, "%s/%s.npy", dir, name);
    /* a value name is not a path: it never leaves the folder */
    for (char *c = p + strlen(dir) + 1; *c; c++)
        if (*c == '/')
            *c = '_';
    *out = p;
    return KILN_OK;
}
