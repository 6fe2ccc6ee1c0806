/* kiln freeze MODEL -o OUT [--bind NAME=VALUE]... [--dim SYMBOL=N]... [--shape INPUT=d0,d1,...]... */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"


static void help(FILE *f) {
    fprintf(f,
            "usage: kiln freeze MODEL -o OUT [--bind NAME=VALUE]... [--dim SYMBOL=N]...\n"
            "                   [--shape INPUT=d0,d1,...]... [--unroll-limit N] [--fold-limit BYTES]\n"
            "                   [--prune-dead-inputs] [--keep-functions] [--report FILE.json]\n"
            "                   [--external-data FILE | --inline] [--size-threshold BYTES]\n"
            "                   [--target-opset N] [--verify] [--picture FILE.svg] [--quiet]\n\n"
            "Bakes inputs and dimensions into the model, as functools.partial(model.forward,\n"
            "**frozen) would in PyTorch, then folds what became static: shape arithmetic,\n"
            "constant subgraphs (run by kiln's engine), If on constant conditions, Loops with\n"
            "constant trip counts, identities; and prunes what is left unused. Calls of the\n"
            "model's local functions are inlined first (so folding sees through them) and\n"
            "the functions nothing calls any more are dropped.\n\n"
            "  -o, --output OUT        the frozen model (written atomically)\n"
            "  --bind NAME=VALUE       input NAME becomes a constant: @file.npy, @file.pb, a\n"
            "                          number, true/false or a nested list like [[1,2],[3,4]]\n"
            "  --dim SYMBOL=N          every dimension named SYMBOL becomes N\n"
            "  --shape INPUT=d0,d1,..  fixes the dimensions of an input\n"
            "  --unroll-limit N        unroll Loops of at most N iterations (default 64)\n"
            "  --fold-limit BYTES      skip folds that grow the model beyond BYTES (default 1048576)\n"
            "  --prune-dead-inputs     also remove graph inputs nothing reads\n"
            "  --keep-functions        leave calls of local functions, and the functions, as they are\n"
            "  --target-opset N        convert to ai.onnx opset N as the last step (see kiln convert)\n"
            "  --report FILE.json      write the report as JSON\n"
            "  --external-data FILE    tensors go to the data file FILE beside OUT (64-byte\n"
            "                          aligned); without it a model loaded with external data\n"
            "                          is saved with external data, in OUT.<hash>.data\n"
            "  --inline                every tensor inside OUT (unless OUT would pass protobuf's\n"
            "                          2 GB limit: such a model always gets external data)\n"
            "  --size-threshold BYTES  with external data, tensors of at least BYTES go to the\n"
            "                          data file (default 1024); asks for external data\n"
            "  --verify                compare with the original (kiln check) before writing;\n"
            "                          nothing is written if outputs differ\n"
            "  --picture FILE          draw the original, with what freezing removed, folded and\n"
            "                          bound marked, beside the frozen model (see kiln show:\n"
            "                          .dot is DOT text, .svg/.png/.pdf need Graphviz)\n"
            "  --quiet                 no report on stderr\n");
}

static bool parse_i64(const char *s, int64_t *out) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (!*s || *e || errno)
        return false;
    *out = v;
    return true;
}

/* After an --inline save: a data file of kiln's name for OUT means the model
 * would have passed protobuf's 2 GB limit (an inline save removes them). */
static void note_forced_external(const char *out) {
    char *d = strdup(out), *b = strdup(out);
    if (d && b) {
        const char *dir = dirname(d), *base = basename(b);
        size_t bl = strlen(base);
        DIR *dh = opendir(dir);
        for (struct dirent *de; dh && (de = readdir(dh));)
            if (!strncmp(de->d_name, base, bl) && de->d_name[bl] == '.' && strlen(de->d_name) == bl + 22 &&
                !strcmp(de->d_name + bl + 17, ".data")) {
                fprintf(stderr, "kiln freeze: %s would pass protobuf's 2 GB limit inline: its tensors are in %s\n",
                        out, de->d_name);
                break;
            }
        if (dh)
            closedir(dh);
    }
    free(d);
    free(b);
}

int kiln_cmd_freeze(int argc, char **argv) {
    const char *path = NULL, *out = NULL, *report_path = NULL, *picture = NULL;
    bool verify = false, quiet = false;
    kiln_freeze_options fo = {0};
    kiln_save_options so = {0};
    bool inline_all = false;
    char **binds = calloc((size_t)argc + 1, sizeof *binds), **dims = calloc((size_t)argc + 1, sizeof *dims),
         **shapes = calloc((size_t)argc + 1, sizeof *shapes);
    size_t nb = 0, nd = 0, ns = 0;
    int rc = 0;
    kiln_model *m = NULL, *orig = NULL;
    kiln_freeze_report *rep = NULL;
    kiln_tensor **vals = calloc((size_t)argc + 1, sizeof *vals);
    const char **names = calloc((size_t)argc + 1, sizeof *names);
    char *text = NULL;
    kiln_status st;
    if (!binds || !dims || !shapes || !vals || !names) {
        rc = 1;
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            goto done;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--bind") && has) {
            binds[nb++] = argv[++i];
        } else if (!strcmp(a, "--dim") && has) {
            dims[nd++] = argv[++i];
        } else if (!strcmp(a, "--shape") && has) {
            shapes[ns++] = argv[++i];
        } else if (!strcmp(a, "--unroll-limit") && has) {
            if (!parse_i64(argv[++i], &fo.unroll_limit) || fo.unroll_limit < 0) {
                fprintf(stderr, "kiln freeze: --unroll-limit takes a number >= 0\n");
                rc = 2;
                goto done;
            }
            if (fo.unroll_limit == 0)
                fo.unroll_limit = -1;
        } else if (!strcmp(a, "--fold-limit") && has) {
            if (!parse_i64(argv[++i], &fo.fold_limit) || fo.fold_limit < 0) {
                fprintf(stderr, "kiln freeze: --fold-limit takes a number of bytes >= 0\n");
                rc = 2;
                goto done;
            }
            if (fo.fold_limit == 0)
                fo.fold_limit = 1; /* 0 bytes: nothing may grow */
        } else if (!strcmp(a, "--external-data") && has) {
            so.external_file = argv[++i];
            so.external = 1;
        } else if (!strcmp(a, "--inline")) {
            inline_all = true;
        } else if (!strcmp(a, "--size-threshold") && has) {
            int64_t v;
            if (!parse_i64(argv[++i], &v) || v < 1) {
                fprintf(stderr, "kiln freeze: --size-threshold takes a number of bytes >= 1\n");
                rc = 2;
                goto done;
            }
            so.external_threshold = (size_t)v;
        } else if (!strcmp(a, "--target-opset") && has) {
            if (!parse_i64(argv[++i], &fo.target_opset) || fo.target_opset < 1 || fo.target_opset > 28) {
                fprintf(stderr, "kiln freeze: --target-opset takes an ai.onnx opset from 1 to 28\n");
                rc = 2;
                goto done;
            }
        } else if (!strcmp(a, "--report") && has) {
            report_path = argv[++i];
        } else if (!strcmp(a, "--picture") && has) {
            picture = argv[++i];
            if (!cli_picture_format_ok("freeze", picture)) {
                rc = 2;
                goto done;
            }
        } else if (!strcmp(a, "--prune-dead-inputs")) {
            fo.prune_dead_inputs = 1;
        } else if (!strcmp(a, "--keep-functions")) {
            fo.keep_functions = 1;
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln freeze: unknown option or missing value: '%s'\n", a);
            help(stderr);
            rc = 2;
            goto done;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kiln freeze: unexpected argument '%s'\n", a);
            rc = 2;
            goto done;
        }
    }
    if (inline_all && (so.external_file || so.external_threshold)) {
        fprintf(stderr, "kiln freeze: --inline cannot be combined with --external-data or --size-threshold\n");
        rc = 2;
        goto done;
    }
    if (inline_all)
        so.external = -1;
    if (!path || !out) {
        fprintf(stderr, "kiln freeze: %s\n", !path ? "no model given" : "no output given (-o OUT)");
        help(stderr);
        rc = 2;
        goto done;
    }
    if ((st = kiln_model_load(path, &m)) != KILN_OK || (st = kiln_freeze_report_create(&rep)) != KILN_OK) {
        rc = cli_error("freeze", st);
        goto done;
    }
    if (kiln_model_validate(m, NULL) != KILN_OK) {
        fprintf(stderr, "kiln freeze: %s: %s; nothing written\n", path, kiln_last_error());
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < nd; i++) {
        char *name, *value;
        int64_t v;
        if (!cli_split(dims[i], &name, &value) || !parse_i64(value, &v)) {
            fprintf(stderr, "kiln freeze: --dim takes SYMBOL=N, got '%s'\n", dims[i]);
            rc = 2;
            goto done;
        }
        if ((st = kiln_model_fix_dim(m, name, v, rep)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        char *name, *value;
        int64_t d[16];
        int rank = 0;
        if (!cli_split(shapes[i], &name, &value)) {
            fprintf(stderr, "kiln freeze: --shape takes INPUT=d0,d1,..., got '%s'\n", shapes[i]);
            rc = 2;
            goto done;
        }
        for (char *tok = strtok(value, ","); tok; tok = strtok(NULL, ",")) {
            if (rank == 16 || !parse_i64(tok, &d[rank])) {
                fprintf(stderr, "kiln freeze: --shape %s: '%s' is not a dimension\n", name, tok);
                rc = 2;
                goto done;
            }
            rank++;
        }
        if ((st = kiln_model_fix_shape(m, name, rank, d, rep)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
    }
    if ((rc = cli_parse_values("freeze", "--bind", m, nb, binds, names, vals)) >= 0)
        goto done;
    rc = 0;
    for (size_t i = 0; i < nb; i++) {
        if ((st = kiln_model_bind(m, names[i], vals[i], rep)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
    }
    if ((st = kiln_model_freeze(m, &fo, rep)) != KILN_OK) {
        fprintf(stderr, "kiln freeze: %s: %s; nothing written\n", path, kiln_last_error());
        rc = st == KILN_ERR_ARG ? 2 : 1;
        goto done;
    }
    if (!quiet && kiln_report_text(rep, &text) == KILN_OK) {
        fputs(text, stderr);
        free(text);
        text = NULL;
    }
    if (verify) {
        if ((st = kiln_model_load(path, &orig)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
        kiln_check_options co = {.runs = 3, .seed = 1};
        st = kiln_check(orig, m, nb, names, (const kiln_tensor *const *)vals, &co, &text);
        if (text && (!quiet || st != KILN_OK))
            fputs(text, stderr);
        if (st != KILN_OK) {
            fprintf(stderr, "kiln freeze: verification failed, nothing written\n");
            rc = cli_error("freeze", st);
            goto done;
        }
    }
    if (!cli_make_dirs("freeze", out, true) || (report_path && !cli_make_dirs("freeze", report_path, true))) {
        rc = 1;
        goto done;
    }
    if ((st = kiln_model_save(m, out, &so)) != KILN_OK) {
        rc = cli_error("freeze", st);
        goto done;
    }
    if (inline_all)
        note_forced_external(out);
    if (picture) {
        char *dot = NULL;
        if (!orig && (st = kiln_model_load(path, &orig)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
        kiln_picture_options po = {.frozen = m, .n_bound = nb, .bound = names};
        if ((st = kiln_model_picture(orig, &po, &dot)) != KILN_OK) {
            rc = cli_error("freeze", st);
            goto done;
        }
        int prc = cli_write_picture("freeze", dot, picture);
        free(dot);
        if (prc) {
            rc = prc;
            goto done;
        }
    }
    if (report_path) {
        char *json = NULL;
        if ((st = kiln_report_json(rep, &json)) == KILN_OK) {
            FILE *f = fopen(report_path, "w");
            if (!f || fputs(json, f) < 0 || fclose(f) != 0) {
                fprintf(stderr, "kiln freeze: cannot write report '%s'\n", report_path);
                rc = 1;
            }
        } else {
            rc = cli_error("freeze", st);
        }
        free(json);
    }
done:
    free(text);
    for (size_t i = 0; vals && i < nb; i++)
        kiln_tensor_destroy(vals[i]);
    free(vals);
    free(names);
    free(binds);
    free(dims);
    free(shapes);
    kiln_freeze_report_destroy(rep);
    kiln_model_destroy(m);
    kiln_model_destroy(orig);
    return rc;
}
