// This instruction-set build's dispatch table (isa.h): its own instances of every entry point.
#include <atomic>

#include "buffer.h"
#include "isa.h"
#include "kernel_ns.h"
#include "threading.h"

namespace rnncore {

RNNCORE_DECLARE_KERNELS(RNNCORE_KERNEL_NS)

namespace RNNCORE_KERNEL_NS {

namespace {

template <typename T>
constexpr TypedKernels<T> typed_kernels() {
  return {&layer_forward<T>,       &layer_backward<T>, &stream_step<T>,
          &packed_weight_elems<T>, &pack_weights<T>,   &dense_forward<T>};
}

}  // namespace

// Frees the blocks the calling thread and its pool's workers keep (buffer.h), each on its own
// thread: a team of every worker asks each member to release its slots.
size_t release_thread_blocks() {
  std::atomic<size_t> freed{0};
  run_team(pool_workers() + 1, [&](int, int) {
    freed.fetch_add(thread_kept_blocks().release(), std::memory_order_relaxed);
  });
  return freed.load();
}

const KernelTable& kernel_table() {
  static const KernelTable table{typed_kernels<float>(), typed_kernels<double>(),
                                 &training_workspace_size, &fma_peak_gflops,
                                 &release_thread_blocks};
  return table;
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
