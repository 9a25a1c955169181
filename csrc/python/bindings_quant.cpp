// Python bindings for the block formats (part of starcoder_cpp._core): the
// type table and quantize / dequantize of numpy arrays, which the converter
// and the quantizer use.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "offline/quantize_tensor.h"
#include "python/array_args.h"
#include "format/quant.h"
#include "format/tensor_types.h"

namespace py = pybind11;

using sc::TensorType;
using scpy::ByteArray;
using scpy::FloatArray;
using scpy::checked_bytes;
using scpy::checked_row_bytes;
using scpy::parse_type_name;

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
}
