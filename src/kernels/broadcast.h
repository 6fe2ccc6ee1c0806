/* Multidirectional (numpy) broadcasting: merged dims and per-input strides,
 * walked row by row so inner loops carry no index arithmetic. */
#ifndef KILN_BROADCAST_H
#define KILN_BROADCAST_H

#include "ir/ir.h"

#define KILN_BCAST_MAX_IN 8

typedef struct kiln_bcast {
    int n_in;
    int rank;                    /* output rank */
    int64_t dims[KILN_MAX_RANK]; /* output dims */
    int64_t numel;
    /* merged view: mrank dims, the last one is the row */
    int mrank;
    int64_t mdims[KILN_MAX_RANK];
    int64_t strides[KILN_BCAST_MAX_IN][KILN_MAX_RANK]; /* element strides, 0 where broadcast */
    int64_t row_len;             /* mdims[mrank-1] */
    int64_t n_rows;
    int64_t step[KILN_BCAST_MAX_IN]; /* stride of each input along the row: 0 or 1 */
} kiln_bcast;

/* Output shape of broadcasting the given shapes; error if incompatible. */
kiln_status kiln_bcast_shape(int n, const int *ranks, const int64_t *const *dims, int *out_rank, int64_t *out_dims);
kiln_status kiln_bcast_init(kiln_bcast *b, int n, const kiln_tensor *const *in);
/* Element offsets of each input at the start of row r. */
void kiln_bcast_row(const kiln_bcast *b, int64_t r, int64_t *offsets);

#endif
