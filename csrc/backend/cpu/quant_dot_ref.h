// Reference dot products of quantized weight rows with quantized activation
// rows (ggml's vec_dot_* for the no-SIMD path): integer products per block,
// one float multiply-add per block. The generic kernel level is built on
// these, and every SIMD variant is tested against them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/quant_blocks.h"
#include "format/tensor_types.h"

namespace sc {

// Dot products of one weight row (n elements, first type) with n_act
// quantized activation rows that start act_stride bytes apart:
// out[k] = w . act_k. Each weight block is decoded once and applied to every
// activation row (integer products per block, one float multiply-add per block).
void vec_dot_q4_0_q8_0(int64_t n, const block_q4_0* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q4_1_q8_1(int64_t n, const block_q4_1* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q5_0_q8_0(int64_t n, const block_q5_0* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q5_1_q8_1(int64_t n, const block_q5_1* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q8_0_q8_0(int64_t n, const block_q8_0* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q2_K_q8_K(int64_t n, const block_q2_K* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q3_K_q8_K(int64_t n, const block_q3_K* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q4_K_q8_K(int64_t n, const block_q4_K* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q5_K_q8_K(int64_t n, const block_q5_K* x, const void* acts, size_t act_stride, int n_act, float* out);
void vec_dot_q6_K_q8_K(int64_t n, const block_q6_K* x, const void* acts, size_t act_stride, int n_act, float* out);

// Dot product of a weight row of type t with an activation row already in vec_dot_type(t).
float vec_dot(TensorType t, int64_t n, const void* w_row, const void* act_row);
// The same for n_act activation rows act_stride bytes apart: out[k] = w . act_k
// (bit-identical to n_act separate vec_dot calls).
void vec_dot_multi(TensorType t, int64_t n, const void* w_row, const void* acts, size_t act_stride, int n_act,
                   float* out);

}  // namespace sc
