/* Shared helpers of the tensor/shape operators: element sizes, reading
 * shape-like int64 lists from tensors with validation, a strided copy kernel
 * (Transpose, Slice, Expand, Tile, DepthToSpace ...) and string ownership
 * after a shallow element copy. */
#ifndef KILN_KERNELS_TENSOR_COPY_H
#define KILN_KERNELS_TENSOR_COPY_H

#include "ir/ir.h"
#include "kernels/par.h"

/* Largest element count any data-dependent output shape may have: far beyond
 * any real model, small enough that a hostile shape fails cleanly. */
#define KILN_TENSOR_MAX_NUMEL ((int64_t)1 << 40)

/* Bytes per element as stored in memory (kiln_string for STRING). */
size_t kiln_elem_size(kiln_dtype dt);

/* Reads a 0-D or 1-D integer tensor (int32/int64, other integers accepted)
 * into out[0..*n); fails when it has more than `max` values. `what` names
 * the input for messages. */
kiln_status kiln_tensor_read_ints(const kiln_tensor *t, const char *what, int64_t *out, size_t max, size_t *n);

/* Checks an output shape computed from data: no negative dims, element count
 * representable and below KILN_TENSOR_MAX_NUMEL. */
kiln_status kiln_check_shape(const char *what, int rank, const int64_t *dims);

/* Copies a strided view of `src` (element strides, may be 0 or negative;
 * src points at the view's first element) into contiguous `dst` of shape
 * dims. Elements are es bytes (shallow for strings: see kiln_strings_own).
 * Runs on the session's threads. */
void kiln_strided_copy(kiln_threads *pool, void *dst, const void *src, size_t es, int rank, const int64_t *dims,
                       const int64_t *src_strides);

/* Contiguous element strides of a shape. */
void kiln_dims_strides(int rank, const int64_t *dims, int64_t *strides);

/* After elements of a STRING tensor were copied shallowly (kiln_string
 * structs pointing into another tensor), gives each element its own copy of
 * its bytes. No-op for other dtypes. */
kiln_status kiln_strings_own(kiln_tensor *t);

/* Writes v converted to numeric dtype dt into out (kiln_elem_size bytes).
 * Fails for STRING / unsupported types. */
kiln_status kiln_scalar_from_f64(kiln_dtype dt, double v, void *out);

/* Fills n elements of es bytes at dst with the element at val. */
void kiln_fill_elems(void *dst, const void *val, size_t es, int64_t n);

#endif
