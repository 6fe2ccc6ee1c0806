/* Vectorisable float32 exp, sigmoid, tanh and erf (see elementwise_math.h).
 *
 * exp: x = k*ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness),
 * e^r by its degree-7 Taylor polynomial, 2^k applied in two halves so
 * subnormal results and overflow to inf come out right.
 * tanh: odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above.
 * erf: x*P(x^2) below 1, 1 - e^{-x^2}*Q(x) up to 3.93, 1 beyond.
 * The polynomial coefficients are least-squares fits on Chebyshev nodes
 * made for kiln. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/elementwise_math.h"

#define VBLOCK 64

static inline float pow2i(int32_t k) {
    int32_t bits = (k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float exp1(float x) {
    float xc = x != x ? 0.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    xc = xc > 89.0f ? 89.0f : xc;
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
    float res = p * pow2i(k1) * pow2i(ki - k1);
    return x != x ? x : res;
}

static inline float tanh1(float x) {
    float a = fabsf(x);
    float x2 = a * a;
    float p = 0.00231409096177431f;
    p = p * x2 - 0.008365784665034003f;
    p = p * x2 + 0.021776888235990118f;
    p = p * x2 - 0.05396048866972819f;
    p = p * x2 + 0.13333310740767218f;
    p = p * x2 - 0.33333333265257675f;
    float small = a + a * x2 * p;
    float ac = a > 9.0f ? 9.0f : a;
    float e = exp1(2.0f * ac);
    float big = 1.0f - 2.0f / (e + 1.0f);
    float t = a < 0.625f ? small : big;
    return copysignf(t, x);
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
    float big = 1.0f - exp1(-(ac * ac)) * q;
    float t = a < 1.0f ? small : big;
    return copysignf(t, x);
}

static inline float sigmoid1(float x) { return 1.0f / (1.0f + exp1(-x)); }

/* Runs F over x in blocks of VBLOCK through a local buffer: fixed trip counts
 * and no aliasing let the compiler vectorise the block loop. */
#define VAPPLY(F)                                                      \
    do {                                                               \
        float buf[VBLOCK];                                             \
        for (size_t k = 0; k < n; k += VBLOCK) {                       \
            size_t m = n - k < VBLOCK ? n - k : VBLOCK;                \
            memcpy(buf, x + k, m * sizeof(float));                     \
            if (m < VBLOCK)                                            \
                memset(buf + m, 0, (VBLOCK - m) * sizeof(float));      \
            for (int i = 0; i < VBLOCK; i++)                           \
                buf[i] = F(buf[i]);                                    \
            memcpy(y + k, buf, m * sizeof(float));                     \
        }                                                              \
    } while (0)

void kiln_vexp_f32(const float *x, float *y, size_t n) { VAPPLY(exp1); }
void kiln_vsigmoid_f32(const float *x, float *y, size_t n) { VAPPLY(sigmoid1); }
void kiln_vtanh_f32(const float *x, float *y, size_t n) { VAPPLY(tanh1); }
void kiln_verf_f32(const float *x, float *y, size_t n) { VAPPLY(erf1); }
