/* Scalar float32 building blocks of kiln's vector maths, written branch-free
 * so loops over them vectorise (elementwise_math.c, rnn_cell.c). Files that
 * include this should allow GCC to assume no floating-point traps (see
 * elementwise_math.c) or the selects stay branches. */
#ifndef KILN_KERNELS_VMATH_H
#define KILN_KERNELS_VMATH_H

#include <stdint.h>
#include <string.h>

/* |t| with the sign of x, by bits: copysignf stops GCC from vectorising */
static inline float with_sign(float t, float x) {
    uint32_t tb, xb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&xb, &x, sizeof xb);
    tb = (tb & 0x7fffffffu) | (xb & 0x80000000u);
    memcpy(&t, &tb, sizeof t);
    return t;
}

static inline float pow2i(int32_t k) {
    int32_t bits = (k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* e^x for any x with no special cases: NaN and values below -104 give
 * e^-104, above 89 e^89 (the callers handle those), never undefined
 * conversions. */
static inline float exp_core(float x) {
    float xc = x >= -104.0f ? x : -104.0f; /* NaN too */
    xc = xc <= 89.0f ? xc : 89.0f;
    /* round to nearest through the 1.5*2^23 trick (no libm call) */
    float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - k * 0.693145751953125f;
    r = r - k * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t ki = (int32_t)k;
    int32_t k1 = ki / 2;
    return p * pow2i(k1) * pow2i(ki - k1);
}


/* tanh(a) for 0 <= a < 0.625: a + a^3 P(a^2), an odd least-squares fit. */
static inline float tanh_small(float a) {
    float x2 = a * a;
    float p = 0.00231409096177431f;
    p = p * x2 - 0.008365784665034003f;
    p = p * x2 + 0.021776888235990118f;
    p = p * x2 - 0.05396048866972819f;
    p = p * x2 + 0.13333310740767218f;
    p = p * x2 - 0.33333333265257675f;
    return a + a * x2 * p;
}

#endif
