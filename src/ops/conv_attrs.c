/* Reading convolution and pooling window attributes into a geometry. */
#include "ops/conv_attrs.h"

#include <string.h>

static kiln_status read_ints(const kiln_node *node, const char *name, size_t want, int64_t dflt, int64_t min,
                             int64_t *out) {
    size_t n;
    const int64_t *v = kiln_attr_ints(node, name, &n);
    if (!v) {
        for (size_t i = 0; i < want; i++)
            out[i] = dflt;
        return KILN_OK;
    }
    if (n != want)
        return kiln_fail(KILN_ERR_INVALID, "attribute '%s' has %zu values, expected %zu", name, n, want);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < min || v[i] > KILN_CONV_MAX_DIM)
            return kiln_fail(KILN_ERR_INVALID, "attribute '%s' value %lld is out of range", name, (long long)v[i]);
        out[i] = v[i];
    }
    return KILN_OK;
}

kiln_status kiln_conv_read_attrs(kiln_conv_geom *g, const kiln_node *node, bool use_dil) {
    if (g->nsp < 1 || g->nsp > KILN_CONV_MAX_SP)
        return kiln_fail(KILN_ERR_INVALID, "unsupported number of spatial dimensions %d", g->nsp);
    size_t n = (size_t)g->nsp;
    KILN_TRY(read_ints(node, "strides", n, 1, 1, g->stride));
    if (use_dil)
        KILN_TRY(read_ints(node, "dilations", n, 1, 1, g->dil));
    else
        for (size_t i = 0; i < n; i++)
            g->dil[i] = 1;
    int64_t pads[2 * KILN_CONV_MAX_SP];
    KILN_TRY(read_ints(node, "pads", 2 * n, 0, 0, pads));
    for (size_t i = 0; i < n; i++) {
        g->pb[i] = pads[i];
        g->pe[i] = pads[n + i];
    }
    const char *ap = kiln_attr_string(node, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
        g->autopad = KILN_AUTOPAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        g->autopad = KILN_AUTOPAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        g->autopad = KILN_AUTOPAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0)
        g->autopad = KILN_AUTOPAD_VALID;
    else
        return kiln_fail(KILN_ERR_INVALID, "attribute 'auto_pad' has unknown value '%s'", ap);
    for (size_t i = 0; i < n; i++)
        if (g->k[i] < 1 || g->k[i] > KILN_CONV_MAX_DIM)
            return kiln_fail(KILN_ERR_INVALID, "kernel dimension %zu is %lld, must be >= 1", i, (long long)g->k[i]);
    return KILN_OK;
}
