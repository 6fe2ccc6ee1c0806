/* kiln's SGEMM driver: packing, cache blocking, the split over threads and
 * the choice of micro-kernel (kernels/sgemm_x86.c, kernels/sgemm_portable.c).
 *
 * Blocking follows the usual GotoBLAS order: for each NC-wide block of
 * columns and KC-deep slice of k, B's slice is packed (unless pre-packed)
 * into 48-column panels; for each MC-tall block of rows A's slice is packed
 * (unless pre-packed) into 8-row panels; then every 8 x 48 tile of the
 * block runs the micro-kernel. A KC x 48 panel of B stays in L1 while the
 * A block (MC x KC) streams from L2. Per-call packing goes to a per-thread
 * workspace kept between calls; if it cannot be allocated the driver falls
 * back to one-panel blocks on the stack. */
#include "kernels/sgemm.h"

#include "core/common.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/sgemm_kernels.h"

#define SG_KC 256
#define SG_MC 144  /* multiple of SG_MR */
#define SG_NC 960  /* multiple of SG_NR */
/* below this many multiply-adds a product runs on the calling thread */
#define SG_PAR_MIN ((size_t)1 << 20)

/* ---- instruction set ---- */

/* The CPU checks are kernels/isa.h's; its sets map one to one onto
 * kiln_sgemm_isa (same order). */
static kiln_isa sg_to_isa(kiln_sgemm_isa isa) {
    return isa == KILN_SGEMM_ISA_AVX512 ? KILN_ISA_AVX512
           : isa == KILN_SGEMM_ISA_AVX2 ? KILN_ISA_AVX2
                                        : KILN_ISA_PORTABLE;
}

static int sg_isa_auto(void) {
#ifdef SG_HAVE_X86
    kiln_isa best = kiln_isa_pick(KILN_ISA_AUTO);
    if (best == KILN_ISA_AVX512)
        return KILN_SGEMM_ISA_AVX512;
    if (best == KILN_ISA_AVX2)
        return KILN_SGEMM_ISA_AVX2;
#endif
    return KILN_SGEMM_ISA_PORTABLE;
}

static bool sg_isa_supported(kiln_sgemm_isa isa) {
    if (isa == KILN_SGEMM_ISA_AUTO || isa == KILN_SGEMM_ISA_PORTABLE)
        return true;
#ifdef SG_HAVE_X86
    if (isa == KILN_SGEMM_ISA_AVX2 || isa == KILN_SGEMM_ISA_AVX512)
        return kiln_isa_available(sg_to_isa(isa));
#endif
    return false;
}

static int sg_isa_cur; /* 0 until chosen */
static pthread_once_t sg_isa_once = PTHREAD_ONCE_INIT;

static void sg_isa_init(void) {
    int isa = sg_isa_auto();
    const char *env = getenv("KILN_SGEMM_ISA");
    if (env) {
        int want = strcmp(env, "portable") == 0 ? KILN_SGEMM_ISA_PORTABLE
                   : strcmp(env, "avx2") == 0   ? KILN_SGEMM_ISA_AVX2
                   : strcmp(env, "avx512") == 0 ? KILN_SGEMM_ISA_AVX512
                                                : 0;
        /* an unknown or unsupported request keeps the automatic choice */
        if (want && sg_isa_supported((kiln_sgemm_isa)want))
            isa = want;
    }
    int expect = 0;
    __atomic_compare_exchange_n(&sg_isa_cur, &expect, isa, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

kiln_sgemm_isa kiln_sgemm_get_isa(void) {
    pthread_once(&sg_isa_once, sg_isa_init);
    return (kiln_sgemm_isa)__atomic_load_n(&sg_isa_cur, __ATOMIC_ACQUIRE);
}

bool kiln_sgemm_set_isa(kiln_sgemm_isa isa) {
    pthread_once(&sg_isa_once, sg_isa_init);
    if (!sg_isa_supported(isa))
        return false;
    __atomic_store_n(&sg_isa_cur, isa == KILN_SGEMM_ISA_AUTO ? sg_isa_auto() : (int)isa, __ATOMIC_RELEASE);
    return true;
}

const char *kiln_sgemm_isa_name(kiln_sgemm_isa isa) {
    switch (isa) {
    case KILN_SGEMM_ISA_AUTO: return "auto";
    case KILN_SGEMM_ISA_PORTABLE: return "portable";
    case KILN_SGEMM_ISA_AVX2: return "avx2";
    case KILN_SGEMM_ISA_AVX512: return "avx512";
    }
    return "?";
}

static sg_kernel sg_kernel_get(void) {
    switch (kiln_sgemm_get_isa()) {
#ifdef SG_HAVE_X86
    case KILN_SGEMM_ISA_AVX512: return kiln_sgemm_kernel_avx512;
    case KILN_SGEMM_ISA_AVX2: return kiln_sgemm_kernel_avx2;
#endif
    default: return kiln_sgemm_kernel_portable;
    }
}

/* ---- packing ---- */

static size_t sg_round(size_t x, size_t r) { return (x + r - 1) / r * r; }

static size_t sg_mul(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

size_t kiln_sgemm_pack_a_size(size_t m, size_t k) {
    if (m == 0 || k == 0)
        return 0;
    return m > SIZE_MAX - SG_MR ? SIZE_MAX : sg_mul(sg_round(m, SG_MR), k);
}

size_t kiln_sgemm_pack_b_size(size_t k, size_t n) {
    if (n == 0 || k == 0)
        return 0;
    return n > SIZE_MAX - SG_NR ? SIZE_MAX : sg_mul(sg_round(n, SG_NR), k);
}

/* Rows [i0, i0+mr) x k [p0, p0+kc) of alpha*op(A) into SG_MR-row panels, each
 * holding kc steps and starting `pstride` floats after the previous one. */
KILN_CLONES static void sg_pack_a_block(bool trans, const float *a, size_t lda, float alpha, size_t i0, size_t mr, size_t p0,
                            size_t kc, float *dst, size_t pstride) {
    for (size_t ip = 0; ip < mr; ip += SG_MR) {
        float *d = dst + ip / SG_MR * pstride;
        size_t rows = mr - ip < SG_MR ? mr - ip : SG_MR;
        if (!trans) {
            for (size_t r = 0; r < rows; r++) {
                const float *s = a + (i0 + ip + r) * lda + p0;
                for (size_t p = 0; p < kc; p++)
                    d[p * SG_MR + r] = alpha * s[p];
            }
        } else {
            for (size_t p = 0; p < kc; p++) {
                const float *s = a + (p0 + p) * lda + i0 + ip;
                for (size_t r = 0; r < rows; r++)
                    d[p * SG_MR + r] = alpha * s[r];
            }
        }
        for (size_t r = rows; r < SG_MR; r++)
            for (size_t p = 0; p < kc; p++)
                d[p * SG_MR + r] = 0.0f;
    }
}

/* k [p0, p0+kc) x columns [j0, j0+nc) of alpha*op(B) into SG_NR-column panels. */
KILN_CLONES static void sg_pack_b_block(bool trans, const float *b, size_t ldb, float alpha, size_t p0, size_t kc, size_t j0,
                            size_t nc, float *dst, size_t pstride) {
    if (!trans) {
        /* row by row, so B (often cold: im2col columns) is read sequentially */
        for (size_t p = 0; p < kc; p++) {
            const float *s = b + (p0 + p) * ldb + j0;
            for (size_t jp = 0; jp < nc; jp += SG_NR) {
                float *dp = dst + jp / SG_NR * pstride + p * SG_NR;
                size_t cols = nc - jp < SG_NR ? nc - jp : SG_NR;
                if (alpha == 1.0f)
                    memcpy(dp, s + jp, cols * sizeof(float));
                else
                    for (size_t j = 0; j < cols; j++)
                        dp[j] = alpha * s[jp + j];
                for (size_t j = cols; j < SG_NR; j++)
                    dp[j] = 0.0f;
            }
        }
        return;
    }
    for (size_t jp = 0; jp < nc; jp += SG_NR) {
        float *d = dst + jp / SG_NR * pstride;
        size_t cols = nc - jp < SG_NR ? nc - jp : SG_NR;
        for (size_t j = 0; j < cols; j++) {
            const float *s = b + (j0 + jp + j) * ldb + p0;
            for (size_t p = 0; p < kc; p++)
                d[p * SG_NR + j] = alpha * s[p];
        }
        for (size_t p = 0; p < kc; p++)
            for (size_t j = cols; j < SG_NR; j++)
                d[p * SG_NR + j] = 0.0f;
    }
}

void kiln_sgemm_pack_a(bool trans, size_t m, size_t k, float alpha, const float *a, size_t lda, float *dst) {
    if (m && k)
        sg_pack_a_block(trans, a, lda, alpha, 0, m, 0, k, dst, SG_MR * k);
}

void kiln_sgemm_pack_b(bool trans, size_t k, size_t n, float alpha, const float *b, size_t ldb, float *dst) {
    if (n && k)
        sg_pack_b_block(trans, b, ldb, alpha, 0, k, 0, n, dst, SG_NR * k);
}

/* ---- per-thread workspace ---- */

typedef struct sg_ws {
    float *a, *b; /* SG_MC x SG_KC and SG_KC x SG_NC */
} sg_ws;

static pthread_key_t sg_ws_key;
static bool sg_ws_key_ok;
static pthread_once_t sg_ws_once = PTHREAD_ONCE_INIT;

static void sg_ws_free(void *p) {
    sg_ws *w = p;
    if (w) {
        free(w->a);
        free(w->b);
        free(w);
    }
}

static void sg_ws_init(void) { sg_ws_key_ok = pthread_key_create(&sg_ws_key, sg_ws_free) == 0; }

/* The calling thread's workspace, NULL when it cannot be had. */
static sg_ws *sg_ws_get(void) {
    pthread_once(&sg_ws_once, sg_ws_init);
    if (!sg_ws_key_ok)
        return NULL;
    sg_ws *w = pthread_getspecific(sg_ws_key);
    if (w)
        return w;
    w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->a = aligned_alloc(64, (size_t)SG_MC * SG_KC * sizeof(float));
    w->b = aligned_alloc(64, (size_t)SG_KC * SG_NC * sizeof(float));
    if (!w->a || !w->b || pthread_setspecific(sg_ws_key, w) != 0) {
        sg_ws_free(w);
        return NULL;
    }
    return w;
}

/* ---- the driver ---- */

typedef struct sg_job {
    size_t m, n, k;
    /* A: pre-packed full-k panels (pa), or a raw op(A) packed per block */
    const float *pa, *a;
    size_t lda;
    bool ta;
    float alpha;
    const float *pb, *b;
    size_t ldb;
    bool tb;
    float beta;
    float *c;
    size_t ldc;
    kiln_sgemm_epilogue ep;
    sg_kernel kern;
    size_t jn;         /* jobs along n (jobs along m: the rest) */
    size_t mch, nch;   /* rows / columns per job (multiples of SG_MR / SG_NR) */
} sg_job;

static void sg_run_block(const sg_job *j, size_t i0, size_t i1, size_t j0, size_t j1) {
    sg_ws *w = NULL;
    if (!j->pa || !j->pb)
        w = sg_ws_get();
    /* without a workspace: one panel of each on the stack */
    float sa[SG_MR * SG_KC] __attribute__((aligned(64)));
    float sb[SG_KC * SG_NR] __attribute__((aligned(64)));
    size_t mc_max = w ? SG_MC : SG_MR, nc_max = w ? SG_NC : SG_NR;
    float *abuf = w ? w->a : sa, *bbuf = w ? w->b : sb;
    if (j->pb) /* B pre-packed: no NC blocking needed */
        nc_max = j1 - j0;
    if (j->pa)
        mc_max = i1 - i0;
    sg_tail t = {.beta = j->beta,
                 .ldr = j->ep.ldr,
                 .clamp = j->ep.clamp,
                 .lo = j->ep.lo,
                 .hi = j->ep.hi};
    /* k in equal blocks of at most SG_KC (576 = 3 x 192, not 256 + 256 + 64) */
    size_t kblocks = (j->k + SG_KC - 1) / SG_KC, kstep = (j->k + kblocks - 1) / kblocks;
    for (size_t jc = j0; jc < j1; jc += nc_max) {
        size_t nc = j1 - jc < nc_max ? j1 - jc : nc_max;
        for (size_t pc = 0; pc < j->k; pc += kstep) {
            size_t kc = j->k - pc < kstep ? j->k - pc : kstep;
            const float *bp;
            size_t bstride;
            if (j->pb) {
                bp = j->pb + jc / SG_NR * SG_NR * j->k + pc * SG_NR;
                bstride = SG_NR * j->k;
            } else {
                sg_pack_b_block(j->tb, j->b, j->ldb, 1.0f, pc, kc, jc, nc, bbuf, SG_NR * kc);
                bp = bbuf;
                bstride = SG_NR * kc;
            }
            t.first = pc == 0;
            t.last = pc + kc == j->k;
            for (size_t ic = i0; ic < i1; ic += mc_max) {
                size_t mc = i1 - ic < mc_max ? i1 - ic : mc_max;
                const float *ap;
                size_t astride;
                if (j->pa) {
                    ap = j->pa + ic / SG_MR * SG_MR * j->k + pc * SG_MR;
                    astride = SG_MR * j->k;
                } else {
                    sg_pack_a_block(j->ta, j->a, j->lda, j->alpha, ic, mc, pc, kc, abuf, SG_MR * kc);
                    ap = abuf;
                    astride = SG_MR * kc;
                }
                for (size_t jr = 0; jr < nc; jr += SG_NR) {
                    int nr = nc - jr < SG_NR ? (int)(nc - jr) : SG_NR;
                    size_t col = jc + jr;
                    t.col_bias = j->ep.col_bias ? j->ep.col_bias + col : NULL;
                    const float *bpan = bp + jr / SG_NR * bstride;
                    for (size_t ir = 0; ir < mc; ir += SG_MR) {
                        int mr = mc - ir < SG_MR ? (int)(mc - ir) : SG_MR;
                        size_t row = ic + ir;
                        t.row_bias = j->ep.row_bias ? j->ep.row_bias + row : NULL;
                        t.res = j->ep.residual ? j->ep.residual + row * j->ep.ldr + col : NULL;
                        /* next tile's A panel: the next one down, else the block's first again */
                        t.next_a = ir + SG_MR < mc ? ap + (ir / SG_MR + 1) * astride : ap;
                        j->kern(kc, ap + ir / SG_MR * astride, bpan, j->c + row * j->ldc + col, j->ldc, mr, nr, &t);
                    }
                }
            }
        }
    }
}

static void sg_run_range(void *arg, size_t begin, size_t end) {
    const sg_job *j = arg;
    for (size_t q = begin; q < end; q++) {
        size_t bi = q / j->jn, bj = q % j->jn;
        size_t i0 = bi * j->mch, j0 = bj * j->nch;
        if (i0 >= j->m || j0 >= j->n)
            continue;
        size_t i1 = i0 + j->mch < j->m ? i0 + j->mch : j->m;
        size_t j1 = j0 + j->nch < j->n ? j0 + j->nch : j->n;
        sg_run_block(j, i0, i1, j0, j1);
    }
}

/* k == 0: C = act(beta*C + bias + R) */
static void sg_no_k(const sg_job *j) {
    sg_tail t = {.beta = j->beta, .first = true, .last = true, .row_bias = j->ep.row_bias,
                 .col_bias = j->ep.col_bias, .res = j->ep.residual, .ldr = j->ep.ldr, .clamp = j->ep.clamp,
                 .lo = j->ep.lo, .hi = j->ep.hi};
    for (size_t i = 0; i < j->m; i++) {
        /* the tail indexes rows by int: move its origin to row i */
        sg_tail ti = t;
        if (ti.row_bias)
            ti.row_bias += i;
        if (ti.res)
            ti.res += i * ti.ldr;
        float *cr = j->c + i * j->ldc;
        for (size_t x = 0; x < j->n; x++) {
            sg_tail tx = ti;
            if (tx.col_bias)
                tx.col_bias += x;
            if (tx.res)
                tx.res += x;
            cr[x] = sg_finish(0.0f, cr + x, 0, 0, 0, &tx);
        }
    }
}

/* Splits C over the pool into jm x jn blocks, between one and four per
 * thread (several, so the pool's threads share them out even when one wakes
 * late). The split minimises an estimate of the slowest thread's time: its
 * blocks' multiply-adds plus the operands it streams, counted as 4
 * multiply-adds a float (every block along n reads all of A's rows of its
 * block again, every block along m packs or reads its columns of B again),
 * plus half a block for a thread that starts late. */
#define SG_JOBS_PER_THREAD 4

static void sg_dispatch(kiln_threads *pool, sg_job *j) {
    if (j->m == 0 || j->n == 0)
        return;
    if (j->ep.residual == NULL)
        j->ep.ldr = 0;
    if (j->k == 0) {
        sg_no_k(j);
        return;
    }
    j->kern = sg_kernel_get();
    size_t mp = (j->m + SG_MR - 1) / SG_MR, np = (j->n + SG_NR - 1) / SG_NR;
    size_t nt = (size_t)kiln_threads_count(pool);
    size_t work = sg_mul(sg_mul(j->m, j->n), j->k);
    if (work / SG_PAR_MIN < nt) /* each thread gets at least SG_PAR_MIN */
        nt = work / SG_PAR_MIN;
    size_t jm = 1, jn = 1;
    if (nt > 1) {
        double best = 0;
        size_t q = nt * SG_JOBS_PER_THREAD;
        for (size_t tm = 1; tm <= mp && tm <= q; tm++)
            for (size_t tn = 1; tn <= np && tm * tn <= q; tn++) {
                size_t jobs = tm * tn;
                if (jobs < nt && !(tm == mp && tn == np))
                    continue;
                size_t rows = (mp + tm - 1) / tm * SG_MR, cols = (np + tn - 1) / tn * SG_NR;
                double rounds = (double)((jobs + nt - 1) / nt);
                double macs = (double)rows * (double)cols * (double)j->k;
                /* B packed per call costs its copy too */
                double stream = (double)j->k * ((double)rows + (double)cols * (j->pb ? 1.0 : 4.0));
                /* + half a block: what a thread that starts late leaves the others */
                double cost = (rounds + 0.5) * (macs + 4.0 * stream);
                if (best == 0 || cost < best) {
                    best = cost;
                    jm = tm;
                    jn = tn;
                }
            }
    }
    j->jn = jn;
    j->mch = (mp + jm - 1) / jm * SG_MR;
    j->nch = (np + jn - 1) / jn * SG_NR;
    size_t njobs = jm * jn;
    if (njobs <= 1)
        sg_run_range(j, 0, 1);
    else
        kiln_threads_run(pool, njobs, 1, sg_run_range, j);
}

static kiln_sgemm_epilogue sg_ep(const kiln_sgemm_epilogue *ep) {
    kiln_sgemm_epilogue e = {0};
    if (ep)
        e = *ep;
    return e;
}

void kiln_sgemm_packed_a(kiln_threads *pool, size_t m, size_t n, size_t k, const float *pa, const float *b,
                         size_t ldb, float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep) {
    sg_job j = {.m = m, .n = n, .k = k, .pa = pa, .b = b, .ldb = ldb, .alpha = 1.0f, .beta = beta, .c = c,
                .ldc = ldc, .ep = sg_ep(ep)};
    sg_dispatch(pool, &j);
}

void kiln_sgemm_packed_b(kiln_threads *pool, size_t m, size_t n, size_t k, const float *a, size_t lda,
                         const float *pb, float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep) {
    sg_job j = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .pb = pb, .alpha = 1.0f, .beta = beta, .c = c,
                .ldc = ldc, .ep = sg_ep(ep)};
    sg_dispatch(pool, &j);
}

void kiln_sgemm_packed_ab(kiln_threads *pool, size_t m, size_t n, size_t k, const float *pa, const float *pb,
                          float beta, float *c, size_t ldc, const kiln_sgemm_epilogue *ep) {
    sg_job j = {.m = m, .n = n, .k = k, .pa = pa, .pb = pb, .alpha = 1.0f, .beta = beta, .c = c, .ldc = ldc,
                .ep = sg_ep(ep)};
    sg_dispatch(pool, &j);
}

void kiln_sgemm_full(kiln_threads *pool, bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                     const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                     const kiln_sgemm_epilogue *ep) {
    sg_job j = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .ta = trans_a, .alpha = alpha, .b = b, .ldb = ldb,
                .tb = trans_b, .beta = beta, .c = c, .ldc = ldc, .ep = sg_ep(ep)};
    sg_dispatch(pool, &j);
}
