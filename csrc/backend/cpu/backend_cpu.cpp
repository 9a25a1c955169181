// CPU backend: host memory, the kernel table of the best instruction-set
// level (kernels.h), threaded over output rows by a persistent pool.
#include "backend/cpu/backend_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kernels.h"
#include "format/quant.h"
#include "util/memory.h"
#include "util/thread_pool.h"

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

// One K or V row into the cache, in the cache's type.
void store_kv(const float* src, uint8_t* dst, int64_t n, TensorType type) {
  if (type == TensorType::F32) {
    std::memcpy(dst, src, size_t(n) * 4);
  } else if (type == TensorType::F16) {
    uint16_t* h = reinterpret_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
  } else {
    quantize_row(type, src, dst, n);
  }
}

// Host memory: owned (new[], left uninitialised so that pages become
// resident only when written) or borrowed (wrap_host).
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t n) : Buffer(nullptr, n), owned_(new uint8_t[n == 0 ? 1 : n]) { data_ = owned_.get(); }
  HostBuffer(void* p, size_t n) : Buffer(p, n) {}

 private:
  std::unique_ptr<uint8_t[]> owned_;
};

// Per sequence, keys and values of every layer: [n_layer][n_ctx][kv_dim] of
// the cache type, reserved on first use (a server's 64 slots cost nothing
// until they hold tokens).
class HostKvCache final : public KvCache {
 public:
  explicit HostKvCache(const KvCacheShape& s)
      : KvCache(s), row_bytes_(size_t(row_size(s.type, s.kv_dim))), k_(size_t(s.n_seq)), v_(size_t(s.n_seq)) {}
  void reserve(int seq) {
    check(seq);
    if (k_[size_t(seq)]) return;
    const size_t n = size_t(shape().n_layer) * size_t(shape().n_ctx) * row_bytes_;
    std::unique_ptr<uint8_t[]> k(new uint8_t[n]), v(new uint8_t[n]);
    k_[size_t(seq)] = std::move(k);
    v_[size_t(seq)] = std::move(v);
  }
  // Row `pos` of layer `layer` of a reserved sequence.
  uint8_t* k_row(int seq, int layer, int pos) const { return row(k_, seq, layer, pos); }
  uint8_t* v_row(int seq, int layer, int pos) const { return row(v_, seq, layer, pos); }

 private:
  void check(int seq) const {
    if (seq < 0 || seq >= shape().n_seq)
      throw std::invalid_argument("KV cache sequence " + std::to_string(seq) + " is out of range [0, " +
                                  std::to_string(shape().n_seq) + ")");
  }
  uint8_t* row(const std::vector<std::unique_ptr<uint8_t[]>>& mem, int seq, int layer, int pos) const {
    uint8_t* base = mem[size_t(seq)].get();
    if (!base) throw std::logic_error("KV cache sequence " + std::to_string(seq) + " used before kv_reserve");
    return base + (size_t(layer) * size_t(shape().n_ctx) + size_t(pos)) * row_bytes_;
  }
  size_t row_bytes_;
  std::vector<std::unique_ptr<uint8_t[]>> k_, v_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(int n_threads, bool bf16_products)
      : pool_(n_threads), bf16_products_(bf16_products && cpu_kernels().gemm_bf16.tile != nullptr) {}

  std::string name() const override { return std::string("cpu-") + cpu_kernels().level; }
  std::string matmul_precision() const override { return bf16_products_ ? "bf16" : "f32"; }
  uint64_t memory_bytes() const override { return host_memory_bytes(); }
  bool supports(TensorType t) const override {
    return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 || is_weight_quant_type(t);
  }

  // ---- memory: plain host memory, so copies are memcpy and sync is a no-op ----
  BufferPtr alloc(size_t n) override { return std::make_unique<HostBuffer>(n); }
  BufferPtr wrap_host(void* p, size_t n) override { return std::make_unique<HostBuffer>(p, n); }
  void upload(Buffer& dst, size_t offset, const void* src, size_t n) override {
    check_range(dst, offset, n);
    std::memcpy(static_cast<uint8_t*>(dst.data()) + offset, src, n);
  }
  void download(const Buffer& src, size_t offset, void* dst, size_t n) override {
    check_range(src, offset, n);
    std::memcpy(dst, static_cast<const uint8_t*>(src.data()) + offset, n);
  }
  void sync() override {}
  // The kernels read every supported type straight from the file mapping.
  Weight prepare_weight(const HostMatrix& m) override {
    Weight w;
    w.type = m.type;
    w.n_in = m.n_in;
    w.n_out = m.n_out;
    w.row_bytes = size_t(row_size(m.type, m.n_in));
    w.data = m.data;
    return w;
  }
  std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) override {
    return std::make_unique<HostKvCache>(shape);
  }
  void kv_reserve(KvCache& cache, int seq) override { static_cast<HostKvCache&>(cache).reserve(seq); }

  // ---- ops ----
  void linear(const Weight& w, const Buffer* bias_buf, Rows xr, int n_tokens, Rows yr) override {
    if (xr.stride != w.n_in || yr.stride != w.n_out)
      throw std::invalid_argument("linear: activation rows must be contiguous");
    const float* bias = bias_buf ? bias_buf->f32() : nullptr;
    const float* x = xr.data;
    float* y = yr.data;
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
  // 16-bit weights take the bf16 GEMM when the model asked for it.
  void linear_gemm(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) {
    const bool half = w.type == TensorType::F16 || w.type == TensorType::BF16;
    const FloatGemm& g = half && bf16_products_ ? cpu_kernels().gemm_bf16 : cpu_kernels().gemm;
    const int64_t n_in = w.n_in, n_out = w.n_out;
    const size_t packed_floats = gemm_packed_x_floats(g, n_tokens, n_in);
    if (packed_x_.size() < packed_floats) packed_x_.resize(packed_floats);
    float* packed = packed_x_.data();
    pool_.parallel_for(gemm_panels_x(g, n_tokens), 1, [&](int64_t p0, int64_t p1, int) {
      gemm_pack_x(g, x, n_tokens, n_in, p0, p1, packed);
    });
    pool_.parallel_for(n_out, g.nr, [&](int64_t o0, int64_t o1, int tid) {
      float* buf = scratch(tid, int64_t(gemm_scratch_floats(g, n_in))).data();
      gemm_columns(g, w.type, w.data, w.row_bytes, n_in, bias, packed, n_tokens, o0, o1, y, n_out, buf);
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
    }, chunks_per_thread(n_tokens));
  }

  // Chunks per thread for a matrix product of n_tokens rows. Decode and
  // batched decode stream the weights once: smaller chunks leave the
  // threads less unequal at the end of each product (2-core Zen 4, 1B,
  // tok/s of 64 decoded tokens, five alternating rounds, 4 / 16 chunks: F16
  // 11.0-11.7 / 11.5-12.8, higher in each round; Q4_0 32-38 and Q4_K_M
  // 34-37 either way, as a 4-sequence Q4_0 step, 72-74 ms). Prompts keep 4,
  // whose panels pack fewer times (256-token prompts measured 2-10% slower
  // with 16).
  static int64_t chunks_per_thread(int n_tokens) {
    return n_tokens < 16 ? 16 : ThreadPool::kChunksPerThread;
  }

  void get_rows(const Weight& table, const int32_t* ids, int n, Rows out) override {
    for (int i = 0; i < n; ++i) row_to_f32(table, ids[i], out.at(i).data);
  }

  void gather_rows(Rows src, const int* rows, int n, int64_t width, Rows dst) override {
    for (int i = 0; i < n; ++i) std::memcpy(dst.at(i).data, src.at(rows[i]).data, size_t(width) * 4);
  }

  void layer_norm(Rows xr, const Buffer& gamma, const Buffer& beta, int n_tokens, int64_t n, float eps,
                  Rows yr) override {
    const auto norm_row = cpu_kernels().layer_norm;
    const float *g = gamma.f32(), *b = beta.f32();
    pool_.parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; ++t) norm_row(xr.at(t).data, g, b, n, eps, yr.at(t).data);
    });
  }

  void gelu(Rows xr, int n_tokens, int64_t n, bool exact) override {
    const auto gelu_run = exact ? cpu_kernels().gelu_erf : cpu_kernels().gelu_tanh;
    float* x = xr.data;
    pool_.parallel_for(int64_t(n_tokens) * n, 1024, [&](int64_t i0, int64_t i1, int) { gelu_run(x + i0, i1 - i0); });
  }

  // Bound by memory: split only when there is enough to share.
  void add(Rows yr, Rows xr, int n_tokens, int64_t n) override {
    float* y = yr.data;
    const float* x = xr.data;
    pool_.parallel_for(int64_t(n_tokens) * n, 1 << 14, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
    });
  }

  void kv_write(KvCache& cache, int layer, Rows k, Rows v, const int* seqs, const int* pos, int n) override {
    const HostKvCache& c = static_cast<const HostKvCache&>(cache);
    const KvCacheShape& s = c.shape();
    for (int t = 0; t < n; ++t) {
      store_kv(k.at(t).data, c.k_row(seqs[t], layer, pos[t]), s.kv_dim, s.type);
      store_kv(v.at(t).data, c.v_row(seqs[t], layer, pos[t]), s.kv_dim, s.type);
    }
  }

  void attention(const AttentionOp& op) override {
    const HostKvCache& c = static_cast<const HostKvCache&>(*op.cache);
    AttentionArgs a;
    a.q = op.q.data;
    a.q_stride = op.q.stride;
    a.k_cache = c.k_row(op.seq, op.layer, 0);
    a.v_cache = c.v_row(op.seq, op.layer, 0);
    a.kv_type = c.shape().type;
    a.kv_dim = c.shape().kv_dim;
    a.n_tokens = op.n_tokens;
    a.n_past = op.n_past;
    a.n_head = op.n_head;
    a.n_head_kv = op.n_head_kv;
    a.head_dim = op.head_dim;
    a.scale = op.scale;
    a.out = op.out.data;
    attention_.run(a, pool_, cpu_kernels());
  }

 private:
  // Quantized weights (ggml's scheme): each activation row is quantized once
  // into the weight type's dot format (Q8_0 / Q8_1 / Q8_K), then every output
  // is a sum of integer block dot products. No weight row is ever expanded.
  // A level may run prompts (4+ tokens) through a GEMM that adds the block
  // products in another float order than its decode kernel (AVX2: 8-row
  // panels), so here a token's outputs depend on its batch by rounding only;
  // the row split between threads never changes them (slices start at
  // multiples of 16 rows).
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
    pool_.parallel_for(
        n_out, 16,
        [&](int64_t r0, int64_t r1, int) {
          dot(n_in, w.data + size_t(r0) * w.row_bytes, w.row_bytes, int(r1 - r0), act, act_row, n_tokens, y + r0,
              size_t(n_out));
          if (bias)
            for (int t = 0; t < n_tokens; ++t)
              for (int64_t r = r0; r < r1; ++r) y[t * n_out + r] += bias[r];
        },
        chunks_per_thread(n_tokens));
  }

  static void check_range(const Buffer& b, size_t offset, size_t n) {
    if (offset > b.size() || n > b.size() - offset)
      throw std::out_of_range("copy of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                              " overruns a buffer of " + std::to_string(b.size()));
  }

  // Per-thread scratch buffer, grown on demand and reused across calls.
  std::vector<float>& scratch(int tid, int64_t n) {
    std::vector<float>& s = scratch_[tid];
    if (int64_t(s.size()) < n) s.resize(size_t(n));
    return s;
  }

  ThreadPool pool_;
  const bool bf16_products_;  // asked for, and this level has a bf16 GEMM
  CpuAttention attention_{pool_.size()};
  std::vector<uint8_t> act_;  // quantized activation rows of the current linear()
  std::vector<float> packed_x_;  // activations of the current linear(), packed for the GEMM tiles
  std::vector<std::vector<float>> scratch_ = std::vector<std::vector<float>>(size_t(pool_.size()));
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, bool bf16_products) {
  if (n_threads <= 0) throw std::invalid_argument("the cpu backend needs at least one thread");
  return std::make_unique<CpuBackend>(n_threads, bf16_products);
}

}  // namespace sc
