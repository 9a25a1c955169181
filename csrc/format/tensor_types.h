// Tensor element types, numbered as ggml numbers them (GGUF stores these ids).
// Each type is a block of `block_size` elements stored in `type_size` bytes;
// F32/F16/BF16 are blocks of one. The quantized block layouts themselves live
// in format/quant_blocks.h; this table is what the file reader needs to validate sizes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sc {

enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct TensorTypeInfo {
  const char* name;     // "f32", "q4_0", ... (nullptr: not a type we know)
  int64_t block_size;   // elements per block
  size_t type_size;     // bytes per block
};

// Info for a raw type id read from a file; name == nullptr when unknown.
TensorTypeInfo tensor_type_info(uint32_t type_id);
inline TensorTypeInfo tensor_type_info(TensorType t) { return tensor_type_info(uint32_t(t)); }
std::string tensor_type_name(TensorType t);

// Bytes of one row of `n` elements; -1 if n is not a multiple of the block size.
int64_t row_size(TensorType t, int64_t n);

// IEEE half <-> float, exact (round-to-nearest-even on the way down).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// float -> bfloat16, round-to-nearest-even (as vcvtneps2bf16 and PyTorch); NaNs stay NaN.
inline uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace sc
