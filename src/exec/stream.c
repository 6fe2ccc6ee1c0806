/* Streaming in chunks (kiln.h, kiln_session_run_chunked): inputs split along
 * an axis, one run per chunk with the state pairs carried, outputs joined. */
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"

static bool is_state_input(const kiln_session *s, const char *name) {
    for (size_t k = 0; k < s->n_states; k++)
        if (!strcmp(s->states[k].input, name))
            return true;
    return false;
}

static bool is_state_output(const kiln_session *s, const char *name) {
    for (size_t k = 0; k < s->n_states; k++)
        if (!strcmp(s->states[k].output, name))
            return true;
    return false;
}

/* Which inputs are split (split[i]) and their common length along the axis. */
static kiln_status plan_split(const kiln_session *s, size_t n_inputs, const char *const *names,
                              const kiln_tensor *const *inputs, const kiln_chunk_options *o, bool *split,
                              int64_t *length) {
    *length = -1;
    for (size_t i = 0; i < n_inputs; i++) {
        if (!inputs[i] || !names[i])
            return kiln_fail(KILN_ERR_ARG, "input %zu: no name or no value", i);
        bool want = o->split ? o->split[i] != 0
                             : inputs[i]->kind == KILN_VALUE_TENSOR && inputs[i]->rank > o->axis &&
                                   !is_state_input(s, names[i]);
        if (!want)
            continue;
        if (inputs[i]->rank <= o->axis)
            return kiln_fail(KILN_ERR_ARG, "chunk axis %d is out of range for input '%s' of rank %d", o->axis,
                             names[i], inputs[i]->rank);
        int64_t l = inputs[i]->dims[o->axis];
        if (*length >= 0 && l != *length)
            return kiln_fail(KILN_ERR_ARG, "chunked inputs differ in length along axis %d (%lld and %lld)", o->axis,
                             (long long)*length, (long long)l);
        *length = l;
        split[i] = true;
    }
    if (*length < 0)
        return kiln_fail(KILN_ERR_ARG, "no input to split into chunks (axis %d)", o->axis);
    return KILN_OK;
}

/* The chunk c of every split input, run; its outputs into row[0..n_outputs). */
static kiln_status run_chunk(kiln_session *s, size_t c, int64_t csize, int64_t length, size_t n_inputs,
                             const char *const *names, const kiln_tensor *const *inputs, const bool *split, int axis,
                             size_t n_outputs, const char *const *output_names, kiln_tensor **row) {
    kiln_tensor **cut = kiln_calloc(n_inputs + 1, sizeof *cut);
    const kiln_tensor **use = kiln_calloc(n_inputs + 1, sizeof *use);
    const char **use_names = kiln_calloc(n_inputs + 1, sizeof *use_names);
    kiln_status st = cut && use && use_names ? KILN_OK : KILN_ERR_NOMEM;
    size_t n_use = 0;
    for (size_t i = 0; i < n_inputs && st == KILN_OK; i++) {
        /* state inputs given by the caller seed the first chunk only */
        if (c > 0 && is_state_input(s, names[i]))
            continue;
        if (split[i]) {
            int64_t start = (int64_t)c * csize, len = length - start < csize ? length - start : csize;
            st = kiln_tensor_slice_axis(inputs[i], axis, start, len, &cut[i]);
        }
        use_names[n_use] = names[i];
        use[n_use++] = split[i] ? cut[i] : inputs[i];
    }
    if (st == KILN_OK)
        st = kiln_session_run(s, n_use, use_names, use, n_outputs, output_names, row);
    for (size_t i = 0; cut && i < n_inputs; i++)
        kiln_tensor_destroy(cut[i]);
    free(cut);
    free(use);
    free(use_names);
    return st;
}

kiln_status kiln_session_run_chunked(kiln_session *s, size_t n_inputs, const char *const *input_names,
                                     const kiln_tensor *const *inputs, const kiln_chunk_options *opts,
                                     size_t n_outputs, const char *const *output_names, kiln_tensor **outputs) {
    for (size_t o = 0; outputs && o < n_outputs; o++)
        outputs[o] = NULL;
    if (!s || !opts || (n_inputs && (!input_names || !inputs)) || (n_outputs && !outputs))
        return kiln_fail(KILN_ERR_ARG, "kiln_session_run_chunked: no session, options, inputs or outputs");
    if (opts->axis < 0)
        return kiln_fail(KILN_ERR_ARG, "chunk axis %d is negative", opts->axis);
    if (opts->chunk_size < 0 || opts->chunks < 0 || (!opts->chunk_size && !opts->chunks))
        return kiln_fail(KILN_ERR_ARG, "chunking needs a positive chunk_size or number of chunks");
    const kiln_graph *g = s->core.plans->graph;
    if (!output_names && n_outputs != g->n_outputs)
        return kiln_fail(KILN_ERR_ARG, "the model has %zu outputs, %zu asked for", g->n_outputs, n_outputs);
    bool *split = kiln_calloc(n_inputs + 1, sizeof *split);
    if (!split)
        return KILN_ERR_NOMEM;
    int64_t length;
    kiln_status st = plan_split(s, n_inputs, input_names, inputs, opts, split, &length);
    if (st != KILN_OK) {
        free(split);
        return st;
    }
    int64_t csize = opts->chunk_size ? opts->chunk_size : length / opts->chunks + (length % opts->chunks != 0);
    if (csize < 1)
        csize = 1;
    size_t n_chunks = length ? (size_t)(length / csize + (length % csize != 0)) : 1;
    /* pieces[o * n_chunks + c]: output o of chunk c */
    kiln_tensor **pieces = NULL, **row = kiln_calloc(n_outputs + 1, sizeof *row);
    if (row && n_chunks <= SIZE_MAX / sizeof *pieces / (n_outputs + 1))
        pieces = kiln_calloc((n_outputs + 1) * n_chunks, sizeof *pieces);
    if (!row || !pieces) {
        free(split);
        free(row);
        free(pieces);
        return KILN_ERR_NOMEM;
    }
    for (size_t c = 0; c < n_chunks && st == KILN_OK; c++) {
        st = run_chunk(s, c, csize, length, n_inputs, input_names, inputs, split, opts->axis, n_outputs,
                       output_names, row);
        if (st != KILN_OK && n_chunks > 1)
            st = kiln_fail_prefix(st, "chunk %zu of %zu: ", c + 1, n_chunks);
        for (size_t o = 0; st == KILN_OK && o < n_outputs; o++)
            pieces[o * n_chunks + c] = row[o];
    }
    for (size_t o = 0; st == KILN_OK && o < n_outputs; o++) {
        const char *name = output_names ? output_names[o] : g->outputs[o].name;
        kiln_tensor **mine = &pieces[o * n_chunks];
        kiln_tensor *last = mine[n_chunks - 1];
        if (n_chunks > 1 && last && last->rank > opts->axis && !is_state_output(s, name)) {
            bool all = true;
            for (size_t c = 0; c < n_chunks; c++)
                all &= mine[c] != NULL;
            /* the pieces come from the model, not the caller: a failure to
             * join them is the model's (never KILN_ERR_ARG) */
            st = all ? kiln_tensor_concat_axis(mine, n_chunks, opts->axis, &outputs[o])
                     : kiln_fail(KILN_ERR_INVALID, "not every chunk produced it");
            if (st == KILN_ERR_ARG)
                st = KILN_ERR_INVALID;
            if (st != KILN_OK)
                st = kiln_fail_prefix(st, "output '%s': ", name);
        } else {
            outputs[o] = last;
            mine[n_chunks - 1] = NULL;
        }
    }
    if (st != KILN_OK)
        for (size_t o = 0; o < n_outputs; o++) {
            kiln_tensor_destroy(outputs[o]);
            outputs[o] = NULL;
        }
    for (size_t i = 0; i < n_outputs * n_chunks; i++)
        kiln_tensor_destroy(pieces[i]);
    free(pieces);
    free(row);
    free(split);
    return st;
}
