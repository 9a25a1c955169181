// Launchers of the CUDA kernels (kernels_*.cu), host functions that enqueue
// on a stream. Pointers are device addresses; every launcher checks the
// launch and throws std::runtime_error on failure.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "format/tensor_types.h"

namespace sc {
namespace cu {

// Throws std::runtime_error naming the call and the CUDA error.
void check(cudaError_t e, const char* what);

// Bytes of one activation row of n elements in the dot format of weight type
// t (Q8_1 for the 32-element types, Q8_K for the k-quants).
size_t act_row_bytes(TensorType t, int64_t n);
// Quantizes n_tokens float rows (stride n) into that format, rows act_row_bytes apart.
void quantize_acts(TensorType t, const float* x, int n_tokens, int64_t n, uint8_t* act, cudaStream_t s);
// y[t][r] = W[r] . x[t] + bias[r] for a quantized W, from acts made by quantize_acts.
void linear_quant(TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in, int64_t n_out, const uint8_t* act,
                  int n_tokens, const float* bias, float* y, cudaStream_t s);
// The same for F32, F16 or BF16 weights against float activations.
void linear_float(TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x,
                  int n_tokens, const float* bias, float* y, cudaStream_t s);
// out[i] = row ids[i] of the table as float32 (ids in device memory).
void get_rows(TensorType t, const uint8_t* table, size_t row_bytes, int64_t n_in, const int32_t* ids, int n,
              float* out, int64_t out_stride, cudaStream_t s);

void gather_rows(const float* src, int64_t src_stride, const int32_t* rows, int n, int64_t width, float* dst,
                 int64_t dst_stride, cudaStream_t s);
void layer_norm(const float* x, int64_t x_stride, const float* gamma, const float* beta, int n_tokens, int64_t n,
                float eps, float* y, int64_t y_stride, cudaStream_t s);
void gelu(float* x, int64_t count, bool exact, cudaStream_t s);
void add(float* y, const float* x, int64_t count, cudaStream_t s);
// Writes n rows of width floats of k and v into the cache rows whose device
// addresses are k_dst[i] / v_dst[i], converted to the cache type.
void kv_store(TensorType type, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
              uint8_t* const* k_dst, uint8_t* const* v_dst, int n, int64_t width, cudaStream_t s);

struct AttentionArgs {
  const float* q;
  int64_t q_stride;
  const uint8_t* k;  // row 0 of this sequence and layer
  const uint8_t* v;
  size_t kv_row_bytes;
  TensorType kv_type;
  int n_tokens, n_past, n_head, n_head_kv, head_dim;
  float scale;
  float* out;
  int64_t out_stride;
};
void attention(const AttentionArgs& a, cudaStream_t s);

}  // namespace cu
}  // namespace sc
