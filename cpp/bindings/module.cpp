// rnncore._core: the only file that includes pybind11. It checks the array contract
// (dtype, C-contiguity, exact shapes; user-facing messages come from rnncore/ops.py),
// allocates NumPy outputs and calls the kernels with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "binding.h"
#include "rnncore/kept_workspaces.h"
#include "rnncore/layer.h"
#include "rnncore/stream_state.h"

namespace py = pybind11;
using rnncore::Cell;
using rnncore::Dims;

namespace {

using rnncore_bindings::checked;
using rnncore_bindings::is_float64;

// A cell kind from rnncore._core.Cell or its integer code.
Cell to_cell(const py::handle& cell) {
  long long code = -1;
  if (PyLong_CheckExact(cell.ptr())) {  // what rnncore's own calls pass: the fastest check
    int overflow = 0;
    code = PyLong_AsLongLongAndOverflow(cell.ptr(), &overflow);
    if (overflow) code = -1;
  } else if (py::isinstance<Cell>(cell)) {
    return cell.cast<Cell>();
  }
  if (code < 0 || code >= rnncore::kCellCount)
    throw py::value_error("cell: expected a rnncore._core.Cell or a code in 0.." +
                          std::to_string(rnncore::kCellCount - 1) + ", got " +
                          std::string(py::repr(cell)));
  return static_cast<Cell>(code);
}

// Reads T, B, I from x and H from w_hh; the other arrays are then checked against them.
Dims dims_of(const py::array& x, const py::array& w_hh, bool reverse, bool batch_first) {
  if (x.ndim() != 3)
    throw py::value_error("x: expected 3 dimensions, got " + std::to_string(x.ndim()));
  if (w_hh.ndim() != 2)
    throw py::value_error("w_hh: expected 2 dimensions, got " + std::to_string(w_hh.ndim()));
  Dims d;
  d.T = batch_first ? x.shape(1) : x.shape(0);
  d.B = batch_first ? x.shape(0) : x.shape(1);
  d.I = x.shape(2);
  d.H = w_hh.shape(1);
  d.reverse = reverse;
  d.batch_first = batch_first;
  return d;
}

const int64_t* checked_lengths(const py::object& obj, const Dims& d) {
  const int64_t* lengths = checked<int64_t>(obj, "lengths", {d.B});
  for (int64_t b = 0; lengths && b < d.B; ++b)
    if (lengths[b] < 0 || lengths[b] > d.T)
      throw py::value_error("lengths: expected values in [0, " + std::to_string(d.T) + "], got " +
                            std::to_string(lengths[b]) + " at index " + std::to_string(b));
  return lengths;
}

std::vector<int64_t> seq_shape(const Dims& d, int64_t width) {
  return d.batch_first ? std::vector<int64_t>{d.B, d.T, width}
                       : std::vector<int64_t>{d.T, d.B, width};
}

// A workspace array of n elements: on a kept block from kMinBytes (the block returns to the
// keeper when NumPy releases the array), else a plain NumPy array: smaller ones cost less
// fresh, and a block is whole huge pages, up to 2 MiB more than asked.
template <typename T>
py::array_t<T> workspace_array(int64_t n) {
  if (static_cast<size_t>(n) * sizeof(T) < rnncore::kept_workspaces::kMinBytes)
    return py::array_t<T>(std::vector<int64_t>{n});
  struct Block {
    void* data;
    size_t bytes;
  };
  size_t bytes = static_cast<size_t>(n) * sizeof(T);  // at least kMinBytes
  void* data = rnncore::kept_workspaces::take(bytes);
  auto block = std::make_unique<Block>(Block{data, bytes});
  py::capsule owner(block.get(), [](void* b) {
    std::unique_ptr<Block> released(static_cast<Block*>(b));
    rnncore::kept_workspaces::give(released->data, released->bytes);
  });
  block.release();  // the capsule owns it now
  return py::array_t<T>({n}, {static_cast<py::ssize_t>(sizeof(T))}, static_cast<T*>(data), owner);
}

template <typename T>
py::object maybe_array(bool present, std::vector<int64_t> shape) {
  if (!present) return py::none();
  return py::array_t<T>(shape);
}

template <typename T>
py::tuple forward_typed(Cell cell, const py::array& x, const py::array& w_ih, const py::array& w_hh,
                        const py::object& b_ih, const py::object& b_hh, const py::object& h0,
                        const py::object& c0, const py::object& lengths, bool reverse,
                        bool batch_first, bool training, const py::object& recurrent_mask) {
  const Dims d = dims_of(x, w_hh, reverse, batch_first);
  const int64_t GH = rnncore::gate_count(cell) * d.H;
  const bool lstm = cell == Cell::Lstm;
  rnncore::ForwardArgs<T> a;
  a.x = checked<T>(x, "x", seq_shape(d, d.I), false);
  a.w_ih = checked<T>(w_ih, "w_ih", {GH, d.I}, false);
  a.w_hh = checked<T>(w_hh, "w_hh", {GH, d.H}, false);
  a.b_ih = checked<T>(b_ih, "b_ih", {GH});
  a.b_hh = checked<T>(b_hh, "b_hh", {GH});
  a.h0 = checked<T>(h0, "h0", {d.B, d.H});
  a.c0 = lstm ? checked<T>(c0, "c0", {d.B, d.H}) : nullptr;
  a.lengths = checked_lengths(lengths, d);
  a.recurrent_mask = checked<T>(recurrent_mask, "recurrent_mask", {d.B, d.H});
  py::array_t<T> y(seq_shape(d, d.H)), h_n(std::vector<int64_t>{d.B, d.H});
  py::object c_n = maybe_array<T>(lstm, {d.B, d.H});
  py::object ws = py::none();
  if (training)
    ws = workspace_array<T>(static_cast<int64_t>(rnncore::training_workspace_size(cell, d)));
  a.y = y.mutable_data();
  a.h_n = h_n.mutable_data();
  a.c_n = lstm ? py::cast<py::array_t<T>>(c_n).mutable_data() : nullptr;
  a.workspace = training ? py::cast<py::array_t<T>>(ws).mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    rnncore::layer_forward<T>(cell, d, a);
  }
  return py::make_tuple(y, h_n, c_n, ws);
}

template <typename T>
py::tuple backward_typed(Cell cell, const py::array& x, const py::array& w_ih,
                         const py::array& w_hh, bool has_b_ih, bool has_b_hh,
                         const py::object& lengths, bool reverse, bool batch_first,
                         const py::object& workspace, const py::object& dy, const py::object& dh_n,
                         const py::object& dc_n, const py::object& recurrent_mask) {
  const Dims d = dims_of(x, w_hh, reverse, batch_first);
  const int64_t GH = rnncore::gate_count(cell) * d.H;
  const bool lstm = cell == Cell::Lstm;
  rnncore::BackwardArgs<T> a;
  a.x = checked<T>(x, "x", seq_shape(d, d.I), false);
  a.w_ih = checked<T>(w_ih, "w_ih", {GH, d.I}, false);
  a.w_hh = checked<T>(w_hh, "w_hh", {GH, d.H}, false);
  a.lengths = checked_lengths(lengths, d);
  a.recurrent_mask = checked<T>(recurrent_mask, "recurrent_mask", {d.B, d.H});
  a.workspace =
      checked<T>(workspace, "workspace",
                 {static_cast<int64_t>(rnncore::training_workspace_size(cell, d))}, false);
  a.dy = checked<T>(dy, "dy", seq_shape(d, d.H));
  a.dh_n = checked<T>(dh_n, "dh_n", {d.B, d.H});
  a.dc_n = lstm ? checked<T>(dc_n, "dc_n", {d.B, d.H}) : nullptr;
  py::array_t<T> dx(seq_shape(d, d.I)), dw_ih(std::vector<int64_t>{GH, d.I}),
      dw_hh(std::vector<int64_t>{GH, d.H}), dh0(std::vector<int64_t>{d.B, d.H});
  py::object db_ih = maybe_array<T>(has_b_ih, {GH}), db_hh = maybe_array<T>(has_b_hh, {GH});
  py::object dc0 = maybe_array<T>(lstm, {d.B, d.H});
  a.dx = dx.mutable_data();
  a.dw_ih = dw_ih.mutable_data();
  a.dw_hh = dw_hh.mutable_data();
  a.db_ih = has_b_ih ? py::cast<py::array_t<T>>(db_ih).mutable_data() : nullptr;
  a.db_hh = has_b_hh ? py::cast<py::array_t<T>>(db_hh).mutable_data() : nullptr;
  a.dh0 = dh0.mutable_data();
  a.dc0 = lstm ? py::cast<py::array_t<T>>(dc0).mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    rnncore::layer_backward<T>(cell, d, a);
  }
  return py::make_tuple(dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0);
}

py::tuple forward(const py::object& cell, const py::array& x, const py::array& w_ih,
                  const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& h0, const py::object& c0, const py::object& lengths,
                  bool reverse, bool batch_first, bool training, const py::object& recurrent_mask) {
  auto run = is_float64(x, "x") ? forward_typed<double> : forward_typed<float>;
  return run(to_cell(cell), x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, batch_first,
             training, recurrent_mask);
}

py::tuple backward(const py::object& cell, const py::array& x, const py::array& w_ih,
                   const py::array& w_hh, bool has_b_ih, bool has_b_hh, const py::object& lengths,
                   bool reverse, bool batch_first, const py::object& workspace,
                   const py::object& dy, const py::object& dh_n, const py::object& dc_n,
                   const py::object& recurrent_mask) {
  auto run = is_float64(x, "x") ? backward_typed<double> : backward_typed<float>;
  return run(to_cell(cell), x, w_ih, w_hh, has_b_ih, has_b_hh, lengths, reverse, batch_first,
             workspace, dy, dh_n, dc_n, recurrent_mask);
}

// State and packed weights of one streaming layer (rnncore.Stream). A step runs
// with the GIL released; a second concurrent step on the same object is refused, not raced.
template <typename T>
class StreamCore {
 public:
  StreamCore(const py::object& cell, const py::array& w_ih, const py::array& w_hh,
             const py::object& b_ih, const py::object& b_hh, int64_t batch) {
    const Cell c = to_cell(cell);
    if (w_ih.ndim() != 2 || w_hh.ndim() != 2)
      throw py::value_error("w_ih, w_hh: expected 2 dimensions");
    const int64_t H = w_hh.shape(1), I = w_ih.shape(1), GH = rnncore::gate_count(c) * H;
    if (batch < 1) throw py::value_error("batch_size: expected a positive int");
    state_ = std::make_unique<rnncore::StreamState<T>>(
        c, batch, I, H, checked<T>(w_ih, "w_ih", {GH, I}, false),
        checked<T>(w_hh, "w_hh", {GH, H}, false), checked<T>(b_ih, "b_ih", {GH}),
        checked<T>(b_hh, "b_hh", {GH}));
  }

  void step(const py::object& x) {
    const T* xp = checked<T>(x, "x_t", {state_->batch(), state_->input_size()}, false);
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true))
      throw std::runtime_error(
          "Stream.step: this Stream is already stepping in another thread; give each thread "
          "its own Stream");
    {
      py::gil_scoped_release release;
      state_->step(xp);
    }
    busy_.store(false);
  }

  // A view of the state buffer (`which` 0: h, 1: c) that keeps this object alive.
  py::object state(py::object self, int which) {
    std::vector<T>& buf = which ? state_->c() : state_->h();
    if (buf.empty()) return py::none();
    const int64_t B = state_->batch(), H = state_->hidden_size();
    return py::array_t<T>({B, H}, {H * (int64_t)sizeof(T), (int64_t)sizeof(T)}, buf.data(), self);
  }

 private:
  std::unique_ptr<rnncore::StreamState<T>> state_;
  std::atomic<bool> busy_{false};
};

template <typename T>
void bind_stream(py::module_& m, const char* name) {
  py::class_<StreamCore<T>>(m, name)
      .def(py::init<const py::object&, const py::array&, const py::array&, const py::object&,
                    const py::object&, int64_t>(),
           py::arg("cell"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
           py::arg("batch_size"))
      .def("step", &StreamCore<T>::step, py::arg("x_t"))
      .def("state", [](py::object self, int which) {
        return self.cast<StreamCore<T>&>().state(self, which);
      });
}

py::dict build_info() {
  py::dict info;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  info["threading"] = std::string("rnncore pool (fork-safe, sleeps when idle)");
  info["isa"] = rnncore::isa_name(rnncore::active_isa());
#ifdef RNNCORE_SANITIZERS
  info["sanitizers"] = std::string(RNNCORE_SANITIZERS);
#else
  info["sanitizers"] = std::string("none");
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnncore's private compiled kernels; use the functions in the rnncore package.";
  rnncore::active_isa();  // choose the instruction set now: a bad RNNCORE_ISA fails the import
  // The kernels' cell kinds; rnncore/_cells.py holds everything else known about each.
  py::enum_<Cell> cells(m, "Cell", "Cell kinds of the compiled kernels (rnncore::Cell).");
#define RNNCORE_CELL_VALUE(name, py_name, gates) cells.value(#py_name, Cell::name);
  RNNCORE_CELLS(RNNCORE_CELL_VALUE)
#undef RNNCORE_CELL_VALUE
  m.def("gate_count", &rnncore::gate_count, py::arg("cell"), "Gate blocks per weight matrix.");
  m.def("forward", &forward, "One recurrent layer forward; returns (y, h_n, c_n, workspace).",
        py::arg("cell"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
        py::arg("b_hh"), py::arg("h0"), py::arg("c0"), py::arg("lengths"), py::arg("reverse"),
        py::arg("batch_first"), py::arg("training"), py::arg("recurrent_mask") = py::none());
  m.def("backward", &backward,
        "One recurrent layer backward; returns (dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0).",
        py::arg("cell"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"), py::arg("has_b_ih"),
        py::arg("has_b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("batch_first"),
        py::arg("workspace"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
        py::arg("recurrent_mask") = py::none());
  m.def(
      "workspace_size",
      [](const py::object& cell, int64_t steps, int64_t batch, int64_t hidden) {
        if (steps < 0 || batch < 0 || hidden < 0)
          throw py::value_error(
              "workspace_size: expected sizes >= 0, got steps=" + std::to_string(steps) +
              ", batch=" + std::to_string(batch) + ", hidden=" + std::to_string(hidden));
        Dims d;
        d.T = steps;
        d.B = batch;
        d.H = hidden;
        return static_cast<int64_t>(rnncore::training_workspace_size(to_cell(cell), d));
      },
      py::arg("cell"), py::arg("steps"), py::arg("batch"), py::arg("hidden"),
      "Elements of the workspace a training forward of this cell and shape returns.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1)
          throw py::value_error("n: expected a positive thread count, got " + std::to_string(n));
        // More than a few per CPU can only take turns (and each calling thread's pool would
        // start them): refused rather than slowly obeyed.
        const int most = 4 * rnncore::usable_cpus();
        if (n > most)
          throw py::value_error("n: expected at most " + std::to_string(most) +
                                " threads (4 x the " + std::to_string(most / 4) +
                                " CPUs this process may run on), got " + std::to_string(n));
        rnncore::set_num_threads(n);
      },
      py::arg("n"));
  m.def("get_num_threads", &rnncore::get_num_threads);
  m.def(
      "fma_peak_gflops",
      [](int threads) {
        if (threads < 1)
          throw py::value_error("threads: expected a positive count, got " +
                                std::to_string(threads));
        py::gil_scoped_release release;
        return rnncore::fma_peak_gflops(threads);
      },
      py::arg("threads"), "Measured float32 FMA peak (GFLOP/s) for the active instruction set.");
  rnncore_bindings::bind_row_ops(m);
  bind_stream<float>(m, "Stream32");
  bind_stream<double>(m, "Stream64");
  m.def("build_info", &build_info);
  m.def("usable_cpus", &rnncore::usable_cpus,
        "CPUs this process may run on: no kernel call uses more threads.");
  m.def("pool_workers", &rnncore::pool_workers,
        "Worker threads the calling thread's kernel pool has started.");
  m.def("pool_calls_alone", &rnncore::pool_calls_alone,
        "Calls of the calling thread that ran alone because its partners were descheduled.");
  m.def(
      "supported_isas",
      [] {
        std::vector<std::string> names;  // best first, as the dispatcher prefers them
        for (auto isa : {rnncore::Isa::Avx512, rnncore::Isa::Avx2, rnncore::Isa::Generic})
          if (rnncore::isa_supported(isa)) names.emplace_back(rnncore::isa_name(isa));
        return names;
      },
      "The instruction-set paths this build and CPU can run (names RNNCORE_ISA accepts), best "
      "first.");
  m.def(
      "release_workspaces",
      [](bool thread_blocks) {
        const size_t kept = rnncore::kept_workspaces::release();
        if (!thread_blocks) return kept;
        py::gil_scoped_release nogil;  // the pool's workers free their own blocks
        return kept + rnncore::release_thread_blocks();
      },
      py::arg("thread_blocks") = true,
      "Frees the blocks kept for later calls: released training workspaces, and the calling "
      "thread's and its pool workers' packed weights and buffers; returns their bytes.");
}
