// Python module starcoder_cpp._testing: hooks for the tests, not for users.
// Run one CPU kernel of a named level ("generic", "avx2", "avx512", ...) on
// numpy data, so the tests can hold every SIMD variant against its reference
// on this machine; and run single backend ops through the backend seam.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/backend_cpu.h"
#include "backend/cpu/quant_dot_ref.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"
#include "format/quant.h"
#include "format/tensor_types.h"
#include "python/array_args.h"

namespace py = pybind11;
using sc::TensorType;
using scpy::ByteArray;
using scpy::checked_bytes;
using scpy::FloatArray;
using scpy::parse_type_name;

namespace {

const sc::CpuKernels& level_kernels(const std::string& level) {
  const sc::CpuKernels* k = sc::kernels_for_level(level.c_str());
  if (!k) throw py::value_error("CPU kernel level '" + level + "' is unknown or not supported on this CPU");
  return *k;
}

FloatArray checked_rows(FloatArray x, int64_t n) {
  if (x.ndim() != 2 || x.shape(1) != n) throw py::value_error("x must have shape (n_rows, " + std::to_string(n) + ")");
  return x;
}

}  // namespace

void register_kernel_hooks(py::module_& m) {
  m.def(
      "cpu_levels",
      []() {
        std::vector<std::string> out;
        for (const char* const* p = sc::supported_levels(); *p; ++p) out.emplace_back(*p);
        return out;
      },
      "The CPU kernel levels this machine can run, lowest first.");

  m.def("zmm_full_width", &sc::cpu_runs_zmm_at_full_width,
        "Whether this CPU runs a 512-bit vpdpbusd at >= 1.5x the 256-bit rate (measured once per process), which "
        "makes avx512_zmm the default AVX-512 level; False without AVX-512.");
  m.def(
      "default_level", []() { return std::string(sc::cpu_kernels().level); },
      "The level the dispatcher chose for this process (STARCODER_CPU honoured).");

  m.def(
      "kernel_quantize_act",
      [](const std::string& level, const std::string& type, FloatArray x) {
        const sc::CpuKernels& k = level_kernels(level);
        const sc::TensorType t = parse_type_name(type);
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
      [](const std::string& level, const std::string& type, ByteArray w, int64_t n_out, int64_t n_in, FloatArray x,
         int64_t row_split) {
        const sc::CpuKernels& k = level_kernels(level);
        if (row_split <= 0) throw py::value_error("row_split must be positive");
        const sc::TensorType t = parse_type_name(type);
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
        // rows in slices of row_split, as the thread pool hands them out
        for (int64_t r0 = 0; r0 < n_out; r0 += row_split) {
          const int n_w = int(std::min<int64_t>(row_split, n_out - r0));
          k.quant_dot[slot](n_in, w.data() + r0 * rs, size_t(rs), n_w, act.data(), act_rs, n_act,
                            y.mutable_data() + r0, size_t(n_out));
        }
        return y;
      },
      py::arg("level"), py::arg("type"), py::arg("w"), py::arg("n_out"), py::arg("n_in"), py::arg("x"),
      py::arg("row_split") = 7,
      "y = x W^T with one level's activation quantizer and quantized dot product (every activation row "
      "passed to one call per slice of row_split weight rows, as the prompt path does).");

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
        a.kv_type = f16 ? sc::TensorType::F16 : sc::TensorType::F32;
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

  // ---- float kernels ----
  using HalfArray = py::array_t<uint16_t, py::array::c_style | py::array::forcecast>;

  m.def(
      "kernel_gemm",
      [](const std::string& level, const std::string& type, ByteArray w, int64_t n_out, int64_t n_in, FloatArray x,
         py::object bias, int64_t slice, bool bf16) {
        const sc::CpuKernels& k = level_kernels(level);
        const sc::FloatGemm& g = bf16 ? k.gemm_bf16 : k.gemm;
        if (!g.tile) throw py::value_error("level " + level + " has no bf16 GEMM");
        const sc::TensorType t = parse_type_name(type);
        if (t != sc::TensorType::F32 && t != sc::TensorType::F16 && t != sc::TensorType::BF16)
          throw py::value_error("kernel_gemm takes f32, f16 or bf16 weights");
        checked_rows(x, n_in);
        const int64_t rs = sc::row_size(t, n_in);
        if (w.size() != n_out * rs) throw py::value_error("weight bytes do not match (n_out, n_in)");
        std::vector<float> b;
        if (!bias.is_none()) {
          FloatArray ba = bias.cast<FloatArray>();
          if (ba.ndim() != 1 || ba.shape(0) != n_out) throw py::value_error("bias must have shape (n_out,)");
          b.assign(ba.data(), ba.data() + n_out);
        }
        const int n_tokens = int(x.shape(0));
        std::vector<float> packed(sc::gemm_packed_x_floats(g, n_tokens, n_in));
        sc::gemm_pack_x(g, x.data(), n_tokens, n_in, 0, sc::gemm_panels_x(g, n_tokens), packed.data());
        std::vector<float> scratch(sc::gemm_scratch_floats(g, n_in));
        FloatArray y({py::ssize_t(n_tokens), py::ssize_t(n_out)});
        // column slices of any width, as a thread would get them (the pool's are whole tiles but the last)
        if (slice <= 0) slice = n_out;
        for (int64_t o0 = 0; o0 < n_out; o0 += slice)
          sc::gemm_columns(g, t, w.data(), size_t(rs), n_in, b.empty() ? nullptr : b.data(), packed.data(), n_tokens,
                           o0, std::min(n_out, o0 + slice), y.mutable_data(), n_out, scratch.data());
        return y;
      },
      py::arg("level"), py::arg("type"), py::arg("w"), py::arg("n_out"), py::arg("n_in"), py::arg("x"),
      py::arg("bias") = py::none(), py::arg("slice") = 0, py::arg("bf16") = false,
      "y = x W^T (+ bias) through one level's prompt-path GEMM (packing and register tiles), the output columns "
      "computed in slices of `slice` (0: all at once); bf16=True takes the level's bf16 GEMM (ValueError where it "
      "has none).");

  m.def(
      "has_bf16_gemm",
      [](const std::string& level) { return level_kernels(level).gemm_bf16.tile != nullptr; }, py::arg("level"),
      "Whether a level has a bf16 GEMM (the generic reference, or vdpbf16ps where the CPU has AVX512_BF16).");

  m.def(
      "kernel_gelu",
      [](const std::string& level, FloatArray x, bool exact) {
        const sc::CpuKernels& k = level_kernels(level);
        FloatArray y(x.request().shape);
        std::copy(x.data(), x.data() + x.size(), y.mutable_data());
        (exact ? k.gelu_erf : k.gelu_tanh)(y.mutable_data(), int64_t(y.size()));
        return y;
      },
      py::arg("level"), py::arg("x"), py::arg("exact"), "GELU (erf if exact, else tanh) of x with one level's kernel.");

  m.def(
      "kernel_layer_norm",
      [](const std::string& level, FloatArray x, FloatArray gamma, FloatArray beta, float eps) {
        const sc::CpuKernels& k = level_kernels(level);
        const int64_t n = x.ndim() == 2 ? x.shape(1) : -1;
        checked_rows(x, n);
        if (gamma.size() != n || beta.size() != n) throw py::value_error("gamma and beta must have n elements");
        FloatArray y({x.shape(0), x.shape(1)});
        for (py::ssize_t r = 0; r < x.shape(0); ++r)
          k.layer_norm(x.data() + r * n, gamma.data(), beta.data(), n, eps, y.mutable_data() + r * n);
        return y;
      },
      py::arg("level"), py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
      "LayerNorm of each row of x with one level's kernel.");

  m.def(
      "kernel_dot4",
      [](const std::string& level, const std::string& type, py::array w, FloatArray x) {
        const sc::CpuKernels& k = level_kernels(level);
        const int64_t n = x.ndim() == 2 ? x.shape(1) : -1;
        checked_rows(x, n);
        if (w.ndim() != 2 || w.shape(0) != 4 || w.shape(1) != n) throw py::value_error("w must have shape (4, n)");
        std::vector<float> out(size_t(4 * x.shape(0)));
        if (type == "f32") {
          FloatArray wf = w.cast<FloatArray>();
          const float* r = wf.data();
          for (py::ssize_t t = 0; t < x.shape(0); ++t)
            k.dot4_f32(r, r + n, r + 2 * n, r + 3 * n, x.data() + t * n, n, out.data() + 4 * t);
        } else if (type == "f16" || type == "bf16") {
          HalfArray wh = w.cast<HalfArray>();
          const uint16_t* r = wh.data();
          const auto dot4 = type == "f16" ? k.dot4_f16 : k.dot4_bf16;
          for (py::ssize_t t = 0; t < x.shape(0); ++t)
            dot4(r, r + n, r + 2 * n, r + 3 * n, x.data() + t * n, n, out.data() + 4 * t);
        } else {
          throw py::value_error("type must be f32, f16 or bf16");
        }
        return out;
      },
      py::arg("level"), py::arg("type"), py::arg("w"), py::arg("x"),
      "The 4-row dot products (decode path): w (4, n) as float32, or IEEE half or bfloat16 bits (uint16), "
      "x (n_tok, n). Returns 4 * n_tok floats, token-major.");

  m.def(
      "kernel_vec",
      [](const std::string& level, const std::string& op, FloatArray a, FloatArray b, float s) {
        const sc::CpuKernels& k = level_kernels(level);
        const int64_t n = int64_t(a.size());
        FloatArray out{py::ssize_t(n)};
        std::copy(a.data(), a.data() + n, out.mutable_data());
        float r = 0.f;
        if (op == "dot") {
          if (b.size() != n) throw py::value_error("a and b must have the same size");
          r = k.dot_f32(a.data(), b.data(), n);
        } else if (op == "axpy") {
          if (b.size() != n) throw py::value_error("a and b must have the same size");
          k.axpy_f32(out.mutable_data(), s, b.data(), n);
        } else if (op == "exp_shift_sum") {
          r = k.exp_shift_sum(out.mutable_data(), n, s);
        } else {
          throw py::value_error("op must be dot, axpy or exp_shift_sum");
        }
        return py::make_tuple(out, r);
      },
      py::arg("level"), py::arg("op"), py::arg("a"), py::arg("b"), py::arg("s") = 0.f,
      "One vector kernel of a level: dot (returns (a, a.b)), axpy (returns (a + s*b, 0)), exp_shift_sum "
      "(returns (exp(a - s), sum)).");

  m.def(
      "kernel_f16_to_f32",
      [](const std::string& level, HalfArray h) {
        const sc::CpuKernels& k = level_kernels(level);
        FloatArray out{py::ssize_t(h.size())};
        k.f16_to_f32(h.data(), out.mutable_data(), int64_t(h.size()));
        return out;
      },
      py::arg("level"), py::arg("h"), "IEEE half bits (uint16) -> float32 with one level's kernel.");
}

namespace {

// Quantized dot products and single backend ops on raw weight bytes.
void register_op_hooks(py::module_& m) {
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
         py::object bias, int n_threads, const std::string& precision) {
        const TensorType t = parse_type_name(type);
        if (precision != "f32" && precision != "bf16") throw py::value_error("precision must be 'f32' or 'bf16'");
        int64_t n_rows, n;
        ByteArray w = checked_bytes(w_bytes, t, {n_out, n_in}, &n_rows, &n);
        if (x.ndim() != 2 || x.shape(1) != n_in) throw py::value_error("x must have shape (n_tokens, n_in)");
        if (n_threads <= 0) throw py::value_error("n_threads must be positive");
        FloatArray ba;
        if (!bias.is_none()) {
          ba = bias.cast<FloatArray>();
          if (ba.ndim() != 1 || ba.shape(0) != n_out) throw py::value_error("bias must have shape (n_out,)");
        }
        const int n_tokens = int(x.shape(0));
        FloatArray y({py::ssize_t(n_tokens), py::ssize_t(n_out)});
        py::gil_scoped_release nogil;
        std::unique_ptr<sc::Backend> be = sc::make_cpu_backend(n_threads, precision == "bf16");
        if (!be->supports(t)) throw std::invalid_argument("the cpu backend cannot run " + type + " weights");
        const sc::Weight wt = be->prepare_weight(sc::HostMatrix{t, n_in, n_out, w.data()});
        sc::BufferPtr b;
        if (ba.size()) {
          b = be->alloc(size_t(n_out) * 4);
          be->upload(*b, 0, ba.data(), size_t(n_out) * 4);
        }
        sc::BufferPtr xb = be->alloc(size_t(n_tokens) * size_t(n_in) * 4);
        sc::BufferPtr yb = be->alloc(size_t(n_tokens) * size_t(n_out) * 4);
        be->upload(*xb, 0, x.data(), xb->size());
        be->linear(wt, b.get(), sc::Rows{xb->f32(), n_in}, n_tokens, sc::Rows{yb->f32(), n_out});
        be->download(*yb, 0, y.mutable_data(), yb->size());
        be->sync();
        return y;
      },
      py::arg("w"), py::arg("type"), py::arg("n_out"), py::arg("n_in"), py::arg("x"), py::arg("bias") = py::none(),
      py::arg("n_threads") = 1, py::arg("matmul_precision") = "f32",
      "y = x W^T (+ bias) through the CPU backend's linear() on raw weight bytes of `type` (rows of n_in), with "
      "the backend's matmul_precision ('bf16' takes effect only where the start-up level has a bf16 GEMM).");

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
        const sc::Weight wt = be->prepare_weight(sc::HostMatrix{t, n_in, n_rows_total, w.data()});
        FloatArray out({py::ssize_t(ids.size()), py::ssize_t(n_in)});
        sc::BufferPtr ob = be->alloc(ids.size() * size_t(n_in) * 4);
        be->get_rows(wt, ids.data(), int(ids.size()), sc::Rows{ob->f32(), n_in});
        be->download(*ob, 0, out.mutable_data(), ob->size());
        be->sync();
        return out;
      },
      py::arg("w"), py::arg("type"), py::arg("n_rows"), py::arg("n_in"), py::arg("ids"),
      "Rows `ids` of a [n_rows, n_in] weight of `type`, as float32, through the CPU backend's get_rows().");
}

}  // namespace

void register_cuda_math_hooks(py::module_& m);   // testing_cuda_math.cpp
void register_backend_op_hooks(py::module_& m);  // testing_backend_ops.cpp

PYBIND11_MODULE(_testing, m) {
  m.doc() = "starcoder-cpp test hooks (kernels of each CPU level, single backend ops); not a user API";
  register_kernel_hooks(m);
  register_op_hooks(m);
  register_cuda_math_hooks(m);
  register_backend_op_hooks(m);
}
