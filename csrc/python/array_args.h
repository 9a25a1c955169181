// Argument helpers shared by the pybind11 modules (_core and _testing):
// tensor type names, and numpy / bytes arguments checked against the shape a
// tensor of a given type must have. Each raises a Python error naming the
// argument's problem.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "format/tensor_types.h"

namespace scpy {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// "q4_k", "Q4_K", "f16" ... -> type. Throws ValueError naming the known types.
sc::TensorType parse_type_name(const std::string& name);
// Bytes per row of n_per_row elements of t (ValueError if not whole blocks).
int64_t checked_row_bytes(sc::TensorType t, int64_t n_per_row);
// Raw bytes of `data` (bytes, bytearray, memoryview or numpy array), checked
// against the size a tensor of `shape` (numpy order) and type t must have.
ByteArray checked_bytes(const py::object& data, sc::TensorType t, const std::vector<int64_t>& shape, int64_t* n_rows,
                        int64_t* n_per_row);

}  // namespace scpy
