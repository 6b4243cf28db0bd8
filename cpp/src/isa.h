// The per-instruction-set builds of the layer driver (see kernel_ns.h) and their selection.
#pragma once

#include "rnncore/layer.h"

#define RNNCORE_DECLARE_KERNELS(ns)                                                   \
  namespace ns {                                                                      \
  template <typename T>                                                               \
  void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a);              \
  template <typename T>                                                               \
  void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a);            \
  template <typename T>                                                               \
  void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a); \
  template <typename T>                                                               \
  int64_t packed_weight_elems(int64_t N, int64_t K);                                  \
  template <typename T>                                                               \
  void pack_weights(const T* w, int64_t N, int64_t K, T* out);                        \
  double fma_peak_gflops(int threads);                                                \
  }

namespace rnncore {
RNNCORE_DECLARE_KERNELS(generic)
#ifdef RNNCORE_X86_ISAS
RNNCORE_DECLARE_KERNELS(avx2)
RNNCORE_DECLARE_KERNELS(avx512)
#endif
}  // namespace rnncore
