/* Prints kiln's operator table, one descriptor per line:
 * "DOMAIN NAME SINCE UNTIL RULE" (DOMAIN "-" for ai.onnx, UNTIL 0: no bound,
 * RULE 1 when the descriptor has a shape rule).
 * tests/conformance/check_opsets.py compares it with ONNX's schema history. */
#include <stdio.h>

#include "ops/op.h"

int main(void) {
    const kiln_op_desc *const *t;
    size_t n = kiln_op_table(&t);
    for (size_t i = 0; i < n; i++)
        printf("%s %s %d %d %d\n", *t[i]->domain ? t[i]->domain : "-", t[i]->name, t[i]->since, t[i]->until,
               t[i]->infer != NULL);
    return n ? 0 : 1;
}
