// Thread team helpers. Work is split over output elements (hidden units, rows, tiles),
// never over a reduction, so results are bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
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

// The per-step barrier of one team. libgomp's barrier took 0.2-0.3 us for two threads here,
// 35 us of a 420 us batch-1 LSTM sequence (100 steps); a counter and a generation number
// take one cache-line handoff each way (~0.04 us). Waiters spin a little, then yield the
// core, so a team with more threads than free cores still moves on.
class TeamBarrier {
 public:
  // Every team thread sets the size (all to the same value) before its first wait: the
  // team may be smaller than run_team asked for.
  void set_size(int n) { size_.store(n, std::memory_order_relaxed); }
  void wait() {
    const int64_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) ==
        size_.load(std::memory_order_relaxed) - 1) {
      arrived_.store(0, std::memory_order_relaxed);  // no one arrives before the release below
      generation_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins < kSpins)
        pause();
      else
        std::this_thread::yield();
    }
  }

 private:
  static constexpr int kSpins = 4096;  // pauses, tens of microseconds
  static void pause() {
#if defined(__SSE__)
    _mm_pause();
#endif
  }
  alignas(64) std::atomic<int> arrived_{0};
  std::atomic<int> size_{1};
  alignas(64) std::atomic<int64_t> generation_{0};
};

// The barrier of the team the calling thread belongs to (set by run_team).
inline TeamBarrier*& current_barrier() {
  static thread_local TeamBarrier* barrier = nullptr;
  return barrier;
}

// Runs body(tid, nth) on a team of up to `nth` threads (one persistent region).
template <typename Body>
void run_team(int nth, Body&& body) {
#ifdef _OPENMP
  if (nth > 1) {
    TeamBarrier barrier;
#pragma omp parallel num_threads(nth)
    {
      [[maybe_unused]] FlushDenormals flush;  // each team thread has its own floating-point mode
      barrier.set_size(omp_get_num_threads());
      TeamBarrier* const outer = current_barrier();
      current_barrier() = &barrier;
      body(omp_get_thread_num(), omp_get_num_threads());
      current_barrier() = outer;
    }
    return;
  }
#endif
  (void)nth;
  body(0, 1);
}

// Barrier of the team run_team started; a no-op for one thread.
inline void team_barrier(int nth) {
  if (nth > 1) current_barrier()->wait();
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
