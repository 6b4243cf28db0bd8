// One streaming layer's packed weights and state, stepped without allocating: the one
// implementation behind Python's rnncore.Stream and the C API's model streams.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rnncore/layer.h"

namespace rnncore {

template <typename T>
class StreamState {
 public:
  // Weights in PyTorch's layout: w_ih [G*H, I], w_hh [G*H, H], biases [G*H] or nullptr.
  StreamState(Cell cell, int64_t B, int64_t I, int64_t H, const T* w_ih, const T* w_hh,
              const T* b_ih, const T* b_hh)
      : cell_(cell), B_(B), I_(I), H_(H) {
    const int64_t GH = gate_count(cell) * H;
    w_ih_p_ = packed(w_ih, GH, I);
    w_hh_p_ = packed(w_hh, GH, H);
    if (b_ih) b_ih_.assign(b_ih, b_ih + GH);
    if (b_hh) b_hh_.assign(b_hh, b_hh + GH);
    h_.assign(size_t(B * H), T(0));
    c_.assign(cell == Cell::Lstm ? size_t(B * H) : 0, T(0));
    gx_.assign(size_t(B * GH), T(0));
    gh_.assign(size_t(B * GH), T(0));
    rh_.assign(size_t(B * H), T(0));
  }

  // h (and c) advanced by one step of x [B, I].
  void step(const T* x) {
    StepArgs<T> a;
    a.x = x;
    a.w_ih_p = w_ih_p_.data();
    a.w_hh_p = w_hh_p_.data();
    a.b_ih = b_ih_.empty() ? nullptr : b_ih_.data();
    a.b_hh = b_hh_.empty() ? nullptr : b_hh_.data();
    a.h = h_.data();
    a.c = c_.empty() ? nullptr : c_.data();
    a.gx = gx_.data();
    a.gh = gh_.data();
    a.rh = rh_.data();
    stream_step<T>(cell_, B_, I_, H_, a);
  }

  void reset() {
    std::fill(h_.begin(), h_.end(), T(0));
    std::fill(c_.begin(), c_.end(), T(0));
  }

  std::vector<T>& h() { return h_; }  // [B, H]
  std::vector<T>& c() { return c_; }  // [B, H], empty unless LSTM
  int64_t batch() const { return B_; }
  int64_t input_size() const { return I_; }
  int64_t hidden_size() const { return H_; }

 private:
  static std::vector<T> packed(const T* w, int64_t rows, int64_t cols) {
    std::vector<T> out(size_t(packed_weight_elems<T>(rows, cols)), T(0));
    pack_weights<T>(w, rows, cols, out.data());
    return out;
  }

  Cell cell_;
  int64_t B_, I_, H_;
  std::vector<T> w_ih_p_, w_hh_p_;  // packed (pack_weights)
  std::vector<T> b_ih_, b_hh_;      // [G*H] or empty
  std::vector<T> h_, c_;            // [B, H] state (c_ empty unless LSTM)
  std::vector<T> gx_, gh_, rh_;     // [B, G*H], [B, G*H], [B, H] scratch
};

}  // namespace rnncore
