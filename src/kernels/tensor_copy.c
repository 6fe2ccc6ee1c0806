/* Shared helpers of the tensor/shape operators (see tensor_copy.h). */
#include "kernels/tensor_copy.h"

#include <stdlib.h>
#include <string.h>

size_t kiln_elem_size(kiln_dtype dt) { return dt == KILN_DTYPE_STRING ? sizeof(kiln_string) : kiln_dtype_size(dt); }

static bool is_int_dtype(kiln_dtype d) {
    switch (d) {
    case KILN_DTYPE_INT8: case KILN_DTYPE_INT16: case KILN_DTYPE_INT32: case KILN_DTYPE_INT64:
    case KILN_DTYPE_UINT8: case KILN_DTYPE_UINT16: case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64:
        return true;
    default:
        return false;
    }
}

kiln_status kiln_tensor_read_ints(const kiln_tensor *t, const char *what, int64_t *out, size_t max, size_t *n) {
    if (!is_int_dtype(t->dtype))
        return kiln_fail(KILN_ERR_INVALID, "%s must be an integer tensor, got %s", what, kiln_dtype_name(t->dtype));
    if (t->rank > 1) {
        char buf[64];
        return kiln_fail(KILN_ERR_INVALID, "%s must be 1-D, got shape %s", what,
                         kiln_dims_str(t->rank, t->dims, buf, sizeof buf));
    }
    if (t->numel < 0 || (uint64_t)t->numel > max)
        return kiln_fail(KILN_ERR_INVALID, "%s has %lld values, at most %zu allowed", what, (long long)t->numel, max);
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == KILN_DTYPE_UINT64 && ((const uint64_t *)t->data)[i] > (uint64_t)INT64_MAX)
            return kiln_fail(KILN_ERR_INVALID, "%s value %lld is out of range", what, (long long)i);
        out[i] = kiln_tensor_get_i64(t, i);
    }
    *n = (size_t)t->numel;
    return KILN_OK;
}

kiln_status kiln_check_shape(const char *what, int rank, const int64_t *dims) {
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "%s: rank %d exceeds kiln's limit of %d", what, rank, KILN_MAX_RANK);
    int64_t n = 1;
    bool zero = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return kiln_fail(KILN_ERR_INVALID, "%s: dimension %d is negative (%lld)", what, i, (long long)dims[i]);
        if (dims[i] == 0)
            zero = true;
    }
    for (int i = 0; i < rank && !zero; i++)
        if (kiln_mul_overflow_i64(n, dims[i], &n) || n > KILN_TENSOR_MAX_NUMEL) {
            char buf[256];
            return kiln_fail(KILN_ERR_LIMIT, "%s: shape %s has too many elements (limit %lld)", what,
                             kiln_dims_str(rank, dims, buf, sizeof buf), (long long)KILN_TENSOR_MAX_NUMEL);
        }
    return KILN_OK;
}

void kiln_dims_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dims[i] > 0 ? dims[i] : 1;
    }
}

typedef struct strided_job {
    char *dst;
    const char *src;
    size_t es;
    int rank; /* >= 1; the last dim is the row */
    int64_t dims[KILN_MAX_RANK];
    int64_t str[KILN_MAX_RANK];
} strided_job;

#define STRIDED_ROW(T)                                  \
    do {                                                \
        T *d = (T *)dp;                                 \
        const T *s = (const T *)sp;                     \
        for (int64_t k = 0; k < n; k++)                 \
            d[k] = s[k * st];                           \
    } while (0)

static void strided_range(void *arg, size_t begin, size_t end) {
    const strided_job *j = arg;
    int r = j->rank - 1; /* outer dims: 0..r-1 */
    int64_t idx[KILN_MAX_RANK];
    int64_t rem = (int64_t)begin, off = 0;
    for (int a = r - 1; a >= 0; a--) {
        idx[a] = rem % j->dims[a];
        rem /= j->dims[a];
        off += idx[a] * j->str[a];
    }
    int64_t n = j->dims[r], st = j->str[r];
    size_t es = j->es, row_bytes = (size_t)n * es;
    for (size_t row = begin; row < end; row++) {
        char *dp = j->dst + row * row_bytes;
        const char *sp = j->src + off * (int64_t)es;
        if (st == 1)
            memcpy(dp, sp, row_bytes);
        else if (es == 4 && ((uintptr_t)dp | (uintptr_t)sp) % 4 == 0)
            STRIDED_ROW(uint32_t);
        else if (es == 8 && ((uintptr_t)dp | (uintptr_t)sp) % 8 == 0)
            STRIDED_ROW(uint64_t);
        else if (es == 2 && ((uintptr_t)dp | (uintptr_t)sp) % 2 == 0)
            STRIDED_ROW(uint16_t);
        else if (es == 1)
            STRIDED_ROW(uint8_t);
        else
            for (int64_t k = 0; k < n; k++)
                memcpy(dp + (size_t)k * es, sp + k * st * (int64_t)es, es);
        /* advance the odometer over the outer dims */
        for (int a = r - 1; a >= 0; a--) {
            off += j->str[a];
            if (++idx[a] < j->dims[a])
                break;
            off -= j->str[a] * j->dims[a];
            idx[a] = 0;
        }
    }
}

/* Tiled path for transposes that move the input's contiguous axis (p) away
 * from the last position: copying TILE x TILE blocks keeps both the strided
 * reads and the contiguous writes in cache. */
#define TILE 8

typedef struct tile_job {
    char *dst;
    const char *src;
    size_t es;
    int rank, p;
    int64_t dims[KILN_MAX_RANK], str[KILN_MAX_RANK], dstr[KILN_MAX_RANK];
    int64_t tiles_p;
} tile_job;

/* within a tile the inner loop walks the source contiguously; tiles of 8
 * keep the strided side within one cache set's ways even for power-of-two
 * strides */
#define TILE_COPY(T)                                                     \
    do {                                                                 \
        T *d = (T *)dp;                                                  \
        const T *s = (const T *)sp;                                      \
        for (int64_t l0 = 0; l0 < nl; l0 += TILE) {                      \
            int64_t l1 = l0 + TILE < nl ? l0 + TILE : nl;                \
            for (int64_t l = l0; l < l1; l++)                            \
                for (int64_t i = p0; i < p1; i++)                        \
                    d[i * dsp + l] = s[i + l * ssl];                     \
        }                                                                \
    } while (0)

static void tile_range(void *arg, size_t begin, size_t end) {
    const tile_job *j = arg;
    int last = j->rank - 1;
    int64_t nl = j->dims[last], ssl = j->str[last], dsp = j->dstr[j->p];
    for (size_t w = begin; w < end; w++) {
        int64_t tp = (int64_t)w % j->tiles_p, o = (int64_t)w / j->tiles_p;
        int64_t soff = 0, doff = 0;
        for (int a = last - 1; a >= 0; a--) {
            if (a == j->p)
                continue;
            int64_t i = o % j->dims[a];
            o /= j->dims[a];
            soff += i * j->str[a];
            doff += i * j->dstr[a];
        }
        int64_t p0 = tp * TILE, p1 = p0 + TILE < j->dims[j->p] ? p0 + TILE : j->dims[j->p];
        char *dp = j->dst + doff * (int64_t)j->es;
        const char *sp = j->src + soff * (int64_t)j->es;
        switch (j->es) {
        case 1: TILE_COPY(uint8_t); break;
        case 2: TILE_COPY(uint16_t); break;
        case 4: TILE_COPY(uint32_t); break;
        default: TILE_COPY(uint64_t); break;
        }
    }
}

void kiln_strided_copy(kiln_threads *pool, void *dst, const void *src, size_t es, int rank, const int64_t *dims,
                       const int64_t *src_strides) {
    strided_job j = {.dst = dst, .src = src, .es = es, .rank = 0};
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 0)
            return;
        if (dims[i] == 1)
            continue;
        /* merge with the previous kept dim when the two walk memory as one */
        if (j.rank > 0 && j.str[j.rank - 1] == src_strides[i] * dims[i]) {
            j.dims[j.rank - 1] *= dims[i];
            j.str[j.rank - 1] = src_strides[i];
            continue;
        }
        j.dims[j.rank] = dims[i];
        j.str[j.rank] = src_strides[i];
        j.rank++;
    }
    if (j.rank == 0) {
        j.rank = 1;
        j.dims[0] = 1;
        j.str[0] = 1;
    }
    int last = j.rank - 1, p = -1;
    for (int i = 0; i < last; i++)
        if (j.str[i] == 1)
            p = i;
    bool aligned = ((uintptr_t)dst | (uintptr_t)src) % es == 0;
    if (p >= 0 && j.str[last] != 1 && j.dims[last] >= 128 && j.dims[p] >= 8 && aligned &&
        (es == 1 || es == 2 || es == 4 || es == 8)) {
        tile_job t = {.dst = dst, .src = src, .es = es, .rank = j.rank, .p = p};
        memcpy(t.dims, j.dims, sizeof t.dims);
        memcpy(t.str, j.str, sizeof t.str);
        kiln_dims_strides(j.rank, j.dims, t.dstr);
        t.tiles_p = (j.dims[p] + TILE - 1) / TILE;
        int64_t items = t.tiles_p;
        for (int i = 0; i < last; i++)
            if (i != p)
                items *= j.dims[i];
        size_t tile_bytes = (size_t)TILE * (size_t)j.dims[last] * es; /* per work item */
        size_t grain = tile_bytes >= 32768 ? 1 : 32768 / tile_bytes;
        if (pool && (size_t)items > grain)
            kiln_threads_run(pool, (size_t)items, grain, tile_range, &t);
        else
            tile_range(&t, 0, (size_t)items);
        return;
    }
    int64_t rows = 1;
    for (int i = 0; i < j.rank - 1; i++)
        rows *= j.dims[i];
    size_t row_bytes = (size_t)j.dims[j.rank - 1] * es;
    size_t grain = row_bytes >= 32768 ? 1 : 32768 / (row_bytes ? row_bytes : 1);
    if (pool && (size_t)rows > grain)
        kiln_threads_run(pool, (size_t)rows, grain, strided_range, &j);
    else
        strided_range(&j, 0, (size_t)rows);
}

kiln_status kiln_strings_own(kiln_tensor *t) {
    if (t->dtype != KILN_DTYPE_STRING)
        return KILN_OK;
    kiln_string *s = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        char *p = malloc(s[i].len + 1);
        if (!p) {
            /* the rest must not keep pointers they do not own */
            for (int64_t k = i; k < t->numel; k++) {
                s[k].data = NULL;
                s[k].len = 0;
            }
            return kiln_fail(KILN_ERR_NOMEM, "out of memory copying strings");
        }
        if (s[i].len)
            memcpy(p, s[i].data, s[i].len);
        p[s[i].len] = 0;
        s[i].data = p;
    }
    return KILN_OK;
}

kiln_status kiln_scalar_from_f64(kiln_dtype dt, double v, void *out) {
    /* float -> integer casts of out-of-range values are undefined in C */
    double iv = v != v ? 0 : v;
#define CLAMP_TO(T, lo, hi) (T)(iv <= (double)(lo) ? (lo) : iv >= (double)(hi) ? (hi) : (T)iv)
    switch (dt) {
    case KILN_DTYPE_FLOAT: *(float *)out = (float)v; break;
    case KILN_DTYPE_DOUBLE: *(double *)out = v; break;
    case KILN_DTYPE_FLOAT16: *(uint16_t *)out = kiln_float_to_half((float)v); break;
    case KILN_DTYPE_BFLOAT16: *(uint16_t *)out = kiln_float_to_bf16((float)v); break;
    case KILN_DTYPE_BOOL: *(uint8_t *)out = v != 0; break;
    case KILN_DTYPE_INT8: *(int8_t *)out = CLAMP_TO(int8_t, INT8_MIN, INT8_MAX); break;
    case KILN_DTYPE_INT16: *(int16_t *)out = CLAMP_TO(int16_t, INT16_MIN, INT16_MAX); break;
    case KILN_DTYPE_INT32: *(int32_t *)out = CLAMP_TO(int32_t, INT32_MIN, INT32_MAX); break;
    case KILN_DTYPE_INT64: *(int64_t *)out = CLAMP_TO(int64_t, INT64_MIN, INT64_MAX); break;
    case KILN_DTYPE_UINT8: *(uint8_t *)out = CLAMP_TO(uint8_t, 0, UINT8_MAX); break;
    case KILN_DTYPE_UINT16: *(uint16_t *)out = CLAMP_TO(uint16_t, 0, UINT16_MAX); break;
    case KILN_DTYPE_UINT32: *(uint32_t *)out = CLAMP_TO(uint32_t, 0, UINT32_MAX); break;
    case KILN_DTYPE_UINT64: *(uint64_t *)out = CLAMP_TO(uint64_t, 0, UINT64_MAX); break;
    default:
        return kiln_fail(KILN_ERR_UNSUPPORTED, "element type %s is not supported here", kiln_dtype_name(dt));
    }
#undef CLAMP_TO
    return KILN_OK;
}

void kiln_fill_elems(void *dst, const void *val, size_t es, int64_t n) {
    if (n <= 0)
        return;
    char *d = dst;
    bool zero = true;
    for (size_t i = 0; i < es; i++)
        if (((const char *)val)[i])
            zero = false;
    if (zero) {
        memset(d, 0, (size_t)n * es);
        return;
    }
    memcpy(d, val, es);
    /* doubling copies */
    size_t done = 1;
    while (done < (size_t)n) {
        size_t k = done < (size_t)n - done ? done : (size_t)n - done;
        memcpy(d + done * es, d, k * es);
        done += k;
    }
}
