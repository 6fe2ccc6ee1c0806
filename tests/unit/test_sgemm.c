/* Unit tests (cmocka) of kiln's packed SGEMM (kernels/sgemm.h) against a
 * naive double-precision product, for every kernel the CPU can run.
 *
 * Inputs are multiples of 1/4 in [-1, 1] (alpha, beta, biases and clamp
 * bounds dyadic too), so every partial sum is exact in float: each kernel,
 * whatever its summation order or use of FMA, must match the reference
 * bit for bit. Shapes cross m, n, k over sizes around the 8 x 48 tile, the
 * 256-deep k block and the 144-row A block; each shape runs all four entry
 * points (pre-packed A, pre-packed B, both, neither) with transposes,
 * strides, beta and the epilogue varied from shape to shape, on the calling
 * thread and on a pool of two. The padding around C is checked untouched. */
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
#include "kernels/sgemm.h"

static const size_t sizes[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64, 100, 255, 257};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float quarter(void) { /* one of -1, -0.75, ..., 1 */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((int)((rng >> 33) % 9) - 4) / 4.0f;
}

static float *fill(size_t count) {
    float *p = malloc((count ? count : 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < count; i++)
        p[i] = quarter();
    return p;
}

static float *alloc_f(size_t count) {
    float *p = aligned_alloc(64, ((count ? count : 1) * sizeof(float) + 63) / 64 * 64);
    assert_non_null(p);
    return p;
}

static const kiln_sgemm_isa all_isas[] = {KILN_SGEMM_ISA_PORTABLE, KILN_SGEMM_ISA_AVX2, KILN_SGEMM_ISA_AVX512};

enum { EP_NONE, EP_ROW, EP_COL, EP_RES, EP_RELU, EP_CLIP, EP_ALL, EP_COUNT };

typedef struct problem {
    size_t m, n, k;
    bool ta, tb;
    float alpha, beta;
    int ep_kind;
    size_t lda_n, lda_t, ldb_n, ldb_t, ldc, ldr;
    float *a_n, *a_t, *b_n, *b_t; /* A as m x k and as k x m, B as k x n and as n x k */
    float *c0;                    /* initial C (NaN where beta == 0: must not be read) */
    float *row_bias, *col_bias, *res;
    kiln_sgemm_epilogue ep;
    double *ref;
} problem;

static void problem_make(problem *p, size_t m, size_t n, size_t k, unsigned q) {
    memset(p, 0, sizeof *p);
    p->m = m, p->n = n, p->k = k;
    p->ta = q & 1;
    p->tb = (q >> 1) & 1;
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    p->beta = betas[q % 3];
    p->alpha = (q % 4 == 3) ? 0.5f : 1.0f;
    p->ep_kind = (int)(q % EP_COUNT);
    p->lda_n = k + (q % 5 == 0 ? 3 : 0);
    p->lda_t = m + (q % 7 == 1 ? 5 : 0);
    p->ldb_n = n + (q % 3 == 2 ? 1 : 0);
    p->ldb_t = k + (q % 2 ? 2 : 0);
    p->ldc = n + (q % 4 == 1 ? 7 : 0);
    p->ldr = n + (q % 5 == 2 ? 4 : 0);
    float *a = fill(m * k), *b = fill(k * n);
    p->a_n = alloc_f(m * p->lda_n);
    p->a_t = alloc_f(k * p->lda_t);
    p->b_n = alloc_f(k * p->ldb_n);
    p->b_t = alloc_f(n * p->ldb_t);
    for (size_t i = 0; i < m; i++)
        for (size_t x = 0; x < k; x++)
            p->a_n[i * p->lda_n + x] = p->a_t[x * p->lda_t + i] = a[i * k + x];
    for (size_t x = 0; x < k; x++)
        for (size_t j = 0; j < n; j++)
            p->b_n[x * p->ldb_n + j] = p->b_t[j * p->ldb_t + x] = b[x * n + j];
    p->c0 = alloc_f(m * p->ldc);
    for (size_t i = 0; i < m * p->ldc; i++)
        p->c0[i] = p->beta == 0.0f ? NAN : quarter();
    int e = p->ep_kind;
    if (e == EP_ROW || e == EP_ALL)
        p->row_bias = fill(m);
    if (e == EP_COL || e == EP_ALL)
        p->col_bias = fill(n);
    if (e == EP_RES || e == EP_ALL)
        p->res = fill(m * p->ldr);
    p->ep = (kiln_sgemm_epilogue){.row_bias = p->row_bias, .col_bias = p->col_bias, .residual = p->res,
                                  .ldr = p->ldr};
    if (e == EP_RELU)
        p->ep.clamp = true, p->ep.lo = 0.0f, p->ep.hi = INFINITY;
    if (e == EP_CLIP || e == EP_ALL)
        p->ep.clamp = true, p->ep.lo = -2.5f, p->ep.hi = 3.75f;
    p->ref = malloc((m * n > 0 ? m * n : 1) * sizeof(double));
    assert_non_null(p->ref);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t x = 0; x < k; x++)
                s += (double)a[i * k + x] * (double)b[x * n + j];
            s *= p->alpha;
            if (p->beta != 0.0f)
                s += (double)p->beta * p->c0[i * p->ldc + j];
            if (p->row_bias)
                s += p->row_bias[i];
            if (p->col_bias)
                s += p->col_bias[j];
            if (p->res)
                s += p->res[i * p->ldr + j];
            if (p->ep.clamp)
                s = s < p->ep.lo ? p->ep.lo : (s > p->ep.hi ? p->ep.hi : s);
            p->ref[i * n + j] = s;
        }
    free(a);
    free(b);
}

static void problem_free(problem *p) {
    free(p->a_n), free(p->a_t), free(p->b_n), free(p->b_t), free(p->c0);
    free(p->row_bias), free(p->col_bias), free(p->res), free(p->ref);
}

enum { ENTRY_PACKED_A, ENTRY_PACKED_B, ENTRY_PACKED_AB, ENTRY_FULL, ENTRY_COUNT };
static const char *entry_names[] = {"packed_a", "packed_b", "packed_ab", "full"};

static float *pack_a(const problem *p, float alpha) {
    float *pa = alloc_f(kiln_sgemm_pack_a_size(p->m, p->k));
    if (p->ta)
        kiln_sgemm_pack_a(true, p->m, p->k, alpha, p->a_t, p->lda_t, pa);
    else
        kiln_sgemm_pack_a(false, p->m, p->k, alpha, p->a_n, p->lda_n, pa);
    return pa;
}

static float *pack_b(const problem *p, float alpha) {
    float *pb = alloc_f(kiln_sgemm_pack_b_size(p->k, p->n));
    if (p->tb)
        kiln_sgemm_pack_b(true, p->k, p->n, alpha, p->b_t, p->ldb_t, pb);
    else
        kiln_sgemm_pack_b(false, p->k, p->n, alpha, p->b_n, p->ldb_n, pb);
    return pb;
}

static const float SENTINEL = 12345.0f;

/* Runs one entry point into a fresh C and compares; returns mismatches. */
static size_t run_check(const problem *p, int entry, const float *pa, const float *pb, kiln_threads *pool,
                        const char *isa) {
    size_t cn = p->m * p->ldc;
    float *c = alloc_f(cn);
    memcpy(c, p->c0, cn * sizeof(float));
    for (size_t i = 0; i < p->m; i++)
        for (size_t j = p->n; j < p->ldc; j++)
            c[i * p->ldc + j] = SENTINEL;
    switch (entry) {
    case ENTRY_PACKED_A:
        kiln_sgemm_packed_a(pool, p->m, p->n, p->k, pa, p->b_n, p->ldb_n, p->beta, c, p->ldc, &p->ep);
        break;
    case ENTRY_PACKED_B:
        kiln_sgemm_packed_b(pool, p->m, p->n, p->k, p->a_n, p->lda_n, pb, p->beta, c, p->ldc, &p->ep);
        break;
    case ENTRY_PACKED_AB:
        kiln_sgemm_packed_ab(pool, p->m, p->n, p->k, pa, pb, p->beta, c, p->ldc, &p->ep);
        break;
    default:
        kiln_sgemm_full(pool, p->ta, p->tb, p->m, p->n, p->k, p->alpha, p->ta ? p->a_t : p->a_n,
                        p->ta ? p->lda_t : p->lda_n, p->tb ? p->b_t : p->b_n, p->tb ? p->ldb_t : p->ldb_n,
                        p->beta, c, p->ldc, &p->ep);
        break;
    }
    size_t bad = 0;
    for (size_t i = 0; i < p->m; i++) {
        for (size_t j = 0; j < p->n; j++) {
            float got = c[i * p->ldc + j], want = (float)p->ref[i * p->n + j];
            if (!(got == want)) {
                if (bad < 3)
                    fprintf(stderr, "%s %s m=%zu n=%zu k=%zu ta=%d tb=%d beta=%g ep=%d pool=%d: C[%zu,%zu] = %g, want %g\n",
                            isa, entry_names[entry], p->m, p->n, p->k, p->ta, p->tb, p->beta, p->ep_kind,
                            pool != NULL, i, j, got, want);
                bad++;
            }
        }
        for (size_t j = p->n; j < p->ldc; j++)
            if (c[i * p->ldc + j] != SENTINEL) {
                if (bad < 3)
                    fprintf(stderr, "%s %s m=%zu n=%zu k=%zu: padding C[%zu,%zu] written\n", isa, entry_names[entry],
                            p->m, p->n, p->k, i, j);
                bad++;
            }
    }
    free(c);
    return bad;
}

/* Every entry point on every ISA the CPU has, for one problem. */
static size_t check_problem(const problem *p, kiln_threads *pool, size_t *runs) {
    size_t bad = 0;
    /* A packed with alpha for packed_a / packed_ab; B packed with alpha for packed_b */
    float *pa = pack_a(p, p->alpha), *pb1 = pack_b(p, 1.0f), *pb = pack_b(p, p->alpha);
    for (size_t s = 0; s < sizeof all_isas / sizeof all_isas[0]; s++) {
        if (!kiln_sgemm_set_isa(all_isas[s]))
            continue;
        const char *name = kiln_sgemm_isa_name(all_isas[s]);
        bad += run_check(p, ENTRY_PACKED_A, pa, NULL, pool, name);
        bad += run_check(p, ENTRY_PACKED_B, NULL, pb, pool, name);
        bad += run_check(p, ENTRY_PACKED_AB, pa, pb1, pool, name);
        bad += run_check(p, ENTRY_FULL, NULL, NULL, pool, name);
        *runs += 4;
    }
    free(pa), free(pb1), free(pb);
    kiln_sgemm_set_isa(KILN_SGEMM_ISA_AUTO);
    return bad;
}

static void test_shapes(void **state) {
    (void)state;
    kiln_threads *pool = kiln_threads_create(2);
    assert_non_null(pool);
    size_t bad = 0, runs = 0;
    unsigned q = 0;
    for (size_t im = 0; im < NSIZES; im++)
        for (size_t in = 0; in < NSIZES; in++)
            for (size_t ik = 0; ik < NSIZES; ik++, q++) {
                problem p;
                problem_make(&p, sizes[im], sizes[in], sizes[ik], q);
                bad += check_problem(&p, (q & 4) ? pool : NULL, &runs);
                problem_free(&p);
            }
    kiln_threads_destroy(pool);
    fprintf(stderr, "%zu products checked\n", runs);
    assert_int_equal(bad, 0);
}

/* Past one NC block of columns (960), k = 0 (C = act(beta*C + bias)), and
 * wide products on the pool. */
static void test_edges(void **state) {
    (void)state;
    kiln_threads *pool = kiln_threads_create(2);
    static const size_t shapes[][3] = {{13, 1100, 7}, {3, 2100, 300}, {64, 3136, 576}, {512, 49, 4608},
                                       {5, 9, 0},     {1, 1, 0},      {1, 768, 768},  {16, 768, 768}};
    size_t bad = 0, runs = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (unsigned q = 0; q < 2; q++) {
            problem p;
            problem_make(&p, shapes[s][0], shapes[s][1], shapes[s][2], 6 * s + q * 7);
            bad += check_problem(&p, q ? pool : NULL, &runs);
            problem_free(&p);
        }
    kiln_threads_destroy(pool);
    assert_int_equal(bad, 0);
}

/* A fused Relu / Clip keeps NaN (max/min in the kernels take the constant
 * first) and clamps infinities. */
static void test_clamp_nan(void **state) {
    (void)state;
    size_t m = 3, n = 40, k = 2;
    float a[6] = {NAN, 1, 1, 0, -INFINITY, 0}, b[80];
    for (size_t i = 0; i < 80; i++)
        b[i] = 1.0f;
    for (size_t s = 0; s < sizeof all_isas / sizeof all_isas[0]; s++) {
        if (!kiln_sgemm_set_isa(all_isas[s]))
            continue;
        float c[120];
        kiln_sgemm_epilogue ep = {.clamp = true, .lo = 0.0f, .hi = 6.0f};
        kiln_sgemm_full(NULL, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n, &ep);
        for (size_t j = 0; j < n; j++) {
            assert_true(isnan(c[j]));
            assert_true(c[n + j] == 1.0f);
            assert_true(c[2 * n + j] == 0.0f);
        }
    }
    kiln_sgemm_set_isa(KILN_SGEMM_ISA_AUTO);
}

static void test_isa_choice(void **state) {
    (void)state;
    kiln_sgemm_isa cur = kiln_sgemm_get_isa();
    assert_true(cur != KILN_SGEMM_ISA_AUTO);
    /* KILN_SGEMM_ISA picks the first choice (the unit_sgemm_env test sets it) */
    const char *env = getenv("KILN_SGEMM_ISA");
    if (env && strcmp(env, "portable") == 0)
        assert_int_equal(cur, KILN_SGEMM_ISA_PORTABLE);
    assert_true(kiln_sgemm_set_isa(KILN_SGEMM_ISA_PORTABLE));
    assert_int_equal(kiln_sgemm_get_isa(), KILN_SGEMM_ISA_PORTABLE);
    assert_false(kiln_sgemm_set_isa((kiln_sgemm_isa)99));
    assert_int_equal(kiln_sgemm_get_isa(), KILN_SGEMM_ISA_PORTABLE);
    assert_true(kiln_sgemm_set_isa(KILN_SGEMM_ISA_AUTO));
    assert_true(kiln_sgemm_get_isa() != KILN_SGEMM_ISA_AUTO);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        assert_int_equal(kiln_sgemm_get_isa(), KILN_SGEMM_ISA_AVX512);
    assert_int_equal(kiln_sgemm_set_isa(KILN_SGEMM_ISA_AVX512), __builtin_cpu_supports("avx512f") != 0);
    kiln_sgemm_set_isa(KILN_SGEMM_ISA_AUTO);
#endif
    assert_int_equal(kiln_sgemm_pack_a_size(13, 5), 16 * 5);
    assert_int_equal(kiln_sgemm_pack_b_size(5, 49), 96 * 5);
    assert_int_equal(kiln_sgemm_pack_a_size(0, 5), 0);
    assert_int_equal(kiln_sgemm_pack_b_size(SIZE_MAX / 4, SIZE_MAX / 4), SIZE_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_choice),
        cmocka_unit_test(test_clamp_nan),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
