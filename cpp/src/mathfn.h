// Activations for the kernel units. float uses branch-free approximations that the compiler
// vectorises inside the per-unit loops (libm calls would keep them scalar); double, the
// gradient-checking type, uses libm. NaN propagates through both.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernel_ns.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// exp(x) for float: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (two-part ln 2), p a
// degree-7 Taylor-like minimax polynomial (about 2 ulp). Inputs are clamped to [-87, 88] so
// that 2^n stays a normal float; outside that range the result is 0 or +Inf, as libm's
// would be near enough, so that sigmoid and tanh reach exactly 0 and 1 (and 0 * Inf is NaN
// in the kernels as in the NumPy reference).
inline float exp_approx(float x) {
  // NaN compares false and lands on -87 (its result is replaced below): converting NaN to
  // an integer would be undefined behaviour.
  const float xc = x >= -87.0f ? (x <= 88.0f ? x : 88.0f) : -87.0f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float e = p * scale;
  const float limited = x < -87.0f ? 0.0f : (x > 88.0f ? __builtin_inff() : e);
  return x != x ? x : limited;
}

inline float sigmoid(float v) {
  return 1.0f / (1.0f + exp_approx(-v));
}

inline float tanh_act(float v) {
  const float a = v < 0.0f ? -v : v;
  const float e = exp_approx(-2.0f * a);  // in (0, 1]
  const float t = (1.0f - e) / (1.0f + e);
  return v < 0.0f ? -t : (v != v ? v : t);
}

inline double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}
inline double tanh_act(double v) {
  return std::tanh(v);
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
