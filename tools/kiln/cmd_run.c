/* kiln run MODEL -i NAME=VALUE ... [--out DIR] [--threads N] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln run MODEL [-i NAME=VALUE]... [--out DIR] [--threads N]\n\n"
               "Runs the model on kiln's CPU engine.\n\n"
               "  -i, --input NAME=VALUE  an input: @file.npy, @file.pb, a number,\n"
               "                          true/false or a nested list like [[1,2],[3,4]]\n"
               "  --out DIR               write each output as DIR/<output name>.npy\n"
               "                          (without it, shapes and a preview are printed)\n"
               "  --threads N             worker threads (default: one per core)\n");
}

static kiln_dtype input_dtype(const kiln_model *m, const char *name) {
    /* Literal types follow the declared input type. */
    extern kiln_dtype kiln_model_input_dtype(const kiln_model *m, const char *name);
    return kiln_model_input_dtype(m, name);
}

int kiln_cmd_run(int argc, char **argv) {
    const char *path = NULL, *out_dir = NULL;
    int threads = 0;
    char **in_args = calloc((size_t)argc + 1, sizeof *in_args);
    size_t n_in = 0;
    int rc = 0;
    if (!in_args)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            free(in_args);
            return 0;
        } else if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && i + 1 < argc) {
            in_args[n_in++] = argv[++i];
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *e;
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 1 || v > 256) {
                fprintf(stderr, "kiln run: --threads takes a number from 1 to 256\n");
                free(in_args);
                return 2;
            }
            threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln run: unknown option or missing value: '%s'\n", a);
            help(stderr);
            free(in_args);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kiln run: unexpected argument '%s'\n", a);
            free(in_args);
            return 2;
        }
    }
    if (!path) {
        help(stderr);
        free(in_args);
        return 2;
    }
    kiln_model *m = NULL;
    kiln_session *s = NULL;
    const char **names = calloc(n_in + 1, sizeof *names);
    kiln_tensor **vals = calloc(n_in + 1, sizeof *vals);
    kiln_tensor **outs = NULL;
    size_t n_out = 0;
    kiln_status st = names && vals ? kiln_model_load(path, &m) : KILN_ERR_NOMEM;
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    for (size_t i = 0; i < n_in; i++) {
        char *name, *value;
        if (!cli_split(in_args[i], &name, &value)) {
            fprintf(stderr, "kiln run: -i takes NAME=VALUE, got '%s'\n", in_args[i]);
            rc = 2;
            goto done;
        }
        names[i] = name;
        st = kiln_value_parse(value, input_dtype(m, name), &vals[i]);
        if (st != KILN_OK) {
            fprintf(stderr, "kiln run: input '%s': %s\n", name, kiln_last_error());
            rc = 2;
            goto done;
        }
    }
    if (out_dir) {
        struct stat sb;
        if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "kiln run: output folder '%s' does not exist\n", out_dir);
            rc = 2;
            goto done;
        }
    }
    kiln_session_options opts = {.threads = threads};
    st = kiln_session_create(m, &opts, &s);
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    n_out = kiln_model_output_count(m);
    outs = calloc(n_out + 1, sizeof *outs);
    if (!outs) {
        rc = 1;
        goto done;
    }
    st = kiln_session_run(s, n_in, names, (const kiln_tensor *const *)vals, n_out, NULL, outs);
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    for (size_t i = 0; i < n_out; i++) {
        const char *oname = kiln_model_output_name(m, i);
        if (out_dir) {
            size_t len = strlen(out_dir) + strlen(oname) + 8;
            char *p = malloc(len);
            if (!p) {
                rc = 1;
                goto done;
            }
            snprintf(p, len, "%s/%s.npy", out_dir, oname);
            for (char *c = p + strlen(out_dir) + 1; *c; c++)
                if (*c == '/')
                    *c = '_';
            st = kiln_npy_write(outs[i], p);
            free(p);
            if (st != KILN_OK) {
                rc = cli_error("run", st);
                goto done;
            }
        } else {
            cli_print_tensor(oname, outs[i], stdout);
        }
    }
done:
    for (size_t i = 0; outs && i < n_out; i++)
        kiln_tensor_destroy(outs[i]);
    free(outs);
    for (size_t i = 0; vals && i < n_in; i++)
        kiln_tensor_destroy(vals[i]);
    free(vals);
    free(names);
    free(in_args);
    kiln_session_destroy(s);
    kiln_model_destroy(m);
    return rc;
}
