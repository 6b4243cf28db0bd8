// Explicit vectors (GCC vector extensions) of this kernel build's width, and the lane runs
// the per-unit loops iterate over: full vectors, then one partial vector for the tail, so
// no unit ever falls back to scalar code (a scalar exp costs as much as a whole vector).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernel_ns.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// Vector width of this kernel build (kernel_ns.h): zmm, ymm or xmm.
#if defined(__AVX512F__)
#define RNNCORE_VEC_BYTES 64
#elif defined(__AVX2__)
#define RNNCORE_VEC_BYTES 32
#else
#define RNNCORE_VEC_BYTES 16
#endif

template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(RNNCORE_VEC_BYTES)));
  static constexpr int64_t W = RNNCORE_VEC_BYTES / sizeof(T);  // lanes
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(v)); }
  // Every lane s, bit for bit. A float V{} + s would turn -0 into +0 and keeps an add before
  // each broadcast (the compiler may not drop it); an integer + 0 is a plain broadcast, which
  // folds into the FMA's load.
  static V splat(T s) {
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I VI __attribute__((vector_size(RNNCORE_VEC_BYTES)));
    I bits;
    std::memcpy(&bits, &s, sizeof(bits));
    return (V)(VI{} + bits);
  }
  // The first n < W lanes; the rest load as zero and are not stored. Masked instructions
  // where the ISA has them (a memcpy of a variable length would be a library call).
  static V load_n(const T* p, int64_t n);
  static void store_n(T* p, V v, int64_t n);
};

#if defined(__AVX512F__)
inline __mmask16 lane_mask16(int64_t n) {
  return static_cast<__mmask16>((1u << n) - 1);
}
inline __mmask8 lane_mask8(int64_t n) {
  return static_cast<__mmask8>((1u << n) - 1);
}
template <>
inline Simd<float>::V Simd<float>::load_n(const float* p, int64_t n) {
  return (V)_mm512_maskz_loadu_ps(lane_mask16(n), p);
}
template <>
inline void Simd<float>::store_n(float* p, V v, int64_t n) {
  _mm512_mask_storeu_ps(p, lane_mask16(n), (__m512)v);
}
template <>
inline Simd<double>::V Simd<double>::load_n(const double* p, int64_t n) {
  return (V)_mm512_maskz_loadu_pd(lane_mask8(n), p);
}
template <>
inline void Simd<double>::store_n(double* p, V v, int64_t n) {
  _mm512_mask_storeu_pd(p, lane_mask8(n), (__m512d)v);
}
#elif defined(__AVX2__)
// Lane k is on when k < n (vmaskmov takes the mask from each lane's sign bit).
inline __m256i lane_mask32(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask64(int64_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
template <>
inline Simd<float>::V Simd<float>::load_n(const float* p, int64_t n) {
  return (V)_mm256_maskload_ps(p, lane_mask32(n));
}
template <>
inline void Simd<float>::store_n(float* p, V v, int64_t n) {
  _mm256_maskstore_ps(p, lane_mask32(n), (__m256)v);
}
template <>
inline Simd<double>::V Simd<double>::load_n(const double* p, int64_t n) {
  return (V)_mm256_maskload_pd(p, lane_mask64(n));
}
template <>
inline void Simd<double>::store_n(double* p, V v, int64_t n) {
  _mm256_maskstore_pd(p, lane_mask64(n), (__m256d)v);
}
#else
template <typename T>
inline typename Simd<T>::V Simd<T>::load_n(const T* p, int64_t n) {
  V v{};
  for (int64_t k = 0; k < n; ++k) v[k] = p[k];
  return v;
}
template <typename T>
inline void Simd<T>::store_n(T* p, V v, int64_t n) {
  for (int64_t k = 0; k < n; ++k) p[k] = v[k];
}
#endif

template <typename T>
using Vec = typename Simd<T>::V;

// a * b + c, rounded once where the ISA has fused multiply-add. The kernels build with
// -ffp-contract=off (CMakeLists.txt), so this is the only place a product and a sum fuse:
// an expression gives the same bits in a full vector and a partial tail, and on AVX2 and
// AVX-512 alike, instead of whatever the compiler chose to contract in each instance.
template <typename V>
inline V fmadd(V a, V b, V c) {
#if defined(__AVX512F__)
  if constexpr (sizeof(a[0]) == 4)
    return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
  else
    return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
  if constexpr (sizeof(a[0]) == 4)
    return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
  else
    return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;  // no FMA instruction: two roundings
#endif
}

// Units [j, j + n) as one vector: n == W (Full) or a partial tail whose unused lanes load
// as zero and are never stored.
template <typename T, bool Full>
struct Lanes {
  int64_t j;
  int64_t n;
  Vec<T> ld(const T* p) const {
    if constexpr (Full) return Simd<T>::load(p + j);
    return Simd<T>::load_n(p + j, n);
  }
  void st(T* p, Vec<T> v) const {
    if constexpr (Full)
      Simd<T>::store(p + j, v);
    else
      Simd<T>::store_n(p + j, v, n);
  }
};

// body(lanes) over [j0, j1) in runs of W units; body is a generic lambda taking Lanes.
template <typename T, typename Body>
inline void each_lanes(int64_t j0, int64_t j1, Body&& body) {
  constexpr int64_t W = Simd<T>::W;
  int64_t j = j0;
  for (; j + W <= j1; j += W) body(Lanes<T, true>{j, W});
  if (j < j1) body(Lanes<T, false>{j, j1 - j});
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
