// NEON quantized dot products for every aarch64 CPU (int8 products through
// widening multiplies: SMULL + SADALP), and the activation quantizers, which
// give the reference's bytes exactly (they are the same float operations,
// four lanes at a time; the fp16 scales go through the reference converter).
#include "backend/cpu/kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "backend/cpu/arm/quant_dot_neon_impl.h"
#include "format/quant.h"
#include "format/tensor_types.h"

namespace sc {
namespace {

struct DotWiden {
  // int8 x int8 fits int16 (|p| <= 2^14); SADALP adds pairs into int32, so
  // this is exact for any int8 inputs, -128 included.
  static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
  }
};

// max |x[j]| over n (a multiple of 16) floats
inline float absmax(const float* x, int n) {
  float32x4_t m0 = vdupq_n_f32(0.f), m1 = m0, m2 = m0, m3 = m0;
  for (int j = 0; j < n; j += 16) {
    m0 = vmaxq_f32(m0, vabsq_f32(vld1q_f32(x + j)));
    m1 = vmaxq_f32(m1, vabsq_f32(vld1q_f32(x + j + 4)));
    m2 = vmaxq_f32(m2, vabsq_f32(vld1q_f32(x + j + 8)));
    m3 = vmaxq_f32(m3, vabsq_f32(vld1q_f32(x + j + 12)));
  }
  return vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3)));
}

// 4 int32 x 4 (lanes in order) -> 16 int8, truncating as C's int8_t(v) does.
inline int8x16_t narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  const int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
  const int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
  return vcombine_s8(vmovn_s16(ab), vmovn_s16(cd));
}

// round(x * id) for 32 floats, ties away from zero (FCVTAS = C's roundf);
// returns the int32 lanes summed too (for Q8_1's s).
inline int32_t q8_block_round(const float* x, float id, int8_t* qs) {
  int32x4_t v[8];
  for (int j = 0; j < 8; ++j) v[j] = vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4 * j), id));
  vst1q_s8(qs, narrow16(v[0], v[1], v[2], v[3]));
  vst1q_s8(qs + 16, narrow16(v[4], v[5], v[6], v[7]));
  const int32x4_t s = vaddq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])),
                                vaddq_s32(vaddq_s32(v[4], v[5]), vaddq_s32(v[6], v[7])));
  return vaddvq_s32(s);
}

void quantize_q8_0_neon(const float* x, void* vy, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    const float d = absmax(x, QK8_0) / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    q8_block_round(x, id, y[i].qs);
  }
}

void quantize_q8_1_neon(const float* x, void* vy, int64_t n) {
  block_q8_1* y = static_cast<block_q8_1*>(vy);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    const float d = absmax(x, QK8_1) / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    const int32_t sum = q8_block_round(x, id, y[i].qs);
    y[i].s = fp32_to_fp16(float(sum) * d);
  }
}

void quantize_q8_K_neon(const float* x, void* vy, int64_t n) {
  block_q8_K* y = static_cast<block_q8_K*>(vy);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    const float amax = absmax(x, QK_K);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(block_q8_K));
      continue;
    }
    // the signed value of the first element with the largest magnitude
    int jmax = 0;
    while (std::fabs(x[jmax]) != amax) ++jmax;
    const float iscale = -127.f / x[jmax];
    const int32x4_t top = vdupq_n_s32(127);
    for (int g = 0; g < QK_K / 16; ++g) {
      // nearest, ties to even (FCVTNS), as nearest_int; then min(127, .)
      int32x4_t v[4];
      for (int u = 0; u < 4; ++u) v[u] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * u), iscale)), top);
      vst1q_s8(y[i].qs + 16 * g, narrow16(v[0], v[1], v[2], v[3]));
      y[i].bsums[g] = int16_t(vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3]))));
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace

void fill_quant_neon(CpuKernels& k) {
  fill_quant_dots<DotWiden>(k);
  k.quantize_act[kActQ8_0] = quantize_q8_0_neon;
  k.quantize_act[kActQ8_1] = quantize_q8_1_neon;
  k.quantize_act[kActQ8_K] = quantize_q8_K_neon;
}

}  // namespace sc

#else  // not an aarch64 build

namespace sc {
void fill_quant_neon(CpuKernels&) {}
}  // namespace sc

#endif
