// This instruction-set build's dispatch table (isa.h): its own instances of every entry point.
#include "isa.h"
#include "kernel_ns.h"

namespace rnncore {

RNNCORE_DECLARE_KERNELS(RNNCORE_KERNEL_NS)

namespace RNNCORE_KERNEL_NS {

namespace {

template <typename T>
constexpr TypedKernels<T> typed_kernels() {
  return {&layer_forward<T>, &layer_backward<T>, &stream_step<T>, &packed_weight_elems<T>,
          &pack_weights<T>};
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table{typed_kernels<float>(), typed_kernels<double>(),
                                 &training_workspace_size, &fma_peak_gflops};
  return table;
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
