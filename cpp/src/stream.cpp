// Streaming inference: one time step from the state kept by the caller, no allocation.
// Hidden units are split across threads; every gate column of a unit belongs to the thread
// owning the unit, so the matrix-vector products and the gate epilogue need no barrier
// (except reset-before GRU, whose candidate product needs all of r ⊙ h).
#include <algorithm>

#include "cells.h"
#include "gemm.h"
#include "mathfn.h"
#include "pack.h"
#include "rnncore/layer.h"
#include "simd.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

namespace {

// out[j] = bias[j] + Σ_k v[k] · W[k, j] for the columns j in [j0, j1) of W [K, G*H], packed:
// a one-row GEMM, whose register tiles keep the sums out of memory.
template <typename T>
void matvec_cols(const T* v, const T* W, int64_t K, const T* bias, int64_t j0, int64_t j1, T* out) {
  gemm_nn<T>(0, 1, j0, j1, K, dense_rows(v, K), PanelB<T>{W, K}, dense_rows(out, 0), false, bias);
}

// Gate columns g·H + [u0, u1) for the first n_gates gates of W [K, G*H]: out = v·W + bias.
template <typename T>
void gate_rows(const T* v, const T* W, int64_t K, int64_t n_gates, int64_t H, const T* bias,
               int64_t u0, int64_t u1, T* out) {
  for (int64_t g = 0; g < n_gates; ++g) matvec_cols(v, W, K, bias, g * H + u0, g * H + u1, out);
}

// h (and c) for units [u0, u1) from the gate pre-activations. For GRU, gh's r block already
// holds r itself and its candidate block r·(h·W_hn + b_hn) or (r⊙h)·W_hn + b_hn.
template <typename T>
void epilogue(Cell cell, int64_t H, const T* gx, const T* gh, T* h, T* c, int64_t u0, int64_t u1) {
  auto pre = [&](const auto& l, int64_t q) { return l.ld(gx + q * H) + l.ld(gh + q * H); };
  each_lanes<T>(u0, u1, [&](auto l) {
    switch (cell) {
      case Cell::RnnTanh: l.st(h, tanh_act(pre(l, 0))); break;
      case Cell::RnnRelu: l.st(h, relu_act(pre(l, 0))); break;
      case Cell::Lstm: {
        const Vec<T> i = sigmoid(pre(l, 0)), f = sigmoid(pre(l, 1));
        const Vec<T> g = tanh_act(pre(l, 2)), o = sigmoid(pre(l, 3));
        const Vec<T> cn = lstm_cell_state(i, f, g, l.ld(c));
        l.st(c, cn);
        l.st(h, o * tanh_act(cn));
        break;
      }
      default: {
        const Vec<T> z = sigmoid(pre(l, 1)), n = tanh_act(pre(l, 2));
        l.st(h, gru_blend(z, n, l.ld(h)));
      }
    }
  });
}

// GRU's reset gate r = sigmoid(gx_r + gh_r) into gh's r block, then what the candidate
// needs of it: gh's candidate block scaled by r (reset_after) or rh = r ⊙ h (reset_before).
template <typename T>
void gru_reset(bool before, int64_t H, const T* gx, T* gh, const T* h, T* rh, int64_t u0,
               int64_t u1) {
  each_lanes<T>(u0, u1, [&](auto l) {
    const Vec<T> r = sigmoid(l.ld(gx) + l.ld(gh));
    l.st(gh, r);
    if (before)
      l.st(rh, r * l.ld(h));
    else
      l.st(gh + 2 * H, l.ld(gh + 2 * H) * r);
  });
}

}  // namespace

template <typename T>
void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a) {
  [[maybe_unused]] const FlushDenormals flush;
  const int64_t G = gate_count(cell), GH = G * H;
  // Each step forks a team, which costs several barriers: a second thread pays from about
  // 8x the work it does in a layer's time loop (docs/design.md, "Measurements").
  const double flops = 2.0 * static_cast<double>(B * GH * (I + H));
  const int nth = threads_for(flops, flops / 8);
  run_team(nth, [&](int tid, int n_threads) {
    const auto [u0, u1] = share_aligned(H, tid, n_threads, Simd<T>::W);
    for (int64_t b = 0; b < B; ++b) {
      T *gx = a.gx + b * GH, *gh = a.gh + b * GH, *h = a.h + b * H;
      gate_rows(a.x + b * I, a.w_ih_p, I, G, H, a.b_ih, u0, u1, gx);
      const bool before = cell == Cell::GruResetBefore;  // candidate product comes later
      gate_rows(h, a.w_hh_p, H, before ? G - 1 : G, H, a.b_hh, u0, u1, gh);
      if (cell == Cell::Gru || before)
        gru_reset(before, H, gx, gh, h, before ? a.rh + b * H : nullptr, u0, u1);
    }
    if (cell == Cell::GruResetBefore) {
      team_barrier(n_threads);  // the candidate product reads every unit's r ⊙ h
      for (int64_t b = 0; b < B; ++b)
        matvec_cols(a.rh + b * H, a.w_hh_p, H, a.b_hh, 2 * H + u0, 2 * H + u1, a.gh + b * GH);
    }
    // h is overwritten only after every thread has read it in the products above
    team_barrier(n_threads);
    for (int64_t b = 0; b < B; ++b)
      epilogue(cell, H, a.gx + b * GH, a.gh + b * GH, a.h + b * H, a.c ? a.c + b * H : nullptr, u0,
               u1);
  });
}

template <typename T>
int64_t packed_weight_elems(int64_t N, int64_t K) {
  return PanelB<T>::elems(N, K);
}

template <typename T>
void pack_weights(const T* w, int64_t N, int64_t K, T* out) {
  pack_columns(w, K, 0, N, out);
}

template int64_t packed_weight_elems<float>(int64_t, int64_t);
template int64_t packed_weight_elems<double>(int64_t, int64_t);
template void pack_weights<float>(const float*, int64_t, int64_t, float*);
template void pack_weights<double>(const double*, int64_t, int64_t, double*);
template void stream_step<float>(Cell, int64_t, int64_t, int64_t, const StepArgs<float>&);
template void stream_step<double>(Cell, int64_t, int64_t, int64_t, const StepArgs<double>&);

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
