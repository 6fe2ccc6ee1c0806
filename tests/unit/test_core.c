/* Unit tests (cmocka) of kiln's core helpers: float16/bfloat16 conversion
 * against IEEE-754 binary16 values worked out by hand (and cross-checked
 * with numpy's float16), command-line value parsing, broadcasting shapes and
 * offsets, and overflow checks on dimension products. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/common.h"
#include "ir/ir.h"
#include "exec/exec.h"
#include "kernels/broadcast.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- float16 ---- */

static void test_half_to_float_exact(void **state) {
    (void)state;
    static const struct {
        uint16_t h;
        double v;
    } cases[] = {
        {0x0000, 0.0},
        {0x3c00, 1.0},
        {0xc000, -2.0},
        {0x3800, 0.5},
        {0x3555, 0.333251953125},          /* 1 + 0x155/1024 times 2^-2 */
        {0x2e66, 0.0999755859375},         /* nearest half to 0.1 */
        {0x7bff, 65504.0},                 /* largest finite */
        {0xfbff, -65504.0},
        {0x0400, 6.103515625e-05},         /* 2^-14, smallest normal */
        {0x03ff, 6.097555160522461e-05},   /* 1023 * 2^-24, largest subnormal */
        {0x0001, 5.960464477539063e-08},   /* 2^-24, smallest subnormal */
        {0x8001, -5.960464477539063e-08},
        {0x0200, 3.0517578125e-05},        /* 2^-15, subnormal */
        {0x3c01, 1.0009765625},            /* 1 + 2^-10 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_true(kiln_half_to_float(cases[i].h) == (float)cases[i].v);
    assert_int_equal(f32_bits(kiln_half_to_float(0x8000)), 0x80000000u); /* -0 keeps its sign */
    assert_true(isinf(kiln_half_to_float(0x7c00)) && kiln_half_to_float(0x7c00) > 0);
    assert_true(isinf(kiln_half_to_float(0xfc00)) && kiln_half_to_float(0xfc00) < 0);
    assert_true(isnan(kiln_half_to_float(0x7e00)));
    assert_true(isnan(kiln_half_to_float(0x7c01)));
    assert_true(isnan(kiln_half_to_float(0xfe00)));
}

static void test_float_to_half_rounding(void **state) {
    (void)state;
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.1f, 0x2e66},
        {0.333333f, 0x3555},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},               /* below the midpoint to 65536: stays finite */
        {65520.0f, 0x7c00},                /* the midpoint ties to even: infinity */
        {1e6f, 0x7c00},
        {-1e6f, 0xfc00},
        {6.103515625e-05f, 0x0400},        /* 2^-14 */
        {5.960464477539063e-08f, 0x0001},  /* 2^-24 */
        {2.98023223876953125e-08f, 0x0000},/* 2^-25: half of the smallest subnormal, ties to even 0 */
        {2.9802326e-08f, 0x0001},          /* just above 2^-25 */
        {8.940697e-08f, 0x0002},           /* 3 * 2^-25 ties to even: 2 */
        {5e-05f, 0x0347},                  /* subnormal: round(5e-5 * 2^24) = 839 */
        {1.00048828125f, 0x3c00},          /* 1 + 2^-11: tie, to even 1.0 */
        {1.00146484375f, 0x3c02},          /* 1 + 3 * 2^-11: tie, to even */
        {1.0005f, 0x3c01},                 /* above the tie */
        {1e-40f, 0x0000},                  /* float subnormal */
        {-1e-8f, 0x8000},                  /* underflow keeps the sign */
        {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t got = kiln_float_to_half(cases[i].f);
        if (got != cases[i].h)
            fail_msg("float_to_half(%.10g) = 0x%04x, want 0x%04x", (double)cases[i].f, got, cases[i].h);
    }
    assert_int_equal(kiln_float_to_half(INFINITY), 0x7c00);
    assert_int_equal(kiln_float_to_half(-INFINITY), 0xfc00);
    uint16_t n = kiln_float_to_half(NAN);
    assert_true((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0);
    /* a NaN whose payload lives only in the low bits must stay NaN */
    n = kiln_float_to_half(bits_f32(0x7f800001u));
    assert_true((n & 0x7c00) == 0x7c00 && (n & 0x03ff) != 0);
}

static void test_half_round_trip_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        float f = kiln_half_to_float((uint16_t)h);
        uint16_t back = kiln_float_to_half(f);
        bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            assert_true(isnan(f));
            assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
            assert_int_equal(back & 0x8000, h & 0x8000);
        } else if (back != h) {
            fail_msg("half 0x%04x -> %g -> 0x%04x", h, (double)f, back);
        }
    }
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(kiln_float_to_bf16(1.0f), 0x3f80);
    assert_true(kiln_bf16_to_float(0x3f80) == 1.0f);
    assert_true(kiln_bf16_to_float(0xc040) == -3.0f);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even */
    assert_int_equal(kiln_float_to_bf16(1.00390625f), 0x3f80);
    assert_int_equal(kiln_float_to_bf16(1.01171875f), 0x3f82); /* 1 + 3 * 2^-8: tie to even */
    assert_int_equal(kiln_float_to_bf16(INFINITY), 0x7f80);
    uint16_t n = kiln_float_to_bf16(bits_f32(0x7f800001u));
    assert_true((n & 0x7f80) == 0x7f80 && (n & 0x7f));
}

/* ---- kiln_value_parse ---- */

static kiln_tensor *parse_ok(const char *text, kiln_dtype dt) {
    kiln_tensor *t = NULL;
    kiln_status st = kiln_value_parse(text, dt, &t);
    if (st != KILN_OK)
        fail_msg("kiln_value_parse('%s') failed: %s", text, kiln_last_error());
    return t;
}

static void parse_bad(const char *text, kiln_dtype dt, const char *word) {
    kiln_tensor *t = (kiln_tensor *)1;
    kiln_status st = kiln_value_parse(text, dt, &t);
    if (st == KILN_OK)
        fail_msg("kiln_value_parse('%s') should fail", text);
    assert_null(t);
    if (word && !strstr(kiln_last_error(), word))
        fail_msg("message for '%s' lacks '%s': %s", text, word, kiln_last_error());
}

static void test_value_scalars(void **state) {
    (void)state;
    kiln_tensor *t = parse_ok("42", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_INT64);
    assert_int_equal(t->rank, 0);
    assert_int_equal(((int64_t *)t->data)[0], 42);
    kiln_tensor_destroy(t);
    t = parse_ok("-9223372036854775808", KILN_DTYPE_UNDEFINED);
    assert_true(((int64_t *)t->data)[0] == INT64_MIN);
    kiln_tensor_destroy(t);
    t = parse_ok("2.5", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_FLOAT);
    assert_true(((float *)t->data)[0] == 2.5f);
    kiln_tensor_destroy(t);
    t = parse_ok("1e3", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_FLOAT);
    assert_true(((float *)t->data)[0] == 1000.0f);
    kiln_tensor_destroy(t);
    t = parse_ok("true", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_BOOL);
    assert_int_equal(((uint8_t *)t->data)[0], 1);
    kiln_tensor_destroy(t);
    t = parse_ok("  false ", KILN_DTYPE_UNDEFINED);
    assert_int_equal(((uint8_t *)t->data)[0], 0);
    kiln_tensor_destroy(t);
    t = parse_ok("7", KILN_DTYPE_DOUBLE);
    assert_int_equal(t->dtype, KILN_DTYPE_DOUBLE);
    assert_true(((double *)t->data)[0] == 7.0);
    kiln_tensor_destroy(t);
    t = parse_ok("0.1", KILN_DTYPE_FLOAT16);
    assert_int_equal(((uint16_t *)t->data)[0], 0x2e66);
    kiln_tensor_destroy(t);
    t = parse_ok("-inf", KILN_DTYPE_UNDEFINED);
    assert_true(isinf(((float *)t->data)[0]) && ((float *)t->data)[0] < 0);
    kiln_tensor_destroy(t);
    t = parse_ok("-5", KILN_DTYPE_INT8);
    assert_int_equal(((int8_t *)t->data)[0], -5);
    kiln_tensor_destroy(t);
    t = parse_ok("[-128, 127]", KILN_DTYPE_INT8); /* the limits themselves fit */
    assert_int_equal(((int8_t *)t->data)[0], -128);
    assert_int_equal(((int8_t *)t->data)[1], 127);
    kiln_tensor_destroy(t);
    t = parse_ok("[0, 255]", KILN_DTYPE_UINT8);
    assert_int_equal(((uint8_t *)t->data)[1], 255);
    kiln_tensor_destroy(t);
    t = parse_ok("4294967295", KILN_DTYPE_UINT32);
    assert_true(((uint32_t *)t->data)[0] == UINT32_MAX);
    kiln_tensor_destroy(t);
    t = parse_ok("4e2", KILN_DTYPE_INT32); /* integral value written with an exponent */
    assert_int_equal(((int32_t *)t->data)[0], 400);
    kiln_tensor_destroy(t);
}

static void test_value_lists(void **state) {
    (void)state;
    kiln_tensor *t = parse_ok("[[1, 2, 3], [4, 5, 6]]", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_INT64);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 2);
    assert_int_equal(t->dims[1], 3);
    for (int i = 0; i < 6; i++)
        assert_int_equal(((int64_t *)t->data)[i], i + 1);
    kiln_tensor_destroy(t);
    t = parse_ok("[1, 2.5]", KILN_DTYPE_UNDEFINED); /* one float makes the list float */
    assert_int_equal(t->dtype, KILN_DTYPE_FLOAT);
    assert_true(((float *)t->data)[0] == 1.0f && ((float *)t->data)[1] == 2.5f);
    kiln_tensor_destroy(t);
    t = parse_ok("[[1],[2]]", KILN_DTYPE_FLOAT);
    assert_int_equal(t->dtype, KILN_DTYPE_FLOAT);
    assert_int_equal(t->dims[0], 2);
    assert_int_equal(t->dims[1], 1);
    kiln_tensor_destroy(t);
    t = parse_ok("[true, false, true]", KILN_DTYPE_UNDEFINED);
    assert_int_equal(t->dtype, KILN_DTYPE_BOOL);
    assert_memory_equal(t->data, "\1\0\1", 3);
    kiln_tensor_destroy(t);
    t = parse_ok("[]", KILN_DTYPE_FLOAT);
    assert_int_equal(t->rank, 1);
    assert_int_equal(t->dims[0], 0);
    kiln_tensor_destroy(t);
    t = parse_ok("[[], []]", KILN_DTYPE_INT32);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 2);
    assert_int_equal(t->dims[1], 0);
    kiln_tensor_destroy(t);
    t = parse_ok("[[[1]]]", KILN_DTYPE_UINT8);
    assert_int_equal(t->rank, 3);
    assert_int_equal(((uint8_t *)t->data)[0], 1);
    kiln_tensor_destroy(t);
}

static void test_value_errors(void **state) {
    (void)state;
    parse_bad("", KILN_DTYPE_UNDEFINED, NULL);
    parse_bad("abc", KILN_DTYPE_UNDEFINED, "abc");
    parse_bad("[1, 2", KILN_DTYPE_UNDEFINED, NULL);
    parse_bad("[1 2]", KILN_DTYPE_UNDEFINED, NULL);
    parse_bad("[[1, 2], [3]]", KILN_DTYPE_UNDEFINED, "different lengths");
    parse_bad("[[1, 2], 3]", KILN_DTYPE_UNDEFINED, "uneven");
    parse_bad("[1, [2]]", KILN_DTYPE_UNDEFINED, "uneven");
    parse_bad("[true, 1]", KILN_DTYPE_UNDEFINED, "mixes");
    parse_bad("1 2", KILN_DTYPE_UNDEFINED, "unexpected");
    parse_bad("1]", KILN_DTYPE_UNDEFINED, "unexpected");
    parse_bad("99999999999999999999", KILN_DTYPE_UNDEFINED, "out of range");
    parse_bad("2.5", KILN_DTYPE_INT64, "not an integer");
    parse_bad("nan", KILN_DTYPE_INT32, "not an integer");
    parse_bad("300", KILN_DTYPE_UINT8, "does not fit");
    parse_bad("[1, -1]", KILN_DTYPE_UINT64, "does not fit");
    parse_bad("-129", KILN_DTYPE_INT8, "does not fit");
    parse_bad("70000", KILN_DTYPE_INT16, "does not fit");
    parse_bad("4294967296", KILN_DTYPE_UINT32, "does not fit");
    parse_bad("2147483648", KILN_DTYPE_INT32, "does not fit");
    parse_bad("[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]", KILN_DTYPE_UNDEFINED, "nested");
    parse_bad("\"x\"", KILN_DTYPE_STRING, NULL);
    parse_bad("@/nonexistent/kiln-unit.npy", KILN_DTYPE_UNDEFINED, "/nonexistent/kiln-unit.npy");
    parse_bad("@file.txt", KILN_DTYPE_UNDEFINED, "file.txt");
    kiln_tensor *t = (kiln_tensor *)1;
    assert_int_not_equal(kiln_value_parse(NULL, KILN_DTYPE_UNDEFINED, &t), KILN_OK);
}

/* ---- broadcasting ---- */

static void expect_shape(int n, const int *ranks, const int64_t *const *dims, int want_rank, const int64_t *want) {
    int r = -1;
    int64_t out[KILN_MAX_RANK];
    kiln_status st = kiln_bcast_shape(n, ranks, dims, &r, out);
    if (st != KILN_OK)
        fail_msg("broadcast failed: %s", kiln_last_error());
    assert_int_equal(r, want_rank);
    for (int i = 0; i < r; i++)
        assert_int_equal(out[i], want[i]);
}

static void test_bcast_shapes(void **state) {
    (void)state;
    {
        int64_t a[] = {2, 3}, b[] = {3}, w[] = {2, 3};
        expect_shape(2, (int[]){2, 1}, (const int64_t *const[]){a, b}, 2, w);
    }
    {
        int64_t a[] = {2, 1, 4}, b[] = {3, 1}, w[] = {2, 3, 4};
        expect_shape(2, (int[]){3, 2}, (const int64_t *const[]){a, b}, 3, w);
    }
    {
        int64_t a[] = {0}, b[] = {5}, w[] = {5};
        expect_shape(2, (int[]){0, 1}, (const int64_t *const[]){a, b}, 1, w); /* scalar with [5] */
    }
    {
        int64_t a[] = {0, 3}, b[] = {1, 3}, w[] = {0, 3};
        expect_shape(2, (int[]){2, 2}, (const int64_t *const[]){a, b}, 2, w);
    }
    {
        int64_t a[] = {1, 1}, b[] = {1}, w[] = {1, 1};
        expect_shape(2, (int[]){2, 1}, (const int64_t *const[]){a, b}, 2, w);
    }
    {
        int64_t a[] = {5, 1, 1}, b[] = {1, 6, 1}, c[] = {7}, w[] = {5, 6, 7};
        expect_shape(3, (int[]){3, 3, 1}, (const int64_t *const[]){a, b, c}, 3, w);
    }
    int r;
    int64_t out[KILN_MAX_RANK];
    {
        int64_t a[] = {2, 3}, b[] = {4};
        assert_int_equal(kiln_bcast_shape(2, (int[]){2, 1}, (const int64_t *const[]){a, b}, &r, out),
                         KILN_ERR_INVALID);
        assert_non_null(strstr(kiln_last_error(), "[2,3]"));
        assert_non_null(strstr(kiln_last_error(), "[4]"));
    }
    {
        int64_t a[] = {0}, b[] = {5}; /* 0 broadcasts only against 1 */
        assert_int_not_equal(kiln_bcast_shape(2, (int[]){1, 1}, (const int64_t *const[]){a, b}, &r, out), KILN_OK);
        assert_int_not_equal(kiln_bcast_shape(2, (int[]){1, 1}, (const int64_t *const[]){b, a}, &r, out), KILN_OK);
    }
    {
        int64_t a[] = {3, 1}, b[] = {1, 4}, c[] = {2, 1, 1};
        int64_t w[] = {2, 3, 4};
        expect_shape(3, (int[]){2, 2, 3}, (const int64_t *const[]){a, b, c}, 3, w);
        int64_t d[] = {2, 5, 1}; /* 5 against 3 */
        assert_int_not_equal(kiln_bcast_shape(3, (int[]){2, 2, 3}, (const int64_t *const[]){a, b, d}, &r, out),
                             KILN_OK);
    }
}

/* Walks the broadcast rows and checks every input offset against the
 * numpy rule, computed from the multi-index of each output element. */
static void check_offsets(int n, const int *ranks, int64_t dims[][KILN_MAX_RANK]) {
    kiln_tensor *in[KILN_BCAST_MAX_IN];
    for (int i = 0; i < n; i++)
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_FLOAT, ranks[i], dims[i], &in[i]), KILN_OK);
    kiln_bcast b;
    assert_int_equal(kiln_bcast_init(&b, n, (const kiln_tensor *const *)in), KILN_OK);
    int64_t numel = 1;
    for (int d = 0; d < b.rank; d++)
        numel *= b.dims[d];
    assert_int_equal(b.numel, numel);
    assert_int_equal(b.n_rows * b.row_len, numel);
    int64_t k = 0;
    for (int64_t r = 0; r < b.n_rows; r++) {
        int64_t off[KILN_BCAST_MAX_IN];
        kiln_bcast_row(&b, r, off);
        for (int64_t j = 0; j < b.row_len; j++, k++) {
            int64_t rem = k, idx[KILN_MAX_RANK];
            for (int d = b.rank - 1; d >= 0; d--) {
                idx[d] = rem % b.dims[d];
                rem /= b.dims[d];
            }
            for (int i = 0; i < n; i++) {
                int64_t want = 0, stride = 1;
                for (int d = ranks[i] - 1; d >= 0; d--) {
                    int64_t x = dims[i][d];
                    int64_t id = idx[d + b.rank - ranks[i]];
                    want += (x == 1 ? 0 : id) * stride;
                    stride *= x;
                }
                int64_t got = off[i] + j * b.step[i];
                if (got != want)
                    fail_msg("input %d, element %lld: offset %lld, want %lld", i, (long long)k, (long long)got,
                             (long long)want);
            }
        }
    }
    assert_int_equal(k, numel);
    for (int i = 0; i < n; i++)
        kiln_tensor_destroy(in[i]);
}

static void test_bcast_offsets(void **state) {
    (void)state;
    check_offsets(2, (int[]){2, 1}, (int64_t[][KILN_MAX_RANK]){{2, 3}, {3}});
    check_offsets(2, (int[]){3, 2}, (int64_t[][KILN_MAX_RANK]){{2, 1, 4}, {3, 1}});
    check_offsets(2, (int[]){4, 4}, (int64_t[][KILN_MAX_RANK]){{2, 3, 4, 5}, {2, 3, 4, 5}});
    check_offsets(2, (int[]){4, 0}, (int64_t[][KILN_MAX_RANK]){{2, 3, 4, 5}, {0}});
    check_offsets(2, (int[]){3, 3}, (int64_t[][KILN_MAX_RANK]){{4, 1, 5}, {1, 3, 1}});
    check_offsets(3, (int[]){3, 2, 1}, (int64_t[][KILN_MAX_RANK]){{2, 1, 1}, {3, 1}, {4}});
    check_offsets(2, (int[]){4, 4}, (int64_t[][KILN_MAX_RANK]){{1, 3, 1, 2}, {2, 1, 4, 1}});
    check_offsets(2, (int[]){2, 2}, (int64_t[][KILN_MAX_RANK]){{1, 1}, {1, 1}});
    check_offsets(2, (int[]){3, 1}, (int64_t[][KILN_MAX_RANK]){{3, 1, 1}, {1}});
}

/* ---- dims products ---- */

static void test_dims_numel(void **state) {
    (void)state;
    int64_t n = -1;
    assert_int_equal(kiln_dims_numel(0, NULL, &n), KILN_OK);
    assert_int_equal(n, 1);
    int64_t d1[] = {2, 3, 4};
    assert_int_equal(kiln_dims_numel(3, d1, &n), KILN_OK);
    assert_int_equal(n, 24);
    int64_t d2[] = {5, 0, INT64_MAX};
    assert_int_equal(kiln_dims_numel(3, d2, &n), KILN_OK); /* zero before the big one */
    assert_int_equal(n, 0);
    int64_t d3[] = {INT64_MAX, 1};
    assert_int_equal(kiln_dims_numel(2, d3, &n), KILN_OK);
    assert_true(n == INT64_MAX);
    int64_t d4[] = {(int64_t)1 << 32, (int64_t)1 << 31}; /* exactly 2^63: one past INT64_MAX */
    assert_int_equal(kiln_dims_numel(2, d4, &n), KILN_ERR_LIMIT);
    int64_t d4b[] = {(int64_t)1 << 31, (int64_t)1 << 31};
    assert_int_equal(kiln_dims_numel(2, d4b, &n), KILN_OK);
    assert_true(n == (int64_t)1 << 62);
    n = 7;
    int64_t d5[] = {(int64_t)1 << 32, (int64_t)1 << 32};
    assert_int_equal(kiln_dims_numel(2, d5, &n), KILN_ERR_LIMIT);
    assert_non_null(strstr(kiln_last_error(), "overflow"));
    int64_t d6[] = {3037000500, 3037000500}; /* just above sqrt(2^63) */
    assert_int_equal(kiln_dims_numel(2, d6, &n), KILN_ERR_LIMIT);
    int64_t d7[] = {3037000499, 3037000499}; /* just below */
    assert_int_equal(kiln_dims_numel(2, d7, &n), KILN_OK);
    assert_true(n == (int64_t)3037000499 * 3037000499);
    int64_t d8[] = {2, -1};
    assert_int_equal(kiln_dims_numel(2, d8, &n), KILN_ERR_INVALID);
    assert_non_null(strstr(kiln_last_error(), "-1"));
    int64_t d9[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, (int64_t)1 << 48};
    assert_int_equal(kiln_dims_numel(16, d9, &n), KILN_ERR_LIMIT);
    /* byte sizes: element count fits int64 but bytes do not fit size_t */
    kiln_tensor *t = NULL;
    int64_t d10[] = {(int64_t)1 << 61, 4};
    assert_int_not_equal(kiln_tensor_create(KILN_DTYPE_DOUBLE, 2, d10, &t), KILN_OK);
    assert_null(t);
    int64_t d11[] = {(int64_t)1 << 62};
    assert_int_not_equal(kiln_tensor_create(KILN_DTYPE_FLOAT, 1, d11, &t), KILN_OK);
    assert_int_not_equal(kiln_tensor_create(KILN_DTYPE_FLOAT, KILN_MAX_RANK + 1, d9, &t), KILN_OK);
}

/* Dimension expressions, values worked out by hand. */
static void test_dim_exprs(void **state) {
    (void)state;
    int64_t v;
    assert_false(kiln_dim_is_expr("batch"));
    assert_false(kiln_dim_is_expr("unk__12"));
    assert_true(kiln_dim_is_expr("2*batch"));
    assert_true(kiln_dim_is_expr("floor(height/2 - 1/2) + 1"));
    char *e = kiln_dim_expr_subst("floor(floor(height/2 - 1/2)/2) + 1", "height", 640);
    assert_non_null(e);
    assert_string_equal(e, "floor(floor(640/2 - 1/2)/2) + 1");
    assert_true(kiln_dim_expr_value(e, &v)); /* floor(319.5) = 319, floor(159.5) = 159, + 1 */
    assert_int_equal(v, 160);
    free(e);
    assert_null(kiln_dim_expr_subst("2*batch", "height", 3)); /* does not name it */
    e = kiln_dim_expr_subst("s0*s1 + s0//2", "s0", 7);
    assert_string_equal(e, "7*s1 + 7//2");
    assert_false(kiln_dim_expr_value(e, &v)); /* s1 is still open */
    char *e2 = kiln_dim_expr_subst(e, "s1", 3);
    assert_true(kiln_dim_expr_value(e2, &v));
    assert_int_equal(v, 24); /* 21 + 3 */
    free(e);
    free(e2);
    assert_true(kiln_dim_expr_value("ceil(7/2) + max(2, 5) - 10 % 4", &v));
    assert_int_equal(v, 7); /* 4 + 5 - 2 */
    assert_false(kiln_dim_expr_value("7/2", &v)); /* not a whole number */
    assert_false(kiln_dim_expr_value("1/0", &v));
    assert_false(kiln_dim_expr_value("3 - 5", &v)); /* negative */
    assert_false(kiln_dim_expr_value("((((1", &v));
    assert_false(kiln_dim_expr_value("sqrt(4)", &v));
}

/* Sequence and optional values: the public API, copies, the SequenceProto /
 * OptionalProto codec (round trip, nesting bound, refusals). */
static void test_sequence_values(void **state) {
    (void)state;
    kiln_tensor *a, *b, *s, *o, *c;
    float av[3] = {1, 2, 3}, bv[1] = {4};
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT, 1, (int64_t[]){3}, av, sizeof av, &a), KILN_OK);
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT, 1, (int64_t[]){1}, bv, sizeof bv, &b), KILN_OK);
    const kiln_tensor *items[2] = {a, b};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_UNDEFINED, 2, items, &s), KILN_OK);
    assert_int_equal(kiln_value_kind_of(s), KILN_VALUE_SEQUENCE);
    assert_int_equal(kiln_sequence_length(s), 2);
    assert_int_equal(kiln_tensor_dtype(s), KILN_DTYPE_UNDEFINED);
    assert_int_equal(kiln_tensor_numel(s), 0);
    /* elements share the data */
    assert_ptr_equal(kiln_tensor_data_const(kiln_sequence_at(s, 0)), kiln_tensor_data_const(a));
    assert_null(kiln_sequence_at(s, 2));
    kiln_tensor *mixed;
    kiln_tensor *i64;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_INT64, 0, NULL, &i64), KILN_OK);
    const kiln_tensor *bad[2] = {a, i64};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_UNDEFINED, 2, bad, &mixed), KILN_ERR_ARG);
    const kiln_tensor *nested[1] = {s};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_UNDEFINED, 1, nested, &mixed), KILN_ERR_ARG);
    assert_int_equal(kiln_optional_create(s, &o), KILN_OK);
    assert_int_equal(kiln_value_kind_of(o), KILN_VALUE_OPTIONAL);
    assert_int_equal(kiln_sequence_length(kiln_optional_value(o)), 2);
    kiln_tensor *oo;
    assert_int_equal(kiln_optional_create(o, &oo), KILN_ERR_ARG); /* no optional of an optional */
    /* a deep copy owns its data */
    assert_int_equal(kiln_tensor_clone(o, &c), KILN_OK);
    const kiln_tensor *ce = kiln_sequence_at(kiln_optional_value(c), 0);
    assert_ptr_not_equal(kiln_tensor_data_const(ce), kiln_tensor_data_const(a));
    assert_memory_equal(kiln_tensor_data_const(ce), av, sizeof av);
    /* wire round trip */
    kiln_sbuf wire;
    assert_int_equal(kiln_value_to_bytes(o, &wire), KILN_OK);
    kiln_tensor *back;
    assert_int_equal(kiln_value_from_bytes(wire.data, wire.len, KILN_VALUE_OPTIONAL, "mem", &back), KILN_OK);
    const kiln_tensor *bs = kiln_optional_value(back);
    assert_non_null(bs);
    assert_int_equal(kiln_sequence_length(bs), 2);
    assert_int_equal(kiln_tensor_dims(kiln_sequence_at(bs, 1))[0], 1);
    assert_true(((const float *)kiln_tensor_data_const(kiln_sequence_at(bs, 1)))[0] == 4.0f);
    /* the same bytes read as a SequenceProto: elem_type says sequence, the values field is 5 */
    kiln_tensor *as_seq;
    assert_int_equal(kiln_value_from_bytes(wire.data, wire.len, KILN_VALUE_SEQUENCE, "mem", &as_seq), KILN_OK);
    assert_int_equal(kiln_sequence_length(as_seq), 1);
    assert_int_equal(kiln_value_kind_of(kiln_sequence_at(as_seq, 0)), KILN_VALUE_SEQUENCE);
    kiln_tensor_destroy(as_seq);
    free(wire.data);
    /* an empty optional */
    kiln_tensor *e;
    assert_int_equal(kiln_optional_create(NULL, &e), KILN_OK);
    assert_null(kiln_optional_value(e));
    assert_int_equal(kiln_value_to_bytes(e, &wire), KILN_OK);
    kiln_tensor *eb;
    assert_int_equal(kiln_value_from_bytes(wire.data, wire.len, KILN_VALUE_OPTIONAL, "mem", &eb), KILN_OK);
    assert_null(kiln_optional_value(eb));
    free(wire.data);
    /* sequences of sequences nested 9 deep: refused (KILN_MAX_VALUE_NESTING is 8) */
    kiln_tensor *deep = NULL;
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_FLOAT, 0, NULL, &deep), KILN_OK);
    for (int i = 0; i < 9; i++) {
        kiln_tensor *up = kiln_value_new(KILN_VALUE_SEQUENCE, KILN_VALUE_SEQUENCE, KILN_DTYPE_FLOAT);
        assert_non_null(up);
        assert_int_equal(kiln_value_push(up, deep), KILN_OK);
        deep = up;
    }
    assert_int_equal(kiln_value_to_bytes(deep, &wire), KILN_ERR_LIMIT);
    kiln_tensor_destroy(deep);
    /* garbage */
    kiln_tensor *g;
    assert_int_equal(kiln_value_from_bytes("\xff\xff", 2, KILN_VALUE_SEQUENCE, "mem", &g), KILN_ERR_PARSE);
    assert_null(g);
    kiln_tensor *objs[] = {a, b, s, o, c, back, e, eb, i64};
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
        kiln_tensor_destroy(objs[i]);
}

/* A size mismatch is refused with the shape's real need (the tensor was
 * once freed before its size was read: ASan sees a regression). */
static void test_create_copy_size_mismatch(void **state) {
    (void)state;
    int64_t dims[2] = {2, 3};
    float data[6] = {0};
    kiln_tensor *t = NULL;
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT, 2, dims, data, 20, &t), KILN_ERR_ARG);
    assert_null(t);
    assert_non_null(strstr(kiln_last_error(), "data has 20 bytes"));
    assert_non_null(strstr(kiln_last_error(), "needs 24"));
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT, 2, dims, data, 24, &t), KILN_OK);
    kiln_tensor_destroy(t);
}

/* The pool: every index of a job runs exactly once, at 1, 2 and 3 threads,
 * for jobs far smaller and far larger than the thread count, and a job
 * started from inside a job (nested) runs inline instead of deadlocking. */
typedef struct pool_count {
    kiln_threads *t;
    int *hits;
    size_t inner;
} pool_count;

static void pool_inner(void *arg, size_t b, size_t e) {
    int *hits = arg;
    for (size_t i = b; i < e; i++)
        __atomic_add_fetch(&hits[i], 1, __ATOMIC_RELAXED);
}

static void pool_outer(void *arg, size_t b, size_t e) {
    pool_count *pc = arg;
    for (size_t i = b; i < e; i++) {
        __atomic_add_fetch(&pc->hits[i], 1, __ATOMIC_RELAXED);
        if (pc->inner)
            kiln_threads_run(pc->t, pc->inner, 1, pool_inner, pc->hits + 100000 + i * pc->inner);
    }
}

static void test_pool_runs_every_index_once(void **state) {
    (void)state;
    int *hits = calloc(200000, sizeof(int));
    assert_non_null(hits);
    for (int threads = 1; threads <= 3; threads++) {
        kiln_threads *t = kiln_threads_create(threads);
        assert_non_null(t);
        size_t sizes[] = {1, 2, 3, 7, 64, 1000, 99991};
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (size_t grain = 1; grain <= 64; grain *= 8) {
                memset(hits, 0, 200000 * sizeof(int));
                pool_count pc = {t, hits, 0};
                kiln_threads_run(t, sizes[s], grain, pool_outer, &pc);
                for (size_t i = 0; i < sizes[s]; i++)
                    assert_int_equal(hits[i], 1);
                assert_int_equal(hits[sizes[s]], 0);
            }
        /* nested: 50 outer items, each starting a 20-item job */
        memset(hits, 0, 200000 * sizeof(int));
        pool_count pc = {t, hits, 20};
        kiln_threads_run(t, 50, 1, pool_outer, &pc);
        for (size_t i = 0; i < 50; i++)
            assert_int_equal(hits[i], 1);
        for (size_t i = 0; i < 50 * 20; i++)
            assert_int_equal(hits[100000 + i], 1);
        kiln_threads_destroy(t);
    }
    free(hits);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_float_exact), cmocka_unit_test(test_float_to_half_rounding),
        cmocka_unit_test(test_half_round_trip_all), cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_value_scalars),       cmocka_unit_test(test_value_lists),
        cmocka_unit_test(test_value_errors),        cmocka_unit_test(test_bcast_shapes),
        cmocka_unit_test(test_bcast_offsets),       cmocka_unit_test(test_dims_numel),
        cmocka_unit_test(test_dim_exprs),           cmocka_unit_test(test_sequence_values),
        cmocka_unit_test(test_create_copy_size_mismatch),  cmocka_unit_test(test_pool_runs_every_index_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
