/* float16/bfloat16 <-> float32 helpers for the elementwise operators.
 * With F16C (x86) float16 converts 8 lanes at a time in hardware, rounding
 * to nearest even like kiln_float_to_half. */
#include <string.h>

#ifdef __F16C__
#include <immintrin.h>
#endif

#include "kernels/elementwise.h"

void kiln_ew_half_to_float(kiln_dtype dt, const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    if (dt == KILN_DTYPE_BFLOAT16) {
        for (; i < n; i++)
            dst[i] = kiln_bf16_to_float(src[i]);
        return;
    }
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++)
        dst[i] = kiln_half_to_float(src[i]);
}

void kiln_ew_float_to_half(kiln_dtype dt, const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    if (dt == KILN_DTYPE_BFLOAT16) {
        for (; i < n; i++)
            dst[i] = kiln_float_to_bf16(src[i]);
        return;
    }
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++)
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
