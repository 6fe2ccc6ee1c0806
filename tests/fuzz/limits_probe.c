/* Test tool for kiln_limits: loads MODEL with the given limits (0: default)
 * and prints "ok" or the error.
 *   kiln-limits-probe MODEL MAX_TENSOR_BYTES MAX_RANK MAX_NODES MAX_NESTING MAX_STRING_BYTES */
#include <stdio.h>
#include <stdlib.h>

#include "kiln.h"

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: kiln-limits-probe MODEL MAX_TENSOR_BYTES MAX_RANK MAX_NODES MAX_NESTING MAX_STRING_BYTES\n");
        return 2;
    }
    kiln_limits l = kiln_limits_default();
    if (l.max_rank != KILN_MAX_RANK || l.max_nesting <= 0 || !l.max_tensor_bytes || !l.max_nodes ||
        !l.max_string_bytes) {
        fprintf(stderr, "kiln-limits-probe: bad defaults\n");
        return 1;
    }
    l.max_tensor_bytes = strtoull(argv[2], NULL, 10);
    l.max_rank = atoi(argv[3]);
    l.max_nodes = strtoull(argv[4], NULL, 10);
    l.max_nesting = atoi(argv[5]);
    l.max_string_bytes = strtoull(argv[6], NULL, 10);
    kiln_model *m;
    kiln_status st = kiln_model_load_ex(argv[1], &l, &m);
    if (st != KILN_OK) {
        fprintf(stderr, "%s: %s\n", kiln_status_name(st), kiln_last_error());
        return 1;
    }
    kiln_model_destroy(m);
    printf("ok\n");
    return 0;
}
