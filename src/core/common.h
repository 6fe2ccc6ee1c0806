/* Shared internals: error reporting, checked arithmetic, small helpers. */
#ifndef KILN_COMMON_H
#define KILN_COMMON_H

/* KILN_CLONES on a hot loop's function: compiled for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2, FMA) and the baseline, the copy for the running CPU
 * picked when the library loads (function multi-versioning), so one build
 * runs well on any x86-64. Off where the whole build targets its own machine
 * (KILN_NATIVE) or the target is not x86-64. Only on static functions: a
 * multi-versioned function's resolver keeps default visibility, so an
 * extern one would be exported from libkiln.so. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KILN_TSAN_BUILD 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define KILN_TSAN_BUILD 1
#endif
/* (ThreadSanitizer's runtime is not up yet when resolvers run at load.) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(KILN_NATIVE_BUILD) && !defined(KILN_TSAN_BUILD)
#define KILN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_CLONES
#endif

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

/* The 8-, 6- and 4-bit float types ("minifloats"): FLOAT8E4M3FN,
 * FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT4E2M1, FLOAT6E2M3,
 * FLOAT6E3M2 and FLOAT8E8M0, one code per byte (kiln.h). */
bool kiln_is_minifloat(kiln_dtype dt);
/* The value of a code: NaN for the NaN codes, +-inf for E5M2's infinities.
 * Bits above the type's width are ignored. */
float kiln_minifloat_to_float(kiln_dtype dt, uint8_t code);
/* The code nearest to v, ties to even, as ONNX's Cast defines it. With
 * `saturate`, infinities and values beyond the largest finite value give that
 * value with their sign; without, they give inf (E5M2) or NaN (the others).
 * NaN gives NaN. FLOAT4E2M1 and FLOAT6E* have neither inf nor NaN: they always
 * saturate, and NaN gives the code ONNX's reference (ml_dtypes) gives, -0 for
 * a positive NaN, +0 for a negative one. The FNUZ types have no -0: it gives
 * +0. FLOAT8E8M0 is kiln_float_to_e8m0((float)v, saturate, KILN_ROUND_UP). */
uint8_t kiln_float_to_minifloat(kiln_dtype dt, double v, bool saturate);

/* FLOAT8E8M0 codes hold an exponent only; Cast's round_mode. */
typedef enum kiln_round_mode { KILN_ROUND_UP, KILN_ROUND_DOWN, KILN_ROUND_NEAREST } kiln_round_mode;
/* v's float32 exponent rounded by `mode` (the sign is ignored; inf and NaN
 * give the NaN code 0xff); with `saturate` rounding never goes past 2^127,
 * without it rounds to NaN (onnx.numpy_helper.to_float8e8m0). */
uint8_t kiln_float_to_e8m0(float v, bool saturate, kiln_round_mode mode);

/* Writes `n` bytes produced by `fill` into `path` atomically: a temporary in
 * the same folder, fsync'd, renamed into place. */
typedef kiln_status (*kiln_write_fn)(void *ctx, int fd);
kiln_status kiln_write_atomic(const char *path, kiln_write_fn fill, void *ctx);
kiln_status kiln_write_all(int fd, const void *data, size_t n, const char *path);

#endif
