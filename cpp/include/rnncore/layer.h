// rnncore public C++ API: one recurrent layer (one direction), forward and backward.
//
// Conventions (see docs/design.md): T steps, B batch rows, I input features, H hidden units,
// G gates (RNN 1, GRU 3, LSTM 4). Weights use PyTorch's layout and gate order
// (LSTM i,f,g,o; GRU r,z,n). Sequences are right-padded: row b has lengths[b] real steps,
// padded steps do no work and output zeros. All pointers are dense, row-major arrays.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rnncore {

// The cell kinds, one X(Name, PYTHON_NAME, gates) line each, in code order: the C++ enum,
// kCellCount, gate_count and the Python enum rnncore._core.Cell all come from this list.
// python/rnncore/_cells.py describes each kind for every other module (docs/design.md,
// "Add a cell").
#define RNNCORE_CELLS(X)                                                                 \
  X(RnnTanh, RNN_TANH, 1)                                                                \
  X(RnnRelu, RNN_RELU, 1)                                                                \
  X(Lstm, LSTM, 4)                                                                       \
  X(Gru, GRU, 3)                         /* reset_after=True (PyTorch, Keras default) */ \
  X(GruResetBefore, GRU_RESET_BEFORE, 3) /* reset_after=False (ONNX default) */

enum class Cell : int {
#define RNNCORE_CELL_ENUM(name, py_name, gates) name,
  RNNCORE_CELLS(RNNCORE_CELL_ENUM)
#undef RNNCORE_CELL_ENUM
};

#define RNNCORE_CELL_ONE(name, py_name, gates) +1
constexpr int kCellCount = 0 RNNCORE_CELLS(RNNCORE_CELL_ONE);
#undef RNNCORE_CELL_ONE

// Gate blocks per weight matrix: w_ih is [gate_count * H, I].
inline int64_t gate_count(Cell cell) {
  switch (cell) {
#define RNNCORE_CELL_GATES(name, py_name, gates) \
  case Cell::name: return gates;
    RNNCORE_CELLS(RNNCORE_CELL_GATES)
#undef RNNCORE_CELL_GATES
  }
  return 1;
}

struct Dims {
  int64_t T = 0, B = 0, I = 0, H = 0;
  bool batch_first = false;  // x, y, dy, dx are [B, T, ·] instead of [T, B, ·]
  bool reverse = false;      // row b runs t = lengths[b]-1 ... 0
};

template <typename T>
struct ForwardArgs {
  const T* x = nullptr;              // [T, B, I] or [B, T, I]
  const T* w_ih = nullptr;           // [G*H, I]
  const T* w_hh = nullptr;           // [G*H, H]
  const T* b_ih = nullptr;           // [G*H] or nullptr (no bias)
  const T* b_hh = nullptr;           // [G*H] or nullptr (no bias)
  const T* h0 = nullptr;             // [B, H] or nullptr (zeros)
  const T* c0 = nullptr;             // [B, H] or nullptr (zeros); LSTM only
  const int64_t* lengths = nullptr;  // [B] in [0, T], or nullptr (all T)
  const T* recurrent_mask =
      nullptr;             // [B, H] multiplies h before every h·W_hhᵀ (recurrent dropout)
  T* y = nullptr;          // [T, B, H] or [B, T, H]
  T* h_n = nullptr;        // [B, H]
  T* c_n = nullptr;        // [B, H]; LSTM only
  T* workspace = nullptr;  // training_workspace_size() elements kept for backward, or nullptr
};

template <typename T>
struct BackwardArgs {
  const T* x = nullptr;               // as in forward
  const T* w_ih = nullptr;            // as in forward
  const T* w_hh = nullptr;            // as in forward
  const int64_t* lengths = nullptr;   // as in forward
  const T* recurrent_mask = nullptr;  // as in forward
  T* workspace = nullptr;             // filled by the training forward; consumed here
  const T* dy = nullptr;              // like y, or nullptr (zeros)
  const T* dh_n = nullptr;            // [B, H] or nullptr (zeros)
  const T* dc_n = nullptr;            // [B, H] or nullptr (zeros); LSTM only
  T* dx = nullptr;                    // like x
  T* dw_ih = nullptr;                 // [G*H, I]
  T* dw_hh = nullptr;                 // [G*H, H]
  T* db_ih = nullptr;                 // [G*H] or nullptr when the layer has no b_ih
  T* db_hh = nullptr;                 // [G*H] or nullptr when the layer has no b_hh
  T* dh0 = nullptr;                   // [B, H]
  T* dc0 = nullptr;                   // [B, H]; LSTM only
};

// Number of elements of T the training forward keeps for backward.
size_t training_workspace_size(Cell cell, const Dims& d);

template <typename T>
void layer_forward(Cell cell, const Dims& d, const ForwardArgs<T>& a);

template <typename T>
void layer_backward(Cell cell, const Dims& d, const BackwardArgs<T>& a);

// One time step of streaming inference (rnncore.Stream). The weights are packed once, when
// the Stream is made (pack_weights); the state is updated in place.
template <typename T>
struct StepArgs {
  const T* x = nullptr;       // [B, I]
  const T* w_ih_p = nullptr;  // w_ih packed by pack_weights
  const T* w_hh_p = nullptr;  // w_hh packed by pack_weights
  const T* b_ih = nullptr;    // [G*H] or nullptr
  const T* b_hh = nullptr;    // [G*H] or nullptr
  T* h = nullptr;             // [B, H] h_{t-1} in, h_t out
  T* c = nullptr;             // [B, H] LSTM cell state, updated in place
  T* gx = nullptr;            // [B, G*H] scratch: x·W_ihᵀ + b_ih
  T* gh = nullptr;            // [B, G*H] scratch: h·W_hhᵀ + b_hh
  T* rh = nullptr;            // [B, H] scratch: r ⊙ h (reset-before GRU)
};

// A weight w [N, K] as the active kernel build's GEMMs read it (Wᵀ in column panels):
// packed_weight_elems elements, written by pack_weights.
template <typename T>
int64_t packed_weight_elems(int64_t N, int64_t K);
template <typename T>
void pack_weights(const T* w, int64_t N, int64_t K, T* out);

template <typename T>
void stream_step(Cell cell, int64_t B, int64_t I, int64_t H, const StepArgs<T>& a);

// Instruction set of the kernel build in use: the best this CPU supports, or the one the
// RNNCORE_ISA environment variable (avx512 | avx2 | generic) names. Chosen once.
enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };
Isa active_isa();  // throws std::invalid_argument for a bad or unsupported RNNCORE_ISA
// Whether this build has kernels for `isa` and this CPU can run them (RNNCORE_ISA may name it).
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);

// Float32 multiply-add peak of this machine with the active instruction set, measured now on
// `threads` threads (about 20 ms). The benchmark reports achieved speed as a share of it.
double fma_peak_gflops(int threads);

// The most threads a kernel call may use (default: the CPUs this process may run on). A call
// uses fewer when its work is too small to feed them, never more than the CPUs it may run
// on, and one while its thread's teams find a partner descheduled (a busy core): see
// cpp/src/thread_pool.h. Results do not depend on it.
void set_num_threads(int n);
int get_num_threads();
// CPUs this process may run on (its affinity mask), read once and again after a fork.
int usable_cpus();
// Worker threads the calling thread's pool has started (its largest team so far, minus one).
int pool_workers();
// Frees the memory blocks the calling thread and its pool's workers keep for their next calls
// (packed weights, gate buffers: at most 64 MiB a thread); returns their bytes.
size_t release_thread_blocks();
// Calls of the calling thread that ran on one thread because its partners were judged
// descheduled (a busy core; see cpp/src/thread_pool.h).
int64_t pool_calls_alone();

}  // namespace rnncore
