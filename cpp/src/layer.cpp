// The layer driver: input projection GEMM, the time loop (one persistent thread team, hidden
// units split across threads, a barrier per step), and the weight/input gradient GEMMs.
#include "rnncore/layer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "cells.h"
#include "gemm.h"
#include "threading.h"

namespace rnncore {

namespace {

std::atomic<int> g_num_threads{0};  // 0: not set yet, use the machine's cores

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
  bool is_lstm() const { return cell == Cell::Lstm; }
  bool is_gru() const { return cell == Cell::Gru || cell == Cell::GruResetBefore; }
};

// The training workspace, carved out of one slab.
template <typename T>
struct Workspace {
  T* gates = nullptr;   // [T, B, G*H] post-activation gates; dGx after backward
  T* hslots = nullptr;  // [T+1, B, H] hidden states (see Geometry::cur_slot)
  T* cslots = nullptr;  // [T+1, B, H] LSTM cell states
  T* extra = nullptr;   // [T, B, H] GRU: W_hn h + b_hn (reset_after) or r*h_prev (reset_before)
};

template <typename T>
Workspace<T> carve(const Geometry& g, T* slab) {
  const int64_t TB = g.d.T * g.d.B, slot_elems = (g.d.T + 1) * g.d.B * g.d.H;
  Workspace<T> ws;
  ws.gates = slab;
  ws.hslots = ws.gates + TB * g.GH;
  T* next = ws.hslots + slot_elems;
  if (g.is_lstm()) {
    ws.cslots = next;
    next += slot_elems;
  }
  if (g.is_gru()) ws.extra = next;
  return ws;
}

// out[k, n] = in[n, k] for in [N, K].
template <typename T>
std::vector<T> transposed(const T* in, int64_t N, int64_t K) {
  std::vector<T> out(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) out[k * N + n] = in[n * K + k];
  return out;
}

template <typename T>
void copy_or_zero(T* dst, const T* src, int64_t n) {
  if (src)
    std::memcpy(dst, src, sizeof(T) * n);
  else
    std::fill(dst, dst + n, T(0));
}

// gates[t*B + b, :] = x[t, b, :] · W_ihᵀ + b_ih for all T·B rows (one GEMM before the loop).
template <typename T>
void input_projection(const Geometry& g, const T* x, const T* w_ih, const T* b_ih, T* gates) {
  const Dims& d = g.d;
  const int64_t TB = d.T * d.B;
  const std::vector<T> w_ih_t = transposed(w_ih, g.GH, d.I);  // [I, G*H]
  for (int64_t r = 0; r < TB; ++r) copy_or_zero(gates + r * g.GH, b_ih, g.GH);
  const Rows<const T> x_rows = sequence_rows(x, d.T, d.B, d.I, d.batch_first);
  run_team(threads_for(2.0 * TB * g.GH * d.I), [&](int tid, int nth) {
    const auto [r0, r1] = share(TB, tid, nth);
    gemm_nn<T>(r0, r1, 0, g.GH, d.I, x_rows, w_ih_t.data(), g.GH, dense_rows(gates, g.GH), true);
  });
}

// Forward state that lives only during the loop.
template <typename T>
struct ForwardState {
  std::vector<T> h2;  // [2, B, H] h_prev / h_new, alternating by step parity
  std::vector<T> c;   // [B, H] LSTM cell state (updated in place, unit slices per thread)
  std::vector<T> hh;  // [B, G*H] recurrent projection of this step
  std::vector<T> rh;  // [B, H] GRU reset_before: r * h_prev
};

template <typename T>
void forward_row(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                 ForwardState<T>& st, T* gates, int64_t b, int64_t s, int64_t j0, int64_t j1,
                 const T* h_prev, T* h_new) {
  const int64_t H = g.d.H, B = g.d.B;
  const T* hh = st.hh.data() + b * g.GH;
  const int64_t t = g.time(b, s);
  T* grow = gates + (t * B + b) * g.GH;
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
  std::copy(h_new + j0, h_new + j1, y + j0);
  if (ws.hslots) std::copy(h_new + j0, h_new + j1, ws.hslots + (g.cur_slot(t) * B + b) * H + j0);
  if (ws.cslots) std::copy(c + j0, c + j1, ws.cslots + (g.cur_slot(t) * B + b) * H + j0);
}

template <typename T>
void forward_step(const Geometry& g, const ForwardArgs<T>& a, const Workspace<T>& ws,
                  ForwardState<T>& st, T* gates, const T* w_hh_t, int64_t s, int nth, int64_t j0,
                  int64_t j1) {
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  const T* hp = st.h2.data() + (s & 1) * B * H;  // [B, H]
  T* hn = st.h2.data() + ((s + 1) & 1) * B * H;  // [B, H]
  const Rows<T> hh_rows = dense_rows(st.hh.data(), GH);
  const bool rb = g.cell == Cell::GruResetBefore;
  // Recurrent projection of this thread's units, every gate (r, z only for reset_before).
  for (int64_t q = 0; q < (rb ? 2 : g.G); ++q)
    gemm_nn<T>(0, B, q * H + j0, q * H + j1, H, dense_rows(hp, H), w_hh_t, GH, hh_rows, false);
  if (rb) {
    for (int64_t b = 0; b < B; ++b) {
      if (!g.active(b, s)) continue;
      const int64_t t = g.time(b, s);
      T* rh = st.rh.data() + b * H;
      gru_rb_forward_phase1(H, j0, j1, gates + (t * B + b) * GH, st.hh.data() + b * GH, a.b_hh,
                            hp + b * H, rh);
      if (ws.extra) std::copy(rh + j0, rh + j1, ws.extra + (t * B + b) * H + j0);
    }
    team_barrier(nth);  // the n-gate GEMM reads every unit of r*h_prev
    gemm_nn<T>(0, B, 2 * H + j0, 2 * H + j1, H, dense_rows<const T>(st.rh.data(), H), w_hh_t, GH,
               hh_rows, false);
  }
  for (int64_t b = 0; b < B; ++b) {
    if (g.active(b, s))
      forward_row(g, a, ws, st, gates, b, s, j0, j1, hp + b * H, hn + b * H);
    else
      std::copy(hp + b * H + j0, hp + b * H + j1, hn + b * H + j0);  // padded: state carries
  }
}

}  // namespace

size_t training_workspace_size(Cell cell, const Dims& d) {
  const int64_t TB = d.T * d.B, slot_elems = (d.T + 1) * d.B * d.H;
  int64_t n = TB * gate_count(cell) * d.H + slot_elems;
  if (cell == Cell::Lstm) n += slot_elems;
  if (cell == Cell::Gru || cell == Cell::GruResetBefore) n += TB * d.H;
  return static_cast<size_t>(n);
}

template <typename T>
void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a) {
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, TB = d.T * d.B;
  Workspace<T> ws = a.workspace ? carve(g, a.workspace) : Workspace<T>{};
  std::vector<T> owned_gates;
  T* gates = ws.gates;  // [T, B, G*H]
  if (!gates) {
    owned_gates.resize(static_cast<size_t>(TB * g.GH));
    gates = owned_gates.data();
  }
  input_projection(g, a.x, a.w_ih, a.b_ih, gates);
  const std::vector<T> w_hh_t = transposed(a.w_hh, g.GH, H);  // [H, G*H]

  ForwardState<T> st;
  st.h2.assign(static_cast<size_t>(2 * B * H), T(0));
  st.c.assign(static_cast<size_t>(B * H), T(0));
  st.hh.assign(static_cast<size_t>(B * g.GH), T(0));
  st.rh.assign(static_cast<size_t>(B * H), T(0));
  copy_or_zero(st.h2.data(), a.h0, B * H);
  if (g.is_lstm()) copy_or_zero(st.c.data(), a.c0, B * H);
  if (a.lengths) std::fill(a.y, a.y + TB * H, T(0));  // padded steps output zeros
  if (a.workspace) {
    std::fill(ws.hslots, ws.hslots + (d.T + 1) * B * H, T(0));
    if (ws.cslots) std::fill(ws.cslots, ws.cslots + (d.T + 1) * B * H, T(0));
    // Padded rows are never written but meet zero gradients in backward's GEMMs (0 * NaN).
    if (ws.extra) std::fill(ws.extra, ws.extra + TB * H, T(0));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t slot = (g.first_prev_slot(b) * B + b) * H;
      std::copy(st.h2.begin() + b * H, st.h2.begin() + (b + 1) * H, ws.hslots + slot);
      if (ws.cslots) std::copy(st.c.begin() + b * H, st.c.begin() + (b + 1) * H, ws.cslots + slot);
    }
  }

  run_team(threads_for(2.0 * B * g.GH * H), [&](int tid, int nth) {
    const auto [j0, j1] = share(H, tid, nth);
    for (int64_t s = 0; s < g.steps; ++s) {
      forward_step(g, a, ws, st, gates, w_hh_t.data(), s, nth, j0, j1);
      team_barrier(nth);  // the next step's GEMM reads every unit of h
    }
  });

  std::copy(st.h2.begin() + (g.steps & 1) * B * H, st.h2.begin() + ((g.steps & 1) + 1) * B * H,
            a.h_n);
  if (g.is_lstm()) std::copy(st.c.begin(), st.c.end(), a.c_n);
}

namespace {

// Backward state that lives only during the loop.
template <typename T>
struct BackwardState {
  std::vector<T> dh;      // [B, H] gradient w.r.t. the state entering the current step
  std::vector<T> dc;      // [B, H] LSTM cell-state gradient carried backwards
  std::vector<T> dg2;     // [2, B, G*H] this step's recurrent-projection gradients (by parity)
  std::vector<T> dh_cur;  // [B, H] dh of this step (dh carry + dy)
  std::vector<T> direct;  // [B, H] part of dh_prev that bypasses W_hh (GRU)
  std::vector<T> drh;     // [B, H] GRU reset_before: d(r*h_prev)
  std::vector<T> rec;     // [B, H] dG·W_hh for this thread's units
};

template <typename T>
void backward_row_phase1(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                         BackwardState<T>& st, T* dgh, T* dg, int64_t b, int64_t s, int64_t j0,
                         int64_t j1) {
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  const int64_t t = g.time(b, s);
  T* dh = st.dh_cur.data() + b * H;
  const T* dy = a.dy ? a.dy + g.seq_offset(t, b, H) : nullptr;
  for (int64_t j = j0; j < j1; ++j) dh[j] = st.dh[b * H + j] + (dy ? dy[j] : T(0));
  T* grow = ws.gates + (t * B + b) * GH;
  T* dgrow = dg + b * GH;
  const T* h_prev = ws.hslots + (g.prev_slot(t) * B + b) * H;
  switch (g.cell) {
    case Cell::RnnTanh:
    case Cell::RnnRelu: rnn_backward_units(g.cell == Cell::RnnRelu, j0, j1, grow, dh, dgrow); break;
    case Cell::Lstm:
      lstm_backward_units(H, j0, j1, grow, ws.cslots + (g.cur_slot(t) * B + b) * H,
                          ws.cslots + (g.prev_slot(t) * B + b) * H, dh, st.dc.data() + b * H,
                          dgrow);
      break;
    case Cell::Gru:
      gru_backward_units(H, j0, j1, grow, ws.extra + (t * B + b) * H, h_prev, dh,
                         dgh + (t * B + b) * GH, dgrow, st.direct.data() + b * H);
      break;
    case Cell::GruResetBefore: gru_rb_backward_phase1(H, j0, j1, grow, h_prev, dh, dgrow); break;
  }
}

template <typename T>
void backward_step(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                   BackwardState<T>& st, T* dgh, int64_t s, int nth, int64_t j0, int64_t j1) {
  const int64_t H = g.d.H, B = g.d.B, GH = g.GH;
  T* dg = st.dg2.data() + (s & 1) * B * GH;  // [B, G*H]
  const Rows<T> rec_rows = dense_rows(st.rec.data(), H);
  for (int64_t b = 0; b < B; ++b)
    if (g.active(b, s)) backward_row_phase1(g, a, ws, st, dgh, dg, b, s, j0, j1);
  team_barrier(nth);  // the GEMMs below read every unit's gate gradients
  int64_t rec_gates = g.G;
  if (g.cell == Cell::GruResetBefore) {
    // d(r*h_prev) = dn · W_hn, then dr, then the r and z rows of W_hh.
    gemm_nn<T>(0, B, j0, j1, H, Rows<const T>{dg + 2 * H, 1, GH, 0}, a.w_hh + 2 * H * H, H,
               dense_rows(st.drh.data(), H), false);
    for (int64_t b = 0; b < B; ++b) {
      if (!g.active(b, s)) continue;
      const int64_t t = g.time(b, s);
      gru_rb_backward_phase2(H, j0, j1, ws.gates + (t * B + b) * GH,
                             ws.hslots + (g.prev_slot(t) * B + b) * H, st.dh_cur.data() + b * H,
                             st.drh.data() + b * H, dg + b * GH, st.direct.data() + b * H);
    }
    team_barrier(nth);
    rec_gates = 2;
  }
  gemm_nn<T>(0, B, j0, j1, rec_gates * H, dense_rows<const T>(dg, GH), a.w_hh, H, rec_rows, false);
  for (int64_t b = 0; b < B; ++b) {
    if (!g.active(b, s)) continue;  // padded: the carried gradient passes through unchanged
    T* dh = st.dh.data() + b * H;
    const T* rec = st.rec.data() + b * H;
    const T* direct = st.direct.data() + b * H;
    for (int64_t j = j0; j < j1; ++j) dh[j] = rec[j] + (g.is_gru() ? direct[j] : T(0));
  }
}

// dx, dW_ih, dW_hh, db_ih, db_hh from the stored per-step gate gradients: one GEMM each
// over all T·B rows, split across threads by output rows.
template <typename T>
void weight_and_input_gradients(const Geometry& g, const BackwardArgs<T>& a, const Workspace<T>& ws,
                                const T* dgh) {
  const Dims& d = g.d;
  const int64_t TB = d.T * d.B, GH = g.GH, H = d.H;
  const T* dgx = ws.gates;
  const Rows<const T> dgx_rows = dense_rows(dgx, GH), dgh_rows = dense_rows(dgh, GH);
  // State entering step t of row b, aligned with row t*B + b (see Geometry::prev_slot).
  const Rows<const T> hprev_rows = dense_rows<const T>(ws.hslots + (d.reverse ? d.B * H : 0), H);
  const bool rb = g.cell == Cell::GruResetBefore;
  const int64_t rz_rows = rb ? 2 * H : GH;
  run_team(threads_for(2.0 * TB * GH * (2 * d.I + H)), [&](int tid, int nth) {
    const auto [r0, r1] = share(TB, tid, nth);
    gemm_nn<T>(r0, r1, 0, d.I, GH, dgx_rows, a.w_ih, d.I,
               sequence_rows(a.dx, d.T, d.B, d.I, d.batch_first), false);
    const auto [m0, m1] = share(GH, tid, nth);
    gemm_tn<T>(m0, m1, d.I, TB, dgx_rows, sequence_rows(a.x, d.T, d.B, d.I, d.batch_first), a.dw_ih,
               d.I, false);
    gemm_tn<T>(m0, std::min(m1, rz_rows), H, TB, dgh_rows, hprev_rows, a.dw_hh, H, false);
    if (rb)  // the n rows of W_hh multiply r*h_prev, not h_prev
      gemm_tn<T>(std::max(m0, rz_rows), m1, H, TB, dgh_rows, dense_rows<const T>(ws.extra, H),
                 a.dw_hh, H, false);
    for (int64_t m = m0; m < m1; ++m) {
      if (a.db_ih) a.db_ih[m] = T(0);
      if (a.db_hh) a.db_hh[m] = T(0);
    }
    for (int64_t r = 0; r < TB; ++r)
      for (int64_t m = m0; m < m1; ++m) {
        if (a.db_ih) a.db_ih[m] += dgx[r * GH + m];
        if (a.db_hh) a.db_hh[m] += dgh[r * GH + m];
      }
  });
}

}  // namespace

template <typename T>
void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a) {
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, GH = g.GH;
  const Workspace<T> ws = carve(g, a.workspace);
  // Padded rows of the gate slab still hold the input projection; their gradient is zero.
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = g.length(b); t < d.T; ++t)
      std::fill(ws.gates + (t * B + b) * GH, ws.gates + (t * B + b + 1) * GH, T(0));
  // GRU reset_after's recurrent-projection gradient differs from dGx in the n gate.
  std::vector<T> owned_dgh;  // [T, B, G*H]
  T* dgh = ws.gates;
  if (cell == Cell::Gru) {
    owned_dgh.assign(static_cast<size_t>(d.T * B * GH), T(0));
    dgh = owned_dgh.data();
  }
  BackwardState<T> st;
  for (auto* v : {&st.dh, &st.dc, &st.dh_cur, &st.direct, &st.drh, &st.rec})
    v->assign(static_cast<size_t>(B * H), T(0));
  st.dg2.assign(static_cast<size_t>(2 * B * GH), T(0));
  copy_or_zero(st.dh.data(), a.dh_n, B * H);
  if (g.is_lstm()) copy_or_zero(st.dc.data(), a.dc_n, B * H);

  run_team(threads_for(4.0 * B * GH * H), [&](int tid, int nth) {
    const auto [j0, j1] = share(H, tid, nth);
    for (int64_t s = g.steps - 1; s >= 0; --s) backward_step(g, a, ws, st, dgh, s, nth, j0, j1);
  });

  weight_and_input_gradients(g, a, ws, dgh);
  std::copy(st.dh.begin(), st.dh.end(), a.dh0);
  if (g.is_lstm()) std::copy(st.dc.begin(), st.dc.end(), a.dc0);
}

void set_num_threads(int n) {
  g_num_threads.store(std::max(1, n));
}

int get_num_threads() {
  const int n = g_num_threads.load();
  if (n > 0) return n;
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

template void layer_forward<float>(Cell, const Dims&, const ForwardArgs<float>&);
template void layer_forward<double>(Cell, const Dims&, const ForwardArgs<double>&);
template void layer_backward<float>(Cell, const Dims&, const BackwardArgs<float>&);
template void layer_backward<double>(Cell, const Dims&, const BackwardArgs<double>&);

}  // namespace rnncore
