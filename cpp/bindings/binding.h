// What the binding's files share: the array contract every kernel call relies on (dtype,
// C-contiguity, exact shape), and each file's entry point.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rnncore_bindings {

namespace py = pybind11;

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// Data pointer of `obj` after checking it is a C-contiguous T array of exactly `shape`;
// nullptr for None when `optional`.
template <typename T>
T* checked(const py::object& obj, const char* name, const std::vector<int64_t>& shape,
           bool optional = true) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw py::type_error(std::string(name) + ": expected an array, got None");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<T>()))  // equal: a dtype with metadata is still float
    throw py::type_error(std::string(name) + ": expected dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  std::vector<int64_t> got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape)
    throw py::value_error(std::string(name) + ": expected shape " + shape_str(shape) + ", got " +
                          shape_str(got));
  return static_cast<T*>(const_cast<void*>(arr.data()));
}

// Whether array `name` is float64 (else float32); TypeError for any other dtype.
inline bool is_float64(const py::array& a, const char* name) {
  if (a.dtype().equal(py::dtype::of<double>())) return true;
  if (a.dtype().equal(py::dtype::of<float>())) return false;
  throw py::type_error(std::string(name) + ": expected dtype float32 or float64, got " +
                       std::string(py::str(a.dtype())));
}

// rnncore._core's dense, activate and layer_norm (row_ops.cpp).
void bind_row_ops(py::module_& m);

}  // namespace rnncore_bindings
