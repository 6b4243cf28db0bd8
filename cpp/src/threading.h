// Thread team helpers. Work is split over output elements (hidden units, rows, tiles),
// never over a reduction, so results are bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kernel_ns.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "rnncore/layer.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// Flushes denormal results to zero and reads denormal inputs as zero (MXCSR FTZ + DAZ) on
// this thread while in scope, then restores the caller's mode. Vanishing gradients and
// saturated gates drift into the denormal range, where every operation would cost ~100x.
class FlushDenormals {
 public:
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtz | kDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#if defined(__SSE__)
  static constexpr unsigned kFtz = 0x8000, kDaz = 0x0040;
  unsigned saved_;
#endif
};

// Threads worth using for `flops` of work: small problems stay on one thread,
// where a fork and a barrier per step would cost more than they save.
inline int threads_for(double flops) {
  constexpr double kFlopsPerThread = 32.0 * 1024.0;  // below this a barrier costs more (measured)
  const int by_work = static_cast<int>(std::max(1.0, flops / kFlopsPerThread));
  return std::max(1, std::min(rnncore::get_num_threads(), by_work));
}

// Runs body(tid, nth) on a team of up to `nth` threads (one persistent region).
template <typename Body>
void run_team(int nth, Body&& body) {
#ifdef _OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    {
      [[maybe_unused]] FlushDenormals flush;  // each team thread has its own floating-point mode
      body(omp_get_thread_num(), omp_get_num_threads());
    }
    return;
  }
#endif
  (void)nth;
  body(0, 1);
}

// Barrier of the team run_team started (orphaned directive); a no-op for one thread.
inline void team_barrier(int nth) {
#ifdef _OPENMP
  if (nth > 1) {
#pragma omp barrier
  }
#endif
  (void)nth;
}

// Contiguous share [begin, end) of n items for thread tid of nth.
// With align > 1 every boundary but n itself is a multiple of align (the vector width), so
// each hidden unit sits in the same vector lane, full or tail, for any thread count: the
// results cannot depend on how a compiler built the full-vector and tail paths.
inline std::pair<int64_t, int64_t> share_aligned(int64_t n, int tid, int nth, int64_t align) {
  auto begin = [&](int t) { return t == nth ? n : n * t / nth / align * align; };
  return {begin(tid), begin(tid + 1)};
}

inline std::pair<int64_t, int64_t> share(int64_t n, int tid, int nth) {
  return share_aligned(n, tid, nth, 1);
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
