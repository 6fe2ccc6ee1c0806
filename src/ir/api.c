/* Small public queries: the library version, declared input/output types,
 * metadata, single elements. */
#include <string.h>

#include "ir/ir.h"

const char *kiln_version(int *major, int *minor, int *patch) {
    if (major)
        *major = KILN_VERSION_MAJOR;
    if (minor)
        *minor = KILN_VERSION_MINOR;
    if (patch)
        *patch = KILN_VERSION_PATCH;
    return KILN_VERSION_STRING;
}

static kiln_status value_type(const kiln_value_info *vi, kiln_value_type *out) {
    memset(out, 0, sizeof *out);
    const kiln_type *t = &vi->type;
    out->rank = -1;
    if (t->kind != KILN_TYPE_TENSOR)
        return KILN_OK;
    out->dtype = t->elem;
    if (t->rank < 0 || (!t->dims && t->rank > 0))
        return KILN_OK;
    if (t->rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_LIMIT, "'%s' has rank %d, over kiln's limit of %d", vi->name, t->rank,
                         KILN_MAX_RANK);
    out->rank = t->rank;
    for (int i = 0; i < t->rank; i++) {
        out->dims[i] = t->dims[i].value >= 0 ? t->dims[i].value : -1;
        out->symbols[i] = t->dims[i].value < 0 && t->dims[i].param && *t->dims[i].param ? t->dims[i].param : NULL;
    }
    return KILN_OK;
}

kiln_status kiln_model_input_type(const kiln_model *m, size_t i, kiln_value_type *out) {
    if (!m || !out)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_input_type: no model or no place for the type");
    const char *name = kiln_model_input_name(m, i);
    if (!name)
        return kiln_fail(KILN_ERR_ARG, "the model has %zu inputs, no input %zu", kiln_model_input_count(m), i);
    return value_type(kiln_graph_find_input(m->graph, name, NULL), out);
}

kiln_status kiln_model_output_type(const kiln_model *m, size_t i, kiln_value_type *out) {
    if (!m || !out)
        return kiln_fail(KILN_ERR_ARG, "kiln_model_output_type: no model or no place for the type");
    if (i >= m->graph->n_outputs)
        return kiln_fail(KILN_ERR_ARG, "the model has %zu outputs, no output %zu", m->graph->n_outputs, i);
    return value_type(&m->graph->outputs[i], out);
}

size_t kiln_model_metadata_count(const kiln_model *m) { return m ? m->n_meta : 0; }

const char *kiln_model_metadata(const kiln_model *m, size_t i, const char **value) {
    if (!m || i >= m->n_meta)
        return NULL;
    if (value)
        *value = m->meta_values[i].data ? m->meta_values[i].data : "";
    return m->meta_keys[i].data ? m->meta_keys[i].data : "";
}

kiln_status kiln_tensor_element_f64(const kiln_tensor *t, int64_t i, double *out) {
    if (!t || !out)
        return kiln_fail(KILN_ERR_ARG, "kiln_tensor_element_f64: no tensor or no place for the value");
    if (t->kind != KILN_VALUE_TENSOR)
        return kiln_fail(KILN_ERR_ARG, "a %s has no elements of its own", kiln_value_kind_name(t->kind));
    if (i < 0 || i >= t->numel)
        return kiln_fail(KILN_ERR_ARG, "element %lld asked for, the tensor has %lld", (long long)i,
                         (long long)t->numel);
    if (t->dtype == KILN_DTYPE_STRING || t->dtype == KILN_DTYPE_COMPLEX64 || t->dtype == KILN_DTYPE_COMPLEX128 ||
        kiln_dtype_size(t->dtype) == 0)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s elements are not numbers", kiln_dtype_name(t->dtype));
    *out = kiln_tensor_get_f64(t, i);
    return KILN_OK;
}
