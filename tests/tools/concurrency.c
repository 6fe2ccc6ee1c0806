/* One loaded model used from several threads at once. usage:
 *   kiln-concurrency MODEL THREADS NAME=FILE.npy...
 * 1. a serial run (on a session of 2 pool threads, as all below: the split
 *    of work, hence float rounding, depends on the thread count) gives the
 *    reference outputs;
 * 2. THREADS threads, each with its own session (2 pool threads each) on the
 *    shared model, run it ROUNDS times; every output must equal the
 *    reference bit for bit;
 * 3. two threads share one session: each call either succeeds with the
 *    reference outputs or is refused (KILN_ERR_ARG, "already running"); at
 *    least one call succeeds, and none may corrupt the session: a last
 *    serial run still gives the reference.
 * Built and run under ThreadSanitizer by scripts/test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#define ROUNDS 6
#define MAX_IO 16

static kiln_model *model;
static size_t n_in, n_out;
static const char *in_names[MAX_IO];
static kiln_tensor *inputs[MAX_IO];
static kiln_tensor *ref[MAX_IO];

static int same(kiln_tensor *const *out) {
    for (size_t k = 0; k < n_out; k++) {
        size_t nb = kiln_tensor_nbytes(ref[k]);
        if (kiln_tensor_nbytes(out[k]) != nb || memcmp(kiln_tensor_data_const(out[k]), kiln_tensor_data_const(ref[k]), nb))
            return 0;
    }
    return 1;
}

static void destroy_all(kiln_tensor **out) {
    for (size_t k = 0; k < n_out; k++)
        kiln_tensor_destroy(out[k]);
}

static kiln_status run_once(kiln_session *s, kiln_tensor **out) {
    return kiln_session_run(s, n_in, in_names, (const kiln_tensor *const *)inputs, n_out, NULL, out);
}

typedef struct worker {
    kiln_session *shared; /* NULL: make an own session */
    int ok, refused, bad;
} worker;

static void *work(void *p) {
    worker *w = p;
    kiln_session *s = w->shared;
    kiln_session_options o = {.threads = 2};
    if (!s && kiln_session_create(model, &o, &s) != KILN_OK) {
        w->bad++;
        return NULL;
    }
    for (int r = 0; r < ROUNDS; r++) {
        kiln_tensor *out[MAX_IO] = {0};
        kiln_status st = run_once(s, out);
        if (st == KILN_OK) {
            if (same(out))
                w->ok++;
            else
                w->bad++;
            destroy_all(out);
        } else if (st == KILN_ERR_ARG && strstr(kiln_last_error(), "already running"))
            w->refused++;
        else {
            fprintf(stderr, "concurrency: run failed: %s\n", kiln_last_error());
            w->bad++;
        }
    }
    if (!w->shared)
        kiln_session_destroy(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: kiln-concurrency MODEL THREADS NAME=FILE.npy...\n");
        return 2;
    }
    int nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 16 || kiln_model_load(argv[1], &model) != KILN_OK) {
        fprintf(stderr, "concurrency: %s\n", kiln_last_error());
        return 1;
    }
    for (int a = 3; a < argc && n_in < MAX_IO; a++) {
        char *eq = strchr(argv[a], '=');
        if (!eq)
            return 2;
        *eq = 0;
        in_names[n_in] = argv[a];
        if (kiln_npy_read(eq + 1, &inputs[n_in]) != KILN_OK) {
            fprintf(stderr, "concurrency: %s\n", kiln_last_error());
            return 1;
        }
        n_in++;
    }
    n_out = kiln_model_output_count(model);
    if (n_out > MAX_IO)
        return 2;
    kiln_session *serial;
    kiln_session_options one = {.threads = 2};
    if (kiln_session_create(model, &one, &serial) != KILN_OK || run_once(serial, ref) != KILN_OK) {
        fprintf(stderr, "concurrency: serial run: %s\n", kiln_last_error());
        return 1;
    }
    pthread_t th[16];
    worker ws[16];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, work, &ws[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    int ok = 0, bad = 0;
    for (int i = 0; i < nthreads; i++) {
        ok += ws[i].ok;
        bad += ws[i].bad + ws[i].refused; /* own sessions are never busy */
    }
    printf("own sessions: %d runs equal to the serial run, %d not\n", ok, bad);
    if (bad || ok != nthreads * ROUNDS)
        return 1;
    /* two threads on one session */
    kiln_session *shared;
    kiln_session_options two = {.threads = 2};
    if (kiln_session_create(model, &two, &shared) != KILN_OK)
        return 1;
    worker sw[2] = {{.shared = shared}, {.shared = shared}};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, work, &sw[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    printf("shared session: %d equal, %d refused, %d wrong\n", sw[0].ok + sw[1].ok, sw[0].refused + sw[1].refused,
           sw[0].bad + sw[1].bad);
    kiln_tensor *last[MAX_IO] = {0};
    int after = run_once(shared, last) == KILN_OK && same(last);
    destroy_all(last);
    kiln_session_destroy(shared);
    kiln_session_destroy(serial);
    destroy_all(ref);
    for (size_t i = 0; i < n_in; i++)
        kiln_tensor_destroy(inputs[i]);
    kiln_model_destroy(model);
    if (sw[0].bad + sw[1].bad || sw[0].ok + sw[1].ok == 0 || !after) {
        fprintf(stderr, "concurrency: the shared session gave wrong results\n");
        return 1;
    }
    return 0;
}
