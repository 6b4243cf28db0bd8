// Activations on whole vectors for the kernel units. float uses branch-free approximations
// written on vectors; double, the gradient-checking type, applies libm lane by lane. NaN
// propagates through both.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernel_ns.h"
#include "simd.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

using VecF = Vec<float>;
using VecD = Vec<double>;
typedef int32_t VecI __attribute__((vector_size(RNNCORE_VEC_BYTES)));  // lanes of VecF

// exp(x) for float: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (two-part ln 2), p a
// degree-7 Taylor-like minimax polynomial (about 2 ulp). Inputs are clamped to [-87, 88] so
// that 2^n stays a normal float; outside that range the result is 0 or +Inf, as libm's
// would be near enough, so that sigmoid and tanh reach exactly 0 and 1 (and 0 * Inf is NaN
// in the kernels as in the NumPy reference).
inline VecF exp_approx(VecF x) {
  using S = Simd<float>;
  const VecF lo = S::splat(-87.0f), hi = S::splat(88.0f);
  // NaN compares false and lands on -87 (its result is replaced below): converting NaN to
  // an integer would be undefined behaviour.
  const VecF xc = x >= lo ? (x <= hi ? x : hi) : lo;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const VecF n = (xc * 1.44269504088896341f + shifter) - shifter;
  VecF r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  VecF p = S::splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const VecI bits = (__builtin_convertvector(n, VecI) + 127) << 23;
  const VecF e = p * (VecF)bits;  // (VecF) reinterprets the bits
  const VecF limited = x < lo ? S::splat(0.0f) : (x > hi ? S::splat(__builtin_inff()) : e);
  return x != x ? x : limited;
}

inline VecF sigmoid(VecF v) {
  return 1.0f / (1.0f + exp_approx(-v));
}

inline VecF tanh_act(VecF v) {
  const VecF zero{};
  const VecF a = v < zero ? -v : v;
  const VecF e = exp_approx(-2.0f * a);  // in (0, 1]
  const VecF t = (1.0f - e) / (1.0f + e);
  return v < zero ? -t : (v != v ? v : t);
}

template <typename F>
inline VecD each_lane(VecD v, F f) {
  for (int64_t k = 0; k < Simd<double>::W; ++k) v[k] = f(v[k]);
  return v;
}
inline VecD sigmoid(VecD v) {
  return each_lane(v, [](double s) { return 1.0 / (1.0 + std::exp(-s)); });
}
inline VecD tanh_act(VecD v) {
  return each_lane(v, [](double s) { return std::tanh(s); });
}

// max(v, 0) with NaN passing through, as torch's relu.
template <typename V>
inline V relu_act(V v) {
  const V zero{};
  return v < zero ? zero : v;
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
