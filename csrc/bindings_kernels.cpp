// Test hooks for the CPU kernel tables (part of starcoder_cpp._core): run one
// kernel of a named level ("generic", "avx2", "avx512") on numpy data, so the
// tests can hold every SIMD variant against its reference on this machine.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/attention.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
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

  m.def(
      "kernel_attention",
      [](const std::string& level, FloatArray q, py::array k_cache, py::array v_cache, int n_past, int n_head,
         int n_head_kv, int n_threads) {
        const sc::CpuKernels& k = level_kernels(level);
        if (q.ndim() != 2) throw py::value_error("q must have shape (n_tokens, n_head * head_dim)");
        if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || q.shape(1) % n_head != 0)
          throw py::value_error("bad head counts");
        const int d = int(q.shape(1) / n_head);
        const int n_tokens = int(q.shape(0));
        const bool f16 = py::isinstance<py::array_t<uint16_t>>(k_cache) || k_cache.dtype().is(py::dtype("float16"));
        const size_t elem = f16 ? 2 : 4;
        for (const py::array* c : {&k_cache, &v_cache}) {
          if (c->ndim() != 2 || c->shape(1) != int64_t(n_head_kv) * d || c->shape(0) < n_past + n_tokens ||
              size_t(c->itemsize()) != elem || !(c->flags() & py::array::c_style))
            throw py::value_error("caches must be C-contiguous (n_ctx, n_head_kv * head_dim), float32 or float16");
        }
        FloatArray out({py::ssize_t(n_tokens), py::ssize_t(q.shape(1))});
        sc::AttentionArgs a;
        a.q = q.data();
        a.q_stride = q.shape(1);
        a.k_cache = k_cache.data();
        a.v_cache = v_cache.data();
        a.kv_f16 = f16;
        a.kv_dim = int64_t(n_head_kv) * d;
        a.n_tokens = n_tokens;
        a.n_past = n_past;
        a.n_head = n_head;
        a.n_head_kv = n_head_kv;
        a.head_dim = d;
        a.scale = 1.0f / std::sqrt(float(d));
        a.out = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          sc::ThreadPool pool(n_threads);
          sc::CpuAttention attn(pool.size());
          attn.run(a, pool, k);
        }
        return out;
      },
      py::arg("level"), py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("n_past"), py::arg("n_head"),
      py::arg("n_head_kv"), py::arg("n_threads") = 1,
      "Causal attention of q (new positions n_past..) over caches that already hold their keys/values, "
      "with one level's tile kernels.");
}
