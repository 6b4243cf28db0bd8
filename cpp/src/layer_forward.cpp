// The layer driver's forward: the time loop (one persistent thread team, batch rows or hidden
// units split across threads, see split_by_rows), which computes each block of steps' input
// projection just ahead of them (project_steps), and for small hidden sizes the loop with
// batch rows across vector lanes. Weights reach every GEMM packed in column panels (pack.h).
#include "layer_shared.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

namespace {

// Forward state that lives only during the loop.
template <typename T>
struct ForwardState {
  Buffer<T> h2;         // [2, B, H] h_prev / h_new, alternating by step parity
  Buffer<T> c;          // [B, H] LSTM cell state (updated in place, unit slices per thread)
  Buffer<T> hh;         // [B, G*H] recurrent projection of this step
  Buffer<T> rh;         // [B, H] GRU reset_before: r * h_prev
  Buffer<T> hm2;        // [2, B, H] h * recurrent_mask, by step parity like h2 (only with a mask)
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
// gates (B*G*H per step for the team) stay in cache until their step reads them (medium LSTM:
// 2 steps; batch 1: the whole sequence).
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
  // GRU's W_hn h + b_hn: kept for backward in training; rh doubles as scratch in inference
  T* aux = g.is_gru() ? (extra ? extra : st.rh.data() + b * H) : nullptr;
  forward_units(g.cell, H, j0, j1, grow, hh, a.b_hh, c, h_prev, aux, h_new);
  T* y = a.y + g.seq_offset(t, b, H);
  copy_n(h_new + j0, j1 - j0, y + j0);
  if (ws.hslots) copy_n(h_new + j0, j1 - j0, ws.hslots + (g.cur_slot(t) * B + b) * H + j0);
  if (ws.cslots) copy_n(c + j0, j1 - j0, ws.cslots + (g.cur_slot(t) * B + b) * H + j0);
}

template <typename T>
void rnn_forward_rows(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                      ForwardState<T>& st, const GateRows<T>& gates, int64_t s, const Part& p,
                      T* hn) {
  const int64_t H = g.d.H, B = g.d.B, n = (p.b1 - p.b0) * H;
  const int64_t t = g.time(p.b0, s);  // the same for every row without lengths
  T* h = hn + p.b0 * H;               // [b1 - b0, H]
  // The rows' units as one run of n (a SimpleRNN kind's epilogue is the same for every unit).
  forward_units<T>(g.cell, n, 0, n, gates.at(g, p.b0, s), st.hh.data() + p.b0 * H,
                   st.b_hh_rows.data() + p.b0 * H, nullptr, nullptr, nullptr, h);
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
  // [B, H] what W_hh multiplies: h_prev, or h_prev * recurrent_mask under recurrent dropout
  const T* hg = a.recurrent_mask ? st.hm2.data() + (s & 1) * B * H : hp;
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
  if (a.recurrent_mask) {  // the next step's GEMM input, this thread's units
    T* hm_next = st.hm2.data() + ((s + 1) & 1) * B * H;
    for (int64_t i = p.b0 * H; i < p.b1 * H; i += H)
      for (int64_t j = j0; j < j1; ++j) hm_next[i + j] = hn[i + j] * a.recurrent_mask[i + j];
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
  const bool plain = !a.workspace && !a.lengths && !a.recurrent_mask && p.sync == 1;
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
  if (rb) {  // r first, then the candidate's product (r ⊙ h)·W_hnᵀ into hh's n block
    gru_rb_forward_phase1(HB, 0, HB, gates, hh, b_hh, hp, aux);
    gemm_nn<T>(2 * H, GH, 0, Bp, H, w_hh, DenseB<T>{aux, Bp}, hh_rows, false);
  }
  forward_units(g.cell, HB, 0, HB, gates, hh, b_hh, st.cT, hp, aux, hn);
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
  if (d.B == 0) return;  // no rows: every output is empty, and no step runs (T may be huge)
  [[maybe_unused]] const FlushDenormals flush;
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, TB = d.T * d.B;
  Workspace<T> ws = a.workspace ? carve(g, a.workspace) : Workspace<T>{};
  const int64_t S = projection_block(g, sizeof(T));
  // [S, B, G*H] gates that need not be kept: inference's, and SimpleRNN's (its states)
  Buffer<T> ring(ws.gates ? 0 : S * B * g.GH, Alloc::kReused);
  const GateRows<T> gates = ws.gates ? GateRows<T>{ws.gates, 0} : GateRows<T>{ring.data(), S};

  const bool rnn_rows = g.is_rnn() && !g.lengths;  // rnn_whole_rows may hold on some thread
  ForwardState<T> st(B, H, g.GH, a.recurrent_mask != nullptr, rnn_rows);
  Buffer<T> zero_bias(a.b_hh ? 0 : g.GH);  // [G*H]
  ForwardArgs<T> args = a;
  if (!a.b_hh) args.b_hh = zero_bias.data();
  for (int64_t b = 0; rnn_rows && b < B; ++b) copy_n(args.b_hh, H, st.b_hh_rows.data() + b * H);
  copy_or_zero(st.h2.data(), a.h0, B * H);
  if (g.is_lstm()) copy_or_zero(st.c.data(), a.c0, B * H);
  if (a.recurrent_mask)
    for (int64_t i = 0; i < B * H; ++i) st.hm2.data()[i] = st.h2.data()[i] * a.recurrent_mask[i];
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

template void layer_forward<float>(Cell, const Dims&, const ForwardArgs<float>&);
template void layer_forward<double>(Cell, const Dims&, const ForwardArgs<double>&);

size_t training_workspace_size(Cell cell, const Dims& d) {
  return static_cast<size_t>(workspace_layout(cell, d).total);
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
