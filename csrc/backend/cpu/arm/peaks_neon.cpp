// The neon level's peak loops (backend/cpu/peaks.h). Advanced SIMD is
// baseline on aarch64, so this file needs no flags (as kernels_neon.cpp); the
// SDOT loop lives in peaks_neon_dotprod.cpp, compiled for ARMv8.2.
#include "backend/cpu/peaks.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace sc {
namespace {

volatile float g_sink_f;
volatile int g_sink_i;

// acc += a * b (fmla, vfmaq_f32), 16 chains: FMA latency 4 on 2 to 4 pipes.
// 2 flops per lane.
double fp32_fmla(int64_t iters) {
  constexpr int kChains = 16;
  volatile float va = 1e-3f, vb = 1e-3f;  // not constants: nothing to fold
  const float32x4_t a = vdupq_n_f32(va), b = vdupq_n_f32(vb);
  float32x4_t acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = vdupq_n_f32(1.0f + 0.01f * float(j));
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = vfmaq_f32(acc[j], a, b);
  }
  float32x4_t s = acc[0];
  for (int j = 1; j < kChains; ++j) s = vaddq_f32(s, acc[j]);
  g_sink_f = vaddvq_f32(s);
  return 2.0 * 4 * kChains * double(iters);
}

// The int8 step of the neon quantized dots (arm/quant_dot_neon.cpp's dot16):
// 16 s8 x s8 products widened to i16 (smull, smull2) and pairwise added
// into the i32 accumulator (sadalp, twice): 16 multiply-adds, 32 ops. The
// empty asm makes the weights look new to the compiler before every step
// (it emits nothing), so the multiplies are neither hoisted nor shared.
double int8_smull_sadalp(int64_t iters) {
  constexpr int kChains = 12;
  volatile int vw = 0x01020304, vy = 0x01010101;
  int8x16_t w = vreinterpretq_s8_s32(vdupq_n_s32(vw));
  const int8x16_t y = vreinterpretq_s8_s32(vdupq_n_s32(vy));
  int32x4_t acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = vdupq_n_s32(j);
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) {
      __asm__ volatile("" : "+w"(w));
      acc[j] = vpadalq_s16(acc[j], vmull_s8(vget_low_s8(w), vget_low_s8(y)));
      acc[j] = vpadalq_s16(acc[j], vmull_high_s8(w, y));
    }
  }
  int32x4_t s = acc[0];
  for (int j = 1; j < kChains; ++j) s = vaddq_s32(s, acc[j]);
  g_sink_i = vaddvq_s32(s);
  return 2.0 * 16 * kChains * double(iters);
}

}  // namespace

void fill_peaks_neon(PeakLoops& p) {
  p.fp32 = {"fmla v.4s (neon)", fp32_fmla};
  p.int8 = {"smull+smull2+sadalp (neon)", int8_smull_sadalp};
}

}  // namespace sc

#else  // not an aarch64 build

namespace sc {
void fill_peaks_neon(PeakLoops&) {}
}  // namespace sc

#endif
