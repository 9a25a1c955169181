// Helpers shared by quant.cpp and quant_k.cpp (not part of the public API).
#pragma once
#include <cstdint>
#include <cstring>

#include "format/quant.h"
#include "format/tensor_types.h"

namespace sc {
namespace qi {

inline uint16_t to_half(float f) { return fp32_to_fp16(f); }
inline float from_half(uint16_t h) { return half_to_float(h); }

// ggml's nearest_int: round to nearest, ties to even, through the float
// mantissa (valid for |x| <= 2^22; callers stay well inside that).
inline int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

// sum a[i] * b[i] over N int8 pairs (N constant: unrolled and vectorized)
template <int N>
inline int dot_i8(const int8_t* a, const int8_t* b) {
  int s = 0;
  for (int i = 0; i < N; ++i) s += int(a[i]) * int(b[i]);
  return s;
}

// Block i of activation row k in a set of rows `stride` bytes apart.
template <typename B>
inline const B& act_block(const void* acts, size_t stride, int k, int64_t i) {
  return reinterpret_cast<const B*>(static_cast<const uint8_t*>(acts) + size_t(k) * stride)[i];
}

template <typename T>
inline T min_(T a, T b) { return a < b ? a : b; }
template <typename T>
inline T max_(T a, T b) { return a > b ? a : b; }

}  // namespace qi
}  // namespace sc
