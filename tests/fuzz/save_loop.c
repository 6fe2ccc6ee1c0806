/* Test tool for "nothing lost": loads a model and saves it to OUT again and
 * again, so a test can SIGKILL it mid-write and check that OUT still holds
 * a complete file.  kiln-save-loop IN OUT COUNT [EXTERNAL_THRESHOLD]
 * COUNT 0 saves until killed. Prints "saved N" after each save. */
#include <stdio.h>
#include <stdlib.h>

#include "kiln.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: kiln-save-loop IN OUT COUNT [EXTERNAL_THRESHOLD]\n");
        return 2;
    }
    long count = strtol(argv[3], NULL, 10);
    kiln_save_options opts = {.external_threshold = argc > 4 ? (size_t)strtoull(argv[4], NULL, 10) : 0};
    kiln_model *m;
    kiln_status st = kiln_model_load(argv[1], &m);
    if (st != KILN_OK) {
        fprintf(stderr, "kiln-save-loop: %s\n", kiln_last_error());
        return 1;
    }
    for (long i = 0; count == 0 || i < count; i++) {
        st = kiln_model_save(m, argv[2], &opts);
        if (st != KILN_OK) {
            fprintf(stderr, "kiln-save-loop: %s\n", kiln_last_error());
            kiln_model_destroy(m);
            return 1;
        }
        printf("saved %ld\n", i + 1);
        fflush(stdout);
    }
    kiln_model_destroy(m);
    return 0;
}
