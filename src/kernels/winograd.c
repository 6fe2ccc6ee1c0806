/* Winograd convolution, F(2x2, 3x3) and F(4x4, 3x3) (see winograd.h).
 *
 * Each 2x2 output tile needs a 4x4 input tile d; with the filter g,
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * so the 16 positions of the 4x4 transformed domain are 16 independent
 * channel contractions: U[p] (M x C) times V[p] (C x tiles). Tiles are taken
 * in chunks (all images' tiles in one flat index) so V and the products stay
 * near cache; each chunk runs three parallel phases (input transform over
 * channels, GEMMs over positions, output transform over output channels).
 * F(2x2, 3x3) keeps float32 error at im2col level; F(4x4, 3x3) (6x6 tiles,
 * 36 positions) loses about a digit and is used only on large planes with
 * C <= 256.
 */
#include "kernels/winograd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/gemm.h"
#include "kernels/sgemm.h"

/* bytes of V + products per chunk */
#define WINO_CHUNK_BYTES ((int64_t)1 << 21)
/* the 16 position matrices sit one cache line apart from a power-of-two
 * spacing, so the transforms' 16 store streams do not alias in L1 */
#define WINO_STRIDE(n) ((n) + 16)

bool kiln_winograd_suits(const kiln_conv_geom *g, int64_t C, int64_t M, int64_t groups) {
    if (g->nsp != 2 || groups != 1 || C < 16 || M < 16)
        return false;
    for (int d = 0; d < 2; d++)
        if (g->k[d] != 3 || g->stride[d] != 1 || g->dil[d] != 1 || g->out[d] < 8)
            return false;
    return true;
}

typedef struct wino_job {
    const kiln_conv_geom *g;
    const float *x, *w, *b;
    float *y;
    int64_t C, M, th, tw, T; /* tiles per image: th x tw = T */
    int64_t t0, nt;          /* current chunk: flat tiles [t0, t0 + nt) */
    float *U, *V, *O;
    int np; /* transformed positions: 16 (F(2x2)) or 36 (F(4x4)) */
    bool clamp;
    float lo, hi;
} wino_job;

/* U[p][m][c] = (G g G^T)[p] for the 3x3 filter g = w[m][c]; the loop runs
 * over c so each of the 16 outputs is a contiguous (vectorisable) stream. */
KILN_CLONES static void wino_filter(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    int64_t C = j->C, MC = WINO_STRIDE(j->M * C);
    for (size_t m = begin; m < end; m++) {
        const float *k = j->w + (int64_t)m * C * 9;
        float *u = j->U + (int64_t)m * C;
        for (int64_t c = 0; c < C; c++) {
            const float *q = k + c * 9;
            float t[4][3];
            for (int col = 0; col < 3; col++) {
                float g0 = q[col], g1 = q[3 + col], g2 = q[6 + col];
                t[0][col] = g0;
                t[1][col] = 0.5f * (g0 + g1 + g2);
                t[2][col] = 0.5f * (g0 - g1 + g2);
                t[3][col] = g2;
            }
            for (int r = 0; r < 4; r++) {
                float g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
                u[(r * 4 + 0) * MC + c] = g0;
                u[(r * 4 + 1) * MC + c] = 0.5f * (g0 + g1 + g2);
                u[(r * 4 + 2) * MC + c] = 0.5f * (g0 - g1 + g2);
                u[(r * 4 + 3) * MC + c] = g2;
            }
        }
    }
}

/* tiles per row segment: the transforms work on arrays over a segment's
 * tiles, so the loops vectorise (a tile's 4 columns start at even offsets:
 * split into even and odd input columns, they become unit-stride) */
#define WINO_SEG 64

/* V[p][c][i] = (B^T d B)[p] for the input tile d of chunk tile i, channel c;
 * chunks hold whole tile rows. */
KILN_CLONES static void wino_input(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    const kiln_conv_geom *g = j->g;
    int64_t H = g->in[0], W = g->in[1], HW = H * W, nt = j->nt, CN = WINO_STRIDE(j->C * nt);
    int64_t row0 = j->t0 / j->tw, rows = nt / j->tw;
    float E[4][WINO_SEG + 1], D[4][WINO_SEG + 1], R[4][4][WINO_SEG];
    for (size_t c = begin; c < end; c++) {
        float *v = j->V + (int64_t)c * nt;
        for (int64_t r = 0; r < rows; r++) {
            int64_t gr = row0 + r, n = gr / j->th, ty = gr % j->th;
            const float *xp = j->x + (n * j->C + (int64_t)c) * HW;
            for (int64_t tx0 = 0; tx0 < j->tw; tx0 += WINO_SEG) {
                int64_t cnt = j->tw - tx0 < WINO_SEG ? j->tw - tx0 : WINO_SEG;
                int64_t xs = 2 * tx0 - g->pb[1];
                for (int a = 0; a < 4; a++) {
                    int64_t yy = 2 * ty - g->pb[0] + a;
                    if (yy < 0 || yy >= H) {
                        for (int64_t t = 0; t <= cnt; t++)
                            E[a][t] = D[a][t] = 0.0f;
                        continue;
                    }
                    const float *xr = xp + yy * W;
                    if (xs >= 0 && xs + 2 * cnt + 2 <= W) {
                        for (int64_t t = 0; t <= cnt; t++) {
                            E[a][t] = xr[xs + 2 * t];
                            D[a][t] = xr[xs + 2 * t + 1];
                        }
                    } else {
                        for (int64_t t = 0; t <= cnt; t++) {
                            int64_t x0 = xs + 2 * t, x1 = x0 + 1;
                            E[a][t] = x0 >= 0 && x0 < W ? xr[x0] : 0.0f;
                            D[a][t] = x1 >= 0 && x1 < W ? xr[x1] : 0.0f;
                        }
                    }
                }
                for (int a = 0; a < 4; a++) /* d B: column combinations */
                    for (int64_t t = 0; t < cnt; t++) {
                        R[a][0][t] = E[a][t] - E[a][t + 1];
                        R[a][1][t] = D[a][t] + E[a][t + 1];
                        R[a][2][t] = E[a][t + 1] - D[a][t];
                        R[a][3][t] = D[a][t] - D[a][t + 1];
                    }
                float *o = v + r * j->tw + tx0;
                for (int k = 0; k < 4; k++) { /* B^T (d B): row combinations */
                    float *o0 = o + k * CN, *o1 = o + (4 + k) * CN, *o2 = o + (8 + k) * CN, *o3 = o + (12 + k) * CN;
                    for (int64_t t = 0; t < cnt; t++) {
                        o0[t] = R[0][k][t] - R[2][k][t];
                        o1[t] = R[1][k][t] + R[2][k][t];
                        o2[t] = R[2][k][t] - R[1][k][t];
                        o3[t] = R[1][k][t] - R[3][k][t];
                    }
                }
            }
        }
    }
}

/* O[p] = U[p] V[p], U packed (kernels/sgemm.h) */
static void wino_gemm(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    size_t per = kiln_sgemm_pack_a_size((size_t)j->M, (size_t)j->C);
    for (size_t p = begin; p < end; p++)
        kiln_sgemm_packed_a(NULL, (size_t)j->M, (size_t)j->nt, (size_t)j->C, j->U + p * per,
                            j->V + (int64_t)p * WINO_STRIDE(j->C * j->nt), (size_t)j->nt, 0.0f,
                            j->O + (int64_t)p * WINO_STRIDE(j->M * j->nt), (size_t)j->nt, NULL);
}

/* y tile = A^T O A + bias, clamped; partial tiles write only what exists. */
KILN_CLONES static void wino_output(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    const kiln_conv_geom *g = j->g;
    int64_t OH = g->out[0], OW = g->out[1], OS = OH * OW, nt = j->nt, MN = WINO_STRIDE(j->M * nt);
    int64_t row0 = j->t0 / j->tw, rows = nt / j->tw;
    float S[2][4][WINO_SEG], Y[2][2][WINO_SEG];
    for (size_t m = begin; m < end; m++) {
        const float *om = j->O + (int64_t)m * nt;
        float bias = j->b ? j->b[m] : 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            int64_t gr = row0 + r, n = gr / j->th, oy = (gr % j->th) * 2;
            float *yp = j->y + (n * j->M + (int64_t)m) * OS + oy * OW;
            for (int64_t tx0 = 0; tx0 < j->tw; tx0 += WINO_SEG) {
                int64_t cnt = j->tw - tx0 < WINO_SEG ? j->tw - tx0 : WINO_SEG;
                const float *o = om + r * j->tw + tx0;
                for (int b = 0; b < 4; b++) { /* A^T O: rows */
                    const float *q0 = o + b * MN, *q1 = o + (4 + b) * MN, *q2 = o + (8 + b) * MN,
                                *q3 = o + (12 + b) * MN;
                    for (int64_t t = 0; t < cnt; t++) {
                        S[0][b][t] = q0[t] + q1[t] + q2[t];
                        S[1][b][t] = q1[t] - q2[t] - q3[t];
                    }
                }
                for (int a = 0; a < 2; a++) /* (A^T O) A: columns, then bias */
                    for (int64_t t = 0; t < cnt; t++) {
                        Y[a][0][t] = S[a][0][t] + S[a][1][t] + S[a][2][t] + bias;
                        Y[a][1][t] = S[a][1][t] - S[a][2][t] - S[a][3][t] + bias;
                    }
                if (j->clamp)
                    for (int a = 0; a < 2; a++)
                        for (int k = 0; k < 2; k++)
                            for (int64_t t = 0; t < cnt; t++) {
                                float vv = Y[a][k][t] < j->lo ? j->lo : Y[a][k][t];
                                Y[a][k][t] = vv > j->hi ? j->hi : vv;
                            }
                int64_t x0 = 2 * tx0;
                /* the last tile of an odd-width row has one column */
                int64_t full = x0 + 2 * cnt <= OW ? cnt : cnt - 1;
                for (int a = 0; a < 2 && oy + a < OH; a++) {
                    float *yr = yp + a * OW + x0;
                    for (int64_t t = 0; t < full; t++) {
                        yr[2 * t] = Y[a][0][t];
                        yr[2 * t + 1] = Y[a][1][t];
                    }
                    if (full < cnt)
                        yr[2 * full] = Y[a][0][full];
                }
            }
        }
    }
}


/* F(4x4, 3x3): 6x6 input tiles, 36 positions. B^T, G, A^T of the points
 * 0, +-1, +-2 (the standard choice; error stays ~1e-6 relative). */
static inline void wino4_bt(float c0, float c1, float c2, float c3, float c4, float c5, float *z, int64_t s) {
    z[0] = 4.0f * c0 - 5.0f * c2 + c4;
    z[s] = c3 + c4 - 4.0f * (c1 + c2);
    z[2 * s] = c4 - c3 + 4.0f * (c1 - c2);
    z[3 * s] = c4 - c2 + 2.0f * (c3 - c1);
    z[4 * s] = c4 - c2 - 2.0f * (c3 - c1);
    z[5 * s] = 4.0f * c1 - 5.0f * c3 + c5;
}

KILN_CLONES static void wino4_filter(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    int64_t C = j->C, MC = WINO_STRIDE(j->M * C);
    const float k6 = 1.0f / 6.0f, k12 = 1.0f / 12.0f, k24 = 1.0f / 24.0f;
    for (size_t m = begin; m < end; m++) {
        const float *k = j->w + (int64_t)m * C * 9;
        float *u = j->U + (int64_t)m * C;
        for (int64_t c = 0; c < C; c++) {
            const float *q = k + c * 9;
            float t[6][3];
            for (int col = 0; col < 3; col++) {
                float g0 = q[col], g1 = q[3 + col], g2 = q[6 + col];
                t[0][col] = 0.25f * g0;
                t[1][col] = -(g0 + g1 + g2) * k6;
                t[2][col] = -(g0 - g1 + g2) * k6;
                t[3][col] = g0 * k24 + g1 * k12 + g2 * k6;
                t[4][col] = g0 * k24 - g1 * k12 + g2 * k6;
                t[5][col] = g2;
            }
            for (int r = 0; r < 6; r++) {
                float g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
                u[(r * 6 + 0) * MC + c] = 0.25f * g0;
                u[(r * 6 + 1) * MC + c] = -(g0 + g1 + g2) * k6;
                u[(r * 6 + 2) * MC + c] = -(g0 - g1 + g2) * k6;
                u[(r * 6 + 3) * MC + c] = g0 * k24 + g1 * k12 + g2 * k6;
                u[(r * 6 + 4) * MC + c] = g0 * k24 - g1 * k12 + g2 * k6;
                u[(r * 6 + 5) * MC + c] = g2;
            }
        }
    }
}

#define WINO4_SEG 32

KILN_CLONES static void wino4_input(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    const kiln_conv_geom *g = j->g;
    int64_t H = g->in[0], W = g->in[1], HW = H * W, nt = j->nt, CN = WINO_STRIDE(j->C * nt);
    int64_t row0 = j->t0 / j->tw, rows = nt / j->tw;
    float P[6][4][WINO4_SEG + 1], R[6][6][WINO4_SEG];
    for (size_t c = begin; c < end; c++) {
        float *v = j->V + (int64_t)c * nt;
        for (int64_t r = 0; r < rows; r++) {
            int64_t gr = row0 + r, n = gr / j->th, ty = gr % j->th;
            const float *xp = j->x + (n * j->C + (int64_t)c) * HW;
            for (int64_t tx0 = 0; tx0 < j->tw; tx0 += WINO4_SEG) {
                int64_t cnt = j->tw - tx0 < WINO4_SEG ? j->tw - tx0 : WINO4_SEG;
                int64_t xs = 4 * tx0 - g->pb[1];
                for (int a = 0; a < 6; a++) {
                    int64_t yy = 4 * ty - g->pb[0] + a;
                    if (yy < 0 || yy >= H) {
                        for (int k = 0; k < 4; k++)
                            for (int64_t t = 0; t <= cnt; t++)
                                P[a][k][t] = 0.0f;
                        continue;
                    }
                    const float *xr = xp + yy * W;
                    if (xs >= 0 && xs + 4 * cnt + 4 <= W) {
                        for (int64_t t = 0; t <= cnt; t++)
                            for (int k = 0; k < 4; k++)
                                P[a][k][t] = xr[xs + 4 * t + k];
                    } else {
                        for (int64_t t = 0; t <= cnt; t++)
                            for (int k = 0; k < 4; k++) {
                                int64_t xx = xs + 4 * t + k;
                                P[a][k][t] = xx >= 0 && xx < W ? xr[xx] : 0.0f;
                            }
                    }
                }
                for (int a = 0; a < 6; a++) /* d B */
                    for (int64_t t = 0; t < cnt; t++)
                        wino4_bt(P[a][0][t], P[a][1][t], P[a][2][t], P[a][3][t], P[a][0][t + 1], P[a][1][t + 1],
                                 &R[a][0][t], WINO4_SEG);
                float *o = v + r * j->tw + tx0;
                for (int k = 0; k < 6; k++) /* B^T (d B) */
                    for (int64_t t = 0; t < cnt; t++)
                        wino4_bt(R[0][k][t], R[1][k][t], R[2][k][t], R[3][k][t], R[4][k][t], R[5][k][t],
                                 o + k * CN + t, 6 * CN);
            }
        }
    }
}

KILN_CLONES static void wino4_output(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    const kiln_conv_geom *g = j->g;
    int64_t OH = g->out[0], OW = g->out[1], OS = OH * OW, nt = j->nt, MN = WINO_STRIDE(j->M * nt);
    int64_t row0 = j->t0 / j->tw, rows = nt / j->tw;
    float S[4][6][WINO4_SEG], Y[4][4][WINO4_SEG];
    for (size_t m = begin; m < end; m++) {
        const float *om = j->O + (int64_t)m * nt;
        float bias = j->b ? j->b[m] : 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            int64_t gr = row0 + r, n = gr / j->th, oy = (gr % j->th) * 4;
            float *yp = j->y + (n * j->M + (int64_t)m) * OS + oy * OW;
            for (int64_t tx0 = 0; tx0 < j->tw; tx0 += WINO4_SEG) {
                int64_t cnt = j->tw - tx0 < WINO4_SEG ? j->tw - tx0 : WINO4_SEG;
                const float *o = om + r * j->tw + tx0;
                for (int b = 0; b < 6; b++) { /* A^T O */
                    const float *q0 = o + b * MN, *q1 = o + (6 + b) * MN, *q2 = o + (12 + b) * MN,
                                *q3 = o + (18 + b) * MN, *q4 = o + (24 + b) * MN, *q5 = o + (30 + b) * MN;
                    for (int64_t t = 0; t < cnt; t++) {
                        float a1 = q1[t] + q2[t], s1 = q1[t] - q2[t], a3 = q3[t] + q4[t], s3 = q3[t] - q4[t];
                        S[0][b][t] = q0[t] + a1 + a3;
                        S[1][b][t] = s1 + 2.0f * s3;
                        S[2][b][t] = a1 + 4.0f * a3;
                        S[3][b][t] = s1 + 8.0f * s3 + q5[t];
                    }
                }
                for (int a = 0; a < 4; a++) /* (A^T O) A, then bias */
                    for (int64_t t = 0; t < cnt; t++) {
                        float a1 = S[a][1][t] + S[a][2][t], s1 = S[a][1][t] - S[a][2][t];
                        float a3 = S[a][3][t] + S[a][4][t], s3 = S[a][3][t] - S[a][4][t];
                        Y[a][0][t] = S[a][0][t] + a1 + a3 + bias;
                        Y[a][1][t] = s1 + 2.0f * s3 + bias;
                        Y[a][2][t] = a1 + 4.0f * a3 + bias;
                        Y[a][3][t] = s1 + 8.0f * s3 + S[a][5][t] + bias;
                    }
                if (j->clamp)
                    for (int a = 0; a < 4; a++)
                        for (int k = 0; k < 4; k++)
                            for (int64_t t = 0; t < cnt; t++) {
                                float vv = Y[a][k][t] < j->lo ? j->lo : Y[a][k][t];
                                Y[a][k][t] = vv > j->hi ? j->hi : vv;
                            }
                int64_t x0 = 4 * tx0;
                /* the last tile of a row may have 1..3 columns */
                int64_t full = x0 + 4 * cnt <= OW ? cnt : cnt - 1, rest = OW - (x0 + 4 * full);
                for (int a = 0; a < 4 && oy + a < OH; a++) {
                    float *yr = yp + a * OW + x0;
                    for (int64_t t = 0; t < full; t++)
                        for (int k = 0; k < 4; k++)
                            yr[4 * t + k] = Y[a][k][t];
                    for (int64_t k = 0; full < cnt && k < rest; k++)
                        yr[4 * full + k] = Y[a][k][full];
                }
            }
        }
    }
}

bool kiln_winograd_f4(const kiln_conv_geom *g, int64_t C) {
    /* F(4x4) halves the GEMM work again but its transforms and 36 filter
     * planes cost more; it wins on large planes (resnet18's 56x56 and 28x28
     * measured ~5% faster overall). Its error grows with C (~1e-5 of the
     * output scale at C = 256), so deeper contractions keep F(2x2). */
    return g->out[0] * g->out[1] >= 700 && C <= 256;
}

kiln_status kiln_winograd_filter_size(int64_t C, int64_t M, bool f4, size_t *floats) {
    size_t per = kiln_sgemm_pack_a_size((size_t)M, (size_t)C);
    if (per == SIZE_MAX || per > SIZE_MAX / 36 / sizeof(float))
        return kiln_fail(KILN_ERR_INVALID, "Conv Winograd filter size overflows");
    *floats = per * (size_t)(f4 ? 36 : 16);
    return KILN_OK;
}

kiln_status kiln_winograd_filter(kiln_threads *pool, int64_t C, int64_t M, bool f4, const float *w, float *PU) {
    int np = f4 ? 36 : 16;
    int64_t uel;
    if (kiln_mul_overflow_i64(M, C, &uel) || kiln_mul_overflow_i64(WINO_STRIDE(uel), np, &uel))
        return kiln_fail(KILN_ERR_INVALID, "Conv Winograd filter size overflows");
    float *U = kiln_malloc((size_t)uel * sizeof(float));
    if (!U)
        return KILN_ERR_NOMEM;
    wino_job j;
    memset(&j, 0, sizeof j);
    j.w = w;
    j.C = C;
    j.M = M;
    j.U = U;
    kiln_threads_run(pool, (size_t)M, 1, f4 ? wino4_filter : wino_filter, &j);
    size_t per = kiln_sgemm_pack_a_size((size_t)M, (size_t)C);
    for (int p = 0; p < np; p++)
        kiln_sgemm_pack_a(false, (size_t)M, (size_t)C, 1.0f, U + (int64_t)p * WINO_STRIDE(M * C), (size_t)C,
                          PU + (size_t)p * per);
    free(U);
    return KILN_OK;
}

kiln_status kiln_winograd_conv(kiln_threads *pool, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M,
                               const float *x, const float *w, const float *U, const float *b, float *y, bool clamp,
                               float lo, float hi) {
    wino_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.x = x;
    j.w = w;
    j.b = b;
    j.y = y;
    j.C = C;
    j.M = M;
    j.clamp = clamp;
    j.lo = lo;
    j.hi = hi;
    bool f4 = kiln_winograd_f4(g, C);
    int ts = f4 ? 4 : 2, np = f4 ? 36 : 16;
    j.np = np;
    j.th = (g->out[0] + ts - 1) / ts;
    j.tw = (g->out[1] + ts - 1) / ts;
    int64_t total, chunk;
    size_t ufl = 0; /* set by kiln_winograd_filter_size; GCC cannot see it once that is inlined */
    KILN_TRY(kiln_winograd_filter_size(C, M, f4, &ufl));
    int64_t uel = U ? 0 : (int64_t)((ufl + 15) / 16 * 16);
    if (kiln_mul_overflow_i64(j.th, j.tw, &j.T) || kiln_mul_overflow_i64(j.T, N, &total))
        return kiln_fail(KILN_ERR_INVALID, "Conv Winograd sizes overflow");
    /* chunks of whole tile rows, at least one */
    chunk = WINO_CHUNK_BYTES / (np * 4 * (C + M)) / j.tw * j.tw;
    if (chunk < j.tw)
        chunk = j.tw;
    if (chunk > total)
        chunk = total;
    if (!kiln_gemm_dims_ok(M, chunk, C))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Conv GEMM dimensions exceed the BLAS int range");
    /* U (unless prepared), then V and the products for one chunk (a chunk
     * may exceed the budget when one tile row alone does: huge pads make
     * wide rows) */
    int64_t vo;
    size_t bytes;
    if (kiln_mul_overflow_i64(C + M, chunk, &vo) || kiln_mul_overflow_i64(vo, np, &vo) ||
        __builtin_add_overflow(uel, vo + 32 * np, &vo) || kiln_mul_overflow_size((size_t)vo, sizeof(float), &bytes))
        return kiln_fail(KILN_ERR_INVALID, "Conv Winograd buffer size overflows");
    float *s = kiln_malloc(bytes);
    if (!s)
        return KILN_ERR_NOMEM;
    if (U)
        j.U = (float *)U;
    else {
        j.U = s;
        kiln_status st = kiln_winograd_filter(pool, C, M, f4, w, s);
        if (st != KILN_OK) {
            free(s);
            return st;
        }
    }
    j.V = s + uel;
    j.O = j.V + np * WINO_STRIDE(C * chunk);
    for (j.t0 = 0; j.t0 < total; j.t0 += chunk) {
        j.nt = total - j.t0 < chunk ? total - j.t0 : chunk;
        kiln_threads_run(pool, (size_t)C, 1, f4 ? wino4_input : wino_input, &j);
        kiln_threads_run(pool, (size_t)np, 1, wino_gemm, &j);
        kiln_threads_run(pool, (size_t)M, 1, f4 ? wino4_output : wino_output, &j);
    }
    free(s);
    return KILN_OK;
}
