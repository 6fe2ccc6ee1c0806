/* Unit tests (cmocka) of the public API the kiln CLI is built on, linked
 * against libkiln.so and including only kiln.h: chunked streaming on the
 * committed lstm_state model (a two-layer LSTM exported from PyTorch, whose
 * output_*.npy are PyTorch's for the whole input) against those outputs,
 * its argument errors; single elements of tensors as doubles against
 * hand-computed values; model metadata. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static const char *model_dir;

static kiln_tensor *load(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", model_dir, name);
    kiln_tensor *t = NULL;
    if (kiln_tensor_load(path, &t) != KILN_OK)
        fail_msg("%s: %s", path, kiln_last_error());
    return t;
}

typedef struct fixture {
    kiln_model *m;
    kiln_session *s;
    kiln_tensor *x, *h0, *c0, *y, *h, *c; /* inputs, PyTorch's outputs */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", model_dir);
    assert_int_equal(kiln_model_load(path, &f->m), KILN_OK);
    assert_int_equal(kiln_session_create(f->m, &(kiln_session_options){.threads = 1}, &f->s), KILN_OK);
    assert_int_equal(kiln_session_add_state(f->s, "h0", "h"), KILN_OK);
    assert_int_equal(kiln_session_add_state(f->s, "c0", "c"), KILN_OK);
    f->x = load("input_x.npy");
    f->h0 = load("input_h0.npy");
    f->c0 = load("input_c0.npy");
    f->y = load("output_y.npy");
    f->h = load("output_h.npy");
    f->c = load("output_c.npy");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    kiln_tensor *ts[] = {f->x, f->h0, f->c0, f->y, f->h, f->c};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        kiln_tensor_destroy(ts[i]);
    kiln_session_destroy(f->s);
    kiln_model_destroy(f->m);
    free(f);
    return 0;
}

static void assert_close(const kiln_tensor *got, const kiln_tensor *want, const char *what) {
    assert_non_null(got);
    assert_int_equal(kiln_tensor_dtype(got), KILN_DTYPE_FLOAT);
    assert_int_equal(kiln_tensor_rank(got), kiln_tensor_rank(want));
    for (int d = 0; d < kiln_tensor_rank(want); d++)
        assert_int_equal(kiln_tensor_dims(got)[d], kiln_tensor_dims(want)[d]);
    const float *g = kiln_tensor_data_const(got), *w = kiln_tensor_data_const(want);
    for (int64_t i = 0; i < kiln_tensor_numel(want); i++)
        if (fabsf(g[i] - w[i]) > 1e-5f + 1e-4f * fabsf(w[i]))
            fail_msg("%s[%lld]: %g, PyTorch %g", what, (long long)i, g[i], w[i]);
}

/* x split along time (axis 1) into chunks of `size` (or `chunks` chunks):
 * y joined equals PyTorch's y over the whole input, h and c are the final
 * state, and the session's state holds it afterwards. */
static void stream(fixture *f, int64_t size, int64_t chunks) {
    kiln_session_reset_state(f->s);
    const char *names[] = {"x", "h0", "c0"};
    const kiln_tensor *in[] = {f->x, f->h0, f->c0};
    kiln_tensor *out[3] = {0};
    kiln_chunk_options o = {.axis = 1, .chunk_size = size, .chunks = chunks};
    kiln_status st = kiln_session_run_chunked(f->s, 3, names, in, &o, 3, NULL, out);
    if (st != KILN_OK)
        fail_msg("chunks of %lld / %lld chunks: %s", (long long)size, (long long)chunks, kiln_last_error());
    assert_close(out[0], f->y, "y");
    assert_close(out[1], f->h, "h");
    assert_close(out[2], f->c, "c");
    kiln_tensor *carried = NULL;
    assert_int_equal(kiln_session_get_state(f->s, "h0", &carried), KILN_OK);
    assert_close(carried, f->h, "state h0");
    kiln_tensor_destroy(carried);
    for (int i = 0; i < 3; i++)
        kiln_tensor_destroy(out[i]);
}

static void test_chunks_match_pytorch(void **state) {
    fixture *f = *state;
    assert_int_equal(kiln_tensor_dims(f->x)[1], 6);
    stream(f, 1, 0); /* 6 chunks */
    stream(f, 4, 0); /* 4 + 2 */
    stream(f, 0, 3); /* 2 + 2 + 2 */
    stream(f, 0, 4); /* ceil(6/4) = 2: 2 + 2 + 2 */
    stream(f, 0, 1); /* one chunk */
    stream(f, 100, 0);
}

/* Only named outputs, in the caller's order; h0/c0 not given: zero state. */
static void test_output_names_and_zero_state(void **state) {
    fixture *f = *state;
    kiln_session_reset_state(f->s);
    const char *names[] = {"x"};
    const kiln_tensor *in[] = {f->x};
    const char *outs[] = {"h", "y"};
    kiln_tensor *whole[2] = {0}, *parts[2] = {0};
    assert_int_equal(kiln_session_run(f->s, 1, names, in, 2, outs, whole), KILN_OK);
    kiln_session_reset_state(f->s);
    kiln_chunk_options o = {.axis = 1, .chunk_size = 4};
    assert_int_equal(kiln_session_run_chunked(f->s, 1, names, in, &o, 2, outs, parts), KILN_OK);
    assert_close(parts[0], whole[0], "h (chunked vs one call)");
    assert_close(parts[1], whole[1], "y (chunked vs one call)");
    for (int i = 0; i < 2; i++) {
        kiln_tensor_destroy(whole[i]);
        kiln_tensor_destroy(parts[i]);
    }
}

static void expect_arg_error(fixture *f, const kiln_chunk_options *o, const unsigned char *split, const char *msg) {
    const char *names[] = {"x", "h0", "c0"};
    const kiln_tensor *in[] = {f->x, f->h0, f->c0};
    kiln_tensor *out[3] = {(kiln_tensor *)1, (kiln_tensor *)1, (kiln_tensor *)1};
    kiln_chunk_options oo;
    if (o) {
        oo = *o;
        oo.split = split;
    }
    assert_int_equal(kiln_session_run_chunked(f->s, 3, names, in, o ? &oo : NULL, 3, NULL, out), KILN_ERR_ARG);
    for (int i = 0; i < 3; i++)
        assert_null(out[i]);
    if (!strstr(kiln_last_error(), msg))
        fail_msg("message '%s' lacks '%s'", kiln_last_error(), msg);
}

static void test_argument_errors(void **state) {
    fixture *f = *state;
    expect_arg_error(f, NULL, NULL, "kiln_session_run_chunked");
    expect_arg_error(f, &(kiln_chunk_options){.axis = 1}, NULL, "chunk_size or number of chunks");
    expect_arg_error(f, &(kiln_chunk_options){.axis = 1, .chunk_size = -2}, NULL, "chunk_size");
    expect_arg_error(f, &(kiln_chunk_options){.axis = -1, .chunks = 2}, NULL, "negative");
    /* x has rank 3, h0 and c0 are state: nothing to split along axis 3 */
    expect_arg_error(f, &(kiln_chunk_options){.axis = 3, .chunks = 2}, NULL, "no input to split into chunks (axis 3)");
    unsigned char only_x[] = {1, 0, 0}, x_and_h0[] = {1, 1, 0};
    expect_arg_error(f, &(kiln_chunk_options){.axis = 3, .chunks = 2}, only_x,
                     "chunk axis 3 is out of range for input 'x' of rank 3");
    /* x is [2, 6, 8], h0 [2, 2, 16]: lengths 6 and 2 along axis 1 */
    expect_arg_error(f, &(kiln_chunk_options){.axis = 1, .chunks = 2}, x_and_h0,
                     "chunked inputs differ in length along axis 1 (6 and 2)");
    /* the whole output count must match without names */
    const char *names[] = {"x"};
    const kiln_tensor *in[] = {f->x};
    kiln_tensor *out[2];
    assert_int_equal(kiln_session_run_chunked(f->s, 1, names, in, &(kiln_chunk_options){.axis = 1, .chunks = 2}, 2,
                                              NULL, out),
                     KILN_ERR_ARG);
}

/* A chunk that fails names itself; nothing is returned. */
static void test_failing_chunk(void **state) {
    fixture *f = *state;
    kiln_session_reset_state(f->s);
    kiln_tensor *bad;
    int64_t dims[3] = {2, 6, 7}; /* x is [batch, time, 8] */
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_FLOAT, 3, dims, &bad), KILN_OK);
    const char *names[] = {"x"};
    const kiln_tensor *in[] = {bad};
    kiln_tensor *out[3] = {0};
    kiln_status st =
        kiln_session_run_chunked(f->s, 1, names, in, &(kiln_chunk_options){.axis = 1, .chunk_size = 2}, 3, NULL, out);
    assert_int_not_equal(st, KILN_OK);
    if (strncmp(kiln_last_error(), "chunk 1 of 3: ", 14) != 0)
        fail_msg("message '%s' does not name the chunk", kiln_last_error());
    for (int i = 0; i < 3; i++)
        assert_null(out[i]);
    kiln_tensor_destroy(bad);
}

static void test_element_f64(void **state) {
    (void)state;
    kiln_tensor *t;
    int64_t four = 4;
    /* float16: 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal) */
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT16, 1, &four, h, sizeof h, &t), KILN_OK);
    double want[4] = {1.0, -2.0, 65504.0, ldexp(1.0, -24)}, v = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(kiln_tensor_element_f64(t, i, &v), KILN_OK);
        assert_true(v == want[i]);
    }
    v = 42;
    assert_int_equal(kiln_tensor_element_f64(t, 4, &v), KILN_ERR_ARG);
    assert_int_equal(kiln_tensor_element_f64(t, -1, &v), KILN_ERR_ARG);
    assert_true(v == 42);
    kiln_tensor_destroy(t);
    /* int4 holds sign-extended int8 values in memory; bool 0/1 */
    int8_t q[4] = {-8, -1, 0, 7};
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_INT4, 1, &four, q, sizeof q, &t), KILN_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(kiln_tensor_element_f64(t, i, &v), KILN_OK);
        assert_true(v == q[i]);
    }
    kiln_tensor_destroy(t);
    /* float8 e4m3fn: 0x38 = 1.0, 0x7e = 448, 0xb0 = -0.5 */
    uint8_t e[3] = {0x38, 0x7e, 0xb0};
    int64_t three = 3;
    double we[3] = {1.0, 448.0, -0.5};
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_FLOAT8E4M3FN, 1, &three, e, sizeof e, &t), KILN_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kiln_tensor_element_f64(t, i, &v), KILN_OK);
        assert_true(v == we[i]);
    }
    kiln_tensor_destroy(t);
    int64_t big[1] = {INT64_C(1) << 53};
    assert_int_equal(kiln_tensor_create_copy(KILN_DTYPE_INT64, 0, NULL, big, sizeof big, &t), KILN_OK);
    assert_int_equal(kiln_tensor_element_f64(t, 0, &v), KILN_OK);
    assert_true(v == 9007199254740992.0);
    kiln_tensor_destroy(t);
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_STRING, 1, &four, &t), KILN_OK);
    assert_int_equal(kiln_tensor_element_f64(t, 0, &v), KILN_ERR_UNSUPPORTED);
    kiln_tensor_destroy(t);
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_COMPLEX64, 1, &four, &t), KILN_OK);
    assert_int_equal(kiln_tensor_element_f64(t, 0, &v), KILN_ERR_UNSUPPORTED);
    kiln_tensor_destroy(t);
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_FLOAT, 0, NULL, &t), KILN_OK);
    assert_int_equal(kiln_tensor_element_f64(t, 0, &v), KILN_ERR_ARG);
    kiln_tensor_destroy(t);
    assert_int_equal(kiln_tensor_element_f64(NULL, 0, &v), KILN_ERR_ARG);
}

/* lstm_state has no metadata_props (tests/api/test_cli_shared.py checks a
 * model that has them through kiln info). */
static void test_metadata_empty(void **state) {
    fixture *f = *state;
    assert_int_equal(kiln_model_metadata_count(f->m), 0);
    const char *value = "unchanged";
    assert_null(kiln_model_metadata(f->m, 0, &value));
    assert_string_equal(value, "unchanged");
    assert_null(kiln_model_metadata(NULL, 0, NULL));
    assert_int_equal(kiln_model_metadata_count(NULL), 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LSTM_STATE_DIR\n", argv[0]);
        return 2;
    }
    model_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_match_pytorch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_names_and_zero_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argument_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_chunk, setup, teardown),
        cmocka_unit_test(test_element_f64),
        cmocka_unit_test_setup_teardown(test_metadata_empty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
