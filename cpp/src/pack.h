// Packing weights into the column panels gemm_nn reads as a PanelB (gemm.h).
//
// A weight W [N, K] (row n holds the K inputs of output column n) enters the GEMMs as Wᵀ.
// Packing columns [c0, c1) of Wᵀ is a transpose of W's rows c0..c1 into panels; it runs on
// W x W blocks held in registers (a scalar transpose was ~5x slower, and per call it is the
// fixed cost that batch-1 sequences pay).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "buffer.h"
#include "gemm.h"
#include "kernel_ns.h"
#include "simd.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// One stage of an in-register transpose of W vectors: rows a and a+S (a & S == 0) swap
// their S-lane blocks, after stages S = W/2, ..., 2, 1 row i holds column i.
template <typename T, int64_t S>
inline void transpose_stage(Vec<T>* r) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I Mask __attribute__((vector_size(sizeof(Vec<T>))));
  constexpr int64_t W = Simd<T>::W;
  Mask lo, hi;  // lane picks from the pair (a, b) as indices into a ++ b
  for (int64_t i = 0; i < W; ++i) {
    lo[i] = (i & S) ? W + i - S : i;
    hi[i] = (i & S) ? W + i : i + S;
  }
  for (int64_t a = 0; a < W; ++a) {
    if (a & S) continue;
    const Vec<T> x = r[a], y = r[a + S];
    r[a] = __builtin_shuffle(x, y, lo);
    r[a + S] = __builtin_shuffle(x, y, hi);
  }
}

template <typename T, int64_t S = Simd<T>::W / 2>
inline void transpose_block(Vec<T>* r) {
  transpose_stage<T, S>(r);
  if constexpr (S > 1) transpose_block<T, S / 2>(r);
}

// dst(c)[r] = src(r)[c] for r in [0, rows), c in [0, cols), where src(r) and dst(c) point at
// rows of the two matrices: W x W blocks through registers, the edges element by element.
template <typename T, typename Src, typename Dst>
void transpose_copy(int64_t rows, int64_t cols, const Src& src, const Dst& dst) {
  constexpr int64_t W = Simd<T>::W;
  const int64_t r_full = rows / W * W, c_full = cols / W * W;
  for (int64_t r0 = 0; r0 < r_full; r0 += W)
    for (int64_t c0 = 0; c0 < c_full; c0 += W) {
      Vec<T> v[W];
      for (int64_t i = 0; i < W; ++i) v[i] = Simd<T>::load(src(r0 + i) + c0);
      transpose_block<T>(v);
      for (int64_t k = 0; k < W; ++k) Simd<T>::store(dst(c0 + k) + r0, v[k]);
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = r < r_full ? c_full : 0; c < cols; ++c) dst(c)[r] = src(r)[c];
}

// Packs columns [c0, c1) of Wᵀ (rows c0..c1 of w [*, K]) as panels at out, which needs
// PanelB<T>::elems(c1 - c0, K) elements. Columns past c1 in the last panel are not written
// (gemm_nn never reads them).
template <typename T>
void pack_columns(const T* w, int64_t K, int64_t c0, int64_t c1, T* out) {
  constexpr int64_t NR = PanelB<T>::kCols;
  for (int64_t pc = c0; pc < c1; pc += NR) {
    T* panel = out + (pc - c0) * K;  // [K, NR]
    transpose_copy<T>(
        std::min(NR, c1 - pc), K, [&](int64_t i) { return w + (pc + i) * K; },
        [&](int64_t k) { return panel + k * NR; });
  }
}

// Packs columns [c0, c1) of a row-major B [K, ld] (already the GEMM's orientation, as W_hh is
// for backward's dG·W_hh) as panels at out: a copy of each row's slice.
template <typename T>
void pack_dense_columns(const T* b, int64_t ld, int64_t K, int64_t c0, int64_t c1, T* out) {
  constexpr int64_t NR = PanelB<T>::kCols;
  for (int64_t pc = c0; pc < c1; pc += NR) {
    T* panel = out + (pc - c0) * K;  // [K, NR]
    const int64_t width = std::min(NR, c1 - pc);
    for (int64_t k = 0; k < K; ++k) copy_n(b + k * ld + pc, width, panel + k * NR);
  }
}

// Thread tid's share of packing all N columns into `out` with pack(c0, c1, panels_at): whole
// panels each, so the team's parts line up with one packing by a single thread.
template <typename T, typename Pack>
void pack_share(int64_t N, int64_t K, int tid, int nth, T* out, Pack&& pack) {
  constexpr int64_t NR = PanelB<T>::kCols;
  const auto [p0, p1] = share((N + NR - 1) / NR, tid, nth);
  pack(p0 * NR, std::min(N, p1 * NR), out + p0 * NR * K);
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
