/* kiln show MODEL -o FILE [--frozen FROZEN] */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln show MODEL -o FILE [--frozen FROZEN] [--bind NAME]... [--title TEXT]\n\n"
               "Draws the model's graph: one box per node with its operator, name and output\n"
               "shapes (symbolic dims by name), initializers folded into their consumer's box\n"
               "with their shapes, inputs and outputs as ellipses, subgraphs (If, Loop, Scan\n"
               "bodies) as clusters.\n\n"
               "  -o, --output FILE  FILE.dot or FILE.gv: Graphviz DOT text, written by kiln;\n"
               "                     FILE.svg, FILE.png or FILE.pdf: rendered by Graphviz's\n"
               "                     'dot' (Debian package 'graphviz'); '-': DOT on stdout\n"
               "  --frozen FROZEN    MODEL is the original of FROZEN: mark what freezing\n"
               "                     removed, folded and bound, and draw FROZEN beside it\n"
               "  --bind NAME        with --frozen: NAME was bound (found without it when it\n"
               "                     became an initializer)\n"
               "  --title TEXT       the picture's title (default: the graph's name)\n");
}

int kiln_cmd_show(int argc, char **argv) {
    const char *path = NULL, *out = NULL, *frozen = NULL, *title = NULL;
    const char **bound = calloc((size_t)argc + 1, sizeof *bound);
    size_t nb = 0;
    int rc = 0;
    kiln_model *m = NULL, *f = NULL;
    char *dot = NULL;
    kiln_status st;
    if (!bound) {
        fprintf(stderr, "kiln show: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            goto done;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--frozen") && has) {
            frozen = argv[++i];
        } else if (!strcmp(a, "--bind") && has) {
            bound[nb++] = argv[++i];
        } else if (!strcmp(a, "--title") && has) {
            title = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln show: unknown option or missing value: '%s'\n", a);
            help(stderr);
            rc = 2;
            goto done;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "kiln show: unexpected argument '%s'\n", a);
            rc = 2;
            goto done;
        }
    }
    if (!path || !out) {
        fprintf(stderr, "kiln show: %s\n", !path ? "no model given" : "no output given (-o FILE)");
        help(stderr);
        rc = 2;
        goto done;
    }
    if (!cli_picture_format_ok("show", out)) {
        rc = 2;
        goto done;
    }
    if ((st = kiln_model_load(path, &m)) != KILN_OK || (frozen && (st = kiln_model_load(frozen, &f)) != KILN_OK)) {
        rc = cli_error("show", st);
        goto done;
    }
    kiln_picture_options po = {.frozen = f, .n_bound = nb, .bound = bound, .title = title};
    if ((st = kiln_model_picture(m, &po, &dot)) != KILN_OK) {
        rc = cli_error("show", st);
        goto done;
    }
    rc = cli_write_picture("show", dot, out);
done:
    free(dot);
    free(bound);
    kiln_model_destroy(m);
    kiln_model_destroy(f);
    return rc;
}
