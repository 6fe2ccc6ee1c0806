/* Global pooling kernels (see pool.h). */
#include "kernels/pool.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define GP_X86 1
#else
#define GP_X86 0
#endif

/* Elements a task should have before another thread is woken. */
#define GP_TASK_ELEMS 65536

/* Sum and max of one plane with 4 vectors of VL lanes. The vector
 * extensions compile to the width the function's target allows. */
#define GP_DEFINE(SFX, ATTR, VL)                                                                     \
    typedef float gp_vf_##SFX __attribute__((vector_size(4 * (VL))));                                \
    typedef int gp_vi_##SFX __attribute__((vector_size(4 * (VL))));                                  \
    ATTR static inline gp_vf_##SFX gp_ld_##SFX(const float *p) {                                     \
        gp_vf_##SFX v;                                                                               \
        memcpy(&v, p, sizeof v);                                                                     \
        return v;                                                                                    \
    }                                                                                                \
    ATTR static double gp_sum_##SFX(const float *x, int64_t n) {                                     \
        double total = 0.0;                                                                          \
        for (int64_t b0 = 0; b0 < n; b0 += KILN_GPOOL_BLOCK) {                                       \
            int64_t m = n - b0 < KILN_GPOOL_BLOCK ? n - b0 : KILN_GPOOL_BLOCK;                       \
            const float *p = x + b0;                                                                 \
            gp_vf_##SFX a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                      \
            int64_t i = 0;                                                                           \
            for (; i + 4 * (VL) <= m; i += 4 * (VL)) {                                               \
                a0 += gp_ld_##SFX(p + i);                                                            \
                a1 += gp_ld_##SFX(p + i + (VL));                                                     \
                a2 += gp_ld_##SFX(p + i + 2 * (VL));                                                 \
                a3 += gp_ld_##SFX(p + i + 3 * (VL));                                                 \
            }                                                                                        \
            for (; i + (VL) <= m; i += (VL))                                                         \
                a0 += gp_ld_##SFX(p + i);                                                            \
            gp_vf_##SFX s = (a0 + a1) + (a2 + a3);                                                   \
            /* four partial sums over the lanes: one chain of VL adds would                         \
             * dominate small planes */                                                              \
            float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;                                        \
            for (int l = 0; l < (VL); l += 4) {                                                      \
                t0 += s[l];                                                                          \
                t1 += s[l + 1];                                                                      \
                t2 += s[l + 2];                                                                      \
                t3 += s[l + 3];                                                                      \
            }                                                                                        \
            float t = (t0 + t1) + (t2 + t3);                                                         \
            for (; i < m; i++)                                                                       \
                t += p[i];                                                                           \
            if (!isfinite(t)) { /* overflowed, or an inf / NaN: the block again in double */         \
                double u = 0.0;                                                                      \
                for (int64_t k = 0; k < m; k++)                                                      \
                    u += (double)p[k];                                                               \
                t = 0.0f;                                                                            \
                total += u;                                                                          \
            }                                                                                        \
            total += (double)t;                                                                      \
        }                                                                                            \
        return total;                                                                                \
    }                                                                                                \
    ATTR static float gp_max_##SFX(const float *x, int64_t n) {                                      \
        gp_vf_##SFX m0 = (gp_vf_##SFX){0} - INFINITY, m1 = m0, m2 = m0, m3 = m0;                     \
        gp_vi_##SFX nan = {0};                                                                       \
        int64_t i = 0;                                                                               \
        for (; i + 4 * (VL) <= n; i += 4 * (VL)) {                                                   \
            gp_vf_##SFX v0 = gp_ld_##SFX(x + i), v1 = gp_ld_##SFX(x + i + (VL));                     \
            gp_vf_##SFX v2 = gp_ld_##SFX(x + i + 2 * (VL)), v3 = gp_ld_##SFX(x + i + 3 * (VL));      \
            gp_vi_##SFX k0 = v0 > m0, k1 = v1 > m1, k2 = v2 > m2, k3 = v3 > m3;                      \
            m0 = (gp_vf_##SFX)(((gp_vi_##SFX)m0 & ~k0) | ((gp_vi_##SFX)v0 & k0));                    \
            m1 = (gp_vf_##SFX)(((gp_vi_##SFX)m1 & ~k1) | ((gp_vi_##SFX)v1 & k1));                    \
            m2 = (gp_vf_##SFX)(((gp_vi_##SFX)m2 & ~k2) | ((gp_vi_##SFX)v2 & k2));                    \
            m3 = (gp_vf_##SFX)(((gp_vi_##SFX)m3 & ~k3) | ((gp_vi_##SFX)v3 & k3));                    \
            nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3);                                \
        }                                                                                            \
        float r = -INFINITY;                                                                         \
        bool has_nan = false;                                                                        \
        for (int l = 0; l < (VL); l++) {                                                             \
            float a = m0[l] > m1[l] ? m0[l] : m1[l], b = m2[l] > m3[l] ? m2[l] : m3[l];              \
            a = a > b ? a : b;                                                                       \
            r = a > r ? a : r;                                                                       \
            has_nan |= nan[l] != 0;                                                                  \
        }                                                                                            \
        for (; i < n; i++) {                                                                         \
            has_nan |= x[i] != x[i];                                                                 \
            r = x[i] > r ? x[i] : r;                                                                 \
        }                                                                                            \
        return has_nan ? NAN : r;                                                                    \
    }

GP_DEFINE(portable, , 4)
#if GP_X86
GP_DEFINE(avx2, __attribute__((target("avx2"))), 8)
GP_DEFINE(avx512, __attribute__((target("avx512f"))), 16)
#endif

typedef double (*gp_sum_fn)(const float *x, int64_t n);
typedef float (*gp_max_fn)(const float *x, int64_t n);

typedef struct gp_job {
    kiln_gpool_op op;
    const float *x;
    float *y;
    int64_t n;
    gp_sum_fn sum;
    gp_max_fn max;
} gp_job;

static void gp_run(void *arg, size_t begin, size_t end) {
    const gp_job *j = arg;
    for (size_t p = begin; p < end; p++) {
        const float *xp = j->x + (int64_t)p * j->n;
        j->y[p] = j->op == KILN_GPOOL_AVG ? (float)(j->sum(xp, j->n) / (double)j->n) : j->max(xp, j->n);
    }
}

void kiln_global_pool_f32(kiln_gpool_op op, const float *x, int64_t planes, int64_t n, float *y,
                          kiln_threads *pool) {
    kiln_global_pool_f32_isa(op, x, planes, n, y, pool, KILN_ISA_AUTO);
}

void kiln_global_pool_f32_isa(kiln_gpool_op op, const float *x, int64_t planes, int64_t n, float *y,
                              kiln_threads *pool, kiln_isa isa) {
    if (planes <= 0 || n <= 0)
        return;
    gp_job j = {.op = op, .x = x, .y = y, .n = n, .sum = gp_sum_portable, .max = gp_max_portable};
#if GP_X86
    switch (kiln_isa_pick(isa)) {
    case KILN_ISA_AVX512:
        j.sum = gp_sum_avx512;
        j.max = gp_max_avx512;
        break;
    case KILN_ISA_AVX2:
        j.sum = gp_sum_avx2;
        j.max = gp_max_avx2;
        break;
    default:
        break;
    }
#else
    (void)isa;
#endif
    size_t grain = n >= GP_TASK_ELEMS ? 1 : (size_t)(GP_TASK_ELEMS / n);
    kiln_threads_run(pool, (size_t)planes, grain, gp_run, &j);
}
