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

template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n = 0) {
    if (n <= 0) return;
    const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    std::memset(data_, 0, bytes);
  }
  ~Buffer() { std::free(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  T* data_ = nullptr;
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
