#include "rnncore/block_slots.h"

#include <algorithm>
#include <cstdlib>

namespace rnncore {

BlockSlots::BlockSlots(int slots, size_t max_bytes)
    : n_slots_(std::clamp(slots, 1, kMaxSlots)), max_bytes_(max_bytes) {
  for (Slot& s : slots_) s = Slot{nullptr, 0};
}

BlockSlots::~BlockSlots() {
  release();
}

void* BlockSlots::take(size_t& bytes) {
  Slot* best = nullptr;
  for (int i = 0; i < n_slots_; ++i) {
    Slot& s = slots_[i];
    if (s.block && s.bytes >= bytes && bytes >= s.bytes / 2 && (!best || s.bytes < best->bytes))
      best = &s;
  }
  if (!best) return nullptr;
  void* block = best->block;
  bytes = best->bytes;
  kept_ -= bytes;
  *best = Slot{nullptr, 0};
  return block;
}

void BlockSlots::give(void* block, size_t bytes) {
  Slot* target = &slots_[0];
  for (int i = 0; i < n_slots_; ++i) {
    Slot& s = slots_[i];
    if (!s.block) {
      target = &s;
      break;
    }
    if (s.bytes < target->bytes) target = &s;
  }
  const bool keep =
      !(target->block && target->bytes >= bytes) && kept_ - target->bytes + bytes <= max_bytes_;
  if (!keep) {
    std::free(block);
    return;
  }
  std::free(target->block);
  kept_ += bytes - target->bytes;
  *target = Slot{block, bytes};
}

size_t BlockSlots::release() {
  const size_t freed = kept_;
  for (Slot& s : slots_) {
    std::free(s.block);
    s = Slot{nullptr, 0};
  }
  kept_ = 0;
  return freed;
}

}  // namespace rnncore
