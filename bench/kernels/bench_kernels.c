/* Kernel sources for kiln's hot operators, timed in one run: OpenBLAS
 * cblas_sgemm (what kiln calls today), kiln's packed SGEMM (weights packed
 * once, as a prepared session would), oneDNN (dnnl_sgemm and convolution
 * primitives with nchw in/out and with the layouts it prefers), XNNPACK
 * (NHWC convolution / fully-connected operators created once) and libxsmm
 * (JIT small-GEMM kernels, single thread).
 *
 * Shapes: every convolution of resnet18 and every 1x1 convolution of
 * mobilenet_v2 at batch 1 (224x224), as im2col GEMMs C[M, N] = W[M, K] x
 * col[K, N] (M output channels, K = C*kh*kw, N = OH*OW), and MatMul shapes
 * A[m, k] x W[k, n] (m = 1, 16; k = n = 64..768; resnet18's fc).
 *
 * For each shape the candidates run interleaved (rotating order) for
 * several rounds; each sample repeats the call for >= 2 ms; the median per
 * candidate is printed as GFLOP/s. "gemm" columns time the GEMM alone, "conv"
 * columns the whole convolution (kiln's im2col + GEMM for kiln and
 * OpenBLAS). Totals add the medians over a network's layers.
 *
 * usage: kiln-bench-kernels [--threads 1,2] [--rounds N] [--only resnet|mbv2|matmul]
 *                           [--stat median|min]  (min: the fastest sample, for a loaded machine)
 *                           [--cands kiln,dnnl-any,...]  (only these columns)
 * (re-executes itself with OPENBLAS_THREAD_TIMEOUT=4 so OpenBLAS's idle
 * threads do not spin through the other candidates' samples.)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "exec/exec.h"
#include "kernels/conv.h"
#include "kernels/sgemm.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
void omp_set_num_threads(int n);
#endif
#ifdef HAVE_XNNPACK
#include <pthreadpool.h>
#include <xnnpack.h>
#endif
#ifdef HAVE_LIBXSMM
#include <libxsmm.h>
#endif

void openblas_set_num_threads(int n);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *randv(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((rand() % 2001) - 1000) / 1000.0f;
    return p;
}

/* ---- shapes ---- */

typedef struct conv_shape {
    const char *net;
    int cin, cout, h, w, kh, stride, pad; /* square kernels */
    int count;                            /* how many layers of the net share it */
} conv_shape;

static const conv_shape resnet18[] = {
    {"resnet18", 3, 64, 224, 224, 7, 2, 3, 1},    {"resnet18", 64, 64, 56, 56, 3, 1, 1, 4},
    {"resnet18", 64, 128, 56, 56, 3, 2, 1, 1},    {"resnet18", 128, 128, 28, 28, 3, 1, 1, 3},
    {"resnet18", 64, 128, 56, 56, 1, 2, 0, 1},    {"resnet18", 128, 256, 28, 28, 3, 2, 1, 1},
    {"resnet18", 256, 256, 14, 14, 3, 1, 1, 3},   {"resnet18", 128, 256, 28, 28, 1, 2, 0, 1},
    {"resnet18", 256, 512, 14, 14, 3, 2, 1, 1},   {"resnet18", 512, 512, 7, 7, 3, 1, 1, 3},
    {"resnet18", 256, 512, 14, 14, 1, 2, 0, 1},
};

/* mobilenet_v2's 1x1 convolutions (expand / project / last), all stride 1 */
static const conv_shape mbv2[] = {
    {"mbv2", 32, 16, 112, 112, 1, 1, 0, 1},  {"mbv2", 16, 96, 112, 112, 1, 1, 0, 1},
    {"mbv2", 96, 24, 56, 56, 1, 1, 0, 1},    {"mbv2", 24, 144, 56, 56, 1, 1, 0, 2},
    {"mbv2", 144, 24, 56, 56, 1, 1, 0, 1},   {"mbv2", 144, 32, 28, 28, 1, 1, 0, 1},
    {"mbv2", 32, 192, 28, 28, 1, 1, 0, 3},   {"mbv2", 192, 32, 28, 28, 1, 1, 0, 2},
    {"mbv2", 192, 64, 14, 14, 1, 1, 0, 1},   {"mbv2", 64, 384, 14, 14, 1, 1, 0, 4},
    {"mbv2", 384, 64, 14, 14, 1, 1, 0, 3},   {"mbv2", 384, 96, 14, 14, 1, 1, 0, 1},
    {"mbv2", 96, 576, 14, 14, 1, 1, 0, 3},   {"mbv2", 576, 96, 14, 14, 1, 1, 0, 2},
    {"mbv2", 576, 160, 7, 7, 1, 1, 0, 1},    {"mbv2", 160, 960, 7, 7, 1, 1, 0, 3},
    {"mbv2", 960, 160, 7, 7, 1, 1, 0, 2},    {"mbv2", 960, 320, 7, 7, 1, 1, 0, 1},
    {"mbv2", 320, 1280, 7, 7, 1, 1, 0, 1},
};

typedef struct mm_shape {
    int m, k, n;
} mm_shape;

static const mm_shape matmuls[] = {
    {1, 64, 64},   {1, 128, 128},   {1, 256, 256},   {1, 512, 512},   {1, 768, 768},   {1, 512, 1000},
    {16, 64, 64},  {16, 128, 128},  {16, 256, 256},  {16, 512, 512},  {16, 768, 768},  {16, 768, 3072},
};

/* ---- candidates ---- */

enum {
    C_BLAS_GEMM,
    C_KILN_GEMM,
    C_KILN_PB,
    C_DNNL_GEMM,
    C_XSMM_GEMM,
    C_BLAS_CONV,
    C_KILN_CONV,
    C_KILN_PANELS,
    C_DNNL_NCHW,
    C_DNNL_ANY,
    C_XNN,
    C_COUNT
};
static const char *cand_names[C_COUNT] = {"blas",     "kiln",     "kiln-pb",   "dnnl",     "xsmm",   "blas+i2c",
                                          "kiln+i2c", "kiln+i2cP", "dnnl-nchw", "dnnl-any", "xnnpack"};

typedef struct bench_ctx {
    int threads;
    kiln_threads *pool;
#ifdef HAVE_XNNPACK
    pthreadpool_t xpool;
#endif
#ifdef HAVE_DNNL
    dnnl_engine_t eng;
    dnnl_stream_t strm;
#endif
} bench_ctx;

typedef struct problem {
    /* GEMM view: C[M, N] = W[M, K] x B[K, N] */
    size_t M, N, K;
    bool conv;
    conv_shape cs;
    kiln_conv_geom g;
    float *w, *pw, *x, *col, *c, *xnhwc, *ynhwc, *pbw, *pcol;
    bench_ctx *bc;
    bool have[C_COUNT];
#ifdef HAVE_DNNL
    dnnl_primitive_t dprim[2];
    dnnl_memory_t dmem[2][3];
#endif
#ifdef HAVE_XNNPACK
    xnn_operator_t xop;
#endif
#ifdef HAVE_LIBXSMM
    libxsmm_smmfunction xk;
#endif
} problem;

typedef struct i2c_arg {
    const problem *p;
} i2c_arg;

static void i2c_range(void *arg, size_t b, size_t e) {
    const problem *p = ((i2c_arg *)arg)->p;
    size_t ks = (size_t)p->g.k_size;
    kiln_im2col(&p->g, p->x + b * (size_t)p->g.in_size, (int64_t)(e - b), 0, (int64_t)p->N,
                p->col + b * ks * p->N);
}

/* im2col straight into kiln's B panels (kernels/sgemm.h): panel j is
 * kiln_im2col of output positions [PW*j, PW*j + PW) with rows of PW, PW the
 * panel width (the packed size of one column, one k step) */
#define PW_MAX 64
static size_t panel_w;

static void i2c_panels_range(void *arg, size_t b, size_t e) {
    const problem *p = ((i2c_arg *)arg)->p;
    size_t pw = panel_w;
    float tmp[PW_MAX * 49];
    for (size_t j = b; j < e; j++) {
        size_t o0 = pw * j, cnt = p->N - o0 < pw ? p->N - o0 : pw;
        float *dst = p->pcol + j * pw * p->K;
        if (cnt == pw) {
            kiln_im2col(&p->g, p->x, p->cs.cin, (int64_t)o0, (int64_t)pw, dst);
            continue;
        }
        /* last panel: one channel at a time (k_size <= 49 rows of cnt < pw), spread to rows of pw */
        size_t ks = (size_t)p->g.k_size;
        for (size_t c = 0; c < (size_t)p->cs.cin; c++) {
            kiln_im2col(&p->g, p->x + c * (size_t)p->g.in_size, 1, (int64_t)o0, (int64_t)cnt, tmp);
            for (size_t r = 0; r < ks; r++) {
                float *d = dst + (c * ks + r) * pw;
                memcpy(d, tmp + r * cnt, cnt * sizeof(float));
                memset(d + cnt, 0, (pw - cnt) * sizeof(float));
            }
        }
    }
}

/* im2col over the pool (1x1 stride-1 convolutions read x directly) */
static const float *conv_cols(problem *p) {
    if (p->cs.kh == 1 && p->cs.stride == 1)
        return p->x;
    i2c_arg a = {p};
    kiln_threads_run(p->bc->pool, (size_t)p->cs.cin, 8, i2c_range, &a);
    return p->col;
}

static void run(problem *p, int cand) {
    bench_ctx *bc = p->bc;
    switch (cand) {
    case C_BLAS_GEMM:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->M, (int)p->N, (int)p->K, 1.0f, p->w,
                    (int)p->K, p->col, (int)p->N, 0.0f, p->c, (int)p->N);
        break;
    case C_KILN_GEMM:
        if (p->conv)
            kiln_sgemm_packed_a(bc->pool, p->M, p->N, p->K, p->pw, p->col, p->N, 0.0f, p->c, p->N, NULL);
        else /* MatMul: activations x [m, k] times packed weights [k, n] */
            kiln_sgemm_packed_b(bc->pool, p->M, p->N, p->K, p->x, p->K, p->pbw, 0.0f, p->c, p->N, NULL);
        break;
    case C_KILN_PB:
        kiln_sgemm_packed_ab(bc->pool, p->M, p->N, p->K, p->pw, p->pcol, 0.0f, p->c, p->N, NULL);
        break;
    case C_KILN_PANELS: {
        i2c_arg a = {p};
        kiln_threads_run(p->bc->pool, (p->N + panel_w - 1) / panel_w, 4, i2c_panels_range, &a);
        kiln_sgemm_packed_ab(bc->pool, p->M, p->N, p->K, p->pw, p->pcol, 0.0f, p->c, p->N, NULL);
        break;
    }
    case C_BLAS_CONV: {
        const float *cols = conv_cols(p);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->M, (int)p->N, (int)p->K, 1.0f, p->w,
                    (int)p->K, cols, (int)p->N, 0.0f, p->c, (int)p->N);
        break;
    }
    case C_KILN_CONV: {
        const float *cols = conv_cols(p);
        kiln_sgemm_packed_a(bc->pool, p->M, p->N, p->K, p->pw, cols, p->N, 0.0f, p->c, p->N, NULL);
        break;
    }
#ifdef HAVE_DNNL
    case C_DNNL_GEMM:
        if (p->conv)
            dnnl_sgemm('N', 'N', (dnnl_dim_t)p->M, (dnnl_dim_t)p->N, (dnnl_dim_t)p->K, 1.0f, p->w, (dnnl_dim_t)p->K,
                       p->col, (dnnl_dim_t)p->N, 0.0f, p->c, (dnnl_dim_t)p->N);
        else
            dnnl_sgemm('N', 'N', (dnnl_dim_t)p->M, (dnnl_dim_t)p->N, (dnnl_dim_t)p->K, 1.0f, p->x, (dnnl_dim_t)p->K,
                       p->w, (dnnl_dim_t)p->N, 0.0f, p->c, (dnnl_dim_t)p->N);
        break;
    case C_DNNL_NCHW:
    case C_DNNL_ANY: {
        int v = cand == C_DNNL_ANY;
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->dmem[v][0]}, {DNNL_ARG_WEIGHTS, p->dmem[v][1]},
                                   {DNNL_ARG_DST, p->dmem[v][2]}};
        dnnl_primitive_execute(p->dprim[v], bc->strm, 3, args);
        dnnl_stream_wait(bc->strm);
        break;
    }
#endif
#ifdef HAVE_XNNPACK
    case C_XNN:
        xnn_run_operator(p->xop, bc->xpool);
        break;
#endif
#ifdef HAVE_LIBXSMM
    case C_XSMM_GEMM:
        /* column-major kernel: C^T[n, m] = W^T[n, k] x A^T[k, m] */
        p->xk(p->conv ? p->col : p->w, p->conv ? p->w : p->x, p->c);
        break;
#endif
    default:
        break;
    }
}

/* ---- set-up of each library's objects (weights prepared once) ---- */

#ifdef HAVE_DNNL
static bool dnnl_setup(problem *p, int v) {
    bench_ctx *bc = p->bc;
    const conv_shape *s = &p->cs;
    int oh = (int)p->g.out[0], ow = (int)p->g.out[1];
    dnnl_dims_t sd = {1, s->cin, s->h, s->w}, wd = {s->cout, s->cin, s->kh, s->kh}, dd = {1, s->cout, oh, ow};
    dnnl_dims_t st = {s->stride, s->stride}, pl = {s->pad, s->pad}, pr = {s->pad, s->pad};
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_format_tag_t act = v ? dnnl_format_tag_any : dnnl_nchw;
    dnnl_memory_desc_init_by_tag(&smd, 4, sd, dnnl_f32, act);
    dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dnnl_f32, act);
    /* pad_r so that the output size matches (ONNX pads are symmetric here) */
    for (int i = 0; i < 2; i++)
        pr[i] = (dd[2 + i] - 1) * s->stride + s->kh - sd[2 + i] - s->pad;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd, NULL,
                                           &dmd, st, pl, pr) != dnnl_success)
        return false;
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, bc->eng, NULL) != dnnl_success)
        return false;
    const dnnl_memory_desc_t *mds[3] = {dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                                        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                                        dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0)};
    for (int i = 0; i < 3; i++) {
        dnnl_memory_create(&p->dmem[v][i], mds[i], bc->eng, DNNL_MEMORY_ALLOCATE);
        void *h;
        dnnl_memory_get_data_handle(p->dmem[v][i], &h);
        size_t bytes = dnnl_memory_desc_get_size(mds[i]);
        float *f = h;
        for (size_t j = 0; j < bytes / sizeof(float); j++)
            f[j] = (float)((rand() % 2001) - 1000) / 1000.0f;
    }
    dnnl_primitive_create(&p->dprim[v], pd);
    dnnl_primitive_desc_destroy(pd);
    return true;
}
#endif

static void problem_setup(problem *p, bench_ctx *bc) {
    p->bc = bc;
    for (int i = 0; i < C_COUNT; i++)
        p->have[i] = false;
    p->have[C_BLAS_GEMM] = p->have[C_KILN_GEMM] = true;
    if (p->conv) {
        const conv_shape *s = &p->cs;
        memset(&p->g, 0, sizeof p->g);
        p->g.nsp = 2;
        p->g.in[0] = s->h, p->g.in[1] = s->w;
        p->g.k[0] = p->g.k[1] = s->kh;
        p->g.stride[0] = p->g.stride[1] = s->stride;
        p->g.dil[0] = p->g.dil[1] = 1;
        p->g.pb[0] = p->g.pb[1] = p->g.pe[0] = p->g.pe[1] = s->pad;
        for (int i = 0; i < 2; i++)
            p->g.out[i] = (p->g.in[i] + 2 * s->pad - s->kh) / s->stride + 1;
        kiln_conv_sizes(&p->g);
        p->M = (size_t)s->cout;
        p->K = (size_t)s->cin * (size_t)(s->kh * s->kh);
        p->N = (size_t)(p->g.out[0] * p->g.out[1]);
        p->w = randv(p->M * p->K);
        p->x = randv((size_t)s->cin * (size_t)p->g.in_size);
        p->col = randv(p->K * p->N);
        p->c = randv(p->M * p->N);
        p->pw = aligned_alloc(64, kiln_sgemm_pack_a_size(p->M, p->K) * sizeof(float));
        kiln_sgemm_pack_a(false, p->M, p->K, 1.0f, p->w, p->K, p->pw);
        p->pcol = aligned_alloc(64, kiln_sgemm_pack_b_size(p->K, p->N) * sizeof(float));
        kiln_sgemm_pack_b(false, p->K, p->N, 1.0f, p->col, p->N, p->pcol);
        p->have[C_BLAS_CONV] = p->have[C_KILN_CONV] = p->have[C_KILN_PB] = p->have[C_KILN_PANELS] = true;
        /* the candidates compute the same convolution: check kiln's three against OpenBLAS once */
        float *ref = randv(p->M * p->N);
        run(p, C_BLAS_CONV);
        memcpy(ref, p->c, p->M * p->N * sizeof(float));
        static const int chk[] = {C_KILN_CONV, C_KILN_PANELS};
        for (size_t q = 0; q < 2; q++) {
            run(p, chk[q]);
            double worst = 0;
            for (size_t i = 0; i < p->M * p->N; i++)
                worst = fmax(worst, fabs((double)p->c[i] - ref[i]) / (1.0 + fabs(ref[i])));
            if (worst > 1e-3)
                fprintf(stderr, "warning: %s differs from OpenBLAS by %g\n", cand_names[chk[q]], worst);
        }
        free(ref);
#ifdef HAVE_DNNL
        p->have[C_DNNL_GEMM] = true;
        p->have[C_DNNL_NCHW] = dnnl_setup(p, 0);
        p->have[C_DNNL_ANY] = dnnl_setup(p, 1);
#endif
#ifdef HAVE_XNNPACK
        p->xnhwc = randv((size_t)s->cin * (size_t)p->g.in_size);
        p->ynhwc = randv(p->M * p->N);
        float *wx = randv(p->M * p->K);
        if (xnn_create_convolution2d_nhwc_f32((uint32_t)s->pad, (uint32_t)s->pad, (uint32_t)s->pad, (uint32_t)s->pad,
                                              (uint32_t)s->kh, (uint32_t)s->kh, (uint32_t)s->stride,
                                              (uint32_t)s->stride, 1, 1, 1, (size_t)s->cin, (size_t)s->cout,
                                              (size_t)s->cin, (size_t)s->cout, wx, NULL, -INFINITY, INFINITY, 0,
                                              &p->xop) == xnn_status_success &&
            xnn_setup_convolution2d_nhwc_f32(p->xop, 1, (size_t)s->h, (size_t)s->w, p->xnhwc, p->ynhwc,
                                             bc->xpool) == xnn_status_success)
            p->have[C_XNN] = true;
        free(wx);
#endif
#ifdef HAVE_LIBXSMM
        if (bc->threads == 1) {
            float alpha = 1.0f, beta = 0.0f;
            libxsmm_blasint lda = (libxsmm_blasint)p->N, ldb = (libxsmm_blasint)p->K, ldc = (libxsmm_blasint)p->N;
            p->xk = libxsmm_smmdispatch((libxsmm_blasint)p->N, (libxsmm_blasint)p->M, (libxsmm_blasint)p->K, &lda,
                                        &ldb, &ldc, &alpha, &beta, NULL, NULL);
            p->have[C_XSMM_GEMM] = p->xk != NULL;
        }
#endif
    } else {
        /* MatMul: x [M=m, K=k] times W [k, n] */
        p->w = randv(p->K * p->N);
        p->x = randv(p->M * p->K);
        p->col = p->w; /* cblas reads col as B */
        p->c = randv(p->M * p->N);
        p->pbw = aligned_alloc(64, kiln_sgemm_pack_b_size(p->K, p->N) * sizeof(float));
        kiln_sgemm_pack_b(false, p->K, p->N, 1.0f, p->w, p->N, p->pbw);
#ifdef HAVE_DNNL
        p->have[C_DNNL_GEMM] = true;
#endif
#ifdef HAVE_XNNPACK
        /* XNNPACK wants [n, k] weights unless told they are [k, n] */
        if (xnn_create_fully_connected_nc_f32(p->K, p->N, p->K, p->N, p->w, NULL, -INFINITY, INFINITY,
                                              XNN_FLAG_TRANSPOSE_WEIGHTS, &p->xop) == xnn_status_success &&
            xnn_setup_fully_connected_nc_f32(p->xop, p->M, p->x, p->c, bc->xpool) == xnn_status_success)
            p->have[C_XNN] = true;
#endif
#ifdef HAVE_LIBXSMM
        if (bc->threads == 1) {
            float alpha = 1.0f, beta = 0.0f;
            libxsmm_blasint lda = (libxsmm_blasint)p->N, ldb = (libxsmm_blasint)p->K, ldc = (libxsmm_blasint)p->N;
            p->xk = libxsmm_smmdispatch((libxsmm_blasint)p->N, (libxsmm_blasint)p->M, (libxsmm_blasint)p->K, &lda,
                                        &ldb, &ldc, &alpha, &beta, NULL, NULL);
            p->have[C_XSMM_GEMM] = p->xk != NULL;
        }
#endif
    }
}

static void problem_free(problem *p) {
    if (p->col != p->w)
        free(p->col);
    free(p->w), free(p->x), free(p->c), free(p->pw), free(p->pbw), free(p->pcol), free(p->xnhwc), free(p->ynhwc);
#ifdef HAVE_DNNL
    for (int v = 0; v < 2; v++)
        if (p->have[C_DNNL_NCHW + v]) {
            dnnl_primitive_destroy(p->dprim[v]);
            for (int i = 0; i < 3; i++)
                dnnl_memory_destroy(p->dmem[v][i]);
        }
#endif
#ifdef HAVE_XNNPACK
    if (p->have[C_XNN])
        xnn_delete_operator(p->xop);
#endif
}

static bool use_min; /* --stat min: the fastest sample instead of the median */
static bool cand_off[C_COUNT]; /* --cands: the others are left out */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per call of every available candidate, interleaved. */
static void measure(problem *p, int rounds, double *med) {
    int reps[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) {
        med[c] = NAN;
        if (cand_off[c])
            p->have[c] = false;
        if (!p->have[c])
            continue;
        run(p, c); /* warm up, then size a sample to >= 2 ms */
        double t0 = now();
        run(p, c);
        double dt = now() - t0;
        reps[c] = dt > 2e-3 ? 1 : (int)(2e-3 / (dt > 1e-7 ? dt : 1e-7)) + 1;
    }
    double samples[C_COUNT][64];
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < C_COUNT; i++) {
            int c = (i + r) % C_COUNT;
            if (!p->have[c])
                continue;
            usleep(1000); /* let other libraries' idle threads go to sleep */
            double t0 = now();
            for (int q = 0; q < reps[c]; q++)
                run(p, c);
            samples[c][r] = (now() - t0) / reps[c];
        }
    for (int c = 0; c < C_COUNT; c++)
        if (p->have[c]) {
            qsort(samples[c], (size_t)rounds, sizeof(double), cmp_d);
            med[c] = use_min ? samples[c][0] : samples[c][rounds / 2];
        }
}

static void print_header(const char *what) {
    printf("\n%-30s", what);
    for (int c = 0; c < C_COUNT; c++)
        printf(" %9s", cand_names[c]);
    printf("\n");
}

static void print_row(const char *label, double flops, const double *med) {
    printf("%-30s", label);
    for (int c = 0; c < C_COUNT; c++)
        if (isnan(med[c]))
            printf(" %9s", "-");
        else
            printf(" %9.1f", flops / med[c] * 1e-9);
    printf("\n");
}

static void print_total(const char *label, const double *tot, bool any) {
    printf("%-30s", label);
    for (int c = 0; c < C_COUNT; c++)
        if (!any || isnan(tot[c]))
            printf(" %9s", "-");
        else
            printf(" %9.3f", tot[c] * 1e3);
    printf("   (ms, x layer counts)\n");
}

static void run_convs(bench_ctx *bc, const conv_shape *shapes, size_t n, const char *title, int rounds) {
    print_header(title);
    double tot[C_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        problem p;
        memset(&p, 0, sizeof p);
        p.conv = true;
        p.cs = shapes[i];
        problem_setup(&p, bc);
        double med[C_COUNT];
        measure(&p, rounds, med);
        char label[64];
        snprintf(label, sizeof label, "%dx%d %d>%d s%d M%zu K%zu N%zu", p.cs.kh, p.cs.kh, p.cs.cin, p.cs.cout,
                 p.cs.stride, p.M, p.K, p.N);
        print_row(label, 2.0 * (double)p.M * (double)p.N * (double)p.K, med);
        for (int c = 0; c < C_COUNT; c++)
            tot[c] += med[c] * shapes[i].count; /* NaN once missing anywhere */
        problem_free(&p);
    }
    char label[64];
    snprintf(label, sizeof label, "total %s", title);
    print_total(label, tot, true);
}

static void run_matmuls(bench_ctx *bc, int rounds) {
    print_header("matmul (GFLOP/s)");
    for (size_t i = 0; i < sizeof matmuls / sizeof matmuls[0]; i++) {
        problem p;
        memset(&p, 0, sizeof p);
        p.M = (size_t)matmuls[i].m, p.K = (size_t)matmuls[i].k, p.N = (size_t)matmuls[i].n;
        problem_setup(&p, bc);
        double med[C_COUNT];
        measure(&p, rounds, med);
        char label[64];
        snprintf(label, sizeof label, "m%zu k%zu n%zu", p.M, p.K, p.N);
        print_row(label, 2.0 * (double)p.M * (double)p.N * (double)p.K, med);
        problem_free(&p);
    }
}

int main(int argc, char **argv) {
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        execv("/proc/self/exe", argv);
    }
    int rounds = 7;
    const char *threads_arg = "1,2", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_arg = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--stat") && i + 1 < argc)
            use_min = !strcmp(argv[++i], "min");
        else if (!strcmp(argv[i], "--cands") && i + 1 < argc) {
            /* comma-separated column names */
            const char *list = argv[++i];
            for (int c = 0; c < C_COUNT; c++) {
                size_t len = strlen(cand_names[c]);
                const char *q = list;
                cand_off[c] = true;
                while ((q = strstr(q, cand_names[c])) != NULL) {
                    if ((q == list || q[-1] == ',') && (q[len] == ',' || q[len] == 0)) {
                        cand_off[c] = false;
                        break;
                    }
                    q += len;
                }
            }
        }
        else {
            fprintf(stderr, "usage: %s [--threads 1,2] [--rounds N] [--only resnet|mbv2|matmul] [--stat median|min]\n"
                    "       [--cands blas,kiln,...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > 64)
        rounds = 7;
    panel_w = kiln_sgemm_pack_b_size(1, 1);
    if (panel_w > PW_MAX) {
        fprintf(stderr, "kiln's B panels are wider than %d columns\n", PW_MAX);
        return 1;
    }
#ifdef HAVE_XNNPACK
    if (xnn_initialize(NULL) != xnn_status_success) {
        fprintf(stderr, "xnn_initialize failed\n");
        return 1;
    }
#endif
#ifdef HAVE_LIBXSMM
    libxsmm_init();
#endif
    printf("kiln sgemm kernel: %s; GFLOP/s per shape (%s of %d interleaved rounds)\n",
           kiln_sgemm_isa_name(kiln_sgemm_get_isa()), use_min ? "fastest" : "median", rounds);
    char *targ = strdup(threads_arg);
    for (char *tok = strtok(targ, ","); tok; tok = strtok(NULL, ",")) {
        bench_ctx bc;
        memset(&bc, 0, sizeof bc);
        bc.threads = atoi(tok);
        if (bc.threads < 1)
            continue;
        bc.pool = bc.threads > 1 ? kiln_threads_create(bc.threads) : NULL;
        openblas_set_num_threads(bc.threads);
#ifdef HAVE_DNNL
        omp_set_num_threads(bc.threads);
        dnnl_engine_create(&bc.eng, dnnl_cpu, 0);
        dnnl_stream_create(&bc.strm, bc.eng, dnnl_stream_default_flags);
#endif
#ifdef HAVE_XNNPACK
        bc.xpool = bc.threads > 1 ? pthreadpool_create((size_t)bc.threads) : NULL;
#endif
        printf("\n==== %d thread%s ====\n", bc.threads, bc.threads > 1 ? "s" : "");
        if (!only || !strcmp(only, "resnet"))
            run_convs(&bc, resnet18, sizeof resnet18 / sizeof resnet18[0], "resnet18 convs", rounds);
        if (!only || !strcmp(only, "mbv2"))
            run_convs(&bc, mbv2, sizeof mbv2 / sizeof mbv2[0], "mobilenet_v2 1x1s", rounds);
        if (!only || !strcmp(only, "matmul"))
            run_matmuls(&bc, rounds);
        kiln_threads_destroy(bc.pool);
#ifdef HAVE_DNNL
        dnnl_stream_destroy(bc.strm);
        dnnl_engine_destroy(bc.eng);
#endif
#ifdef HAVE_XNNPACK
        if (bc.xpool)
            pthreadpool_destroy(bc.xpool);
#endif
        fflush(stdout);
    }
    free(targ);
    return 0;
}
