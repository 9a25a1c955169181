// Python bindings for the quantization core (part of starcoder_cpp._core):
// quantize / dequantize arrays, the quantized dot product and the CPU
// backend's linear/get_rows on raw quantized weights (for tests and tools).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "quant.h"
#include "tensor_types.h"

namespace py = pybind11;

using sc::TensorType;

// "q4_k", "Q4_K", "f16" ... -> type. Throws ValueError naming the known types.
TensorType parse_type_name(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  std::string known;
  for (uint32_t id = 0; id < 64; ++id) {
    const sc::TensorTypeInfo info = sc::tensor_type_info(id);
    if (!info.name) continue;
    if (lower == info.name) return TensorType(id);
    known += (known.empty() ? "" : ", ") + std::string(info.name);
  }
  throw py::value_error("unknown tensor type '" + name + "' (known: " + known + ")");
}

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

int64_t checked_row_bytes(TensorType t, int64_t n_per_row) {
  const int64_t rs = sc::row_size(t, n_per_row);
  if (rs < 0)
    throw py::value_error("row length " + std::to_string(n_per_row) + " is not a multiple of the " +
                          sc::tensor_type_name(t) + " block size " +
                          std::to_string(sc::tensor_type_info(t).block_size));
  return rs;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Raw bytes of `data` (bytes, bytearray, memoryview or numpy array), checked
// against the size a tensor of `shape` (numpy order) and type t must have.
ByteArray checked_bytes(const py::object& data, TensorType t, const std::vector<int64_t>& shape, int64_t* n_rows,
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
    throw py::value_error(sc::tensor_type_name(t) + " tensor of shape " + shape_str(shape) + " must be " + std::to_string(expected) + " bytes, got " + std::to_string(bytes.size()));
  return bytes;
}

}  // namespace

void register_quant_bindings(py::module_& m) {
  m.def(
      "quant_types",
      []() {
        py::dict d;
        for (uint32_t id = 0; id < 64; ++id) {
          const sc::TensorTypeInfo info = sc::tensor_type_info(id);
          if (!info.name) continue;
          py::dict row;
          row["id"] = id;
          row["block_size"] = info.block_size;
          row["type_size"] = info.type_size;
          row["quantized"] = sc::is_quantized(TensorType(id));
          row["weight_type"] = sc::is_weight_quant_type(TensorType(id));
          row["dot_type"] = sc::tensor_type_name(sc::vec_dot_type(TensorType(id)));
          d[py::str(info.name)] = row;
        }
        return d;
      },
      "Tensor types this build knows: name -> {id, block_size, type_size, quantized, weight_type, dot_type}.");

  m.def(
      "quantize",
      [](FloatArray x, const std::string& type, int n_threads) {
        const TensorType t = parse_type_name(type);
        if (!sc::is_quantized(t)) throw py::value_error("'" + type + "' is not a quantized type");
        if (x.ndim() < 1) throw py::value_error("need an array of at least one dimension");
        const int64_t n_per_row = x.shape(x.ndim() - 1);
        const int64_t n_rows = n_per_row ? int64_t(x.size()) / n_per_row : 0;
        const int64_t rs = checked_row_bytes(t, n_per_row);
        ByteArray out = x.ndim() == 1 ? ByteArray(rs) : ByteArray({py::ssize_t(n_rows), py::ssize_t(rs)});
        const float* src = x.data();
        uint8_t* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          if (sc::is_weight_quant_type(t)) {
            sc::quantize_tensor(t, src, n_rows, n_per_row, dst, n_threads);
          } else {  // activation formats (q8_1, q8_k): single-threaded
            for (int64_t r = 0; r < n_rows; ++r) sc::quantize_row(t, src + r * n_per_row, dst + r * rs, n_per_row);
          }
        }
        return out;
      },
      py::arg("x"), py::arg("type"), py::arg("n_threads") = 0,
      "Quantizes float32 rows (the last axis) to `type`, exactly as llama.cpp does without an importance "
      "matrix. Returns uint8 of shape (rows, row_bytes), or (row_bytes,) for a 1-D input.");

  m.def(
      "dequantize",
      [](const py::object& data, const std::string& type, const std::vector<int64_t>& shape) {
        const TensorType t = parse_type_name(type);
        int64_t n_rows, n_per_row;
        ByteArray bytes = checked_bytes(data, t, shape, &n_rows, &n_per_row);
        std::vector<py::ssize_t> dims(shape.begin(), shape.end());
        FloatArray out(dims);
        const uint8_t* src = bytes.data();
        float* dst = out.mutable_data();
        const size_t rs = size_t(sc::row_size(t, n_per_row));
        {
          py::gil_scoped_release nogil;
          for (int64_t r = 0; r < n_rows; ++r) sc::dequantize_row(t, src + size_t(r) * rs, dst + r * n_per_row, n_per_row);
        }
        return out;
      },
      py::arg("data"), py::arg("type"), py::arg("shape"),
      "Decodes tensor bytes of `type` and `shape` (numpy order; the last axis is the row) to float32. "
      "Raises ValueError when the byte count does not match.");

  m.def(
      "vec_dot",
      [](const py::object& w_row, const std::string& type, FloatArray x) {
        const TensorType t = parse_type_name(type);
        if (!sc::is_weight_quant_type(t)) throw py::value_error("vec_dot needs a quantized weight type, got '" + type + "'");
        if (x.ndim() != 1) throw py::value_error("x must be one-dimensional");
        int64_t n_rows, n;
        ByteArray w = checked_bytes(w_row, t, {int64_t(x.size())}, &n_rows, &n);
        const TensorType dt = sc::vec_dot_type(t);
        std::vector<uint8_t> act(size_t(sc::row_size(dt, n)));
        sc::quantize_row_for_dot(t, x.data(), act.data(), n);
        return sc::vec_dot(t, n, w.data(), act.data());
      },
      py::arg("w_row"), py::arg("type"), py::arg("x"),
      "Dot product of one quantized weight row with float32 x, computed as the forward pass does: x is "
      "quantized to the type's dot format (q8_0, q8_1 or q8_k) and combined block by block.");

  m.def(
      "linear",
      [](const py::object& w_bytes, const std::string& type, int64_t n_out, int64_t n_in, FloatArray x,
         py::object bias, int n_threads) {
        const TensorType t = parse_type_name(type);
        int64_t n_rows, n;
        ByteArray w = checked_bytes(w_bytes, t, {n_out, n_in}, &n_rows, &n);
        if (x.ndim() != 2 || x.shape(1) != n_in) throw py::value_error("x must have shape (n_tokens, n_in)");
        std::unique_ptr<sc::Backend> be = sc::make_cpu_backend(n_threads);
        if (!be->supports(t)) throw py::value_error("the cpu backend cannot run " + type + " weights");
        std::vector<float> b;
        if (!bias.is_none()) {
          FloatArray ba = bias.cast<FloatArray>();
          if (ba.ndim() != 1 || ba.shape(0) != n_out) throw py::value_error("bias must have shape (n_out,)");
          b.assign(ba.data(), ba.data() + n_out);
        }
        sc::Weight wt;
        wt.type = t;
        wt.n_in = n_in;
        wt.n_out = n_out;
        wt.row_bytes = size_t(sc::row_size(t, n_in));
        wt.data = w.data();
        const int n_tokens = int(x.shape(0));
        FloatArray y({py::ssize_t(n_tokens), py::ssize_t(n_out)});
        {
          py::gil_scoped_release nogil;
          be->linear(wt, b.empty() ? nullptr : b.data(), x.data(), n_tokens, y.mutable_data());
        }
        return y;
      },
      py::arg("w"), py::arg("type"), py::arg("n_out"), py::arg("n_in"), py::arg("x"), py::arg("bias") = py::none(),
      py::arg("n_threads") = 1,
      "y = x W^T (+ bias) through the CPU backend's linear() on raw weight bytes of `type` (rows of n_in).");

  m.def(
      "get_rows",
      [](const py::object& w_bytes, const std::string& type, int64_t n_rows_total, int64_t n_in,
         const std::vector<int32_t>& ids) {
        const TensorType t = parse_type_name(type);
        int64_t n_rows, n;
        ByteArray w = checked_bytes(w_bytes, t, {n_rows_total, n_in}, &n_rows, &n);
        for (int32_t id : ids)
          if (id < 0 || id >= n_rows_total) throw py::index_error("row id " + std::to_string(id) + " out of range");
        std::unique_ptr<sc::Backend> be = sc::make_cpu_backend(1);
        if (!be->supports(t)) throw py::value_error("the cpu backend cannot run " + type + " weights");
        sc::Weight wt;
        wt.type = t;
        wt.n_in = n_in;
        wt.n_out = n_rows_total;
        wt.row_bytes = size_t(sc::row_size(t, n_in));
        wt.data = w.data();
        FloatArray out({py::ssize_t(ids.size()), py::ssize_t(n_in)});
        be->get_rows(wt, ids.data(), int(ids.size()), out.mutable_data());
        return out;
      },
      py::arg("w"), py::arg("type"), py::arg("n_rows"), py::arg("n_in"), py::arg("ids"),
      "Rows `ids` of a [n_rows, n_in] weight of `type`, as float32, through the CPU backend's get_rows().");
}
