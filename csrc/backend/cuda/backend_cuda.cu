// CUDA backend: device memory for weights, activations and the KV cache; one
// stream; the kernels of kernels_*.cu. Built as its own shared library
// (libstarcoder_cuda.so, static cudart) that the registry dlopens on first use
// through starcoder_cuda_create_backend (backend/plugin_abi.h).
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "backend/backend.h"
#include "backend/cuda/kernels.h"
#include "backend/plugin_abi.h"
#include "format/tensor_types.h"

namespace sc {
namespace {

using cu::check;

class DeviceBuffer final : public Buffer {
 public:
  explicit DeviceBuffer(size_t n) : Buffer(nullptr, n) {
    check(cudaMalloc(&data_, n == 0 ? 1 : n), ("cudaMalloc of " + std::to_string(n) + " bytes").c_str());
  }
  ~DeviceBuffer() override { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Grows on demand, for per-op scratch (quantized activations, host arrays).
// Growing frees the old memory, which cudaFree does only after pending work.
class Scratch {
 public:
  void* get(size_t n) {
    if (!buf_ || buf_->size() < n) buf_ = std::make_unique<DeviceBuffer>(n + n / 2);
    return buf_->data();
  }

 private:
  std::unique_ptr<DeviceBuffer> buf_;
};

// Per sequence, keys and values of every layer in device memory:
// [n_layer][n_ctx] rows of kv_dim elements of the cache type.
class DeviceKvCache final : public KvCache {
 public:
  explicit DeviceKvCache(const KvCacheShape& s)
      : KvCache(s), row_bytes_(size_t(row_size(s.type, s.kv_dim))), k_(size_t(s.n_seq)), v_(size_t(s.n_seq)) {}
  void reserve(int seq) {
    check_seq(seq);
    if (k_[size_t(seq)]) return;
    const size_t n = size_t(shape().n_layer) * size_t(shape().n_ctx) * row_bytes_;
    auto k = std::make_unique<DeviceBuffer>(n);
    auto v = std::make_unique<DeviceBuffer>(n);
    k_[size_t(seq)] = std::move(k);
    v_[size_t(seq)] = std::move(v);
  }
  uint8_t* k_row(int seq, int layer, int pos) const { return row(k_, seq, layer, pos); }
  uint8_t* v_row(int seq, int layer, int pos) const { return row(v_, seq, layer, pos); }
  size_t row_bytes() const { return row_bytes_; }

 private:
  void check_seq(int seq) const {
    if (seq < 0 || seq >= shape().n_seq)
      throw std::invalid_argument("KV cache sequence " + std::to_string(seq) + " is out of range [0, " +
                                  std::to_string(shape().n_seq) + ")");
  }
  uint8_t* row(const std::vector<std::unique_ptr<DeviceBuffer>>& mem, int seq, int layer, int pos) const {
    check_seq(seq);
    if (!mem[size_t(seq)]) throw std::logic_error("KV cache sequence " + std::to_string(seq) + " used before kv_reserve");
    if (pos < 0 || pos >= shape().n_ctx) throw std::out_of_range("KV cache position " + std::to_string(pos));
    return static_cast<uint8_t*>(mem[size_t(seq)]->data()) +
           (size_t(layer) * size_t(shape().n_ctx) + size_t(pos)) * row_bytes_;
  }
  size_t row_bytes_;
  std::vector<std::unique_ptr<DeviceBuffer>> k_, v_;
};

bool is_quant_weight(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: case TensorType::Q4_1: case TensorType::Q5_0: case TensorType::Q5_1:
    case TensorType::Q8_0: case TensorType::Q2_K: case TensorType::Q3_K: case TensorType::Q4_K:
    case TensorType::Q5_K: case TensorType::Q6_K:
      return true;
    default:
      return false;
  }
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp p;
    check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    name_ = "cuda-sm" + std::to_string(p.major * 10 + p.minor) + " " + p.name;
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }
  bool supports(TensorType t) const override {
    return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16 || is_quant_weight(t);
  }

  // ---- memory ----
  uint64_t memory_bytes() const override {
    size_t free_b = 0, total_b = 0;
    return cudaMemGetInfo(&free_b, &total_b) == cudaSuccess ? uint64_t(total_b) : 0;
  }
  BufferPtr alloc(size_t n) override { return std::make_unique<DeviceBuffer>(n); }
  BufferPtr wrap_host(void*, size_t) override { return nullptr; }  // host memory is not device memory
  void upload(Buffer& dst, size_t offset, const void* src, size_t n) override {
    check_range(dst, offset, n);
    // From pageable memory: returns once src is staged, so the caller may reuse it.
    check(cudaMemcpyAsync(static_cast<uint8_t*>(dst.data()) + offset, src, n, cudaMemcpyHostToDevice, stream_),
          "upload");
  }
  void download(const Buffer& src, size_t offset, void* dst, size_t n) override {
    check_range(src, offset, n);
    check(cudaMemcpyAsync(dst, static_cast<const uint8_t*>(src.data()) + offset, n, cudaMemcpyDeviceToHost, stream_),
          "download");
  }
  void sync() override { check(cudaStreamSynchronize(stream_), "sync (an earlier kernel failed)"); }
  Weight prepare_weight(const HostMatrix& m) override {
    if (!supports(m.type)) throw std::invalid_argument("the cuda backend cannot run weights of type id " +
                                                       std::to_string(unsigned(m.type)));
    Weight w;
    w.type = m.type;
    w.n_in = m.n_in;
    w.n_out = m.n_out;
    const int64_t rs = row_size(m.type, m.n_in);
    if (rs < 0) throw std::invalid_argument("weight rows are not a whole number of blocks");
    w.row_bytes = size_t(rs);
    const size_t bytes = w.row_bytes * size_t(m.n_out);
    w.storage = std::make_unique<DeviceBuffer>(bytes);
    check(cudaMemcpy(w.storage->data(), m.data, bytes, cudaMemcpyHostToDevice), "weight upload");
    w.data = static_cast<const uint8_t*>(w.storage->data());
    return w;
  }
  std::unique_ptr<KvCache> make_kv_cache(const KvCacheShape& shape) override {
    if (shape.type != TensorType::F32 && shape.type != TensorType::F16 && shape.type != TensorType::Q8_0)
      throw std::invalid_argument("the cuda backend keeps its KV cache in f32, f16 or q8_0");
    return std::make_unique<DeviceKvCache>(shape);
  }
  void kv_reserve(KvCache& cache, int seq) override { static_cast<DeviceKvCache&>(cache).reserve(seq); }

  // ---- ops ----
  void linear(const Weight& w, const Buffer* bias, Rows x, int n_tokens, Rows y) override {
    if (x.stride != w.n_in || y.stride != w.n_out)
      throw std::invalid_argument("linear: activation rows must be contiguous");
    if (n_tokens <= 0) return;
    const float* b = bias ? bias->f32() : nullptr;
    if (is_quant_weight(w.type)) {
      uint8_t* act = static_cast<uint8_t*>(act_.get(cu::act_row_bytes(w.type, w.n_in) * size_t(n_tokens)));
      cu::quantize_acts(w.type, x.data, n_tokens, w.n_in, act, stream_);
      cu::linear_quant(w.type, w.data, w.row_bytes, w.n_in, w.n_out, act, n_tokens, b, y.data, stream_);
    } else {
      cu::linear_float(w.type, w.data, w.row_bytes, w.n_in, w.n_out, x.data, n_tokens, b, y.data, stream_);
    }
  }
  void get_rows(const Weight& table, const int32_t* ids, int n, Rows out) override {
    for (int i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= table.n_out) throw std::out_of_range("get_rows: row id " + std::to_string(ids[i]));
    const int32_t* d_ids = host_array(ids, size_t(n));
    cu::get_rows(table.type, table.data, table.row_bytes, table.n_in, d_ids, n, out.data, out.stride, stream_);
  }
  void gather_rows(Rows src, const int* rows, int n, int64_t width, Rows dst) override {
    static_assert(sizeof(int) == sizeof(int32_t), "row lists are int32");
    const int32_t* d_rows = host_array(reinterpret_cast<const int32_t*>(rows), size_t(n));
    cu::gather_rows(src.data, src.stride, d_rows, n, width, dst.data, dst.stride, stream_);
  }
  void layer_norm(Rows x, const Buffer& gamma, const Buffer& beta, int n_tokens, int64_t n, float eps,
                  Rows y) override {
    cu::layer_norm(x.data, x.stride, gamma.f32(), beta.f32(), n_tokens, n, eps, y.data, y.stride, stream_);
  }
  void gelu(Rows x, int n_tokens, int64_t n, bool exact) override {
    cu::gelu(x.data, int64_t(n_tokens) * n, exact, stream_);
  }
  void add(Rows y, Rows x, int n_tokens, int64_t n) override { cu::add(y.data, x.data, int64_t(n_tokens) * n, stream_); }
  void kv_write(KvCache& cache, int layer, Rows k, Rows v, const int* seqs, const int* pos, int n) override {
    if (n <= 0) return;
    const DeviceKvCache& c = static_cast<const DeviceKvCache&>(cache);
    std::vector<uint8_t*> dst(2 * size_t(n));  // k rows, then v rows
    for (int i = 0; i < n; ++i) {
      dst[size_t(i)] = c.k_row(seqs[i], layer, pos[i]);
      dst[size_t(n + i)] = c.v_row(seqs[i], layer, pos[i]);
    }
    uint8_t* const* d = host_array(dst.data(), dst.size());
    cu::kv_store(c.shape().type, k.data, k.stride, v.data, v.stride, d, d + n, n, c.shape().kv_dim, stream_);
  }
  void attention(const AttentionOp& op) override {
    const DeviceKvCache& c = static_cast<const DeviceKvCache&>(*op.cache);
    if (op.n_head_kv <= 0 || op.n_head % op.n_head_kv != 0) throw std::invalid_argument("attention: bad head counts");
    if (c.shape().type == TensorType::Q8_0 && op.head_dim % 32 != 0)
      throw std::invalid_argument("attention: a q8_0 cache needs head_dim a multiple of 32");
    cu::AttentionArgs a;
    a.q = op.q.data;
    a.q_stride = op.q.stride;
    a.k = c.k_row(op.seq, op.layer, 0);
    a.v = c.v_row(op.seq, op.layer, 0);
    a.kv_row_bytes = c.row_bytes();
    a.kv_type = c.shape().type;
    a.n_tokens = op.n_tokens;
    a.n_past = op.n_past;
    a.n_head = op.n_head;
    a.n_head_kv = op.n_head_kv;
    a.head_dim = op.head_dim;
    a.scale = op.scale;
    a.out = op.out.data;
    a.out_stride = op.out.stride;
    cu::attention(a, stream_);
  }

 private:
  static void check_range(const Buffer& b, size_t offset, size_t n) {
    if (offset > b.size() || n > b.size() - offset)
      throw std::out_of_range("copy of " + std::to_string(n) + " bytes at offset " + std::to_string(offset) +
                              " overruns a buffer of " + std::to_string(b.size()));
  }
  // Copies a small host array describing the batch to the device, in stream
  // order (the previous op's copy has been consumed by then).
  template <typename T>
  T* host_array(const T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    ArgSlot& slot = args_[next_arg_++ % kArgSlots];
    void* d = slot.get(bytes == 0 ? sizeof(T) : bytes);
    if (bytes) check(cudaMemcpyAsync(d, p, bytes, cudaMemcpyHostToDevice, stream_), "argument upload");
    return static_cast<T*>(d);
  }

  static constexpr int kArgSlots = 4;
  using ArgSlot = Scratch;
  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  Scratch act_;
  ArgSlot args_[kArgSlots];
  unsigned next_arg_ = 0;
};

void write_error(char* err, size_t n, const std::string& msg) {
  if (!err || n == 0) return;
  std::snprintf(err, n, "%s", msg.c_str());
}

}  // namespace
}  // namespace sc

// The entry point the registry looks up with dlsym. Errors say what is
// missing: the driver library, a device, or a working CUDA context.
extern "C" __attribute__((visibility("default"))) int starcoder_cuda_create_backend(int abi, sc::Backend** out,
                                                                                    char* err, size_t err_size) {
  using namespace sc;
  *out = nullptr;
  if (abi != kBackendAbi) {
    write_error(err, err_size, "libstarcoder_cuda.so was built for another starcoder-cpp (backend ABI " +
                                   std::to_string(kBackendAbi) + ", core " + std::to_string(abi) + ")");
    return kPluginAbiMismatch;
  }
  // cudart (static) needs the driver's libcuda.so.1; asking for it first
  // gives a clearer message than cudart's "insufficient driver".
  if (void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(h);
  } else {
    const char* why = dlerror();
    write_error(err, err_size, std::string("libcuda.so.1 / NVIDIA driver not found (") + (why ? why : "") + ")");
    return kPluginNoDriver;
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    write_error(err, err_size, "no CUDA device (the NVIDIA driver is loaded but reports no GPU)");
    return kPluginNoDevice;
  }
  if (e != cudaSuccess) {
    write_error(err, err_size, std::string("the NVIDIA driver cannot start CUDA: ") + cudaGetErrorString(e) +
                                   (e == cudaErrorInsufficientDriver ? " (driver older than this CUDA 13 build)" : ""));
    return e == cudaErrorInsufficientDriver ? kPluginNoDriver : kPluginNoDevice;
  }
  try {
    *out = new CudaBackend(0);
    return kPluginOk;
  } catch (const std::exception& ex) {
    write_error(err, err_size, ex.what());
    return kPluginFailed;
  }
}
