// Process-wide settings (threads, instruction set) and the public entry points, which forward
// to the kernel build chosen for this CPU.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "rnncore/layer.h"
#include "rnncore/row_ops.h"

namespace rnncore {

namespace {

std::atomic<int> g_num_threads{0};  // 0: not set, use the CPUs this process may run on

bool cpu_has(Isa isa) {
#ifdef RNNCORE_X86_ISAS
  switch (isa) {
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("fma");
    case Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Generic: return true;
  }
  return false;
#else
  return isa == Isa::Generic;
#endif
}

Isa parse_isa(const std::string& name) {
  if (name == "avx512") return Isa::Avx512;
  if (name == "avx2") return Isa::Avx2;
  if (name == "generic") return Isa::Generic;
  throw std::invalid_argument("RNNCORE_ISA: expected avx512, avx2 or generic, got '" + name + "'");
}

// The best supported build, or the one RNNCORE_ISA names (refused if this CPU lacks it).
Isa choose_isa() {
  const char* forced = std::getenv("RNNCORE_ISA");
  if (forced && *forced) {
    const Isa isa = parse_isa(forced);
    if (!cpu_has(isa))
      throw std::invalid_argument(std::string("RNNCORE_ISA=") + forced +
                                  ": this CPU (or this build) does not support it");
    return isa;
  }
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (cpu_has(isa)) return isa;
  return Isa::Generic;
}

const Isa& selected() {
  static const Isa isa = choose_isa();
  return isa;
}

}  // namespace

Isa active_isa() {
  return selected();
}

bool isa_supported(Isa isa) {
  return cpu_has(isa);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

namespace {

// The chosen build's table; every entry point below goes through it.
const KernelTable& kernels() {
  static const KernelTable& table = []() -> const KernelTable& {
    switch (selected()) {
#ifdef RNNCORE_X86_ISAS
      case Isa::Avx512: return avx512::kernel_table();
      case Isa::Avx2: return avx2::kernel_table();
#endif
      default: return generic::kernel_table();
    }
  }();
  return table;
}

}  // namespace

template <typename T>
void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a) {
  kernels().typed<T>().layer_forward(cell, d, a);
}

template <typename T>
void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a) {
  kernels().typed<T>().layer_backward(cell, d, a);
}

template <typename T>
void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a) {
  kernels().typed<T>().stream_step(cell, B, I, H, a);
}

template <typename T>
int64_t packed_weight_elems(int64_t N, int64_t K) {
  return kernels().typed<T>().packed_weight_elems(N, K);
}

template <typename T>
void pack_weights(const T* w, int64_t N, int64_t K, T* out) {
  kernels().typed<T>().pack_weights(w, N, K, out);
}

template <typename T>
void dense_forward(int64_t rows, int64_t K, int64_t N, const T* x, const T* w_packed, const T* bias,
                   T* y) {
  kernels().typed<T>().dense_forward(rows, K, N, x, w_packed, bias, y);
}

double fma_peak_gflops(int threads) {
  return kernels().fma_peak_gflops(threads);
}

size_t training_workspace_size(Cell cell, const Dims& d) {
  return kernels().training_workspace_size(cell, d);
}

size_t release_thread_blocks() {
  return kernels().release_thread_blocks();
}

template void stream_step<float>(Cell, int64_t, int64_t, int64_t, const StepArgs<float>&);
template void stream_step<double>(Cell, int64_t, int64_t, int64_t, const StepArgs<double>&);
template int64_t packed_weight_elems<float>(int64_t, int64_t);
template int64_t packed_weight_elems<double>(int64_t, int64_t);
template void pack_weights<float>(const float*, int64_t, int64_t, float*);
template void pack_weights<double>(const double*, int64_t, int64_t, double*);
template void dense_forward<float>(int64_t, int64_t, int64_t, const float*, const float*,
                                   const float*, float*);
template void dense_forward<double>(int64_t, int64_t, int64_t, const double*, const double*,
                                    const double*, double*);
template void layer_forward<float>(Cell, const Dims&, const ForwardArgs<float>&);
template void layer_forward<double>(Cell, const Dims&, const ForwardArgs<double>&);
template void layer_backward<float>(Cell, const Dims&, const BackwardArgs<float>&);
template void layer_backward<double>(Cell, const Dims&, const BackwardArgs<double>&);

void set_num_threads(int n) {
  g_num_threads.store(std::max(1, n));
}

int get_num_threads() {
  const int n = g_num_threads.load();
  return n > 0 ? n : usable_cpus();
}

}  // namespace rnncore
