/* kiln info MODEL [--json] */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f) {
    fprintf(f, "usage: kiln info MODEL [--json]\n\n"
               "Shows the model's IR version, opset imports and producer; each input and\n"
               "output with element type and shape (symbolic dims by name); initializers;\n"
               "the operators used, counting nodes inside subgraphs; local functions; its\n"
               "metadata, with what made it when kiln freeze did (kiln.* entries: kiln's\n"
               "version, the source model's SHA-256, each bound input, fixed dims and\n"
               "shapes, the limits used). Problems that kiln run, freeze and check would\n"
               "refuse the model for (undefined values, a value produced twice, cycles,\n"
               "attribute types) are shown as warnings.\n\n"
               "  --json   print the same as JSON\n");
}

/* The metadata and the warnings, in the describe text or JSON. */
static char *with_extras(const kiln_model *m, const char *text, int json, const char *problems) {
    cli_buf b = {0};
    size_t n_meta = kiln_model_metadata_count(m);
    if (json) {
        const char *end = strrchr(text, '}');
        if (!end)
            return NULL;
        cli_buf_append(&b, text, (size_t)(end - text));
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
            b.data[--b.len] = 0;
        cli_buf_printf(&b, ",\n  \"metadata\": {");
        for (size_t i = 0; i < n_meta; i++) {
            const char *value, *key = kiln_model_metadata(m, i, &value);
            cli_buf_printf(&b, "%s\n    ", i ? "," : "");
            cli_buf_json_string(&b, key);
            cli_buf_printf(&b, ": ");
            cli_buf_json_string(&b, value);
        }
        cli_buf_printf(&b, "%s},\n  \"warnings\": [", n_meta ? "\n  " : "");
        int k = 0;
        for (const char *p = problems; p && *p; k++) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            cli_buf_printf(&b, "%s\n    ", k ? "," : "");
            cli_buf_json_string_n(&b, p, n);
            p += n + (nl ? 1 : 0);
        }
        cli_buf_printf(&b, "%s]\n}\n", k ? "\n  " : "");
    } else {
        cli_buf_printf(&b, "%s", text);
        bool prov = false;
        for (size_t i = 0; i < n_meta && !prov; i++)
            prov = strncmp(kiln_model_metadata(m, i, NULL), "kiln.", 5) == 0;
        if (n_meta)
            cli_buf_printf(&b, "metadata%s:\n", prov ? " (kiln.*: what made the model, written by kiln freeze)" : "");
        for (size_t i = 0; i < n_meta; i++) {
            const char *value, *key = kiln_model_metadata(m, i, &value);
            cli_buf_printf(&b, "  %s: %s\n", key, value);
        }
        if (problems && *problems) {
            cli_buf_printf(&b, "warnings (kiln run, freeze and check refuse this model):\n");
            for (const char *p = problems; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                cli_buf_printf(&b, "  warning: %.*s\n", (int)n, p);
                p += n + (nl ? 1 : 0);
            }
        }
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
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
    char *problems = NULL;
    st = kiln_model_validate(m, &problems);
    if (st == KILN_ERR_NOMEM) {
        kiln_model_destroy(m);
        return cli_error("info", st);
    }
    if (st != KILN_OK && !json && !problems)
        fprintf(stderr, "kiln info: %s: warning: %s\n", path, kiln_last_error());
    char *text;
    st = kiln_model_describe(m, json, &text);
    if (st != KILN_OK) {
        free(problems);
        kiln_model_destroy(m);
        return cli_error("info", st);
    }
    char *all = with_extras(m, text, json, problems);
    kiln_model_destroy(m);
    free(text);
    free(problems);
    if (!all) {
        fprintf(stderr, "kiln info: out of memory\n");
        return 1;
    }
    fputs(all, stdout);
    free(all);
    return 0;
}
