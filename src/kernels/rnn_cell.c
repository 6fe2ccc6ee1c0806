/* Recurrent cell gate maths (see rnn_cell.h).
 *
 * One always-inline body per cell, written as plain loops of branch-free
 * element code (exp by range reduction and a polynomial, as in
 * elementwise_math.c), is compiled three times: for AVX-512, for AVX2+FMA and
 * for the build's baseline; kiln_gemv_isa (gemv.h) picks the one that runs.
 */
#include <math.h>
#include <string.h>

/* The selects below (clamps, the two arms of tanh, NaN passing) become
 * blends only when evaluating both arms may not raise a floating-point
 * exception kiln never looks at; GCC's default keeps them as branches
 * outside AVX-512 (clang's already allows it). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "kernels/gemv.h"
#include "kernels/rnn_cell.h"
#include "kernels/vmath.h"

#define INLINE static inline __attribute__((always_inline))

/* e^x for x <= 0 (the only arguments used here); NaN propagates. */
INLINE float cell_exp_neg(float x) { return x != x ? x : exp_core(x); }

/* sigmoid through e^-|x|, so neither side loses relative precision. */
INLINE float cell_sigmoid(float x) {
    float e = cell_exp_neg(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

/* tanh: odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above (written
 * with e^{-2|x|}). */
INLINE float cell_tanh(float x) {
    float a = fabsf(x);
    float small = tanh_small(a);
    float e = cell_exp_neg(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float t = a < 0.625f ? small : big;
    return copysignf(t, x);
}

INLINE float cell_clip(float v, float lim) { return v < -lim ? -lim : v > lim ? lim : v; }

/* The bodies run over blocks of CB units: loops of a constant trip count
 * are what the compiler vectorises without a cost model's doubts; a last
 * partial block goes through zero-padded copies. */
#define CB 16

INLINE void lstm_block(const float *restrict gi, const float *restrict go, const float *restrict gf,
                       const float *restrict gg, const float *restrict cp, const float *restrict pi,
                       const float *restrict po, const float *restrict pf, float *restrict c, float *restrict h,
                       float lim, const bool coupled, const bool peep) {
    for (int j = 0; j < CB; j++) {
        float cprev = cp[j];
        float vi = gi[j], vf = gf[j], vo = go[j];
        if (peep) {
            vi += pi[j] * cprev;
            vf += pf[j] * cprev;
        }
        float i = cell_sigmoid(cell_clip(vi, lim));
        float fs = cell_sigmoid(cell_clip(vf, lim));
        float f = coupled ? 1.0f - i : fs;
        float cc = cell_tanh(cell_clip(gg[j], lim));
        float cn = f * cprev + i * cc;
        if (peep)
            vo += po[j] * cn;
        float o = cell_sigmoid(cell_clip(vo, lim));
        c[j] = cn;
        h[j] = o * cell_tanh(cn);
    }
}

/* Copies m (< CB) floats of src into a zero-padded block. */
INLINE const float *cell_pad(float *blk, const float *src, int64_t m) {
    if (!src)
        return NULL;
    memset(blk, 0, CB * sizeof(float));
    memcpy(blk, src, (size_t)m * sizeof(float));
    return blk;
}

INLINE void lstm_body(const kiln_lstm_cell *a) {
    const bool peep = a->pi != NULL;
    for (int64_t j = 0; j < a->n; j += CB) {
        int64_t m = a->n - j < CB ? a->n - j : CB;
        const float *gi = a->i + j, *go = a->o + j, *gf = a->f + j, *gg = a->g + j, *cp = a->c_prev + j;
        const float *pi = peep ? a->pi + j : NULL, *po = peep ? a->po + j : NULL, *pf = peep ? a->pf + j : NULL;
        float *c = a->c + j, *h = a->h + j;
        float in[8][CB], out[2][CB];
        if (m < CB) {
            gi = cell_pad(in[0], gi, m), go = cell_pad(in[1], go, m);
            gf = cell_pad(in[2], gf, m), gg = cell_pad(in[3], gg, m);
            cp = cell_pad(in[4], cp, m), pi = cell_pad(in[5], pi, m);
            po = cell_pad(in[6], po, m), pf = cell_pad(in[7], pf, m);
            c = out[0], h = out[1];
        }
        /* both flags as constants: a select on a run-time flag does not vectorise */
        if (peep && a->input_forget)
            lstm_block(gi, go, gf, gg, cp, pi, po, pf, c, h, a->clip, true, true);
        else if (peep)
            lstm_block(gi, go, gf, gg, cp, pi, po, pf, c, h, a->clip, false, true);
        else if (a->input_forget)
            lstm_block(gi, go, gf, gg, cp, pi, po, pf, c, h, a->clip, true, false);
        else
            lstm_block(gi, go, gf, gg, cp, pi, po, pf, c, h, a->clip, false, false);
        if (m < CB) {
            memcpy(a->c + j, out[0], (size_t)m * sizeof(float));
            memcpy(a->h + j, out[1], (size_t)m * sizeof(float));
        }
    }
}

INLINE void gru_zr_block(float lim, float *restrict z, const float *restrict r, const float *restrict hp,
                         float *restrict rh) {
    for (int j = 0; j < CB; j++) {
        z[j] = cell_sigmoid(cell_clip(z[j], lim));
        rh[j] = cell_sigmoid(cell_clip(r[j], lim)) * hp[j];
    }
}

INLINE void gru_zr_body(int64_t n, float lim, float *z, const float *r, const float *hp, float *rh) {
    for (int64_t j = 0; j < n; j += CB) {
        int64_t m = n - j < CB ? n - j : CB;
        if (m == CB) {
            gru_zr_block(lim, z + j, r + j, hp + j, rh + j);
            continue;
        }
        float bz[CB], br[CB], bh[CB], brh[CB];
        cell_pad(bz, z + j, m), cell_pad(br, r + j, m), cell_pad(bh, hp + j, m);
        gru_zr_block(lim, bz, br, bh, brh);
        memcpy(z + j, bz, (size_t)m * sizeof(float));
        memcpy(rh + j, brh, (size_t)m * sizeof(float));
    }
}

INLINE void gru_out_block(float lim, const float *restrict z, const float *restrict gh, const float *restrict hp,
                          float *restrict h) {
    for (int j = 0; j < CB; j++) {
        float hh = cell_tanh(cell_clip(gh[j], lim));
        h[j] = (1.0f - z[j]) * hh + z[j] * hp[j];
    }
}

INLINE void gru_out_body(int64_t n, float lim, const float *z, const float *gh, const float *hp, float *h) {
    for (int64_t j = 0; j < n; j += CB) {
        int64_t m = n - j < CB ? n - j : CB;
        if (m == CB) {
            gru_out_block(lim, z + j, gh + j, hp + j, h + j);
            continue;
        }
        float bz[CB], bg[CB], bh[CB], bo[CB];
        cell_pad(bz, z + j, m), cell_pad(bg, gh + j, m), cell_pad(bh, hp + j, m);
        gru_out_block(lim, bz, bg, bh, bo);
        memcpy(h + j, bo, (size_t)m * sizeof(float));
    }
}

INLINE void gru_lbr_block(float lim, const float *restrict gz, const float *restrict gr, const float *restrict xh,
                          const float *restrict rh, const float *restrict hp, float *restrict h) {
    for (int j = 0; j < CB; j++) {
        float z = cell_sigmoid(cell_clip(gz[j], lim));
        float r = cell_sigmoid(cell_clip(gr[j], lim));
        float hh = cell_tanh(cell_clip(xh[j] + r * rh[j], lim));
        h[j] = (1.0f - z) * hh + z * hp[j];
    }
}

INLINE void gru_lbr_body(int64_t n, float lim, const float *gz, const float *gr, const float *xh, const float *rh,
                         const float *hp, float *h) {
    for (int64_t j = 0; j < n; j += CB) {
        int64_t m = n - j < CB ? n - j : CB;
        if (m == CB) {
            gru_lbr_block(lim, gz + j, gr + j, xh + j, rh + j, hp + j, h + j);
            continue;
        }
        float b[5][CB], bo[CB];
        cell_pad(b[0], gz + j, m), cell_pad(b[1], gr + j, m), cell_pad(b[2], xh + j, m);
        cell_pad(b[3], rh + j, m), cell_pad(b[4], hp + j, m);
        gru_lbr_block(lim, b[0], b[1], b[2], b[3], b[4], bo);
        memcpy(h + j, bo, (size_t)m * sizeof(float));
    }
}

INLINE void rnn_block(float lim, const float *restrict g, float *restrict h) {
    for (int j = 0; j < CB; j++)
        h[j] = cell_tanh(cell_clip(g[j], lim));
}

INLINE void rnn_body(int64_t n, float lim, const float *g, float *h) {
    for (int64_t j = 0; j < n; j += CB) {
        int64_t m = n - j < CB ? n - j : CB;
        if (m == CB) {
            rnn_block(lim, g + j, h + j);
            continue;
        }
        float bg[CB], bo[CB];
        cell_pad(bg, g + j, m);
        rnn_block(lim, bg, bo);
        memcpy(h + j, bo, (size_t)m * sizeof(float));
    }
}

/* The three builds of every body and the picking of one. */
#if defined(__x86_64__) || defined(__i386__)
#define CELL_X86 1
#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma")))
#define CELL_BUILDS(name, params, body)   \
    static T512 void name##_512 params { body; } \
    static T256 void name##_256 params { body; } \
    static void name##_base params { body; }
#define CELL_CALL(name, args)                           \
    do {                                                \
        kiln_isa isa_ = kiln_gemv_isa();                \
        if (isa_ == KILN_ISA_AVX512)                    \
            name##_512 args;                            \
        else if (isa_ == KILN_ISA_AVX2)                 \
            name##_256 args;                            \
        else                                            \
            name##_base args;                           \
    } while (0)
#else
#define CELL_BUILDS(name, params, body) \
    static void name##_base params { body; }
#define CELL_CALL(name, args) name##_base args
#endif

CELL_BUILDS(lstm, (const kiln_lstm_cell *a), lstm_body(a))
CELL_BUILDS(gru_zr, (int64_t n, float lim, float *z, const float *r, const float *hp, float *rh),
            gru_zr_body(n, lim, z, r, hp, rh))
CELL_BUILDS(gru_out, (int64_t n, float lim, const float *z, const float *gh, const float *hp, float *h),
            gru_out_body(n, lim, z, gh, hp, h))
CELL_BUILDS(gru_lbr,
            (int64_t n, float lim, const float *gz, const float *gr, const float *xh, const float *rh,
             const float *hp, float *h),
            gru_lbr_body(n, lim, gz, gr, xh, rh, hp, h))
CELL_BUILDS(rnn_tanh, (int64_t n, float lim, const float *g, float *h), rnn_body(n, lim, g, h))

void kiln_lstm_cell_f32(const kiln_lstm_cell *a) { CELL_CALL(lstm, (a)); }
void kiln_gru_zr_f32(int64_t n, float clip, float *z, const float *r, const float *h_prev, float *rh) {
    CELL_CALL(gru_zr, (n, clip, z, r, h_prev, rh));
}
void kiln_gru_out_f32(int64_t n, float clip, const float *z, const float *gh, const float *h_prev, float *h) {
    CELL_CALL(gru_out, (n, clip, z, gh, h_prev, h));
}
void kiln_gru_lbr_f32(int64_t n, float clip, const float *gz, const float *gr, const float *xh, const float *rh,
                      const float *h_prev, float *h) {
    CELL_CALL(gru_lbr, (n, clip, gz, gr, xh, rh, h_prev, h));
}
void kiln_rnn_tanh_f32(int64_t n, float clip, const float *g, float *h) { CELL_CALL(rnn_tanh, (n, clip, g, h)); }
