// The neon_dotprod level's int8 peak loop (backend/cpu/peaks.h): SDOT, as
// arm/quant_dot_neon_dotprod.cpp uses it. This file alone is compiled with
// -march=armv8.2-a+dotprod; nothing here runs unless the dispatcher chose
// the neon_dotprod level (the CPU reported the extension).
#include "backend/cpu/peaks.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

namespace sc {
namespace {

volatile int g_sink_i;

// acc += 4-way s8 dot products (sdot, vdotq_s32), 16 chains: 16 multiply-adds
// into 4 i32 lanes, 32 ops.
double int8_sdot(int64_t iters) {
  constexpr int kChains = 16;
  volatile int vw = 0x01020304, vy = 0x01010101;
  const int8x16_t w = vreinterpretq_s8_s32(vdupq_n_s32(vw)), y = vreinterpretq_s8_s32(vdupq_n_s32(vy));
  int32x4_t acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = vdupq_n_s32(j);
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = vdotq_s32(acc[j], w, y);
  }
  int32x4_t s = acc[0];
  for (int j = 1; j < kChains; ++j) s = vaddq_s32(s, acc[j]);
  g_sink_i = vaddvq_s32(s);
  return 2.0 * 16 * kChains * double(iters);
}

}  // namespace

void fill_peaks_neon_dotprod(PeakLoops& p) { p.int8 = {"sdot (neon_dotprod)", int8_sdot}; }

}  // namespace sc

#else  // not an aarch64 build with the dotprod flags

namespace sc {
void fill_peaks_neon_dotprod(PeakLoops&) {}
}  // namespace sc

#endif
