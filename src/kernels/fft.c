/* Radix-2 FFT and direct DFT (see fft.h). */
#include "kernels/fft.h"

#include <math.h>
#include <stdlib.h>

#include "core/common.h"

kiln_status kiln_fft_plan_init(kiln_fft_plan *p, int64_t n, bool inverse) {
    p->n = n;
    p->inverse = inverse;
    p->cs = p->sn = p->tre = p->tim = NULL;
    size_t m = (size_t)(n > 0 ? n : 1);
    p->cs = kiln_calloc(m, sizeof(double));
    p->sn = kiln_calloc(m, sizeof(double));
    p->tre = kiln_calloc(m, sizeof(double));
    p->tim = kiln_calloc(m, sizeof(double));
    if (!p->cs || !p->sn || !p->tre || !p->tim) {
        kiln_fft_plan_free(p);
        return KILN_ERR_NOMEM;
    }
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t j = 0; j < n; j++) {
        double a = two_pi * (double)j / (double)n;
        p->cs[j] = cos(a);
        p->sn[j] = sin(a);
    }
    return KILN_OK;
}

void kiln_fft_plan_free(kiln_fft_plan *p) {
    free(p->cs);
    free(p->sn);
    free(p->tre);
    free(p->tim);
    p->cs = p->sn = p->tre = p->tim = NULL;
}

void kiln_fft_run(const kiln_fft_plan *p, double *re, double *im) {
    int64_t n = p->n;
    double sg = p->inverse ? 1.0 : -1.0;
    if (n <= 1)
        return;
    if ((n & (n - 1)) != 0) {
        /* direct sum; (k * j) mod n indexes the twiddle table exactly */
        for (int64_t k = 0; k < n; k++) {
            double sr = 0, si = 0;
            int64_t idx = 0;
            for (int64_t j = 0; j < n; j++) {
                double c = p->cs[idx], s = sg * p->sn[idx];
                sr += re[j] * c - im[j] * s;
                si += re[j] * s + im[j] * c;
                idx += k;
                if (idx >= n)
                    idx -= n;
            }
            p->tre[k] = sr;
            p->tim[k] = si;
        }
        for (int64_t k = 0; k < n; k++) {
            re[k] = p->tre[k];
            im[k] = p->tim[k];
        }
        return;
    }
    /* bit reversal permutation */
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len >> 1, step = n / len;
        for (int64_t i = 0; i < n; i += len)
            for (int64_t k = 0; k < half; k++) {
                double c = p->cs[k * step], s = sg * p->sn[k * step];
                double ur = re[i + k], ui = im[i + k];
                double vr = re[i + k + half] * c - im[i + k + half] * s;
                double vi = re[i + k + half] * s + im[i + k + half] * c;
                re[i + k] = ur + vr;
                im[i + k] = ui + vi;
                re[i + k + half] = ur - vr;
                im[i + k + half] = ui - vi;
            }
    }
}
