// The C API's layer-level calls and settings: argument checks, then the C++ kernels.
#include <string>
#include <vector>

#include "errors.h"
#include "rnncore/layer.h"
#include "rnncore/rnncore.h"

namespace rnncore::capi {

namespace {

thread_local std::string t_last_error;

Cell to_cell(rnncore_cell cell) {
  const int code = static_cast<int>(cell);
  if (code < 0 || code >= kCellCount)
    bad_argument("cell: expected an rnncore_cell (0.." + std::to_string(kCellCount - 1) +
                 "), got " + std::to_string(code));
  return static_cast<Cell>(code);
}

// The C dims as the kernels' Dims, after checking every size is positive and the arrays'
// element counts fit in int64.
Dims to_dims(Cell cell, const rnncore_dims* dims) {
  if (!dims) bad_argument("dims: expected a pointer, got NULL");
  const int64_t sizes[] = {dims->steps, dims->batch, dims->input_size, dims->hidden_size};
  const char* names[] = {"dims->steps", "dims->batch", "dims->input_size", "dims->hidden_size"};
  for (int i = 0; i < 4; ++i)
    if (sizes[i] < 1)
      bad_argument(std::string(names[i]) + ": expected >= 1, got " + std::to_string(sizes[i]));
  const int64_t GH = checked_mul(gate_count(cell), dims->hidden_size, "hidden_size");
  const int64_t TB = checked_mul(dims->steps, dims->batch, "steps * batch");
  checked_mul(TB, std::max(dims->input_size, GH), "steps * batch * features");
  checked_mul(GH, std::max(dims->input_size, dims->hidden_size), "weights");
  Dims d;
  d.T = dims->steps;
  d.B = dims->batch;
  d.I = dims->input_size;
  d.H = dims->hidden_size;
  d.batch_first = dims->batch_first != 0;
  d.reverse = dims->reverse != 0;
  return d;
}

void require(const void* p, const char* name) {
  if (!p) bad_argument(std::string(name) + ": expected a pointer, got NULL");
}

void check_lengths(const int64_t* lengths, const Dims& d) {
  for (int64_t b = 0; lengths && b < d.B; ++b)
    if (lengths[b] < 0 || lengths[b] > d.T)
      bad_argument("lengths: expected values in [0, " + std::to_string(d.T) + "], got " +
                   std::to_string(lengths[b]) + " at index " + std::to_string(b));
}

template <typename T, typename CArgs>
rnncore_status forward(const char* where, rnncore_cell c, const rnncore_dims* dims,
                       const CArgs* args, bool training) {
  return guarded(where, [&] {
    const Cell cell = to_cell(c);
    const Dims d = to_dims(cell, dims);
    require(args, "args");
    require(args->x, "args->x");
    require(args->w_ih, "args->w_ih");
    require(args->w_hh, "args->w_hh");
    require(args->y, "args->y");
    if (training) require(args->workspace, "args->workspace");
    check_lengths(args->lengths, d);
    const bool lstm = cell == Cell::Lstm;
    if (!lstm && (args->c0 || args->c_n))
      bad_argument("args->c0, args->c_n: only an LSTM has a cell state; pass NULL");
    ForwardArgs<T> a;
    a.x = args->x;
    a.w_ih = args->w_ih;
    a.w_hh = args->w_hh;
    a.b_ih = args->b_ih;
    a.b_hh = args->b_hh;
    a.h0 = args->h0;
    a.c0 = args->c0;
    a.lengths = args->lengths;
    a.y = args->y;
    // The kernels always write the final states: scratch ones when the caller passes none.
    std::vector<T> h_n(args->h_n ? 0 : size_t(d.B * d.H));
    std::vector<T> c_n(lstm && !args->c_n ? size_t(d.B * d.H) : 0);
    a.h_n = args->h_n ? args->h_n : h_n.data();
    a.c_n = args->c_n ? args->c_n : (lstm ? c_n.data() : nullptr);
    a.workspace = training ? args->workspace : nullptr;
    layer_forward<T>(cell, d, a);
  });
}

template <typename T, typename CArgs>
rnncore_status backward(const char* where, rnncore_cell c, const rnncore_dims* dims,
                        const CArgs* args) {
  return guarded(where, [&] {
    const Cell cell = to_cell(c);
    const Dims d = to_dims(cell, dims);
    require(args, "args");
    const bool lstm = cell == Cell::Lstm;
    require(args->x, "args->x");
    require(args->w_ih, "args->w_ih");
    require(args->w_hh, "args->w_hh");
    require(args->workspace, "args->workspace");
    require(args->dx, "args->dx");
    require(args->dw_ih, "args->dw_ih");
    require(args->dw_hh, "args->dw_hh");
    require(args->dh0, "args->dh0");
    if (lstm) require(args->dc0, "args->dc0");
    if (!lstm && (args->dc_n || args->dc0))
      bad_argument("args->dc_n, args->dc0: only an LSTM has a cell state; pass NULL");
    check_lengths(args->lengths, d);
    BackwardArgs<T> a;
    a.x = args->x;
    a.w_ih = args->w_ih;
    a.w_hh = args->w_hh;
    a.lengths = args->lengths;
    a.workspace = args->workspace;
    a.dy = args->dy;
    a.dh_n = args->dh_n;
    a.dc_n = args->dc_n;
    a.dx = args->dx;
    a.dw_ih = args->dw_ih;
    a.dw_hh = args->dw_hh;
    a.db_ih = args->db_ih;
    a.db_hh = args->db_hh;
    a.dh0 = args->dh0;
    a.dc0 = args->dc0;
    layer_backward<T>(cell, d, a);
  });
}

}  // namespace

void set_last_error(const std::string& message) {
  t_last_error = message;
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    bad_argument(std::string(what) + ": the size overflows 64 bits");
  return out;
}

}  // namespace rnncore::capi

using namespace rnncore::capi;

extern "C" {

const char* rnncore_last_error(void) {
  return t_last_error.c_str();
}

const char* rnncore_version(void) {
  return RNNCORE_VERSION;
}

void rnncore_set_num_threads(int n) {
  rnncore::set_num_threads(n);
}

int rnncore_get_num_threads(void) {
  return rnncore::get_num_threads();
}

int64_t rnncore_workspace_size(rnncore_cell cell, const rnncore_dims* dims) {
  int64_t size = -1;
  guarded("rnncore_workspace_size", [&] {
    const rnncore::Cell c = to_cell(cell);
    size = static_cast<int64_t>(rnncore::training_workspace_size(c, to_dims(c, dims)));
  });
  return size;
}

int rnncore_forward_f32(rnncore_cell cell, const rnncore_dims* dims,
                        const rnncore_forward_args_f32* args) {
  return forward<float>("rnncore_forward_f32", cell, dims, args, false);
}
int rnncore_forward_f64(rnncore_cell cell, const rnncore_dims* dims,
                        const rnncore_forward_args_f64* args) {
  return forward<double>("rnncore_forward_f64", cell, dims, args, false);
}
int rnncore_training_forward_f32(rnncore_cell cell, const rnncore_dims* dims,
                                 const rnncore_forward_args_f32* args) {
  return forward<float>("rnncore_training_forward_f32", cell, dims, args, true);
}
int rnncore_training_forward_f64(rnncore_cell cell, const rnncore_dims* dims,
                                 const rnncore_forward_args_f64* args) {
  return forward<double>("rnncore_training_forward_f64", cell, dims, args, true);
}
int rnncore_backward_f32(rnncore_cell cell, const rnncore_dims* dims,
                         const rnncore_backward_args_f32* args) {
  return backward<float>("rnncore_backward_f32", cell, dims, args);
}
int rnncore_backward_f64(rnncore_cell cell, const rnncore_dims* dims,
                         const rnncore_backward_args_f64* args) {
  return backward<double>("rnncore_backward_f64", cell, dims, args);
}

}  // extern "C"
