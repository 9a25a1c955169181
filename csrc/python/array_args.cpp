#include "python/array_args.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace scpy {

// "q4_k", "Q4_K", "f16" ... -> type. Throws ValueError naming the known types.
sc::TensorType parse_type_name(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  std::string known;
  for (uint32_t id = 0; id < 64; ++id) {
    const sc::TensorTypeInfo info = sc::tensor_type_info(id);
    if (!info.name) continue;
    if (lower == info.name) return sc::TensorType(id);
    known += (known.empty() ? "" : ", ") + std::string(info.name);
  }
  throw py::value_error("unknown tensor type '" + name + "' (known: " + known + ")");
}


int64_t checked_row_bytes(sc::TensorType t, int64_t n_per_row) {
  const int64_t rs = sc::row_size(t, n_per_row);
  if (rs < 0)
    throw py::value_error("row length " + std::to_string(n_per_row) + " is not a multiple of the " +
                          sc::tensor_type_name(t) + " block size " +
                          std::to_string(sc::tensor_type_info(t).block_size));
  return rs;
}

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

ByteArray checked_bytes(const py::object& data, sc::TensorType t, const std::vector<int64_t>& shape, int64_t* n_rows,
                        int64_t* n_per_row) {
  if (shape.empty()) throw py::value_error("shape must have at least one dimension");
  for (int64_t d : shape)
    if (d <= 0) throw py::value_error("shape dimensions must be positive");
  *n_per_row = shape.back();
  *n_rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) *n_rows *= shape[i];
  const int64_t expected = checked_row_bytes(t, *n_per_row) * *n_rows;
  ByteArray bytes;
  if (py::isinstance<py::bytes>(data) || py::isinstance<py::bytearray>(data) || py::isinstance<py::memoryview>(data)) {
    py::buffer_info info = py::buffer(data).request();
    bytes = ByteArray(info.size * info.itemsize);
    std::memcpy(bytes.mutable_data(), info.ptr, size_t(info.size * info.itemsize));
  } else {
    py::array arr = py::array::ensure(data);
    if (!arr) throw py::type_error("data must be bytes or a numpy array");
    // view any contiguous array as its raw bytes
    py::array flat = py::array::ensure(arr, py::array::c_style);
    bytes = ByteArray(flat.nbytes());
    std::memcpy(bytes.mutable_data(), flat.data(), size_t(flat.nbytes()));
  }
  if (int64_t(bytes.size()) != expected)
    throw py::value_error(sc::tensor_type_name(t) + " tensor of shape " + shape_str(shape) + " must be " +
                          std::to_string(expected) + " bytes, got " + std::to_string(bytes.size()));
  return bytes;
}

}  // namespace scpy
