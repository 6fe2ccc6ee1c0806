/* numpy .npy files: versions 1.0, 2.0 and 3.0; C and Fortran order (Fortran
 * arrays are transposed into kiln's C order); every numeric dtype, bool,
 * float16.
 *
 * The header is read as the format defines it: a Python dict literal with
 * exactly the keys 'descr', 'fortran_order' and 'shape', closed, followed by
 * spaces and one '\n' that ends the header (ASCII in 1.0/2.0, UTF-8 in 3.0).
 * Anything else is refused with a message that says what is wrong. */
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

/* ---- the header: a Python literal ---- */

typedef struct hparse {
    const char *p, *end;
    const char *path;
    kiln_status st;
} hparse;

static kiln_status hfail(hparse *h, const char *what) {
    if (h->st == KILN_OK)
        h->st = kiln_fail(KILN_ERR_PARSE, "%s: malformed .npy header: %s", h->path, what);
    return h->st;
}

static void skip_ws(hparse *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t'))
        h->p++;
}

static bool eat(hparse *h, char c) {
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes (numpy writes none in the keys and
 * dtypes kiln reads): its text into buf. */
static bool read_str(hparse *h, char *buf, size_t cap) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return false;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || *h->p == '\n' || n + 1 >= cap)
            return false;
        buf[n++] = *h->p++;
    }
    if (h->p >= h->end)
        return false;
    h->p++;
    buf[n] = 0;
    return true;
}

static bool read_word(hparse *h, const char *w) {
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0)
        return false;
    const char *after = h->p + n;
    if (after < h->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                           (*after >= '0' && *after <= '9') || *after == '_'))
        return false;
    h->p = after;
    return true;
}

/* '(' [int (',' int)* [',']] ')', a one-element tuple with its comma. */
static bool read_shape(hparse *h, int64_t *dims, int *rank) {
    *rank = 0;
    if (!eat(h, '('))
        return hfail(h, "'shape' is not a tuple"), false;
    bool comma = false;
    for (;;) {
        skip_ws(h);
        if (eat(h, ')'))
            break;
        if (*rank && !comma)
            return hfail(h, "'shape': expected ',' or ')'"), false;
        skip_ws(h);
        if (h->p >= h->end || *h->p < '0' || *h->p > '9')
            return hfail(h, "'shape' holds something that is not a dimension"), false;
        unsigned long long v = 0;
        bool big = false;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            unsigned d = (unsigned)(*h->p++ - '0');
            if (v > ((unsigned long long)INT64_MAX - d) / 10)
                big = true;
            else
                v = v * 10 + d;
        }
        if (h->p < h->end && *h->p == 'L') /* Python 2 longs */
            h->p++;
        if (big) {
            if (h->st == KILN_OK)
                h->st = kiln_fail(KILN_ERR_LIMIT, "%s: dimension too large in .npy header", h->path);
            return false;
        }
        if (*rank == KILN_MAX_RANK) {
            if (h->st == KILN_OK)
                h->st = kiln_fail(KILN_ERR_LIMIT, "%s: rank exceeds kiln's limit of %d", h->path, KILN_MAX_RANK);
            return false;
        }
        dims[(*rank)++] = (int64_t)v;
        comma = eat(h, ',');
    }
    if (*rank == 1 && !comma)
        return hfail(h, "'shape' is '(n)', an integer, not the tuple '(n,)'"), false;
    return true;
}

typedef struct npy_header {
    char descr[64];
    bool fortran;
    int rank;
    int64_t dims[KILN_MAX_RANK];
} npy_header;

static kiln_status parse_header(const char *path, const char *text, size_t len, int major, npy_header *out) {
    hparse h = {.p = text, .end = text + len, .path = path};
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0 || (c >= 0x80 && major < 3))
            return hfail(&h, major < 3 ? "not ASCII (versions 1.0 and 2.0)" : "a NUL byte");
    }
    if (len == 0 || text[len - 1] != '\n')
        return hfail(&h, "it does not end with a newline");
    h.end = text + len - 1; /* the dict, then spaces */
    bool seen[3] = {false, false, false};
    if (!eat(&h, '{'))
        return hfail(&h, "it is not a dict ('{' expected)");
    for (;;) {
        if (eat(&h, '}'))
            break;
        char key[32];
        skip_ws(&h);
        if (h.p >= h.end)
            return hfail(&h, "the dict is not closed ('}' missing)");
        if (!read_str(&h, key, sizeof key))
            return hfail(&h, "a key is not a quoted string");
        if (!eat(&h, ':'))
            return hfail(&h, "':' expected after a key");
        int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "unexpected key '%s'", key);
            return hfail(&h, msg);
        }
        if (seen[k])
            return hfail(&h, "a key is given twice");
        seen[k] = true;
        if (k == 0) {
            skip_ws(&h);
            if (h.p < h.end && *h.p == '[')
                return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: structured (record) dtypes are not supported", path);
            if (!read_str(&h, out->descr, sizeof out->descr))
                return hfail(&h, "'descr' is not a dtype string");
        } else if (k == 1) {
            if (read_word(&h, "True"))
                out->fortran = true;
            else if (read_word(&h, "False"))
                out->fortran = false;
            else
                return hfail(&h, "'fortran_order' is neither True nor False");
        } else if (!read_shape(&h, out->dims, &out->rank)) {
            return h.st;
        }
        if (!eat(&h, ',')) {
            if (eat(&h, '}'))
                break;
            skip_ws(&h);
            return hfail(&h, h.p >= h.end ? "the dict is not closed ('}' missing)" : "',' or '}' expected");
        }
    }
    skip_ws(&h);
    if (h.p != h.end)
        return hfail(&h, "something other than space padding follows the dict");
    if (!seen[0] || !seen[1] || !seen[2])
        return hfail(&h, !seen[0] ? "no 'descr'" : !seen[1] ? "no 'fortran_order'" : "no 'shape'");
    return KILN_OK;
}

/* Fortran order -> C order: element (i0..in-1) is at sum(ik * stride_k)
 * with stride_0 = 1 in the source. */
static void fortran_to_c(const uint8_t *src, uint8_t *dst, int rank, const int64_t *dims, size_t esize,
                         int64_t numel) {
    int64_t fstride[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    int64_t s = 1;
    for (int k = 0; k < rank; k++) {
        fstride[k] = s;
        s *= dims[k];
    }
    int64_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        memcpy(dst + (size_t)i * esize, src + (size_t)off * esize, esize);
        for (int k = rank - 1; k >= 0; k--) { /* C order: the last index moves fastest */
            off += fstride[k];
            if (++idx[k] < dims[k])
                break;
            off -= fstride[k] * dims[k];
            idx[k] = 0;
        }
    }
}

/* ---- strings: numpy's fixed-width unicode ('<U<width>', UTF-32LE, padded
 * with NULs) <-> kiln's UTF-8 strings ---- */

static size_t utf8_put(uint32_t c, char *o) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Next code point of UTF-8 s[0..n) at *i, or -1 when malformed. */
static int64_t utf8_get(const unsigned char *s, size_t n, size_t *i) {
    unsigned char b = s[*i];
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (!len || *i + (size_t)len > n)
        return -1;
    uint32_t c = len == 1 ? b : len == 2 ? b & 0x1f : len == 3 ? b & 0x0f : b & 0x07;
    for (int k = 1; k < len; k++) {
        if ((s[*i + (size_t)k] & 0xc0) != 0x80)
            return -1;
        c = c << 6 | (s[*i + (size_t)k] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return -1;
    *i += (size_t)len;
    return c;
}

static kiln_status read_unicode(const char *path, const char *descr, const npy_header *hd, const unsigned char *data,
                                size_t n, kiln_tensor **out) {
    char *end;
    long w = strtol(descr + 1, &end, 10);
    if (*end || w < 0 || w > (1 << 20))
        return kiln_fail(KILN_ERR_PARSE, "%s: malformed unicode dtype '%s'", path, descr);
    kiln_tensor *t = kiln_tensor_new();
    if (!t)
        return KILN_ERR_NOMEM;
    kiln_status st = kiln_tensor_init_shape(t, KILN_DTYPE_STRING, hd->rank, hd->dims);
    size_t need;
    if (st == KILN_OK && kiln_mul_overflow_size((size_t)t->numel, (size_t)w * 4, &need))
        st = kiln_fail(KILN_ERR_PARSE, "%s: string array too large", path);
    if (st == KILN_OK && need != n)
        st = kiln_fail(KILN_ERR_PARSE, "%s: file has %zu data bytes, %lld strings of width %ld need %zu", path, n,
                       (long long)t->numel, w, need);
    if (st == KILN_OK && hd->fortran && t->rank > 1)
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: Fortran-order string arrays are not supported", path);
    if (st == KILN_OK)
        st = kiln_tensor_alloc_data(t);
    kiln_string *ss = st == KILN_OK ? t->data : NULL;
    char *buf = st == KILN_OK ? kiln_malloc((size_t)w * 4 + 1) : NULL;
    if (st == KILN_OK && !buf)
        st = KILN_ERR_NOMEM;
    for (int64_t i = 0; st == KILN_OK && i < t->numel; i++) {
        size_t len = 0;
        for (long k = 0; k < w; k++) {
            const unsigned char *p = data + ((size_t)i * (size_t)w + (size_t)k) * 4;
            uint32_t c = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            if (!c)
                break; /* numpy drops trailing NULs */
            if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
                st = kiln_fail(KILN_ERR_PARSE, "%s: string %lld holds an invalid code point", path, (long long)i);
                break;
            }
            len += utf8_put(c, buf + len);
        }
        if (st == KILN_OK) {
            ss[i].data = kiln_strndup(buf, len);
            ss[i].len = len;
            if (!ss[i].data)
                st = KILN_ERR_NOMEM;
        }
    }
    free(buf);
    if (st != KILN_OK) {
        kiln_tensor_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_npy_read(const char *path, kiln_tensor **out) {
    *out = NULL;
    kiln_buffer *map;
    KILN_TRY(kiln_map_file(path, &map));
    const unsigned char *d = map->ptr;
    size_t n = map->size;
    kiln_status st = KILN_OK;
    kiln_tensor *t = NULL;
    npy_header hd = {0};
    if (n < 10 || memcmp(d, "\x93NUMPY", 6) != 0) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    int major = d[6], minor = d[7];
    size_t hlen, hoff;
    if ((major == 1 || major == 2 || major == 3) && minor != 0) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: unsupported .npy version %d.%d", path, major, minor);
        goto done;
    }
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
    KILN_CHECK(st, parse_header(path, (const char *)d + hoff, hlen, major, &hd), done);
    const char *descr = hd.descr;
    char order = *descr;
    if (order == '<' || order == '|' || order == '=' || order == '>')
        descr++;
    else
        order = '|';
    if (order == '>') {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: big-endian arrays are not supported", path);
        goto done;
    }
    if (descr[0] == 'U') {
        st = read_unicode(path, descr, &hd, d + hoff + hlen, n - hoff - hlen, &t);
        if (st == KILN_OK) {
            *out = t;
            t = NULL;
        }
        goto done;
    }
    kiln_dtype dtype = KILN_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        if (strcmp(descr, npy_types[i].descr) == 0)
            dtype = npy_types[i].dtype;
    if (strcmp(descr, "?") == 0)
        dtype = KILN_DTYPE_BOOL;
    if (descr[0] == 'O' && (!descr[1] || (descr[1] == '8' && !descr[2]))) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: object arrays are not supported", path);
        goto done;
    }
    if (dtype == KILN_DTYPE_UNDEFINED) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "%s: unsupported dtype '%s'", path, hd.descr);
        goto done;
    }
    /* a multi-byte type with '|' (no byte order) is not what numpy writes */
    if (order == '|' && kiln_dtype_size(dtype) > 1 && hd.descr[0] == '|') {
        st = kiln_fail(KILN_ERR_PARSE, "%s: malformed .npy header: dtype '%s' has no byte order", path, hd.descr);
        goto done;
    }
    t = kiln_tensor_new();
    if (!t) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    st = kiln_tensor_init_shape(t, dtype, hd.rank, hd.dims);
    if (st != KILN_OK) {
        kiln_fail_prefix(st, "%s: ", path);
        goto done;
    }
    size_t data_off = hoff + hlen;
    if (n - data_off != t->nbytes) {
        st = kiln_fail(KILN_ERR_PARSE, "%s: file has %zu data bytes, shape %s of %s needs %zu", path, n - data_off,
                       kiln_dims_str(t->rank, t->dims, (char[256]){0}, 256), kiln_dtype_name(dtype), t->nbytes);
        goto done;
    }
    KILN_CHECK(st, kiln_tensor_alloc_data(t), done);
    if (t->nbytes && hd.fortran && t->rank > 1)
        fortran_to_c(d + data_off, t->data, t->rank, t->dims, kiln_dtype_size(dtype), t->numel);
    else if (t->nbytes)
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
    kiln_buffer_unref(map);
    return st;
}

typedef struct npy_write {
    const kiln_tensor *t;
    const char *path;
    size_t width; /* strings: code points per element */
} npy_write;

static kiln_status write_npy(void *ctx, int fd) {
    npy_write *w = ctx;
    const kiln_tensor *t = w->t;
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        if (npy_types[i].dtype == t->dtype)
            descr = npy_types[i].descr;
    char ustr[32];
    if (t->dtype == KILN_DTYPE_STRING) {
        snprintf(ustr, sizeof ustr, "U%zu", w->width);
        descr = ustr;
    }
    char dict[1024];
    int o = snprintf(dict, sizeof dict, "{'descr': '%s%s', 'fortran_order': False, 'shape': (",
                     t->dtype == KILN_DTYPE_BOOL ? "|" : (t->dtype != KILN_DTYPE_STRING && kiln_dtype_size(t->dtype) == 1 ? "|" : "<"),
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
    if (t->dtype != KILN_DTYPE_STRING)
        return kiln_write_all(fd, t->data, t->nbytes, w->path);
    /* each string as width UTF-32LE code points, NUL-padded */
    const kiln_string *ss = t->data;
    unsigned char *row = kiln_malloc(w->width * 4 + 4);
    if (!row)
        return KILN_ERR_NOMEM;
    kiln_status st = KILN_OK;
    for (int64_t i = 0; st == KILN_OK && i < t->numel; i++) {
        memset(row, 0, w->width * 4);
        size_t k = 0;
        for (size_t j = 0; j < ss[i].len;) {
            int64_t c = utf8_get((const unsigned char *)ss[i].data, ss[i].len, &j);
            row[4 * k] = (unsigned char)c;
            row[4 * k + 1] = (unsigned char)(c >> 8);
            row[4 * k + 2] = (unsigned char)(c >> 16);
            row[4 * k + 3] = 0;
            k++;
        }
        st = kiln_write_all(fd, row, w->width * 4, w->path);
    }
    free(row);
    return st;
}

kiln_status kiln_npy_write(const kiln_tensor *t, const char *path) {
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: .npy holds tensors, not a %s (use .pb)", path,
                         kiln_value_kind_name(t->kind));
    npy_write w = {t, path, 1};
    if (t->dtype == KILN_DTYPE_STRING) {
        /* fixed-width unicode: as wide as the longest string, every one valid UTF-8 */
        const kiln_string *ss = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            size_t cnt = 0;
            for (size_t j = 0; j < ss[i].len; cnt++)
                if (utf8_get((const unsigned char *)ss[i].data, ss[i].len, &j) < 0)
                    return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: string %lld is not valid UTF-8 (use .pb)", path,
                                     (long long)i);
            if (cnt > w.width)
                w.width = cnt;
        }
        return kiln_write_atomic(path, write_npy, &w);
    }
    bool known = false;
    for (size_t i = 0; i < sizeof npy_types / sizeof *npy_types; i++)
        known |= npy_types[i].dtype == t->dtype;
    /* numpy has no bfloat16, float8, 4-bit, 2-bit or 6-bit types (ml_dtypes' are not portable .npy) */
    if (!known)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: .npy cannot hold %s tensors (use .pb)", path,
                         kiln_dtype_name(t->dtype));
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
