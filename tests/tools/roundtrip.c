/* roundtrip IN OUT [--external-threshold N]
 * Loads a model with kiln and saves it again: the tool behind the round-trip
 * tests and the save-side RSS benchmark. Errors go to stderr, exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    kiln_save_options opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--external-threshold") && i + 1 < argc) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || !*argv[i]) {
                fprintf(stderr, "roundtrip: bad threshold '%s'\n", argv[i]);
                return 2;
            }
            opts.external_threshold = (size_t)v;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "usage: roundtrip IN OUT [--external-threshold N]\n");
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "usage: roundtrip IN OUT [--external-threshold N]\n");
        return 2;
    }
    kiln_model *m;
    if (kiln_model_load(in, &m) != KILN_OK) {
        fprintf(stderr, "roundtrip: %s\n", kiln_last_error());
        return 1;
    }
    kiln_status st = kiln_model_save(m, out, &opts);
    kiln_model_destroy(m);
    if (st != KILN_OK) {
        fprintf(stderr, "roundtrip: %s\n", kiln_last_error());
        return 1;
    }
    return 0;
}
