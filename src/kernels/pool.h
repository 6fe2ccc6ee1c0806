/* Global pooling of float32 planes: the mean or the maximum of each of
 * `planes` contiguous runs of n elements (GlobalAveragePool / GlobalMaxPool
 * over NCHW, ReduceMean / ReduceMax over trailing axes).
 *
 * One pass per plane with vector accumulators. Sums are blocked: each block
 * of KILN_GPOOL_BLOCK elements is summed in float32 across many lanes, the
 * block sums in double, so the error stays near float32 rounding of the
 * result even on large planes; a block whose float32 sum is not finite
 * (overflow, or an inf or NaN in it) is summed again in double. Max returns
 * NaN when the plane holds one. AVX-512 and AVX2 variants are picked at run time beside the portable one.
 */
#ifndef KILN_KERNELS_POOL_H
#define KILN_KERNELS_POOL_H

#include <stdint.h>

#include "kernels/isa.h"
#include "kernels/par.h"

#define KILN_GPOOL_BLOCK 1024

typedef enum kiln_gpool_op { KILN_GPOOL_AVG, KILN_GPOOL_MAX } kiln_gpool_op;

/* y[p] = mean / max of x[p * n .. (p + 1) * n) for p < planes; n >= 1.
 * Planes are split over the pool's threads only when there is enough work. */
void kiln_global_pool_f32(kiln_gpool_op op, const float *x, int64_t planes, int64_t n, float *y,
                          kiln_threads *pool);
/* The same with the best available instruction set no wider than `isa`. */
void kiln_global_pool_f32_isa(kiln_gpool_op op, const float *x, int64_t planes, int64_t n, float *y,
                              kiln_threads *pool, kiln_isa isa);

#endif
