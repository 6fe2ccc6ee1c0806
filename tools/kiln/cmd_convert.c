/* kiln convert MODEL -o OUT --opset N [--report FILE] [--verify] [--quiet] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln convert MODEL -o OUT --opset N [--report FILE.json] [--verify] [--quiet]\n\n"
            "Rewrites the model for another ai.onnx opset (1..28), down or up. Every node\n"
            "moves one schema version at a time: attributes that became inputs (and back)\n"
            "when their value is constant, attributes the target lacks dropped when they\n"
            "hold their default, element types the target does not allow computed in a\n"
            "wider type between Casts where that is exact. Operators the target opset\n"
            "lacks (LayerNormalization, Gelu, Attention, ...) become their decompositions\n"
            "into operators it has. Local functions are inlined first.\n\n"
            "A node that cannot be expressed at the target is refused: nothing is written,\n"
            "and the message names the node, its operator and why (the report lists all).\n\n"
            "  -o, --output OUT     the converted model (written atomically)\n"
            "  --opset N            the ai.onnx opset to convert to\n"
            "  --report FILE.json   write every change (node, from and to opset, how) as JSON\n"
            "  --verify             run the original and the converted model on the same seeded\n"
            "                       random inputs (as kiln check) and write nothing if they differ\n"
            "  --quiet              no report on stderr\n");
}

static int write_report(const kiln_freeze_report *rep, const char *path) {
    char *json = NULL;
    kiln_status st = kiln_report_json(rep, &json);
    if (st != KILN_OK)
        return cli_error("convert", st);
    int rc = 0;
    if (!cli_make_dirs("convert", path, true)) {
        rc = 1;
    } else {
        FILE *f = fopen(path, "w");
        if (!f || fputs(json, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "kiln convert: cannot write report '%s'\n", path);
            rc = 1;
        }
    }
    free(json);
    return rc;
}

int kiln_cmd_convert(int argc, char **argv) {
    const char *path = NULL, *out = NULL, *report_path = NULL;
    int64_t opset = 0;
    bool verify = false, quiet = false;
    int rc = 0;
    kiln_model *m = NULL, *orig = NULL;
    kiln_freeze_report *rep = NULL;
    char *text = NULL;
    kiln_status st;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--opset") && has) {
            char *e;
            errno = 0;
            long long v = strtoll(argv[++i], &e, 10);
            if (!*argv[i] || *e || errno || v < 1 || v > 28) {
                fprintf(stderr, "kiln convert: --opset takes an ai.onnx opset from 1 to 28, got '%s'\n", argv[i]);
                return 2;
            }
            opset = v;
        } else if (!strcmp(a, "--report") && has) {
            report_path = argv[++i];
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln convert: unknown option or missing value: '%s'\n", a);
            help(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kiln convert: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!path || !out || !opset) {
        fprintf(stderr, "kiln convert: %s\n",
                !path ? "no model given" : !out ? "no output given (-o OUT)" : "no target given (--opset N)");
        help(stderr);
        return 2;
    }
    if ((st = kiln_model_load(path, &m)) != KILN_OK || (st = kiln_freeze_report_create(&rep)) != KILN_OK) {
        rc = cli_error("convert", st);
        goto done;
    }
    st = kiln_model_convert(m, opset, rep);
    if ((!quiet || st != KILN_OK) && kiln_report_text(rep, &text) == KILN_OK) {
        if (!quiet)
            fputs(text, stderr);
        free(text);
        text = NULL;
    }
    if (st != KILN_OK) {
        rc = cli_error("convert", st);
        if (report_path)
            write_report(rep, report_path);
        goto done;
    }
    if (verify) {
        if ((st = kiln_model_load(path, &orig)) != KILN_OK) {
            rc = cli_error("convert", st);
            goto done;
        }
        kiln_check_options co = {.runs = 3, .seed = 1};
        st = kiln_check(orig, m, 0, NULL, NULL, &co, &text);
        if (text && (!quiet || st != KILN_OK))
            fputs(text, stderr);
        if (st != KILN_OK) {
            fprintf(stderr, "kiln convert: verification failed, nothing written\n");
            rc = cli_error("convert", st);
            goto done;
        }
    }
    if (!cli_make_dirs("convert", out, true)) {
        rc = 1;
        goto done;
    }
    if ((st = kiln_model_save(m, out, NULL)) != KILN_OK) {
        rc = cli_error("convert", st);
        goto done;
    }
    if (report_path)
        rc = write_report(rep, report_path);
done:
    free(text);
    kiln_freeze_report_destroy(rep);
    kiln_model_destroy(m);
    kiln_model_destroy(orig);
    return rc;
}
