/* Internal to kernels/sgemm*.c: the micro-kernel contract.
 *
 * A kernel computes one tile of at most SG_MR x SG_NR (8 x 48) elements of
 * C from kc steps of a packed A panel (8 floats a step) and a packed B panel
 * (48 floats a step), then finishes it as the tail says: on the first k
 * block C is overwritten (beta == 0) or scaled by beta and added; on later
 * blocks it is added; on the last block the epilogue is applied. Pointers in
 * the tail are already offset to the tile's first row / column.
 */
#ifndef KILN_KERNELS_SGEMM_KERNELS_H
#define KILN_KERNELS_SGEMM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

#define SG_MR 8
#define SG_NR 48

typedef struct sg_tail {
    float beta;
    bool first, last;
    const float *row_bias, *col_bias, *res;
    size_t ldr;
    bool clamp;
    float lo, hi;
    const float *next_a; /* the A panel the next tile reads (prefetched), or NULL */
} sg_tail;

typedef void (*sg_kernel)(size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int mr, int nr,
                          const sg_tail *t);

/* Finishes element (r, j) of a tile from its accumulated value. */
static inline float sg_finish(float v, const float *c, int r, int j, size_t ldc, const sg_tail *t) {
    if (!t->first)
        v += c[(size_t)r * ldc + (size_t)j];
    else if (t->beta != 0.0f)
        v += t->beta * c[(size_t)r * ldc + (size_t)j];
    if (t->last) {
        if (t->row_bias)
            v += t->row_bias[r];
        if (t->col_bias)
            v += t->col_bias[j];
        if (t->res)
            v += t->res[(size_t)r * t->ldr + (size_t)j];
        if (t->clamp)
            v = v < t->lo ? t->lo : (v > t->hi ? t->hi : v);
    }
    return v;
}

void kiln_sgemm_kernel_portable(size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int mr, int nr,
                                const sg_tail *t);
#if defined(__x86_64__) || defined(__i386__)
#define SG_HAVE_X86 1
void kiln_sgemm_kernel_avx2(size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int mr, int nr,
                            const sg_tail *t);
void kiln_sgemm_kernel_avx512(size_t kc, const float *pa, const float *pb, float *c, size_t ldc, int mr, int nr,
                              const sg_tail *t);
#endif

#endif
