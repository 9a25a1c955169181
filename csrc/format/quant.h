// Reference quantize / dequantize for ggml's block formats (quant_blocks.h).
//
// The reference quantizers reproduce ggml's quantize_row_*_ref (which is
// what llama.cpp's quantizer runs when no importance matrix is given)
// operation for operation, so the bytes they produce are the bytes
// llama-quantize writes. This file set is compiled with -ffp-contract=off so
// that no fused multiply-add changes a rounding.
//
// Matrix products never dequantize a weight matrix: the activation row is
// quantized once into the weight type's "dot type" (Q8_0, Q8_1 or Q8_K, as
// ggml's vec_dot_type; see vec_dot_type below), and each backend combines
// weight blocks with it using integer products (backend/cpu/quant_dot_ref.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/quant_blocks.h"
#include "format/tensor_types.h"

namespace sc {

// ---------------------------------------------------------------- per-type reference functions
// k = number of elements, a multiple of the block size.
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k);
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k);
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k);
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k);
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k);
void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t k);
void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k);
void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k);
void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k);
void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k);
void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k);
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k);

void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t k);
void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t k);
void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t k);
void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t k);
void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t k);
void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t k);
void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t k);
void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t k);
void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t k);
void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t k);
void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t k);
void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t k);

// ---------------------------------------------------------------- by type id
// A block-quantized type (Q4_0 ... Q8_K); false for F32/F16/BF16.
bool is_quantized(TensorType t);
// A type that weights may be stored in and quantize_row writes
// (every quantized type except the activation-only Q8_1 and Q8_K).
bool is_weight_quant_type(TensorType t);
// The activation format that vec_dot pairs with weights of type t (ggml's vec_dot_type).
TensorType vec_dot_type(TensorType t);

// Reference quantization of n floats into type t (throws std::invalid_argument
// for a type it cannot write or n not a multiple of the block size).
void quantize_row(TensorType t, const float* x, void* y, int64_t n);
// n elements of type t (any quantized type, F32, F16 or BF16) to float32.
void dequantize_row(TensorType t, const void* x, float* y, int64_t n);
// Quantizes an activation row into vec_dot_type(t) (same as quantize_row for that type).
void quantize_row_for_dot(TensorType t, const float* x, void* y, int64_t n);
// Fast half -> float through a 64K-entry table (same values as fp16_to_fp32).
extern const float* const kHalfToFloat;
inline float half_to_float(uint16_t h) { return kHalfToFloat[h]; }

}  // namespace sc
