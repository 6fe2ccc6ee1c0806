/* Evaluating one node on constant inputs with kiln's own engine, for
 * constant folding: a one-node graph whose inputs are initializers, run by
 * an ordinary single-threaded session. */
#include <stdlib.h>
#include <string.h>

#include "exec/exec.h"
#include "passes/passes.h"

bool kiln_eval_supported(const kiln_model *m, const kiln_node *n) {
    if (kiln_node_function(m, n))
        return false; /* a call kept by kiln freeze --keep-functions: not the built-in operator */
    int64_t opset = n->opset ? n->opset : kiln_model_opset(m, n->domain);
    if (opset == 0 && !*n->domain)
        opset = 1;
    const kiln_op_desc *d = kiln_op_find(n->domain, n->op_type, opset);
    /* sequences and optionals cannot become initializers */
    return d != NULL && !kiln_op_makes_values(d);
}

kiln_status kiln_eval_node(const kiln_model *m, const kiln_node *n, const kiln_tensor *const *in, kiln_tensor **out) {
    for (size_t i = 0; i < n->n_outputs; i++)
        out[i] = NULL;
    kiln_graph *g = kiln_graph_new();
    if (!g)
        return KILN_ERR_NOMEM;
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < n->n_inputs && st == KILN_OK; i++) {
        if (!*n->inputs[i] || kiln_graph_find_init(g, n->inputs[i], NULL))
            continue;
        if (!in[i]) {
            st = kiln_fail(KILN_ERR_ARG, "input '%s' has no value", n->inputs[i]);
            break;
        }
        kiln_tensor *t;
        st = kiln_tensor_share(in[i], &t);
        if (st != KILN_OK)
            break;
        free(t->name);
        t->name = kiln_strdup(n->inputs[i]);
        if (!t->name || (st = kiln_graph_add_init(g, t)) != KILN_OK) {
            kiln_tensor_destroy(t);
            st = KILN_ERR_NOMEM;
        }
    }
    g->outputs = kiln_calloc(n->n_outputs + 1, sizeof *g->outputs);
    size_t *which = kiln_calloc(n->n_outputs + 1, sizeof *which);
    if (!g->outputs || !which)
        st = KILN_ERR_NOMEM;
    for (size_t i = 0; st == KILN_OK && i < n->n_outputs; i++) {
        if (!*n->outputs[i])
            continue;
        g->outputs[g->n_outputs].name = kiln_strdup(n->outputs[i]);
        g->outputs[g->n_outputs].type.rank = -1;
        if (!g->outputs[g->n_outputs].name)
            st = KILN_ERR_NOMEM;
        which[g->n_outputs++] = i;
    }
    kiln_node *borrowed = (kiln_node *)n;
    if (st == KILN_OK)
        st = kiln_graph_add_node(g, borrowed);
    bool added = st == KILN_OK;
    kiln_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.ir_version = m->ir_version;
    tmp.n_opsets = m->n_opsets;
    tmp.opsets = m->opsets;
    tmp.graph = g;
    kiln_session *s = NULL;
    kiln_session_options so = {.threads = 1};
    if (st == KILN_OK)
        st = kiln_session_create(&tmp, &so, &s);
    kiln_tensor **res = kiln_calloc(g->n_outputs + 1, sizeof *res);
    if (st == KILN_OK && !res)
        st = KILN_ERR_NOMEM;
    if (st == KILN_OK)
        st = kiln_session_run(s, 0, NULL, NULL, g->n_outputs, NULL, res);
    if (st == KILN_OK)
        for (size_t k = 0; k < g->n_outputs; k++) {
            if (res[k]->kind != KILN_VALUE_TENSOR) {
                st = kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is a %s, which cannot be folded into an initializer",
                               g->outputs[k].name, kiln_value_kind_name(res[k]->kind));
                break;
            }
            /* own the data: session buffers come from its arena */
            st = kiln_tensor_clone(res[k], &out[which[k]]);
            if (st != KILN_OK)
                break;
        }
    for (size_t k = 0; res && k < g->n_outputs; k++)
        kiln_tensor_destroy(res[k]);
    free(res);
    kiln_session_destroy(s);
    if (added)
        g->n_nodes = 0; /* the node is the caller's */
    kiln_graph_destroy(g);
    free(which);
    if (st != KILN_OK)
        for (size_t i = 0; i < n->n_outputs; i++) {
            kiln_tensor_destroy(out[i]);
            out[i] = NULL;
        }
    return st;
}
