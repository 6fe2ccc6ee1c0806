/* Vectorisable float32 exp, expm1, sigmoid, tanh, erf, log, softplus and mish over
 * arrays.
 *
 * libm's expf/tanhf/erff are scalar calls; these kernels evaluate branch-free
 * polynomial forms on fixed blocks so the compiler turns them into SIMD code
 * at -O2. Accuracy is within a few float32 ulps (relative error below 3e-7
 * for exp/sigmoid/tanh/log/softplus, 2e-7 for erf). NaN propagates, +-inf saturate;
 * exp results below the smallest subnormal flush to 0. In-place (x == y) is
 * allowed. */
#ifndef KILN_ELEMENTWISE_MATH_H
#define KILN_ELEMENTWISE_MATH_H

#include <stddef.h>

void kiln_vexp_f32(const float *x, float *y, size_t n);
void kiln_vsigmoid_f32(const float *x, float *y, size_t n);
void kiln_vtanh_f32(const float *x, float *y, size_t n);
void kiln_verf_f32(const float *x, float *y, size_t n);
void kiln_vexpm1_f32(const float *x, float *y, size_t n);
void kiln_vsqrt_f32(const float *x, float *y, size_t n);
void kiln_vlog_f32(const float *x, float *y, size_t n);
void kiln_vsoftplus_f32(const float *x, float *y, size_t n);
void kiln_vmish_f32(const float *x, float *y, size_t n);

#endif
