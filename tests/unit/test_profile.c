/* Unit tests (cmocka) of the session profiling API on the committed
 * cond_branches model (two If nodes on a runtime condition): nothing is
 * recorded while profiling is off, each main-graph node gets one record
 * with one call per run, the taken branches' nodes get records named
 * "<If node>/<node>" at depth 1, reset zeroes the counts and keeps the
 * records, and a record past the end is an argument error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln.h"

static const char *model_path;

typedef struct fixture {
    kiln_model *m;
    kiln_session *s;
    kiln_tensor *x, *flag;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(kiln_model_load(model_path, &f->m), KILN_OK);
    assert_int_equal(kiln_session_create(f->m, &(kiln_session_options){.threads = 1}, &f->s), KILN_OK);
    int64_t xd[2] = {2, 8};
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_FLOAT, 2, xd, &f->x), KILN_OK);
    float *p = kiln_tensor_data(f->x);
    for (int i = 0; i < 16; i++)
        p[i] = (float)(i - 7) * 0.25f;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_BOOL, 0, NULL, &f->flag), KILN_OK);
    *(uint8_t *)kiln_tensor_data(f->flag) = 1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    kiln_tensor_destroy(f->x);
    kiln_tensor_destroy(f->flag);
    kiln_session_destroy(f->s);
    kiln_model_destroy(f->m);
    free(f);
    return 0;
}

static void run_once(fixture *f) {
    const char *names[2] = {"x", "use_residual"};
    const kiln_tensor *in[2] = {f->x, f->flag};
    kiln_tensor *out[1] = {NULL};
    assert_int_equal(kiln_session_run(f->s, 2, names, in, 1, NULL, out), KILN_OK);
    kiln_tensor_destroy(out[0]);
}

static void test_off_records_nothing(void **state) {
    fixture *f = *state;
    assert_int_equal(kiln_session_profiling(f->s), 0);
    run_once(f);
    assert_int_equal(kiln_session_profile_count(f->s), 0);
}

static void test_records(void **state) {
    fixture *f = *state;
    kiln_session_set_profiling(f->s, 1);
    assert_int_equal(kiln_session_profiling(f->s), 1);
    run_once(f);
    size_t n = kiln_session_profile_count(f->s);
    assert_true(n > 0);
    run_once(f);
    assert_int_equal(kiln_session_profile_count(f->s), n); /* the same branches: no new records */
    size_t top = 0, nested = 0, ifs = 0;
    for (size_t i = 0; i < n; i++) {
        kiln_profile_record r;
        assert_int_equal(kiln_session_profile_record(f->s, i, &r), KILN_OK);
        assert_non_null(r.name);
        assert_non_null(r.op);
        assert_non_null(r.shape);
        assert_int_equal(r.calls, r.depth == 0 ? 2 : r.calls); /* once per run in the main graph */
        assert_true(r.calls > 0);
        if (r.depth == 0) {
            top++;
            if (!strcmp(r.op, "If")) {
                ifs++;
                /* both torch.cond calls map x [batch,8] to [batch,8] (tests/models/make_dynamo_models.py) */
                assert_string_equal(r.shape, "[2,8]");
            }
        } else {
            nested++;
            assert_int_equal(r.depth, 1);
            /* the name starts with an If record's name and '/' */
            const char *slash = strchr(r.name, '/');
            assert_non_null(slash);
            bool found = false;
            for (size_t k = 0; k < n && !found; k++) {
                kiln_profile_record o;
                assert_int_equal(kiln_session_profile_record(f->s, k, &o), KILN_OK);
                found = o.depth == 0 && !strcmp(o.op, "If") && strlen(o.name) == (size_t)(slash - r.name) &&
                        !strncmp(o.name, r.name, (size_t)(slash - r.name));
            }
            assert_true(found);
        }
    }
    assert_int_equal(ifs, 2);
    assert_true(top > 2);
    assert_true(nested > 0);
    kiln_profile_record r;
    assert_int_equal(kiln_session_profile_record(f->s, n, &r), KILN_ERR_ARG);
}

static void test_reset_and_off(void **state) {
    fixture *f = *state;
    kiln_session_set_profiling(f->s, 1);
    run_once(f);
    size_t n = kiln_session_profile_count(f->s);
    kiln_profile_record r0;
    assert_int_equal(kiln_session_profile_record(f->s, 0, &r0), KILN_OK);
    const char *name = r0.name;
    kiln_session_profile_reset(f->s);
    assert_int_equal(kiln_session_profile_count(f->s), n);
    for (size_t i = 0; i < n; i++) {
        kiln_profile_record r;
        assert_int_equal(kiln_session_profile_record(f->s, i, &r), KILN_OK);
        assert_int_equal(r.calls, 0);
        assert_int_equal(r.total_ns, 0);
    }
    assert_int_equal(kiln_session_profile_record(f->s, 0, &r0), KILN_OK);
    assert_ptr_equal(r0.name, name); /* the strings stay */
    kiln_session_set_profiling(f->s, 0);
    run_once(f);
    assert_int_equal(kiln_session_profile_record(f->s, 0, &r0), KILN_OK);
    assert_int_equal(r0.calls, 0);
    kiln_session_set_profiling(f->s, 1);
    run_once(f);
    assert_int_equal(kiln_session_profile_record(f->s, 0, &r0), KILN_OK);
    assert_int_equal(r0.calls, 1);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_off_records_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_and_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
