/* Broadcasting set-up (ONNX "multidirectional broadcasting", numpy rules). */
#include <string.h>

#include "kernels/broadcast.h"

kiln_status kiln_bcast_shape(int n, const int *ranks, const int64_t *const *dims, int *out_rank, int64_t *out_dims) {
    int r = 0;
    for (int i = 0; i < n; i++)
        if (ranks[i] > r)
            r = ranks[i];
    for (int d = 0; d < r; d++) {
        int64_t v = 1;
        for (int i = 0; i < n; i++) {
            int k = d - (r - ranks[i]);
            if (k < 0)
                continue;
            int64_t x = dims[i][k];
            if (x == 1)
                continue;
            if (v == 1)
                v = x;
            else if (x != v) {
                char a[256], b[256];
                return kiln_fail(KILN_ERR_INVALID, "shapes %s and %s cannot be broadcast together",
                                 kiln_dims_str(ranks[0], dims[0], a, sizeof a),
                                 kiln_dims_str(ranks[i], dims[i], b, sizeof b));
            }
        }
        /* a dim of 0 broadcasts against 1 only */
        out_dims[d] = v;
    }
    *out_rank = r;
    return KILN_OK;
}

kiln_status kiln_bcast_init(kiln_bcast *b, int n, const kiln_tensor *const *in) {
    memset(b, 0, sizeof *b);
    if (n > KILN_BCAST_MAX_IN)
        return kiln_fail(KILN_ERR_LIMIT, "too many inputs to broadcast (%d)", n);
    int ranks[KILN_BCAST_MAX_IN];
    const int64_t *dims[KILN_BCAST_MAX_IN];
    for (int i = 0; i < n; i++) {
        ranks[i] = in[i]->rank;
        dims[i] = in[i]->dims;
    }
    b->n_in = n;
    KILN_TRY(kiln_bcast_shape(n, ranks, dims, &b->rank, b->dims));
    KILN_TRY(kiln_dims_numel(b->rank, b->dims, &b->numel));
    /* Full strides per input, aligned to the output rank. */
    int64_t full[KILN_BCAST_MAX_IN][KILN_MAX_RANK];
    for (int i = 0; i < n; i++) {
        int64_t s = 1;
        for (int d = b->rank - 1; d >= 0; d--) {
            int k = d - (b->rank - ranks[i]);
            int64_t x = k >= 0 ? dims[i][k] : 1;
            full[i][d] = (x == 1 && b->dims[d] != 1) ? 0 : s;
            if (x == 1)
                full[i][d] = 0;
            s *= x;
        }
    }
    /* Merge adjacent dims where every input is contiguous across them or
     * broadcast across both. Size-1 output dims are dropped. */
    int m = 0;
    for (int d = 0; d < b->rank; d++) {
        if (b->dims[d] == 1)
            continue;
        bool merge = m > 0;
        for (int i = 0; i < n && merge; i++) {
            int64_t prev = b->strides[i][m - 1], cur = full[i][d];
            merge = (prev == 0 && cur == 0) || (prev != 0 && cur != 0 && prev == cur * b->dims[d]);
        }
        if (merge) {
            b->mdims[m - 1] *= b->dims[d];
            for (int i = 0; i < n; i++)
                b->strides[i][m - 1] = full[i][d];
        } else {
            b->mdims[m] = b->dims[d];
            for (int i = 0; i < n; i++)
                b->strides[i][m] = full[i][d];
            m++;
        }
    }
    if (m == 0) {
        b->mdims[0] = 1;
        for (int i = 0; i < n; i++)
            b->strides[i][0] = 0;
        m = 1;
    }
    b->mrank = m;
    b->row_len = b->mdims[m - 1];
    b->n_rows = b->row_len ? b->numel / b->row_len : 0;
    for (int i = 0; i < n; i++)
        b->step[i] = b->strides[i][m - 1] ? 1 : 0;
    return KILN_OK;
}

void kiln_bcast_row(const kiln_bcast *b, int64_t r, int64_t *offsets) {
    for (int i = 0; i < b->n_in; i++)
        offsets[i] = 0;
    for (int d = b->mrank - 2; d >= 0 && r > 0; d--) {
        int64_t idx = r % b->mdims[d];
        r /= b->mdims[d];
        for (int i = 0; i < b->n_in; i++)
            offsets[i] += idx * b->strides[i][d];
    }
}
