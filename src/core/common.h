/* Shared internals: error reporting, checked arithmetic, small helpers. */
#ifndef KILN_COMMON_H
#define KILN_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* Forgets the last error message (after a failure that was handled). */
void kiln_clear_error(void);
/* Sets the thread's error message and returns `code`. */
kiln_status kiln_fail(kiln_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends context ("node 'x' (Conv): ") to the current message; returns `code`. */
kiln_status kiln_fail_prefix(kiln_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define KILN_TRY(expr)                       \
    do {                                     \
        kiln_status kiln_try_s_ = (expr);    \
        if (kiln_try_s_ != KILN_OK)          \
            return kiln_try_s_;              \
    } while (0)

/* Like KILN_TRY but jumps to a cleanup label with `st` set. */
#define KILN_CHECK(st, expr, label) \
    do {                            \
        (st) = (expr);              \
        if ((st) != KILN_OK)        \
            goto label;             \
    } while (0)

static inline bool kiln_mul_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool kiln_mul_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

/* Product of dims with overflow and negativity checks. */
kiln_status kiln_dims_numel(int rank, const int64_t *dims, int64_t *out);

/* Allocation that reports failure through kiln_fail. */
void *kiln_malloc(size_t n);
void *kiln_calloc(size_t n, size_t size);
void *kiln_realloc(void *p, size_t n);
char *kiln_strdup(const char *s);
char *kiln_strndup(const char *s, size_t n);
void *kiln_aligned_alloc(size_t n); /* 64-byte aligned, free with free() */

/* Growable byte string for building text. */
typedef struct kiln_sbuf {
    char *data;
    size_t len, cap;
    bool failed;
} kiln_sbuf;
void kiln_sbuf_printf(kiln_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln_sbuf_append(kiln_sbuf *b, const char *s, size_t n);
void kiln_sbuf_json_string(kiln_sbuf *b, const char *s);

/* IEEE half <-> float. */
float kiln_half_to_float(uint16_t h);
uint16_t kiln_float_to_half(float f);
float kiln_bf16_to_float(uint16_t h);
uint16_t kiln_float_to_bf16(float f);

/* Writes `n` bytes produced by `fill` into `path` atomically: a temporary in
 * the same folder, fsync'd, renamed into place. */
typedef kiln_status (*kiln_write_fn)(void *ctx, int fd);
kiln_status kiln_write_atomic(const char *path, kiln_write_fn fill, void *ctx);
kiln_status kiln_write_all(int fd, const void *data, size_t n, const char *path);

#endif
