/* The depthwise and global pooling kernels, every instruction set the CPU
 * has (portable, AVX2, AVX-512), on one thread and on a pool, against direct
 * double-precision sums written out here. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec/exec.h"
#include "kernels/depthwise.h"
#include "kernels/pool.h"

static uint32_t rng_state = 12345u;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

typedef struct dw_case {
    int nsp;
    int64_t in[2], k[2], s[2], d[2], pb[2], pe[2];
    int64_t N, C, mult;
    bool bias, clamp;
} dw_case;

/* y and the bound sum |b| + sum |w x| per output, in double */
static void dw_reference(const kiln_conv_geom *g, const dw_case *c, const float *x, const float *w, const float *b,
                         double *y, double *mag) {
    int64_t IH = c->nsp == 2 ? g->in[0] : 1, OH = c->nsp == 2 ? g->out[0] : 1;
    int64_t KH = c->nsp == 2 ? g->k[0] : 1, SH = c->nsp == 2 ? g->stride[0] : 1, DH = c->nsp == 2 ? g->dil[0] : 1,
            PH = c->nsp == 2 ? g->pb[0] : 0;
    int L = c->nsp - 1;
    int64_t IW = g->in[L], OW = g->out[L], KW = g->k[L], SW = g->stride[L], DW = g->dil[L], PW = g->pb[L];
    int64_t M = c->C * c->mult;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < M; m++) {
            const float *xc = x + (n * c->C + m / c->mult) * IH * IW;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = b ? b[m] : 0.0, a = b ? fabs(b[m]) : 0.0;
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t ih = oh * SH - PH + kh * DH, iw = ow * SW - PW + kw * DW;
                            if (ih < 0 || ih >= IH || iw < 0 || iw >= IW)
                                continue;
                            double t = (double)w[(m * KH + kh) * KW + kw] * (double)xc[ih * IW + iw];
                            acc += t;
                            a += fabs(t);
                        }
                    if (c->clamp)
                        acc = acc < -0.25 ? -0.25 : acc > 0.5 ? 0.5 : acc;
                    int64_t o = ((n * M + m) * OH + oh) * OW + ow;
                    y[o] = acc;
                    mag[o] = a;
                }
        }
}

static int dw_run_case(const dw_case *c, kiln_isa isa, kiln_threads *pool) {
    kiln_conv_geom g;
    memset(&g, 0, sizeof g);
    g.nsp = c->nsp;
    for (int d = 0; d < c->nsp; d++) {
        g.in[d] = c->in[d];
        g.k[d] = c->k[d];
        g.stride[d] = c->s[d];
        g.dil[d] = c->d[d];
        g.pb[d] = c->pb[d];
        g.pe[d] = c->pe[d];
    }
    if (kiln_conv_forward_shape(&g, false) != KILN_OK)
        return 0; /* padded input smaller than the window: not a case */
    assert_true(kiln_depthwise_suits(&g));
    int64_t M = c->C * c->mult, xn = c->N * c->C * g.in_size, yn = c->N * M * g.out_size;
    float *x = malloc((size_t)xn * sizeof(float)), *w = malloc((size_t)(M * g.k_size) * sizeof(float));
    float *b = malloc((size_t)M * sizeof(float)), *y = malloc((size_t)yn * sizeof(float));
    double *ref = malloc((size_t)yn * sizeof(double)), *mag = malloc((size_t)yn * sizeof(double));
    for (int64_t i = 0; i < xn; i++)
        x[i] = frand();
    for (int64_t i = 0; i < M * g.k_size; i++)
        w[i] = frand();
    for (int64_t i = 0; i < M; i++)
        b[i] = frand();
    for (int64_t i = 0; i < yn; i++)
        y[i] = NAN;
    kiln_dw_params p = {.N = c->N, .C = c->C, .M = M, .clamp = c->clamp, .lo = -0.25f, .hi = 0.5f, .isa = isa};
    int64_t sn = kiln_depthwise_scratch(&g, &p, pool);
    assert_true(sn > 0);
    float *s = malloc((size_t)sn * sizeof(float));
    kiln_depthwise_f32(&g, &p, x, w, c->bias ? b : NULL, y, s, pool);
    dw_reference(&g, c, x, w, c->bias ? b : NULL, ref, mag);
    int bad = 0;
    for (int64_t i = 0; i < yn && bad < 5; i++)
        if (!(fabs((double)y[i] - ref[i]) <= 1e-5 * (mag[i] + 1e-3))) {
            print_error("isa %d nsp %d in %lldx%lld k %lldx%lld s %lldx%lld d %lldx%lld pads %lld,%lld/%lld,%lld "
                        "N%lld C%lld mult%lld bias %d clamp %d: y[%lld] = %.8g, expected %.8g\n",
                        (int)isa, c->nsp, (long long)c->in[0], (long long)c->in[1], (long long)c->k[0],
                        (long long)c->k[1], (long long)c->s[0], (long long)c->s[1], (long long)c->d[0],
                        (long long)c->d[1], (long long)c->pb[0], (long long)c->pb[1], (long long)c->pe[0],
                        (long long)c->pe[1], (long long)c->N, (long long)c->C, (long long)c->mult, c->bias,
                        c->clamp, (long long)i, (double)y[i], ref[i]);
            bad++;
        }
    free(x);
    free(w);
    free(b);
    free(y);
    free(ref);
    free(mag);
    free(s);
    assert_int_equal(bad, 0);
    return 1;
}

static const kiln_isa isas[] = {KILN_ISA_PORTABLE, KILN_ISA_AVX2, KILN_ISA_AVX512};

/* A sweep of windows, strides, dilations and pads over odd sizes, each case
 * on every instruction set, alternating between one thread and a pool. */
static void test_depthwise_sweep(void **state) {
    (void)state;
    kiln_threads *pool = kiln_threads_create(3);
    static const int64_t sizes[] = {1, 2, 7, 13, 31, 40};
    int ran = 0, i = 0;
    for (int64_t k = 1; k <= 7; k++)
        for (int64_t st = 1; st <= 3; st++)
            for (int64_t dil = 1; dil <= 2; dil++)
                for (int v = 0; v < 4; v++, i++) {
                    dw_case c;
                    memset(&c, 0, sizeof c);
                    c.nsp = v == 3 ? 1 : 2;
                    int64_t h = sizes[(i * 7 + v) % 6], wd = sizes[(i * 5 + 3 * v + 1) % 6];
                    c.in[0] = c.nsp == 2 ? h : wd;
                    c.in[1] = wd;
                    c.k[0] = c.nsp == 2 ? (v == 2 ? 1 : k) : k; /* 1 x k windows too */
                    c.k[1] = v == 1 && k > 1 ? k - 1 : k;
                    c.s[0] = c.nsp == 2 && v == 1 ? 1 + st % 3 : st;
                    c.s[1] = st;
                    c.d[0] = c.d[1] = dil;
                    for (int d = 0; d < 2; d++) {
                        int64_t ek = (c.k[d] - 1) * dil + 1;
                        c.pb[d] = v == 0 ? ek / 2 : (i + d) % ek;
                        c.pe[d] = v == 0 ? ek / 2 : (i * 3 + d) % ek;
                    }
                    c.N = 1 + i % 2;
                    c.C = 1 + i % 5;
                    c.mult = 1 + (i % 3 == 0);
                    c.bias = i % 2 == 0;
                    c.clamp = i % 3 == 1;
                    for (size_t a = 0; a < sizeof isas / sizeof *isas; a++)
                        if (kiln_isa_available(isas[a]))
                            ran += dw_run_case(&c, isas[a], (i + (int)a) % 2 ? pool : NULL);
                }
    kiln_threads_destroy(pool);
    assert_true(ran > 300);
}

/* The shapes each form is picked for (wide rows, rows of 7 and 14, the
 * channel-blocked 5x5 at 7x7, 112-wide), and more channels than a block. */
static void test_depthwise_shapes(void **state) {
    (void)state;
    kiln_threads *pool = kiln_threads_create(2);
    static const int64_t shapes[][5] = {/* H=W, k, stride, C, mult */
                                        {112, 3, 2, 5, 1}, {56, 3, 1, 3, 1}, {28, 5, 2, 4, 1}, {14, 5, 1, 19, 1},
                                        {14, 5, 2, 37, 1}, {7, 5, 1, 33, 1}, {7, 5, 1, 9, 2},  {8, 7, 1, 17, 1},
                                        {3, 5, 1, 16, 1},  {112, 7, 3, 2, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        dw_case c;
        memset(&c, 0, sizeof c);
        c.nsp = 2;
        c.in[0] = c.in[1] = shapes[i][0];
        c.k[0] = c.k[1] = shapes[i][1];
        c.s[0] = c.s[1] = shapes[i][2];
        c.d[0] = c.d[1] = 1;
        c.pb[0] = c.pb[1] = c.pe[0] = c.pe[1] = shapes[i][1] / 2;
        c.N = 2;
        c.C = shapes[i][3];
        c.mult = shapes[i][4];
        c.bias = true;
        c.clamp = i % 2 == 0;
        for (size_t a = 0; a < sizeof isas / sizeof *isas; a++)
            if (kiln_isa_available(isas[a]))
                assert_int_equal(dw_run_case(&c, isas[a], a % 2 ? pool : NULL), 1);
    }
    kiln_threads_destroy(pool);
}

/* Means within ~1e-6 of the exact mean (also where float32 sums overflow),
 * max with NaN and -inf. */
static void test_global_pool(void **state) {
    (void)state;
    kiln_threads *pool = kiln_threads_create(2);
    static const int64_t ns[] = {1, 3, 7, 49, 63, 64, 65, 196, 1000, 1025, 12544, 33000};
    for (size_t a = 0; a < sizeof isas / sizeof *isas; a++) {
        if (!kiln_isa_available(isas[a]))
            continue;
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            int64_t n = ns[k], planes = 5;
            float *x = malloc((size_t)(n * planes) * sizeof(float)), y[5];
            for (int64_t i = 0; i < n * planes; i++)
                x[i] = 0.75f + 0.5f * frand();
            for (int64_t i = 0; i < n; i++)
                x[n + i] = 2.5e38f + 5e37f * frand(); /* plane 1: float32 sums overflow */
            x[n * 2 + n / 2] = NAN;                 /* plane 2 holds a NaN */
            for (int64_t i = 0; i < n; i++)
                x[n * 3 + i] = -INFINITY;           /* plane 3: all -inf */
            x[n * 4 + n - 1] = 5.0f;                /* plane 4: its max is last */
            for (int op = 0; op < 2; op++) {
                kiln_global_pool_f32_isa(op ? KILN_GPOOL_MAX : KILN_GPOOL_AVG, x, planes, n, y,
                                         k % 2 ? pool : NULL, isas[a]);
                for (int64_t p = 0; p < planes; p++) {
                    double sum = 0.0, mx = -INFINITY;
                    bool nan = false;
                    for (int64_t i = 0; i < n; i++) {
                        double v = x[p * n + i];
                        sum += v;
                        nan |= v != v;
                        mx = v > mx ? v : mx;
                    }
                    double want = op ? (nan ? NAN : mx) : sum / (double)n;
                    if (isnan(want))
                        assert_true(isnan(y[p]));
                    else if (isinf(want))
                        assert_true(y[p] == want);
                    else if (!(fabs((double)y[p] - want) <= 1.5e-6 * fabs(want))) {
                        print_error("isa %d n %lld op %d plane %lld: %.9g, expected %.9g\n", (int)isas[a],
                                    (long long)n, op, (long long)p, (double)y[p], want);
                        fail();
                    }
                }
            }
            free(x);
        }
    }
    kiln_threads_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depthwise_sweep),
        cmocka_unit_test(test_depthwise_shapes),
        cmocka_unit_test(test_global_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
