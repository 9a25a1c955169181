#include "format/tensor_types.h"

#include <cstring>

namespace sc {

TensorTypeInfo tensor_type_info(uint32_t id) {
  switch (TensorType(id)) {
    case TensorType::F32:  return {"f32", 1, 4};
    case TensorType::F16:  return {"f16", 1, 2};
    case TensorType::BF16: return {"bf16", 1, 2};
    case TensorType::Q4_0: return {"q4_0", 32, 18};
    case TensorType::Q4_1: return {"q4_1", 32, 20};
    case TensorType::Q5_0: return {"q5_0", 32, 22};
    case TensorType::Q5_1: return {"q5_1", 32, 24};
    case TensorType::Q8_0: return {"q8_0", 32, 34};
    case TensorType::Q8_1: return {"q8_1", 32, 36};
    case TensorType::Q2_K: return {"q2_k", 256, 84};
    case TensorType::Q3_K: return {"q3_k", 256, 110};
    case TensorType::Q4_K: return {"q4_k", 256, 144};
    case TensorType::Q5_K: return {"q5_k", 256, 176};
    case TensorType::Q6_K: return {"q6_k", 256, 210};
    case TensorType::Q8_K: return {"q8_k", 256, 292};
  }
  return {nullptr, 0, 0};
}

std::string tensor_type_name(TensorType t) {
  TensorTypeInfo info = tensor_type_info(t);
  return info.name ? info.name : "type#" + std::to_string(uint32_t(t));
}

int64_t row_size(TensorType t, int64_t n) {
  TensorTypeInfo info = tensor_type_info(t);
  if (!info.name || n < 0 || n % info.block_size != 0) return -1;
  return n / info.block_size * int64_t(info.type_size);
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {                       // inf / nan
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {                   // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {                  // zero
    bits = sign;
  } else {                                 // subnormal: normalise
    exp = 113;
    while ((mant & 0x400) == 0) { mant <<= 1; --exp; }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);  // inf/nan
  if (abs >= 0x477ff000u) return sign | 0x7c00;                                     // overflow
  if (abs < 0x38800000u) {                                                          // subnormal/zero
    if (abs < 0x33000000u) return sign;                                             // < half of min subnormal
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;        // 14 + (113 - e) - 1 ... bits to drop
    uint32_t q = m >> (shift);
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return sign | uint16_t(q);
  }
  uint32_t r = abs - 0x38000000u;          // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fff;
  r >>= 13;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) ++r;
  return sign | uint16_t(r);
}

}  // namespace sc
