/* Complex discrete Fourier transform of one sequence, in double.
 *
 * X[k] = sum_n x[n] * exp(-+2*pi*i*k*n/len) (sign + for the inverse; no
 * 1/len scaling here). Power-of-two lengths use an iterative radix-2 FFT,
 * other lengths the direct O(n^2) sum. */
#ifndef KILN_FFT_H
#define KILN_FFT_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

typedef struct kiln_fft_plan {
    int64_t n;
    bool inverse;
    double *cs, *sn;  /* twiddles: cos/sin(2*pi*j/n) for j < n */
    double *tre, *tim; /* scratch for the direct sum */
} kiln_fft_plan;

/* KILN_ERR_NOMEM (message set) when the tables cannot be allocated. */
kiln_status kiln_fft_plan_init(kiln_fft_plan *p, int64_t n, bool inverse);
void kiln_fft_plan_free(kiln_fft_plan *p);
/* In place on re[0..n), im[0..n). */
void kiln_fft_run(const kiln_fft_plan *p, double *re, double *im);

#endif
