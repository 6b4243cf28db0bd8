// rnncore's own thread teams (compiled once, with the baseline flags: thread_pool.cpp).
//
// Why not OpenMP: libgomp's pool does not survive fork (a child hangs on its first parallel
// region), its idle threads spin for milliseconds after each region (stealing a busy core
// from the caller's Python), an exception inside a region calls std::terminate, and its
// barrier cannot tell that a partner was descheduled. Here:
//  - each calling thread owns its workers (concurrent callers never share a team);
//  - a child made by fork() starts a fresh pool on its first call (pthread_atfork);
//  - waits spin briefly, then sleep on a futex, so a descheduled partner costs no CPU;
//  - an exception on any team thread releases the others and is rethrown to the caller;
//  - a team never has more threads than this process may run on at once (its CPU affinity),
//    and a calling thread whose teams keep waiting for a late partner (a busy core) runs
//    alone for a while, then tries its team again (see TeamPolicy in thread_pool.cpp).
// Work is always split over outputs, so results do not depend on the team size chosen.
#pragma once

#include <atomic>
#include <cstdint>

#include "rnncore/layer.h"  // usable_cpus, pool_workers

namespace rnncore {

// Thrown out of TeamBarrier::wait when another thread of the team failed; run_on_team
// catches it and rethrows the failing thread's own exception in the caller.
struct TeamAborted {};

// The per-step barrier of one team: a counter and a generation number (one cache-line
// handoff each way when both threads are running).
class TeamBarrier {
 public:
  explicit TeamBarrier(int size) : size_(size) {}
  TeamBarrier(const TeamBarrier&) = delete;
  TeamBarrier& operator=(const TeamBarrier&) = delete;
  void wait();   // throws TeamAborted after abort()
  void abort();  // releases every waiter, now and later
  int size() const { return size_; }
  int64_t waited_ns() const { return waited_ns_.load(std::memory_order_relaxed); }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  int size_;
  alignas(64) std::atomic<uint32_t> generation_{0};  // a futex word
  std::atomic<int> sleepers_{0};
  std::atomic<bool> aborted_{false};
  std::atomic<int64_t> waited_ns_{0};  // summed over the team (the contention estimate)
};

// fn(ctx, tid, nth, barrier) for tid in [0, nth): tid 0 on the calling thread, the rest on
// its workers; nth is at most `wanted`, and barrier is null when nth is 1. Returns when all
// have returned; rethrows the first exception any of them threw.
using TeamFn = void (*)(void* ctx, int tid, int nth, TeamBarrier* barrier);
void run_on_team(int wanted, TeamFn fn, void* ctx);

}  // namespace rnncore
