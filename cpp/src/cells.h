// Per-cell math for one batch row and a range [j0, j1) of hidden units: the epilogue that
// follows the recurrent GEMM in forward, and the gate gradients in backward.
//
// Gate vectors are [G*H], gate-major: gate q of unit j sits at q*H + j.
// Forward reads `gates` as the input projection x·W_ihᵀ + b_ih and overwrites it with the
// post-activation gates (what backward needs). Backward overwrites the stored gates with
// the gradient of the input projection (dGx); b_hh is never null (zeros without a bias, so
// the loops stay branch-free and vectorise); `dgh` receives the gradient of the recurrent
// projection h·W_hhᵀ (differs from dGx only for GRU reset_after's n gate).
#pragma once

#include <cstdint>

#include "kernel_ns.h"
#include "mathfn.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// ---- SimpleRNN: h = act(W_ih x + b_ih + W_hh h_prev + b_hh); gates[j] holds h. ----
template <typename T>
void rnn_forward_units(bool relu, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                       T* h) {
  for (int64_t j = j0; j < j1; ++j) {
    const T a = gates[j] + hh[j] + b_hh[j];
    const T v = relu ? (a < T(0) ? T(0) : a) : tanh_act(a);  // NaN propagates
    gates[j] = v;
    h[j] = v;
  }
}

template <typename T>
void rnn_backward_units(bool relu, int64_t j0, int64_t j1, T* gates, const T* dh, T* dg) {
  for (int64_t j = j0; j < j1; ++j) {
    const T v = gates[j];
    const T da =
        relu ? (v <= T(0) ? T(0) : dh[j]) : dh[j] * (T(1) - v * v);  // as torch: NaN passes
    gates[j] = da;
    dg[j] = da;
  }
}

// Activation passes over one gate block: g[j] = act(g[j] + hh[j] + b[j]). Kept as separate
// simple loops because GCC does not vectorise the whole fused cell update in one loop.
template <typename T>
void sigmoid_pass(int64_t j0, int64_t j1, T* g, const T* hh, const T* b) {
  for (int64_t j = j0; j < j1; ++j) g[j] = sigmoid(g[j] + hh[j] + b[j]);
}

template <typename T>
void tanh_pass(int64_t j0, int64_t j1, T* g, const T* hh, const T* b) {
  for (int64_t j = j0; j < j1; ++j) g[j] = tanh_act(g[j] + hh[j] + b[j]);
}

// ---- LSTM (i, f, g, o): c = f*c_prev + i*g, h = o*tanh(c). c is updated in place. ----
template <typename T>
void lstm_forward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                        T* c, T* h) {
  sigmoid_pass(j0, j1, gates, hh, b_hh);
  sigmoid_pass(j0, j1, gates + H, hh + H, b_hh + H);
  tanh_pass(j0, j1, gates + 2 * H, hh + 2 * H, b_hh + 2 * H);
  sigmoid_pass(j0, j1, gates + 3 * H, hh + 3 * H, b_hh + 3 * H);
  const T* i = gates;
  const T* f = gates + H;
  const T* g = gates + 2 * H;
  const T* o = gates + 3 * H;
  for (int64_t j = j0; j < j1; ++j) {
    const T cn = f[j] * c[j] + i[j] * g[j];
    c[j] = cn;
    h[j] = o[j] * tanh_act(cn);
  }
}

// dc: in, the cell-state gradient carried from the next step; out, the one for c_prev.
template <typename T>
void lstm_backward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* c, const T* c_prev,
                         const T* dh, T* dc, T* dg) {
  for (int64_t j = j0; j < j1; ++j) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
    const T tc = tanh_act(c[j]);
    const T dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
    const T di = dct * g * i * (T(1) - i);
    const T df = dct * c_prev[j] * f * (T(1) - f);
    const T dgg = dct * i * (T(1) - g * g);
    const T dout = dh[j] * tc * o * (T(1) - o);
    dc[j] = dct * f;
    gates[j] = dg[j] = di;
    gates[H + j] = dg[H + j] = df;
    gates[2 * H + j] = dg[2 * H + j] = dgg;
    gates[3 * H + j] = dg[3 * H + j] = dout;
  }
}

// ---- GRU reset_after (r, z, n): n = tanh(xn + r*(W_hn h + b_hn)), h = (1-z) n + z h_prev.
// hn receives W_hn h + b_hn, which backward needs for dr. ----
template <typename T>
void gru_forward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                       const T* h_prev, T* hn, T* h) {
  sigmoid_pass(j0, j1, gates, hh, b_hh);
  sigmoid_pass(j0, j1, gates + H, hh + H, b_hh + H);
  const T* r = gates;
  const T* z = gates + H;
  T* n = gates + 2 * H;
  for (int64_t j = j0; j < j1; ++j) {
    const T hnj = hh[2 * H + j] + b_hh[2 * H + j];
    const T nj = tanh_act(n[j] + r[j] * hnj);
    n[j] = nj;
    hn[j] = hnj;
    h[j] = (T(1) - z[j]) * nj + z[j] * h_prev[j];
  }
}

// direct: the part of dh_prev that does not pass through W_hh (dh * z).
template <typename T>
void gru_backward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hn, const T* h_prev,
                        const T* dh, T* dgh, T* dg, T* direct) {
  for (int64_t j = j0; j < j1; ++j) {
    const T r = gates[j], z = gates[H + j], n = gates[2 * H + j];
    const T dn = dh[j] * (T(1) - z) * (T(1) - n * n);
    const T dz = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
    const T dr = dn * hn[j] * r * (T(1) - r);
    gates[j] = dgh[j] = dg[j] = dr;
    gates[H + j] = dgh[H + j] = dg[H + j] = dz;
    gates[2 * H + j] = dn;
    dgh[2 * H + j] = dg[2 * H + j] = dn * r;
    direct[j] = dh[j] * z;
  }
}

// ---- GRU reset_before: n = tanh(xn + W_hn (r*h_prev) + b_hn). Two phases around the
// second GEMM: phase 1 makes r, z and rh = r*h_prev; phase 2 makes n and h. ----
template <typename T>
void gru_rb_forward_phase1(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                           const T* h_prev, T* rh) {
  sigmoid_pass(j0, j1, gates, hh, b_hh);
  sigmoid_pass(j0, j1, gates + H, hh + H, b_hh + H);
  for (int64_t j = j0; j < j1; ++j) rh[j] = gates[j] * h_prev[j];
}

// hh_n: the n block of the recurrent projection, W_hn (r*h_prev).
template <typename T>
void gru_rb_forward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh_n,
                           const T* b_hh, const T* h_prev, T* h) {
  for (int64_t j = j0; j < j1; ++j) {
    const T z = gates[H + j];
    const T n = tanh_act(gates[2 * H + j] + hh_n[j] + b_hh[2 * H + j]);
    gates[2 * H + j] = n;
    h[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

// Phase 1 of backward: the z and n gradients (need only dh); dg gets them at H+j and 2H+j.
template <typename T>
void gru_rb_backward_phase1(int64_t H, int64_t j0, int64_t j1, const T* gates, const T* h_prev,
                            const T* dh, T* dg) {
  for (int64_t j = j0; j < j1; ++j) {
    const T z = gates[H + j], n = gates[2 * H + j];
    dg[H + j] = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
    dg[2 * H + j] = dh[j] * (T(1) - z) * (T(1) - n * n);
  }
}

// Phase 2: drh = d(r*(m*h_prev)) from the second GEMM gives dr; gates receive dGx.
// m is the recurrent dropout mask row (ones without dropout).
template <typename T>
void gru_rb_backward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* h_prev,
                            const T* m, const T* dh, const T* drh, T* dg, T* direct) {
  for (int64_t j = j0; j < j1; ++j) {
    const T r = gates[j], z = gates[H + j];
    const T dr = drh[j] * (h_prev[j] * m[j]) * r * (T(1) - r);
    dg[j] = dr;
    gates[j] = dr;
    gates[H + j] = dg[H + j];
    gates[2 * H + j] = dg[2 * H + j];
    direct[j] = dh[j] * z + drh[j] * r * m[j];
  }
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
