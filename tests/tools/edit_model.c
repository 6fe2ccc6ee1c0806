/* edit_model IN OUT
 * Edits a loaded model the way kiln's passes will, with IR objects that have
 * no protobuf `src` behind them, then saves it: the last graph input without
 * initializer becomes an initializer holding VALUE (a freeze), a new
 * Identity node copies the first output (when a tensor) to a new graph
 * output `<name>_copy`, and a node of a new domain `kiln.test` carries one
 * attribute of every kind.
 * The Python round-trip test checks the result with onnx. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static int die(const char *what) {
    fprintf(stderr, "edit_model: %s: %s\n", what, kiln_last_error());
    return 1;
}

static char *dup(const char *s) { return kiln_strdup(s); }

static kiln_tensor *make_tensor(const char *name, kiln_dtype dt, int rank, const int64_t *dims) {
    kiln_tensor *t;
    if (kiln_tensor_create(dt, rank, dims, &t) != KILN_OK)
        return NULL;
    t->name = dup(name);
    for (int64_t i = 0; i < t->numel; i++) {
        if (dt == KILN_DTYPE_FLOAT)
            ((float *)t->data)[i] = 0.5f * (float)i;
        else if (dt == KILN_DTYPE_INT64)
            ((int64_t *)t->data)[i] = -3 * i;
    }
    return t;
}

static kiln_status add_value_info(kiln_value_info **arr, size_t *n, const kiln_value_info *v) {
    kiln_value_info *a = kiln_realloc(*arr, (*n + 1) * sizeof *a);
    if (!a)
        return KILN_ERR_NOMEM;
    *arr = a;
    kiln_value_info *d = &a[(*n)++];
    memset(d, 0, sizeof *d);
    d->name = dup(v->name);
    KILN_TRY(kiln_type_copy(&d->type, &v->type));
    return KILN_OK;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: edit_model IN OUT [VALUE.pb]\n");
        return 2;
    }
    kiln_model *m;
    if (kiln_model_load(argv[1], &m) != KILN_OK)
        return die(argv[1]);
    kiln_graph *g = m->graph;

    /* 1. freeze the last input that has no initializer to VALUE (models of
     * IR version 4 and later: before that initializers had to be inputs) */
    if (argc == 4 && m->ir_version >= 4) {
        for (size_t k = g->n_inputs; k-- > 0;) {
            kiln_value_info *in = &g->inputs[k];
            if (kiln_graph_find_init(g, in->name, NULL))
                continue;
            kiln_tensor *t;
            if (kiln_tensor_load(argv[3], &t) != KILN_OK)
                return die(argv[3]);
            free(t->name);
            t->name = dup(in->name);
            if (kiln_graph_add_init(g, t) != KILN_OK)
                return die("freeze");
            kiln_value_info_clear(in);
            memmove(in, in + 1, (g->n_inputs - k - 1) * sizeof *in);
            g->n_inputs--;
            break;
        }
    }

    /* 2. Identity copying the first output to a new graph output */
    if (g->n_outputs && g->outputs[0].type.kind == KILN_TYPE_TENSOR && kiln_model_opset(m, "") > 0) {
        kiln_value_info copy = g->outputs[0];
        char name[512];
        snprintf(name, sizeof name, "%s_copy", g->outputs[0].name);
        kiln_node *n = kiln_calloc(1, sizeof *n);
        n->name = dup("kiln_added_identity");
        n->op_type = dup("Identity");
        n->domain = dup("");
        n->n_inputs = n->n_outputs = 1;
        n->inputs = kiln_calloc(1, sizeof(char *));
        n->outputs = kiln_calloc(1, sizeof(char *));
        n->inputs[0] = dup(g->outputs[0].name);
        n->outputs[0] = dup(name);
        if (kiln_graph_add_node(g, n) != KILN_OK)
            return die("add node");
        copy.name = name;
        if (add_value_info(&g->outputs, &g->n_outputs, &copy) != KILN_OK)
            return die("add output");
    }

    /* 3. a node of a new domain with one attribute of every kind */
    kiln_node *p = kiln_calloc(1, sizeof *p);
    p->name = dup("probe");
    p->op_type = dup("Probe");
    p->domain = dup("kiln.test");
    p->doc = dup("added by edit_model");
    p->n_inputs = 1;
    p->inputs = kiln_calloc(1, sizeof(char *));
    p->inputs[0] = dup(g->outputs[0].name);
    p->n_outputs = 1;
    p->outputs = kiln_calloc(1, sizeof(char *));
    p->outputs[0] = dup("probe_out");
    p->n_attrs = 8;
    p->attrs = kiln_calloc(p->n_attrs, sizeof(kiln_attr));
    kiln_attr *a = p->attrs;
    a[0] = (kiln_attr){.name = dup("f"), .type = KILN_ATTR_FLOAT, .f = -0.25f};
    a[1] = (kiln_attr){.name = dup("i"), .type = KILN_ATTR_INT, .i = -((int64_t)1 << 40)};
    a[2] = (kiln_attr){.name = dup("s"), .type = KILN_ATTR_STRING, .s = {3, dup("a\"b")}};
    int64_t d2[] = {2, 3};
    a[3] = (kiln_attr){.name = dup("t"), .type = KILN_ATTR_TENSOR, .t = make_tensor("probe_t", KILN_DTYPE_INT64, 2, d2)};
    a[4] = (kiln_attr){.name = dup("floats"), .type = KILN_ATTR_FLOATS, .n = 2, .floats = kiln_calloc(2, sizeof(float))};
    a[4].floats[0] = 1.5f;
    a[4].floats[1] = -2.0f;
    a[5] = (kiln_attr){.name = dup("ints"), .type = KILN_ATTR_INTS, .n = 3, .ints = kiln_calloc(3, sizeof(int64_t))};
    a[5].ints[0] = 7;
    a[5].ints[2] = INT64_MIN;
    a[6] = (kiln_attr){.name = dup("strings"), .type = KILN_ATTR_STRINGS, .n = 2, .strings = kiln_calloc(2, sizeof(kiln_string))};
    a[6].strings[0] = (kiln_string){2, dup("xy")};
    a[6].strings[1] = (kiln_string){0, dup("")};
    a[7] = (kiln_attr){.name = dup("tensors"), .type = KILN_ATTR_TENSORS, .n = 1, .tensors = kiln_calloc(1, sizeof(kiln_tensor *))};
    int64_t d1[] = {4};
    a[7].tensors[0] = make_tensor("probe_ts", KILN_DTYPE_FLOAT, 1, d1);
    if (kiln_graph_add_node(g, p) != KILN_OK)
        return die("add probe");
    kiln_opset *o = kiln_realloc(m->opsets, (m->n_opsets + 1) * sizeof *o);
    if (!o)
        return die("opset");
    m->opsets = o;
    m->opsets[m->n_opsets++] = (kiln_opset){dup("kiln.test"), 1};

    kiln_save_options opts = {0};
    if (getenv("EDIT_MODEL_EXTERNAL"))
        opts.external_threshold = (size_t)atoll(getenv("EDIT_MODEL_EXTERNAL"));
    if (kiln_model_save(m, argv[2], &opts) != KILN_OK)
        return die(argv[2]);
    kiln_model_destroy(m);
    return 0;
}
