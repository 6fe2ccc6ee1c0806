/* kiln info MODEL [--json] */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln info MODEL [--json]\n\n"
               "Shows the model's IR version, opset imports and producer; each input and\n"
               "output with element type and shape (symbolic dims by name); initializers;\n"
               "the operators used, counting nodes inside subgraphs; local functions.\n\n"
               "  --json   print the same as JSON\n");
}

int kiln_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kiln info: unknown option '%s'\n", argv[i]);
            help(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "kiln info: one model at a time ('%s' is extra)\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        help(stderr);
        return 2;
    }
    kiln_model *m;
    kiln_status st = kiln_model_load(path, &m);
    if (st != KILN_OK)
        return cli_error("info", st);
    char *text;
    st = kiln_model_describe(m, json, &text);
    kiln_model_destroy(m);
    if (st != KILN_OK)
        return cli_error("info", st);
    fputs(text, stdout);
    free(text);
    return 0;
}
