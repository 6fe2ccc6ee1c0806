/* Winograd F(2x2, 3x3) convolution (see winograd.h).
 *
 * Each 2x2 output tile needs a 4x4 input tile d; with the filter g,
 *   Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * so the 16 positions of the 4x4 transformed domain are 16 independent
 * channel contractions: U[p] (M x C) times V[p] (C x tiles). Tiles are taken
 * in chunks (all images' tiles in one flat index) so V and the products stay
 * near cache; each chunk runs three parallel phases (input transform over
 * channels, GEMMs over positions, output transform over output channels).
 * F(2x2, 3x3) keeps float32 error at im2col level (F(4x4) loses ~1 digit).
 */
#include "kernels/winograd.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "kernels/gemm.h"

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
    bool clamp;
    float lo, hi;
} wino_job;

/* U[p][m][c] = (G g G^T)[p] for the 3x3 filter g = w[m][c]; the loop runs
 * over c so each of the 16 outputs is a contiguous (vectorisable) stream. */
static void wino_filter(void *arg, size_t begin, size_t end) {
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
static void wino_input(void *arg, size_t begin, size_t end) {
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

static void wino_gemm(void *arg, size_t begin, size_t end) {
    const wino_job *j = arg;
    for (size_t p = begin; p < end; p++)
        kiln_sgemm(false, false, j->M, j->nt, j->C, 1.0f, j->U + (int64_t)p * WINO_STRIDE(j->M * j->C), j->C,
                   j->V + (int64_t)p * WINO_STRIDE(j->C * j->nt), j->nt, 0.0f,
                   j->O + (int64_t)p * WINO_STRIDE(j->M * j->nt), j->nt);
}

/* y tile = A^T O A + bias, clamped; partial tiles write only what exists. */
static void wino_output(void *arg, size_t begin, size_t end) {
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

kiln_status kiln_winograd_conv(kiln_op_ctx *c, const kiln_conv_geom *g, int64_t N, int64_t C, int64_t M,
                               const float *x, const float *w, const float *b, float *y, bool clamp, float lo,
                               float hi) {
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
    j.th = (g->out[0] + 1) / 2;
    j.tw = (g->out[1] + 1) / 2;
    int64_t total, uel, chunk;
    if (kiln_mul_overflow_i64(j.th, j.tw, &j.T) || kiln_mul_overflow_i64(j.T, N, &total) ||
        kiln_mul_overflow_i64(M, C, &uel) || kiln_mul_overflow_i64(WINO_STRIDE(uel), 16, &uel))
        return kiln_fail(KILN_ERR_INVALID, "Conv Winograd sizes overflow");
    /* chunks of whole tile rows, at least one */
    chunk = WINO_CHUNK_BYTES / (16 * 4 * (C + M)) / j.tw * j.tw;
    if (chunk < j.tw)
        chunk = j.tw;
    if (chunk > total)
        chunk = total;
    if (!kiln_gemm_dims_ok(M, chunk, C))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "Conv GEMM dimensions exceed the BLAS int range");
    /* (C + M) * 16 * chunk <= max(2 MiB, 64 (C + M)) floats, uel checked above */
    size_t bytes = ((size_t)uel + (size_t)(16 * (C + M)) * (size_t)chunk + 32 * 16) * sizeof(float);
    float *s = kiln_malloc(bytes);
    if (!s)
        return KILN_ERR_NOMEM;
    j.U = s;
    j.V = s + uel;
    j.O = j.V + 16 * WINO_STRIDE(C * chunk);
    kiln_gemm_init();
    kiln_parallel_for(c, (size_t)M, 1, wino_filter, &j);
    for (j.t0 = 0; j.t0 < total; j.t0 += chunk) {
        j.nt = total - j.t0 < chunk ? total - j.t0 : chunk;
        kiln_parallel_for(c, (size_t)C, 1, wino_input, &j);
        kiln_parallel_for(c, 16, 1, wino_gemm, &j);
        kiln_parallel_for(c, (size_t)M, 1, wino_output, &j);
    }
    free(s);
    return KILN_OK;
}
