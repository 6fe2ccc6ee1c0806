/* float16/bfloat16 <-> float32 helpers for the elementwise operators. */
#include <string.h>

#include "kernels/elementwise.h"

void kiln_ew_half_to_float(kiln_dtype dt, const uint16_t *src, float *dst, size_t n) {
    if (dt == KILN_DTYPE_BFLOAT16)
        for (size_t i = 0; i < n; i++)
            dst[i] = kiln_bf16_to_float(src[i]);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = kiln_half_to_float(src[i]);
}

void kiln_ew_float_to_half(kiln_dtype dt, const float *src, uint16_t *dst, size_t n) {
    if (dt == KILN_DTYPE_BFLOAT16)
        for (size_t i = 0; i < n; i++)
            dst[i] = kiln_float_to_bf16(src[i]);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = kiln_float_to_half(src[i]);
}

kiln_status kiln_ew_float_scratch(int rank, const int64_t *dims, kiln_tensor *out) {
    memset(out, 0, sizeof *out);
    KILN_TRY(kiln_tensor_init_shape(out, KILN_DTYPE_FLOAT, rank, dims));
    if (out->numel == 0)
        return KILN_OK;
    return kiln_tensor_alloc_data(out);
}

kiln_status kiln_ew_widen(const kiln_tensor *t, kiln_tensor *out) {
    KILN_TRY(kiln_ew_float_scratch(t->rank, t->dims, out));
    if (t->numel)
        kiln_ew_half_to_float(t->dtype, t->data, out->data, (size_t)t->numel);
    return KILN_OK;
}
