/* kiln run MODEL -i NAME=VALUE ... [--out DIR] [--threads N]
 *          [--state IN=OUT | --state auto | --state 'past_*=present_*']...
 *          [--chunks N | --chunk-size K] [--chunk-axis A] [--chunk-input NAME]...
 *          [--state-in DIR] [--state-out DIR] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln run MODEL [-i NAME=VALUE]... [--out DIR] [--threads N]\n"
               "                [--state IN=OUT|auto|PATTERN]... [--chunks N | --chunk-size K]\n"
               "                [--chunk-axis A] [--chunk-input NAME]... [--state-in DIR] [--state-out DIR]\n\n"
               "Runs the model on kiln's CPU engine.\n\n"
               "  -i, --input NAME=VALUE  an input: @file.npy, @file.pb, a number,\n"
               "                          true/false or a nested list like [[1,2],[3,4]];\n"
               "                          sequence and optional inputs: @file.pb (SequenceProto,\n"
               "                          OptionalProto)\n"
               "  --out DIR               write each output as DIR/<output name>.npy (DIR is created;\n"
               "                          .pb for float8, float6, float4 and 4-/2-bit integers, and\n"
               "                          SequenceProto / OptionalProto .pb for sequences and optionals)\n"
               "                          (without it, shapes and a preview are printed)\n"
               "  --out-format pb|auto    pb: every output as an ONNX TensorProto .pb; auto\n"
               "                          (default): .npy where numpy holds the type, else .pb\n"
               "  --threads N             worker threads (default: one per core)\n\n"
               "Streaming with recurrent state:\n"
               "  --state IN=OUT          output OUT feeds input IN on the next call\n"
               "  --state auto            pairs of LSTM/GRU/RNN initial_h/c and Y_h/c wired to\n"
               "                          the graph's inputs and outputs\n"
               "  --state 'past_*=present_*'  pairs named by a convention\n"
               "  --chunks N              split the chunked inputs into N chunks along the axis\n"
               "  --chunk-size K          ... or into chunks of K (the last may be shorter)\n"
               "  --chunk-axis A          axis to split and to join outputs along (default 0)\n"
               "  --chunk-input NAME      an input to split (default: every given input that is\n"
               "                          not a state input)\n"
               "  --state-in DIR          initial state from DIR/<state input>.npy\n"
               "  --state-out DIR         final state to DIR/<state input>.npy\n"
               "State starts as zeros unless given with -i or --state-in. Outputs that are\n"
               "not state are joined along the chunk axis; state outputs hold the final state.\n");
}

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* "DIR/<name>.npy" for a value name ('/' in the name becomes '_': a value
 * name is not a path, it never leaves the folder); NULL when out of memory. */
static char *npy_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%s.npy", dir, name);
    for (char *c = p + strlen(dir) + 1; *c; c++)
        if (*c == '/')
            *c = '_';
    return p;
}

/* Returns the exit code on failure (after printing why), -1 on success. */
static int write_output(const char *dir, const char *name, const kiln_tensor *t, bool pb) {
    char *p = npy_path(dir, name);
    if (!p) {
        fprintf(stderr, "kiln run: out of memory\n");
        return 1;
    }
    kiln_status st;
    kiln_dtype dt = kiln_tensor_dtype(t);
    if (pb || kiln_value_kind_of(t) != KILN_VALUE_TENSOR || dt >= KILN_DTYPE_FLOAT8E4M3FN || dt == KILN_DTYPE_BFLOAT16) {
        /* numpy has no such types: an ONNX TensorProto file instead (and
         * SequenceProto / OptionalProto for sequences and optionals) */
        strcpy(p + strlen(p) - 4, ".pb");
        st = kiln_pb_write(t, p);
    } else {
        st = kiln_npy_write(t, p);
    }
    free(p);
    return st == KILN_OK ? -1 : cli_error("run", st);
}

typedef struct run_args {
    const char *path, *out_dir, *state_in, *state_out;
    bool out_pb; /* --out-format pb */
    int threads;
    char **in_args, **states, **chunk_inputs;
    size_t n_in, n_states, n_chunk_inputs;
    long chunks, chunk_size, chunk_axis;
} run_args;

static int parse(int argc, char **argv, run_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            help(stdout);
            return 0;
        } else if ((!strcmp(s, "-i") || !strcmp(s, "--input")) && has) {
            a->in_args[a->n_in++] = argv[++i];
        } else if (!strcmp(s, "--out") && has) {
            a->out_dir = argv[++i];
        } else if (!strcmp(s, "--out-format") && has) {
            const char *f = argv[++i];
            if (strcmp(f, "pb") && strcmp(f, "auto")) {
                fprintf(stderr, "kiln run: --out-format takes pb or auto, got '%s'\n", f);
                return 2;
            }
            a->out_pb = !strcmp(f, "pb");
        } else if (!strcmp(s, "--state") && has) {
            a->states[a->n_states++] = argv[++i];
        } else if (!strcmp(s, "--chunk-input") && has) {
            a->chunk_inputs[a->n_chunk_inputs++] = argv[++i];
        } else if (!strcmp(s, "--state-in") && has) {
            a->state_in = argv[++i];
        } else if (!strcmp(s, "--state-out") && has) {
            a->state_out = argv[++i];
        } else if ((!strcmp(s, "--threads") || !strcmp(s, "--chunks") || !strcmp(s, "--chunk-size") ||
                    !strcmp(s, "--chunk-axis")) &&
                   has) {
            char *e;
            errno = 0;
            long v = strtol(argv[++i], &e, 10);
            bool axis = !strcmp(s, "--chunk-axis");
            if (*e || !*argv[i] || errno || v < (axis ? 0 : 1) || v > 1000000000L) {
                fprintf(stderr, "kiln run: %s takes a %s number, got '%s'\n", s, axis ? "non-negative" : "positive",
                        argv[i]);
                return 2;
            }
            if (!strcmp(s, "--threads"))
                a->threads = (int)(v > 256 ? 256 : v);
            else if (!strcmp(s, "--chunks"))
                a->chunks = v;
            else if (!strcmp(s, "--chunk-size"))
                a->chunk_size = v;
            else
                a->chunk_axis = v;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "kiln run: unknown option or missing value: '%s'\n", s);
            help(stderr);
            return 2;
        } else if (!a->path) {
            a->path = s;
        } else {
            fprintf(stderr, "kiln run: unexpected argument '%s'\n", s);
            return 2;
        }
    }
    if (!a->path) {
        help(stderr);
        return 2;
    }
    if (a->chunks && a->chunk_size) {
        fprintf(stderr, "kiln run: give --chunks or --chunk-size, not both\n");
        return 2;
    }
    return -1; /* go on */
}

int kiln_cmd_run(int argc, char **argv) {
    run_args a = {.chunk_axis = 0};
    a.in_args = calloc((size_t)argc + 1, sizeof *a.in_args);
    a.states = calloc((size_t)argc + 1, sizeof *a.states);
    a.chunk_inputs = calloc((size_t)argc + 1, sizeof *a.chunk_inputs);
    int rc = 0;
    kiln_model *m = NULL;
    kiln_session *s = NULL;
    const char **names = NULL;
    kiln_tensor **vals = NULL, **outs = NULL;
    unsigned char *split = NULL;
    size_t n_out = 0;
    if (!a.in_args || !a.states || !a.chunk_inputs) {
        rc = 1;
        goto done;
    }
    rc = parse(argc, argv, &a);
    if (rc >= 0)
        goto done;
    rc = 0;
    if (a.state_in && !is_dir(a.state_in)) {
        fprintf(stderr, "kiln run: folder '%s' does not exist\n", a.state_in);
        rc = 2;
        goto done;
    }
    /* Output folders are created when missing. */
    if ((a.out_dir && !cli_make_dirs("run", a.out_dir, false)) ||
        (a.state_out && !cli_make_dirs("run", a.state_out, false))) {
        rc = 1;
        goto done;
    }
    kiln_status st = kiln_model_load(a.path, &m);
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    names = calloc(a.n_in + 1, sizeof *names);
    vals = calloc(a.n_in + 1, sizeof *vals);
    if (!names || !vals) {
        rc = 1;
        goto done;
    }
    if ((rc = cli_parse_values("run", "-i", m, a.n_in, a.in_args, names, vals)) >= 0)
        goto done;
    rc = 0;
    st = kiln_session_create(m, &(kiln_session_options){.threads = a.threads}, &s);
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    for (size_t i = 0; i < a.n_states && st == KILN_OK; i++) {
        size_t added = 0;
        char *in, *out;
        if (!strcmp(a.states[i], "auto")) {
            st = kiln_session_add_found_states(s, NULL, &added);
            if (st == KILN_OK && added == 0)
                fprintf(stderr, "kiln run: --state auto found no recurrent state pairs\n");
        } else if (strchr(a.states[i], '*')) {
            st = kiln_session_add_found_states(s, a.states[i], &added);
            if (st == KILN_OK && added == 0)
                fprintf(stderr, "kiln run: no input/output names match '%s'\n", a.states[i]);
        } else if (cli_split(a.states[i], &in, &out)) {
            st = kiln_session_add_state(s, in, out);
        } else {
            fprintf(stderr, "kiln run: --state takes IN=OUT, auto or a pattern like 'past_*=present_*'\n");
            rc = 2;
            goto done;
        }
    }
    if (st == KILN_OK && a.state_in)
        st = kiln_session_load_state(s, a.state_in);
    if (st != KILN_OK) {
        rc = cli_error("run", st);
        goto done;
    }
    for (size_t k = 0; k < a.n_chunk_inputs; k++) {
        bool found = false;
        for (size_t i = 0; i < a.n_in; i++)
            found |= !strcmp(a.chunk_inputs[k], names[i]);
        if (!found) {
            fprintf(stderr, "kiln run: --chunk-input '%s' is not given with -i\n", a.chunk_inputs[k]);
            rc = 2;
            goto done;
        }
    }
    n_out = kiln_model_output_count(m);
    outs = calloc(n_out + 1, sizeof *outs);
    split = calloc(a.n_in + 1, sizeof *split);
    if (!outs || !split) {
        rc = 1;
        goto done;
    }
    if (a.chunks || a.chunk_size) {
        /* --chunk-input names the inputs to split; without it the library
         * splits every given input that is not a state input */
        for (size_t i = 0; i < a.n_in; i++)
            for (size_t k = 0; k < a.n_chunk_inputs; k++)
                split[i] |= !strcmp(a.chunk_inputs[k], names[i]);
        kiln_chunk_options co = {.axis = (int)a.chunk_axis,
                                 .chunk_size = a.chunk_size,
                                 .chunks = a.chunks,
                                 .split = a.n_chunk_inputs ? split : NULL};
        st = kiln_session_run_chunked(s, a.n_in, names, (const kiln_tensor *const *)vals, &co, n_out, NULL, outs);
    } else {
        st = kiln_session_run(s, a.n_in, names, (const kiln_tensor *const *)vals, n_out, NULL, outs);
    }
    if (st != KILN_OK) {
        cli_error("run", st);
        rc = st == KILN_ERR_ARG ? 2 : 1;
        goto done;
    }
    for (size_t o = 0; o < n_out; o++) {
        const char *oname = kiln_model_output_name(m, o);
        if (!a.out_dir) {
            cli_print_tensor(oname, outs[o], stdout);
        } else if ((rc = write_output(a.out_dir, oname, outs[o], a.out_pb)) >= 0) {
            goto done;
        }
        rc = 0;
    }
    if (a.state_out) {
        st = kiln_session_save_state(s, a.state_out);
        if (st != KILN_OK)
            rc = cli_error("run", st);
    }
done:
    for (size_t i = 0; outs && i < n_out; i++)
        kiln_tensor_destroy(outs[i]);
    free(outs);
    for (size_t i = 0; vals && i < a.n_in; i++)
        kiln_tensor_destroy(vals[i]);
    free(vals);
    free(split);
    free(names);
    free(a.in_args);
    free(a.states);
    free(a.chunk_inputs);
    kiln_session_destroy(s);
    kiln_model_destroy(m);
    return rc;
}
