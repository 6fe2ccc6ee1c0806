/* Unit tests (cmocka) of the ONNX data types added with opset 19 and later:
 * float8/float6/float4/E8M0 conversions against codes worked out by hand from
 * the formats' definitions (and cross-checked with ml_dtypes and
 * onnx.numpy_helper), and the 4-/2-/6-bit packing of TensorProto storage,
 * its round trip through .pb files and its size checks. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/common.h"
#include "ir/ir.h"
#include "onnx.pb-c.h"

#define E4M3FN KILN_DTYPE_FLOAT8E4M3FN
#define E4M3FNUZ KILN_DTYPE_FLOAT8E4M3FNUZ
#define E5M2 KILN_DTYPE_FLOAT8E5M2
#define E5M2FNUZ KILN_DTYPE_FLOAT8E5M2FNUZ

static uint8_t enc(kiln_dtype t, double v, bool sat) { return kiln_float_to_minifloat(t, v, sat); }

/* ---- float8 E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits ---- */

static void test_e4m3fn(void **state) {
    (void)state;
    assert_int_equal(enc(E4M3FN, 1.0, true), 0x38);     /* 0.0111.000: 2^(7-7) */
    assert_int_equal(enc(E4M3FN, -1.0, true), 0xb8);
    assert_int_equal(enc(E4M3FN, 0.5, true), 0x30);
    assert_int_equal(enc(E4M3FN, 448.0, true), 0x7e);   /* 1.75 * 2^8, the largest finite */
    assert_int_equal(enc(E4M3FN, -448.0, true), 0xfe);
    assert_int_equal(enc(E4M3FN, 0x1p-9, true), 0x01);  /* smallest subnormal 2^-6 * 1/8 */
    assert_int_equal(enc(E4M3FN, 0x1p-6, true), 0x08);  /* smallest normal */
    assert_int_equal(enc(E4M3FN, 0x1p-10, true), 0x00); /* half the smallest subnormal: tie to even 0 */
    assert_int_equal(enc(E4M3FN, 0x1.8p-10, true), 0x01);
    assert_int_equal(enc(E4M3FN, 1.0625, true), 0x38);  /* halfway 1 .. 1.125: tie to even (1) */
    assert_int_equal(enc(E4M3FN, 1.1875, true), 0x3a);  /* halfway 1.125 .. 1.25: tie to even (1.25) */
    assert_int_equal(enc(E4M3FN, -0.0, true), 0x80);    /* -0 exists */
    /* 464 is halfway between 448 (0x7e, even) and 480 (0x7f, the NaN code) */
    assert_int_equal(enc(E4M3FN, 464.0, false), 0x7e);
    assert_int_equal(enc(E4M3FN, 465.0, true), 0x7e);   /* saturate: the largest finite */
    assert_int_equal(enc(E4M3FN, 465.0, false), 0x7f);  /* else NaN: there is no inf */
    assert_int_equal(enc(E4M3FN, 1e6, false), 0x7f);
    assert_int_equal(enc(E4M3FN, -1e6, false), 0xff);
    assert_int_equal(enc(E4M3FN, INFINITY, true), 0x7e);
    assert_int_equal(enc(E4M3FN, -INFINITY, true), 0xfe);
    assert_int_equal(enc(E4M3FN, INFINITY, false), 0x7f);
    assert_int_equal(enc(E4M3FN, -INFINITY, false), 0xff);
    assert_int_equal(enc(E4M3FN, NAN, true), 0x7f);
    assert_int_equal(enc(E4M3FN, 1e-7, true), 0x00);
    assert_true(kiln_minifloat_to_float(E4M3FN, 0x38) == 1.0f);
    assert_true(kiln_minifloat_to_float(E4M3FN, 0x7e) == 448.0f);
    assert_true(kiln_minifloat_to_float(E4M3FN, 0x01) == 0x1p-9f);
    assert_true(kiln_minifloat_to_float(E4M3FN, 0x07) == 0x1.cp-7f); /* 7/8 * 2^-6 */
    assert_true(kiln_minifloat_to_float(E4M3FN, 0xc4) == -3.0f);     /* 1.1000.100: -1.5 * 2^1 */
    assert_true(isnan(kiln_minifloat_to_float(E4M3FN, 0x7f)));
    assert_true(isnan(kiln_minifloat_to_float(E4M3FN, 0xff)));
    assert_true(kiln_minifloat_to_float(E4M3FN, 0x78) == 256.0f);    /* exponent 1111 is a number */
    assert_true(signbit(kiln_minifloat_to_float(E4M3FN, 0x80)));
    /* every code but NaN survives decode + encode */
    for (int c = 0; c < 256; c++)
        if ((c & 0x7f) != 0x7f)
            assert_int_equal(enc(E4M3FN, kiln_minifloat_to_float(E4M3FN, (uint8_t)c), false), c);
}

/* ---- the other float8 types ---- */

static void test_e4m3fnuz_e5m2(void **state) {
    (void)state;
    /* E4M3FNUZ: bias 8, 0x80 is the only NaN, no -0, no inf */
    assert_int_equal(enc(E4M3FNUZ, 1.0, true), 0x40);
    assert_int_equal(enc(E4M3FNUZ, 240.0, true), 0x7f);  /* 1.875 * 2^7 */
    assert_int_equal(enc(E4M3FNUZ, -0.0, true), 0x00);
    assert_int_equal(enc(E4M3FNUZ, -1e-7, true), 0x00);  /* underflow to 0, not -0 (the NaN code) */
    assert_int_equal(enc(E4M3FNUZ, NAN, true), 0x80);
    assert_int_equal(enc(E4M3FNUZ, INFINITY, true), 0x7f);
    assert_int_equal(enc(E4M3FNUZ, -INFINITY, true), 0xff);
    assert_int_equal(enc(E4M3FNUZ, INFINITY, false), 0x80);
    assert_int_equal(enc(E4M3FNUZ, 248.0, false), 0x80); /* halfway 240 (odd) .. 256: rounds up, overflows */
    assert_int_equal(enc(E4M3FNUZ, 248.0, true), 0x7f);
    assert_true(isnan(kiln_minifloat_to_float(E4M3FNUZ, 0x80)));
    assert_true(kiln_minifloat_to_float(E4M3FNUZ, 0xff) == -240.0f);
    /* E5M2: bias 15, IEEE-like: 0x7c inf, 0x7d..0x7f NaN */
    assert_int_equal(enc(E5M2, 1.0, true), 0x3c);
    assert_int_equal(enc(E5M2, 57344.0, true), 0x7b);   /* 1.75 * 2^15 */
    assert_int_equal(enc(E5M2, 61440.0, false), 0x7c);  /* halfway 57344 (odd) .. 65536: inf */
    assert_int_equal(enc(E5M2, 61440.0, true), 0x7b);
    assert_int_equal(enc(E5M2, 61439.0, false), 0x7b);
    assert_int_equal(enc(E5M2, INFINITY, false), 0x7c);
    assert_int_equal(enc(E5M2, -INFINITY, false), 0xfc);
    assert_int_equal(enc(E5M2, INFINITY, true), 0x7b);
    assert_int_equal(enc(E5M2, 0x1p-16, true), 0x01);   /* smallest subnormal */
    assert_int_equal(enc(E5M2, -0.0, true), 0x80);
    assert_true(isinf(kiln_minifloat_to_float(E5M2, 0x7c)));
    assert_true(isnan(kiln_minifloat_to_float(E5M2, 0x7d)));
    assert_true(kiln_minifloat_to_float(E5M2, 0x01) == 0x1p-16f);
    /* E5M2FNUZ: bias 16 */
    assert_int_equal(enc(E5M2FNUZ, 1.0, true), 0x40);
    assert_int_equal(enc(E5M2FNUZ, 57344.0, true), 0x7f);
    assert_int_equal(enc(E5M2FNUZ, 1e6, false), 0x80);
    assert_int_equal(enc(E5M2FNUZ, -1e6, true), 0xff);
    assert_true(kiln_minifloat_to_float(E5M2FNUZ, 0x01) == 0x1p-17f);
}

/* ---- float4 E2M1, float6, E8M0 ---- */

static void test_float4_float6_e8m0(void **state) {
    (void)state;
    const kiln_dtype F4 = KILN_DTYPE_FLOAT4E2M1;
    static const float f4[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (int c = 0; c < 8; c++) {
        assert_true(kiln_minifloat_to_float(F4, (uint8_t)c) == f4[c]);
        assert_true(kiln_minifloat_to_float(F4, (uint8_t)(c | 8)) == -f4[c]);
        assert_int_equal(enc(F4, f4[c], true), c);
    }
    assert_int_equal(enc(F4, 0.25, true), 0x0);  /* ties to even */
    assert_int_equal(enc(F4, 0.75, true), 0x2);
    assert_int_equal(enc(F4, 1.25, true), 0x2);
    assert_int_equal(enc(F4, 5.0, true), 0x6);
    assert_int_equal(enc(F4, 7.0, false), 0x7);  /* always saturates */
    assert_int_equal(enc(F4, -INFINITY, false), 0xf);
    assert_int_equal(enc(F4, -0.0, true), 0x8);
    assert_int_equal(enc(F4, NAN, true), 0x8);   /* as ml_dtypes: no NaN code */
    /* FLOAT6E2M3 (bias 1) and FLOAT6E3M2 (bias 3) */
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E2M3, 1.0, true), 0x08);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E2M3, 7.5, true), 0x1f);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E2M3, 100.0, false), 0x1f);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E2M3, -7.5, true), 0x3f);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E3M2, 1.0, true), 0x0c);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E3M2, 28.0, true), 0x1f);
    assert_int_equal(enc(KILN_DTYPE_FLOAT6E3M2, 0.0625, true), 0x01); /* 2^-2 * 1/4 */
    assert_true(kiln_minifloat_to_float(KILN_DTYPE_FLOAT6E2M3, 0x01) == 0.125f);
    /* E8M0: 2^(code - 127), 0xff NaN */
    assert_true(kiln_minifloat_to_float(KILN_DTYPE_FLOAT8E8M0, 127) == 1.0f);
    assert_true(kiln_minifloat_to_float(KILN_DTYPE_FLOAT8E8M0, 0) == 0x1p-127f);
    assert_true(kiln_minifloat_to_float(KILN_DTYPE_FLOAT8E8M0, 254) == 0x1p127f);
    assert_true(isnan(kiln_minifloat_to_float(KILN_DTYPE_FLOAT8E8M0, 255)));
    assert_int_equal(kiln_float_to_e8m0(1.0f, true, KILN_ROUND_UP), 127);
    assert_int_equal(kiln_float_to_e8m0(1.1f, true, KILN_ROUND_UP), 128);
    assert_int_equal(kiln_float_to_e8m0(1.1f, true, KILN_ROUND_DOWN), 127);
    assert_int_equal(kiln_float_to_e8m0(1.25f, true, KILN_ROUND_NEAREST), 127);
    assert_int_equal(kiln_float_to_e8m0(1.5f, true, KILN_ROUND_NEAREST), 128);
    assert_int_equal(kiln_float_to_e8m0(0.0f, true, KILN_ROUND_UP), 0);
    assert_int_equal(kiln_float_to_e8m0(INFINITY, true, KILN_ROUND_UP), 255);
    assert_int_equal(kiln_float_to_e8m0(0x1.8p127f, true, KILN_ROUND_UP), 254);  /* saturates */
    assert_int_equal(kiln_float_to_e8m0(0x1.8p127f, false, KILN_ROUND_UP), 255); /* rounds to NaN */
    assert_int_equal(enc(KILN_DTYPE_FLOAT8E8M0, 4.0, true), 129);
}

/* ---- packing ---- */

static void check_pack(kiln_dtype t, const int8_t *vals, size_t n, const uint8_t *packed, size_t np) {
    assert_int_equal(kiln_dtype_packed_size(t, n), np);
    uint8_t buf[16], back[64];
    kiln_pack_subbyte(t, (const uint8_t *)vals, n, buf);
    assert_memory_equal(buf, packed, np);
    kiln_unpack_subbyte(t, packed, n, back);
    assert_memory_equal(back, vals, n);
}

static void test_packing(void **state) {
    (void)state;
    /* INT4: first element in the low nibble, two's complement */
    check_pack(KILN_DTYPE_INT4, (int8_t[]){-8, 7}, 2, (uint8_t[]){0x78}, 1);
    check_pack(KILN_DTYPE_INT4, (int8_t[]){1, 2, 3}, 3, (uint8_t[]){0x21, 0x03}, 2); /* odd: high nibble 0 */
    check_pack(KILN_DTYPE_INT4, (int8_t[]){-1, -2, -8, 0}, 4, (uint8_t[]){0xef, 0x08}, 2);
    int8_t all[16];
    uint8_t allp[8];
    for (int i = 0; i < 16; i++)
        all[i] = (int8_t)(i - 8);
    for (int i = 0; i < 8; i++)
        allp[i] = (uint8_t)(((2 * i - 8) & 0xf) | (((2 * i - 7) & 0xf) << 4));
    check_pack(KILN_DTYPE_INT4, all, 16, allp, 8);
    check_pack(KILN_DTYPE_UINT4, (int8_t[]){15, 0, 9}, 3, (uint8_t[]){0x0f, 0x09}, 2);
    check_pack(KILN_DTYPE_FLOAT4E2M1, (int8_t[]){0x1, 0xe}, 2, (uint8_t[]){0xe1}, 1);
    /* 2-bit: first element in bits 0-1 */
    check_pack(KILN_DTYPE_INT2, (int8_t[]){-2, -1, 0, 1}, 4, (uint8_t[]){0x4e}, 1);
    check_pack(KILN_DTYPE_UINT2, (int8_t[]){3, 0, 1, 2, 3}, 5, (uint8_t[]){0x93, 0x03}, 2);
    /* 6-bit: four codes in three bytes, least significant bit first */
    check_pack(KILN_DTYPE_FLOAT6E2M3, (int8_t[]){0, 0x3f, 0, 0}, 4, (uint8_t[]){0xc0, 0x0f, 0x00}, 3);
    check_pack(KILN_DTYPE_FLOAT6E3M2, (int8_t[]){0x01, 0x02, 0x03, 0x3f, 0x15}, 5,
               (uint8_t[]){0x81, 0x30, 0xfc, 0x15}, 4);
    assert_int_equal(kiln_dtype_packed_size(KILN_DTYPE_FLOAT6E2M3, 3), 3);
    assert_int_equal(kiln_dtype_packed_size(KILN_DTYPE_INT4, 0), 0);
    assert_int_equal(kiln_dtype_packed_size(KILN_DTYPE_FLOAT8E4M3FN, 5), 5);
    assert_int_equal(kiln_dtype_size(KILN_DTYPE_INT4), 1); /* one byte per element in memory */
    assert_string_equal(kiln_dtype_name(KILN_DTYPE_FLOAT8E5M2FNUZ), "float8e5m2fnuz");
}

/* ---- TensorProto storage ---- */

static kiln_status from_proto(Onnx__TensorProto *p, kiln_tensor *t) {
    kiln_status st = kiln_tensor_from_proto(p, NULL, NULL, t);
    t->src = NULL;
    return st;
}

static void test_proto_storage(void **state) {
    (void)state;
    int64_t dims[] = {3};
    uint8_t raw[2] = {0x78, 0x0f}; /* int4 [-8, 7, -1] */
    Onnx__TensorProto p;
    onnx__tensor_proto__init(&p);
    p.has_data_type = 1;
    p.data_type = KILN_DTYPE_INT4;
    p.n_dims = 1;
    p.dims = dims;
    p.has_raw_data = 1;
    p.raw_data.len = 2;
    p.raw_data.data = raw;
    kiln_tensor t;
    assert_int_equal(from_proto(&p, &t), KILN_OK);
    assert_int_equal(t.nbytes, 3);
    assert_memory_equal(t.data, ((int8_t[]){-8, 7, -1}), 3);
    kiln_tensor_clear(&t);
    /* a byte short / a byte too many */
    p.raw_data.len = 1;
    assert_int_equal(from_proto(&p, &t), KILN_ERR_INVALID);
    assert_non_null(strstr(kiln_last_error(), "raw_data has 1 bytes"));
    assert_non_null(strstr(kiln_last_error(), "needs 2"));
    kiln_tensor_clear(&t);
    uint8_t raw3[3] = {0};
    p.raw_data.len = 3;
    p.raw_data.data = raw3;
    assert_int_equal(from_proto(&p, &t), KILN_ERR_INVALID);
    kiln_tensor_clear(&t);
    /* int32_data: one packed byte per entry */
    int32_t i32[2] = {0x78, 0x0f};
    p.has_raw_data = 0;
    p.n_int32_data = 2;
    p.int32_data = i32;
    assert_int_equal(from_proto(&p, &t), KILN_OK);
    assert_memory_equal(t.data, ((int8_t[]){-8, 7, -1}), 3);
    kiln_tensor_clear(&t);
    p.n_int32_data = 3; /* one per element is wrong for 4-bit types */
    int32_t i32b[3] = {1, 2, 3};
    p.int32_data = i32b;
    assert_int_equal(from_proto(&p, &t), KILN_ERR_INVALID);
    assert_non_null(strstr(kiln_last_error(), "int32_data"));
    kiln_tensor_clear(&t);
    /* float8: one code per int32_data entry */
    p.data_type = KILN_DTYPE_FLOAT8E4M3FN;
    int32_t f8[3] = {0x38, 0x7e, 0xb8};
    p.int32_data = f8;
    assert_int_equal(from_proto(&p, &t), KILN_OK);
    assert_true(kiln_tensor_get_f64(&t, 0) == 1.0 && kiln_tensor_get_f64(&t, 1) == 448.0 &&
                kiln_tensor_get_f64(&t, 2) == -1.0);
    kiln_tensor_clear(&t);
    p.data_type = KILN_DTYPE_FLOAT6E3M2; /* one 6-bit code per entry */
    assert_int_equal(from_proto(&p, &t), KILN_OK);
    assert_int_equal(((uint8_t *)t.data)[1], 0x3e);
    kiln_tensor_clear(&t);
}

static void test_pb_round_trip(void **state) {
    (void)state;
    char dir[] = "/tmp/kiln-unit-dtypes-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/t.pb", dir);
    static const kiln_dtype types[] = {KILN_DTYPE_INT4, KILN_DTYPE_UINT4, KILN_DTYPE_INT2, KILN_DTYPE_UINT2,
                                       KILN_DTYPE_FLOAT4E2M1, KILN_DTYPE_FLOAT6E2M3, KILN_DTYPE_FLOAT8E5M2,
                                       KILN_DTYPE_FLOAT8E8M0};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        kiln_dtype dt = types[k];
        int bits = kiln_dtype_storage_bits(dt);
        bool sign = dt == KILN_DTYPE_INT4 || dt == KILN_DTYPE_INT2;
        int64_t dims[2] = {3, 5}; /* 15: pads every packing */
        uint8_t vals[15];
        for (int i = 0; i < 15; i++) {
            int v = (i * 7 + 3) % (1 << bits);
            if (sign && v >= 1 << (bits - 1))
                v -= 1 << bits;
            vals[i] = (uint8_t)v;
        }
        kiln_tensor *t, *u;
        assert_int_equal(kiln_tensor_create_copy(dt, 2, dims, vals, 15, &t), KILN_OK);
        assert_int_equal(kiln_pb_write(t, path), KILN_OK);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        /* dims, data_type and the packed raw_data */
        assert_int_equal((size_t)size, 2 + 2 + 2 + 2 + kiln_dtype_packed_size(dt, 15));
        assert_int_equal(kiln_pb_read(path, &u), KILN_OK);
        assert_int_equal(kiln_tensor_dtype(u), dt);
        assert_int_equal(kiln_tensor_numel(u), 15);
        assert_memory_equal(kiln_tensor_data_const(u), vals, 15);
        kiln_tensor_destroy(t);
        kiln_tensor_destroy(u);
    }
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e4m3fn),        cmocka_unit_test(test_e4m3fnuz_e5m2),
        cmocka_unit_test(test_float4_float6_e8m0), cmocka_unit_test(test_packing),
        cmocka_unit_test(test_proto_storage), cmocka_unit_test(test_pb_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
