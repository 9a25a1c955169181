// Quantized tensor formats, bit-compatible with ggml (llama.cpp).
//
// Block layouts are ggml's, byte for byte (ggml-common.h): a row of n
// elements is n / block_size blocks laid out back to back. Scales are IEEE
// half floats stored as raw uint16_t bits (except Q8_K's float d).
//
// The reference quantizers reproduce ggml's quantize_row_*_ref (which is
// what llama.cpp's quantizer runs when no importance matrix is given)
// operation for operation, so the bytes they produce are the bytes
// llama-quantize writes. This file set is compiled with -ffp-contract=off so
// that no fused multiply-add changes a rounding.
//
// Matrix-vector products never dequantize a weight matrix: the activation
// row is quantized once into the weight type's "dot type" (Q8_0, Q8_1 or
// Q8_K, as ggml's vec_dot_type), and each weight row is combined with it
// block by block using integer products (vec_dot), as ggml's CPU backend does.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor_types.h"

namespace sc {

class ThreadPool;

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256;        // k-quant super-block
constexpr int K_SCALE_SIZE = 12; // packed 6-bit scales/mins of Q4_K/Q5_K (and Q3_K's 16 scales)

// ---------------------------------------------------------------- legacy (32)
struct block_q4_0 {   // x = d * (q - 8), q in [0, 15]
  uint16_t d;
  uint8_t qs[QK4_0 / 2];  // element j in the low nibble of qs[j], element j+16 in its high nibble
};
struct block_q4_1 {   // x = d * q + m
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {   // x = d * (q - 16), q in [0, 31]; bit 4 of element j is bit j of qh
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {   // x = d * q + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {   // x = d * q
  uint16_t d;
  int8_t qs[QK8_0];
};
struct block_q8_1 {   // activations for Q4_1/Q5_1: s = d * sum(qs)
  uint16_t d, s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 layout");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 layout");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 layout");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 layout");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 layout");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 layout");

// ---------------------------------------------------------------- k-quants (256)
struct block_q2_K {   // 16 groups of 16: x = d*(sc&15)*q - dmin*(sc>>4), q in [0, 3]
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};
struct block_q3_K {   // 16 groups of 16: x = d*(sc-32)*q, q in [-4, 3]; 6-bit sc packed in 12 bytes
  uint8_t hmask[QK_K / 8];  // high bit of each q (set: q >= 0)
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];
  uint16_t d;
};
struct block_q4_K {   // 8 groups of 32: x = d*sc*q - dmin*m, q in [0, 15]; 6-bit sc/m
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct block_q5_K {   // as Q4_K with a fifth bit per q in qh
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct block_q6_K {   // 16 groups of 16: x = d*sc*q, q in [-32, 31], sc int8
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
struct block_q8_K {   // activations for the k-quants
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sum of each group of 16 qs
};
static_assert(sizeof(block_q2_K) == 84, "block_q2_K layout");
static_assert(sizeof(block_q3_K) == 110, "block_q3_K layout");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K layout");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K layout");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K layout");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K layout");

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

// ---------------------------------------------------------------- by type id
// A block-quantized type (Q4_0 ... Q8_K); false for F32/F16/BF16.
bool is_quantized(TensorType t);
// A type that weights may be stored in and quantize_row/quantize_tensor write
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
// Dot product of a weight row of type t with an activation row already in vec_dot_type(t).
float vec_dot(TensorType t, int64_t n, const void* w_row, const void* act_row);
// The same for n_act activation rows act_stride bytes apart: out[k] = w . act_k
// (bit-identical to n_act separate vec_dot calls).
void vec_dot_multi(TensorType t, int64_t n, const void* w_row, const void* acts, size_t act_stride, int n_act,
                   float* out);

// Quantizes a row-major [n_rows, n_per_row] float32 matrix into `dst`
// (n_rows * row_size(t, n_per_row) bytes), rows split over the pool's
// threads. Byte-identical to llama.cpp's quantization without an importance
// matrix. Returns the number of bytes written.
size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, ThreadPool& pool);
size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, int n_threads);

// Fast half -> float through a 64K-entry table (same values as fp16_to_fp32).
extern const float* const kHalfToFloat;
inline float half_to_float(uint16_t h) { return kHalfToFloat[h]; }

}  // namespace sc
