// Matrix products and embedding rows. Decode and prompt share one kernel:
// one warp per weight row, reading each weight block once for up to
// kTokensPerPass token columns, integer dot products on Q8_1 / Q8_K
// activations quantized on the device (quant_math.cuh). A prompt runs
// ceil(n_tokens / kTokensPerPass) passes over the weights in one launch
// (grid.y); tensor-core tiles are the next step (see README / issue 10).
#include <stdexcept>
#include <string>

#include "backend/cuda/kernels.h"
#include "backend/cuda/quant_math.cuh"

namespace sc {
namespace cu {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kTokensPerPass = 8;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---------------------------------------------------------------- activation quantizers

__global__ void quantize_q8_1_kernel(const float* __restrict__ x, int64_t n, int64_t n_blocks_total,
                                     uint8_t* __restrict__ act, size_t act_row) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_blocks_total) return;
  const int64_t per_row = n / QK8_1, t = i / per_row, b = i % per_row;
  quantize_block_q8_1(x + t * n + b * QK8_1, reinterpret_cast<block_q8_1*>(act + t * act_row) + b);
}

__global__ void quantize_q8_K_kernel(const float* __restrict__ x, int64_t n, int64_t n_blocks_total,
                                     uint8_t* __restrict__ act, size_t act_row) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_blocks_total) return;
  const int64_t per_row = n / QK_K, t = i / per_row, b = i % per_row;
  quantize_block_q8_K(x + t * n + b * QK_K, reinterpret_cast<block_q8_K*>(act + t * act_row) + b);
}

bool is_k_quant(TensorType t) {
  return t == TensorType::Q2_K || t == TensorType::Q3_K || t == TensorType::Q4_K || t == TensorType::Q5_K ||
         t == TensorType::Q6_K;
}

// ---------------------------------------------------------------- quantized matrix x vectors

// Lane `lane` of the row's warp takes parts lane, lane + 32, ... (part = one
// block for the 32-element types, a 32-element slice of a super-block for the k-quants).
template <class T>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    linear_quant_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t n_blocks, int64_t n_out,
                        const uint8_t* __restrict__ act, size_t act_row, int n_tokens, const float* __restrict__ bias,
                        float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= n_out) return;
  const int t0 = blockIdx.y * kTokensPerPass;
  const int nt = min(kTokensPerPass, n_tokens - t0);
  const uint8_t* wr = w + row * row_bytes;
  float acc[kTokensPerPass] = {};
  const int64_t n_parts = n_blocks * T::kParts;
  for (int64_t it = lane; it < n_parts; it += 32) {
    const int64_t b = it / T::kParts;
    const int p = int(it % T::kParts);
    const uint8_t* wb = wr + b * T::kBytes;
#pragma unroll
    for (int t = 0; t < kTokensPerPass; ++t) {
      if (t < nt) {
        const typename T::Act* a = reinterpret_cast<const typename T::Act*>(act + size_t(t0 + t) * act_row) + b;
        acc[t] += T::combine(wb, a, T::sums(wb, a, p));
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokensPerPass; ++t) {
    if (t < nt) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) y[int64_t(t0 + t) * n_out + row] = v + (bias ? bias[row] : 0.0f);
    }
  }
}

template <class T>
void launch_quant(const uint8_t* w, size_t row_bytes, int64_t n_in, int64_t n_out, const uint8_t* act, size_t act_row,
                  int n_tokens, const float* bias, float* y, cudaStream_t s) {
  const dim3 grid(unsigned((n_out + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  unsigned((n_tokens + kTokensPerPass - 1) / kTokensPerPass));
  linear_quant_kernel<T><<<grid, 32 * kWarpsPerBlock, 0, s>>>(w, row_bytes, n_in / T::kElems, n_out, act, act_row,
                                                               n_tokens, bias, y);
  check(cudaGetLastError(), "linear (quantized) launch");
}

// ---------------------------------------------------------------- float weights

struct LoadF32 {
  __device__ static float2 pair(const uint8_t* r, int64_t i) { return reinterpret_cast<const float2*>(r)[i]; }
};
struct LoadF16 {
  __device__ static float2 pair(const uint8_t* r, int64_t i) {
    return __half22float2(reinterpret_cast<const __half2*>(r)[i]);
  }
};
struct LoadBF16 {
  __device__ static float2 pair(const uint8_t* r, int64_t i) {
    const uint32_t u = reinterpret_cast<const uint32_t*>(r)[i];
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
  }
};

// Element pairs: rows of an even length are 4-byte aligned in every type.
template <class L>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    linear_float_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t n_in, int64_t n_out,
                        const float* __restrict__ x, int n_tokens, const float* __restrict__ bias,
                        float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= n_out) return;
  const int t0 = blockIdx.y * kTokensPerPass;
  const int nt = min(kTokensPerPass, n_tokens - t0);
  const uint8_t* wr = w + row * row_bytes;
  float acc[kTokensPerPass] = {};
  for (int64_t i = lane; i < n_in / 2; i += 32) {
    const float2 wv = L::pair(wr, i);
#pragma unroll
    for (int t = 0; t < kTokensPerPass; ++t) {
      if (t < nt) {
        const float2 xv = reinterpret_cast<const float2*>(x + int64_t(t0 + t) * n_in)[i];
        acc[t] += wv.x * xv.x + wv.y * xv.y;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokensPerPass; ++t) {
    if (t < nt) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) y[int64_t(t0 + t) * n_out + row] = v + (bias ? bias[row] : 0.0f);
    }
  }
}

// ---------------------------------------------------------------- get_rows

template <class T>
__global__ void get_rows_quant_kernel(const uint8_t* __restrict__ table, size_t row_bytes, int64_t n_in,
                                      const int32_t* __restrict__ ids, float* __restrict__ out, int64_t out_stride) {
  const uint8_t* r = table + size_t(ids[blockIdx.x]) * row_bytes;
  float* o = out + int64_t(blockIdx.x) * out_stride;
  const int64_t n_parts = n_in / T::kElems * T::kParts;
  for (int64_t it = threadIdx.x; it < n_parts; it += blockDim.x) {
    const int64_t b = it / T::kParts;
    const int p = int(it % T::kParts);
    T::dequant(r + b * T::kBytes, p, o + b * T::kElems + p * 32);
  }
}

template <class L>
__global__ void get_rows_float_kernel(const uint8_t* __restrict__ table, size_t row_bytes, int64_t n_in,
                                      const int32_t* __restrict__ ids, float* __restrict__ out, int64_t out_stride) {
  const uint8_t* r = table + size_t(ids[blockIdx.x]) * row_bytes;
  float* o = out + int64_t(blockIdx.x) * out_stride;
  for (int64_t i = threadIdx.x; i < n_in / 2; i += blockDim.x) {
    const float2 v = L::pair(r, i);
    o[2 * i] = v.x;
    o[2 * i + 1] = v.y;
  }
}

template <class T>
void launch_get_rows_quant(const uint8_t* table, size_t row_bytes, int64_t n_in, const int32_t* ids, int n,
                           float* out, int64_t out_stride, cudaStream_t s) {
  get_rows_quant_kernel<T><<<n, 128, 0, s>>>(table, row_bytes, n_in, ids, out, out_stride);
}

[[noreturn]] void unsupported(const char* op, TensorType t) {
  throw std::invalid_argument(std::string(op) + ": the cuda backend has no kernel for type id " +
                              std::to_string(unsigned(t)));
}

}  // namespace

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

size_t act_row_bytes(TensorType t, int64_t n) {
  return is_k_quant(t) ? size_t(n / QK_K) * sizeof(block_q8_K) : size_t(n / QK8_1) * sizeof(block_q8_1);
}

void quantize_acts(TensorType t, const float* x, int n_tokens, int64_t n, uint8_t* act, cudaStream_t s) {
  const size_t row = act_row_bytes(t, n);
  const int64_t total = int64_t(n_tokens) * (n / (is_k_quant(t) ? QK_K : QK8_1));
  const unsigned blocks = unsigned((total + 127) / 128);
  if (is_k_quant(t))
    quantize_q8_K_kernel<<<blocks, 128, 0, s>>>(x, n, total, act, row);
  else
    quantize_q8_1_kernel<<<blocks, 128, 0, s>>>(x, n, total, act, row);
  check(cudaGetLastError(), "activation quantize launch");
}

void linear_quant(TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in, int64_t n_out, const uint8_t* act,
                  int n_tokens, const float* bias, float* y, cudaStream_t s) {
  const size_t ar = act_row_bytes(t, n_in);
  switch (t) {
    case TensorType::Q4_0: return launch_quant<TQ4_0>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q4_1: return launch_quant<TQ4_1>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q5_0: return launch_quant<TQ5_0>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q5_1: return launch_quant<TQ5_1>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q8_0: return launch_quant<TQ8_0>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q2_K: return launch_quant<TQ2_K>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q3_K: return launch_quant<TQ3_K>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q4_K: return launch_quant<TQ4_K>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q5_K: return launch_quant<TQ5_K>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    case TensorType::Q6_K: return launch_quant<TQ6_K>(w, row_bytes, n_in, n_out, act, ar, n_tokens, bias, y, s);
    default: unsupported("linear", t);
  }
}

void linear_float(TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x,
                  int n_tokens, const float* bias, float* y, cudaStream_t s) {
  if (n_in % 2) throw std::invalid_argument("linear: the cuda backend needs an even row length");
  const dim3 grid(unsigned((n_out + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  unsigned((n_tokens + kTokensPerPass - 1) / kTokensPerPass));
  const unsigned threads = 32 * kWarpsPerBlock;
  if (t == TensorType::F32)
    linear_float_kernel<LoadF32><<<grid, threads, 0, s>>>(w, row_bytes, n_in, n_out, x, n_tokens, bias, y);
  else if (t == TensorType::F16)
    linear_float_kernel<LoadF16><<<grid, threads, 0, s>>>(w, row_bytes, n_in, n_out, x, n_tokens, bias, y);
  else if (t == TensorType::BF16)
    linear_float_kernel<LoadBF16><<<grid, threads, 0, s>>>(w, row_bytes, n_in, n_out, x, n_tokens, bias, y);
  else
    unsupported("linear", t);
  check(cudaGetLastError(), "linear (float) launch");
}

void get_rows(TensorType t, const uint8_t* table, size_t rb, int64_t n_in, const int32_t* ids, int n, float* out,
              int64_t os, cudaStream_t s) {
  if (n <= 0) return;
  switch (t) {
    case TensorType::F32: get_rows_float_kernel<LoadF32><<<n, 128, 0, s>>>(table, rb, n_in, ids, out, os); break;
    case TensorType::F16: get_rows_float_kernel<LoadF16><<<n, 128, 0, s>>>(table, rb, n_in, ids, out, os); break;
    case TensorType::BF16: get_rows_float_kernel<LoadBF16><<<n, 128, 0, s>>>(table, rb, n_in, ids, out, os); break;
    case TensorType::Q4_0: launch_get_rows_quant<TQ4_0>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q4_1: launch_get_rows_quant<TQ4_1>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q5_0: launch_get_rows_quant<TQ5_0>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q5_1: launch_get_rows_quant<TQ5_1>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q8_0: launch_get_rows_quant<TQ8_0>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q2_K: launch_get_rows_quant<TQ2_K>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q3_K: launch_get_rows_quant<TQ3_K>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q4_K: launch_get_rows_quant<TQ4_K>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q5_K: launch_get_rows_quant<TQ5_K>(table, rb, n_in, ids, n, out, os, s); break;
    case TensorType::Q6_K: launch_get_rows_quant<TQ6_K>(table, rb, n_in, ids, n, out, os, s); break;
    default: unsupported("get_rows", t);
  }
  check(cudaGetLastError(), "get_rows launch");
}

}  // namespace cu
}  // namespace sc
