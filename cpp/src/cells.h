// Per-cell math for one batch row and a range [j0, j1) of hidden units: the epilogue that
// follows the recurrent GEMM in forward, and the gate gradients in backward. Each cell is one
// fused pass over vectors of units (simd.h: full vectors, then one partial tail vector).
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
#include "rnncore/layer.h"
#include "simd.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// 1 - v*v, the derivative of tanh at its output v, fused: where |v| nears 1, a rounded
// square would cancel away most of the difference's bits.
template <typename V>
inline V one_minus_square(V v) {
  return fmadd(-v, v, V{} + 1);
}

// The state updates that both the layer loop and Stream (stream.cpp) apply, fused the same
// way in each. LSTM: c = f*c_prev + i*g.
template <typename V>
inline V lstm_cell_state(V i, V f, V g, V c_prev) {
  return fmadd(f, c_prev, i * g);
}

// GRU: h = (1 - z)*n + z*h_prev.
template <typename V>
inline V gru_blend(V z, V n, V h_prev) {
  return fmadd(z, h_prev, ((V{} + 1) - z) * n);
}

// ---- SimpleRNN: h = act(W_ih x + b_ih + W_hh h_prev + b_hh); gates[j] holds h. Training
// keeps no gates: backward reads h from the state slots. ----
template <typename T>
void rnn_forward_units(bool relu, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                       T* h) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> a = l.ld(gates) + l.ld(hh) + l.ld(b_hh);
    const Vec<T> v = relu ? relu_act(a) : tanh_act(a);  // NaN propagates
    l.st(gates, v);
    l.st(h, v);
  });
}

// dg = dh * act'(a) from the activation h = act(a) (the state slot forward kept).
template <typename T>
void rnn_backward_units(bool relu, int64_t j0, int64_t j1, const T* h, const T* dh, T* dg) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> v = l.ld(h), d = l.ld(dh), zero{};
    const Vec<T> da =
        relu ? (v <= zero ? zero : d) : d * one_minus_square(v);  // as torch: NaN passes
    l.st(dg, da);
  });
}

// Pre-activation of gate block q: input projection + recurrent projection + recurrent bias.
template <typename T, typename L>
inline Vec<T> preact(const L& l, int64_t q, int64_t H, const T* gates, const T* hh, const T* b_hh) {
  return l.ld(gates + q * H) + l.ld(hh + q * H) + l.ld(b_hh + q * H);
}

// ---- LSTM (i, f, g, o): c = f*c_prev + i*g, h = o*tanh(c). c is updated in place. ----
template <typename T>
void lstm_forward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                        T* c, T* h) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> i = sigmoid(preact(l, 0, H, gates, hh, b_hh));
    const Vec<T> f = sigmoid(preact(l, 1, H, gates, hh, b_hh));
    const Vec<T> g = tanh_act(preact(l, 2, H, gates, hh, b_hh));
    const Vec<T> o = sigmoid(preact(l, 3, H, gates, hh, b_hh));
    const Vec<T> cn = lstm_cell_state(i, f, g, l.ld(c));
    l.st(gates, i);
    l.st(gates + H, f);
    l.st(gates + 2 * H, g);
    l.st(gates + 3 * H, o);
    l.st(c, cn);
    l.st(h, o * tanh_act(cn));
  });
}

// dc: in, the cell-state gradient carried from the next step; out, the one for c_prev.
template <typename T>
void lstm_backward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* c, const T* c_prev,
                         const T* dh, T* dc, T* dg) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> i = l.ld(gates), f = l.ld(gates + H), g = l.ld(gates + 2 * H);
    const Vec<T> o = l.ld(gates + 3 * H), d = l.ld(dh);
    const Vec<T> tc = tanh_act(l.ld(c));
    const Vec<T> dct = l.ld(dc) + d * o * one_minus_square(tc);
    const Vec<T> di = dct * g * i * (T(1) - i);
    const Vec<T> df = dct * l.ld(c_prev) * f * (T(1) - f);
    const Vec<T> dgg = dct * i * one_minus_square(g);
    const Vec<T> dout = d * tc * o * (T(1) - o);
    l.st(dc, dct * f);
    const Vec<T> grads[4] = {di, df, dgg, dout};
    for (int64_t q = 0; q < 4; ++q) {
      l.st(gates + q * H, grads[q]);
      l.st(dg + q * H, grads[q]);
    }
  });
}

// ---- GRU reset_after (r, z, n): n = tanh(xn + r*(W_hn h + b_hn)), h = (1-z) n + z h_prev.
// hn receives W_hn h + b_hn, which backward needs for dr. ----
template <typename T>
void gru_forward_units(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                       const T* h_prev, T* hn, T* h) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> r = sigmoid(preact(l, 0, H, gates, hh, b_hh));
    const Vec<T> z = sigmoid(preact(l, 1, H, gates, hh, b_hh));
    const Vec<T> hnj = l.ld(hh + 2 * H) + l.ld(b_hh + 2 * H);
    const Vec<T> n = tanh_act(fmadd(r, hnj, l.ld(gates + 2 * H)));
    l.st(gates, r);
    l.st(gates + H, z);
    l.st(gates + 2 * H, n);
    l.st(hn, hnj);
    l.st(h, gru_blend(z, n, l.ld(h_prev)));
  });
}

// direct: the part of dh_prev that does not pass through W_hh (dh * z). hn: in, the stored
// W_hn h + b_hn; out, the n gate's recurrent-projection gradient dn * r (the r and z parts
// equal dGx's), so the weight gradients need no [T, B, G*H] copy of their own.
template <typename T>
void gru_backward_units(int64_t H, int64_t j0, int64_t j1, T* gates, T* hn, const T* h_prev,
                        const T* dh, T* dg, T* direct) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> r = l.ld(gates), z = l.ld(gates + H), n = l.ld(gates + 2 * H), d = l.ld(dh);
    const Vec<T> dn = d * (T(1) - z) * one_minus_square(n);
    const Vec<T> dz = d * (l.ld(h_prev) - n) * z * (T(1) - z);
    const Vec<T> dr = dn * l.ld(hn) * r * (T(1) - r);
    for (T* out : {gates, dg}) {
      l.st(out, dr);
      l.st(out + H, dz);
    }
    l.st(gates + 2 * H, dn);
    l.st(hn, dn * r);
    l.st(dg + 2 * H, dn * r);
    l.st(direct, d * z);
  });
}

// ---- GRU reset_before: n = tanh(xn + W_hn (r*h_prev) + b_hn). Two phases around the
// second GEMM: phase 1 makes r, z and rh = r*h_prev; phase 2 makes n and h. ----
template <typename T>
void gru_rb_forward_phase1(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh, const T* b_hh,
                           const T* h_prev, T* rh) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> r = sigmoid(preact(l, 0, H, gates, hh, b_hh));
    l.st(gates, r);
    l.st(gates + H, sigmoid(preact(l, 1, H, gates, hh, b_hh)));
    l.st(rh, r * l.ld(h_prev));
  });
}

// hh_n: the n block of the recurrent projection, W_hn (r*h_prev).
template <typename T>
void gru_rb_forward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh_n,
                           const T* b_hh, const T* h_prev, T* h) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> z = l.ld(gates + H);
    const Vec<T> n = tanh_act(l.ld(gates + 2 * H) + l.ld(hh_n) + l.ld(b_hh + 2 * H));
    l.st(gates + 2 * H, n);
    l.st(h, gru_blend(z, n, l.ld(h_prev)));
  });
}

// Phase 1 of backward: the z and n gradients (need only dh); dg gets them at H+j and 2H+j.
template <typename T>
void gru_rb_backward_phase1(int64_t H, int64_t j0, int64_t j1, const T* gates, const T* h_prev,
                            const T* dh, T* dg) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> z = l.ld(gates + H), n = l.ld(gates + 2 * H), d = l.ld(dh);
    l.st(dg + H, d * (l.ld(h_prev) - n) * z * (T(1) - z));
    l.st(dg + 2 * H, d * (T(1) - z) * one_minus_square(n));
  });
}

// Phase 2: drh = d(r*(m*h_prev)) from the second GEMM gives dr; gates receive dGx.
// m is the recurrent dropout mask row (ones without dropout).
template <typename T>
void gru_rb_backward_phase2(int64_t H, int64_t j0, int64_t j1, T* gates, const T* h_prev,
                            const T* m, const T* dh, const T* drh, T* dg, T* direct) {
  each_lanes<T>(j0, j1, [&](auto l) {
    const Vec<T> r = l.ld(gates), z = l.ld(gates + H), d_rh = l.ld(drh), mv = l.ld(m);
    const Vec<T> dr = d_rh * (l.ld(h_prev) * mv) * r * (T(1) - r);
    l.st(dg, dr);
    l.st(gates, dr);
    l.st(gates + H, l.ld(dg + H));
    l.st(gates + 2 * H, l.ld(dg + 2 * H));
    l.st(direct, l.ld(dh) * z + d_rh * r * mv);
  });
}

// ---- Dispatch by cell kind: the layer driver's only switches over Cell ----

// The forward epilogue of `cell` after the recurrent GEMM, for units [j0, j1) of one row (or
// all H*Bp lanes of a thread's rows). c: LSTM's cell state, updated; h_prev: the state
// entering the step; aux: receives GRU's W_hn h + b_hn (reset_after). GruResetBefore needs r
// before its candidate product: the caller runs gru_rb_forward_phase1 and that product
// first, into hh's n block.
template <typename T>
void forward_units(Cell cell, int64_t H, int64_t j0, int64_t j1, T* gates, const T* hh,
                   const T* b_hh, T* c, const T* h_prev, T* aux, T* h_new) {
  switch (cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu:
      rnn_forward_units(cell == Cell::RnnRelu, j0, j1, gates, hh, b_hh, h_new);
      break;
    case Cell::Lstm: lstm_forward_units(H, j0, j1, gates, hh, b_hh, c, h_new); break;
    case Cell::Gru: gru_forward_units(H, j0, j1, gates, hh, b_hh, h_prev, aux, h_new); break;
    case Cell::GruResetBefore:
      gru_rb_forward_phase2(H, j0, j1, gates, hh + 2 * H, b_hh, h_prev, h_new);
      break;
  }
}

// Where backward_units finds one row's stored values of a step (null where the cell has none).
template <typename T>
struct StepSlots {
  T* gates;         // [G*H] post-activation gates in, dGx out (null for SimpleRNN)
  const T* h;       // [H] the step's output state (SimpleRNN: its activation)
  const T* h_prev;  // [H] the state entering the step
  const T* c;       // [H] LSTM: the step's cell state
  const T* c_prev;  // [H] LSTM: the cell state entering the step
  T* aux;           // [H] GRU reset_after: the stored W_hn h + b_hn, dn * r out
};

// The gate gradients of `cell` for units [j0, j1) of one row: dg [G*H] from dh [H]. dc: LSTM's
// cell-state gradient, carried (in and out); direct: GRU's part of dh_prev not through W_hh.
// GruResetBefore's r gradient needs the candidate's product first: this is its phase 1, the
// caller runs gru_rb_backward_phase2 after it.
template <typename T>
void backward_units(Cell cell, int64_t H, int64_t j0, int64_t j1, const StepSlots<T>& at,
                    const T* dh, T* dc, T* dg, T* direct) {
  switch (cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu: rnn_backward_units(cell == Cell::RnnRelu, j0, j1, at.h, dh, dg); break;
    case Cell::Lstm: lstm_backward_units(H, j0, j1, at.gates, at.c, at.c_prev, dh, dc, dg); break;
    case Cell::Gru:
      gru_backward_units(H, j0, j1, at.gates, at.aux, at.h_prev, dh, dg, direct);
      break;
    case Cell::GruResetBefore:
      gru_rb_backward_phase1(H, j0, j1, at.gates, at.h_prev, dh, dg);
      break;
  }
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
