// Small, deterministic GEMMs for the layer driver.
//
// Every output element is owned by one thread and accumulates its k terms in order
// k = 0, 1, ..., K-1, so neither blocking nor the thread count changes a single bit.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rnncore {

// A matrix whose row r starts at base + (r / inner) * outer + (r % inner) * stride and whose
// columns are contiguous. Time-major and batch-first [T, B, ·] data both view as T·B rows in
// time-major order: row t*B + b.
template <typename T>
struct Rows {
  T* base;
  int64_t inner;   // rows per outer block (B for a [T, B, ·] view)
  int64_t outer;   // elements between outer blocks
  int64_t stride;  // elements between rows of one block

  T* operator()(int64_t r) const { return base + (r / inner) * outer + (r % inner) * stride; }
};

// Plain row-major rows with leading dimension ld.
template <typename T>
Rows<T> dense_rows(T* base, int64_t ld) {
  return Rows<T>{base, 1, ld, 0};
}

// Rows of a [T, B, width] sequence in time-major order, stored time-major or batch-first.
template <typename T>
Rows<T> sequence_rows(T* base, int64_t T_, int64_t B, int64_t width, bool batch_first) {
  if (batch_first) return Rows<T>{base, B, width, T_ * width};
  return Rows<T>{base, 1, width, 0};
}

constexpr int64_t kTileRows = 4;
constexpr int64_t kTileCols = 64;

// acc[mm][nn] += a(mm, k) * brow(k)[nn] for k in [0, K): one register/L1 tile.
template <typename T, typename AElem, typename BRow>
inline void accumulate_tile(int64_t mr, int64_t nw, int64_t K, AElem a, BRow brow,
                            T (&acc)[kTileRows][kTileCols]) {
  for (int64_t k = 0; k < K; ++k) {
    const T* b = brow(k);
    for (int64_t mm = 0; mm < mr; ++mm) {
      const T av = a(mm, k);
      T* accr = acc[mm];
      for (int64_t nn = 0; nn < nw; ++nn) accr[nn] += av * b[nn];
    }
  }
}

// C[m, n] (= or +=) sum_k A[m, k] * Bm[k, n] for m in [m0, m1), n in [n0, n1).
// A rows are contiguous in k; Bm is row-major with leading dimension ldb.
template <typename T>
void gemm_nn(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, Rows<const T> A,
             const T* Bm, int64_t ldb, Rows<T> C, bool accumulate) {
  for (int64_t mb = m0; mb < m1; mb += kTileRows) {
    const int64_t mr = std::min(kTileRows, m1 - mb);
    const T* arow[kTileRows];
    for (int64_t mm = 0; mm < mr; ++mm) arow[mm] = A(mb + mm);
    for (int64_t nb = n0; nb < n1; nb += kTileCols) {
      const int64_t nw = std::min(kTileCols, n1 - nb);
      T acc[kTileRows][kTileCols];
      for (int64_t mm = 0; mm < mr; ++mm)
        for (int64_t nn = 0; nn < nw; ++nn) acc[mm][nn] = accumulate ? C(mb + mm)[nb + nn] : T(0);
      accumulate_tile<T>(
          mr, nw, K, [&](int64_t mm, int64_t k) { return arow[mm][k]; },
          [&](int64_t k) { return Bm + k * ldb + nb; }, acc);
      for (int64_t mm = 0; mm < mr; ++mm)
        for (int64_t nn = 0; nn < nw; ++nn) C(mb + mm)[nb + nn] = acc[mm][nn];
    }
  }
}

// C[m, n] (= or +=) sum_k D[k, m] * E[k, n] for m in [m0, m1), n in [0, N): the weight
// gradient shape (Dᵀ·E over all T·B rows). C is row-major with leading dimension ldc.
template <typename T>
void gemm_tn(int64_t m0, int64_t m1, int64_t N, int64_t K, Rows<const T> D, Rows<const T> E, T* C,
             int64_t ldc, bool accumulate) {
  for (int64_t mb = m0; mb < m1; mb += kTileRows) {
    const int64_t mr = std::min(kTileRows, m1 - mb);
    for (int64_t nb = 0; nb < N; nb += kTileCols) {
      const int64_t nw = std::min(kTileCols, N - nb);
      T acc[kTileRows][kTileCols];
      for (int64_t mm = 0; mm < mr; ++mm)
        for (int64_t nn = 0; nn < nw; ++nn)
          acc[mm][nn] = accumulate ? C[(mb + mm) * ldc + nb + nn] : T(0);
      accumulate_tile<T>(
          mr, nw, K, [&](int64_t mm, int64_t k) { return D(k)[mb + mm]; },
          [&](int64_t k) { return E(k) + nb; }, acc);
      for (int64_t mm = 0; mm < mr; ++mm)
        for (int64_t nn = 0; nn < nw; ++nn) C[(mb + mm) * ldc + nb + nn] = acc[mm][nn];
    }
  }
}

}  // namespace rnncore
