/* A downstream program built against an installed kiln (tests/install):
 * loads a model from memory, lists its inputs, runs it once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln.h>

static int fail(const char *what) {
    fprintf(stderr, "downstream: %s: %s\n", what, kiln_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: downstream MODEL.onnx\n");
        return 2;
    }
    int major;
    const char *v = kiln_version(&major, NULL, NULL);
    if (strcmp(v, KILN_VERSION_STRING) != 0 || major != KILN_VERSION_MAJOR) {
        fprintf(stderr, "downstream: header %s, library %s\n", KILN_VERSION_STRING, v);
        return 1;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return 2;
    static char bytes[1 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    kiln_model *m;
    if (kiln_model_load_buffer(bytes, n, argv[1], NULL, NULL, &m) != KILN_OK)
        return fail("load");
    size_t ni = kiln_model_input_count(m);
    const char *names[8];
    kiln_tensor *vals[8];
    for (size_t i = 0; i < ni && i < 8; i++) {
        kiln_value_type t;
        if (kiln_model_input_type(m, i, &t) != KILN_OK)
            return fail("input type");
        int64_t dims[KILN_MAX_RANK];
        for (int d = 0; d < t.rank; d++)
            dims[d] = t.dims[d] >= 0 ? t.dims[d] : 2; /* symbolic dims: 2 */
        names[i] = kiln_model_input_name(m, i);
        if (kiln_tensor_create(t.dtype, t.rank, dims, &vals[i]) != KILN_OK)
            return fail("tensor");
        printf("input %s: %s rank %d\n", names[i], kiln_dtype_name(t.dtype), t.rank);
    }
    kiln_session *s;
    if (kiln_session_create(m, &(kiln_session_options){.threads = 1}, &s) != KILN_OK)
        return fail("session");
    kiln_tensor *out[1];
    if (kiln_session_run(s, ni, names, (const kiln_tensor *const *)vals, 1, NULL, out) != KILN_OK)
        return fail("run");
    printf("kiln %s: output %s has %lld elements\n", v, kiln_model_output_name(m, 0),
           (long long)kiln_tensor_numel(out[0]));
    kiln_tensor_destroy(out[0]);
    kiln_session_destroy(s);
    /* freeze every input but the first with the zeros above; the report's numbers */
    kiln_freeze_report *rep;
    if (kiln_freeze_report_create(&rep) != KILN_OK)
        return fail("report");
    for (size_t i = 1; i < ni; i++)
        if (kiln_model_bind(m, names[i], vals[i], rep) != KILN_OK)
            return fail("bind");
    if (kiln_model_freeze(m, NULL, rep) != KILN_OK)
        return fail("freeze");
    kiln_report_summary sum;
    if (kiln_report_summary_get(rep, &sum) != KILN_OK)
        return fail("summary");
    printf("frozen: %lld nodes -> %lld, %zu inputs removed;", (long long)sum.nodes_before,
           (long long)sum.nodes_after, sum.inputs_removed);
    for (size_t i = 0; i < kiln_report_op_count(rep); i++) {
        int64_t b, a;
        const char *op = kiln_report_op(rep, i, &b, &a);
        if (b != a)
            printf(" %s %lld->%lld", op, (long long)b, (long long)a);
    }
    printf("\n");
    if (sum.nodes_after >= sum.nodes_before || sum.inputs_removed != ni - 1 || kiln_model_input_count(m) != 1)
        return 1;
    void *bytes2;
    size_t n2;
    if (kiln_model_serialize(m, &bytes2, &n2) != KILN_OK)
        return fail("serialize");
    kiln_model *m2;
    if (kiln_model_load_buffer(bytes2, n2, NULL, NULL, NULL, &m2) != KILN_OK)
        return fail("load frozen");
    free(bytes2);
    printf("frozen model: %zu input(s), %zu bytes\n", kiln_model_input_count(m2), n2);
    kiln_model_destroy(m2);
    kiln_freeze_report_destroy(rep);
    for (size_t i = 0; i < ni; i++)
        kiln_tensor_destroy(vals[i]);
    kiln_model_destroy(m);
    return 0;
}
