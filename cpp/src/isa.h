// The per-instruction-set builds of the kernels (see kernel_ns.h) and their one dispatch
// table: each build fills a KernelTable with its own functions (kernel_table.cpp), and
// runtime.cpp picks one table, once, for the whole process.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rnncore/layer.h"

namespace rnncore {

// The entry points of one build for one element type.
template <typename T>
struct TypedKernels {
  void (*layer_forward)(Cell cell, const Dims& d, const ForwardArgs<T>& a);
  void (*layer_backward)(Cell cell, const Dims& d, const BackwardArgs<T>& a);
  void (*stream_step)(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a);
  int64_t (*packed_weight_elems)(int64_t N, int64_t K);
  void (*pack_weights)(const T* w, int64_t N, int64_t K, T* out);
  void (*dense_forward)(int64_t rows, int64_t K, int64_t N, const T* x, const T* w_packed,
                        const T* bias, T* y);
};

// Everything one instruction-set build provides.
struct KernelTable {
  TypedKernels<float> f32;
  TypedKernels<double> f64;
  size_t (*training_workspace_size)(Cell cell, const Dims& d);
  double (*fma_peak_gflops)(int threads);
  size_t (*release_thread_blocks)();

  template <typename T>
  const TypedKernels<T>& typed() const;
};

template <>
inline const TypedKernels<float>& KernelTable::typed<float>() const {
  return f32;
}
template <>
inline const TypedKernels<double>& KernelTable::typed<double>() const {
  return f64;
}

// Declarations of one build's functions (defined in its kernel units) and its table.
#define RNNCORE_DECLARE_KERNELS(ns)                                                     \
  namespace ns {                                                                        \
  template <typename T>                                                                 \
  void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a);                \
  template <typename T>                                                                 \
  void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a);              \
  template <typename T>                                                                 \
  void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a);   \
  template <typename T>                                                                 \
  int64_t packed_weight_elems(int64_t N, int64_t K);                                    \
  template <typename T>                                                                 \
  void pack_weights(const T* w, int64_t N, int64_t K, T* out);                          \
  template <typename T>                                                                 \
  void dense_forward(int64_t rows, int64_t K, int64_t N, const T* x, const T* w_packed, \
                     const T* bias, T* y);                                              \
  size_t training_workspace_size(Cell cell, const Dims& d);                             \
  double fma_peak_gflops(int threads);                                                  \
  size_t release_thread_blocks();                                                       \
  const KernelTable& kernel_table();                                                    \
  }

RNNCORE_DECLARE_KERNELS(generic)
#ifdef RNNCORE_X86_ISAS
RNNCORE_DECLARE_KERNELS(avx2)
RNNCORE_DECLARE_KERNELS(avx512)
#endif

}  // namespace rnncore
