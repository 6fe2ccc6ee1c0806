/* kiln: freeze, run and verify ONNX models. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"info", kiln_cmd_info, "show a model's inputs, outputs, opsets and operators"},
    {"run", kiln_cmd_run, "run a model on kiln's CPU engine"},
    {"freeze", kiln_cmd_freeze, "bake inputs and dimensions into a model and simplify it"},
    {"check", kiln_cmd_check, "compare a frozen model with its original on random inputs"},
    {"convert", kiln_cmd_convert, "rewrite a model for another ai.onnx opset"},
    {"bench", kiln_cmd_bench, "time a model on kiln's CPU engine"},
    {"show", kiln_cmd_show, "draw a model's graph (Graphviz DOT, SVG, PNG)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: kiln <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'kiln <command> --help' describes a command.\n");
}

int cli_error(const char *cmd, kiln_status st) {
    fprintf(stderr, "kiln %s: %s\n", cmd, kiln_last_error()[0] ? kiln_last_error() : kiln_status_name(st));
    return st == KILN_ERR_MISMATCH ? 3 : st == KILN_ERR_ARG ? 2 : 1;
}

bool cli_make_dirs(const char *cmd, const char *dir, bool parent_of) {
    char *buf = strdup(dir);
    if (!buf) {
        fprintf(stderr, "kiln %s: out of memory\n", cmd);
        return false;
    }
    /* dirname may return a static "." (a bare file name): work on a copy */
    char *p = strdup(parent_of ? dirname(buf) : buf);
    free(buf);
    if (!p) {
        fprintf(stderr, "kiln %s: out of memory\n", cmd);
        return false;
    }
    buf = p;
    size_t n = strlen(p);
    bool ok = true;
    /* Each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= n && ok; i++) {
        if (i < n && p[i] != '/')
            continue;
        char c = p[i];
        p[i] = 0;
        struct stat sb;
        if (stat(p, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "kiln %s: cannot create folder '%s': '%s' is not a folder\n", cmd, dir, p);
                ok = false;
            }
        } else if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "kiln %s: cannot create folder '%s': %s\n", cmd, p, strerror(errno));
            ok = false;
        }
        p[i] = c;
    }
    free(buf);
    return ok;
}

bool cli_split(char *arg, char **name, char **value) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return false;
    *eq = 0;
    *name = arg;
    *value = eq + 1;
    return true;
}

int cli_parse_values(const char *cmd, const char *opt, const kiln_model *m, size_t n, char **args,
                     const char **names, kiln_tensor **vals) {
    for (size_t i = 0; i < n; i++) {
        char *name, *value;
        if (!cli_split(args[i], &name, &value)) {
            fprintf(stderr, "kiln %s: %s takes NAME=VALUE, got '%s'\n", cmd, opt, args[i]);
            return 2;
        }
        names[i] = name;
        kiln_value_kind kind = kiln_model_input_kind(m, name);
        kiln_status st;
        if (kind == KILN_VALUE_SEQUENCE || kind == KILN_VALUE_OPTIONAL) {
            /* only files hold them: a SequenceProto / OptionalProto .pb */
            size_t len = strlen(value);
            if (value[0] != '@' || len < 4 || strcmp(value + len - 3, ".pb") != 0) {
                fprintf(stderr, "kiln %s: %s %s: the input is a%s %s: give it as @FILE.pb (an ONNX %s)\n", cmd, opt,
                        name, kind == KILN_VALUE_OPTIONAL ? "n" : "", kiln_value_kind_name(kind),
                        kind == KILN_VALUE_SEQUENCE ? "SequenceProto" : "OptionalProto");
                return 2;
            }
            st = kiln_pb_read_value(value + 1, kind, &vals[i]);
        } else {
            st = kiln_value_parse(value, kiln_model_input_dtype(m, name), &vals[i]);
        }
        if (st != KILN_OK) {
            fprintf(stderr, "kiln %s: %s %s: %s\n", cmd, opt, name, kiln_last_error());
            return st == KILN_ERR_NOMEM ? 1 : 2;
        }
    }
    return -1;
}

static void print_value(const char *name, const kiln_tensor *v, FILE *f, int depth) {
    kiln_value_kind k = kiln_value_kind_of(v);
    if (k == KILN_VALUE_TENSOR) {
        cli_print_tensor(name, v, f);
        return;
    }
    char sub[512];
    if (k == KILN_VALUE_OPTIONAL) {
        const kiln_tensor *x = kiln_optional_value(v);
        if (!x) {
            fprintf(f, "%s: optional, empty\n", name);
            return;
        }
        snprintf(sub, sizeof sub, "%.400s (optional)", name);
        print_value(sub, x, f, depth + 1);
        return;
    }
    size_t n = kiln_sequence_length(v), show = n < 8 ? n : 8;
    fprintf(f, "%s: sequence of %zu\n", name, n);
    for (size_t i = 0; i < show && depth < 8; i++) {
        snprintf(sub, sizeof sub, "%*s[%zu]", 2 * (depth + 1), "", i);
        print_value(sub, kiln_sequence_at(v, i), f, depth + 1);
    }
    if (n > show)
        fprintf(f, "%*s...\n", 2 * (depth + 1), "");
}

void cli_print_tensor(const char *name, const kiln_tensor *t, FILE *f) {
    if (kiln_value_kind_of(t) != KILN_VALUE_TENSOR) {
        print_value(name, t, f, 0);
        return;
    }
    int rank = kiln_tensor_rank(t);
    const int64_t *d = kiln_tensor_dims(t);
    fprintf(f, "%s: %s[", name, kiln_dtype_name(kiln_tensor_dtype(t)));
    for (int i = 0; i < rank; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)d[i]);
    fprintf(f, "]");
    int64_t n = kiln_tensor_numel(t);
    int64_t show = n < 8 ? n : 8;
    fprintf(f, " = [");
    const void *p = kiln_tensor_data_const(t);
    for (int64_t i = 0; i < show; i++) {
        if (i)
            fprintf(f, ", ");
        switch (kiln_tensor_dtype(t)) {
        case KILN_DTYPE_FLOAT: fprintf(f, "%.6g", ((const float *)p)[i]); break;
        case KILN_DTYPE_DOUBLE: fprintf(f, "%.6g", ((const double *)p)[i]); break;
        case KILN_DTYPE_INT64: fprintf(f, "%lld", (long long)((const int64_t *)p)[i]); break;
        case KILN_DTYPE_INT32: fprintf(f, "%d", ((const int32_t *)p)[i]); break;
        case KILN_DTYPE_INT8: fprintf(f, "%d", ((const int8_t *)p)[i]); break;
        case KILN_DTYPE_UINT8: fprintf(f, "%u", ((const uint8_t *)p)[i]); break;
        case KILN_DTYPE_BOOL: fprintf(f, "%s", ((const uint8_t *)p)[i] ? "true" : "false"); break;
        case KILN_DTYPE_STRING: {
            size_t len;
            const char *s = kiln_tensor_string(t, i, &len);
            fprintf(f, "\"%.*s\"", (int)(len > 32 ? 32 : len), s);
            break;
        }
        default: {
            double v;
            if (kiln_tensor_element_f64(t, i, &v) == KILN_OK)
                fprintf(f, "%.6g", v); /* float16, float8, int4, ... */
            else
                fprintf(f, "?"); /* complex */
            break;
        }
        }
    }
    fprintf(f, "%s]\n", n > show ? ", ..." : "");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kiln %s\n", kiln_version(NULL, NULL, NULL));
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
