/* Gate maths of recurrent cells (ONNX LSTM, GRU, RNN) with their default
 * activations, float32, over n hidden units: what follows a step's matrix
 * products. Each gate's pre-activations are n consecutive floats.
 *
 * Activations are f = sigmoid, g = h = tanh (RNN: tanh), evaluated
 * branch-free (relative error below 5e-7). clip: pre-activations are
 * clamped to [-clip, clip] before each activation (INFINITY: no clipping),
 * as the operators' `clip` attribute says. Chosen at run time: AVX-512,
 * AVX2+FMA or portable C builds of the same code.
 */
#ifndef KILN_RNN_CELL_H
#define KILN_RNN_CELL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kiln_lstm_cell {
    int64_t n;
    const float *i, *o, *f, *g; /* gate pre-activations (ONNX order i o f c) */
    const float *c_prev;
    const float *pi, *po, *pf; /* peepholes, all or none (NULL) */
    float clip;
    bool input_forget; /* f = 1 - i */
    float *c, *h;      /* the new cell and hidden state */
} kiln_lstm_cell;

/* i = s(i + pi*c_prev), f = s(f + pf*c_prev) (or 1 - i), c = f*c_prev + i*tanh(g),
 * o = s(o + po*c), h = o*tanh(c). c and h may not alias the inputs. */
void kiln_lstm_cell_f32(const kiln_lstm_cell *a);

/* GRU, first half (linear_before_reset 0): z <- s(z); rh = s(r) * h_prev. */
void kiln_gru_zr_f32(int64_t n, float clip, float *z, const float *r, const float *h_prev, float *rh);
/* GRU, second half: h = (1 - z) * tanh(gh) + z * h_prev (z already activated). */
void kiln_gru_out_f32(int64_t n, float clip, const float *z, const float *gh, const float *h_prev, float *h);
/* GRU with linear_before_reset: z = s(gz), r = s(gr),
 * h = (1 - z) * tanh(xh + r * rh) + z * h_prev, where rh = Rh*h_prev + Rbh. */
void kiln_gru_lbr_f32(int64_t n, float clip, const float *gz, const float *gr, const float *xh, const float *rh,
                      const float *h_prev, float *h);
/* RNN: h = tanh(g). */
void kiln_rnn_tanh_f32(int64_t n, float clip, const float *g, float *h);

#endif
