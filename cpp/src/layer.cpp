// The layer driver: the time loop (one persistent thread team, batch rows or hidden units
// split across threads, see split_by_rows), which computes each block of steps' input
// projection just ahead of them (project_steps), and the weight/input gradient GEMMs.
// Weights reach every GEMM packed in column panels (pack.h).
#include "rnncore/layer.h"

#include <algorithm>

#include "buffer.h"
#include "cells.h"
#include "gemm.h"
#include "pack.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

namespace {

// Which time step row b handles at loop step s, and whether it is a real (unpadded) step.
struct Geometry {
  Cell cell;
  Dims d;
  int64_t G, GH;
  const int64_t* lengths;  // [B] or nullptr
  int64_t steps;           // loop steps: the longest length

  Geometry(Cell c, const Dims& dims, const int64_t* lens)
      : cell(c), d(dims), G(gate_count(c)), GH(G * dims.H), lengths(lens), steps(dims.T) {
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
  bool is_rnn() const { return cell == Cell::RnnTanh || cell == Cell::RnnRelu; }
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
// backward). Measured here: rows win in backward at every shape; in forward, with W_hh in
// packed panels, rows win up to W_hh of 1 MiB (LSTM H=256: 14.2 -> 12.5 ms, GRU 10.6 ->
// 9.5 ms at B=64, T=100) and tie at 3-4 MiB. Either way every thread needs full register
// tiles of rows.
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

// The training workspace, carved out of one slab.
template <typename T>
struct Workspace {
  T* gates = nullptr;   // [T, B, G*H] post-activation gates; dGx after backward. SimpleRNN has
                        // none: its activation is its state, and its dGx goes to the slots
                        // (see rnn_backward_loop)
  T* hslots = nullptr;  // [T+1, B, H] hidden states (see Geometry::cur_slot)
  T* cslots = nullptr;  // [T+1, B, H] LSTM cell states
  T* extra = nullptr;   // [T, B, H] GRU: W_hn h + b_hn (reset_after; dn*r after backward)
                        // or r*h_prev (reset_before)
};

template <typename T>
Workspace<T> carve(const Geometry& g, T* slab) {
  const int64_t TB = g.d.T * g.d.B, slot_elems = (g.d.T + 1) * g.d.B * g.d.H;
  Workspace<T> ws;
  if (!g.is_rnn()) {
    ws.gates = slab;
    slab += TB * g.GH;
  }
  ws.hslots = slab;
  T* next = ws.hslots + slot_elems;
  if (g.is_lstm()) {
    ws.cslots = next;
    next += slot_elems;
  }
  if (g.is_gru()) ws.extra = next;
  return ws;
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

// Forward state that lives only during the loop.
template <typename T>
struct ForwardState {
  Buffer<T> h2;         // [2, B, H] h_prev / h_new, alternating by step parity
  Buffer<T> c;          // [B, H] LSTM cell state (updated in place, unit slices per thread)
  Buffer<T> hh;         // [B, G*H] recurrent projection of this step
  Buffer<T> rh;         // [B, H] GRU reset_before: r * h_prev
  Buffer<T> hm2;        // [2, B, H] h * h_mask, by step parity like h2 (only with a mask)
  Buffer<T> b_hh_rows;  // [B, H] SimpleRNN without lengths: b_hh once per row (rnn_forward_rows)
  ForwardState(int64_t B, int64_t H, int64_t GH, bool masked, bool rnn_rows)
      : h2(2 * B * H),
        c(B * H),
        hh(B * GH),
        rh(B * H),
        hm2(masked ? 2 * B * H : 0),
        b_hh_rows(rnn_rows ? B * H : 0) {}
};

// Where the gates of row b at loop step s live: in training, the workspace slab [T, B, G*H]
// by time, which backward reads; in inference, a ring [S, B, G*H] of the current block of S
// steps (see projection_block), so they stay in cache from their projection to their step.
template <typename T>
struct GateRows {
  T* base;
  int64_t ring_steps;  // S, or 0 for the slab
  T* at(const Geometry& g, int64_t b, int64_t s) const {
    const int64_t slot = ring_steps ? s % ring_steps : g.time(b, s);
    return base + (slot * g.d.B + b) * g.GH;
  }
};

// Loop steps whose input projection one thread computes together, just before them: enough
// rows for a pass over W_ih to pay (it streams from L3, next to W_hh), few enough that their
// gates (B*G*H per step for the team) stay in cache until their step reads them. Medium LSTM
// here: 2 steps; batch 1: the whole sequence.
inline int64_t projection_block(const Geometry& g, size_t elem_bytes) {
  constexpr double kBlockBytes = 512.0 * 1024.0;
  const double step_bytes = static_cast<double>(g.d.B) * g.GH * elem_bytes;
  const auto steps = static_cast<int64_t>(kBlockBytes / std::max(1.0, step_bytes));
  return std::clamp<int64_t>(steps, 1, std::max<int64_t>(1, g.steps));
}

// gates = x · W_ihᵀ + b_ih for this thread's rows and units at loop steps [s0, s1). The
// active rows are gathered through tables (x_at/g_at: [S * rows] row pointers), since a
// reversed row with its own length meets its own time step.
template <typename T>
void project_steps(const Geometry& g, const ForwardArgs<T>& a, const GateRows<T>& gates,
                   const StepWeights<T>& w_ih, int64_t s0, int64_t s1, const Part& p,
                   const T** x_at, T** g_at) {
  int64_t n = 0;
  for (int64_t s = s0; s < s1; ++s)
    for (int64_t b = p.b0; b < p.b1; ++b) {
      if (!g.active(b, s)) continue;
      x_at[n] = a.x + g.seq_offset(g.time(b, s), b, g.d.I);
      g_at[n++] = gates.at(g, b, s);
    }
  const auto x_rows = [x_at](int64_t m) { return x_at[m]; };
  const auto gate_rows = [g_at](int64_t m) { return g_at[m]; };
  w_ih.multiply(0, n, x_rows, 0, g.GH, gate_rows, a.b_ih);
}

template <typename T>
void forward_row(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                 ForwardState<T>& st, const GateRows<T>& gates, int64_t b, int64_t s, int64_t j0,
                 int64_t j1, const T* h_prev, T* h_new) {
  const int64_t H = g.d.H, B = g.d.B;
  const T* hh = st.hh.data() + b * g.GH;
  const int64_t t = g.time(b, s);
  T* grow = gates.at(g, b, s);
  T* c = g.is_lstm() ? st.c.data() + b * H : nullptr;
  T* extra = ws.extra ? ws.extra + (t * B + b) * H : nullptr;
  switch (g.cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu:
      rnn_forward_units(g.cell == Cell::RnnRelu, j0, j1, grow, hh, a.b_hh, h_new);
      break;
    case Cell::Lstm: lstm_forward_units(H, j0, j1, grow, hh, a.b_hh, c, h_new); break;
    case Cell::Gru: {
      T* hn = extra ? extra : st.rh.data() + b * H;  // rh doubles as scratch for W_hn h + b_hn
      gru_forward_units(H, j0, j1, grow, hh, a.b_hh, h_prev, hn, h_new);
      break;
    }
    case Cell::GruResetBefore:
      gru_rb_forward_phase2(H, j0, j1, grow, hh + 2 * H, a.b_hh, h_prev, h_new);
      break;
  }
  T* y = a.y + g.seq_offset(t, b, H);
  copy_n(h_new + j0, j1 - j0, y + j0);
  if (ws.hslots) copy_n(h_new + j0, j1 - j0, ws.hslots + (g.cur_slot(t) * B + b) * H + j0);
  if (ws.cslots) copy_n(c + j0, j1 - j0, ws.cslots + (g.cur_slot(t) * B + b) * H + j0);
}

// SimpleRNN with every row running (no lengths) and whole rows on this thread: the rows'
// gates, recurrent products, states and their gradients are each one run of (b1 - b0) * H
// values, so the steps' elementwise parts take them in one pass, in full vectors but the
// last (rnn_forward_rows, rnn_backward_rows). Row by row, H = 20 took a partial vector and
// two copy calls per row, most of a step at B = 32. Elementwise math: the same bits.
inline bool rnn_whole_rows(const Geometry& g, const Part& p) {
  return g.is_rnn() && !g.lengths && p.j0 == 0 && p.j1 == g.d.H;
}

template <typename T>
void rnn_forward_rows(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                      ForwardState<T>& st, const GateRows<T>& gates, int64_t s, const Part& p,
                      T* hn) {
  const int64_t H = g.d.H, B = g.d.B, n = (p.b1 - p.b0) * H;
  const int64_t t = g.time(p.b0, s);  // the same for every row without lengths
  T* h = hn + p.b0 * H;               // [b1 - b0, H]
  rnn_forward_units(g.cell == Cell::RnnRelu, 0, n, gates.at(g, p.b0, s), st.hh.data() + p.b0 * H,
                    st.b_hh_rows.data() + p.b0 * H, h);
  if (g.d.batch_first)
    for (int64_t b = p.b0; b < p.b1; ++b) copy_n(hn + b * H, H, a.y + g.seq_offset(t, b, H));
  else
    copy_n(h, n, a.y + g.seq_offset(t, p.b0, H));
  if (ws.hslots) copy_n(h, n, ws.hslots + (g.cur_slot(t) * B + p.b0) * H);
}

template <typename T>
void forward_step(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                  ForwardState<T>& st, const GateRows<T>& gates, const StepWeights<T>& w_hh,
                  int64_t s, const Part& p, const ActiveRows& act) {
  const int64_t j0 = p.j0, j1 = p.j1;
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  const T* hp = st.h2.data() + (s & 1) * B * H;  // [B, H]
  T* hn = st.h2.data() + ((s + 1) & 1) * B * H;  // [B, H]
  // [B, H] what W_hh multiplies: h_prev, or h_prev * h_mask under recurrent dropout
  const T* hg = a.h_mask ? st.hm2.data() + (s & 1) * B * H : hp;
  const bool rb = g.cell == Cell::GruResetBefore;
  // Recurrent projection of this thread's units and running rows, every gate (r, z only for
  // reset_before).
  const int64_t running = act.count(s);
  const auto hh_rows = act.rows(st.hh.data(), GH);
  w_hh.multiply(0, running, act.rows(hg, H), 0, rb ? 2 * H : GH, hh_rows);
  if (rb) {
    for (int64_t b = p.b0; b < p.b1; ++b) {
      if (!g.active(b, s)) continue;
      const int64_t t = g.time(b, s);
      T* rh = st.rh.data() + b * H;
      gru_rb_forward_phase1(H, j0, j1, gates.at(g, b, s), st.hh.data() + b * GH, a.b_hh, hg + b * H,
                            rh);
      if (ws.extra) copy_n(rh + j0, j1 - j0, ws.extra + (t * B + b) * H + j0);
    }
    team_barrier(p.sync);  // the n-gate GEMM reads every unit of r*h_prev
    w_hh.multiply(0, running, act.rows<const T>(st.rh.data(), H), 2 * H, GH, hh_rows);
  }
  if (rnn_whole_rows(g, p)) {
    rnn_forward_rows(g, a, ws, st, gates, s, p, hn);
  } else {
    for (int64_t b = p.b0; b < p.b1; ++b) {
      if (g.active(b, s))
        forward_row(g, a, ws, st, gates, b, s, j0, j1, hp + b * H, hn + b * H);
      else
        copy_n(hp + b * H + j0, j1 - j0, hn + b * H + j0);  // padded: state carries
    }
  }
  if (a.h_mask) {  // the next step's GEMM input, this thread's units
    T* hm_next = st.hm2.data() + ((s + 1) & 1) * B * H;
    for (int64_t i = p.b0 * H; i < p.b1 * H; i += H)
      for (int64_t j = j0; j < j1; ++j) hm_next[i + j] = hn[i + j] * a.h_mask[i + j];
  }
}

// ---- Inference with batch rows across vector lanes ----
// Per row, the cell's epilogue runs on vectors of units: H = 20 takes a full and a partial
// vector of 16 lanes, and the partial one costs as much as a full one. When a thread owns a
// vector's worth of rows or more and H fills vectors worse than its rows would, it runs the
// loop on transposed state instead: [H, Bp] with one batch row per lane (Bp: the rows padded
// to whole vectors). Gate q of unit j and row b sits at (q*H + j)*Bp + b, so the cell functions
// see the thread's rows as one row of H*Bp units, every vector full. The products commute
// and each sum keeps its order (bias, then k), so the bits are the row-major path's.

// Fraction of the lanes that n values occupy in vectors of W.
inline double lane_use(int64_t n, int64_t W) {
  return static_cast<double>(n) / static_cast<double>((n + W - 1) / W * W);
}

template <typename T>
bool rows_in_lanes(const Geometry& g, const ForwardArgs<T>& a, const Part& p) {
  constexpr int64_t W = Simd<T>::W;
  // The transposed GEMMs broadcast from W_hh's rows: fine for a few hundred gate rows.
  constexpr int64_t kMaxH = 4 * W;
  const int64_t H = g.d.H, rows = p.b1 - p.b0;
  // Only a thread that meets no other at a step barrier (p.sync == 1) may leave the step
  // loop for this one. With units split, a thread can own all of them (H = 24 on two
  // threads: [0, 0) and [0, 24)); had it left, the other would wait for it at every step.
  const bool plain = !a.workspace && !a.lengths && !a.h_mask && p.sync == 1;
  return plain && H > 0 && H <= kMaxH && rows >= W && lane_use(rows, W) > lane_use(H, W);
}

// Transposed forward state of one thread's rows, carved from one block. Every lane of a row
// is written before it is read, but for the padding lanes (rows to Bp), which are zeroed so
// they hold finite values; lanes never mix, so those never reach an output.
template <typename T>
struct LaneState {
  int64_t Bp;
  Buffer<T> block;
  T* xT;    // [I, Bp] this step's inputs
  T* gT;    // [G*H, Bp] gates
  T* hhT;   // [G*H, Bp] recurrent projection
  T* bihT;  // [G*H, Bp] b_ih along the lanes (zeros without a bias)
  T* bhhT;  // [G*H, Bp] b_hh along the lanes
  T* h2T;   // [2, H, Bp] h_prev / h_new by step parity
  T* cT;    // [H, Bp] LSTM cell state
  T* auxT;  // [H, Bp] GRU: W_hn h + b_hn (reset_after) or r * h_prev (reset_before)
  LaneState(const Geometry& g, int64_t rows)
      : Bp((rows + Simd<T>::W - 1) / Simd<T>::W * Simd<T>::W),
        block(Bp * block_rows(g), Alloc::kReused) {
    for (int64_t m = 0; rows < Bp && m < block_rows(g); ++m)
      fill_zero(block.data() + m * Bp + rows, Bp - rows);
    T* next = block.data();
    auto take = [&](int64_t n) {
      T* p = next;
      next += n * Bp;
      return p;
    };
    xT = take(g.d.I);
    gT = take(g.GH);
    hhT = take(g.GH);
    bihT = take(g.GH);
    bhhT = take(g.GH);
    h2T = take(2 * g.d.H);
    cT = take(g.d.H);
    auxT = take(g.d.H);
  }
  static int64_t block_rows(const Geometry& g) { return g.d.I + 4 * g.GH + 4 * g.d.H; }
};

// vT[m * Bp + b] = v[m] for every lane b (v null: zeros).
template <typename T>
void broadcast_lanes(const T* v, int64_t n, int64_t Bp, T* vT) {
  for (int64_t m = 0; m < n; ++m)
    for (int64_t b = 0; b < Bp; ++b) vT[m * Bp + b] = v ? v[m] : T(0);
}

// One step on the transposed state: the projections, then the cell on all H*Bp units.
template <typename T>
void lane_step(const Geometry& g, const ForwardArgs<T>& a, LaneState<T>& st, const T* hp, T* hn) {
  const int64_t H = g.d.H, GH = g.GH, Bp = st.Bp, HB = H * Bp;
  const Rows<T> gate_rows = dense_rows(st.gT, Bp), hh_rows = dense_rows(st.hhT, Bp);
  const Rows<const T> w_hh = dense_rows(a.w_hh, H);
  copy_n(st.bihT, GH * Bp, st.gT);  // the sums start from b_ih
  gemm_nn<T>(0, GH, 0, Bp, g.d.I, dense_rows(a.w_ih, g.d.I), DenseB<T>{st.xT, Bp}, gate_rows, true);
  const bool rb = g.cell == Cell::GruResetBefore;
  gemm_nn<T>(0, rb ? 2 * H : GH, 0, Bp, H, w_hh, DenseB<T>{hp, Bp}, hh_rows, false);
  T *gates = st.gT, *hh = st.hhT, *aux = st.auxT;
  const T* b_hh = st.bhhT;
  switch (g.cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu:
      rnn_forward_units(g.cell == Cell::RnnRelu, 0, HB, gates, hh, b_hh, hn);
      break;
    case Cell::Lstm: lstm_forward_units(HB, 0, HB, gates, hh, b_hh, st.cT, hn); break;
    case Cell::Gru: gru_forward_units(HB, 0, HB, gates, hh, b_hh, hp, aux, hn); break;
    case Cell::GruResetBefore:
      gru_rb_forward_phase1(HB, 0, HB, gates, hh, b_hh, hp, aux);
      gemm_nn<T>(2 * H, GH, 0, Bp, H, w_hh, DenseB<T>{aux, Bp}, hh_rows, false);
      gru_rb_forward_phase2(HB, 0, HB, gates, hh + 2 * HB, b_hh, hp, hn);
      break;
  }
}

// The time loop for rows [p.b0, p.b1) on transposed state; the final h (and c) go to the
// row-major state's slots, where layer_forward collects every thread's rows.
template <typename T>
void forward_rows_in_lanes(const Geometry& g, const ForwardArgs<T>& a, ForwardState<T>& fs,
                           const Part& p) {
  const int64_t H = g.d.H, I = g.d.I, B = g.d.B, rows = p.b1 - p.b0;
  LaneState<T> st(g, rows);
  const int64_t Bp = st.Bp, HB = H * Bp;
  broadcast_lanes(a.b_ih, g.GH, Bp, st.bihT);
  broadcast_lanes(a.b_hh, g.GH, Bp, st.bhhT);
  auto lanes_of = [Bp](T* base) { return [base, Bp](int64_t m) { return base + m * Bp; }; };
  auto rows_of = [&](T* base, int64_t ld) {
    return [=](int64_t r) { return base + (p.b0 + r) * ld; };
  };
  transpose_copy<T>(rows, H, rows_of(fs.h2.data(), H), lanes_of(st.h2T));
  if (g.is_lstm()) transpose_copy<T>(rows, H, rows_of(fs.c.data(), H), lanes_of(st.cT));
  for (int64_t s = 0; s < g.steps; ++s) {
    const int64_t t = g.time(p.b0, s);  // no lengths: one time step for all rows
    const auto x_row = [&](int64_t r) { return a.x + g.seq_offset(t, p.b0 + r, I); };
    transpose_copy<T>(rows, I, x_row, lanes_of(st.xT));
    T* hp = st.h2T + (s & 1) * HB;
    T* hn = st.h2T + ((s + 1) & 1) * HB;
    lane_step(g, a, st, hp, hn);
    const auto y_row = [&](int64_t r) { return a.y + g.seq_offset(t, p.b0 + r, H); };
    transpose_copy<T>(H, rows, lanes_of(hn), y_row);
  }
  T* h_final = st.h2T + (g.steps & 1) * HB;
  transpose_copy<T>(H, rows, lanes_of(h_final), rows_of(fs.h2.data() + (g.steps & 1) * B * H, H));
  if (g.is_lstm()) transpose_copy<T>(H, rows, lanes_of(st.cT), rows_of(fs.c.data(), H));
}

}  // namespace

template <typename T>
void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a) {
  [[maybe_unused]] const FlushDenormals flush;
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, TB = d.T * d.B;
  Workspace<T> ws = a.workspace ? carve(g, a.workspace) : Workspace<T>{};
  const int64_t S = projection_block(g, sizeof(T));
  // [S, B, G*H] gates that need not be kept: inference's, and SimpleRNN's (its states)
  Buffer<T> ring(ws.gates ? 0 : S * B * g.GH, Alloc::kReused);
  const GateRows<T> gates = ws.gates ? GateRows<T>{ws.gates, 0} : GateRows<T>{ring.data(), S};

  const bool rnn_rows = g.is_rnn() && !g.lengths;  // rnn_whole_rows may hold on some thread
  ForwardState<T> st(B, H, g.GH, a.h_mask != nullptr, rnn_rows);
  Buffer<T> zero_bias(a.b_hh ? 0 : g.GH);  // [G*H]
  ForwardArgs<T> args = a;
  if (!a.b_hh) args.b_hh = zero_bias.data();
  for (int64_t b = 0; rnn_rows && b < B; ++b) copy_n(args.b_hh, H, st.b_hh_rows.data() + b * H);
  copy_or_zero(st.h2.data(), a.h0, B * H);
  if (g.is_lstm()) copy_or_zero(st.c.data(), a.c0, B * H);
  if (a.h_mask)
    for (int64_t i = 0; i < B * H; ++i) st.hm2.data()[i] = st.h2.data()[i] * a.h_mask[i];
  if (a.lengths) fill_zero(a.y, TB * H);  // padded steps output zeros
  if (a.workspace) {
    fill_zero(ws.hslots, (d.T + 1) * B * H);
    if (ws.cslots) fill_zero(ws.cslots, (d.T + 1) * B * H);
    // Padded rows are never written but meet zero gradients in backward's GEMMs (0 * NaN).
    if (ws.extra) fill_zero(ws.extra, TB * H);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t slot = (g.first_prev_slot(b) * B + b) * H;
      copy_n(st.h2.data() + b * H, H, ws.hslots + slot);
      if (ws.cslots) copy_n(st.c.data() + b * H, H, ws.cslots + slot);
    }
  }

  run_team(loop_threads(g, 2.0 * B * g.GH * (d.I + H), sizeof(T), false), [&](int tid, int nth) {
    const Part p = loop_part<T>(g, tid, nth, false);
    if (rows_in_lanes(g, args, p)) {
      forward_rows_in_lanes(g, args, st, p);
      return;
    }
    const StepWeights<T> w_ih(g, a.w_ih, d.I, p), w_hh(g, a.w_hh, H, p);
    const ActiveRows act(g, p);
    Buffer<const T*> x_at(S * (p.b1 - p.b0));  // projection row tables (see project_steps)
    Buffer<T*> g_at(S * (p.b1 - p.b0));
    for (int64_t s0 = 0; s0 < g.steps; s0 += S) {
      const int64_t s1 = std::min(g.steps, s0 + S);
      project_steps(g, args, gates, w_ih, s0, s1, p, x_at.data(), g_at.data());
      for (int64_t s = s0; s < s1; ++s) {
        forward_step(g, args, ws, st, gates, w_hh, s, p, act);
        team_barrier(p.sync);  // the next step's GEMM reads every unit of h
      }
    }
  });

  copy_n(st.h2.data() + (g.steps & 1) * B * H, B * H, a.h_n);
  if (g.is_lstm()) copy_n(st.c.data(), B * H, a.c_n);
}

namespace {

// Backward state that lives only during the loop.
template <typename T>
struct BackwardState {
  Buffer<T> dh;      // [B, H] gradient w.r.t. the state entering the current step
  Buffer<T> dc;      // [B, H] LSTM cell-state gradient carried backwards
  Buffer<T> dg2;     // [2, B, G*H] this step's recurrent-projection gradients (by parity)
  Buffer<T> dh_cur;  // [B, H] dh of this step (dh carry + dy)
  Buffer<T> direct;  // [B, H] part of dh_prev that bypasses W_hh (GRU)
  Buffer<T> drh;     // [B, H] GRU reset_before: d(r*h_prev)
  Buffer<T> rec;     // [B, H] dG·W_hh for this thread's units
  Buffer<T> ones;    // [B, H] stands in for h_mask without recurrent dropout
  const T* mask;     // [B, H] h_mask or ones
  BackwardState(int64_t B, int64_t H, int64_t GH, const T* h_mask)
      : dh(B * H),
        dc(B * H),
        dg2(2 * B * GH),
        dh_cur(B * H),
        direct(B * H),
        drh(B * H),
        rec(B * H),
        ones(h_mask ? 0 : B * H),
        mask(h_mask ? h_mask : ones.data()) {
    for (int64_t i = 0; !h_mask && i < B * H; ++i) ones.data()[i] = T(1);
  }
};

template <typename T>
void backward_row_phase1(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                         BackwardState<T>& st, T* dg, int64_t b, int64_t s, int64_t j0,
                         int64_t j1) {
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  const int64_t t = g.time(b, s);
  T* dh = st.dh_cur.data() + b * H;
  const T* dy = a.dy ? a.dy + g.seq_offset(t, b, H) : nullptr;
  for (int64_t j = j0; j < j1; ++j) dh[j] = st.dh.data()[b * H + j] + (dy ? dy[j] : T(0));
  T* grow = ws.gates ? ws.gates + (t * B + b) * GH : nullptr;
  T* dgrow = dg + b * GH;
  const T* h_prev = ws.hslots + (g.prev_slot(t) * B + b) * H;
  switch (g.cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu:
      rnn_backward_units(g.cell == Cell::RnnRelu, j0, j1, ws.hslots + (g.cur_slot(t) * B + b) * H,
                         dh, dgrow);
      break;
    case Cell::Lstm:
      lstm_backward_units(H, j0, j1, grow, ws.cslots + (g.cur_slot(t) * B + b) * H,
                          ws.cslots + (g.prev_slot(t) * B + b) * H, dh, st.dc.data() + b * H,
                          dgrow);
      break;
    case Cell::Gru:
      gru_backward_units(H, j0, j1, grow, ws.extra + (t * B + b) * H, h_prev, dh, dgrow,
                         st.direct.data() + b * H);
      break;
    case Cell::GruResetBefore: gru_rb_backward_phase1(H, j0, j1, grow, h_prev, dh, dgrow); break;
  }
}

// SimpleRNN's backward_row_phase1 for rows [b0, b1) at once (see rnn_whole_rows); dy is one
// run too unless batch_first.
template <typename T>
void rnn_backward_rows(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                       BackwardState<T>& st, T* dg, int64_t s, const Part& p) {
  const int64_t H = g.d.H, B = g.d.B, n = (p.b1 - p.b0) * H;
  const int64_t t = g.time(p.b0, s);
  T* dh = st.dh_cur.data() + p.b0 * H;         // [b1 - b0, H]
  const T* carried = st.dh.data() + p.b0 * H;  // [b1 - b0, H]
  if (!a.dy) {  // + 0 as in backward_row_phase1: a carried -0 becomes +0 there too
    for (int64_t i = 0; i < n; ++i) dh[i] = carried[i] + T(0);
  } else if (g.d.batch_first) {
    for (int64_t b = p.b0; b < p.b1; ++b) {
      const T* dy = a.dy + g.seq_offset(t, b, H);
      for (int64_t j = 0; j < H; ++j) dh[(b - p.b0) * H + j] = carried[(b - p.b0) * H + j] + dy[j];
    }
  } else {
    const T* dy = a.dy + g.seq_offset(t, p.b0, H);
    for (int64_t i = 0; i < n; ++i) dh[i] = carried[i] + dy[i];
  }
  rnn_backward_units(g.cell == Cell::RnnRelu, 0, n, ws.hslots + (g.cur_slot(t) * B + p.b0) * H, dh,
                     dg + p.b0 * H);
}

// Loop step s: this step's gate gradients go to dg [B, G*H] (its active rows), dh becomes
// the gradient entering the step.
template <typename T>
void backward_step(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                   BackwardState<T>& st, const PanelB<T>& w_hh, int64_t s, const Part& p,
                   const ActiveRows& act, T* dg) {
  const int64_t j0 = p.j0, j1 = p.j1;
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  const int64_t running = act.count(s);  // the GEMMs below run over these rows only
  const bool rnn_rows = rnn_whole_rows(g, p);
  if (rnn_rows)
    rnn_backward_rows(g, a, ws, st, dg, s, p);
  else
    for (int64_t b = p.b0; b < p.b1; ++b)
      if (g.active(b, s)) backward_row_phase1(g, a, ws, st, dg, b, s, j0, j1);
  team_barrier(p.sync);  // the GEMMs below read every unit's gate gradients
  int64_t rec_gates = g.G;
  if (g.cell == Cell::GruResetBefore) {
    // d(r*h_prev) = dn · W_hn, then dr, then the r and z rows of W_hh.
    const PanelB<T> w_hn{w_hh.data + 2 * H * PanelB<T>::kCols, w_hh.K};  // rows 2H.. of W_hh
    gemm_nn<T>(0, running, j0, j1, H, act.rows<const T>(dg + 2 * H, GH), w_hn,
               act.rows(st.drh.data(), H), false);
    for (int64_t b = p.b0; b < p.b1; ++b) {
      if (!g.active(b, s)) continue;
      const int64_t t = g.time(b, s);
      gru_rb_backward_phase2(H, j0, j1, ws.gates + (t * B + b) * GH,
                             ws.hslots + (g.prev_slot(t) * B + b) * H, st.mask + b * H,
                             st.dh_cur.data() + b * H, st.drh.data() + b * H, dg + b * GH,
                             st.direct.data() + b * H);
    }
    team_barrier(p.sync);
    rec_gates = 2;
  }
  gemm_nn<T>(0, running, j0, j1, rec_gates * H, act.rows<const T>(dg, GH), w_hh,
             act.rows(st.rec.data(), H), false);
  if (rnn_rows) {  // dh = rec * mask + 0 (as below) over the thread's rows in one run
    for (int64_t i = p.b0 * H; i < p.b1 * H; ++i)
      st.dh.data()[i] = st.rec.data()[i] * st.mask[i] + T(0);
    return;
  }
  for (int64_t b = p.b0; b < p.b1; ++b) {
    if (!g.active(b, s)) continue;  // padded: the carried gradient passes through unchanged
    T* dh = st.dh.data() + b * H;
    const T* rec = st.rec.data() + b * H;
    const T* direct = st.direct.data() + b * H;
    const T* m = st.mask + b * H;
    for (int64_t j = j0; j < j1; ++j) dh[j] = rec[j] * m[j] + (g.is_gru() ? direct[j] : T(0));
  }
}

// SimpleRNN keeps no gate slab: its activations are its states. Backward makes the gate
// gradients a chunk of steps at a time, adds the chunk's part of dW_hh = Σ dGxᵀ·(h_prev·mask)
// while those states are still in their slots, then moves the chunk's dGx into the slots of
// the states it came from (no later step reads them), where dW_ih and dx find it as [T, B, H]
// rows (gate_gradients). The slab it saves is the size of y: a training step's peak at
// B=64 T=100 went from 18.8 to 12.4 MiB (I=128 H=256) and from 40.3 to 28.8 (I=H=512).
template <typename T>
struct RnnChunk {
  int64_t steps;     // loop steps per chunk: about kBytes of gate gradients
  Buffer<T> dg;      // [steps, B, H] gate gradients of the chunk's steps
  Buffer<T> h_prev;  // [steps, B, H] the state each multiplied (masked; zero when padded)
  static constexpr int64_t kBytes = 1 << 20;
  RnnChunk(const Geometry& g, size_t elem_bytes)
      : steps(std::clamp<int64_t>(
            kBytes / std::max<int64_t>(1, g.d.B * g.d.H * static_cast<int64_t>(elem_bytes)), 1,
            std::max<int64_t>(1, g.steps))),
        dg(g.is_rnn() ? steps * g.d.B * g.d.H : 0, Alloc::kReused),
        h_prev(g.is_rnn() ? steps * g.d.B * g.d.H : 0, Alloc::kReused) {}
};

template <typename T>
void rnn_backward_loop(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                       BackwardState<T>& st, const PanelB<T>& w_hh, const Part& p,
                       const ActiveRows& act, int tid, int nth, RnnChunk<T>& chunk) {
  const int64_t B = g.d.B, H = g.d.H, j0 = p.j0, j1 = p.j1;
  // Without a mask or padding, dW_hh reads the states in their slots: loop step s of row b
  // multiplies slot prev_slot(t) = s (reversed: T - s), so a chunk's are [steps, B, H] rows.
  const bool in_slots = !a.h_mask && !g.lengths;
  for (int64_t s_hi = g.steps; s_hi > 0; s_hi -= chunk.steps) {
    const int64_t s_lo = std::max<int64_t>(0, s_hi - chunk.steps);
    for (int64_t s = s_hi - 1; s >= s_lo; --s) {
      T* dg = chunk.dg.data() + (s - s_lo) * B * H;      // [B, H]
      T* hp = chunk.h_prev.data() + (s - s_lo) * B * H;  // [B, H]
      for (int64_t b = p.b0; b < p.b1 && !in_slots; ++b) {
        if (g.active(b, s)) {
          const T* h = ws.hslots + (g.prev_slot(g.time(b, s)) * B + b) * H;
          for (int64_t j = j0; j < j1; ++j)
            hp[b * H + j] = a.h_mask ? h[j] * a.h_mask[b * H + j] : h[j];
        } else {  // padded: adds nothing to dW_hh, even where a state slot holds NaN
          fill_zero(hp + b * H + j0, j1 - j0);
          fill_zero(dg + b * H + j0, j1 - j0);
        }
      }
      backward_step(g, a, ws, st, w_hh, s, p, act, dg);
    }
    team_barrier(nth);  // every row and unit of the chunk
    const Rows<const T> h_rows =
        !in_slots     ? dense_rows<const T>(chunk.h_prev.data(), H)
        : g.d.reverse ? Rows<const T>{ws.hslots + (g.d.T - s_lo) * B * H, B, -B * H, H}
                      : dense_rows<const T>(ws.hslots + s_lo * B * H, H);
    const auto [m0, m1] = share(H, tid, nth);
    gemm_tn<T>(m0, m1, H, (s_hi - s_lo) * B, dense_rows<const T>(chunk.dg.data(), H), h_rows,
               a.dw_hh, H, s_hi < g.steps);
    team_barrier(nth);  // the chunk's buffers are free again
    for (int64_t s = s_lo; s < s_hi; ++s)
      for (int64_t b = p.b0; b < p.b1; ++b)
        if (g.active(b, s))
          copy_n(chunk.dg.data() + ((s - s_lo) * B + b) * H + j0, j1 - j0,
                 ws.hslots + (g.cur_slot(g.time(b, s)) * B + b) * H + j0);
  }
}

// [T, B, G*H] gate gradients after the loop: the gate slab, or SimpleRNN's state slots.
template <typename T>
T* gate_gradients(const Geometry& g, const Workspace<T>& ws) {
  if (ws.gates) return ws.gates;
  return ws.hslots + (g.d.reverse ? 0 : g.d.B * g.d.H);  // row t*B + b in slot cur_slot(t)
}

// out[m] = sum over rows r in order of in(r)[m], for the columns m in [m0, m1) of R rows.
template <typename T, typename InRows>
void column_sums(const InRows& in, int64_t R, int64_t m0, int64_t m1, T* out) {
  each_lanes<T>(m0, m1, [&](auto l) {
    Vec<T> sum{};
    for (int64_t r = 0; r < R; ++r) sum += l.ld(in(r));
    l.st(out, sum);
  });
}

// The rows t*B + b of real steps (t < length(b)), in order: the GEMMs and sums after the loop
// run over these only. A padded row's terms there are exact zeros, so leaving them out keeps
// every sum's bits: each adds its terms in order starting from +0, so it never holds -0, and
// x + (+-0) = x for every other x. (Nor can a NaN or Inf in a padded input reach them.)
class RealRows {
 public:
  explicit RealRows(const Geometry& g) : rows_(g.d.T * g.d.B) {
    for (int64_t t = 0; t < g.d.T; ++t)
      for (int64_t b = 0; b < g.d.B; ++b)
        if (t < g.length(b)) rows_.data()[n_++] = t * g.d.B + b;
  }
  int64_t size() const { return n_; }
  // Row m of the real rows, as a row of `rows` (which maps t*B + b to a pointer).
  template <typename R>
  auto of(const R& rows) const {
    return [rows, at = rows_.data()](int64_t m) { return rows(at[m]); };
  }

 private:
  Buffer<int64_t> rows_;  // [T*B] real rows first, n_ of them
  int64_t n_ = 0;
};

// dW_hh and db_hh rows [m0, m1), after db_ih's (see weight_and_input_gradients). The
// recurrent projection's gradient is dGx, multiplying h_prev, except in GRU's n gate (rows
// 2H..3H): reset_after's is dn * r, which backward left in `extra`; reset_before's n rows
// multiply r * h_prev, kept in `extra`.
template <typename T>
void recurrent_weight_gradients(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                                const RealRows& real, int64_t m0, int64_t m1) {
  const Dims& d = g.d;
  const int64_t GH = g.GH, H = d.H, R = real.size();
  const T* dgx = gate_gradients(g, ws);
  const auto dgx_rows = real.of(dense_rows(dgx, GH));
  // State entering step t of row b, aligned with row t*B + b (see Geometry::prev_slot).
  const auto hprev_rows = real.of(dense_rows<const T>(ws.hslots + (d.reverse ? d.B * H : 0), H));
  const int64_t n_row = g.is_gru() ? 2 * H : GH;  // the first row of GRU's n gate
  if (!g.is_rnn())  // SimpleRNN's dW_hh is made during the loop (rnn_backward_loop)
    gemm_tn<T>(m0, std::min(m1, n_row), H, R, dgx_rows, hprev_rows, a.dw_hh, H, false);
  if (a.db_hh && a.db_ih)  // the same sums as db_ih's over these rows, which this thread made
    copy_n(a.db_ih + m0, std::min(m1, n_row) - m0, a.db_hh + m0);
  else if (a.db_hh)
    column_sums(dgx_rows, R, m0, std::min(m1, n_row), a.db_hh);
  if (m1 <= n_row) return;
  const int64_t q0 = std::max(m0, n_row) - n_row, q1 = m1 - n_row;  // units of the n gate
  const bool rb = g.cell == Cell::GruResetBefore;
  const T* dn = rb ? dgx + n_row : ws.extra;  // [T*B, ld]
  const auto dn_rows = real.of(dense_rows(dn, rb ? GH : H));
  T* dw_n = a.dw_hh + n_row * H;
  if (rb)  // the n rows multiply r * h_prev
    gemm_tn<T>(q0, q1, H, R, dn_rows, real.of(dense_rows<const T>(ws.extra, H)), dw_n, H, false);
  else
    gemm_tn<T>(q0, q1, H, R, dn_rows, hprev_rows, dw_n, H, false);
  if (a.db_hh) column_sums(dn_rows, R, q0, q1, a.db_hh + n_row);
}

// dx, dW_ih, dW_hh, db_ih, db_hh from the stored per-step gate gradients: one GEMM each
// over the T·B rows of real steps, split across threads by output rows.
template <typename T>
void weight_and_input_gradients(const Geometry& g, const BackwardArgs<T>& a,
                                const Workspace<T>& ws) {
  const Dims& d = g.d;
  const int64_t GH = g.GH;
  const RealRows real(g);  // padded rows: dx is zeroed below, dW and db never see them
  const int64_t R = real.size();
  const auto dgx_rows = real.of(dense_rows(gate_gradients(g, ws), GH));
  const auto x_rows = real.of(sequence_rows(a.x, d.T, d.B, d.I, d.batch_first));
  const auto dx_rows = real.of(sequence_rows(a.dx, d.T, d.B, d.I, d.batch_first));
  Buffer<T> w_ih_p(PanelB<T>::elems(d.I, GH), Alloc::kReused);  // W_ih [G*H, I] in panels
  run_team(threads_for(2.0 * R * GH * (2 * d.I + d.H)), [&](int tid, int nth) {
    pack_share(d.I, GH, tid, nth, w_ih_p.data(), [&](int64_t c0, int64_t c1, T* out) {
      pack_dense_columns(a.w_ih, d.I, GH, c0, c1, out);
    });
    team_barrier(nth);  // dx's rows meet every panel
    const auto [r0, r1] = share(R, tid, nth);
    gemm_nn<T>(r0, r1, 0, d.I, GH, dgx_rows, PanelB<T>{w_ih_p.data(), GH}, dx_rows, false);
    const auto [m0, m1] = share(GH, tid, nth);
    gemm_tn<T>(m0, m1, d.I, R, dgx_rows, x_rows, a.dw_ih, d.I, false);
    if (a.db_ih) column_sums(dgx_rows, R, m0, m1, a.db_ih);
    recurrent_weight_gradients(g, a, ws, real, m0, m1);
  });
  // Padded steps did no work: their dx is zero, not 0 * W_ih.
  const Rows<T> dx_all = sequence_rows(a.dx, d.T, d.B, d.I, d.batch_first);
  g.each_padded([&](int64_t t, int64_t b) { fill_zero(dx_all(t * d.B + b), d.I); });
}

}  // namespace

template <typename T>
void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a) {
  [[maybe_unused]] const FlushDenormals flush;
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, GH = g.GH;
  const Workspace<T> ws = carve(g, a.workspace);
  // Padded rows of the gate slab were never written (no step ran there); their gradient is zero.
  if (ws.gates)
    g.each_padded([&](int64_t t, int64_t b) { fill_zero(ws.gates + (t * B + b) * GH, GH); });
  BackwardState<T> st(B, H, GH, a.h_mask);
  copy_or_zero(st.dh.data(), a.dh_n, B * H);
  if (g.is_lstm()) copy_or_zero(st.dc.data(), a.dc_n, B * H);

  Buffer<T> w_hh_p(PanelB<T>::elems(H, GH), Alloc::kReused);  // W_hh [G*H, H] in panels
  const PanelB<T> w_hh{w_hh_p.data(), GH};
  RnnChunk<T> chunk(g, sizeof(T));
  if (g.is_rnn() && g.steps == 0) fill_zero(a.dw_hh, GH * H);  // no chunk writes it
  run_team(loop_threads(g, 4.0 * B * GH * H, sizeof(T), true), [&](int tid, int nth) {
    pack_share(H, GH, tid, nth, w_hh_p.data(), [&](int64_t c0, int64_t c1, T* out) {
      pack_dense_columns(a.w_hh, H, GH, c0, c1, out);
    });
    team_barrier(nth);  // every thread reads every panel
    const Part p = loop_part<T>(g, tid, nth, true);
    const ActiveRows act(g, p);
    if (g.is_rnn()) {
      rnn_backward_loop(g, a, ws, st, w_hh, p, act, tid, nth, chunk);
      return;
    }
    for (int64_t s = g.steps - 1; s >= 0; --s)
      backward_step(g, a, ws, st, w_hh, s, p, act, st.dg2.data() + (s & 1) * B * GH);
  });

  if (g.is_rnn()) {  // padded rows of the gradients in the slots (reversed: one holds h0)
    g.each_padded(
        [&](int64_t t, int64_t b) { fill_zero(ws.hslots + (g.cur_slot(t) * B + b) * H, H); });
  } else {
    if (a.h_mask)  // dW_hh multiplies the masked states; the loop no longer needs plain ones
      for (int64_t slot = 0; slot <= d.T; ++slot)
        for (int64_t i = 0; i < B * H; ++i) ws.hslots[slot * B * H + i] *= a.h_mask[i];
    // Padded rows (t >= length) meet a zero gradient in dW_hh's GEMM; the state slot each
    // reads must be zero too, or a NaN/Inf there (the last state, an empty row's h0, a
    // masked zero times an Inf mask) would arrive as 0 * NaN.
    g.each_padded(
        [&](int64_t t, int64_t b) { fill_zero(ws.hslots + (g.prev_slot(t) * B + b) * H, H); });
  }
  weight_and_input_gradients(g, a, ws);
  copy_n(st.dh.data(), B * H, a.dh0);
  if (g.is_lstm()) copy_n(st.dc.data(), B * H, a.dc0);
}

template void layer_forward<float>(Cell, const Dims&, const ForwardArgs<float>&);
template void layer_forward<double>(Cell, const Dims&, const ForwardArgs<double>&);
template void layer_backward<float>(Cell, const Dims&, const BackwardArgs<float>&);
template void layer_backward<double>(Cell, const Dims&, const BackwardArgs<double>&);

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
