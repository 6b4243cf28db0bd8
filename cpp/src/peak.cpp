// The machine's measured FMA peak for this instruction-set build: independent chains of
// multiply-adds held in registers, long enough that loads and loop overhead do not matter.
// The benchmark harness divides achieved GFLOP/s by it.
#include <chrono>
#include <mutex>

#include "rnncore/layer.h"
#include "simd.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

namespace {

// Ten vector registers of accumulators: enough chains to cover FMA latency on two ports.
constexpr int kAcc = 10;

float fma_chains(int64_t iters, float seed) {
  using S = Simd<float>;
  Vec<float> acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = S::splat(seed + 0.001f * static_cast<float>(j));
  const Vec<float> m = S::splat(0.999999f), a = S::splat(1e-6f);  // fixed point near 1
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < kAcc; ++j) acc[j] = fmadd(acc[j], m, a);
  }
  float sum = 0.0f;
  for (int j = 0; j < kAcc; ++j)
    for (int64_t k = 0; k < S::W; ++k) sum += acc[j][k];
  return sum;
}

}  // namespace

double fma_peak_gflops(int threads) {
  constexpr int64_t kIters = 1 << 20;
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {  // the best of 5: the first also starts the team
    volatile float sink = 0.0f;        // keeps the chains from being optimised away
    std::mutex sink_mu;
    int team = 1;
    const auto t0 = std::chrono::steady_clock::now();
    run_team(threads, [&](int tid, int nth) {
      const float s = fma_chains(kIters, 1.0f + 0.01f * static_cast<float>(tid));
      if (tid == 0) team = nth;
      const std::lock_guard<std::mutex> lock(sink_mu);
      sink = sink + s;
    });
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = 2.0 * kAcc * Simd<float>::W * static_cast<double>(kIters) * team;
    if (flops / secs > best) best = flops / secs;
  }
  return best / 1e9;
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
