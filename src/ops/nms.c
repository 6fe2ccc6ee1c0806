/* NonMaxSuppression (opset 10+).
 *
 * boxes [B, S, 4], scores [B, C, S]; optional scalar inputs
 * max_output_boxes_per_class (int64, default 0: nothing selected),
 * iou_threshold (default 0), score_threshold (default: none). For each batch
 * and class, boxes are visited by descending score (ties: lower index
 * first); a box is kept when its score exceeds score_threshold and its IoU
 * with every box already kept is not above iou_threshold. Output rows
 * [batch, class, box] are in batch, class, selection order.
 * center_point_box=0: boxes are [y1, x1, y2, x2] in any corner order;
 * 1: [x_center, y_center, width, height]. */
#include <stdlib.h>
#include <string.h>

#include "kernels/valio.h"
#include "ops/op.h"

typedef struct nms_box {
    double y1, x1, y2, x2, area;
} nms_box;

static double nms_iou(const nms_box *a, const nms_box *b) {
    if (a->area <= 0 || b->area <= 0)
        return 0.0;
    double iy1 = a->y1 > b->y1 ? a->y1 : b->y1, ix1 = a->x1 > b->x1 ? a->x1 : b->x1;
    double iy2 = a->y2 < b->y2 ? a->y2 : b->y2, ix2 = a->x2 < b->x2 ? a->x2 : b->x2;
    if (iy2 <= iy1 || ix2 <= ix1)
        return 0.0;
    double inter = (iy2 - iy1) * (ix2 - ix1);
    return inter / (a->area + b->area - inter);
}

typedef struct nms_cand {
    double score;
    int64_t idx;
} nms_cand;

static int nms_cmp(const void *pa, const void *pb) {
    const nms_cand *a = pa, *b = pb;
    if (a->score > b->score)
        return -1;
    if (a->score < b->score)
        return 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static kiln_status nms_scalar(const kiln_op_ctx *c, size_t i, double *out, bool *present) {
    const kiln_tensor *t = kiln_op_in(c, i);
    *present = false;
    if (!t)
        return KILN_OK;
    if (t->numel == 0)
        return KILN_OK;
    if (t->numel != 1)
        return kiln_fail(KILN_ERR_INVALID, "input %zu must hold one value, has %lld", i, (long long)t->numel);
    *out = kiln_tensor_get_f64(t, 0);
    *present = true;
    return KILN_OK;
}

static kiln_status nms_exec(kiln_op_ctx *c) {
    KILN_TRY(kiln_op_need_inputs(c, 2));
    const kiln_tensor *boxes = c->in[0], *scores = c->in[1];
    static const kiln_dtype ft[] = {KILN_DTYPE_FLOAT, KILN_DTYPE_DOUBLE, KILN_DTYPE_FLOAT16};
    KILN_TRY(kiln_op_need_dtype(c, 0, ft, 3));
    KILN_TRY(kiln_op_need_dtype(c, 1, ft, 3));
    if (boxes->rank != 3 || boxes->dims[2] != 4)
        return kiln_fail(KILN_ERR_INVALID, "boxes must have shape [batch, boxes, 4]");
    if (scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return kiln_fail(KILN_ERR_INVALID, "scores must have shape [batch, classes, boxes] matching boxes");
    int64_t B = boxes->dims[0], S = boxes->dims[1], C = scores->dims[1];
    int64_t maxout = 0;
    const kiln_tensor *mt = kiln_op_in(c, 2);
    if (mt && mt->numel > 0) {
        if (mt->numel != 1 || mt->dtype != KILN_DTYPE_INT64)
            return kiln_fail(KILN_ERR_INVALID, "max_output_boxes_per_class must be one int64 value");
        maxout = ((const int64_t *)mt->data)[0];
        if (maxout < 0)
            maxout = 0;
    }
    double iou_th = 0.0, score_th = 0.0;
    bool has_iou, has_score;
    KILN_TRY(nms_scalar(c, 3, &iou_th, &has_iou));
    KILN_TRY(nms_scalar(c, 4, &score_th, &has_score));
    int64_t cpb = kiln_attr_int(c->node, "center_point_box", 0);
    if (cpb != 0 && cpb != 1)
        return kiln_fail(KILN_ERR_INVALID, "center_point_box must be 0 or 1, got %lld", (long long)cpb);
    if (maxout > S)
        maxout = S;

    kiln_status st = KILN_OK;
    size_t ns = (size_t)(S ? S : 1);
    nms_box *bx = kiln_calloc(ns, sizeof *bx);
    nms_cand *order = kiln_calloc(ns, sizeof *order);
    int64_t *kept = kiln_calloc(ns, sizeof *kept);
    int64_t *sel = NULL;
    size_t nsel = 0, capsel = 0;
    if (!bx || !order || !kept) {
        st = KILN_ERR_NOMEM;
        goto done;
    }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t s = 0; s < S; s++) {
            double v[4];
            for (int k = 0; k < 4; k++)
                v[k] = kiln_load_f64(boxes->data, boxes->dtype, (b * S + s) * 4 + k);
            nms_box *p = &bx[s];
            if (cpb) {
                p->x1 = v[0] - v[2] / 2;
                p->x2 = v[0] + v[2] / 2;
                p->y1 = v[1] - v[3] / 2;
                p->y2 = v[1] + v[3] / 2;
            } else {
                p->y1 = v[0] < v[2] ? v[0] : v[2];
                p->y2 = v[0] < v[2] ? v[2] : v[0];
                p->x1 = v[1] < v[3] ? v[1] : v[3];
                p->x2 = v[1] < v[3] ? v[3] : v[1];
            }
            p->area = (p->y2 - p->y1) * (p->x2 - p->x1);
        }
        for (int64_t cl = 0; cl < C && maxout > 0; cl++) {
            int64_t n = 0;
            for (int64_t s = 0; s < S; s++) {
                double v = kiln_load_f64(scores->data, scores->dtype, (b * C + cl) * S + s);
                if (!has_score || v > score_th)
                    order[n++] = (nms_cand){v, s};
            }
            qsort(order, (size_t)n, sizeof *order, nms_cmp);
            int64_t nk = 0;
            for (int64_t i = 0; i < n && nk < maxout; i++) {
                const nms_box *cand = &bx[order[i].idx];
                bool keep = true;
                for (int64_t j = 0; j < nk && keep; j++)
                    if (nms_iou(cand, &bx[kept[j]]) > iou_th)
                        keep = false;
                if (!keep)
                    continue;
                kept[nk++] = order[i].idx;
                if (nsel == capsel) {
                    size_t nc = capsel ? capsel * 2 : 64;
                    int64_t *ns2 = kiln_realloc(sel, nc * 3 * sizeof *sel);
                    if (!ns2) {
                        st = KILN_ERR_NOMEM;
                        goto done;
                    }
                    sel = ns2;
                    capsel = nc;
                }
                sel[nsel * 3] = b;
                sel[nsel * 3 + 1] = cl;
                sel[nsel * 3 + 2] = order[i].idx;
                nsel++;
            }
        }
    }
    {
        kiln_tensor *out;
        int64_t dims[2] = {(int64_t)nsel, 3};
        KILN_CHECK(st, kiln_op_output(c, 0, KILN_DTYPE_INT64, 2, dims, &out), done);
        if (nsel)
            memcpy(out->data, sel, nsel * 3 * sizeof *sel);
    }
done:
    free(bx);
    free(order);
    free(kept);
    free(sel);
    return st;
}

/* Shape rule: [selected, 3] int64; the count depends on the values. */
static kiln_status nms_infer(kiln_infer_ctx *x) {
    if (x->n_out < 1)
        return KILN_OK;
    x->out[0].dt = KILN_DTYPE_INT64;
    x->out[0].rank = 2;
    x->out[0].dims[0] = kiln_sd_unknown();
    x->out[0].dims[1] = kiln_sd_const(3);
    return KILN_OK;
}

static const kiln_op_desc ops[] = {
    {"", "NonMaxSuppression", 10, 0, nms_exec, nms_infer},
};
KILN_OP_FAMILY(nms, ops);
