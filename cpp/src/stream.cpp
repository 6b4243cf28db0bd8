// Streaming inference: one time step from the state kept by the caller, no allocation.
// Hidden units are split across threads; every gate column of a unit belongs to the thread
// owning the unit, so the matrix-vector products and the gate epilogue need no barrier
// (except reset-before GRU, whose candidate product needs all of r ⊙ h).
#include <algorithm>

#include "mathfn.h"
#include "rnncore/layer.h"
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
  switch (cell) {
    case Cell::RnnTanh:
#pragma omp simd
      for (int64_t j = u0; j < u1; ++j) h[j] = tanh_act(gx[j] + gh[j]);
      break;
    case Cell::RnnRelu:
#pragma omp simd
      for (int64_t j = u0; j < u1; ++j) h[j] = std::max(T(0), gx[j] + gh[j]);
      break;
    case Cell::Lstm:
#pragma omp simd
      for (int64_t j = u0; j < u1; ++j) {
        const T i = sigmoid(gx[j] + gh[j]), f = sigmoid(gx[H + j] + gh[H + j]);
        const T g = tanh_act(gx[2 * H + j] + gh[2 * H + j]);
        const T o = sigmoid(gx[3 * H + j] + gh[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanh_act(c[j]);
      }
      break;
    default:
#pragma omp simd
      for (int64_t j = u0; j < u1; ++j) {
        const T z = sigmoid(gx[H + j] + gh[H + j]);
        const T n = tanh_act(gx[2 * H + j] + gh[2 * H + j]);
        h[j] = (T(1) - z) * n + z * h[j];
      }
  }
}

}  // namespace

template <typename T>
void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a) {
  [[maybe_unused]] const FlushDenormals flush;
  const int64_t G = gate_count(cell), GH = G * H;
  const int nth = threads_for(2.0 * static_cast<double>(B * GH * (I + H)));
  run_team(nth, [&](int tid, int n_threads) {
    const auto [u0, u1] = share(H, tid, n_threads);
    for (int64_t b = 0; b < B; ++b) {
      T *gx = a.gx + b * GH, *gh = a.gh + b * GH, *h = a.h + b * H;
      gate_rows(a.x + b * I, a.w_ih_t, I, a.ld, G, H, a.b_ih, u0, u1, gx);
      const bool before = cell == Cell::GruResetBefore;  // candidate product comes later
      gate_rows(h, a.w_hh_t, H, a.ld, before ? G - 1 : G, H, a.b_hh, u0, u1, gh);
      if (cell == Cell::Gru || before) {
        for (int64_t j = u0; j < u1; ++j) gh[j] = sigmoid(gx[j] + gh[j]);  // r
        if (!before) {
          for (int64_t j = u0; j < u1; ++j) gh[2 * H + j] *= gh[j];
        } else {
          T* rh = a.rh + b * H;
          for (int64_t j = u0; j < u1; ++j) rh[j] = gh[j] * h[j];
        }
      }
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
