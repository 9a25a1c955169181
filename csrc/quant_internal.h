// Helpers shared by quant.cpp and quant_k.cpp (not part of the public API).
#pragma once
#include <cstdint>
#include <cstring>

#include "quant.h"
#include "tensor_types.h"

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

template <typename T>
inline T min_(T a, T b) { return a < b ? a : b; }
template <typename T>
inline T max_(T a, T b) { return a > b ? a : b; }

}  // namespace qi
}  // namespace sc
