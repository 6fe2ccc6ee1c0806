/* Element access by dtype for the small ops that compute in double: reading
 * any numeric element as double and storing a double into float, double or
 * float16 storage. Not for hot loops. */
#ifndef KILN_VALIO_H
#define KILN_VALIO_H

#include "ir/ir.h"

static inline bool kiln_is_float_dtype(kiln_dtype dt) {
    return dt == KILN_DTYPE_FLOAT || dt == KILN_DTYPE_DOUBLE || dt == KILN_DTYPE_FLOAT16 ||
           dt == KILN_DTYPE_BFLOAT16;
}

static inline double kiln_load_f64(const void *data, kiln_dtype dt, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: return ((const float *)data)[i];
    case KILN_DTYPE_DOUBLE: return ((const double *)data)[i];
    case KILN_DTYPE_FLOAT16: return kiln_half_to_float(((const uint16_t *)data)[i]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_float(((const uint16_t *)data)[i]);
    case KILN_DTYPE_INT8: return ((const int8_t *)data)[i];
    case KILN_DTYPE_UINT8: return ((const uint8_t *)data)[i];
    case KILN_DTYPE_INT16: return ((const int16_t *)data)[i];
    case KILN_DTYPE_UINT16: return ((const uint16_t *)data)[i];
    case KILN_DTYPE_INT32: return ((const int32_t *)data)[i];
    case KILN_DTYPE_UINT32: return ((const uint32_t *)data)[i];
    case KILN_DTYPE_INT64: return (double)((const int64_t *)data)[i];
    case KILN_DTYPE_UINT64: return (double)((const uint64_t *)data)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)data)[i] ? 1.0 : 0.0;
    case KILN_DTYPE_INT4:
    case KILN_DTYPE_INT2: return ((const int8_t *)data)[i];
    case KILN_DTYPE_UINT4:
    case KILN_DTYPE_UINT2: return ((const uint8_t *)data)[i];
    default:
        if (kiln_is_minifloat(dt))
            return kiln_minifloat_to_float(dt, ((const uint8_t *)data)[i]);
        return 0.0;
    }
}

/* Floating dtypes only (float, double, float16, bfloat16). */
static inline void kiln_store_f64(void *data, kiln_dtype dt, int64_t i, double v) {
    switch (dt) {
    case KILN_DTYPE_FLOAT: ((float *)data)[i] = (float)v; break;
    case KILN_DTYPE_DOUBLE: ((double *)data)[i] = v; break;
    case KILN_DTYPE_FLOAT16: ((uint16_t *)data)[i] = kiln_float_to_half((float)v); break;
    case KILN_DTYPE_BFLOAT16: ((uint16_t *)data)[i] = kiln_float_to_bf16((float)v); break;
    default: break;
    }
}

/* Any numeric dtype; integers take the value truncated toward zero and
 * saturated to the type's range (NaN gives 0), bool is v != 0. */
#define KILN_VALIO_SAT(T, LO, HI) (v != v ? (T)0 : v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)v)
static inline void kiln_store_any(void *data, kiln_dtype dt, int64_t i, double v) {
    switch (dt) {
    case KILN_DTYPE_INT8: ((int8_t *)data)[i] = KILN_VALIO_SAT(int8_t, INT8_MIN, INT8_MAX); break;
    case KILN_DTYPE_INT16: ((int16_t *)data)[i] = KILN_VALIO_SAT(int16_t, INT16_MIN, INT16_MAX); break;
    case KILN_DTYPE_INT32: ((int32_t *)data)[i] = KILN_VALIO_SAT(int32_t, INT32_MIN, INT32_MAX); break;
    case KILN_DTYPE_INT64: ((int64_t *)data)[i] = KILN_VALIO_SAT(int64_t, INT64_MIN, INT64_MAX); break;
    case KILN_DTYPE_UINT8: ((uint8_t *)data)[i] = KILN_VALIO_SAT(uint8_t, 0, UINT8_MAX); break;
    case KILN_DTYPE_UINT16: ((uint16_t *)data)[i] = KILN_VALIO_SAT(uint16_t, 0, UINT16_MAX); break;
    case KILN_DTYPE_UINT32: ((uint32_t *)data)[i] = KILN_VALIO_SAT(uint32_t, 0, UINT32_MAX); break;
    case KILN_DTYPE_UINT64: ((uint64_t *)data)[i] = KILN_VALIO_SAT(uint64_t, 0, UINT64_MAX); break;
    case KILN_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    default: kiln_store_f64(data, dt, i, v); break;
    }
}

/* A requantised value (already rounded, zero point added) into int8 or
 * uint8, saturating; NaN gives the low bound, as the QLinear ops define it. */
static inline void kiln_store_q8(void *data, kiln_dtype dt, int64_t i, float v) {
    int32_t lo = dt == KILN_DTYPE_UINT8 ? 0 : -128, hi = dt == KILN_DTYPE_UINT8 ? 255 : 127;
    int32_t q = v >= (float)hi ? hi : v > (float)lo ? (int32_t)v : lo;
    if (dt == KILN_DTYPE_UINT8)
        ((uint8_t *)data)[i] = (uint8_t)q;
    else
        ((int8_t *)data)[i] = (int8_t)q;
}

#endif
