// Legacy 32-element quant types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1) and the
// by-type dispatch. The k-quants are in
// quant_k.cpp. Every quantizer mirrors ggml's quantize_row_*_ref exactly:
// same operations in the same order, same float->int conversions.
#include "format/quant.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "format/quant_internal.h"
#include "format/quant_unpack.h"

namespace sc {

using qi::from_half;
using qi::to_half;
using qu::unpack_q5;

static const float* build_half_table() {
  static float table[65536];
  for (uint32_t i = 0; i < 65536; ++i) table[i] = fp16_to_fp32(uint16_t(i));
  return table;
}
const float* const kHalfToFloat = build_half_table();

// ============================================================================
// reference quantizers
// ============================================================================

// Largest magnitude of a block, and the signed value that has it (first one wins).
static inline void signed_absmax(const float* x, int n, float* amax_out, float* max_out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float v = x[j];
    if (amax < std::fabs(v)) {
      amax = std::fabs(v);
      max = v;
    }
  }
  *amax_out = amax;
  *max_out = max;
}

static inline void min_max(const float* x, int n, float* mn, float* mx) {
  float lo = 3.402823466e+38f, hi = -3.402823466e+38f;  // FLT_MAX
  for (int j = 0; j < n; ++j) {
    const float v = x[j];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  *mn = lo;
  *mx = hi;
}

void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k) {
  const int64_t nb = k / QK4_0;
  for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
    float amax, max;
    signed_absmax(x, QK4_0, &amax, &max);
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[QK4_0 / 2 + j] * id;
      // C's (int8_t)(v): truncate toward zero
      const int q0 = qi::min_(15, int(int8_t(int(x0 + 8.5f))));
      const int q1 = qi::min_(15, int(int8_t(int(x1 + 8.5f))));
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k) {
  const int64_t nb = k / QK4_1;
  for (int64_t i = 0; i < nb; ++i, x += QK4_1) {
    float mn, mx;
    min_max(x, QK4_1, &mn, &mx);
    const float d = (mx - mn) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    y[i].m = to_half(mn);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float x0 = (x[j] - mn) * id;
      const float x1 = (x[QK4_1 / 2 + j] - mn) * id;
      const int q0 = qi::min_(15, int(int8_t(int(x0 + 0.5f))));
      const int q1 = qi::min_(15, int(int8_t(int(x1 + 0.5f))));
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k) {
  const int64_t nb = k / QK5_0;
  for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
    float amax, max;
    signed_absmax(x, QK5_0, &amax, &max);
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[QK5_0 / 2 + j] * id;
      const uint8_t q0 = uint8_t(qi::min_(31, int(int8_t(int(x0 + 16.5f)))));
      const uint8_t q1 = uint8_t(qi::min_(31, int(int8_t(int(x1 + 16.5f)))));
      y[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10u) >> 4) << j;
      qh |= uint32_t((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof(qh));
  }
}

void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k) {
  const int64_t nb = k / QK5_1;
  for (int64_t i = 0; i < nb; ++i, x += QK5_1) {
    float mn, mx;
    min_max(x, QK5_1, &mn, &mx);
    const float d = (mx - mn) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    y[i].m = to_half(mn);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const float x0 = (x[j] - mn) * id;
      const float x1 = (x[QK5_1 / 2 + j] - mn) * id;
      const uint8_t q0 = uint8_t(int(x0 + 0.5f));  // C's (uint8_t)(v)
      const uint8_t q1 = uint8_t(int(x1 + 0.5f));
      y[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10u) >> 4) << j;
      qh |= uint32_t((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof(qh));
  }
}

void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k) {
  const int64_t nb = k / QK8_0;
  for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = qi::max_(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = int8_t(std::round(x[j] * id));  // roundf: ties away from zero
  }
}

void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t k) {
  const int64_t nb = k / QK8_1;
  for (int64_t i = 0; i < nb; ++i, x += QK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = qi::max_(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    int sum = 0;
    for (int j = 0; j < QK8_1 / 2; ++j) {
      y[i].qs[j] = int8_t(std::round(x[j] * id));
      y[i].qs[QK8_1 / 2 + j] = int8_t(std::round(x[QK8_1 / 2 + j] * id));
      sum += y[i].qs[j] + y[i].qs[QK8_1 / 2 + j];
    }
    y[i].s = to_half(float(sum) * d);
  }
}

// ============================================================================
// dequantization
// ============================================================================

void dequantize_row_q4_0(const block_q4_0* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK4_0; ++i, y += QK4_0) {
    const float d = from_half(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = float((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = float((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const block_q4_1* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK4_1; ++i, y += QK4_1) {
    const float d = from_half(x[i].d), m = from_half(x[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = float(x[i].qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = float(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_row_q5_0(const block_q5_0* x, float* y, int64_t k) {
  int8_t q[QK5_0];
  for (int64_t i = 0; i < k / QK5_0; ++i, y += QK5_0) {
    const float d = from_half(x[i].d);
    unpack_q5(x[i].qs, x[i].qh, 16, q);
    for (int j = 0; j < QK5_0; ++j) y[j] = float(q[j]) * d;
  }
}

void dequantize_row_q5_1(const block_q5_1* x, float* y, int64_t k) {
  int8_t q[QK5_1];
  for (int64_t i = 0; i < k / QK5_1; ++i, y += QK5_1) {
    const float d = from_half(x[i].d), m = from_half(x[i].m);
    unpack_q5(x[i].qs, x[i].qh, 0, q);
    for (int j = 0; j < QK5_1; ++j) y[j] = float(q[j]) * d + m;
  }
}

void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_0; ++i, y += QK8_0) {
    const float d = from_half(x[i].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

void dequantize_row_q8_1(const block_q8_1* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_1; ++i, y += QK8_1) {
    const float d = from_half(x[i].d);
    for (int j = 0; j < QK8_1; ++j) y[j] = float(x[i].qs[j]) * d;
  }
}

// ============================================================================
// dispatch by type
// ============================================================================

bool is_quantized(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: case TensorType::Q4_1: case TensorType::Q5_0: case TensorType::Q5_1:
    case TensorType::Q8_0: case TensorType::Q8_1: case TensorType::Q2_K: case TensorType::Q3_K:
    case TensorType::Q4_K: case TensorType::Q5_K: case TensorType::Q6_K: case TensorType::Q8_K:
      return true;
    default:
      return false;
  }
}

bool is_weight_quant_type(TensorType t) {
  return is_quantized(t) && t != TensorType::Q8_1 && t != TensorType::Q8_K;
}

TensorType vec_dot_type(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: case TensorType::Q5_0: case TensorType::Q8_0: return TensorType::Q8_0;
    case TensorType::Q4_1: case TensorType::Q5_1: return TensorType::Q8_1;
    case TensorType::Q2_K: case TensorType::Q3_K: case TensorType::Q4_K: case TensorType::Q5_K:
    case TensorType::Q6_K: return TensorType::Q8_K;
    default: return t;
  }
}

static void check_count(TensorType t, int64_t n) {
  if (row_size(t, n) < 0)
    throw std::invalid_argument("cannot use " + tensor_type_name(t) + " for " + std::to_string(n) +
                                " elements: not a multiple of its block size " +
                                std::to_string(tensor_type_info(t).block_size));
}

void quantize_row(TensorType t, const float* x, void* y, int64_t n) {
  check_count(t, n);
  switch (t) {
    case TensorType::Q4_0: return quantize_row_q4_0_ref(x, static_cast<block_q4_0*>(y), n);
    case TensorType::Q4_1: return quantize_row_q4_1_ref(x, static_cast<block_q4_1*>(y), n);
    case TensorType::Q5_0: return quantize_row_q5_0_ref(x, static_cast<block_q5_0*>(y), n);
    case TensorType::Q5_1: return quantize_row_q5_1_ref(x, static_cast<block_q5_1*>(y), n);
    case TensorType::Q8_0: return quantize_row_q8_0_ref(x, static_cast<block_q8_0*>(y), n);
    case TensorType::Q8_1: return quantize_row_q8_1_ref(x, static_cast<block_q8_1*>(y), n);
    case TensorType::Q2_K: return quantize_row_q2_K_ref(x, static_cast<block_q2_K*>(y), n);
    case TensorType::Q3_K: return quantize_row_q3_K_ref(x, static_cast<block_q3_K*>(y), n);
    case TensorType::Q4_K: return quantize_row_q4_K_ref(x, static_cast<block_q4_K*>(y), n);
    case TensorType::Q5_K: return quantize_row_q5_K_ref(x, static_cast<block_q5_K*>(y), n);
    case TensorType::Q6_K: return quantize_row_q6_K_ref(x, static_cast<block_q6_K*>(y), n);
    case TensorType::Q8_K: return quantize_row_q8_K_ref(x, static_cast<block_q8_K*>(y), n);
    default:
      throw std::invalid_argument("quantize_row: " + tensor_type_name(t) + " is not a quantized type");
  }
}

void quantize_row_for_dot(TensorType t, const float* x, void* y, int64_t n) { quantize_row(vec_dot_type(t), x, y, n); }

void dequantize_row(TensorType t, const void* x, float* y, int64_t n) {
  check_count(t, n);
  switch (t) {
    case TensorType::F32: std::memcpy(y, x, size_t(n) * 4); return;
    case TensorType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(x);
      for (int64_t i = 0; i < n; ++i) y[i] = half_to_float(h[i]);
      return;
    }
    case TensorType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(x);
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(h[i]);
      return;
    }
    case TensorType::Q4_0: return dequantize_row_q4_0(static_cast<const block_q4_0*>(x), y, n);
    case TensorType::Q4_1: return dequantize_row_q4_1(static_cast<const block_q4_1*>(x), y, n);
    case TensorType::Q5_0: return dequantize_row_q5_0(static_cast<const block_q5_0*>(x), y, n);
    case TensorType::Q5_1: return dequantize_row_q5_1(static_cast<const block_q5_1*>(x), y, n);
    case TensorType::Q8_0: return dequantize_row_q8_0(static_cast<const block_q8_0*>(x), y, n);
    case TensorType::Q8_1: return dequantize_row_q8_1(static_cast<const block_q8_1*>(x), y, n);
    case TensorType::Q2_K: return dequantize_row_q2_K(static_cast<const block_q2_K*>(x), y, n);
    case TensorType::Q3_K: return dequantize_row_q3_K(static_cast<const block_q3_K*>(x), y, n);
    case TensorType::Q4_K: return dequantize_row_q4_K(static_cast<const block_q4_K*>(x), y, n);
    case TensorType::Q5_K: return dequantize_row_q5_K(static_cast<const block_q5_K*>(x), y, n);
    case TensorType::Q6_K: return dequantize_row_q6_K(static_cast<const block_q6_K*>(x), y, n);
    case TensorType::Q8_K: return dequantize_row_q8_K(static_cast<const block_q8_K*>(x), y, n);
  }
  throw std::invalid_argument("dequantize_row: unknown type " + tensor_type_name(t));
}

}  // namespace sc
