// Row copies, LayerNorm, GELU, adds, KV-cache stores and attention.
#include <stdexcept>
#include <string>

#include "backend/cuda/attention_math.cuh"
#include "backend/cuda/elementwise_math.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/quant_math.cuh"

namespace sc {
namespace cu {
namespace {

constexpr int kNormThreads = 256;
constexpr int kMaxHeadDim = 256;  // 8 output elements per lane

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the block (kNormThreads threads); every thread gets the result.
__device__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kNormThreads / 32 ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

__global__ void gather_rows_kernel(const float* __restrict__ src, int64_t ss, const int32_t* __restrict__ rows,
                                   int64_t width, float* __restrict__ dst, int64_t ds) {
  const float* s = src + int64_t(rows[blockIdx.x]) * ss;
  float* d = dst + int64_t(blockIdx.x) * ds;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) d[i] = s[i];
}

__global__ void __launch_bounds__(kNormThreads)
    layer_norm_kernel(const float* __restrict__ x, int64_t xs, const float* __restrict__ gamma,
                      const float* __restrict__ beta, int64_t n, float eps, float* __restrict__ y, int64_t ys) {
  __shared__ float scratch[kNormThreads / 32];
  const float* xr = x + int64_t(blockIdx.x) * xs;
  float* yr = y + int64_t(blockIdx.x) * ys;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kNormThreads) s += xr[i];
  const float mean = block_sum(s, scratch) / float(n);
  float q = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kNormThreads) {
    const float d = xr[i] - mean;
    q += d * d;
  }
  const float inv = layer_norm_inv_std(block_sum(q, scratch), n, eps);
  for (int64_t i = threadIdx.x; i < n; i += kNormThreads) yr[i] = layer_norm_out(xr[i], mean, inv, gamma[i], beta[i]);
}

__global__ void gelu_kernel(float* x, int64_t count, bool exact) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = exact ? gelu_erf(x[i]) : gelu_tanh(x[i]);
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) y[i] += x[i];
}

// blockIdx.x: token, blockIdx.y: 0 keys, 1 values.
__global__ void kv_store_kernel(TensorType type, const float* __restrict__ k, int64_t ks, const float* __restrict__ v,
                                int64_t vs, uint8_t* const* __restrict__ k_dst, uint8_t* const* __restrict__ v_dst,
                                int64_t width) {
  const bool is_v = blockIdx.y == 1;
  const float* src = (is_v ? v + int64_t(blockIdx.x) * vs : k + int64_t(blockIdx.x) * ks);
  uint8_t* dst = is_v ? v_dst[blockIdx.x] : k_dst[blockIdx.x];
  if (type == TensorType::F32) {
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x) reinterpret_cast<float*>(dst)[i] = src[i];
  } else if (type == TensorType::F16) {
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
      reinterpret_cast<uint16_t*>(dst)[i] = float_to_half_bits(src[i]);
  } else {  // Q8_0
    for (int64_t b = threadIdx.x; b < width / QK8_0; b += blockDim.x)
      quantize_block_q8_0(src + b * QK8_0, dst + b * sizeof(block_q8_0));
  }
}

// Element c of a cache row (one K/V head's slice starts at the row pointer).
struct KvF32 {
  __device__ static float at(const uint8_t* r, int c) { return reinterpret_cast<const float*>(r)[c]; }
  __device__ static size_t head_bytes(int d) { return size_t(d) * 4; }
};
struct KvF16 {
  __device__ static float at(const uint8_t* r, int c) {
    return __half2float(reinterpret_cast<const __half*>(r)[c]);
  }
  __device__ static size_t head_bytes(int d) { return size_t(d) * 2; }
};
struct KvQ8_0 {
  __device__ static float at(const uint8_t* r, int c) {
    const uint8_t* b = r + (c / QK8_0) * sizeof(block_q8_0);
    return half_bits_to_float(ld16(b)) * float(int8_t(b[2 + c % QK8_0]));
  }
  __device__ static size_t head_bytes(int d) { return size_t(d / QK8_0) * sizeof(block_q8_0); }
};

// One warp per (token, query head): keys stream through in tiles of 32, one
// key per lane for the scores, then every lane accumulates its output
// elements (c = lane + 32 i) over the tile's values with an online softmax.
// Query heads h of one K/V group read the same K/V rows (from L2 after the
// first); a tiled multi-head kernel that reads them once is the next step.
template <class KV>
__global__ void __launch_bounds__(32) attention_kernel(AttentionArgs a) {
  __shared__ float q[kMaxHeadDim];
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
  const int d = a.head_dim;
  const int g = h / (a.n_head / a.n_head_kv);
  const float* qr = a.q + int64_t(t) * a.q_stride + int64_t(h) * d;
  for (int c = lane; c < d; c += 32) q[c] = qr[c] * a.scale;
  __syncwarp();
  const size_t head_off = size_t(g) * KV::head_bytes(d);
  const int n_vis = a.n_past + t + 1;  // causal: keys [0, n_vis)
  float o[kMaxHeadDim / 32];
#pragma unroll
  for (int i = 0; i < kMaxHeadDim / 32; ++i) o[i] = 0.0f;
  SoftmaxState st = softmax_start();
  for (int kb = 0; kb < n_vis; kb += kAttnKeysPerTile) {
    const int j = kb + lane;
    float score = -INFINITY;
    if (j < n_vis) {
      const uint8_t* kr = a.k + size_t(j) * a.kv_row_bytes + head_off;
      float s = 0.0f;
      for (int c = 0; c < d; ++c) s += q[c] * KV::at(kr, c);
      score = s;
    }
    const float alpha = softmax_rescale(st, warp_max(score));
    const float p = j < n_vis ? softmax_weight(st, score) : 0.0f;
    st.l += warp_sum(p);
#pragma unroll
    for (int i = 0; i < kMaxHeadDim / 32; ++i) o[i] *= alpha;
    const int nk = min(kAttnKeysPerTile, n_vis - kb);
    for (int jj = 0; jj < nk; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      const uint8_t* vr = a.v + size_t(kb + jj) * a.kv_row_bytes + head_off;
#pragma unroll
      for (int i = 0; i < kMaxHeadDim / 32; ++i) {
        const int c = lane + 32 * i;
        if (c < d) o[i] += pj * KV::at(vr, c);
      }
    }
  }
  float* out = a.out + int64_t(t) * a.out_stride + int64_t(h) * d;
  const float inv = 1.0f / st.l;
#pragma unroll
  for (int i = 0; i < kMaxHeadDim / 32; ++i) {
    const int c = lane + 32 * i;
    if (c < d) out[c] = o[i] * inv;
  }
}

unsigned blocks_for(int64_t count, int threads) { return unsigned((count + threads - 1) / threads); }

}  // namespace

void gather_rows(const float* src, int64_t ss, const int32_t* rows, int n, int64_t width, float* dst, int64_t ds,
                 cudaStream_t s) {
  if (n <= 0) return;
  gather_rows_kernel<<<n, 256, 0, s>>>(src, ss, rows, width, dst, ds);
  check(cudaGetLastError(), "gather_rows launch");
}

void layer_norm(const float* x, int64_t xs, const float* gamma, const float* beta, int n_tokens, int64_t n, float eps,
                float* y, int64_t ys, cudaStream_t s) {
  if (n_tokens <= 0) return;
  layer_norm_kernel<<<n_tokens, kNormThreads, 0, s>>>(x, xs, gamma, beta, n, eps, y, ys);
  check(cudaGetLastError(), "layer_norm launch");
}

void gelu(float* x, int64_t count, bool exact, cudaStream_t s) {
  if (count <= 0) return;
  gelu_kernel<<<blocks_for(count, 256), 256, 0, s>>>(x, count, exact);
  check(cudaGetLastError(), "gelu launch");
}

void add(float* y, const float* x, int64_t count, cudaStream_t s) {
  if (count <= 0) return;
  add_kernel<<<blocks_for(count, 256), 256, 0, s>>>(y, x, count);
  check(cudaGetLastError(), "add launch");
}

void kv_store(TensorType type, const float* k, int64_t ks, const float* v, int64_t vs, uint8_t* const* k_dst,
              uint8_t* const* v_dst, int n, int64_t width, cudaStream_t s) {
  if (n <= 0) return;
  kv_store_kernel<<<dim3(unsigned(n), 2), 128, 0, s>>>(type, k, ks, v, vs, k_dst, v_dst, width);
  check(cudaGetLastError(), "kv_write launch");
}

void attention(const AttentionArgs& a, cudaStream_t s) {
  if (a.head_dim > kMaxHeadDim) throw std::invalid_argument("attention: head_dim above 256 is not supported on cuda");
  if (a.n_tokens <= 0) return;
  const dim3 grid(unsigned(a.n_tokens), unsigned(a.n_head));
  if (a.kv_type == TensorType::F16)
    attention_kernel<KvF16><<<grid, 32, 0, s>>>(a);
  else if (a.kv_type == TensorType::F32)
    attention_kernel<KvF32><<<grid, 32, 0, s>>>(a);
  else if (a.kv_type == TensorType::Q8_0)
    attention_kernel<KvQ8_0><<<grid, 32, 0, s>>>(a);
  else
    throw std::invalid_argument("attention: the cuda backend has no KV cache of this type");
  check(cudaGetLastError(), "attention launch");
}

}  // namespace cu
}  // namespace sc
