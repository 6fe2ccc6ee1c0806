/* MaxUnpool (opset 9, 11): scatters X into a zero tensor at the indices I
 * produced by MaxPool (flat indices into the whole [N, C, spatial...]
 * output). Output spatial size: (in - 1) * stride - pad_begin - pad_end +
 * kernel, or the optional output_shape input; indices always refer to the
 * inferred shape and keep their coordinates in a larger output_shape (as
 * the reference test expects). Indices outside the output are an error. */
#include <string.h>

#include "ops/op.h"

static kiln_status maxunpool_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *x = c->in[0], *ind = c->in[1], *os = kiln_op_in(c, 2);
    if (x->dtype == KILN_DTYPE_STRING)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "string input");
    if (ind->dtype != KILN_DTYPE_INT64)
        return kiln_fail(KILN_ERR_INVALID, "I must be int64, got %s", kiln_dtype_name(ind->dtype));
    if (x->rank < 3 || ind->rank != x->rank)
        return kiln_fail(KILN_ERR_INVALID, "X must have rank >= 3 and I the same shape");
    for (int i = 0; i < x->rank; i++)
        if (ind->dims[i] != x->dims[i])
            return kiln_fail(KILN_ERR_INVALID, "I's shape differs from X's");
    int nsp = x->rank - 2;
    size_t nk, ns, np;
    const int64_t *ks = kiln_attr_ints(c->node, "kernel_shape", &nk);
    const int64_t *st = kiln_attr_ints(c->node, "strides", &ns);
    const int64_t *pd = kiln_attr_ints(c->node, "pads", &np);
    if (!ks || nk != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "kernel_shape must have %d values", nsp);
    if (st && ns != (size_t)nsp)
        return kiln_fail(KILN_ERR_INVALID, "strides must have %d values", nsp);
    if (pd && np != (size_t)(2 * nsp))
        return kiln_fail(KILN_ERR_INVALID, "pads must have %d values", 2 * nsp);
    int64_t od[KILN_MAX_RANK], inf[KILN_MAX_RANK];
    inf[0] = x->dims[0];
    inf[1] = x->dims[1];
    for (int d = 0; d < nsp; d++) {
        int64_t s = st ? st[d] : 1, k = ks[d], pb = pd ? pd[d] : 0, pe = pd ? pd[d + nsp] : 0;
        if (s < 1 || k < 1 || pb < 0 || pe < 0 || s > (1 << 20) || k > (1 << 20) || pb > (1 << 20) ||
            pe > (1 << 20))
            return kiln_fail(KILN_ERR_INVALID, "kernel_shape, strides or pads out of range at dim %d", d);
        int64_t v;
        if (kiln_mul_overflow_i64(x->dims[d + 2] - 1, s, &v))
            return kiln_fail(KILN_ERR_INVALID, "output size overflows");
        inf[d + 2] = v - pb - pe + k;
        if (inf[d + 2] < 0)
            inf[d + 2] = 0;
    }
    int64_t inf_total;
    KILN_TRY(kiln_dims_numel(x->rank, inf, &inf_total));
    memcpy(od, inf, sizeof od);
    if (os) {
        if (os->rank != 1 || os->dims[0] != x->rank || os->dtype != KILN_DTYPE_INT64)
            return kiln_fail(KILN_ERR_INVALID, "output_shape must be an int64 vector of %d values", x->rank);
        for (int i = 0; i < x->rank; i++)
            od[i] = ((const int64_t *)os->data)[i];
        if (od[0] != x->dims[0] || od[1] != x->dims[1])
            return kiln_fail(KILN_ERR_INVALID, "output_shape must keep N and C of X");
    }
    int64_t total;
    KILN_TRY(kiln_dims_numel(x->rank, od, &total));
    kiln_tensor *y;
    KILN_TRY(kiln_op_output(c, 0, x->dtype, x->rank, od, &y));
    size_t es = kiln_dtype_size(x->dtype);
    if (y->nbytes)
        memset(y->data, 0, y->nbytes);
    const int64_t *iv = ind->data;
    for (int64_t i = 0; i < x->numel; i++) {
        if (iv[i] < 0 || iv[i] >= inf_total)
            return kiln_fail(KILN_ERR_INVALID, "I[%lld] = %lld is outside the unpooled tensor (%lld elements)",
                             (long long)i, (long long)iv[i], (long long)inf_total);
        /* decode in the inferred shape, re-encode in the output shape */
        int64_t r = iv[i], off = 0, mul = 1;
        for (int d = x->rank - 1; d >= 0; d--) {
            int64_t co = r % inf[d];
            r /= inf[d];
            if (co >= od[d])
                return kiln_fail(KILN_ERR_INVALID, "I[%lld] = %lld falls outside output_shape", (long long)i,
                                 (long long)iv[i]);
            off += co * mul;
            mul *= od[d];
        }
        memcpy((char *)y->data + (size_t)off * es, (const char *)x->data + (size_t)i * es, es);
    }
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "MaxUnpool", 9, 0, maxunpool_exec},
};
KILN_OP_FAMILY(maxunpool, ops);
