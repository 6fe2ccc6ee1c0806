/* Depthwise convolution (float32, 1-D and 2-D): every output channel reads
 * one input channel (groups == C, M = C * multiplier), any kernel size,
 * stride, dilation and pads, with the bias and an optional clamp applied in
 * the same pass.
 *
 * Each input channel is copied once into a zero-bordered plane in scratch,
 * its rows split into `stride` phases (phase q holds padded columns
 * q, q + s, q + 2s, ...), so that for every kernel tap the inputs of
 * consecutive output columns are contiguous and full vectors load in bounds.
 * Output rows are then built in registers, a few rows and vectors at a time,
 * with one multiply-add per tap. AVX-512 and AVX2+FMA variants are picked at
 * run time; a portable C form always exists.
 */
#ifndef KILN_DEPTHWISE_H
#define KILN_DEPTHWISE_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "kernels/isa.h"
#include "kernels/par.h"

typedef struct kiln_dw_params {
    int64_t N;      /* images */
    int64_t C;      /* input channels (= groups) */
    int64_t M;      /* output channels, a multiple of C */
    bool clamp;     /* y = min(max(y, lo), hi); NaN passes through */
    float lo, hi;
    kiln_isa isa;   /* AUTO normally; tests force the others */
} kiln_dw_params;

/* Whether the kernel takes geometry g (1 or 2 spatial dims, a padded plane
 * of bounded size). */
bool kiln_depthwise_suits(const kiln_conv_geom *g);

/* Floats of scratch kiln_depthwise_f32 needs for this call on `pool` (one
 * padded plane per task); 0 when !kiln_depthwise_suits(g). */
int64_t kiln_depthwise_scratch(const kiln_conv_geom *g, const kiln_dw_params *p, const kiln_threads *pool);

/* y [N, M, out...] = depthwise conv of x [N, C, in...] with w [M, 1, k...]
 * plus b [M] (NULL: none), with the best available instruction set no
 * wider than p->isa. */
void kiln_depthwise_f32(const kiln_conv_geom *g, const kiln_dw_params *p, const float *x, const float *w,
                        const float *b, float *y, float *scratch, kiln_threads *pool);

#endif
