// Thread team helpers. Work is split over output elements (hidden units, rows, tiles),
// never over a reduction, so results are bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernel_ns.h"
#include "thread_pool.h"

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

// The rule for team size: a call's team has no more threads than
//  - rnncore::get_num_threads() (the user's setting) and the CPUs this process may run on
//    (more threads than CPUs only take turns, many times slower: docs/design.md),
//  - call_flops / kCallFlopsPerThread: each thread's share must repay starting and joining
//    the team (about 1 us while the workers spin, tens of us to wake sleeping ones),
//  - step_flops / kStepFlopsPerThread when the team meets at a barrier every step (hidden
//    units split over threads): below this a barrier costs more than it saves (measured).
// The pool may still run a call alone while its partners are descheduled (thread_pool.h).
// Work is split over outputs, never over a sum, so every choice gives the same bits.
constexpr double kCallFlopsPerThread = 128.0 * 1024.0;
constexpr double kStepFlopsPerThread = 32.0 * 1024.0;

// The first bound: the most threads any call may use now.
inline int team_limit() {
  return std::min(rnncore::get_num_threads(), usable_cpus());
}

inline int threads_for(double call_flops, double step_flops = HUGE_VAL) {
  const int most = team_limit();
  const double by_work =
      std::min(call_flops / kCallFlopsPerThread, step_flops / kStepFlopsPerThread);
  return by_work < most ? std::max(1, static_cast<int>(by_work)) : most;
}

// The barrier of the team the calling thread belongs to (set by run_team).
inline TeamBarrier*& current_barrier() {
  static thread_local TeamBarrier* barrier = nullptr;
  return barrier;
}

// Runs body(tid, nth) on a team of up to `nth` threads (thread_pool.h): one persistent
// region per call. The team may be smaller than asked (never larger), so bodies split
// their work by the nth they are given.
template <typename Body>
void run_team(int nth, Body&& body) {
  using Fn = std::remove_reference_t<Body>;
  if (nth <= 1) {
    body(0, 1);
    return;
  }
  run_on_team(
      nth,
      [](void* ctx, int tid, int team, TeamBarrier* barrier) {
        [[maybe_unused]] FlushDenormals flush;  // each team thread has its own floating-point mode
        struct Enter {  // this thread's barrier while in the team, restored however it leaves
          TeamBarrier* outer;
          explicit Enter(TeamBarrier* b) : outer(current_barrier()) { current_barrier() = b; }
          ~Enter() { current_barrier() = outer; }
        } enter(barrier);
        (*static_cast<Fn*>(ctx))(tid, team);
      },
      const_cast<void*>(static_cast<const void*>(&body)));
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
