/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for float32 2-D 3x3 convs with stride 1,
 * dilation 1 and one group: the filter is transformed once (per session when
 * the weights are constant, else per call), input
 * tiles are transformed into 16 (36) matrices, as many GEMMs (kernels/sgemm.h)
 * multiply them, and the
 * output transform applies the bias and the fused clamp.
 */
#ifndef KILN_WINOGRAD_H
#define KILN_WINOGRAD_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "ir/ir.h"
#include "kernels/par.h"

/* Whether the Winograd path applies to (and should win on) this geometry. */
bool kiln_winograd_suits(const kiln_conv_geom *g, int64_t C, int64_t M, int64_t groups);

/* Whether the F(4x4, 3x3) form is used for geometry g with C input
 * channels (else F(2x2, 3x3)). */
bool kiln_winograd_f4(const kiln_conv_geom *g, int64_t C);
/* Floats of the transformed filters U for M x C 3x3 filters: one M x C
 * matrix per transformed position, each packed for kiln_sgemm_packed_a. */
kiln_status kiln_winograd_filter_size(int64_t C, int64_t M, bool f4, size_t *floats);
/* U = the transformed, packed filters of w [M, C, 3, 3]
 * (kiln_winograd_filter_size floats), for preparing once what every call
 * would otherwise redo. */
kiln_status kiln_winograd_filter(kiln_threads *pool, int64_t C, int64_t M, bool f4, const float *w, float *U);

/* y [N, M, OH, OW] = conv(x [N, C, H, W], w [M, C, 3, 3]) + b (b may be
 * NULL), clamped to [lo, hi] when clamp. g must satisfy kiln_winograd_suits.
 * U: w already transformed by kiln_winograd_filter for kiln_winograd_f4(g,
 * C), or NULL to transform w here. */
kiln_status kiln_winograd_conv(kiln_threads *pool, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M,
                               const float *x, const float *w, const float *U, const float *b, float *y, bool clamp,
                               float lo, float hi);

#endif
