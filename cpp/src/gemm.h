// Small, deterministic GEMMs for the layer driver.
//
// Every output element is owned by one thread and accumulates its k terms in order
// k = 0, 1, ..., K-1, so neither blocking nor the thread count changes a single bit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "buffer.h"
#include "kernel_ns.h"
#include "simd.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// A matrix whose row r starts at base + (r / inner) * outer + (r % inner) * stride and whose
// columns are contiguous. Time-major and batch-first [T, B, ·] data both view as T·B rows in
// time-major order: row t*B + b.
template <typename T>
struct Rows {
  T* base;
  int64_t inner;   // rows per outer block (B for a [T, B, ·] view)
  int64_t outer;   // elements between outer blocks
  int64_t stride;  // elements between rows of one block

  T* operator()(int64_t r) const {
    return inner == 1 ? base + r * outer : base + (r / inner) * outer + (r % inner) * stride;
  }
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

// Register tile: kTileRows rows x kTileVecs vectors of accumulators (24 zmm with AVX-512;
// 12 ymm/xmm otherwise, leaving room for the B vectors and the broadcast).
constexpr int kTileRows = 6;
constexpr int kTileVecs = RNNCORE_VEC_BYTES == 64 ? 4 : 2;

// c[mm][v*W .. v*W+W) (= or +=) sum_k a(mm, k) * brow(k)[v*W ..], k in order, one FMA per
// element and k, so results never depend on where a tile boundary falls. A Partial tile is
// one vector of which only the first `cols` columns are read and written (masked). Without
// accumulate, the sums start from bias (a row broadcast down the tile) when given, else 0.
template <typename T, int MR, int NV, bool Partial, typename AElem, typename BRow>
inline void vector_tile(int64_t K, AElem a, BRow brow, T* const* crow, bool accumulate,
                        int64_t cols, const T* bias) {
  using S = Simd<T>;
  using V = typename S::V;
  static_assert(!Partial || NV == 1, "a partial tile is one vector wide");
  const Lanes<T, !Partial> lanes{0, Partial ? cols : S::W};  // full or masked loads/stores
  auto load = [&lanes](const T* p) { return lanes.ld(p); };
  V start[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) start[v] = bias ? load(bias + v * S::W) : V{};
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int mm = 0; mm < MR; ++mm)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[mm][v] = accumulate ? load(crow[mm] + v * S::W) : start[v];
  for (int64_t k = 0; k < K; ++k) {
    const T* b = brow(k);
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = load(b + v * S::W);
#pragma GCC unroll 16
    for (int mm = 0; mm < MR; ++mm) {
      const V av = S::splat(a(mm, k));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[mm][v] = fmadd(av, bv[v], acc[mm][v]);
    }
  }
#pragma GCC unroll 16
  for (int mm = 0; mm < MR; ++mm)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) lanes.st(crow[mm] + v * S::W, acc[mm][v]);
}

// Full-width tiles run in a function of their own: inlined into a large caller (the forward
// loop's input projection), GCC ran short of vector registers and kept one of the 24 sums
// on the stack, a store and a reload every k (LSTM B=64 T=100 inference, I=H=512: 8-10%
// of the time; H=256: 3-7%). Narrower tiles stay inline: the lanes path calls them for a
// few k at a time, where a call would cost more than it saves.
template <typename T, int MR, int NV, bool Partial, typename AElem, typename BRow>
__attribute__((noinline)) void vector_tile_apart(int64_t K, AElem a, BRow brow, T* const* crow,
                                                 bool accumulate, int64_t cols, const T* bias) {
  vector_tile<T, MR, NV, Partial>(K, a, brow, crow, accumulate, cols, bias);
}

template <typename T, int MR, int NV, bool Partial, typename AElem, typename BRow>
inline void register_tile(int64_t K, AElem a, BRow brow, T* const* crow, bool accumulate,
                          int64_t cols, const T* bias) {
  if constexpr (NV == kTileVecs)
    vector_tile_apart<T, MR, NV, Partial>(K, a, brow, crow, accumulate, cols, bias);
  else
    vector_tile<T, MR, NV, Partial>(K, a, brow, crow, accumulate, cols, bias);
}

// Tiles of NV vectors (Partial: `cols` < W columns) at column offset off for mr <= kTileRows
// rows: one register tile of exactly mr rows (a batch of 64 leaves 4 rows after ten tiles
// of 6; row-by-row tiles would run them at a quarter of the FMA rate). b_at(k, n) points at
// B[k][n].
template <typename T, int NV, bool Partial, typename AElem, typename BAt>
inline void tile_rows(int64_t mr, int64_t off, int64_t cols, int64_t K, AElem a, BAt b_at,
                      T* const* crow, bool accumulate, const T* bias) {
  static_assert(kTileRows == 6, "the switch below has a case for every tile height");
  const T* bias_at = bias ? bias + off : nullptr;
  auto brow = [&](int64_t k) { return b_at(k, off); };
  T* rows[kTileRows];
  for (int64_t mm = 0; mm < mr; ++mm) rows[mm] = crow[mm] + off;
  switch (mr) {
    case 6: register_tile<T, 6, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
    case 5: register_tile<T, 5, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
    case 4: register_tile<T, 4, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
    case 3: register_tile<T, 3, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
    case 2: register_tile<T, 2, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
    default: register_tile<T, 1, NV, Partial>(K, a, brow, rows, accumulate, cols, bias_at); break;
  }
}

// One block of up to kTileRows rows and nw columns: full tiles where possible, single
// vectors, then one masked vector for the last columns.
template <typename T, typename AElem, typename BAt>
void gemm_block(int64_t mr, int64_t nw, int64_t K, AElem a, BAt b_at, T* const* crow,
                bool accumulate, const T* bias = nullptr) {
  constexpr int64_t W = Simd<T>::W;
  int64_t n = 0;
  for (; n + kTileVecs * W <= nw; n += kTileVecs * W)
    tile_rows<T, kTileVecs, false>(mr, n, 0, K, a, b_at, crow, accumulate, bias);
  for (; n + W <= nw; n += W) tile_rows<T, 1, false>(mr, n, 0, K, a, b_at, crow, accumulate, bias);
  if (n < nw) tile_rows<T, 1, true>(mr, n, nw - n, K, a, b_at, crow, accumulate, bias);
}

// B narrower than one full tile (the lanes path's [H, rows] state: one or two vectors):
// single-vector tiles of kTallRows rows, whose 12 independent sums keep both FMA pipes busy
// where 6 would wait on the FMA latency every k.
constexpr int kTallRows = 2 * kTileRows;

template <typename T, typename AElem, typename BAt>
void tall_block(int64_t nw, int64_t K, AElem a, BAt b_at, T* const* crow, bool accumulate,
                const T* bias) {
  constexpr int64_t W = Simd<T>::W;
  for (int64_t n = 0; n < nw; n += W) {
    T* rows[kTallRows];
    for (int mm = 0; mm < kTallRows; ++mm) rows[mm] = crow[mm] + n;
    auto brow = [&](int64_t k) { return b_at(k, n); };
    const T* bias_at = bias ? bias + n : nullptr;
    if (n + W <= nw)
      vector_tile<T, kTallRows, 1, false>(K, a, brow, rows, accumulate, 0, bias_at);
    else
      vector_tile<T, kTallRows, 1, true>(K, a, brow, rows, accumulate, nw - n, bias_at);
  }
}

// The B operand of gemm_nn, row-major with leading dimension ld.
template <typename T>
struct DenseB {
  static constexpr int64_t kPanelCols = 0;  // tiles may start at any column
  const T* data;
  int64_t ld;
  const T* at(int64_t k, int64_t n) const { return data + k * ld + n; }
};

// The B operand of gemm_nn packed in column panels (pack.h): columns [p*kCols, (p+1)*kCols)
// stored [K, kCols] contiguous, panel after panel. A tile streams one contiguous block
// (a few pages, prefetched) instead of K rows of a long row-major matrix, one page each.
template <typename T>
struct PanelB {
  static constexpr int64_t kCols = kTileVecs * Simd<T>::W;  // one full register tile wide
  static constexpr int64_t kPanelCols = kCols;              // no tile may straddle two panels
  const T* data;
  int64_t K;
  const T* at(int64_t k, int64_t n) const {
    return data + (n / kCols) * K * kCols + k * kCols + n % kCols;
  }
  static int64_t elems(int64_t width, int64_t K_) {
    return (width + kCols - 1) / kCols * kCols * K_;
  }
};

// Cache blocking: the part of one operand that every row tile passes over is kept to about
// a third of a core's 1 MiB L2, so it is read from memory once instead of once per tile.
constexpr int64_t kL2Block = 384 * 1024;  // bytes
constexpr int64_t kChunkK = 256;          // gemm_tn: k rows per pass

// C[m, n] (= or +=) sum_k A[m, k] * B[k, n] for m in [m0, m1), n in [n0, n1).
// A(m) and C(m) point at row m (a Rows, or any callable: rows gathered through a table);
// A rows are contiguous in k; B is a DenseB or a PanelB. Columns go in chunks whose K x chunk
// block of B fits kL2Block; all row tiles pass over one chunk.
// bias (optional, indexed by n like C's rows): C = bias + A·B when not accumulating.
template <typename T, typename AMat, typename BMat, typename CMat>
void gemm_nn(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const AMat& A,
             const BMat& B, const CMat& C, bool accumulate, const T* bias = nullptr) {
  const int64_t NR = kTileVecs * Simd<T>::W;
  const int64_t chunk =
      std::max<int64_t>(NR, kL2Block / std::max<int64_t>(1, K * sizeof(T)) / NR * NR);
  for (int64_t nb = n0, nw = 0; nb < n1; nb += nw) {
    nw = std::min(chunk, n1 - nb);
    if constexpr (BMat::kPanelCols > 0)  // up to the first panel boundary, then whole panels
      if (nb % BMat::kPanelCols) nw = std::min(nw, BMat::kPanelCols - nb % BMat::kPanelCols);
    int64_t mb = m0;
    for (; nw < NR && mb + kTallRows <= m1; mb += kTallRows) {
      const T* arow[kTallRows];
      T* crow[kTallRows];
      for (int mm = 0; mm < kTallRows; ++mm) {
        arow[mm] = A(mb + mm);
        crow[mm] = C(mb + mm) + nb;
      }
      tall_block<T>(
          nw, K, [&](int64_t mm, int64_t k) { return arow[mm][k]; },
          [&](int64_t k, int64_t n) { return B.at(k, nb + n); }, crow, accumulate,
          bias ? bias + nb : nullptr);
    }
    for (; mb < m1; mb += kTileRows) {
      const int64_t mr = std::min<int64_t>(kTileRows, m1 - mb);
      const T* arow[kTileRows];
      T* crow[kTileRows];
      for (int64_t mm = 0; mm < mr; ++mm) {
        arow[mm] = A(mb + mm);
        crow[mm] = C(mb + mm) + nb;
      }
      gemm_block<T>(
          mr, nw, K, [&](int64_t mm, int64_t k) { return arow[mm][k]; },
          [&](int64_t k, int64_t n) { return B.at(k, nb + n); }, crow, accumulate,
          bias ? bias + nb : nullptr);
    }
  }
}

// gemm_tn (below) on the operands in place, each tile reading its six D elements per k from
// D's rows. Blocked: rows of C in blocks that stay in L2 while k goes by in chunks of kChunkK
// rows; the chunk's row addresses are computed once, not in the inner loop.
template <typename T, typename DRows, typename ERows>
void gemm_tn_in_place(int64_t m0, int64_t m1, int64_t N, int64_t K, const DRows& D, const ERows& E,
                      T* C, int64_t ldc, bool accumulate) {
  const int64_t block = std::max<int64_t>(
      kTileRows, kL2Block / std::max<int64_t>(1, N * sizeof(T)) / kTileRows * kTileRows);
  const T* drow[kChunkK];  // D(k) and E(k) for the k of this chunk
  const T* erow[kChunkK];
  for (int64_t mc = m0; mc < m1; mc += block) {
    const int64_t mc_end = std::min(m1, mc + block);
    for (int64_t kc = 0; kc == 0 || kc < K; kc += kChunkK) {  // K == 0 still writes C
      const int64_t kn = std::min(kChunkK, K - kc);
      for (int64_t k = 0; k < kn; ++k) {
        drow[k] = D(kc + k);
        erow[k] = E(kc + k);
      }
      for (int64_t mb = mc; mb < mc_end; mb += kTileRows) {
        const int64_t mr = std::min<int64_t>(kTileRows, mc_end - mb);
        T* crow[kTileRows];
        for (int64_t mm = 0; mm < mr; ++mm) crow[mm] = C + (mb + mm) * ldc;
        gemm_block<T>(
            mr, N, kn, [&](int64_t mm, int64_t k) { return drow[k][mb + mm]; },
            [&](int64_t k, int64_t n) { return erow[k] + n; }, crow, accumulate || kc > 0);
      }
    }
  }
}

// Packed gemm_tn: a chunk of kPackK rows of E goes into column panels (kL2Block wide at most),
// and each block of kPackM rows of C gets its D columns packed per tile as [k][kTileRows], so
// the micro-kernel streams two contiguous blocks: in place, the D and E chunks a block passes
// over did not fit L2 together and each tile's six D elements per k cost a cache line.
constexpr int64_t kPackK = 128;
constexpr int64_t kPackM = 16 * kTileRows;

template <typename T, typename DRows, typename ERows>
void gemm_tn_packed(int64_t m0, int64_t m1, int64_t N, int64_t K, const DRows& D, const ERows& E,
                    T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t NR = PanelB<T>::kCols;
  const int64_t nc =
      std::clamp<int64_t>(kL2Block / (kPackK * sizeof(T)) / NR * NR, NR, (N + NR - 1) / NR * NR);
  Buffer<T> scratch(nc * kPackK + kPackM * kPackK, Alloc::kReused);
  T* const e_pack = scratch.data();        // [nc / NR][kn][NR] E chunk panels
  T* const d_pack = e_pack + nc * kPackK;  // [kPackM / kTileRows][kn][kTileRows]
  const T* drow[kPackK];                   // D(k) + ic for the k of this chunk
  for (int64_t jc = 0; jc < N; jc += nc) {
    const int64_t nw = std::min(nc, N - jc);
    for (int64_t kc = 0; kc == 0 || kc < K; kc += kPackK) {  // K == 0 still writes C
      const int64_t kn = std::min(kPackK, K - kc);
      for (int64_t pc = 0; pc < nw; pc += NR)
        for (int64_t k = 0; k < kn; ++k)
          copy_n(E(kc + k) + jc + pc, std::min(NR, nw - pc), e_pack + pc * kn + k * NR);
      const PanelB<T> e_panels{e_pack, kn};
      for (int64_t ic = m0; ic < m1; ic += kPackM) {
        const int64_t mw = std::min(kPackM, m1 - ic);
        for (int64_t k = 0; k < kn; ++k) drow[k] = D(kc + k) + ic;
        for (int64_t mb = 0; mb < mw; mb += kTileRows) {  // tile by tile: sequential writes
          const int64_t mr = std::min<int64_t>(kTileRows, mw - mb);
          T* tile = d_pack + mb * kn;
          for (int64_t k = 0; k < kn; ++k) {
            if (mr == kTileRows)  // a fixed-size copy: no call per six elements
              std::memcpy(tile + k * kTileRows, drow[k] + mb, sizeof(T) * kTileRows);
            else
              copy_n(drow[k] + mb, mr, tile + k * kTileRows);
          }
        }
        for (int64_t mb = 0; mb < mw; mb += kTileRows) {
          const int64_t mr = std::min<int64_t>(kTileRows, mw - mb);
          const T* tile = d_pack + mb * kn;
          T* crow[kTileRows];
          for (int64_t mm = 0; mm < mr; ++mm) crow[mm] = C + (ic + mb + mm) * ldc + jc;
          gemm_block<T>(
              mr, nw, kn, [&](int64_t mm, int64_t k) { return tile[k * kTileRows + mm]; },
              [&](int64_t k, int64_t n) { return e_panels.at(k, n); }, crow, accumulate || kc > 0);
        }
      }
    }
  }
}

// C[m, n] (= or +=) sum_k D[k, m] * E[k, n] for m in [m0, m1), n in [0, N): the weight
// gradient shape (Dᵀ·E over T·B rows). D(k) and E(k) point at row k (a Rows, or any
// callable: rows gathered through a table). C is row-major with leading dimension ldc. Every
// element adds its k terms in order (each k chunk resumes from the partial sums in C), so
// the two paths agree bit for bit. Packing pays where each packed D element feeds enough
// FMAs (N) and the rows are many; at N = 128 only over long sums (the measurements behind
// these bounds are in docs/design.md, "Measurements").
template <typename T, typename DRows, typename ERows>
void gemm_tn(int64_t m0, int64_t m1, int64_t N, int64_t K, const DRows& D, const ERows& E, T* C,
             int64_t ldc, bool accumulate) {
  if (m1 - m0 >= 256 && (N >= 256 || (N >= 128 && K >= 4096)))
    gemm_tn_packed<T>(m0, m1, N, K, D, E, C, ldc, accumulate);
  else
    gemm_tn_in_place<T>(m0, m1, N, K, D, E, C, ldc, accumulate);
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
