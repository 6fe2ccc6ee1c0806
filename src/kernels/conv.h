/* Convolution and pooling geometry, im2col / col2im.
 *
 * A geometry maps an input image (spatial dims `in`) to an output image
 * (`out`) through a kernel (`k`) with strides, dilations and begin/end pads,
 * for 1..KILN_MAX_RANK-2 spatial dims. ConvTranspose uses the same geometry
 * seen from its output (the "input" of the matching forward conv).
 */
#ifndef KILN_CONV_H
#define KILN_CONV_H

#include "ir/ir.h"

#define KILN_CONV_MAX_SP (KILN_MAX_RANK - 2)
/* Bound on every spatial size, kernel size, stride, dilation and pad, so
 * that the geometry's sums of products stay far from int64 overflow. */
#define KILN_CONV_MAX_DIM ((int64_t)1 << 30)

typedef enum kiln_autopad {
    KILN_AUTOPAD_NOTSET = 0,
    KILN_AUTOPAD_SAME_UPPER,
    KILN_AUTOPAD_SAME_LOWER,
    KILN_AUTOPAD_VALID
} kiln_autopad;

typedef struct kiln_conv_geom {
    int nsp; /* spatial rank */
    int64_t in[KILN_CONV_MAX_SP], out[KILN_CONV_MAX_SP], k[KILN_CONV_MAX_SP];
    int64_t stride[KILN_CONV_MAX_SP], dil[KILN_CONV_MAX_SP];
    int64_t pb[KILN_CONV_MAX_SP], pe[KILN_CONV_MAX_SP]; /* begin / end pads */
    int64_t in_size, out_size, k_size;                 /* spatial products */
    kiln_autopad autopad;
} kiln_conv_geom;

/* Forward (Conv / pool) output shape from g->in, g->k and the attributes read
 * by kiln_conv_read_attrs (ops/conv_attrs.h); resolves auto_pad into pb/pe. ceil_mode: pools. */
kiln_status kiln_conv_forward_shape(kiln_conv_geom *g, bool ceil_mode);

/* Fills sizes (in_size, out_size, k_size) with overflow checks. */
kiln_status kiln_conv_sizes(kiln_conv_geom *g);

/* col[(c * k_size + kk) * cnt + i] = x[c][window of output position o0 + i,
 * kernel offset kk] (0 in the padding), for c < channels. */
void kiln_im2col(const kiln_conv_geom *g, const float *x, int64_t channels, int64_t o0, int64_t cnt, float *col);
void kiln_im2col_f64(const kiln_conv_geom *g, const double *x, int64_t channels, int64_t o0, int64_t cnt,
                     double *col);
/* The adjoint: y[c][...] += col[...] (scatter-add), same layout. */
void kiln_col2im(const kiln_conv_geom *g, const float *col, int64_t channels, int64_t o0, int64_t cnt, float *y);

/* Direct depthwise conv for nsp <= 2: one output channel of one image,
 * y = bias + sum over the window of x * w (x: one input channel). The
 * vectorised float32 kernel is kernels/depthwise.h; this is its fallback
 * for planes too large for its scratch. */
void kiln_conv_depthwise(const kiln_conv_geom *g, const float *x, const float *w, float bias, float *y);
void kiln_conv_depthwise_f64(const kiln_conv_geom *g, const double *x, const double *w, double bias, double *y);

/* For float16/float64 convolutions run in float32: one scratch block holding
 * X, W, B (NULL allowed) widened to float32 and room for Y (y_numel);
 * parts[] point at the four pieces. free(*scratch) afterwards. */
kiln_status kiln_conv_widen(const kiln_tensor *x, const kiln_tensor *w, const kiln_tensor *b, int64_t y_numel,
                            const char *what, float **scratch, float *parts[4]);
/* Narrows a float32 result into y (float16 or float64). */
void kiln_conv_narrow(const float *src, kiln_tensor *y);

#endif
