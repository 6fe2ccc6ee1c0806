/* kiln bench MODEL [-i NAME=VALUE]... [--dim SYMBOL=N]... [--threads N] [--runs N] [--warmup N] [--json] */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ir/ir.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln bench MODEL [-i NAME=VALUE]... [--dim SYMBOL=N]... [--threads N]\n"
               "                  [--runs N] [--warmup N] [--json]\n\n"
               "Times the model on kiln's engine. Inputs not given are generated (floats\n"
               "uniform in [-1,1), integers 0, bools false); dynamic dims need --dim.\n"
               "Prints the median and minimum latency and the arena's peak bytes.\n\n"
               "  -i NAME=VALUE   an input (as for kiln run)\n"
               "  --dim SYMBOL=N  size of a symbolic dimension for generated inputs\n"
               "  --threads N     worker threads (default: one per core)\n"
               "  --runs N        timed runs (default 20)\n"
               "  --warmup N      untimed runs first (default 3)\n"
               "  --json          print the result as JSON\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct dim_arg {
    const char *name;
    int64_t value;
} dim_arg;

static kiln_status make_input(const kiln_value_info *vi, const dim_arg *dims, size_t n_dims, uint64_t *seed,
                              kiln_tensor **out) {
    if (vi->type.kind != KILN_TYPE_TENSOR || vi->type.rank < 0)
        return kiln_fail(KILN_ERR_ARG, "input '%s' has no known shape; give it with -i", vi->name);
    int64_t shape[KILN_MAX_RANK];
    for (int i = 0; i < vi->type.rank; i++) {
        const kiln_dim *d = &vi->type.dims[i];
        shape[i] = d->value;
        if (d->value < 0) {
            shape[i] = -1;
            for (size_t k = 0; d->param && k < n_dims; k++)
                if (!strcmp(dims[k].name, d->param))
                    shape[i] = dims[k].value;
            if (shape[i] < 0)
                return kiln_fail(KILN_ERR_ARG, "input '%s': dimension %d (%s) is dynamic; give it with --dim %s=N",
                                 vi->name, i, d->param ? d->param : "unnamed", d->param ? d->param : "SYMBOL");
        }
    }
    kiln_tensor *t;
    KILN_TRY(kiln_tensor_create(vi->type.elem, vi->type.rank, shape, &t));
    if (t->dtype == KILN_DTYPE_FLOAT) {
        float *p = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
            p[i] = (float)((double)(*seed >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
        }
    }
    *out = t;
    return KILN_OK;
}

int kiln_cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    int threads = 0, runs = 20, warmup = 3, json = 0, rc = 0;
    char **in_args = calloc((size_t)argc + 1, sizeof *in_args);
    dim_arg *dims = calloc((size_t)argc + 1, sizeof *dims);
    size_t n_in = 0, n_dims = 0;
    if (!in_args || !dims)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            goto out;
        } else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && i + 1 < argc) {
            in_args[n_in++] = argv[++i];
        } else if (!strcmp(a, "--dim") && i + 1 < argc) {
            char *name, *val, *e;
            if (!cli_split(argv[++i], &name, &val) || (dims[n_dims].value = strtoll(val, &e, 10)) < 0 || *e || !*val) {
                fprintf(stderr, "kiln bench: --dim takes SYMBOL=N with N >= 0\n");
                rc = 2;
                goto out;
            }
            dims[n_dims++].name = name;
        } else if ((!strcmp(a, "--threads") || !strcmp(a, "--runs") || !strcmp(a, "--warmup")) && i + 1 < argc) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < (a[2] == 'w' ? 0 : 1) || v > 100000) {
                fprintf(stderr, "kiln bench: %s takes a positive number\n", a);
                rc = 2;
                goto out;
            }
            if (a[2] == 't')
                threads = (int)v;
            else if (a[2] == 'r')
                runs = (int)v;
            else
                warmup = (int)v;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln bench: unknown option or missing value: '%s'\n", a);
            help(stderr);
            rc = 2;
            goto out;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kiln bench: unexpected argument '%s'\n", a);
            rc = 2;
            goto out;
        }
    }
    if (!path) {
        help(stderr);
        rc = 2;
        goto out;
    }
    kiln_model *m = NULL;
    kiln_session *s = NULL;
    kiln_status st = kiln_model_load(path, &m);
    if (st != KILN_OK) {
        rc = cli_error("bench", st);
        goto out;
    }
    const kiln_graph *g = m->graph;
    size_t n_feed = kiln_model_input_count(m);
    const char **names = calloc(n_feed + 1, sizeof *names);
    kiln_tensor **vals = calloc(n_feed + 1, sizeof *vals);
    size_t n_out = kiln_model_output_count(m);
    kiln_tensor **outs = calloc(n_out + 1, sizeof *outs);
    double *times = calloc((size_t)runs, sizeof *times);
    uint64_t seed = 42;
    if (!names || !vals || !outs || !times) {
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < n_feed; i++) {
        names[i] = kiln_model_input_name(m, i);
        const char *given = NULL;
        for (size_t k = 0; k < n_in; k++) {
            size_t l = strlen(names[i]);
            if (!strncmp(in_args[k], names[i], l) && in_args[k][l] == '=')
                given = in_args[k] + l + 1;
        }
        if (given)
            st = kiln_value_parse(given, kiln_graph_find_input(g, names[i], NULL)->type.elem, &vals[i]);
        else
            st = make_input(kiln_graph_find_input(g, names[i], NULL), dims, n_dims, &seed, &vals[i]);
        if (st != KILN_OK) {
            rc = cli_error("bench", st);
            goto done;
        }
    }
    st = kiln_session_create(m, &(kiln_session_options){.threads = threads}, &s);
    if (st != KILN_OK) {
        rc = cli_error("bench", st);
        goto done;
    }
    for (int r = -warmup; r < runs; r++) {
        double t0 = now_ms();
        st = kiln_session_run(s, n_feed, names, (const kiln_tensor *const *)vals, n_out, NULL, outs);
        double t1 = now_ms();
        if (st != KILN_OK) {
            rc = cli_error("bench", st);
            goto done;
        }
        for (size_t i = 0; i < n_out; i++) {
            kiln_tensor_destroy(outs[i]);
            outs[i] = NULL;
        }
        if (r >= 0)
            times[r] = t1 - t0;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double median = runs % 2 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    if (json)
        printf("{\"model\": \"%s\", \"threads\": %d, \"runs\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, "
               "\"peak_arena_bytes\": %zu}\n",
               path, threads, runs, median, times[0], kiln_session_peak_bytes(s));
    else
        printf("%s: median %.3f ms, min %.3f ms over %d runs (%d threads); arena peak %.1f MiB\n", path, median,
               times[0], runs, threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), (double)kiln_session_peak_bytes(s) / (1 << 20));
done:
    for (size_t i = 0; vals && i < n_feed; i++)
        kiln_tensor_destroy(vals[i]);
    free(vals);
    free(names);
    free(outs);
    free(times);
    kiln_session_destroy(s);
    kiln_model_destroy(m);
out:
    free(in_args);
    free(dims);
    return rc;
}
