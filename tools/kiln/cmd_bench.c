/* kiln bench MODEL [-i NAME=VALUE]... [--dim SYMBOL=N]... [--threads N] [--runs N] [--warmup N]
 *            [--profile [--top N]] [--json] */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln bench MODEL [-i NAME=VALUE]... [--dim SYMBOL=N]... [--threads N]\n"
               "                  [--runs N] [--warmup N] [--profile [--top N]] [--json]\n\n"
               "Times the model on kiln's engine. Inputs not given are generated (floats\n"
               "uniform in [-1,1), integers 0, bools false); dynamic dims need --dim.\n"
               "Prints the median and minimum latency and the arena's peak bytes.\n\n"
               "  -i NAME=VALUE   an input (as for kiln run)\n"
               "  --dim SYMBOL=N  size of a symbolic dimension for generated inputs\n"
               "  --threads N     worker threads (default: one per core)\n"
               "  --runs N        timed runs (default 20)\n"
               "  --warmup N      untimed runs first (default 3)\n"
               "  --profile       time every node during the timed runs (the warm-up runs too,\n"
               "                  uncounted) and print the time per operator type and the\n"
               "                  slowest nodes: milliseconds per run and share of the mean\n"
               "                  run. Nodes inside If/Loop/Scan bodies are listed as\n"
               "                  ENCLOSING/NODE; their time is also in the enclosing node's,\n"
               "                  so they are kept out of the per-operator totals and listed\n"
               "                  apart. A Conv fused with its Relu/Clip shows as Conv+Relu.\n"
               "  --top N         slowest nodes to list with --profile (default 15, 0: all)\n"
               "  --json          print the result as JSON (with --profile: a \"profile\" object)\n");
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

/* Input i, generated; prints why not and returns the exit code on failure,
 * -1 on success. */
static int make_input(const kiln_model *m, size_t i, const dim_arg *dims, size_t n_dims, uint64_t *seed,
                      kiln_tensor **out) {
    const char *name = kiln_model_input_name(m, i);
    kiln_value_type vt;
    kiln_status st = kiln_model_input_type(m, i, &vt);
    if (st != KILN_OK)
        return cli_error("bench", st);
    if (vt.rank < 0) {
        fprintf(stderr, "kiln bench: input '%s' has no known shape; give it with -i\n", name);
        return 2;
    }
    int64_t shape[KILN_MAX_RANK];
    for (int d = 0; d < vt.rank; d++) {
        const char *sym = vt.symbols[d];
        shape[d] = vt.dims[d];
        if (vt.dims[d] < 0) {
            for (size_t k = 0; sym && k < n_dims; k++)
                if (!strcmp(dims[k].name, sym))
                    shape[d] = dims[k].value;
            if (shape[d] < 0) {
                fprintf(stderr, "kiln bench: input '%s': dimension %d (%s) is dynamic; give it with --dim %s=N\n",
                        name, d, sym ? sym : "unnamed", sym ? sym : "SYMBOL");
                return 2;
            }
        }
    }
    kiln_tensor *t;
    st = kiln_tensor_create(vt.dtype, vt.rank, shape, &t);
    if (st != KILN_OK)
        return cli_error("bench", st);
    if (kiln_tensor_dtype(t) == KILN_DTYPE_FLOAT) {
        float *p = kiln_tensor_data(t);
        for (int64_t k = 0; p && k < kiln_tensor_numel(t); k++) {
            *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
            p[k] = (float)((double)(*seed >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
        }
    }
    *out = t;
    return -1;
}

/* ---- --profile ---- */

typedef struct op_row {
    char key[160]; /* "Conv", "Conv+Relu", "com.example:MyOp" */
    size_t nodes;
    uint64_t ns;
} op_row;

static void op_key(const kiln_profile_record *r, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s%s%s", r->domain[0] ? r->domain : "", r->domain[0] ? ":" : "", r->op,
             r->fused ? "+" : "", r->fused ? r->fused : "");
}

static int cmp_row(const void *a, const void *b) {
    const op_row *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns > y->ns ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Rows of records at depth 0 (nested false) or deeper (true), by time. */
static op_row *op_table(const kiln_profile_record *recs, size_t n, bool nested, size_t *n_rows) {
    op_row *rows = calloc(n + 1, sizeof *rows);
    *n_rows = 0;
    if (!rows)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((recs[i].depth > 0) != nested || !recs[i].calls)
            continue;
        char key[160];
        op_key(&recs[i], key, sizeof key);
        size_t k = 0;
        while (k < *n_rows && strcmp(rows[k].key, key) != 0)
            k++;
        if (k == *n_rows) {
            snprintf(rows[k].key, sizeof rows[k].key, "%s", key);
            (*n_rows)++;
        }
        rows[k].nodes++;
        rows[k].ns += recs[i].total_ns;
    }
    qsort(rows, *n_rows, sizeof *rows, cmp_row);
    return rows;
}

static int cmp_rec(const void *a, const void *b) {
    const kiln_profile_record *x = a, *y = b;
    if (x->total_ns != y->total_ns)
        return x->total_ns > y->total_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The report of the timed runs: per operator type and the `top` slowest
 * nodes (0: all), as text or appended to the JSON in *js. Shares are of
 * `run_ms`, the mean time of a timed run. */
static kiln_status profile_report(const kiln_session *s, int runs, double run_ms, size_t top, int json,
                                  cli_buf *js) {
    size_t n = kiln_session_profile_count(s);
    kiln_profile_record *recs = calloc(n + 1, sizeof *recs);
    if (!recs)
        return KILN_ERR_NOMEM;
    size_t n_live = 0, n_nested = 0;
    uint64_t top_ns = 0;
    for (size_t i = 0; i < n; i++) {
        kiln_profile_record r;
        kiln_status st = kiln_session_profile_record(s, i, &r);
        if (st != KILN_OK) {
            free(recs);
            return st;
        }
        if (!r.calls)
            continue; /* ran only in the warm-up */
        recs[n_live++] = r;
        if (r.depth > 0)
            n_nested++;
        else
            top_ns += r.total_ns;
    }
    size_t n_ops = 0, n_sub = 0;
    op_row *ops = op_table(recs, n_live, false, &n_ops);
    op_row *sub = op_table(recs, n_live, true, &n_sub);
    if (!ops || !sub) {
        free(ops);
        free(sub);
        free(recs);
        return KILN_ERR_NOMEM;
    }
    qsort(recs, n_live, sizeof *recs, cmp_rec);
    size_t show = top == 0 || top > n_live ? n_live : top;
    double per = 1e-6 / runs; /* ns summed over the runs -> ms per run */
    double nodes_ms = (double)top_ns * per, other_ms = run_ms - nodes_ms;
#define SHARE(ms) (run_ms > 0 ? 100.0 * (ms) / run_ms : 0.0)
    if (json) {
        cli_buf_printf(js, ", \"profile\": {\"runs\": %d, \"run_ms\": %.6f, \"nodes_ms\": %.6f, \"other_ms\": %.6f, "
                             "\"other_share\": %.4f, \"ops\": [", runs, run_ms, nodes_ms, other_ms, SHARE(other_ms));
        for (int pass = 0; pass < 2; pass++) {
            const op_row *rows = pass ? sub : ops;
            size_t nr = pass ? n_sub : n_ops;
            if (pass)
                cli_buf_printf(js, "], \"subgraph_ops\": [");
            for (size_t i = 0; i < nr; i++) {
                cli_buf_printf(js, "%s{\"op\": ", i ? ", " : "");
                cli_buf_json_string(js, rows[i].key);
                double ms = (double)rows[i].ns * per;
                cli_buf_printf(js, ", \"nodes\": %zu, \"ms\": %.6f, \"share\": %.4f}", rows[i].nodes, ms, SHARE(ms));
            }
        }
        cli_buf_printf(js, "], \"top\": [");
        for (size_t i = 0; i < show; i++) {
            const kiln_profile_record *r = &recs[i];
            double ms = (double)r->total_ns * per;
            cli_buf_printf(js, "%s{\"name\": ", i ? ", " : "");
            cli_buf_json_string(js, r->name);
            cli_buf_printf(js, ", \"op\": ");
            cli_buf_json_string(js, r->op);
            if (r->domain[0]) {
                cli_buf_printf(js, ", \"domain\": ");
                cli_buf_json_string(js, r->domain);
            }
            cli_buf_printf(js, ", \"fused\": ");
            if (r->fused)
                cli_buf_json_string(js, r->fused);
            else
                cli_buf_printf(js, "null");
            cli_buf_printf(js, ", \"shape\": ");
            cli_buf_json_string(js, r->shape);
            cli_buf_printf(js, ", \"shape_varies\": %s, \"depth\": %d, \"calls_per_run\": %.6g, \"ms\": %.6f, "
                                 "\"share\": %.4f}",
                             r->shape_varies ? "true" : "false", r->depth, (double)r->calls / runs, ms, SHARE(ms));
        }
        cli_buf_printf(js, "], \"note\": ");
        cli_buf_json_string(js, "shares are of the mean run (run_ms, profiled); ops and nodes_ms count the main "
                                  "graph's nodes; subgraph_ops and top entries with depth > 0 are nodes inside "
                                  "If/Loop/Scan bodies, whose time is also in their enclosing node's");
        cli_buf_printf(js, "}");
    } else {
        printf("\ntime per operator type (%d runs, mean run %.3f ms with profiling on):\n", runs, run_ms);
        printf("  %-28s %6s %10s %7s\n", "op", "nodes", "ms/run", "share");
        for (size_t i = 0; i < n_ops; i++) {
            double ms = (double)ops[i].ns * per;
            printf("  %-28s %6zu %10.4f %6.1f%%\n", ops[i].key, ops[i].nodes, ms, SHARE(ms));
        }
        printf("  %-28s %6s %10.4f %6.1f%%\n", "(outside nodes)", "", other_ms, SHARE(other_ms));
        if (n_sub) {
            printf("\ninside If/Loop/Scan bodies (already counted in their enclosing nodes above):\n");
            printf("  %-28s %6s %10s %7s\n", "op", "nodes", "ms/run", "share");
            for (size_t i = 0; i < n_sub; i++) {
                double ms = (double)sub[i].ns * per;
                printf("  %-28s %6zu %10.4f %6.1f%%\n", sub[i].key, sub[i].nodes, ms, SHARE(ms));
            }
        }
        /* columns as wide as what they show; names past 64 characters keep their end */
        int wn = 4, wo = 2, ws = 8;
        for (size_t i = 0; i < show; i++) {
            char key[160];
            op_key(&recs[i], key, sizeof key);
            size_t ln = strlen(recs[i].name), lo = strlen(key), ls = strlen(recs[i].shape) + (recs[i].shape_varies ? 9 : 0);
            wn = ln > (size_t)wn ? (ln > 64 ? 64 : (int)ln) : wn;
            wo = lo > (size_t)wo ? (lo > 40 ? 40 : (int)lo) : wo;
            ws = ls > (size_t)ws ? (ls > 40 ? 40 : (int)ls) : ws;
        }
        printf("\nslowest %zu of %zu nodes:\n", show, n_live);
        printf("  %-*s  %-*s  %-*s %10s %7s\n", wn, "name", wo, "op", ws, "output 0", "ms/run", "share");
        for (size_t i = 0; i < show; i++) {
            const kiln_profile_record *r = &recs[i];
            char key[160], shape[160];
            op_key(r, key, sizeof key);
            snprintf(shape, sizeof shape, "%s%s", r->shape, r->shape_varies ? " (varies)" : "");
            size_t ln = strlen(r->name);
            double ms = (double)r->total_ns * per;
            printf("%c %s%-*s  %-*s  %-*s %10.4f %6.1f%%\n", r->depth ? '^' : ' ', ln > 64 ? "..." : "",
                   ln > 64 ? wn - 3 : wn,
                   ln > 64 ? r->name + ln - (size_t)(wn - 3) : r->name, wo, key, ws, shape, ms, SHARE(ms));
        }
        if (n_nested)
            printf("\n^: a node inside an If/Loop/Scan body, named ENCLOSING/NODE; its time is also in the "
                   "enclosing node's (the records overlap).\n");
    }
#undef SHARE
    free(ops);
    free(sub);
    free(recs);
    return KILN_OK;
}

int kiln_cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    int threads = 0, runs = 20, warmup = 3, json = 0, profile = 0, rc = 0;
    size_t top = 15;
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
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
        } else if (!strcmp(a, "--top") && i + 1 < argc) {
            char *e;
            const char *v = argv[++i];
            long long t = strtoll(v, &e, 10);
            if (*e || !*v || t < 0 || t > 1000000) {
                fprintf(stderr, "kiln bench: --top takes a number >= 0 (0: all nodes)\n");
                rc = 2;
                goto out;
            }
            top = (size_t)t;
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
        if (given) {
            st = kiln_value_parse(given, kiln_model_input_dtype(m, names[i]), &vals[i]);
            if (st != KILN_OK) {
                rc = cli_error("bench", st);
                goto done;
            }
        } else if ((rc = make_input(m, i, dims, n_dims, &seed, &vals[i])) >= 0) {
            goto done;
        }
        rc = 0;
    }
    st = kiln_session_create(m, &(kiln_session_options){.threads = threads}, &s);
    if (st != KILN_OK) {
        rc = cli_error("bench", st);
        goto done;
    }
    kiln_session_set_profiling(s, profile);
    for (int r = -warmup; r < runs; r++) {
        if (r == 0 && profile)
            kiln_session_profile_reset(s); /* the warm-up runs do not count */
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
    double total = 0;
    for (int r = 0; r < runs; r++)
        total += times[r];
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double median = runs % 2 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    if (json) {
        cli_buf js = {0};
        cli_buf_printf(&js, "{\"model\": ");
        cli_buf_json_string(&js, path);
        cli_buf_printf(&js, ", \"threads\": %d, \"runs\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, "
                              "\"peak_arena_bytes\": %zu",
                         threads, runs, median, times[0], kiln_session_peak_bytes(s));
        if (profile)
            st = profile_report(s, runs, total / runs, top, 1, &js);
        cli_buf_printf(&js, "}\n");
        if (st == KILN_OK && (js.failed || !js.data))
            st = KILN_ERR_NOMEM;
        if (st == KILN_OK)
            fputs(js.data, stdout);
        free(js.data);
    } else {
        printf("%s: median %.3f ms, min %.3f ms over %d runs (%d threads); arena peak %.1f MiB\n", path, median,
               times[0], runs, threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), (double)kiln_session_peak_bytes(s) / (1 << 20));
        if (profile)
            st = profile_report(s, runs, total / runs, top, 0, NULL);
    }
    if (st != KILN_OK)
        rc = cli_error("bench", st);
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
