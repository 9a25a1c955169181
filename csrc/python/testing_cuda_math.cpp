// _testing hooks for the CUDA kernels' arithmetic headers (backend/cuda/*_math.cuh),
// compiled here by the host compiler: no GPU is needed to hold the integer
// sums, the activation quantizers, the online softmax and the LayerNorm step
// against the CPU reference kernels. Where a kernel reduces across a warp or
// a block, the hook replays that order (butterfly sums over 32 lanes, strided
// partial sums), so what is checked is the kernel's arithmetic, not a
// rewrite of the reference.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/elementwise_math.cuh"
#include "backend/cuda/quant_math.cuh"
#include "format/tensor_types.h"
#include "python/array_args.h"

namespace py = pybind11;
using sc::TensorType;
using scpy::ByteArray;
using scpy::FloatArray;

namespace {

// What a warp's __shfl_xor_sync butterfly leaves in every lane.
float warp_sum(std::vector<float> v) {
  for (int o = 16; o > 0; o >>= 1) {
    std::vector<float> n(32);
    for (int i = 0; i < 32; ++i) n[size_t(i)] = v[size_t(i)] + v[size_t(i ^ o)];
    v = n;
  }
  return v[0];
}
float warp_max(std::vector<float> v) {
  for (int o = 16; o > 0; o >>= 1) {
    std::vector<float> n(32);
    for (int i = 0; i < 32; ++i) n[size_t(i)] = fmaxf(v[size_t(i)], v[size_t(i ^ o)]);
    v = n;
  }
  return v[0];
}

bool is_k(TensorType t) {
  return t == TensorType::Q2_K || t == TensorType::Q3_K || t == TensorType::Q4_K || t == TensorType::Q5_K ||
         t == TensorType::Q6_K;
}

// Activation rows in the device's format for weight type t.
std::vector<uint8_t> quantize_rows(TensorType t, const float* x, int64_t n_rows, int64_t n, size_t* row_bytes) {
  const bool k = is_k(t);
  *row_bytes = k ? size_t(n / sc::QK_K) * sizeof(sc::block_q8_K) : size_t(n / sc::QK8_1) * sizeof(sc::block_q8_1);
  std::vector<uint8_t> out(*row_bytes * size_t(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    uint8_t* o = out.data() + size_t(r) * *row_bytes;
    if (k)
      for (int64_t b = 0; b < n / sc::QK_K; ++b)
        sc::cu::quantize_block_q8_K(x + r * n + b * sc::QK_K, reinterpret_cast<sc::block_q8_K*>(o) + b);
    else
      for (int64_t b = 0; b < n / sc::QK8_1; ++b)
        sc::cu::quantize_block_q8_1(x + r * n + b * sc::QK8_1, reinterpret_cast<sc::block_q8_1*>(o) + b);
  }
  return out;
}

// One output of the quantized product. "block": each block's parts summed in
// integers, then the block's float added in block order (the CPU reference's
// order: must equal it bit for bit). "warp": the kernel's order (a float per
// part, lane l taking parts l, l + 32, ..., then the butterfly).
template <class T>
float dot_row(const uint8_t* w, const uint8_t* act, int64_t n_in, bool warp_order) {
  using A = typename T::Act;
  const int64_t nb = n_in / T::kElems;
  const A* a = reinterpret_cast<const A*>(act);
  if (!warp_order) {
    float out = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      sc::cu::PartSums s;
      for (int p = 0; p < T::kParts; ++p) {
        const sc::cu::PartSums q = T::sums(w + b * T::kBytes, a + b, p);
        s.isum += q.isum;
        s.summs += q.summs;
      }
      out += T::combine(w + b * T::kBytes, a + b, s);
    }
    return out;
  }
  std::vector<float> lanes(32, 0.0f);
  for (int64_t it = 0; it < nb * T::kParts; ++it) {
    const int64_t b = it / T::kParts;
    const int p = int(it % T::kParts);
    const uint8_t* wb = w + b * T::kBytes;
    lanes[size_t(it % 32)] += T::combine(wb, a + b, T::sums(wb, a + b, p));
  }
  return warp_sum(lanes);
}

template <class T>
void matmul(const uint8_t* w, size_t rs, int64_t n_out, int64_t n_in, const uint8_t* act, size_t ars, int64_t n_tok,
            bool warp_order, float* y) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < n_out; ++r) y[t * n_out + r] = dot_row<T>(w + r * rs, act + t * ars, n_in, warp_order);
}

template <class T>
void dequant_rows(const uint8_t* w, size_t rs, int64_t n_rows, int64_t n_in, float* out) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t b = 0; b < n_in / T::kElems; ++b)
      for (int p = 0; p < T::kParts; ++p) T::dequant(w + r * rs + b * T::kBytes, p, out + r * n_in + b * T::kElems + 32 * p);
}

// Calls F<T>::run(args...) for the traits type of weight type t.
template <template <class> class F, class... Args>
void by_type(TensorType t, Args&&... args) {
  namespace cu = sc::cu;
  switch (t) {
    case TensorType::Q4_0: return F<cu::TQ4_0>::run(args...);
    case TensorType::Q4_1: return F<cu::TQ4_1>::run(args...);
    case TensorType::Q5_0: return F<cu::TQ5_0>::run(args...);
    case TensorType::Q5_1: return F<cu::TQ5_1>::run(args...);
    case TensorType::Q8_0: return F<cu::TQ8_0>::run(args...);
    case TensorType::Q2_K: return F<cu::TQ2_K>::run(args...);
    case TensorType::Q3_K: return F<cu::TQ3_K>::run(args...);
    case TensorType::Q4_K: return F<cu::TQ4_K>::run(args...);
    case TensorType::Q5_K: return F<cu::TQ5_K>::run(args...);
    case TensorType::Q6_K: return F<cu::TQ6_K>::run(args...);
    default: throw py::value_error("the cuda kernels have no quantized dot product for this type");
  }
}
template <class T>
struct MatmulF {
  template <class... A>
  static void run(A... a) { matmul<T>(a...); }
};
template <class T>
struct DequantF {
  template <class... A>
  static void run(A... a) { dequant_rows<T>(a...); }
};

FloatArray checked_2d(FloatArray x, const char* what) {
  if (x.ndim() != 2) throw py::value_error(std::string(what) + " must be two-dimensional");
  return x;
}

}  // namespace

void register_cuda_math_hooks(py::module_& m) {
  m.def(
      "cuda_math_quantize_act",
      [](const std::string& type, FloatArray x) {
        checked_2d(x, "x");
        const TensorType t = scpy::parse_type_name(type);
        const int64_t n = x.shape(1), rows = x.shape(0);
        if (t == TensorType::Q8_0) {  // the KV cache's blocks
          if (n % 32) throw py::value_error("row length must be a multiple of 32");
          const int64_t rs = n / 32 * int64_t(sizeof(sc::block_q8_0));
          ByteArray out({py::ssize_t(rows), py::ssize_t(rs)});
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < n / 32; ++b)
              sc::cu::quantize_block_q8_0(x.data() + r * n + 32 * b,
                                          out.mutable_data() + r * rs + b * int64_t(sizeof(sc::block_q8_0)));
          return out;
        }
        if (t != TensorType::Q8_1 && t != TensorType::Q8_K) throw py::value_error("type must be q8_0, q8_1 or q8_k");
        if (n % (t == TensorType::Q8_K ? 256 : 32)) throw py::value_error("row length is not whole blocks");
        size_t rs;
        // Q8_K rows for any k-quant, Q8_1 rows for any 32-element type.
        const std::vector<uint8_t> q = quantize_rows(t == TensorType::Q8_K ? TensorType::Q4_K : TensorType::Q4_0,
                                                     x.data(), rows, n, &rs);
        ByteArray out({py::ssize_t(rows), py::ssize_t(rs)});
        std::copy(q.begin(), q.end(), out.mutable_data());
        return out;
      },
      py::arg("type"), py::arg("x"), "Rows of x quantized by the CUDA kernels' block quantizers (q8_0, q8_1, q8_k).");

  m.def(
      "cuda_math_quant_matmul",
      [](const std::string& type, ByteArray w, int64_t n_out, int64_t n_in, FloatArray x, const std::string& order) {
        checked_2d(x, "x");
        const TensorType t = scpy::parse_type_name(type);
        if (x.shape(1) != n_in) throw py::value_error("x must have n_in columns");
        const int64_t rs = sc::row_size(t, n_in);
        if (rs < 0 || w.size() != n_out * rs) throw py::value_error("weight bytes do not match (n_out, n_in)");
        if (order != "block" && order != "warp") throw py::value_error("order must be 'block' or 'warp'");
        size_t ars;
        const std::vector<uint8_t> act = quantize_rows(t, x.data(), x.shape(0), n_in, &ars);
        FloatArray y({py::ssize_t(x.shape(0)), py::ssize_t(n_out)});
        by_type<MatmulF>(t, w.data(), size_t(rs), n_out, n_in, act.data(), ars, int64_t(x.shape(0)), order == "warp",
                         y.mutable_data());
        return y;
      },
      py::arg("type"), py::arg("w"), py::arg("n_out"), py::arg("n_in"), py::arg("x"), py::arg("order"),
      "y = x W^T by the CUDA kernels' arithmetic on the host: activations quantized by the device quantizers, "
      "integer part sums with the portable dp4a, summed in 'block' order (the CPU reference's) or 'warp' order "
      "(the kernel's).");

  m.def(
      "cuda_math_dequantize",
      [](const std::string& type, ByteArray w, int64_t n_rows, int64_t n_in) {
        const TensorType t = scpy::parse_type_name(type);
        const int64_t rs = sc::row_size(t, n_in);
        if (rs < 0 || w.size() != n_rows * rs) throw py::value_error("weight bytes do not match (n_rows, n_in)");
        FloatArray out({py::ssize_t(n_rows), py::ssize_t(n_in)});
        by_type<DequantF>(t, w.data(), size_t(rs), n_rows, n_in, out.mutable_data());
        return out;
      },
      py::arg("type"), py::arg("w"), py::arg("n_rows"), py::arg("n_in"),
      "Rows of a quantized matrix as float32 by the CUDA get_rows kernel's part dequantizers.");

  m.def(
      "cuda_math_half",
      [](FloatArray x) {
        py::array_t<uint16_t> bits(x.size());
        FloatArray back(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i) {
          bits.mutable_data()[i] = sc::cu::float_to_half_bits(x.data()[i]);
          back.mutable_data()[i] = sc::cu::half_bits_to_float(bits.data()[i]);
        }
        return py::make_tuple(bits, back);
      },
      py::arg("x"), "(half bits of x, those halves as float32) by the CUDA headers' host conversions.");

  m.def(
      "cuda_math_gelu",
      [](FloatArray x, bool exact) {
        FloatArray y(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i)
          y.mutable_data()[i] = exact ? sc::cu::gelu_erf(x.data()[i]) : sc::cu::gelu_tanh(x.data()[i]);
        return y;
      },
      py::arg("x"), py::arg("exact"), "GELU of each element by the CUDA kernel's formula.");

  m.def(
      "cuda_math_layer_norm",
      [](FloatArray x, FloatArray gamma, FloatArray beta, float eps) {
        checked_2d(x, "x");
        const int64_t n = x.shape(1);
        if (gamma.size() != n || beta.size() != n) throw py::value_error("gamma and beta must have n elements");
        constexpr int kThreads = 256;  // as layer_norm_kernel: strided partials, warp butterflies, then warp 0's
        auto block_sum = [](const std::vector<float>& part) {
          std::vector<float> warps(32, 0.0f);
          for (int w = 0; w < kThreads / 32; ++w)
            warps[size_t(w)] = warp_sum(std::vector<float>(part.begin() + 32 * w, part.begin() + 32 * w + 32));
          return warp_sum(warps);
        };
        FloatArray y({x.shape(0), x.shape(1)});
        for (py::ssize_t r = 0; r < x.shape(0); ++r) {
          const float* xr = x.data() + r * n;
          std::vector<float> part(kThreads, 0.0f);
          for (int64_t i = 0; i < n; ++i) part[size_t(i % kThreads)] += xr[i];
          const float mean = block_sum(part) / float(n);
          std::fill(part.begin(), part.end(), 0.0f);
          for (int64_t i = 0; i < n; ++i) part[size_t(i % kThreads)] += (xr[i] - mean) * (xr[i] - mean);
          const float inv = sc::cu::layer_norm_inv_std(block_sum(part), n, eps);
          for (int64_t i = 0; i < n; ++i)
            y.mutable_data()[r * n + i] = sc::cu::layer_norm_out(xr[i], mean, inv, gamma.data()[i], beta.data()[i]);
        }
        return y;
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
      "LayerNorm of each row in the CUDA kernel's order of sums (256 threads).");

  m.def(
      "cuda_math_attention",
      [](FloatArray q, FloatArray k, FloatArray v, int n_past, int n_head, int n_head_kv) {
        checked_2d(q, "q");
        checked_2d(k, "k_cache");
        checked_2d(v, "v_cache");
        if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv || q.shape(1) % n_head)
          throw py::value_error("bad head counts");
        const int d = int(q.shape(1) / n_head), n_tok = int(q.shape(0));
        const int64_t kv_dim = int64_t(n_head_kv) * d;
        if (k.shape(1) != kv_dim || v.shape(1) != kv_dim || k.shape(0) < n_past + n_tok || v.shape(0) < n_past + n_tok)
          throw py::value_error("caches must have shape (>= n_past + n_tokens, n_head_kv * head_dim)");
        const float scale = 1.0f / std::sqrt(float(d));
        FloatArray out({q.shape(0), q.shape(1)});
        // As attention_kernel: per (token, head), tiles of 32 keys, one per lane.
        for (int t = 0; t < n_tok; ++t)
          for (int h = 0; h < n_head; ++h) {
            const int g = h / (n_head / n_head_kv), n_vis = n_past + t + 1;
            std::vector<float> qs(static_cast<size_t>(d), 0.0f), o(static_cast<size_t>(d), 0.0f);
            for (int c = 0; c < d; ++c) qs[size_t(c)] = q.data()[int64_t(t) * q.shape(1) + int64_t(h) * d + c] * scale;
            sc::cu::SoftmaxState st = sc::cu::softmax_start();
            for (int kb = 0; kb < n_vis; kb += sc::cu::kAttnKeysPerTile) {
              std::vector<float> score(32, -INFINITY), p(32, 0.0f);
              for (int l = 0; l < 32 && kb + l < n_vis; ++l) {
                const float* kr = k.data() + int64_t(kb + l) * kv_dim + int64_t(g) * d;
                float s = 0.0f;
                for (int c = 0; c < d; ++c) s += qs[size_t(c)] * kr[c];
                score[size_t(l)] = s;
              }
              const float alpha = sc::cu::softmax_rescale(st, warp_max(score));
              for (int l = 0; l < 32 && kb + l < n_vis; ++l) p[size_t(l)] = sc::cu::softmax_weight(st, score[size_t(l)]);
              st.l += warp_sum(p);
              for (int c = 0; c < d; ++c) o[size_t(c)] *= alpha;
              for (int l = 0; l < 32 && kb + l < n_vis; ++l) {
                const float* vr = v.data() + int64_t(kb + l) * kv_dim + int64_t(g) * d;
                for (int c = 0; c < d; ++c) o[size_t(c)] += p[size_t(l)] * vr[c];
              }
            }
            for (int c = 0; c < d; ++c) out.mutable_data()[int64_t(t) * q.shape(1) + int64_t(h) * d + c] = o[size_t(c)] / st.l;
          }
        return out;
      },
      py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("n_past"), py::arg("n_head"), py::arg("n_head_kv"),
      "Causal attention of q over float32 caches by the CUDA kernel's online softmax, in its tile order.");

  m.def(
      "cuda_math_softmax_merge",
      [](float m_a, float l_a, float m_b, float l_b) {
        float wa, wb;
        const sc::cu::SoftmaxState s = sc::cu::softmax_merge({m_a, l_a}, {m_b, l_b}, &wa, &wb);
        return py::make_tuple(s.m, s.l, wa, wb);
      },
      py::arg("m_a"), py::arg("l_a"), py::arg("m_b"), py::arg("l_b"),
      "Merge of two online-softmax states: (m, l, weight of a, weight of b).");
}
