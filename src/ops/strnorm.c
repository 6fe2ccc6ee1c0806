/* StringNormalizer (opset 10): drops the stop words from a [C] or [1, C]
 * string tensor, then lower- or upper-cases what remains. When every element
 * is dropped the output is one empty string ([1] or [1, 1]).
 * Limitation: case folding (for case_change_action and case-insensitive stop
 * word matching) covers ASCII letters only; other bytes, UTF-8 sequences
 * included, pass through unchanged; `locale` is ignored. */
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

static char sn_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }
static char sn_upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch; }

static bool sn_equal(const kiln_string *a, const kiln_string *b, bool cs) {
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        char x = a->data[i], y = b->data[i];
        if (cs ? x != y : sn_lower(x) != sn_lower(y))
            return false;
    }
    return true;
}

static kiln_status sn_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 1));
    const kiln_tensor *x = c->in[0];
    if (x->dtype != KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_INVALID, "X must be a string tensor, got %s", kiln_dtype_name(x->dtype));
    if (!(x->rank == 1 || (x->rank == 2 && x->dims[0] == 1)))
        return kiln_fail(KILN_ERR_INVALID, "X must have shape [C] or [1, C]");
    const char *act = kiln_attr_string(c->node, "case_change_action", "NONE");
    int mode;
    if (!strcmp(act, "NONE"))
        mode = 0;
    else if (!strcmp(act, "LOWER"))
        mode = 1;
    else if (!strcmp(act, "UPPER"))
        mode = 2;
    else
        return kiln_fail(KILN_ERR_INVALID, "case_change_action '%s' is not NONE, LOWER or UPPER", act);
    bool cs = kiln_attr_int(c->node, "is_case_sensitive", 0) != 0;
    const kiln_attr *sw = kiln_node_attr(c->node, "stopwords");
    size_t nsw = sw && sw->type == KILN_ATTR_STRINGS ? sw->n : 0;
    const kiln_string *xs = x->data;
    bool *keep = kiln_calloc((size_t)(x->numel ? x->numel : 1), sizeof(bool));
    if (!keep)
        return KILN_ERR_NOMEM;
    int64_t nk = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        keep[i] = true;
        for (size_t s = 0; s < nsw && keep[i]; s++)
            if (sn_equal(&xs[i], &sw->strings[s], cs))
                keep[i] = false;
        nk += keep[i];
    }
    int64_t od[2];
    int orank = x->rank;
    if (x->rank == 1)
        od[0] = nk ? nk : 1;
    else {
        od[0] = 1;
        od[1] = nk ? nk : 1;
    }
    kiln_tensor *y;
    kiln_status st = kiln_op_output(c, 0, KILN_DTYPE_STRING, orank, od, &y);
    if (st != KILN_OK) {
        free(keep);
        return st;
    }
    kiln_string *ys = y->data;
    if (!nk) {
        ys[0].len = 0;
        ys[0].data = kiln_strndup("", 0);
        free(keep);
        return ys[0].data ? KILN_OK : KILN_ERR_NOMEM;
    }
    int64_t o = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        if (!keep[i])
            continue;
        ys[o].len = xs[i].len;
        ys[o].data = kiln_strndup(xs[i].data ? xs[i].data : "", xs[i].len);
        if (!ys[o].data) {
            free(keep);
            return KILN_ERR_NOMEM;
        }
        for (size_t k = 0; k < ys[o].len && mode; k++)
            ys[o].data[k] = mode == 1 ? sn_lower(ys[o].data[k]) : sn_upper(ys[o].data[k]);
        o++;
    }
    free(keep);
    return KILN_OK;
}

/* Shape rule: strings, of the input's rank (stop words may drop some). */
static kiln_status sn_infer(kiln_infer_ctx *x) {
    const kiln_shape_fact *X = kiln_infer_in(x, 0);
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = KILN_DTYPE_STRING;
    kiln_infer_copy_shape(&x->out[0], X, false);
    for (int d = 0; d < x->out[0].rank; d++)
        if (d == x->out[0].rank - 1)
            x->out[0].dims[d] = kiln_sd_unknown();
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "StringNormalizer", 10, 0, sn_exec, sn_infer},
};
KILN_OP_FAMILY(strnorm, ops);
