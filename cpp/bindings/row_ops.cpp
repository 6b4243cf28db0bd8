// rnncore._core.dense / activate / layer_norm: the feed-forward layers' forward passes on the
// same code the C runtime runs (rnncore/row_ops.h), so Python and C give the same bits.
#include "rnncore/row_ops.h"

#include <vector>

#include "binding.h"
#include "rnncore/layer.h"

namespace rnncore_bindings {

namespace {

// Rows and features of a 2-D float array named `name`; true when it is float64.
bool float64_rows(const py::array& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + ": expected 2 dimensions, got " +
                          std::to_string(a.ndim()));
  return is_float64(a, name);
}

// a [rows, N] = bias + x [rows, K] · wᵀ for w [N, K], packed here for the active kernels.
template <typename T>
py::array_t<T> dense_typed(const py::array& x, const py::array& w, const py::object& bias) {
  const int64_t rows = x.shape(0), K = x.shape(1);
  if (w.ndim() != 2) throw py::value_error("w: expected 2 dimensions");
  const int64_t N = w.shape(0);
  const T* xp = checked<T>(x, "x", {rows, K}, false);
  const T* wp = checked<T>(w, "w", {N, K}, false);
  const T* bp = checked<T>(bias, "bias", {N});
  py::array_t<T> out(std::vector<int64_t>{rows, N});
  T* yp = out.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<T> packed(size_t(rnncore::packed_weight_elems<T>(N, K)));
    rnncore::pack_weights<T>(wp, N, K, packed.data());
    rnncore::dense_forward<T>(rows, K, N, xp, packed.data(), bp, yp);
  }
  return out;
}

template <typename T>
void activate_typed(const py::array& a, int code) {
  T* p = checked<T>(a, "a", {a.shape(0), a.shape(1)}, false);
  if (!a.writeable()) throw py::value_error("a: expected a writable array");
  py::gil_scoped_release release;
  rnncore::apply_activation<T>(static_cast<rnncore::Activation>(code), p, a.shape(0), a.shape(1));
}

template <typename T>
py::array_t<T> layer_norm_typed(const py::array& x, const py::object& gamma, const py::object& beta,
                                double epsilon) {
  const int64_t rows = x.shape(0), n = x.shape(1);
  const T* xp = checked<T>(x, "x", {rows, n}, false);
  const T* gp = checked<T>(gamma, "gamma", {n});
  const T* bp = checked<T>(beta, "beta", {n});
  py::array_t<T> out(std::vector<int64_t>{rows, n});
  T* yp = out.mutable_data();
  py::gil_scoped_release release;
  rnncore::layer_norm_rows<T>(xp, rows, n, gp, bp, T(epsilon), yp);
  return out;
}

}  // namespace

void bind_row_ops(py::module_& m) {
  m.def(
      "dense",
      [](const py::array& x, const py::array& w, const py::object& bias) -> py::array {
        if (float64_rows(x, "x")) return dense_typed<double>(x, w, bias);
        return dense_typed<float>(x, w, bias);
      },
      py::arg("x"), py::arg("w"), py::arg("bias"),
      "bias + x [rows, K] · wᵀ (w [N, K]) on the kernels' GEMM: a new [rows, N] array.");
  m.def(
      "activate",
      [](const py::array& a, int code) {
        if (code < 0 || code > static_cast<int>(rnncore::Activation::Elu))
          throw py::value_error("code: expected an activation code in 0..6, got " +
                                std::to_string(code));
        if (float64_rows(a, "a")) return activate_typed<double>(a, code);
        activate_typed<float>(a, code);
      },
      py::arg("a"), py::arg("code"),
      "Applies activation `code` (rnncore.activations order) to a [rows, n] in place.");
  m.def(
      "layer_norm",
      [](const py::array& x, const py::object& gamma, const py::object& beta,
         double epsilon) -> py::array {
        if (!(epsilon > 0))
          throw py::value_error("epsilon: expected > 0, got " + std::to_string(epsilon));
        if (float64_rows(x, "x")) return layer_norm_typed<double>(x, gamma, beta, epsilon);
        return layer_norm_typed<float>(x, gamma, beta, epsilon);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("epsilon"),
      "gamma ⊙ (x - mean) / sqrt(var + epsilon) + beta over each row of x [rows, n].");
}

}  // namespace rnncore_bindings
