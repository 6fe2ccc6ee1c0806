/* kiln check ORIGINAL FROZEN [--bind NAME=VALUE]... [--inputs DIR] [--runs N] [--seed S] [--rtol R] [--atol A] */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"


static void help(FILE *f) {
    fprintf(f, "usage: kiln check ORIGINAL FROZEN [--bind NAME=VALUE]... [--inputs DIR] [--runs N]\n"
               "                  [--seed S] [--rtol R] [--atol A]\n\n"
               "Runs ORIGINAL (fed the bound values) and FROZEN on the same seeded inputs and\n"
               "compares every output; exits with 3 when they differ.\n\n"
               "  --bind NAME=VALUE  the values the model was frozen with (see kiln freeze)\n"
               "  --inputs DIR       use DIR/<input>.npy (or .pb) where present instead of random values\n"
               "  --runs N           runs with different inputs (default 3)\n"
               "  --seed S           random seed (default 1)\n"
               "  --rtol R, --atol A tolerances: |a-b| <= A + R*|a| (default 1e-4, 1e-5)\n");
}

int kiln_cmd_check(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL}, *dir = NULL;
    kiln_check_options co = {.runs = 3, .seed = 1, .rtol = 1e-4, .atol = 1e-5};
    char **binds = calloc((size_t)argc + 1, sizeof *binds);
    kiln_tensor **vals = calloc((size_t)argc + 1, sizeof *vals);
    const char **names = calloc((size_t)argc + 1, sizeof *names);
    size_t nb = 0, np = 0;
    int rc = 0;
    kiln_model *a = NULL, *b = NULL;
    char *text = NULL;
    kiln_status st;
    if (!binds || !vals || !names) {
        rc = 1;
        goto done;
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool has = i + 1 < argc;
        char *e = NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            help(stdout);
            goto done;
        } else if (!strcmp(s, "--bind") && has) {
            binds[nb++] = argv[++i];
        } else if (!strcmp(s, "--inputs") && has) {
            dir = argv[++i];
        } else if (!strcmp(s, "--runs") && has) {
            long v = strtol(argv[++i], &e, 10);
            if (*e || v < 1 || v > 100000) {
                fprintf(stderr, "kiln check: --runs takes a number >= 1\n");
                rc = 2;
                goto done;
            }
            co.runs = (int)v;
        } else if (!strcmp(s, "--seed") && has) {
            co.seed = strtoull(argv[++i], &e, 10);
            if (*e) {
                fprintf(stderr, "kiln check: --seed takes a number\n");
                rc = 2;
                goto done;
            }
        } else if ((!strcmp(s, "--rtol") || !strcmp(s, "--atol")) && has) {
            double v = strtod(argv[++i], &e);
            if (*e || v < 0) {
                fprintf(stderr, "kiln check: %s takes a number >= 0\n", s);
                rc = 2;
                goto done;
            }
            if (s[2] == 'r')
                co.rtol = v;
            else
                co.atol = v;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "kiln check: unknown option or missing value: '%s'\n", s);
            help(stderr);
            rc = 2;
            goto done;
        } else if (np < 2) {
            paths[np++] = s;
        } else {
            fprintf(stderr, "kiln check: unexpected argument '%s'\n", s);
            rc = 2;
            goto done;
        }
    }
    if (np != 2) {
        help(stderr);
        rc = 2;
        goto done;
    }
    if (dir) {
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "kiln check: inputs folder '%s' does not exist\n", dir);
            rc = 2;
            goto done;
        }
        co.inputs_dir = dir;
    }
    if ((st = kiln_model_load(paths[0], &a)) != KILN_OK || (st = kiln_model_load(paths[1], &b)) != KILN_OK) {
        rc = cli_error("check", st);
        goto done;
    }
    for (int k = 0; k < 2; k++)
        if (kiln_model_validate(k ? b : a, NULL) != KILN_OK) {
            fprintf(stderr, "kiln check: %s: %s\n", paths[k], kiln_last_error());
            rc = 1;
            goto done;
        }
    if ((rc = cli_parse_values("check", "--bind", a, nb, binds, names, vals)) >= 0)
        goto done;
    rc = 0;
    st = kiln_check(a, b, nb, names, (const kiln_tensor *const *)vals, &co, &text);
    if (text)
        fputs(text, stdout);
    if (st != KILN_OK)
        rc = cli_error("check", st);
done:
    free(text);
    for (size_t i = 0; vals && i < nb; i++)
        kiln_tensor_destroy(vals[i]);
    free(vals);
    free(names);
    free(binds);
    kiln_model_destroy(a);
    kiln_model_destroy(b);
    return rc;
}
