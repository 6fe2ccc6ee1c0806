/* Unit tests (cmocka) of the recurrent-op kernels: the panel GEMV
 * (kernels/gemv.h) on every instruction set the CPU has, against a
 * double-precision product of the unpacked matrix, over vector counts 1..11
 * and panel counts that exercise every tile shape and tail; and the fused
 * cells (kernels/rnn_cell.h) against the ONNX equations evaluated with libm
 * in double, including partial blocks, clip, peepholes and input_forget. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/gemv.h"
#include "kernels/rnn_cell.h"

static uint32_t rng_state = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
}

static void check_gemv(kiln_isa isa, int64_t m, int64_t n_rows, int64_t k, bool with_init, int64_t ldi_mode) {
    int64_t np = (n_rows + KILN_GEMV_PANEL - 1) / KILN_GEMV_PANEL, N = np * KILN_GEMV_PANEL;
    int64_t ldx = k + 3, ldy = N + 5;
    float *a = malloc((size_t)(n_rows * k) * sizeof(float) + 4);
    float *pk = malloc((size_t)(N * k) * sizeof(float) + 4);
    float *x = malloc((size_t)(m * ldx) * sizeof(float));
    float *init = malloc((size_t)(m * ldy) * sizeof(float));
    float *y = malloc((size_t)(m * ldy) * sizeof(float));
    assert_non_null(a), assert_non_null(pk), assert_non_null(x), assert_non_null(init), assert_non_null(y);
    fill(a, (size_t)(n_rows * k), 1.0f);
    fill(x, (size_t)(m * ldx), 1.0f);
    fill(init, (size_t)(m * ldy), 1.0f);
    for (int64_t p = 0; p < np; p++) {
        int64_t rows = n_rows - p * KILN_GEMV_PANEL;
        kiln_gemv_pack_panel(rows < KILN_GEMV_PANEL ? rows : KILN_GEMV_PANEL, k, a + p * KILN_GEMV_PANEL * k, k,
                             pk + p * KILN_GEMV_PANEL * k);
    }
    int64_t ldi = ldi_mode ? ldy : 0;
    for (size_t i = 0; i < (size_t)(m * ldy); i++)
        y[i] = NAN;
    kiln_sgemv_panels_isa(isa, m, np, k, pk, x, ldx, with_init ? init : NULL, ldi, y, ldy);
    for (int64_t r = 0; r < m; r++)
        for (int64_t o = 0; o < N; o++) {
            double want = with_init ? init[r * ldi + o] : 0.0, mag = fabs(want);
            for (int64_t c = 0; c < k && o < n_rows; c++) {
                want += (double)a[o * k + c] * x[r * ldx + c];
                mag += fabs((double)a[o * k + c] * x[r * ldx + c]);
            }
            double got = y[r * ldy + o];
            if (!(fabs(got - want) <= 1e-6 * mag + 1e-30))
                fail_msg("isa %d m %lld rows %lld k %lld: y[%lld][%lld] = %.9g, expected %.9g", (int)isa, (long long)m,
                         (long long)n_rows, (long long)k, (long long)r, (long long)o, got, want);
        }
    /* the gaps between rows of y are not written */
    for (int64_t r = 0; r < m; r++)
        for (int64_t o = N; o < ldy; o++)
            assert_true(isnan(y[r * ldy + o]));
    free(a), free(pk), free(x), free(init), free(y);
}

static void test_gemv_isas(void **state) {
    (void)state;
    static const int64_t rows[] = {1, 16, 33, 64, 130, 200};
    static const int64_t ks[] = {0, 1, 7, 64, 129};
    for (int isa = KILN_ISA_PORTABLE; isa <= KILN_ISA_AVX512; isa++)
        for (int64_t m = 1; m <= 11 && kiln_isa_available((kiln_isa)isa); m++)
            for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
                for (size_t j = 0; j < sizeof ks / sizeof *ks; j++)
                    check_gemv((kiln_isa)isa, m, rows[i], ks[j], (m + (int64_t)i) % 3 != 0, (m + (int64_t)j) % 2);
}

/* y may be the init (in place) */
static void test_gemv_in_place(void **state) {
    (void)state;
    int64_t k = 20, np = 3, N = np * 16;
    float a[3 * 16 * 20], x[20], y[48], want[48];
    fill(a, sizeof a / sizeof *a, 1.0f), fill(x, 20, 1.0f), fill(y, 48, 1.0f);
    for (int64_t o = 0; o < N; o++) {
        double s = y[o];
        for (int64_t c = 0; c < k; c++)
            s += (double)a[(o / 16) * k * 16 + c * 16 + o % 16] * x[c];
        want[o] = (float)s;
    }
    for (int isa = KILN_ISA_PORTABLE; isa <= KILN_ISA_AVX512; isa++) {
        if (!kiln_isa_available((kiln_isa)isa))
            continue;
        float yy[48];
        memcpy(yy, y, sizeof yy);
        kiln_sgemv_panels_isa((kiln_isa)isa, 1, np, k, a, x, k, yy, 0, yy, N);
        for (int64_t o = 0; o < N; o++)
            assert_true(fabsf(yy[o] - want[o]) <= 1e-5f * (1 + fabsf(want[o])));
    }
}

static double sig(double x) { return 1.0 / (1.0 + exp(-x)); }
static double clipd(double v, double lim) { return v < -lim ? -lim : v > lim ? lim : v; }

static void near(double got, double want, const char *what, int64_t j) {
    if (!(fabs(got - want) <= 2e-6 * fabs(want) + 1e-7))
        fail_msg("%s[%lld] = %.9g, expected %.9g", what, (long long)j, got, want);
}

static void test_lstm_cell(void **state) {
    (void)state;
    static const int64_t ns[] = {1, 5, 16, 17, 40};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
        for (int variant = 0; variant < 4; variant++) {
            int64_t n = ns[t];
            bool peep = variant & 1, coupled = variant & 2;
            float clip = variant == 3 ? 1.5f : INFINITY;
            float g[4][40], cp[40], pe[3][40], c[40], h[40];
            for (int q = 0; q < 4; q++)
                fill(g[q], 40, 6.0f);
            fill(cp, 40, 2.0f), fill(pe[0], 40, 1.0f), fill(pe[1], 40, 1.0f), fill(pe[2], 40, 1.0f);
            g[0][0] = 0.0f, g[3][0] = 1e-6f, g[2][0] = -30.0f; /* tiny and saturating arguments */
            kiln_lstm_cell cell = {n, g[0], g[1], g[2], g[3], cp, peep ? pe[0] : NULL, peep ? pe[1] : NULL,
                                   peep ? pe[2] : NULL, clip, coupled, c, h};
            kiln_lstm_cell_f32(&cell);
            for (int64_t j = 0; j < n; j++) {
                double vi = g[0][j], vo = g[1][j], vf = g[2][j];
                if (peep)
                    vi += (double)pe[0][j] * cp[j], vf += (double)pe[2][j] * cp[j];
                double i = sig(clipd(vi, clip));
                double f = coupled ? 1 - i : sig(clipd(vf, clip));
                double cn = f * cp[j] + i * tanh(clipd(g[3][j], clip));
                if (peep)
                    vo += (double)pe[1][j] * cn;
                double hh = sig(clipd(vo, clip)) * tanh(cn);
                near(c[j], cn, "c", j);
                near(h[j], hh, "h", j);
            }
        }
}

static void test_gru_rnn_cells(void **state) {
    (void)state;
    static const int64_t ns[] = {3, 16, 35};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
        for (int with_clip = 0; with_clip < 2; with_clip++) {
            int64_t n = ns[t];
            float clip = with_clip ? 2.0f : INFINITY;
            float gz[35], gr[35], gh[35], xh[35], hp[35], z[35], rh[35], h[35];
            fill(gz, 35, 5.0f), fill(gr, 35, 5.0f), fill(gh, 35, 5.0f), fill(xh, 35, 5.0f), fill(hp, 35, 1.0f);
            memcpy(z, gz, sizeof z);
            kiln_gru_zr_f32(n, clip, z, gr, hp, rh);
            for (int64_t j = 0; j < n; j++) {
                near(z[j], sig(clipd(gz[j], clip)), "z", j);
                near(rh[j], sig(clipd(gr[j], clip)) * hp[j], "rh", j);
            }
            kiln_gru_out_f32(n, clip, z, gh, hp, h);
            for (int64_t j = 0; j < n; j++)
                near(h[j], (1 - (double)z[j]) * tanh(clipd(gh[j], clip)) + (double)z[j] * hp[j], "h", j);
            kiln_gru_lbr_f32(n, clip, gz, gr, xh, gh, hp, h);
            for (int64_t j = 0; j < n; j++) {
                double zz = sig(clipd(gz[j], clip)), r = sig(clipd(gr[j], clip));
                double hh = tanh(clipd(xh[j] + r * gh[j], clip));
                near(h[j], (1 - zz) * hh + zz * hp[j], "h (linear_before_reset)", j);
            }
            kiln_rnn_tanh_f32(n, clip, gh, h);
            for (int64_t j = 0; j < n; j++)
                near(h[j], tanh(clipd(gh[j], clip)), "rnn h", j);
        }
}

/* NaN propagates, infinities saturate. */
static void test_cell_specials(void **state) {
    (void)state;
    float g[4] = {NAN, INFINITY, -INFINITY, 0.5f}, h[4];
    kiln_rnn_tanh_f32(4, INFINITY, g, h);
    assert_true(isnan(h[0]));
    assert_true(h[1] == 1.0f && h[2] == -1.0f);
    near(h[3], tanh(0.5), "tanh", 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemv_isas),   cmocka_unit_test(test_gemv_in_place),
        cmocka_unit_test(test_lstm_cell),     cmocka_unit_test(test_gru_rnn_cells),
        cmocka_unit_test(test_cell_specials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
