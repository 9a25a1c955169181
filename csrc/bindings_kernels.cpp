// Test hooks for the CPU kernel tables (part of starcoder_cpp._core): run one
// kernel of a named level ("generic", "avx2", "avx512") on numpy data, so the
// tests can hold every SIMD variant against its reference on this machine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "quant.h"
#include "tensor_types.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

const sc::CpuKernels& level_kernels(const std::string& level) {
  const sc::CpuKernels* k = sc::kernels_for_level(level.c_str());
  if (!k) throw py::value_error("CPU kernel level '" + level + "' is unknown or not supported on this CPU");
  return *k;
}

sc::TensorType type_by_name(const std::string& name) {
  for (uint32_t id = 0; id < 64; ++id) {
    const sc::TensorTypeInfo info = sc::tensor_type_info(id);
    if (info.name && name == info.name) return sc::TensorType(id);
  }
  throw py::value_error("unknown tensor type '" + name + "'");
}

FloatArray checked_rows(FloatArray x, int64_t n) {
  if (x.ndim() != 2 || x.shape(1) != n) throw py::value_error("x must have shape (n_rows, " + std::to_string(n) + ")");
  return x;
}

}  // namespace

void register_kernel_bindings(py::module_& m) {
  m.def(
      "cpu_levels",
      []() {
        std::vector<std::string> out;
        for (const char* const* p = sc::supported_levels(); *p; ++p) out.emplace_back(*p);
        return out;
      },
      "The CPU kernel levels this machine can run, lowest first.");

  m.def(
      "kernel_quantize_act",
      [](const std::string& level, const std::string& type, FloatArray x) {
        const sc::CpuKernels& k = level_kernels(level);
        const sc::TensorType t = type_by_name(type);
        const int slot = sc::act_slot(t);
        if (slot < 0) throw py::value_error("'" + type + "' is not an activation type (q8_0, q8_1, q8_k)");
        const int64_t n = x.ndim() == 2 ? x.shape(1) : -1;
        checked_rows(x, n);
        const int64_t rs = sc::row_size(t, n);
        if (rs < 0) throw py::value_error("row length is not a multiple of the block size");
        ByteArray out({py::ssize_t(x.shape(0)), py::ssize_t(rs)});
        for (py::ssize_t r = 0; r < x.shape(0); ++r)
          k.quantize_act[slot](x.data() + r * n, out.mutable_data() + r * rs, n);
        return out;
      },
      py::arg("level"), py::arg("type"), py::arg("x"),
      "Quantizes float32 rows into an activation type with one level's kernel.");

  m.def(
      "kernel_quant_matmul",
      [](const std::string& level, const std::string& type, ByteArray w, int64_t n_out, int64_t n_in, FloatArray x) {
        const sc::CpuKernels& k = level_kernels(level);
        const sc::TensorType t = type_by_name(type);
        const int slot = sc::quant_slot(t);
        if (slot < 0) throw py::value_error("'" + type + "' has no quantized dot product");
        checked_rows(x, n_in);
        const int64_t rs = sc::row_size(t, n_in);
        if (rs < 0 || w.size() != n_out * rs) throw py::value_error("weight bytes do not match (n_out, n_in)");
        const sc::TensorType dt = sc::vec_dot_type(t);
        const size_t act_rs = size_t(sc::row_size(dt, n_in));
        const int n_act = int(x.shape(0));
        std::vector<uint8_t> act(act_rs * size_t(n_act));
        for (int r = 0; r < n_act; ++r) k.quantize_act[sc::act_slot(dt)](x.data() + r * n_in, act.data() + r * act_rs, n_in);
        FloatArray y({py::ssize_t(n_act), py::ssize_t(n_out)});
        // odd row splits too, as the thread pool makes them
        for (int64_t r0 = 0; r0 < n_out; r0 += 7) {
          const int n_w = int(std::min<int64_t>(7, n_out - r0));
          k.quant_dot[slot](n_in, w.data() + r0 * rs, size_t(rs), n_w, act.data(), act_rs, n_act,
                            y.mutable_data() + r0, size_t(n_out));
        }
        return y;
      },
      py::arg("level"), py::arg("type"), py::arg("w"), py::arg("n_out"), py::arg("n_in"), py::arg("x"),
      "y = x W^T with one level's activation quantizer and quantized dot product (every activation row "
      "passed to one call per weight row, as the prompt path does).");
}
