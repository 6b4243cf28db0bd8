// Training workspaces kept for reuse between steps (the policy; the bindings only hand the
// blocks to NumPy and back).
//
// Training workspaces are tens of MiB, and were fresh on every step: each page cost a fault
// and its zeroing, and where memory was fragmented the kernel's compaction for a huge page
// (docs/design.md, "Memory", has the figures). The blocks of released workspaces are kept (a
// few, up to kMaxBytes in all) for later forwards, which write everything backward reads.
#pragma once

#include <cstddef>

namespace rnncore {
namespace kept_workspaces {

constexpr int kSlots = 4;
constexpr size_t kMaxBytes = size_t(1) << 30;
constexpr size_t kHuge = size_t(2) << 20;       // a huge page: blocks are whole ones
constexpr size_t kMinBytes = size_t(16) << 20;  // smaller workspaces are not worth keeping

// A block of at least `bytes` (rounded up to whole huge pages, the size written back): a
// kept one, else a fresh one. Throws std::bad_alloc when memory runs out. Thread-safe.
void* take(size_t& bytes);
// Returns a block from take() for later forwards (or frees it). Thread-safe: NumPy's array
// owners give blocks back from any thread.
void give(void* block, size_t bytes);
// Frees every kept block; returns their bytes.
size_t release();

}  // namespace kept_workspaces
}  // namespace rnncore
