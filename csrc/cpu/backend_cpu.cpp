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
    // Decode of 16-bit weights (one or two tokens) is bound by reading them:
    // each row is read once, straight from the file, in a dot product.
    if (n_tokens <= 2 && (w.type == TensorType::F16 || w.type == TensorType::BF16))
      return linear_half_fused(w, bias, x, n_tokens, y);
    // Everything else takes the GEMM, whose sums run in one order whatever
    // the number of tokens: with f32 weights a token's outputs do not depend
    // on the batch it came in (the last row of an all-logits prompt equals
    // the logits of the same prompt evaluated for its last token only).
    linear_gemm(w, bias, x, n_tokens, y);
  }

  // Prompt path: a register-tiled GEMM (kernels.h, gemm_columns). The
  // activations are packed once into tile-shaped panels, shared by the
  // threads; each thread then takes a slice of output columns (whole weight
  // panels) and packs its weights panel by panel into its own scratch.
  void linear_gemm(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) {
    const CpuKernels& k = cpu_kernels();
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const size_t packed_floats = gemm_packed_x_floats(k, n_tokens, n_in);
    if (packed_x_.size() < packed_floats) packed_x_.resize(packed_floats);
    float* packed = packed_x_.data();
    pool_.parallel_for(gemm_panels_x(k, n_tokens), 1, [&](int64_t p0, int64_t p1, int) {
      gemm_pack_x(k, x, n_tokens, n_in, p0, p1, packed);
    });
    pool_.parallel_for(n_out, k.gemm_nr, [&](int64_t o0, int64_t o1, int tid) {
      float* buf = scratch(tid, int64_t(gemm_scratch_floats(k, n_in))).data();
      gemm_columns(k, w.type, w.data, w.row_bytes, n_in, bias, packed, n_tokens, o0, o1, y, n_out, buf);
    });
  }

  // Decode path for f16 and bf16 weights: each row is read once and
  // converted in registers inside the dot product.
  void linear_half_fused(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) {
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const auto dot4 = w.type == TensorType::F16 ? cpu_kernels().dot4_f16 : cpu_kernels().dot4_bf16;
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
    const auto norm_row = cpu_kernels().layer_norm;
    pool_.parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) norm_row(x + t * n, gamma, beta, n, eps, y + t * n);
    });
  }

  void gelu(float* x, size_t n, bool exact) override {
    const auto gelu_run = exact ? cpu_kernels().gelu_erf : cpu_kernels().gelu_tanh;
    pool_.parallel_for(int64_t(n), 1024, [&](int64_t i0, int64_t i1, int) { gelu_run(x + i0, i1 - i0); });
  }

  // Bound by memory: split only when there is enough to share.
  void add(float* y, const float* x, size_t n) override {
    pool_.parallel_for(int64_t(n), 1 << 14, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
    });
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
  std::vector<float> packed_x_;  // activations of the current linear(), packed for the GEMM tiles
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(size_t(pool_.size()));
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace sc
