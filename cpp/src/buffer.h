// Zero-initialised, 64-byte-aligned scratch arrays and element loops for kernel units
// (see kernel_ns.h for why these do not use std::vector / std::fill / std::copy).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernel_ns.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// One large block kept per calling thread for its next kernel call. Inference's gate slab
// is tens of MiB: a fresh mapping of that size costs a page fault and a kernel zeroing per
// 4 KiB on every call (keeping it took a large LSTM forward from 97 to 73 ms here).
class BlockCache {
 public:
  static constexpr size_t kMinBytes = size_t(1) << 20;  // smaller blocks come from malloc's bins
  BlockCache() = default;
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;
  ~BlockCache() { std::free(block_); }
  // The kept block if it fits `bytes` without wasting more than half of it (its size goes
  // to `bytes`), else nullptr.
  void* take(size_t& bytes) {
    if (!block_ || bytes > size_ || bytes < size_ / 2) return nullptr;
    void* p = block_;
    bytes = size_;
    block_ = nullptr;
    return p;
  }
  // Keeps the larger of the returned block and the kept one; frees the other.
  void give(void* p, size_t bytes) {
    if (block_ && size_ >= bytes) {
      std::free(p);
      return;
    }
    std::free(block_);
    block_ = p;
    size_ = bytes;
  }

 private:
  void* block_ = nullptr;
  size_t size_ = 0;
};

inline BlockCache& thread_block_cache() {
  thread_local BlockCache cache;
  return cache;
}

enum class Alloc {
  kZeroed,  // fresh and zero-filled
  kReused,  // through the thread's BlockCache when large; contents undefined (the caller
            // writes every element first). Only inference's gate slab: training allocations
            // stay fresh, so the block never lingers behind a training step's memory.
};

// A 64-byte-aligned array of n elements.
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n = 0, Alloc alloc = Alloc::kZeroed) {
    if (n <= 0) return;
    bytes_ = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    cached_ = alloc == Alloc::kReused && bytes_ >= BlockCache::kMinBytes;
    void* p = cached_ ? thread_block_cache().take(bytes_) : nullptr;
    if (!p) p = std::aligned_alloc(64, bytes_);
    if (!p) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    if (alloc == Alloc::kZeroed) std::memset(data_, 0, bytes_);
  }
  ~Buffer() {
    if (cached_)
      thread_block_cache().give(data_, bytes_);
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
