// Process-wide settings (threads, instruction set) and the public entry points, which forward
// to the kernel build chosen for this CPU.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "rnncore/layer.h"

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

template <typename T>
void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::layer_forward<T>(cell, d, a);
    case Isa::Avx2: return avx2::layer_forward<T>(cell, d, a);
#endif
    default: return generic::layer_forward<T>(cell, d, a);
  }
}

template <typename T>
void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::layer_backward<T>(cell, d, a);
    case Isa::Avx2: return avx2::layer_backward<T>(cell, d, a);
#endif
    default: return generic::layer_backward<T>(cell, d, a);
  }
}

template <typename T>
void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::stream_step<T>(cell, B, I, H, a);
    case Isa::Avx2: return avx2::stream_step<T>(cell, B, I, H, a);
#endif
    default: return generic::stream_step<T>(cell, B, I, H, a);
  }
}

template <typename T>
int64_t packed_weight_elems(int64_t N, int64_t K) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::packed_weight_elems<T>(N, K);
    case Isa::Avx2: return avx2::packed_weight_elems<T>(N, K);
#endif
    default: return generic::packed_weight_elems<T>(N, K);
  }
}

template <typename T>
void pack_weights(const T* w, int64_t N, int64_t K, T* out) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::pack_weights<T>(w, N, K, out);
    case Isa::Avx2: return avx2::pack_weights<T>(w, N, K, out);
#endif
    default: return generic::pack_weights<T>(w, N, K, out);
  }
}

double fma_peak_gflops(int threads) {
  switch (selected()) {
#ifdef RNNCORE_X86_ISAS
    case Isa::Avx512: return avx512::fma_peak_gflops(threads);
    case Isa::Avx2: return avx2::fma_peak_gflops(threads);
#endif
    default: return generic::fma_peak_gflops(threads);
  }
}

template void stream_step<float>(Cell, int64_t, int64_t, int64_t, const StepArgs<float>&);
template void stream_step<double>(Cell, int64_t, int64_t, int64_t, const StepArgs<double>&);
template int64_t packed_weight_elems<float>(int64_t, int64_t);
template int64_t packed_weight_elems<double>(int64_t, int64_t);
template void pack_weights<float>(const float*, int64_t, int64_t, float*);
template void pack_weights<double>(const double*, int64_t, int64_t, double*);
template void layer_forward<float>(Cell, const Dims&, const ForwardArgs<float>&);
template void layer_forward<double>(Cell, const Dims&, const ForwardArgs<double>&);
template void layer_backward<float>(Cell, const Dims&, const BackwardArgs<float>&);
template void layer_backward<double>(Cell, const Dims&, const BackwardArgs<double>&);

size_t training_workspace_size(Cell cell, const Dims& d) {
  const int64_t TB = d.T * d.B, slot_elems = (d.T + 1) * d.B * d.H;
  const bool rnn = cell == Cell::RnnTanh || cell == Cell::RnnRelu;       // its gates are its states
  int64_t n = (rnn ? 0 : TB * gate_count(cell) * d.H) + slot_elems;      // gates + state slots
  if (cell == Cell::Lstm) n += slot_elems;                               // cell-state slots
  if (cell == Cell::Gru || cell == Cell::GruResetBefore) n += TB * d.H;  // GRU extra
  return static_cast<size_t>(n);
}

void set_num_threads(int n) {
  g_num_threads.store(std::max(1, n));
}

int get_num_threads() {
  const int n = g_num_threads.load();
  return n > 0 ? n : usable_cpus();
}

}  // namespace rnncore
