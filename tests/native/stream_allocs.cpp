// Counts heap allocations (malloc and operator new, interposed here) during stream steps:
// after the first step (which may start the thread pool), a step must allocate nothing.
//     stream_allocs MODEL      prints "allocations in 100 steps: N", exits 1 unless N == 0
#include <rnncore/rnncore.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

extern "C" void* __libc_malloc(size_t);
static std::atomic<long> g_allocations{0};

extern "C" void* malloc(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* operator new(size_t n) {
  void* p = malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  rnncore_model* model = rnncore_model_load(argv[1]);
  rnncore_stream* stream = model ? rnncore_model_stream(model, 1) : nullptr;
  if (!stream) {
    std::fprintf(stderr, "%s\n", rnncore_last_error());
    return 1;
  }
  std::vector<float> x(size_t(rnncore_model_input_features(model)), 0.5f);
  std::vector<float> y(size_t(rnncore_stream_output_size(stream)));
  if (rnncore_stream_step(stream, x.data(), y.data()) != RNNCORE_OK) return 1;  // warm-up
  const long before = g_allocations.load();
  for (int t = 0; t < 100; ++t)
    if (rnncore_stream_step(stream, x.data(), y.data()) != RNNCORE_OK) return 1;
  const long during = g_allocations.load() - before;
  std::printf("allocations in 100 steps: %ld\n", during);
  rnncore_stream_free(stream);
  rnncore_model_free(model);
  return during == 0 ? 0 : 1;
}
