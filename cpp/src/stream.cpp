// Streaming inference: one time step from the state kept by the caller, no allocation.
// Hidden units are split across threads; every gate column of a unit belongs to the thread
// owning the unit, so the matrix-vector products and the gate epilogue need no barrier
// (except reset-before GRU, whose candidate product needs all of r ⊙ h).
#include <algorithm>

#include "mathfn.h"
#include "rnncore/layer.h"
#include "simd.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

namespace {

constexpr int64_t kChunk = 64;  // gate columns accumulated in registers at once

// out[j] = bias[j] + Σ_k v[k] · W[k, j] for the columns j in [j0, j1) of W [K, ld].
template <typename T>
void matvec_cols(const T* v, const T* W, int64_t K, int64_t ld, const T* bias, int64_t j0,
                 int64_t j1, T* out) {
  for (int64_t jb = j0; jb < j1; jb += kChunk) {
    const int64_t n = std::min(kChunk, j1 - jb);
    T acc[kChunk];
    for (int64_t j = 0; j < n; ++j) acc[j] = bias ? bias[jb + j] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T vk = v[k];
      const T* w = W + k * ld + jb;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) acc[j] += vk * w[j];
    }
    for (int64_t j = 0; j < n; ++j) out[jb + j] = acc[j];
  }
}

// Gate columns g·H + [u0, u1) for the first n_gates gates of W [K, ld]: out = v·W + bias.
template <typename T>
void gate_rows(const T* v, const T* W, int64_t K, int64_t ld, int64_t n_gates, int64_t H,
               const T* bias, int64_t u0, int64_t u1, T* out) {
  for (int64_t g = 0; g < n_gates; ++g) matvec_cols(v, W, K, ld, bias, g * H + u0, g * H + u1, out);
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
        const Vec<T> cn = f * l.ld(c) + i * g;
        l.st(c, cn);
        l.st(h, o * tanh_act(cn));
        break;
      }
      default: {
        const Vec<T> z = sigmoid(pre(l, 1)), n = tanh_act(pre(l, 2));
        l.st(h, (T(1) - z) * n + z * l.ld(h));
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
  const int nth = threads_for(2.0 * static_cast<double>(B * GH * (I + H)));
  run_team(nth, [&](int tid, int n_threads) {
    const auto [u0, u1] = share_aligned(H, tid, n_threads, Simd<T>::W);
    for (int64_t b = 0; b < B; ++b) {
      T *gx = a.gx + b * GH, *gh = a.gh + b * GH, *h = a.h + b * H;
      gate_rows(a.x + b * I, a.w_ih_t, I, a.ld, G, H, a.b_ih, u0, u1, gx);
      const bool before = cell == Cell::GruResetBefore;  // candidate product comes later
      gate_rows(h, a.w_hh_t, H, a.ld, before ? G - 1 : G, H, a.b_hh, u0, u1, gh);
      if (cell == Cell::Gru || before)
        gru_reset(before, H, gx, gh, h, before ? a.rh + b * H : nullptr, u0, u1);
    }
    if (cell == Cell::GruResetBefore) {
      team_barrier(n_threads);  // the candidate product reads every unit's r ⊙ h
      for (int64_t b = 0; b < B; ++b)
        matvec_cols(a.rh + b * H, a.w_hh_t, H, a.ld, a.b_hh, 2 * H + u0, 2 * H + u1, a.gh + b * GH);
    }
    // h is overwritten only after every thread has read it in the products above
    team_barrier(n_threads);
    for (int64_t b = 0; b < B; ++b)
      epilogue(cell, H, a.gx + b * GH, a.gh + b * GH, a.h + b * H, a.c ? a.c + b * H : nullptr, u0,
               u1);
  });
}

template void stream_step<float>(Cell, int64_t, int64_t, int64_t, const StepArgs<float>&);
template void stream_step<double>(Cell, int64_t, int64_t, int64_t, const StepArgs<double>&);

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
