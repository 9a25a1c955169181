// The seam between the model and the hardware. The forward pass in model.cpp
// is written only in terms of these ops; a backend decides how they run.
// Today: the CPU backend (cpu/backend_cpu.cpp). A CUDA backend implements the
// same interface.
//
// Conventions: activations are row-major float32 [n_tokens, width]. A Weight
// is a 2-D matrix of n_out rows, each n_in elements long, stored in its file
// type (a view into the memory-mapped model file).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "tensor_types.h"

namespace sc {

struct Weight {
  TensorType type = TensorType::F32;
  int64_t n_in = 0;    // row length (GGUF ne[0])
  int64_t n_out = 0;   // number of rows (GGUF ne[1])
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;
};

// One attention call: queries for n_tokens new positions starting at
// position n_past, against a KV cache that already holds their keys/values.
struct AttentionArgs {
  const float* q;          // [n_tokens, q_stride]; head h at q + h*head_dim
  int64_t q_stride;
  const void* k_cache;     // [n_ctx] rows of kv_dim elements of kv_type; kv head g
  const void* v_cache;     //   is elements [g*head_dim, (g+1)*head_dim) of a row
  TensorType kv_type;      // F32, F16 or Q8_0 (head_dim a multiple of 32)
  int64_t kv_dim;          // n_head_kv * head_dim
  int n_tokens;
  int n_past;
  int n_head;
  int n_head_kv;           // 1 = multi-query: every query head shares one K/V head
  int head_dim;
  float scale;             // usually 1/sqrt(head_dim)
  float* out;              // [n_tokens, n_head*head_dim]
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int n_threads() const = 0;
  // Whether linear/get_rows can run weights stored as `t`.
  virtual bool supports(TensorType t) const = 0;

  // y[t] = W x[t] + bias (bias may be null), for t < n_tokens.
  // x has row stride w.n_in, y has row stride w.n_out.
  virtual void linear(const Weight& w, const float* bias, const float* x, int n_tokens, float* y) = 0;
  // out[i] = table row ids[i], converted to float32.
  virtual void get_rows(const Weight& table, const int32_t* ids, int n, float* out) = 0;
  // y[t] = (x[t] - mean) / sqrt(var + eps) * gamma + beta, per row of width n.
  virtual void layer_norm(const float* x, const float* gamma, const float* beta, int n_tokens, int64_t n,
                          float eps, float* y) = 0;
  // In place. exact: erf GELU; else the tanh approximation (gelu_pytorch_tanh).
  virtual void gelu(float* x, size_t n, bool exact) = 0;
  // y += x
  virtual void add(float* y, const float* x, size_t n) = 0;
  // Causal attention of new queries over the cache (see AttentionArgs).
  virtual void attention(const AttentionArgs& args) = 0;
};

// n_threads <= 0: one per available core.
std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace sc
