// What the layer driver's forward (layer_forward.cpp) and backward (layer_backward.cpp)
// share: the loop geometry (which step each row runs, how threads split the loop), the
// training workspace's layout, and the per-thread packed weights. Included only by kernel
// units, so everything here lives in the instruction set's namespace (kernel_ns.h).
#pragma once

#include <algorithm>

#include "buffer.h"
#include "cells.h"
#include "gemm.h"
#include "kernel_ns.h"
#include "pack.h"
#include "rnncore/layer.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// Which time step row b handles at loop step s, and whether it is a real (unpadded) step.
struct Geometry {
  Cell cell;
  Dims d;
  int64_t G, GH;
  const int64_t* lengths;  // [B] or nullptr
  int64_t steps;           // loop steps: the longest length

  Geometry(Cell c, const Dims& dims, const int64_t* lens)
      : cell(c),
        d(dims),
        G(gate_count(c)),
        GH(G * dims.H),
        lengths(lens),
        steps(dims.B ? dims.T : 0) {  // no rows: no steps, however long the sequence
    if (lengths) {
      steps = 0;
      for (int64_t b = 0; b < d.B; ++b) steps = std::max(steps, lengths[b]);
    }
  }
  int64_t length(int64_t b) const { return lengths ? lengths[b] : d.T; }
  bool active(int64_t b, int64_t s) const { return s < length(b); }
  // fn(t, b) for every padded step (t >= length(b)) of every row.
  template <typename Fn>
  void each_padded(Fn&& fn) const {
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t t = length(b); t < d.T; ++t) fn(t, b);
  }
  int64_t time(int64_t b, int64_t s) const { return d.reverse ? length(b) - 1 - s : s; }
  // Workspace state slots are [T+1, B, H]: the state after step t sits in slot cur_slot(t),
  // the one before it in prev_slot(t) (h0/c0 go to the first step's prev slot).
  int64_t cur_slot(int64_t t) const { return d.reverse ? t : t + 1; }
  int64_t prev_slot(int64_t t) const { return d.reverse ? t + 1 : t; }
  int64_t first_prev_slot(int64_t b) const { return d.reverse ? length(b) : 0; }
  // Offset of row (t, b) of a user-layout sequence with `width` columns.
  int64_t seq_offset(int64_t t, int64_t b, int64_t width) const {
    return (d.batch_first ? b * d.T + t : t * d.B + b) * width;
  }
  // SimpleRNN kinds: one gate block, which is also the state (no gate slab in training).
  bool is_rnn() const { return G == 1; }
  bool is_lstm() const { return cell == Cell::Lstm; }
  bool is_gru() const { return cell == Cell::Gru || cell == Cell::GruResetBefore; }
};

// One thread's part of the time loop: batch rows [b0, b1) x hidden units [j0, j1). `sync` is
// the number of threads sharing each step's state (the barrier width): all of them when
// units are split, none when batch rows are (rows never meet, so no barrier is needed).
struct Part {
  int64_t b0, b1, j0, j1;
  int sync;
};

// Splitting batch rows costs no barrier, but every thread streams all of W_hh each step;
// splitting units halves each thread's share of W_hh and pays a barrier per step (two in
// backward). Rows win in backward at every shape, and in forward while W_hh is small
// (docs/design.md, "Measurements"). Either way every thread needs full register tiles of rows.
inline bool split_by_rows(const Geometry& g, int nth, size_t elem_bytes, bool backward) {
  constexpr double kMaxForwardWhh = 1.5 * 1024.0 * 1024.0;  // bytes
  const double w_hh_bytes = static_cast<double>(g.GH) * g.d.H * elem_bytes;
  return nth > 1 && g.d.B >= 2 * kTileRows * nth && (backward || w_hh_bytes <= kMaxForwardWhh);
}

template <typename T>
Part loop_part(const Geometry& g, int tid, int nth, bool backward) {
  if (split_by_rows(g, nth, sizeof(T), backward)) {
    const auto [b0, b1] = share(g.d.B, tid, nth);
    return {b0, b1, 0, g.d.H, 1};
  }
  const auto [j0, j1] = share_aligned(g.d.H, tid, nth, Simd<T>::W);
  return {0, g.d.B, j0, j1, nth};
}

// A thread's rows [b0, b1) in order of decreasing length (a stable counting sort): the rows
// still running at loop step s are the first count(s), so each step's recurrent GEMMs run
// over real rows only, as packed sequences do, and padded steps cost nothing there. Rows
// never mix in a GEMM, so the results are the bits of a loop over every row.
class ActiveRows {
 public:
  ActiveRows(const Geometry& g, const Part& p)
      : order_(p.b1 - p.b0), running_(g.steps + 1), by_length_(g.d.T + 2) {
    const int64_t n = p.b1 - p.b0;
    int64_t* at = by_length_.data();  // [T+2] rows longer than each length, then positions
    for (int64_t b = p.b0; b < p.b1; ++b) ++at[g.d.T - g.length(b) + 1];
    for (int64_t L = 1; L <= g.d.T + 1; ++L) at[L] += at[L - 1];
    for (int64_t b = p.b0; b < p.b1; ++b) order_.data()[at[g.d.T - g.length(b)]++] = b;
    for (int64_t s = 0, m = n; s <= g.steps; ++s) {  // rows with length > s
      while (m > 0 && g.length(order_.data()[m - 1]) <= s) --m;
      running_.data()[s] = m;
    }
  }
  int64_t count(int64_t s) const { return running_.data()[s]; }
  // Row m of the order as a row of a [B, ld] matrix at base (a GEMM's A or C).
  template <typename P>
  auto rows(P* base, int64_t ld) const {
    const int64_t* order = order_.data();
    return [base, ld, order](int64_t m) { return base + order[m] * ld; };
  }

 private:
  Buffer<int64_t> order_;      // [b1 - b0] row indices, longest first
  Buffer<int64_t> running_;    // [steps + 1] rows still running at each loop step
  Buffer<int64_t> by_length_;  // [T + 2] counting-sort scratch
};

// Threads for a time loop of `step_flops` per step (threads_for's rule): split by rows
// (which already requires full register tiles for every thread), the team meets no barrier
// per step, so only the whole call's work bounds it.
inline int loop_threads(const Geometry& g, double step_flops, size_t elem_bytes, bool backward) {
  const double call_flops = step_flops * static_cast<double>(g.steps);
  return split_by_rows(g, team_limit(), elem_bytes, backward) ? threads_for(call_flops)
                                                              : threads_for(call_flops, step_flops);
}
// SimpleRNN with every row running (no lengths) and whole rows on this thread: the rows'
// gates, recurrent products, states and their gradients are each one run of (b1 - b0) * H
// values, so the steps' elementwise parts take them in one pass, in full vectors but the
// last (rnn_forward_rows, rnn_backward_rows). Row by row, H = 20 took a partial vector and
// two copy calls per row, most of a step at B = 32. Elementwise math: the same bits.
inline bool rnn_whole_rows(const Geometry& g, const Part& p) {
  return g.is_rnn() && !g.lengths && p.j0 == 0 && p.j1 == g.d.H;
}

// The training workspace forward keeps for backward: its parts as element offsets into one
// slab (-1: the cell has no such part) and its size. carve() and training_workspace_size()
// both read this one layout.
struct WorkspaceLayout {
  int64_t gates = -1;   // [T, B, G*H] post-activation gates; dGx after backward. SimpleRNN has
                        // none: its activation is its state, and its dGx goes to the slots
                        // (see rnn_backward_loop)
  int64_t hslots = 0;   // [T+1, B, H] hidden states (see Geometry::cur_slot)
  int64_t cslots = -1;  // [T+1, B, H] LSTM cell states
  int64_t extra = -1;   // [T, B, H] GRU: W_hn h + b_hn (reset_after; dn*r after backward)
                        // or r*h_prev (reset_before)
  int64_t total = 0;    // elements of the slab
};

inline WorkspaceLayout workspace_layout(Cell cell, const Dims& d) {
  const int64_t TB = d.T * d.B, slot_elems = (d.T + 1) * d.B * d.H;
  const bool rnn = gate_count(cell) == 1;  // SimpleRNN kinds: the gates are the states
  WorkspaceLayout w;
  int64_t next = 0;
  if (!rnn) {
    w.gates = next;
    next += TB * gate_count(cell) * d.H;
  }
  w.hslots = next;
  next += slot_elems;
  if (cell == Cell::Lstm) {
    w.cslots = next;
    next += slot_elems;
  }
  if (cell == Cell::Gru || cell == Cell::GruResetBefore) {
    w.extra = next;
    next += TB * d.H;
  }
  w.total = next;
  return w;
}

// The training workspace's parts as pointers into one slab (null: absent; see WorkspaceLayout).
template <typename T>
struct Workspace {
  T* gates = nullptr;
  T* hslots = nullptr;
  T* cslots = nullptr;
  T* extra = nullptr;
};

template <typename T>
Workspace<T> carve(const Geometry& g, T* slab) {
  const WorkspaceLayout w = workspace_layout(g.cell, g.d);
  auto part = [slab](int64_t offset) { return offset < 0 ? nullptr : slab + offset; };
  return Workspace<T>{part(w.gates), part(w.hslots), part(w.cslots), part(w.extra)};
}

template <typename T>
void copy_or_zero(T* dst, const T* src, int64_t n) {
  if (src)
    copy_n(src, n, dst);
  else
    fill_zero(dst, n);
}

// The weights one thread of the time loop multiplies by (W_ih [G*H, I] or W_hh [G*H, H]),
// packed by that thread before its loop: Wᵀ's columns for each gate block of its units (or
// all columns when it owns every unit), so the panels sit in the cache of the core that
// reads them every step.
template <typename T>
class StepWeights {
 public:
  struct Block {
    int64_t c0, c1;  // columns of Wᵀ (gate q, unit j at q*H + j)
    PanelB<T> b;
  };
  StepWeights(const Geometry& g, const T* w, int64_t K, const Part& p)
      : n_(plan(g, K, p)), panels_(panel_elems(), Alloc::kReused) {
    T* next = panels_.data();
    for (int i = 0; i < n_; ++i) {
      Block& blk = blocks_[i];
      pack_columns(w, K, blk.c0, blk.c1, next);
      blk.b = PanelB<T>{next, K};
      next += PanelB<T>::elems(blk.c1 - blk.c0, K);
    }
  }
  // C(m)[c] = bias[c] + A(m) · Wᵀ[:, c] (bias optional) for rows m in [m0, m1) and this
  // thread's columns in [lo, hi); A and C map a row to its pointer (see gemm_nn).
  template <typename AMat, typename CMat>
  void multiply(int64_t m0, int64_t m1, const AMat& A, int64_t lo, int64_t hi, const CMat& C,
                const T* bias = nullptr) const {
    for (int i = 0; i < n_; ++i) {
      const Block& blk = blocks_[i];
      if (blk.c0 < lo || blk.c1 > hi) continue;
      const auto c_at = [&](int64_t m) { return C(m) + blk.c0; };
      gemm_nn<T>(m0, m1, 0, blk.c1 - blk.c0, blk.b.K, A, blk.b, c_at, false,
                 bias ? bias + blk.c0 : nullptr);
    }
  }

 private:
  // Fills blocks_ with this thread's column ranges; returns how many.
  int plan(const Geometry& g, int64_t K, const Part& p) {
    const int64_t H = g.d.H;
    int n = 0;
    auto add = [&](int64_t c0, int64_t c1) {
      if (c1 > c0) blocks_[n++] = Block{c0, c1, PanelB<T>{nullptr, K}};
    };
    const bool rb = g.cell == Cell::GruResetBefore;
    if (p.j0 == 0 && p.j1 == H) {  // all units: one block, or r|z and n for reset_before
      add(0, rb ? 2 * H : g.GH);
      if (rb) add(2 * H, g.GH);
    } else {
      for (int64_t q = 0; q < g.G; ++q) add(q * H + p.j0, q * H + p.j1);
    }
    return n;
  }
  int64_t panel_elems() const {
    int64_t total = 0;
    for (int i = 0; i < n_; ++i)
      total += PanelB<T>::elems(blocks_[i].c1 - blocks_[i].c0, blocks_[i].b.K);
    return total;
  }

  Block blocks_[4];  // at most one per gate
  int n_;
  Buffer<T> panels_;
};

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
