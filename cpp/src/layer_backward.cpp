// The layer driver's backward: the reverse time loop making each step's gate gradients, then
// dx, dW and db as one GEMM each over the rows of real steps (weight_and_input_gradients).
#include "layer_shared.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

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
  Buffer<T> ones;    // [B, H] stands in for recurrent_mask without recurrent dropout
  const T* mask;     // [B, H] recurrent_mask or ones
  BackwardState(int64_t B, int64_t H, int64_t GH, const T* recurrent_mask)
      : dh(B * H),
        dc(B * H),
        dg2(2 * B * GH),
        dh_cur(B * H),
        direct(B * H),
        drh(B * H),
        rec(B * H),
        ones(recurrent_mask ? 0 : B * H),
        mask(recurrent_mask ? recurrent_mask : ones.data()) {
    for (int64_t i = 0; !recurrent_mask && i < B * H; ++i) ones.data()[i] = T(1);
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
  const int64_t cur = (g.cur_slot(t) * B + b) * H, prev = (g.prev_slot(t) * B + b) * H;
  const StepSlots<T> at{grow,
                        ws.hslots + cur,
                        h_prev,
                        ws.cslots ? ws.cslots + cur : nullptr,
                        ws.cslots ? ws.cslots + prev : nullptr,
                        ws.extra ? ws.extra + (t * B + b) * H : nullptr};
  backward_units(g.cell, H, j0, j1, at, dh, st.dc.data() + b * H, dgrow, st.direct.data() + b * H);
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
  const StepSlots<T> at{
      nullptr, ws.hslots + (g.cur_slot(t) * B + p.b0) * H, nullptr, nullptr, nullptr, nullptr};
  backward_units<T>(g.cell, n, 0, n, at, dh, nullptr, dg + p.b0 * H, nullptr);
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
  const bool in_slots = !a.recurrent_mask && !g.lengths;
  for (int64_t s_hi = g.steps; s_hi > 0; s_hi -= chunk.steps) {
    const int64_t s_lo = std::max<int64_t>(0, s_hi - chunk.steps);
    for (int64_t s = s_hi - 1; s >= s_lo; --s) {
      T* dg = chunk.dg.data() + (s - s_lo) * B * H;      // [B, H]
      T* hp = chunk.h_prev.data() + (s - s_lo) * B * H;  // [B, H]
      for (int64_t b = p.b0; b < p.b1 && !in_slots; ++b) {
        if (g.active(b, s)) {
          const T* h = ws.hslots + (g.prev_slot(g.time(b, s)) * B + b) * H;
          for (int64_t j = j0; j < j1; ++j)
            hp[b * H + j] = a.recurrent_mask ? h[j] * a.recurrent_mask[b * H + j] : h[j];
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
  if (d.B == 0) {  // no rows: zero weight gradients, every other output empty
    const int64_t GH = gate_count(cell) * d.H;
    fill_zero(a.dw_ih, GH * d.I);
    fill_zero(a.dw_hh, GH * d.H);
    if (a.db_ih) fill_zero(a.db_ih, GH);
    if (a.db_hh) fill_zero(a.db_hh, GH);
    return;
  }
  [[maybe_unused]] const FlushDenormals flush;
  const Geometry g(cell, d, a.lengths);
  const int64_t B = d.B, H = d.H, GH = g.GH;
  const Workspace<T> ws = carve(g, a.workspace);
  // Padded rows of the gate slab were never written (no step ran there); their gradient is zero.
  if (ws.gates)
    g.each_padded([&](int64_t t, int64_t b) { fill_zero(ws.gates + (t * B + b) * GH, GH); });
  BackwardState<T> st(B, H, GH, a.recurrent_mask);
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
    if (a.recurrent_mask)  // dW_hh multiplies the masked states; the loop no longer needs plain
                           // ones
      for (int64_t slot = 0; slot <= d.T; ++slot)
        for (int64_t i = 0; i < B * H; ++i) ws.hslots[slot * B * H + i] *= a.recurrent_mask[i];
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

template void layer_backward<float>(Cell, const Dims&, const BackwardArgs<float>&);
template void layer_backward<double>(Cell, const Dims&, const BackwardArgs<double>&);

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
