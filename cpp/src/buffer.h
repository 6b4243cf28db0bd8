// Zero-initialised, 64-byte-aligned scratch arrays and element loops for kernel units
// (see kernel_ns.h for why these do not use std::vector / std::fill / std::copy).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernel_ns.h"
#include "rnncore/block_slots.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// A few large blocks kept per thread for its next kernel calls. Inference's gate ring and
// packed weights are MiBs: a fresh mapping costs a page fault and a kernel zeroing per 4 KiB
// on every call, more than the work of a batch-1 call (docs/design.md, "Measurements").
constexpr size_t kKeptMinBytes = size_t(256) << 10;  // smaller ones come from malloc's bins
// At most this much kept per thread: a huge call's blocks (B = 40000, say) are freed, not
// held; the largest benchmark shape keeps about 10 MiB.
constexpr size_t kKeptMaxBytes = size_t(64) << 20;

inline BlockSlots& thread_kept_blocks() {
  // A gate ring, packed W_ih and W_hh, and gemm_tn's packing scratch per calling thread.
  constexpr int kSlots = 6;
  thread_local BlockSlots kept(kSlots, kKeptMaxBytes);
  return kept;
}

enum class Alloc {
  kZeroed,  // fresh and zero-filled
  kReused,  // through the thread's kept blocks when large; contents undefined (the caller
            // writes every element it reads). Inference's gate ring and packed weights:
            // training's activation-sized buffers stay fresh, so they never linger.
};

// A 64-byte-aligned array of n elements.
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n = 0, Alloc alloc = Alloc::kZeroed) {
    if (n <= 0) return;
    bytes_ = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    cached_ = alloc == Alloc::kReused && bytes_ >= kKeptMinBytes;
    void* p = cached_ ? thread_kept_blocks().take(bytes_) : nullptr;
    if (!p) p = std::aligned_alloc(64, bytes_);
    if (!p) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    if (alloc == Alloc::kZeroed) std::memset(data_, 0, bytes_);
  }
  ~Buffer() {
    if (cached_)
      thread_kept_blocks().give(data_, bytes_);
    else
      std::free(data_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;
  bool cached_ = false;
};

template <typename T>
inline void copy_n(const T* src, int64_t n, T* dst) {
  if (n > 0) std::memcpy(dst, src, sizeof(T) * static_cast<size_t>(n));
}

template <typename T>
inline void fill_zero(T* dst, int64_t n) {
  if (n > 0) std::memset(dst, 0, sizeof(T) * static_cast<size_t>(n));
}

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
