/* kiln convert: decompositions of operators a target opset lacks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/convert.h"

static const cv_lowering lowerings[] = {{NULL, 0, NULL, NULL}};
static const cv_lowering replacements[] = {{NULL, 0, NULL, NULL}};

static const cv_lowering *find(const cv_lowering *t, size_t n, const char *op) {
    for (size_t i = 0; i < n; i++)
        if (t[i].op && !strcmp(t[i].op, op))
            return &t[i];
    return NULL;
}

const cv_lowering *cv_find_lowering(const char *op) {
    return find(lowerings, sizeof lowerings / sizeof *lowerings, op);
}
const cv_lowering *cv_find_replacement(const char *op) {
    return find(replacements, sizeof replacements / sizeof *replacements, op);
}
