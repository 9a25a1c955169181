// CPU backend: plain C++ reference kernels, threaded over output rows.
// Written so the compiler can vectorise the inner loops (independent
// accumulators); the SIMD-dispatched kernels come later beside these.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend.h"
#include "cpu/attention.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "quant.h"

namespace sc {
namespace {

// Converts one weight row to float32 into `out` (n_in floats).
void row_to_f32(const Weight& w, int64_t row, float* out) {
  const uint8_t* p = w.data + size_t(row) * w.row_bytes;
  switch (w.type) {
    case TensorType::F32:
      std::memcpy(out, p, size_t(w.n_in) * 4);
      return;
    case TensorType::F16:
      cpu_kernels().f16_to_f32(reinterpret_cast<const uint16_t*>(p), out, w.n_in);
      return;
    case TensorType::BF16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
      for (int64_t i = 0; i < w.n_in; ++i) out[i] = bf16_to_fp32(h[i]);
      return;
    }
    default:
      // block-quantized types: dequantize this one row (get_rows, tests)
      dequantize_row(w.type, p, out, w.n_in);
      return;
  }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads > 0 ? n_threads : default_thread_count()) {}

  std::string name() const override { return std::string("cpu-") + cpu_kernels().level; }
  int n_threads() const override { return pool_.size(); }
  bool supports(TensorType t) const override {
    return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 || is_weight_quant_type(t);
  }

  void linear(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) override {
    if (is_quantized(w.type)) return linear_quantized(w, bias, x, n_tokens, y);
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const CpuKernels& k = cpu_kernels();
    // Each thread takes a slice of output rows. Tokens are processed in
    // blocks small enough for their activations to stay in L2 while the
    // slice's rows stream past, 4 rows at a time (converted to f32 once per
    // token block), each activation row loaded once for all 4.
    constexpr int kTokenBlock = 32;
    if (w.type == TensorType::F16 && n_tokens <= 2) return linear_f16_fused(w, bias, x, n_tokens, y);
    pool_.parallel_for(n_out, 4, [&](int64_t r0, int64_t r1, int tid) {
      std::vector<float>& buf = scratch(tid, 4 * n_in);
      const float* rows[4];
      for (int t0 = 0; t0 < n_tokens; t0 += kTokenBlock) {
        const int t1 = std::min(n_tokens, t0 + kTokenBlock);
        for (int64_t r = r0; r < r1; r += 4) {
          const int nr = int(std::min<int64_t>(4, r1 - r));
          for (int i = 0; i < 4; ++i) {
            const int src = std::min(i, nr - 1);  // pad a short block by repeating its last row
            if (w.type == TensorType::F32) {
              rows[i] = reinterpret_cast<const float*>(w.data + size_t(r + src) * w.row_bytes);
            } else {
              if (i < nr) row_to_f32(w, r + i, buf.data() + i * n_in);
              rows[i] = buf.data() + src * n_in;
            }
          }
          int t = t0;
          for (; t + 2 <= t1; t += 2) {
            float out[8];
            k.dot4x2_f32(rows[0], rows[1], rows[2], rows[3], x + t * n_in, x + (t + 1) * n_in, n_in, out);
            for (int i = 0; i < nr; ++i) {
              y[t * n_out + r + i] = out[i] + (bias ? bias[r + i] : 0.f);
              y[(t + 1) * n_out + r + i] = out[4 + i] + (bias ? bias[r + i] : 0.f);
            }
          }
          if (t < t1) {
            float out[4];
            k.dot4_f32(rows[0], rows[1], rows[2], rows[3], x + t * n_in, n_in, out);
            for (int i = 0; i < nr; ++i) y[t * n_out + r + i] = out[i] + (bias ? bias[r + i] : 0.f);
          }
        }
      }
    });
  }

  // Decode path for f16 weights: each row is read once and converted in
  // registers inside the dot product.
  void linear_f16_fused(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) {
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const auto dot4 = cpu_kernels().dot4_f16;
    pool_.parallel_for(n_out, 4, [&](int64_t r0, int64_t r1, int) {
      const uint16_t* rows[4];
      for (int64_t r = r0; r < r1; r += 4) {
        const int nr = int(std::min<int64_t>(4, r1 - r));
        for (int i = 0; i < 4; ++i)
          rows[i] = reinterpret_cast<const uint16_t*>(w.data + size_t(r + std::min(i, nr - 1)) * w.row_bytes);
        for (int t = 0; t < n_tokens; ++t) {
          float out[4];
          dot4(rows[0], rows[1], rows[2], rows[3], x + t * n_in, n_in, out);
          for (int i = 0; i < nr; ++i) y[t * n_out + r + i] = out[i] + (bias ? bias[r + i] : 0.f);
        }
      }
    });
  }

  void get_rows(const Weight& table, const int32_t* ids, int n, float* out) override {
    for (int i = 0; i < n; ++i) row_to_f32(table, ids[i], out + int64_t(i) * table.n_in);
  }

  void layer_norm(const float* x, const float* gamma, const float* beta, int n_tokens, int64_t n, float eps,
                  float* y) override {
    pool_.parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) {
        const float* xr = x + t * n;
        float* yr = y + t * n;
        double mean = 0.0;
        for (int64_t i = 0; i < n; ++i) mean += xr[i];
        mean /= double(n);
        double var = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const double d = xr[i] - mean;
          var += d * d;
        }
        var /= double(n);
        const float inv = float(1.0 / std::sqrt(var + double(eps)));
        const float m = float(mean);
        for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * inv * gamma[i] + beta[i];
      }
    });
  }

  void gelu(float* x, size_t n, bool exact) override {
    pool_.parallel_for(int64_t(n), 1024, [&](int64_t i0, int64_t i1, int) {
      if (exact) {
        for (int64_t i = i0; i < i1; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * float(M_SQRT1_2)));
      } else {
        const float c = 0.7978845608028654f;  // sqrt(2/pi)
        for (int64_t i = i0; i < i1; ++i) {
          const float v = x[i];
          x[i] = 0.5f * v * (1.0f + std::tanh(c * (v + 0.044715f * v * v * v)));
        }
      }
    });
  }

  void add(float* y, const float* x, size_t n) override {
    for (size_t i = 0; i < n; ++i) y[i] += x[i];
  }

  void attention(const AttentionArgs& a) override { attention_.run(a, pool_, cpu_kernels()); }

 private:
  // Quantized weights (ggml's scheme): each activation row is quantized once
  // into the weight type's dot format (Q8_0 / Q8_1 / Q8_K), then every output
  // is a sum of integer block dot products. No weight row is ever expanded.
  void linear_quantized(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) {
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const CpuKernels& k = cpu_kernels();
    const TensorType dt = vec_dot_type(w.type);
    const QuantizeActFn quantize_act = k.quantize_act[act_slot(dt)];
    const QuantDotFn dot = k.quant_dot[quant_slot(w.type)];
    const size_t act_row = size_t(row_size(dt, n_in));
    if (act_.size() < act_row * size_t(n_tokens)) act_.resize(act_row * size_t(n_tokens));
    uint8_t* act = act_.data();
    pool_.parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) quantize_act(x + t * n_in, act + size_t(t) * act_row, n_in);
    });
    pool_.parallel_for(n_out, 16, [&](int64_t r0, int64_t r1, int) {
      dot(n_in, w.data + size_t(r0) * w.row_bytes, w.row_bytes, int(r1 - r0), act, act_row, n_tokens, y + r0,
          size_t(n_out));
      if (bias)
        for (int t = 0; t < n_tokens; ++t)
          for (int64_t r = r0; r < r1; ++r) y[t * n_out + r] += bias[r];
    });
  }

  // Per-thread scratch buffer, grown on demand and reused across calls.
  std::vector<float>& scratch(int tid, int64_t n) {
    std::vector<float>& s = scratch_[tid];
    if (int64_t(s.size()) < n) s.resize(size_t(n));
    return s;
  }

  ThreadPool pool_;
  CpuAttention attention_{pool_.size()};
  std::vector<uint8_t> act_;  // quantized activation rows of the current linear()
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(size_t(pool_.size()));
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace sc
