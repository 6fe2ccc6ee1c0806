/* The freeze report as a structure (kiln.h: kiln_report_summary_get,
 * kiln_report_op). ops[0] of the report is the total. */
#include <string.h>

#include "passes/passes.h"

kiln_status kiln_report_summary_get(const kiln_freeze_report *r, kiln_report_summary *out) {
    if (!r || !out)
        return kiln_fail(KILN_ERR_ARG, "kiln_report_summary_get: no report or no place for the summary");
    memset(out, 0, sizeof *out);
    if (r->n_ops) {
        out->nodes_before = r->ops[0].before;
        out->nodes_after = r->ops[0].after;
    }
    out->function_calls_inlined = r->calls_inlined;
    out->ifs_inlined = r->ifs_inlined;
    out->loops_unrolled = r->loops_unrolled;
    out->nodes_folded = r->folded;
    out->shape_values_folded = r->shapes_folded;
    out->bytes_before = r->bytes_before;
    out->bytes_after = r->bytes_after;
    out->inputs_removed = r->n_inputs_removed;
    out->dims_fixed = r->n_dims_fixed;
    out->folds_skipped = r->n_skipped;
    out->functions_kept = r->n_functions_kept;
    return KILN_OK;
}

size_t kiln_report_op_count(const kiln_freeze_report *r) { return r && r->n_ops > 1 ? r->n_ops - 1 : 0; }

const char *kiln_report_op(const kiln_freeze_report *r, size_t i, int64_t *before, int64_t *after) {
    if (!r || i + 1 >= r->n_ops)
        return NULL;
    if (before)
        *before = r->ops[i + 1].before;
    if (after)
        *after = r->ops[i + 1].after;
    return r->ops[i + 1].key;
}
