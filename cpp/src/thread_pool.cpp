// rnncore's thread teams: see thread_pool.h for what they guarantee and why they exist.
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace rnncore {

namespace {

// How long a waiting thread spins before it sleeps. A partner's step ends within a few
// microseconds of ours on a quiet machine (waking a sleeper costs ~5-50 us, so quiet-machine
// waits must not sleep); a partner that is later than this was most likely descheduled.
constexpr int64_t kBarrierSpinNs = 100'000;
// Workers wait this long for the next team before they sleep: back-to-back kernel calls
// (a layer's forward, then the next layer's) come within tens of microseconds, and a worker
// that spins longer steals a busy machine's core from the caller's Python.
constexpr int64_t kIdleSpinNs = 100'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void cpu_relax() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

// Sleeps while word == expected (may return early; callers re-check).
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
#else
  (void)word, (void)expected;
  std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
#else
  (void)word;
#endif
}

// Waits until word != old: spins for spin_ns, then sleeps on the futex. A sleeper counts
// itself in `sleepers` first, so publish() makes the system call only when someone sleeps
// (both sides use sequentially consistent operations: one of them sees the other).
void await_change(std::atomic<uint32_t>& word, uint32_t old, std::atomic<int>& sleepers,
                  int64_t spin_ns) {
  const int64_t t0 = now_ns();
  for (int i = 1; word.load(std::memory_order_acquire) == old; ++i) {
    if (i % 64 == 0 && now_ns() - t0 > spin_ns) break;
    cpu_relax();
  }
  while (word.load(std::memory_order_seq_cst) == old) {
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    futex_wait(word, old);
    sleepers.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void publish(std::atomic<uint32_t>& word, std::atomic<int>& sleepers) {
  word.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(word);
}

// A fork() child has only the thread that forked: every pool made before it is abandoned
// (its workers do not exist there) and the first call makes a new one.
std::atomic<uint64_t> g_fork_epoch{0};
std::atomic<int> g_usable_cpus{0};  // 0: read the affinity mask on next use

// Worker threads alive in every pool of the process: each calling thread has its own pool,
// so 32 calling threads could otherwise start 32 teams' workers. Past the cap a pool runs
// its calls with the workers it has (or alone): never more threads, never an error.
constexpr int kWorkersPerCpu = 4;
std::atomic<int> g_live_workers{0};

void on_fork_child() {
  g_fork_epoch.fetch_add(1, std::memory_order_relaxed);
  g_usable_cpus.store(0, std::memory_order_relaxed);   // the child may be given other CPUs
  g_live_workers.store(0, std::memory_order_relaxed);  // the parent's workers are not here
}

void register_fork_handler() {
  static const int registered = pthread_atfork(nullptr, nullptr, on_fork_child);
  (void)registered;
}

// One team call's shared description; lives on the caller's stack for the call.
struct Job {
  TeamFn fn;
  void* ctx;
  int nth;
  TeamBarrier* barrier;
  std::mutex error_mu;
  std::exception_ptr error;  // the first exception any member threw

  void run_member(int tid) {
    try {
      fn(ctx, tid, nth, barrier);
    } catch (const TeamAborted&) {
      // released because another member failed; that member's exception is the one
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
      barrier->abort();
    }
  }
};

// When teams wait long for a late member (a descheduled thread: another process holds its
// core) in two calls in a row, the calling thread runs alone for a while, then tries its
// team again; each late try doubles the time alone (up to kMaxSoloNs), a timely one resets it.
// Only the team size changes, never the results.
class TeamPolicy {
 public:
  int size(int wanted, int64_t now) const { return now < solo_until_ns_ ? 1 : wanted; }
  // waited_ns: time the members spent waiting for each other in a call of wall_ns.
  void record(int nth, int64_t wall_ns, int64_t waited_ns, int64_t now) {
    if (wall_ns < kMinWallNs) return;  // too short to tell
    if (static_cast<double>(waited_ns) <= kLateShare * nth * static_cast<double>(wall_ns)) {
      late_in_a_row_ = 0;
      solo_ns_ = kMinSoloNs;
      return;
    }
    // One late call may be another library's threads still spinning down; two in a row,
    // or a late try after running alone, is a busy core.
    if (++late_in_a_row_ < 2 && solo_ns_ == kMinSoloNs) return;
    late_in_a_row_ = 0;
    solo_until_ns_ = now + solo_ns_;
    solo_ns_ = std::min(2 * solo_ns_, kMaxSoloNs);
  }

 private:
  // On a quiet machine members wait 1-16% of a call for each other (measured); with a
  // partner descheduled for a time slice, most of it.
  static constexpr double kLateShare = 0.35;
  static constexpr int64_t kMinWallNs = 100'000;
  static constexpr int64_t kMinSoloNs = 50'000'000, kMaxSoloNs = 1'600'000'000;
  int64_t solo_until_ns_ = 0;
  int64_t solo_ns_ = kMinSoloNs;  // the next time alone; above the minimum after a late try
  int late_in_a_row_ = 0;
};

// The workers of one calling thread. Each has its own mailbox, so a team uses only the
// workers it needs and a call never waits for one it did not ask for.
class Pool {
 public:
  Pool() : epoch_(g_fork_epoch.load(std::memory_order_relaxed)) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    for (auto& w : workers_) {
      w->quit.store(true, std::memory_order_relaxed);
      publish(w->gen, w->sleepers);
      w->thread.join();
    }
    g_live_workers.fetch_sub(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  }
  uint64_t epoch() const { return epoch_; }
  int workers() const { return static_cast<int>(workers_.size()); }
  int64_t alone() const { return alone_; }

  void run(int wanted, TeamFn fn, void* ctx) {
    const int64_t t0 = now_ns();
    const int most = std::min(wanted, usable_cpus()), allowed = policy_.size(most, t0);
    if (allowed < most) ++alone_;
    const int nth = grow(allowed);
    if (nth <= 1) {
      fn(ctx, 0, 1, nullptr);
      return;
    }
    TeamBarrier barrier(nth);
    Job job{fn, ctx, nth, &barrier, {}, nullptr};
    const uint32_t done0 = done_.load(std::memory_order_acquire);
    for (int tid = 1; tid < nth; ++tid) {
      Worker& w = *workers_[tid - 1];
      w.job = &job;
      publish(w.gen, w.sleepers);
    }
    job.run_member(0);
    const int64_t t_join = now_ns();
    for (uint32_t cur;
         (cur = done_.load(std::memory_order_acquire)) - done0 < static_cast<uint32_t>(nth - 1);)
      await_change(done_, cur, done_sleepers_, kBarrierSpinNs);
    const int64_t t1 = now_ns();
    policy_.record(nth, t1 - t0, barrier.waited_ns() + (t1 - t_join), t1);
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  struct Worker {
    alignas(64) std::atomic<uint32_t> gen{0};  // a futex word: bumped for each job
    std::atomic<int> sleepers{0};
    std::atomic<bool> quit{false};
    Job* job = nullptr;
    std::thread thread;
  };

  // Makes sure nth - 1 workers exist; returns the team size they allow (fewer if the
  // system refuses a thread, or the process has kWorkersPerCpu per CPU already).
  int grow(int nth) {
    const int cap = kWorkersPerCpu * usable_cpus();
    while (static_cast<int>(workers_.size()) < nth - 1) {
      if (g_live_workers.fetch_add(1, std::memory_order_relaxed) >= cap) {
        g_live_workers.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
      auto w = std::make_unique<Worker>();
      const int tid = static_cast<int>(workers_.size()) + 1;
      try {
        w->thread = std::thread([this, raw = w.get(), tid] { work(*raw, tid); });
      } catch (const std::exception&) {  // EAGAIN: the system's thread limit
        g_live_workers.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
      workers_.push_back(std::move(w));
    }
    return std::min(nth, static_cast<int>(workers_.size()) + 1);
  }

  void work(Worker& w, int tid) {
    for (uint32_t seen = 0;;) {
      await_change(w.gen, seen, w.sleepers, kIdleSpinNs);
      seen = w.gen.load(std::memory_order_acquire);
      if (w.quit.load(std::memory_order_relaxed)) return;
      w.job->run_member(tid);
      publish(done_, done_sleepers_);
    }
  }

  const uint64_t epoch_;
  std::vector<std::unique_ptr<Worker>> workers_;  // tid 1, 2, ...
  alignas(64) std::atomic<uint32_t> done_{0};     // a futex word: members that finished
  std::atomic<int> done_sleepers_{0};
  TeamPolicy policy_;
  int64_t alone_ = 0;  // calls that ran alone while partners were judged descheduled
};

Pool& this_thread_pool() {
  struct Holder {
    Pool* pool = nullptr;
    ~Holder() {
      // In a fork child the pool's workers are gone: nothing to join, so it is left alone.
      if (pool && pool->epoch() == g_fork_epoch.load()) delete pool;
    }
  };
  thread_local Holder holder;
  if (!holder.pool || holder.pool->epoch() != g_fork_epoch.load()) {
    register_fork_handler();
    holder.pool = new Pool();  // an abandoned one (made before a fork) is leaked on purpose
  }
  return *holder.pool;
}

}  // namespace

void TeamBarrier::wait() {
  if (aborted_.load(std::memory_order_acquire)) throw TeamAborted{};
  const uint32_t gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);  // no one arrives before the release below
    publish(generation_, sleepers_);
    return;
  }
  if (generation_.load(std::memory_order_acquire) == gen) {
    const int64_t t0 = now_ns();
    await_change(generation_, gen, sleepers_, kBarrierSpinNs);
    waited_ns_.fetch_add(now_ns() - t0, std::memory_order_relaxed);
  }
  if (aborted_.load(std::memory_order_acquire)) throw TeamAborted{};
}

void TeamBarrier::abort() {
  aborted_.store(true, std::memory_order_seq_cst);
  publish(generation_, sleepers_);
}

void run_on_team(int wanted, TeamFn fn, void* ctx) {
  if (wanted <= 1) {
    fn(ctx, 0, 1, nullptr);
    return;
  }
  this_thread_pool().run(wanted, fn, ctx);
}

int pool_workers() {
  return this_thread_pool().workers();
}

int64_t pool_calls_alone() {
  return this_thread_pool().alone();
}

int usable_cpus() {
  int n = g_usable_cpus.load(std::memory_order_relaxed);
  if (n > 0) return n;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  n = std::max(1, n);
  g_usable_cpus.store(n, std::memory_order_relaxed);
  return n;
}

}  // namespace rnncore
