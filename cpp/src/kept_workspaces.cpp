// The kept training workspaces (rnncore/kept_workspaces.h): one process-wide set of slots.
#include "rnncore/kept_workspaces.h"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "rnncore/block_slots.h"

namespace rnncore {
namespace kept_workspaces {

namespace {

struct Kept {
  std::mutex mutex;
  BlockSlots slots{kSlots, kMaxBytes};
};

Kept& kept() {
  static auto* k = new Kept;  // never destroyed: NumPy arrays may outlive static destructors
  return *k;
}

}  // namespace

void* take(size_t& bytes) {
  bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  {
    std::lock_guard<std::mutex> lock(kept().mutex);
    if (void* p = kept().slots.take(bytes)) return p;
  }
  void* p = std::aligned_alloc(kHuge, bytes);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, bytes, MADV_HUGEPAGE);  // as NumPy does for its large arrays
#endif
  return p;
}

void give(void* block, size_t bytes) {
  std::lock_guard<std::mutex> lock(kept().mutex);
  kept().slots.give(block, bytes);
}

size_t release() {
  std::lock_guard<std::mutex> lock(kept().mutex);
  return kept().slots.release();
}

}  // namespace kept_workspaces
}  // namespace rnncore
