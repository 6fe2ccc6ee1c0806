/* Error state, allocation, string building, float16, atomic file writes. */
#define _GNU_SOURCE
#include "core/common.h"

#include <math.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Thread_local char err_buf[2048];

const char *kiln_last_error(void) { return err_buf; }

void kiln_clear_error(void) { err_buf[0] = 0; }

const char *kiln_status_name(kiln_status s) {
    switch (s) {
    case KILN_OK: return "ok";
    case KILN_ERR_IO: return "i/o error";
    case KILN_ERR_PARSE: return "parse error";
    case KILN_ERR_INVALID: return "invalid";
    case KILN_ERR_ARG: return "bad argument";
    case KILN_ERR_UNSUPPORTED: return "unsupported";
    case KILN_ERR_NOMEM: return "out of memory";
    case KILN_ERR_LIMIT: return "limit exceeded";
    case KILN_ERR_RUNTIME: return "runtime error";
    case KILN_ERR_MISMATCH: return "mismatch";
    }
    return "unknown status";
}

kiln_status kiln_fail(kiln_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

kiln_status kiln_fail_prefix(kiln_status code, const char *fmt, ...) {
    char prefix[512], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t pl = strlen(prefix);
    if (pl >= sizeof err_buf)
        pl = sizeof err_buf - 1;
    memcpy(err_buf, prefix, pl);
    size_t ol = strnlen(old, sizeof old - 1);
    if (ol > sizeof err_buf - 1 - pl)
        ol = sizeof err_buf - 1 - pl;
    memcpy(err_buf + pl, old, ol);
    err_buf[pl + ol] = 0;
    return code;
}

kiln_status kiln_dims_numel(int rank, const int64_t *dims, int64_t *out) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return kiln_fail(KILN_ERR_INVALID, "negative dimension %lld at axis %d",
                             (long long)dims[i], i);
        if (kiln_mul_overflow_i64(n, dims[i], &n))
            return kiln_fail(KILN_ERR_LIMIT, "tensor dimensions overflow int64 when multiplied");
    }
    *out = n;
    return KILN_OK;
}

void *kiln_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *kiln_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *kiln_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return q;
}

char *kiln_strdup(const char *s) { return kiln_strndup(s ? s : "", strlen(s ? s : "")); }

char *kiln_strndup(const char *s, size_t n) {
    char *p = kiln_malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *kiln_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        kiln_fail(KILN_ERR_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    return p;
}

void kiln_sbuf_append(kiln_sbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void kiln_sbuf_printf(kiln_sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        kiln_sbuf_append(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    kiln_sbuf_append(b, big, (size_t)n);
    free(big);
}

void kiln_sbuf_json_string(kiln_sbuf *b, const char *s) {
    kiln_sbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            kiln_sbuf_append(b, e, 2);
        } else if (*p < 0x20) {
            kiln_sbuf_printf(b, "\\u%04x", *p);
        } else {
            kiln_sbuf_append(b, (const char *)p, 1);
        }
    }
    kiln_sbuf_append(b, "\"", 1);
}

float kiln_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* subnormal half or zero */
        if (absx < 0x33000000u)
            return (uint16_t)sign;
        uint32_t man = (absx & 0x7fffff) | 0x800000;
        int shift = 113 - (int)(absx >> 23) + 13; /* 126-14 ... */
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++;
    return (uint16_t)(sign | half);
}

float kiln_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln_float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);
    uint32_t rounding = 0x7fff + ((x >> 16) & 1);
    return (uint16_t)((x + rounding) >> 16);
}

/* ---- minifloats ---- */

typedef enum mf_kind {
    MF_IEEE, /* exponent all ones: inf (mantissa 0) or NaN */
    MF_FN,   /* only S.1111.111 is NaN; no inf */
    MF_FNUZ, /* only 0x80 (-0) is NaN; no inf, no -0 */
    MF_NONE  /* every code is a finite number */
} mf_kind;

typedef struct mf_format {
    int ebits, mbits, bias;
    mf_kind kind;
    uint8_t maxcode; /* magnitude code of the largest finite value */
} mf_format;

static const mf_format *mf_get(kiln_dtype dt) {
    static const mf_format e4m3fn = {4, 3, 7, MF_FN, 0x7e}, e4m3fnuz = {4, 3, 8, MF_FNUZ, 0x7f},
                           e5m2 = {5, 2, 15, MF_IEEE, 0x7b}, e5m2fnuz = {5, 2, 16, MF_FNUZ, 0x7f},
                           e2m1 = {2, 1, 1, MF_NONE, 0x7}, e2m3 = {2, 3, 1, MF_NONE, 0x1f},
                           e3m2 = {3, 2, 3, MF_NONE, 0x1f};
    switch (dt) {
    case KILN_DTYPE_FLOAT8E4M3FN: return &e4m3fn;
    case KILN_DTYPE_FLOAT8E4M3FNUZ: return &e4m3fnuz;
    case KILN_DTYPE_FLOAT8E5M2: return &e5m2;
    case KILN_DTYPE_FLOAT8E5M2FNUZ: return &e5m2fnuz;
    case KILN_DTYPE_FLOAT4E2M1: return &e2m1;
    case KILN_DTYPE_FLOAT6E2M3: return &e2m3;
    case KILN_DTYPE_FLOAT6E3M2: return &e3m2;
    default: return NULL;
    }
}

bool kiln_is_minifloat(kiln_dtype dt) {
    return mf_get(dt) != NULL || dt == KILN_DTYPE_FLOAT8E8M0;
}

float kiln_minifloat_to_float(kiln_dtype dt, uint8_t code) {
    if (dt == KILN_DTYPE_FLOAT8E8M0)
        return code == 0xff ? NAN : ldexpf(1.0f, (int)code - 127);
    const mf_format *f = mf_get(dt);
    if (!f)
        return 0.0f;
    int width = f->ebits + f->mbits;
    unsigned sign = (code >> width) & 1u, mag = code & ((1u << width) - 1);
    unsigned e = mag >> f->mbits, m = mag & ((1u << f->mbits) - 1);
    switch (f->kind) {
    case MF_FNUZ:
        if (sign && mag == 0)
            return NAN;
        break;
    case MF_FN:
        if (mag == (1u << width) - 1)
            return sign ? -NAN : NAN;
        break;
    case MF_IEEE:
        if (e == (1u << f->ebits) - 1)
            return m ? (sign ? -NAN : NAN) : (sign ? -INFINITY : INFINITY);
        break;
    case MF_NONE: break;
    }
    float v = e == 0 ? ldexpf((float)m, 1 - f->bias - f->mbits)
                     : ldexpf((float)(m | (1u << f->mbits)), (int)e - f->bias - f->mbits);
    return sign ? -v : v;
}

uint8_t kiln_float_to_minifloat(kiln_dtype dt, double v, bool saturate) {
    if (dt == KILN_DTYPE_FLOAT8E8M0)
        return kiln_float_to_e8m0((float)v, saturate, KILN_ROUND_UP);
    const mf_format *f = mf_get(dt);
    if (!f)
        return 0;
    int width = f->ebits + f->mbits;
    uint64_t b;
    memcpy(&b, &v, 8);
    unsigned sign = (unsigned)(b >> 63);
    uint8_t signcode = (uint8_t)(sign << width);
    uint64_t a = b & ~(1ull << 63);
    uint8_t nan = f->kind == MF_FN     ? (uint8_t)(0x7f | signcode)
                  : f->kind == MF_IEEE ? (uint8_t)(0x7e | signcode)
                  : f->kind == MF_FNUZ ? 0x80
                                       : (uint8_t)(sign ? 0 : 1u << width);
    uint8_t over = saturate || f->kind == MF_NONE ? (uint8_t)(f->maxcode | signcode)
                   : f->kind == MF_IEEE            ? (uint8_t)(0x7c | signcode)
                                                   : nan;
    if (a > 0x7ff0000000000000ull)
        return nan;
    if (a == 0x7ff0000000000000ull)
        return over;
    int e64 = (int)(a >> 52);
    uint64_t m64 = a & ((1ull << 52) - 1);
    if (e64 == 0) /* zero or a double subnormal: far below every minifloat */
        return f->kind == MF_FNUZ ? 0 : signcode;
    int ue = e64 - 1023, emin = 1 - f->bias;
    uint64_t code, rem, half;
    if (ue >= emin) {
        int shift = 52 - f->mbits;
        code = ((uint64_t)(ue + f->bias) << f->mbits) | (m64 >> shift);
        rem = m64 & ((1ull << shift) - 1);
        half = 1ull << (shift - 1);
    } else {
        int shift = 52 - f->mbits + (emin - ue);
        if (shift >= 54) {
            code = 0;
            rem = 0;
            half = 1;
        } else {
            uint64_t full = m64 | (1ull << 52);
            code = full >> shift;
            rem = full & ((1ull << shift) - 1);
            half = 1ull << (shift - 1);
        }
    }
    if (rem > half || (rem == half && (code & 1)))
        code++; /* a carry out of the mantissa moves to the next exponent */
    if (code > f->maxcode)
        return over;
    if (code == 0 && f->kind == MF_FNUZ)
        return 0;
    return (uint8_t)(code | signcode);
}

uint8_t kiln_float_to_e8m0(float v, bool saturate, kiln_round_mode mode) {
    uint32_t x;
    memcpy(&x, &v, 4);
    unsigned e = (x >> 23) & 0xff;
    if (e == 0xff)
        return 0xff;
    bool up = false;
    if (mode == KILN_ROUND_UP) {
        up = (x & 0x7fffff) != 0;
    } else if (mode == KILN_ROUND_NEAREST) {
        /* guard, round and sticky bits as onnx.numpy_helper.to_float8e8m0 reads them */
        bool g = x & 0x400000, r = x & 0x200000, s = x & 0x1fffff, lsb = e > 0;
        up = g && (r || s || lsb);
    }
    if (up && !(saturate && e == 0xfe))
        e++;
    return (uint8_t)e;
}

kiln_status kiln_write_all(int fd, const void *data, size_t n, const char *path) {
    const char *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return kiln_fail(KILN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return KILN_OK;
}

kiln_status kiln_write_atomic(const char *path, kiln_write_fn fill, void *ctx) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp)
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    snprintf(tmp, len + 32, "%s.kiln-tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        kiln_status st = kiln_fail(KILN_ERR_IO, "%s: cannot create output file: %s", path,
                                   strerror(errno));
        free(tmp);
        return st;
    }
    kiln_status st = fill(ctx, fd);
    if (st == KILN_OK && fsync(fd) != 0 && errno != EINVAL)
        st = kiln_fail(KILN_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && st == KILN_OK)
        st = kiln_fail(KILN_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (st == KILN_OK) {
        /* mkstemp makes 0600; give the file the usual permissions. */
        mode_t mask = umask(0);
        umask(mask);
        chmod(tmp, 0666 & ~mask);
        if (rename(tmp, path) != 0)
            st = kiln_fail(KILN_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    }
    if (st != KILN_OK)
        unlink(tmp);
    free(tmp);
    return st;
}
