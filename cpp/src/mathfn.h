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

// hi < x ? hi : x, then lo > that ? lo : it (a NaN x fails both tests and passes): what the
// min/max instructions compute, one each, where the compiler made a compare and a blend.
inline VecF clamp_keeping_nan(VecF x, VecF lo, VecF hi) {
#if defined(__AVX512F__)
  // (the all-lanes mask variants: GCC 12's plain intrinsics warn)
  const __m512 upper = _mm512_maskz_min_ps(0xFFFF, (__m512)hi, (__m512)x);
  return (VecF)_mm512_maskz_max_ps(0xFFFF, (__m512)lo, upper);
#elif defined(__AVX__)
  return (VecF)_mm256_max_ps((__m256)lo, _mm256_min_ps((__m256)hi, (__m256)x));
#else
  const VecF xc = hi < x ? hi : x;
  return lo > xc ? lo : xc;
#endif
}

// exp(x) for float: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (two-part ln 2), p a
// degree-7 Taylor-like polynomial (about 2 ulp). x is clamped to [-87, 88] so that 2^n stays
// a normal float: exp(-87) = 1.6e-38 and exp(88) = 1.7e38 stand in for 0 and Inf, which
// sigmoid and tanh turn into exactly 0 and 1 all the same (the kernels flush denormals, see
// FlushDenormals). NaN passes the clamp (the comparisons are false for it) and every step.
inline VecF exp_approx(VecF x) {
  using S = Simd<float>;
  const VecF xc = clamp_keeping_nan(x, S::splat(-87.0f), S::splat(88.0f));
#if defined(__AVX512F__)
  const VecF n = (VecF)_mm512_maskz_roundscale_ps(0xFFFF, (__m512)(xc * 1.44269504088896341f),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const VecF n = fmadd(xc, S::splat(1.44269504088896341f), S::splat(shifter)) - shifter;
#endif
  VecF r = fmadd(n, S::splat(-0.693359375f), xc);
  r = fmadd(n, S::splat(2.12194440e-4f), r);
  VecF p = S::splat(1.9875691500e-4f);
  p = fmadd(p, r, S::splat(1.3981999507e-3f));
  p = fmadd(p, r, S::splat(8.3334519073e-3f));
  p = fmadd(p, r, S::splat(4.1665795894e-2f));
  p = fmadd(p, r, S::splat(1.6666665459e-1f));
  p = fmadd(p, r, S::splat(5.0000001201e-1f));
  p = fmadd(p * r, r, r) + 1.0f;
#if defined(__AVX512F__)
  // p * 2^n in one instruction (the all-lanes mask variants: GCC 12's plain intrinsics warn)
  return (VecF)_mm512_maskz_scalef_ps(0xFFFF, (__m512)p, (__m512)n);
#else
  // 2^n built in the exponent bits; a NaN n becomes 0 first (converting NaN to an integer
  // is undefined), p is NaN then anyway.
  const VecI n_or_zero = (VecI)n & (VecI)(n == n);
  const VecI bits = (__builtin_convertvector((VecF)n_or_zero, VecI) + 127) << 23;
  return p * (VecF)bits;  // (VecF) reinterprets the bits
#endif
}

inline VecF sigmoid(VecF v) {
  return 1.0f / (1.0f + exp_approx(-v));
}

// tanh(|v|) = (1 - e) / (1 + e) with e = exp(-2|v|) in (0, 1], then v's sign bit: -0 stays -0
// and NaN stays NaN.
inline VecF tanh_act(VecF v) {
  const VecI sign = (VecI)Simd<float>::splat(-0.0f);
  const VecF e = exp_approx(-2.0f * (VecF)((VecI)v & ~sign));
  const VecF t = (1.0f - e) / (1.0f + e);
  return (VecF)((VecI)t | ((VecI)v & sign));
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
