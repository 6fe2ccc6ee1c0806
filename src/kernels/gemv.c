/* Panel GEMV (see gemv.h).
 *
 * Each kernel keeps a tile of outputs (a few vectors x a few panels) in
 * registers across all of k: per k it loads one 16-float row of every panel
 * in the tile and broadcasts x[k] of every vector, so the weights are read
 * once per call and the accumulators give 6-8 independent FMA chains. The
 * tile shapes are compile-time constants of always-inline bodies, so the
 * accumulator arrays live in registers.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/gemv.h"

#if defined(__x86_64__) || defined(__i386__)
#define GEMV_X86 1
#include <immintrin.h>
#endif

#define PW KILN_GEMV_PANEL
#define INLINE static inline __attribute__((always_inline))
/* the tile loops have constant trip counts: unrolled, their arrays become registers */
#define UNROLL _Pragma("GCC unroll 16")

void kiln_gemv_pack_panel(int64_t rows, int64_t k, const float *a, int64_t lda, float *panel) {
    memset(panel, 0, (size_t)k * PW * sizeof(float));
    for (int64_t l = 0; l < rows && l < PW; l++)
        for (int64_t c = 0; c < k; c++)
            panel[c * PW + l] = a[l * lda + c];
}

/* ---- portable: tiles of up to four vectors by up to four panels ----
 * Generic 4-float vectors (GCC/Clang vector extensions: SSE, NEON, or
 * scalar code where there is neither), loaded and stored through memcpy. */

typedef float gemv_v4 __attribute__((vector_size(16)));

INLINE void tile_c(const int M, const int P, int64_t K, const float *a, const float *x, int64_t ldx,
                   const float *init, int64_t ldi, float *y, int64_t ldy) {
    gemv_v4 acc[4][4][PW / 4];
    const int64_t ps = K * PW;
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int q = 0; q < PW / 4; q++) {
                if (init)
                    memcpy(&acc[r][p][q], init + r * ldi + p * PW + 4 * q, sizeof(gemv_v4));
                else
                    acc[r][p][q] = (gemv_v4){0, 0, 0, 0};
            }
    for (int64_t k = 0; k < K; k++) {
        gemv_v4 w[4][PW / 4];
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int q = 0; q < PW / 4; q++)
                memcpy(&w[p][q], a + p * ps + k * PW + 4 * q, sizeof(gemv_v4));
        UNROLL
        for (int r = 0; r < M; r++) {
            float xs = x[r * ldx + k];
            gemv_v4 xv = {xs, xs, xs, xs};
            UNROLL
            for (int p = 0; p < P; p++)
                UNROLL
                for (int q = 0; q < PW / 4; q++)
                    acc[r][p][q] += xv * w[p][q];
        }
    }
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int q = 0; q < PW / 4; q++)
                memcpy(y + r * ldy + p * PW + 4 * q, &acc[r][p][q], sizeof(gemv_v4));
}

/* Tiles of P panels, then single panels, for M vectors. */
#define RUN_TILES(TILE, M, P)                                                                    \
    do {                                                                                         \
        int64_t p = 0;                                                                           \
        for (; p + (P) <= np; p += (P))                                                          \
            TILE(M, P, K, a + p * K * PW, xr, ldx, ir ? ir + p * PW : NULL, ldi, yr + p * PW, ldy); \
        for (; p < np; p++)                                                                      \
            TILE(M, 1, K, a + p * K * PW, xr, ldx, ir ? ir + p * PW : NULL, ldi, yr + p * PW, ldy); \
    } while (0)

static void gemv_c(int64_t m, int64_t np, int64_t K, const float *a, const float *x, int64_t ldx,
                   const float *init, int64_t ldi, float *y, int64_t ldy) {
    for (int64_t r0 = 0; r0 < m; r0 += 4) {
        int64_t mr = m - r0 < 4 ? m - r0 : 4;
        const float *xr = x + r0 * ldx, *ir = init ? init + r0 * ldi : NULL;
        float *yr = y + r0 * ldy;
        switch (mr) {
        case 1: RUN_TILES(tile_c, 1, 2); break;
        case 2: RUN_TILES(tile_c, 2, 1); break;
        case 3: RUN_TILES(tile_c, 3, 1); break;
        default: RUN_TILES(tile_c, 4, 1); break;
        }
    }
}

#ifdef GEMV_X86

/* ---- AVX-512: a panel row is one register ---- */

#define T512 __attribute__((target("avx512f")))

INLINE T512 void tile512(const int M, const int P, int64_t K, const float *a, const float *x, int64_t ldx,
                         const float *init, int64_t ldi, float *y, int64_t ldy) {
    __m512 acc[8][8];
    const int64_t ps = K * PW;
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            acc[r][p] = init ? _mm512_loadu_ps(init + r * ldi + p * PW) : _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 w[8];
        UNROLL
        for (int p = 0; p < P; p++)
            w[p] = _mm512_loadu_ps(a + p * ps + k * PW);
        UNROLL
        for (int r = 0; r < M; r++) {
            __m512 xb = _mm512_set1_ps(x[r * ldx + k]);
            UNROLL
            for (int p = 0; p < P; p++)
                acc[r][p] = _mm512_fmadd_ps(xb, w[p], acc[r][p]);
        }
    }
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            _mm512_storeu_ps(y + r * ldy + p * PW, acc[r][p]);
}

/* 32 registers: tiles of up to 8 vectors, so a short sequence's projection
 * reads the weights once per 8 rows. */
static T512 void gemv512(int64_t m, int64_t np, int64_t K, const float *a, const float *x, int64_t ldx,
                         const float *init, int64_t ldi, float *y, int64_t ldy) {
    for (int64_t r0 = 0; r0 < m; r0 += 8) {
        int64_t mr = m - r0 < 8 ? m - r0 : 8;
        const float *xr = x + r0 * ldx, *ir = init ? init + r0 * ldi : NULL;
        float *yr = y + r0 * ldy;
        switch (mr) {
        case 1: RUN_TILES(tile512, 1, 8); break;
        case 2: RUN_TILES(tile512, 2, 4); break;
        case 3: RUN_TILES(tile512, 3, 4); break;
        case 4: RUN_TILES(tile512, 4, 4); break;
        case 5: RUN_TILES(tile512, 5, 2); break;
        case 6: RUN_TILES(tile512, 6, 2); break;
        case 7: RUN_TILES(tile512, 7, 2); break;
        default: RUN_TILES(tile512, 8, 2); break;
        }
    }
}

/* ---- AVX2 + FMA: a panel row is two registers ---- */

#define T256 __attribute__((target("avx2,fma")))

INLINE T256 void tile256(const int M, const int P, int64_t K, const float *a, const float *x, int64_t ldx,
                         const float *init, int64_t ldi, float *y, int64_t ldy) {
    __m256 acc[4][4][2];
    const int64_t ps = K * PW;
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int h = 0; h < 2; h++)
                acc[r][p][h] = init ? _mm256_loadu_ps(init + r * ldi + p * PW + 8 * h) : _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m256 w[4][2];
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int h = 0; h < 2; h++)
                w[p][h] = _mm256_loadu_ps(a + p * ps + k * PW + 8 * h);
        UNROLL
        for (int r = 0; r < M; r++) {
            __m256 xb = _mm256_broadcast_ss(x + r * ldx + k);
            UNROLL
            for (int p = 0; p < P; p++)
                UNROLL
                for (int h = 0; h < 2; h++)
                    acc[r][p][h] = _mm256_fmadd_ps(xb, w[p][h], acc[r][p][h]);
        }
    }
    UNROLL
    for (int r = 0; r < M; r++)
        UNROLL
        for (int p = 0; p < P; p++)
            UNROLL
            for (int h = 0; h < 2; h++)
                _mm256_storeu_ps(y + r * ldy + p * PW + 8 * h, acc[r][p][h]);
}

static T256 void gemv256(int64_t m, int64_t np, int64_t K, const float *a, const float *x, int64_t ldx,
                         const float *init, int64_t ldi, float *y, int64_t ldy) {
    for (int64_t r0 = 0; r0 < m; r0 += 4) {
        int64_t mr = m - r0 < 4 ? m - r0 : 4;
        const float *xr = x + r0 * ldx, *ir = init ? init + r0 * ldi : NULL;
        float *yr = y + r0 * ldy;
        switch (mr) {
        case 1: RUN_TILES(tile256, 1, 4); break;
        case 2: RUN_TILES(tile256, 2, 2); break;
        case 3: RUN_TILES(tile256, 3, 1); break;
        default: RUN_TILES(tile256, 4, 1); break;
        }
    }
}

#endif /* GEMV_X86 */

static kiln_isa gemv_detect(void) {
    kiln_isa want = KILN_ISA_AUTO;
    const char *e = getenv("KILN_TEST_RNN_ISA");
    if (e && strcmp(e, "portable") == 0)
        want = KILN_ISA_PORTABLE;
    else if (e && strcmp(e, "avx2") == 0)
        want = KILN_ISA_AVX2;
    return kiln_isa_pick(want);
}

kiln_isa kiln_gemv_isa(void) {
    static int isa = -1; /* every thread computes the same value: a benign race */
    int v = __atomic_load_n(&isa, __ATOMIC_RELAXED);
    if (v < 0) {
        v = (int)gemv_detect();
        __atomic_store_n(&isa, v, __ATOMIC_RELAXED);
    }
    return (kiln_isa)v;
}

void kiln_sgemv_panels_isa(kiln_isa isa, int64_t m, int64_t np, int64_t k, const float *a, const float *x,
                           int64_t ldx, const float *init, int64_t ldi, float *y, int64_t ldy) {
    if (m <= 0 || np <= 0)
        return;
    isa = kiln_isa_pick(isa);
#ifdef GEMV_X86
    if (isa == KILN_ISA_AVX512) {
        gemv512(m, np, k, a, x, ldx, init, ldi, y, ldy);
        return;
    }
    if (isa == KILN_ISA_AVX2) {
        gemv256(m, np, k, a, x, ldx, init, ldi, y, ldy);
        return;
    }
#endif
    gemv_c(m, np, k, a, x, ldx, init, ldi, y, ldy);
}

void kiln_sgemv_panels(int64_t m, int64_t np, int64_t k, const float *a, const float *x, int64_t ldx,
                       const float *init, int64_t ldi, float *y, int64_t ldy) {
    kiln_sgemv_panels_isa(kiln_gemv_isa(), m, np, k, a, x, ldx, init, ldi, y, ldy);
}
