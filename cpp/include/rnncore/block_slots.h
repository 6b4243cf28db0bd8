// Large memory blocks kept for reuse: which kept block a request takes, and whether a released
// block is kept. One policy for the kernels' per-thread scratch (buffer.h) and the binding's
// training workspaces (kept_workspaces.cpp).
#pragma once

#include <cstddef>

namespace rnncore {

// Defined in block_slots.cpp, compiled once for the baseline instruction set and called from
// every kernel build: an inline copy compiled with AVX-512 flags could be the one the linker
// keeps for all of them (see kernel_ns.h). Not thread-safe: one owner per thread, or a lock.
class BlockSlots {
 public:
  static constexpr int kMaxSlots = 8;
  // Keeps up to `slots` blocks (at most kMaxSlots), `max_bytes` in all.
  BlockSlots(int slots, size_t max_bytes);
  ~BlockSlots();  // frees the kept blocks
  BlockSlots(const BlockSlots&) = delete;
  BlockSlots& operator=(const BlockSlots&) = delete;
  // The smallest kept block that fits `bytes` without wasting more than half of it (its size
  // goes to `bytes`), else nullptr.
  void* take(size_t& bytes);
  // Keeps a released block (from malloc's family) in a free slot, else in place of the
  // smallest kept one when that is smaller, within max_bytes in all; frees what is not kept.
  void give(void* block, size_t bytes);
  // Frees every kept block; returns their bytes.
  size_t release();

 private:
  struct Slot {
    void* block;
    size_t bytes;
  };
  Slot slots_[kMaxSlots];
  int n_slots_;
  size_t max_bytes_;
  size_t kept_ = 0;  // bytes in slots_
};

}  // namespace rnncore
