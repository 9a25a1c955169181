// The seam between the model and the hardware. A backend owns memory (the
// activation buffers, the KV cache, the prepared weights) and runs the ops
// of the forward pass on it; the model only says what to compute. The host
// touches backend memory through upload/download alone, so a GPU backend
// keeps activations and the cache on the device and copies one thing back
// per step: the logits of the rows asked for.
//
// Conventions: activations are row-major float32 [n_tokens, width]. A Weight
// is a 2-D matrix of n_out rows, each n_in elements long, in its file type.
// Small host arrays that describe a batch (token ids, positions, sequence
// ids, row lists) are passed as host pointers: they are arguments, not data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "format/tensor_types.h"

namespace sc {

// Memory owned by one backend: host memory for the CPU, device memory for a
// GPU. Only that backend's ops read or write through data().
class Buffer {
 public:
  virtual ~Buffer() = default;
  void* data() const { return data_; }
  size_t size() const { return size_; }
  float* f32() const { return static_cast<float*>(data_); }

 protected:
  Buffer(void* data, size_t size) : data_(data), size_(size) {}
  void* data_;
  size_t size_;
};
using BufferPtr = std::unique_ptr<Buffer>;

// Rows of float32 values in backend memory: row r starts at data + r * stride.
struct Rows {
  float* data = nullptr;
  int64_t stride = 0;
  Rows at(int64_t row, int64_t col = 0) const { return {data + row * stride + col, stride}; }
};

// A weight matrix in host memory as the file holds it (a view into the mapping).
struct HostMatrix {
  TensorType type = TensorType::F32;
  int64_t n_in = 0;   // row length (GGUF ne[0])
  int64_t n_out = 0;  // number of rows (GGUF ne[1])
  const uint8_t* data = nullptr;
};

// A weight matrix as a backend runs it (made by Backend::prepare_weight):
// data is a backend address, backed by `storage` when the backend made a
// copy (a GPU upload, a repacked layout), or by the file mapping when not.
struct Weight {
  TensorType type = TensorType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;
  BufferPtr storage;
};

// The KV cache: for each of n_seq independent sequences and each layer,
// n_ctx rows of kv_dim elements of `type`, keys and values apart.
struct KvCacheShape {
  TensorType type = TensorType::F16;  // F32, F16 or Q8_0 (kv_dim a multiple of 32)
  int n_layer = 0;
  int n_ctx = 0;
  int n_seq = 0;
  int64_t kv_dim = 0;  // n_head_kv * head_dim
};
class KvCache {
 public:
  explicit KvCache(const KvCacheShape& shape) : shape_(shape) {}
  virtual ~KvCache() = default;
  const KvCacheShape& shape() const { return shape_; }

 private:
  KvCacheShape shape_;
};

// One attention call: queries for n_tokens consecutive new positions of one
// sequence, starting at position n_past, against that sequence's cache,
// which already holds their own keys and values.
struct AttentionOp {
  Rows q;              // row t: the n_head query heads of token t, head h at h*head_dim
  const KvCache* cache;
  int layer;
  int seq;
  int n_tokens;
  int n_past;
  int n_head;
  int n_head_kv;       // 1 = multi-query: every query head shares one K/V head
  int head_dim;
  float scale;         // usually 1/sqrt(head_dim)
  Rows out;            // row t: n_head * head_dim values
};

class Backend {
 public:
  virtual ~Backend() = default;
  // What runs ("cpu-avx512", "cuda-sm90 ..."), for info and logs.
  virtual std::string name() const = 0;
  // The products of F16/BF16 weights in prompts: "f32", or "bf16" when the
  // model asked for it and this backend multiplies bfloat16 in hardware.
  virtual std::string matmul_precision() const { return "f32"; }
  // Whether linear/get_rows can run weights stored as `t`.
  virtual bool supports(TensorType t) const = 0;

  // ---- memory ----
  // Bytes of the memory that this backend's buffers and caches come from
  // (host RAM for the CPU, the device's for a GPU); 0 when unknown. The
  // model refuses up front what cannot fit (Model::check_memory).
  virtual uint64_t memory_bytes() const = 0;
  // n bytes of backend memory, uninitialised.
  virtual BufferPtr alloc(size_t n) = 0;
  // Host memory the backend can address directly (the CPU wraps it, no copy),
  // or nullptr when it cannot (a GPU): the caller then allocates and downloads.
  virtual BufferPtr wrap_host(void* p, size_t n) = 0;
  virtual void upload(Buffer& dst, size_t offset, const void* src, size_t n) = 0;
  virtual void download(const Buffer& src, size_t offset, void* dst, size_t n) = 0;
  // Waits until every op issued so far has finished (downloads included).
  virtual void sync() = 0;
  // A weight ready to run, from its bytes in the file (kept as a view, repacked
  // or uploaded once, as the backend likes).
  virtual Weight prepare_weight(const HostMatrix& m) = 0;
  virtual std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) = 0;
  // Makes sequence `seq`'s cache memory ready; throws (and changes nothing)
  // if it cannot be had.
  virtual void kv_reserve(KvCache& cache, int seq) = 0;

  // ---- ops (arguments in backend memory unless said otherwise) ----
  // y[t] = W x[t] + bias (bias null: none), for t < n_tokens; x rows are
  // w.n_in long, y rows w.n_out long, both contiguous.
  virtual void linear(const Weight& w, const Buffer* bias, Rows x, int n_tokens, Rows y) = 0;
  // out[i] = table row ids[i] (ids on the host), converted to float32.
  virtual void get_rows(const Weight& table, const int32_t* ids, int n, Rows out) = 0;
  // dst[i] = src[rows[i]] (rows on the host), width floats each; dst and src do not overlap.
  virtual void gather_rows(Rows src, const int* rows, int n, int64_t width, Rows dst) = 0;
  // y[t] = (x[t] - mean) / sqrt(var + eps) * gamma + beta, per row of width n.
  virtual void layer_norm(Rows x, const Buffer& gamma, const Buffer& beta, int n_tokens, int64_t n, float eps,
                          Rows y) = 0;
  // In place over n_tokens contiguous rows of width n. exact: erf GELU; else
  // the tanh approximation (gelu_pytorch_tanh).
  virtual void gelu(Rows x, int n_tokens, int64_t n, bool exact) = 0;
  // y += x over n_tokens contiguous rows of width n.
  virtual void add(Rows y, Rows x, int n_tokens, int64_t n) = 0;
  // Stores the keys and values of n tokens of layer `layer`: token i goes to
  // sequence seqs[i] at position pos[i] (both on the host).
  virtual void kv_write(KvCache& cache, int layer, Rows k, Rows v, const int* seqs, const int* pos, int n) = 0;
  // Causal attention of new queries over a sequence's cache (see AttentionOp).
  virtual void attention(const AttentionOp& op) = 0;
};

}  // namespace sc
