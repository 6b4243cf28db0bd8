// Per-cell math for one batch row and a range [j0, j1) of hidden units: the epilogue that
// follows the recurrent GEMM in forward, and the gate gradients in backward.
//
// Gate vectors are [G*H], gate-major: gate q of unit j sits at q*H + j.
// Forward reads `gates` as the input projection x·W_ihᵀ + b_ih and overwrites it with the
// post-activation gates (what backward needs). Backward overwrites the stored gates with
// the gradient of the input projection (dGx); `dgh` receives the gradient of the recurrent
// projection h·W_hhᵀ (differs from dGx only for GRU reset_after's n gate).
#pragma once

#include <cmath>
#include <cstdint>

namespace rnncore {

template <typename T>
inline T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

// Bias value at index q, zero when the layer has no bias.
template <typename T>
inline T bias_at(const T* b, int64_t q) {
  return b ? b[q] : T(0);
}

// ---- SimpleRNN: h = act(W_ih x + b_ih + W_hh h_prev + b_hh); gates[j] holds h. ----
template <typename T>
void rnn_forward_units(bool relu, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                       T* h) {
  for (int64_t j = j0; j < j1; ++j) {
    const T a = gates[j] + hh[j] + bias_at(b_hh, j);
    const T v = relu ? (a < T(0) ? T(0) : a) : std::tanh(a);  // NaN propagates
    gates[j] = v;
    h[j] = v;
  }
}

template <typename T>
void rnn_backward_units(bool relu, int64_t j0, int64_t j1, T* gates, const T* dh, T* dg) {
  for (int64_t j = j0; j < j1; ++j) {
    const T v = gates[j];
    const T da = relu ? (v > T(0) ? dh[j] : T(0)) : dh[j] * (T(1) - v * v);
    gates[j] = da;
    dg[j] = da;
  }
}

// ---- LSTM (i, f, g, o): c = f*c_prev + i*g, h = o*tanh(c). c is updated in place. ----
template <typename T>
void lstm_forward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                        T* c, T* h) {
  for (int64_t j = j0; j < j1; ++j) {
    const T i = sigmoid(gates[j] + hh[j] + bias_at(b_hh, j));
    const T f = sigmoid(gates[H + j] + hh[H + j] + bias_at(b_hh, H + j));
    const T g = std::tanh(gates[2 * H + j] + hh[2 * H + j] + bias_at(b_hh, 2 * H + j));
    const T o = sigmoid(gates[3 * H + j] + hh[3 * H + j] + bias_at(b_hh, 3 * H + j));
    const T cn = f * c[j] + i * g;
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    gates[3 * H + j] = o;
    c[j] = cn;
    h[j] = o * std::tanh(cn);
  }
}

// dc: in, the cell-state gradient carried from the next step; out, the one for c_prev.
template <typename T>
void lstm_backward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* c, const T* c_prev,
                         const T* dh, T* dc, T* dg) {
  for (int64_t j = j0; j < j1; ++j) {
    const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
    const T tc = std::tanh(c[j]);
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
  for (int64_t j = j0; j < j1; ++j) {
    const T r = sigmoid(gates[j] + hh[j] + bias_at(b_hh, j));
    const T z = sigmoid(gates[H + j] + hh[H + j] + bias_at(b_hh, H + j));
    const T hnj = hh[2 * H + j] + bias_at(b_hh, 2 * H + j);
    const T n = std::tanh(gates[2 * H + j] + r * hnj);
    gates[j] = r;
    gates[H + j] = z;
    gates[2 * H + j] = n;
    hn[j] = hnj;
    h[j] = (T(1) - z) * n + z * h_prev[j];
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
  for (int64_t j = j0; j < j1; ++j) {
    const T r = sigmoid(gates[j] + hh[j] + bias_at(b_hh, j));
    gates[j] = r;
    gates[H + j] = sigmoid(gates[H + j] + hh[H + j] + bias_at(b_hh, H + j));
    rh[j] = r * h_prev[j];
  }
}

// hh_n: the n block of the recurrent projection, W_hn (r*h_prev).
template <typename T>
void gru_rb_forward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh_n,
                           const T* b_hh, const T* h_prev, T* h) {
  for (int64_t j = j0; j < j1; ++j) {
    const T z = gates[H + j];
    const T n = std::tanh(gates[2 * H + j] + hh_n[j] + bias_at(b_hh, 2 * H + j));
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

// Phase 2: drh = d(r*h_prev) from the second GEMM gives dr; gates receive dGx.
template <typename T>
void gru_rb_backward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* h_prev,
                            const T* dh, const T* drh, T* dg, T* direct) {
  for (int64_t j = j0; j < j1; ++j) {
    const T r = gates[j], z = gates[H + j];
    const T dr = drh[j] * h_prev[j] * r * (T(1) - r);
    dg[j] = dr;
    gates[j] = dr;
    gates[H + j] = dg[H + j];
    gates[2 * H + j] = dg[2 * H + j];
    direct[j] = dh[j] * z + drh[j] * r;
  }
}

}  // namespace rnncore
