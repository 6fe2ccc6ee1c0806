/* Vectorisable float32 exp, sigmoid, tanh and erf (see elementwise_math.h).
 *
 * exp: x = k*ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness),
 * e^r by its degree-7 Taylor polynomial, 2^k applied in two halves so
 * subnormal results and overflow to inf come out right.
 * tanh: odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above.
 * erf: x*P(x^2) below 1, 1 - e^{-x^2}*Q(x) up to 3.93, 1 beyond.
 * log: exponent and mantissa split, atanh series; softplus and mish build
 * on exp, log and tanh.
 * The polynomial coefficients are least-squares fits on Chebyshev nodes
 * made for kiln.
 *
 * Both branches of each select are computed; GCC if-converts (hence
 * vectorises) such loops only when it may assume no floating-point traps,
 * which kiln never enables. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "kernels/elementwise_math.h"
#include "kernels/vmath.h"

#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#define VBLOCK 64

static inline float exp1(float x) {
    /* -inf (masked scores) takes exp(0)'s path: no underflowing
     * multiplications, whose subnormal results are slow on many CPUs */
    float res = exp_core(x == -INFINITY ? 0.0f : x);
    res = x == -INFINITY ? 0.0f : res;
    return x != x ? x : res;
}

static inline float tanh1(float x) {
    float a = fabsf(x);
    float small = tanh_small(a);
    float ac = a > 9.0f ? 9.0f : a;
    float e = exp_core(2.0f * ac);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float t = a < 0.625f ? small : big;
    return x != x ? x : with_sign(t, x);
}

static inline float erf1(float x) {
    float a = fabsf(x);
    float x2 = a * a;
    float p = 7.933485982088155e-05f;
    p = p * x2 - 0.0008034843975432549f;
    p = p * x2 + 0.005191218026163552f;
    p = p * x2 - 0.02685539922783114f;
    p = p * x2 + 0.11283625717990328f;
    p = p * x2 - 0.376126298766823f;
    p = p * x2 + 1.1283791665927296f;
    float small = a * p;
    float ac = a > 3.93f ? 3.93f : a;
    float q = 1.8145673851501623e-06f;
    q = q * ac - 5.1619102209705335e-05f;
    q = q * ac + 0.0006647501536833219f;
    q = q * ac - 0.005137167468689678f;
    q = q * ac + 0.02664821554363138f;
    q = q * ac - 0.09845719271164885f;
    q = q * ac + 0.26874708151325893f;
    q = q * ac - 0.5556526486170701f;
    q = q * ac + 0.8846938063577128f;
    q = q * ac - 1.0871415383548764f;
    q = q * ac + 0.9932680370410027f;
    float big = 1.0f - exp_core(-(ac * ac)) * q;
    float t = a < 1.0f ? small : big;
    return x != x ? x : with_sign(t, x);
}

static inline float sigmoid1(float x) { return 1.0f / (1.0f + exp1(-x)); }

/* e^x - 1: Taylor polynomial to x^8 for |x| < ln2/2 (no cancellation),
 * exp(x) - 1 elsewhere. */
static inline float expm1_1(float x) {
    float p = 1.0f / 40320.0f;
    p = p * x + 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    float small = x + x * x * p;
    float big = exp1(x) - 1.0f;
    return fabsf(x) < 0.3465736f ? small : big;
}

static inline float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* log: x = 2^e * m with m in [sqrt(1/2), sqrt(2)); log(m) = 2*atanh(s) with
 * s = (m-1)/(m+1), |s| < 0.172, by its odd series to s^11. */
/* log of a positive normal x */
static inline float log_norm(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127;
    float m = bits_float((u & 0x7fffffu) | 0x3f800000u);
    /* every arm is computed before the selects so they become blends */
    float half = m * 0.5f;
    bool hi = m > 1.41421356f;
    m = hi ? half : m;
    int32_t e1 = e + 1;
    e = hi ? e1 : e;
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    float ef = (float)e;
    return ef * 0.693145751953125f + (2.0f * s * p + ef * 1.42860682030941723212e-6f);
}

/* log of a positive finite x; subnormals are scaled by 2^23 first */
static inline float log_core(float x) {
    float scaled = x * 8388608.0f;
    bool sub = x < 1.17549435e-38f;
    float r = log_norm(sub ? scaled : x);
    float rs = r - 15.9423851528787f; /* 23 * ln 2 */
    return sub ? rs : r;
}

/* log's special inputs, decided on the bits: inf and NaN give themselves,
 * +-0 gives -inf, negatives give NaN. (A separate pass: merged into
 * log_core's loop, GCC 12 no longer vectorises it.) */
static inline float log_fix(float x, float r) {
    uint32_t ux, ur;
    memcpy(&ux, &x, sizeof ux);
    memcpy(&ur, &r, sizeof ur);
    uint32_t ax = ux & 0x7fffffffu;
    ur = ax >= 0x7f800000u ? ux : ur;
    ur = ax == 0 ? 0xff800000u : ur;
    ur = ((ux >> 31) & (ax != 0)) ? 0x7fc00000u : ur;
    return bits_float(ur);
}

/* log(1 + u) for u >= 0, accurate for tiny u: w = 1 + u rounds, and the
 * first-order correction (u - (w - 1)) / w puts back what was lost (all of u
 * when w rounds to 1). */
static inline float log1p_pos(float u) {
    float w = 1.0f + u;
    return log_norm(w) + (u - (w - 1.0f)) / w;
}

/* softplus(x) = max(x, 0) + log(1 + e^{-|x|}) never overflows; run in
 * stages over a block (one fused loop is too much for GCC 12's vectoriser). */
KILN_CLONES static void softplus_block(const float *restrict xb, float *restrict buf) {
    for (int i = 0; i < VBLOCK; i++)
        buf[i] = exp1(-fabsf(xb[i]));
    for (int i = 0; i < VBLOCK; i++)
        buf[i] = log1p_pos(buf[i]);
    for (int i = 0; i < VBLOCK; i++) {
        float x = xb[i], pos = x > 0.0f ? x : 0.0f, sp = pos + buf[i];
        buf[i] = x != x ? x : sp;
    }
}

/* mish(x) = x * tanh(softplus(x)); 0 at -inf */
KILN_CLONES static void mish_block(const float *restrict xb, float *restrict buf) {
    softplus_block(xb, buf);
    for (int i = 0; i < VBLOCK; i++)
        buf[i] = tanh1(buf[i]);
    for (int i = 0; i < VBLOCK; i++) {
        float x = xb[i], m = x * buf[i];
        buf[i] = x == -INFINITY ? -0.0f : m;
    }
}

/* The public entry points call static multi-versioned copies (KILN_CLONES):
 * an exported function's resolver would be exported too. */

/* Runs F over x in blocks of VBLOCK through a local buffer: fixed trip counts
 * and no aliasing let the compiler vectorise the block loop. */
#define VAPPLY(F)                                                      \
    do {                                                               \
        float buf[VBLOCK];                                             \
        size_t k = 0;                                                  \
        for (; k + VBLOCK <= n; k += VBLOCK) {                         \
            memcpy(buf, x + k, VBLOCK * sizeof(float));                \
            for (int i = 0; i < VBLOCK; i++)                           \
                buf[i] = F(buf[i]);                                    \
            memcpy(y + k, buf, VBLOCK * sizeof(float));                \
        }                                                              \
        /* the rest in blocks of 16 (short rows: softmax over 16 keys) */ \
        for (; k < n; k += 16) {                                       \
            size_t m = n - k < 16 ? n - k : 16;                        \
            memcpy(buf, x + k, m * sizeof(float));                     \
            if (m < 16)                                                \
                memset(buf + m, 0, (16 - m) * sizeof(float));          \
            for (int i = 0; i < 16; i++)                               \
                buf[i] = F(buf[i]);                                    \
            memcpy(y + k, buf, m * sizeof(float));                     \
        }                                                              \
    } while (0)

KILN_CLONES static void vexp_impl(const float *x, float *y, size_t n) { VAPPLY(exp1); }
void kiln_vexp_f32(const float *x, float *y, size_t n) { vexp_impl(x, y, n); }
KILN_CLONES static void vsigmoid_impl(const float *x, float *y, size_t n) { VAPPLY(sigmoid1); }
void kiln_vsigmoid_f32(const float *x, float *y, size_t n) { vsigmoid_impl(x, y, n); }
KILN_CLONES static void vtanh_impl(const float *x, float *y, size_t n) { VAPPLY(tanh1); }
void kiln_vtanh_f32(const float *x, float *y, size_t n) { vtanh_impl(x, y, n); }
KILN_CLONES static void verf_impl(const float *x, float *y, size_t n) { VAPPLY(erf1); }
void kiln_verf_f32(const float *x, float *y, size_t n) { verf_impl(x, y, n); }
KILN_CLONES static void vexpm1_impl(const float *x, float *y, size_t n) { VAPPLY(expm1_1); }
void kiln_vexpm1_f32(const float *x, float *y, size_t n) { vexpm1_impl(x, y, n); }
/* Like VAPPLY for kernels made of several passes over a block. */
static void vapply_block(const float *x, float *y, size_t n,
                         void (*block)(const float *restrict xb, float *restrict buf)) {
    float buf[VBLOCK], xb[VBLOCK];
    for (size_t k = 0; k < n; k += VBLOCK) {
        size_t m = n - k < VBLOCK ? n - k : VBLOCK;
        memcpy(xb, x + k, m * sizeof(float));
        if (m < VBLOCK)
            memset(xb + m, 0, (VBLOCK - m) * sizeof(float));
        block(xb, buf);
        memcpy(y + k, buf, m * sizeof(float));
    }
}

KILN_CLONES static void log_block(const float *restrict xb, float *restrict buf) {
    for (int i = 0; i < VBLOCK; i++)
        buf[i] = log_core(xb[i]);
    for (int i = 0; i < VBLOCK; i++)
        buf[i] = log_fix(xb[i], buf[i]);
}

void kiln_vlog_f32(const float *x, float *y, size_t n) { vapply_block(x, y, n, log_block); }
void kiln_vsoftplus_f32(const float *x, float *y, size_t n) { vapply_block(x, y, n, softplus_block); }
void kiln_vmish_f32(const float *x, float *y, size_t n) { vapply_block(x, y, n, mish_block); }

/* sqrtf keeps a scalar errno path, so the compiler never vectorises it:
 * the vector square roots are spelled out (IEEE exact, same results). */
KILN_CLONES static void vsqrt_impl(const float *x, float *y, size_t n) {
    size_t i = 0;
#if defined(__AVX__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__SSE2__)
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(y + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        y[i] = sqrtf(x[i]);
}
void kiln_vsqrt_f32(const float *x, float *y, size_t n) { vsqrt_impl(x, y, n); }
