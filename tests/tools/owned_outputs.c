/* Writes into every output of a run and runs again: the next run's results,
 * the caller's inputs, the weights and the carried state must not change,
 * and nothing may fault (a weight mapped read-only from external data
 * included). usage: kiln-owned_outputs MODEL
 * The model (tests/python/test_owned_outputs.py): inputs x [4] and h [4];
 * outputs view = Identity(x), weight = Identity(W), ext = Identity(E) (E in
 * external data), hn = h + x (the state pair h -> hn), sum = x + W. */
#include <stdio.h>
#include <string.h>

#include "kiln.h"

#define N_OUT 5

static int fail(const char *what) {
    fprintf(stderr, "owned_outputs: %s: %s\n", what, kiln_last_error());
    return 1;
}

static int run(kiln_session *s, kiln_tensor *x, kiln_tensor **out) {
    const char *names[1] = {"x"};
    const kiln_tensor *in[1] = {x};
    return kiln_session_run(s, 1, names, in, N_OUT, NULL, out) != KILN_OK;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    kiln_model *m;
    if (kiln_model_load(argv[1], &m) != KILN_OK)
        return fail("load");
    kiln_session *s;
    if (kiln_session_create(m, NULL, &s) != KILN_OK || kiln_session_add_state(s, "h", "hn") != KILN_OK)
        return fail("session");
    int64_t dims[1] = {4};
    kiln_tensor *x;
    if (kiln_tensor_create(KILN_DTYPE_FLOAT, 1, dims, &x) != KILN_OK)
        return fail("input");
    float *xd = kiln_tensor_data(x);
    for (int i = 0; i < 4; i++)
        xd[i] = (float)(i + 1);
    kiln_tensor *a[N_OUT], *b[N_OUT], *c[N_OUT];
    if (run(s, x, a))
        return fail("run 1");
    float first[N_OUT][4];
    for (int k = 0; k < N_OUT; k++)
        memcpy(first[k], kiln_tensor_data_const(a[k]), sizeof first[k]);
    /* scribble over every output */
    for (int k = 0; k < N_OUT; k++) {
        float *p = kiln_tensor_data(a[k]);
        if (!p)
            return fail("writable output");
        for (int i = 0; i < 4; i++)
            p[i] = -999.0f;
    }
    for (int i = 0; i < 4; i++)
        if (xd[i] != (float)(i + 1)) {
            fprintf(stderr, "owned_outputs: writing an output changed the caller's input\n");
            return 1;
        }
    /* state: hn after run 2 is h (= run 1's hn) + x */
    kiln_session_reset_state(s);
    if (run(s, x, b))
        return fail("run 2");
    int bad = 0;
    for (int k = 0; k < N_OUT; k++) {
        const float *p = kiln_tensor_data_const(b[k]);
        for (int i = 0; i < 4; i++)
            if (p[i] != first[k][i]) {
                fprintf(stderr, "owned_outputs: output %d [%d] is %g after writing into run 1's outputs, was %g\n", k, i,
                        p[i], first[k][i]);
                bad = 1;
            }
    }
    /* the carried state survives writes into the output that holds it */
    float *hp = kiln_tensor_data(b[3]);
    for (int i = 0; hp && i < 4; i++)
        hp[i] = 12345.0f;
    if (run(s, x, c))
        return fail("run 3");
    const float *h3 = kiln_tensor_data_const(c[3]);
    for (int i = 0; i < 4; i++)
        if (h3[i] != first[3][i] + xd[i]) {
            fprintf(stderr, "owned_outputs: carried state is %g, expected %g\n", h3[i], first[3][i] + xd[i]);
            bad = 1;
        }
    for (int k = 0; k < N_OUT; k++) {
        kiln_tensor_destroy(a[k]);
        kiln_tensor_destroy(b[k]);
        kiln_tensor_destroy(c[k]);
    }
    kiln_tensor_destroy(x);
    kiln_session_destroy(s);
    kiln_model_destroy(m);
    if (!bad)
        printf("owned_outputs: ok\n");
    return bad;
}
