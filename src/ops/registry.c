/* The operator table: every family's descriptors, sorted once, searched by
 * (domain, name, opset). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

#define KILN_OP_FILE(name) extern const kiln_op_family kiln_ops_##name;
#include "ops/list_control.h"
#include "ops/list_elementwise.h"
#include "ops/list_misc.h"
#include "ops/list_nn.h"
#include "ops/list_reduce.h"
#include "ops/list_rnn.h"
#include "ops/list_tensor.h"
#undef KILN_OP_FILE

#define KILN_OP_FILE(name) &kiln_ops_##name,
static const kiln_op_family *const families[] = {
#include "ops/list_control.h"
#include "ops/list_elementwise.h"
#include "ops/list_misc.h"
#include "ops/list_nn.h"
#include "ops/list_reduce.h"
#include "ops/list_rnn.h"
#include "ops/list_tensor.h"
    NULL,
};
#undef KILN_OP_FILE

static const kiln_op_desc **table;
static size_t table_len;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int cmp_desc(const void *a, const void *b) {
    const kiln_op_desc *x = *(const kiln_op_desc *const *)a, *y = *(const kiln_op_desc *const *)b;
    int c = strcmp(x->domain, y->domain);
    if (!c)
        c = strcmp(x->name, y->name);
    if (!c)
        c = x->since - y->since;
    return c;
}

static void build_table(void) {
    size_t n = 0;
    for (size_t f = 0; families[f]; f++)
        n += families[f]->count;
    table = calloc(n ? n : 1, sizeof *table);
    if (!table)
        return;
    for (size_t f = 0; families[f]; f++)
        for (size_t i = 0; i < families[f]->count; i++)
            table[table_len++] = &families[f]->ops[i];
    qsort(table, table_len, sizeof *table, cmp_desc);
}

static size_t lower_bound(const char *domain, const char *name) {
    size_t lo = 0, hi = table_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(table[mid]->domain, domain);
        if (!c)
            c = strcmp(table[mid]->name, name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const kiln_op_desc *kiln_op_find(const char *domain, const char *name, int64_t opset) {
    pthread_once(&table_once, build_table);
    if (!domain || strcmp(domain, "ai.onnx") == 0)
        domain = "";
    const kiln_op_desc *best = NULL;
    for (size_t i = lower_bound(domain, name); i < table_len; i++) {
        const kiln_op_desc *d = table[i];
        if (strcmp(d->domain, domain) || strcmp(d->name, name))
            break;
        int until = d->until ? d->until : (*domain ? INT32_MAX : KILN_OPSET_MAX);
        if (d->since <= opset && opset <= until)
            best = d;
    }
    return best;
}

size_t kiln_op_table(const kiln_op_desc *const **out) {
    pthread_once(&table_once, build_table);
    *out = table;
    return table_len;
}

void kiln_op_versions(const char *domain, const char *name, char *buf, size_t n) {
    pthread_once(&table_once, build_table);
    if (!domain || strcmp(domain, "ai.onnx") == 0)
        domain = "";
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = lower_bound(domain, name); i < table_len && o < n; i++) {
        const kiln_op_desc *d = table[i];
        if (strcmp(d->domain, domain) || strcmp(d->name, name))
            break;
        int until = d->until ? d->until : (*domain ? 0 : KILN_OPSET_MAX);
        if (until)
            o += (size_t)snprintf(buf + o, n - o, "%s%d-%d", o ? ", " : "", d->since, until);
        else
            o += (size_t)snprintf(buf + o, n - o, "%s%d+", o ? ", " : "", d->since);
    }
}

kiln_status kiln_op_need_inputs(const kiln_op_ctx *c, size_t min) {
    for (size_t i = 0; i < min; i++)
        if (i >= c->n_in || !c->in[i])
            return kiln_fail(KILN_ERR_INVALID, "needs at least %zu inputs, input %zu is missing", min, i);
    return KILN_OK;
}

kiln_status kiln_op_need_dtype(const kiln_op_ctx *c, size_t i, const kiln_dtype *allowed, size_t n) {
    const kiln_tensor *t = kiln_op_in(c, i);
    if (!t)
        return kiln_fail(KILN_ERR_INVALID, "input %zu is missing", i);
    for (size_t k = 0; k < n; k++)
        if (t->dtype == allowed[k])
            return KILN_OK;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "input %zu ('%s') has element type %s, which this operator does not take",
                     i, i < c->node->n_inputs ? c->node->inputs[i] : "?", kiln_dtype_name(t->dtype));
}

kiln_status kiln_op_axis(const kiln_op_ctx *c, int64_t axis, int rank, int *out) {
    (void)c;
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank ? rank : 1))
        return kiln_fail(KILN_ERR_INVALID, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)a;
    return KILN_OK;
}
