// Activations and LayerNormalization rows (row_ops.h), compiled once for every instruction
// set: scalar code whose bits are the same whichever kernel build is active.
#include "rnncore/row_ops.h"

#include <algorithm>
#include <cmath>

namespace rnncore {

namespace {

template <typename T, typename F>
void each(T* a, int64_t total, F f) {
  for (int64_t i = 0; i < total; ++i) a[i] = f(a[i]);
}

template <typename T>
void softmax_rows(T* a, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = a + r * n;
    const T top = *std::max_element(row, row + n);  // exp never overflows
    T sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - top);
    for (int64_t j = 0; j < n; ++j) row[j] /= sum;
  }
}

}  // namespace

template <typename T>
void apply_activation(Activation act, T* a, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  switch (act) {
    case Activation::Linear: return;
    case Activation::Relu: return each(a, total, [](T v) { return std::max(v, T(0)); });
    case Activation::Tanh: return each(a, total, [](T v) { return std::tanh(v); });
    case Activation::Sigmoid:  // through tanh: no overflow for large |v|
      return each(a, total, [](T v) { return T(0.5) * (std::tanh(T(0.5) * v) + T(1)); });
    case Activation::Softplus:  // log(1 + e^v) without overflow
      return each(a, total,
                  [](T v) { return std::max(v, T(0)) + std::log1p(std::exp(-std::fabs(v))); });
    case Activation::Elu: return each(a, total, [](T v) { return v > 0 ? v : std::expm1(v); });
    case Activation::Softmax: return softmax_rows(a, rows, n);
  }
}

template <typename T>
void layer_norm_rows(const T* x, int64_t rows, int64_t n, const T* gamma, const T* beta, T epsilon,
                     T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* v = x + r * n;
    T* out = y + r * n;
    T mean = 0, var = 0;
    for (int64_t j = 0; j < n; ++j) mean += v[j];
    mean /= T(n);
    for (int64_t j = 0; j < n; ++j) var += (v[j] - mean) * (v[j] - mean);
    var /= T(n);
    const T inv = T(1) / std::sqrt(var + epsilon);
    for (int64_t j = 0; j < n; ++j) {
      T u = (v[j] - mean) * inv;
      if (gamma) u *= gamma[j];
      if (beta) u += beta[j];
      out[j] = u;
    }
  }
}

template void apply_activation<float>(Activation, float*, int64_t, int64_t);
template void apply_activation<double>(Activation, double*, int64_t, int64_t);
template void layer_norm_rows<float>(const float*, int64_t, int64_t, const float*, const float*,
                                     float, float*);
template void layer_norm_rows<double>(const double*, int64_t, int64_t, const double*, const double*,
                                      double, double*);

}  // namespace rnncore
