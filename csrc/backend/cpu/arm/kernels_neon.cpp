// Advanced SIMD (NEON) float kernels: the aarch64 baseline (every aarch64 CPU
// has it), so this file needs no extra flags and no run-time check.
#include "backend/cpu/kernels.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

#include <cmath>

namespace sc {
namespace {

// 8 IEEE halves -> 2 x 4 floats (FCVTL: exact, subnormals included).
inline float32x4_t h4_lo(uint16x8_t h) { return vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))); }
inline float32x4_t h4_hi(uint16x8_t h) { return vcvt_high_f32_f16(vreinterpretq_f16_u16(h)); }
inline float h1(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

float dot_f32_neon(const float* a, const float* b, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0.f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // four chains hide the FMA latency
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void dot4_f32_neon(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                   float* out) {
  float32x4_t a0 = vdupq_n_f32(0.f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t xv = vld1q_f32(x + i);
    a0 = vfmaq_f32(a0, vld1q_f32(w0 + i), xv);
    a1 = vfmaq_f32(a1, vld1q_f32(w1 + i), xv);
    a2 = vfmaq_f32(a2, vld1q_f32(w2 + i), xv);
    a3 = vfmaq_f32(a3, vld1q_f32(w3 + i), xv);
  }
  float s0 = vaddvq_f32(a0), s1 = vaddvq_f32(a1), s2 = vaddvq_f32(a2), s3 = vaddvq_f32(a3);
  for (; i < n; ++i) {
    s0 += w0[i] * x[i];
    s1 += w1[i] * x[i];
    s2 += w2[i] * x[i];
    s3 += w3[i] * x[i];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

void dot4_f16_neon(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                   int64_t n, float* out) {
  const uint16_t* w[4] = {w0, w1, w2, w3};
  float32x4_t a[4], b[4];
  for (int r = 0; r < 4; ++r) a[r] = b[r] = vdupq_n_f32(0.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {  // 8 halves per row: two chains per row
    const float32x4_t xa = vld1q_f32(x + i), xb = vld1q_f32(x + i + 4);
    for (int r = 0; r < 4; ++r) {
      const uint16x8_t h = vld1q_u16(w[r] + i);
      a[r] = vfmaq_f32(a[r], h4_lo(h), xa);
      b[r] = vfmaq_f32(b[r], h4_hi(h), xb);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float s = vaddvq_f32(vaddq_f32(a[r], b[r]));
    for (int64_t j = i; j < n; ++j) s += h1(w[r][j]) * x[j];
    out[r] = s;
  }
}

void axpy_f32_neon(float* y, float a, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vld1q_f32(x + i + 4), a));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// exp(x) for x <= ~88, the scheme of the AVX2 kernel: x = n ln2 + r with
// |r| <= ln2/2 (ln2 split in two for an exact first step), a degree-6
// polynomial for exp(r), 2^n through the exponent bits. ~2 ulp; x < -87.3 -> 0.
inline float32x4_t exp_neon(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(-87.3f);
  const uint32x4_t below = vcltq_f32(x, lo);
  x = vmaxq_f32(x, lo);
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.f)), vmulq_f32(p, r), r);
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), below));
}

float exp_shift_sum_neon(float* x, int64_t n, float max) {
  const float32x4_t mv = vdupq_n_f32(max);
  float32x4_t acc = vdupq_n_f32(0.f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp_neon(vsubq_f32(vld1q_f32(x + i), mv));
    vst1q_f32(x + i, e);
    acc = vaddq_f32(acc, e);
  }
  float sum = vaddvq_f32(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  return sum;
}

void f16_to_f32_neon(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint16x8_t h = vld1q_u16(src + i);
    vst1q_f32(dst + i, h4_lo(h));
    vst1q_f32(dst + i + 4, h4_hi(h));
  }
  for (; i < n; ++i) dst[i] = h1(src[i]);
}

}  // namespace

void fill_float_neon(CpuKernels& k) {
  k.dot_f32 = dot_f32_neon;
  k.dot4_f32 = dot4_f32_neon;
  k.dot4_f16 = dot4_f16_neon;
  k.axpy_f32 = axpy_f32_neon;
  k.exp_shift_sum = exp_shift_sum_neon;
  k.f16_to_f32 = f16_to_f32_neon;
}

}  // namespace sc

#else  // not an aarch64 build

namespace sc {
void fill_float_neon(CpuKernels&) {}
}  // namespace sc

#endif
