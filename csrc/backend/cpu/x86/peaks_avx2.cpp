// The avx2 level's peak loops (backend/cpu/peaks.h). This file alone is
// compiled with -mavx2 -mfma -mf16c, like the avx2 kernels; nothing here runs
// unless the dispatcher chose the avx2 or avx512 level (cpuid said so).
#include "backend/cpu/peaks.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace sc {
namespace {

volatile float g_sink_f;
volatile unsigned g_sink_i;

float hsum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float s = 0.f;
  for (float x : lanes) s += x;
  return s;
}

// Wrapping, as the vector adds do (the accumulators are meant to overflow:
// only the loop's speed matters, the sum is a sink). Signed overflow in a
// scalar int would be undefined; UBSan caught it.
unsigned hsum(__m256i v) {
  alignas(32) unsigned lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  unsigned s = 0;
  for (unsigned x : lanes) s += x;
  return s;
}

// acc += a * b (vfmadd231ps ymm), 12 chains: FMA latency 4-5 cycles on 2
// pipes needs 8-10 in flight. 2 flops per lane.
double fp32_fma_ymm(int64_t iters) {
  constexpr int kChains = 12;
  volatile float va = 1e-3f, vb = 1e-3f;  // not constants: nothing to fold
  const __m256 a = _mm256_set1_ps(va), b = _mm256_set1_ps(vb);
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1.0f + 0.01f * float(j));
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(a, b, acc[j]);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  g_sink_f = hsum(s);
  return 2.0 * 8 * kChains * double(iters);
}

// The int8 step of the avx2 prompt GEMM (x86/quant_gemm_x86.h), the
// fastest int8 sequence this level has: u8 x s8 pairs summed into i16
// (vpmaddubsw) and added to an i16 accumulator (vpaddw): 32 multiply-adds,
// 64 ops. (The row kernels also widen to i32 with vpmaddwd, which measured
// about half this rate.) Written as one asm statement because its multiplies
// have loop-invariant inputs: as intrinsics the compiler would compute them
// once for every chain (and, with a barrier in between, GCC 12 spills the
// accumulators). Only vpaddw carries a dependency, through `acc`.
inline __m256i int8_step(__m256i acc, __m256i w, __m256i y) {
  __m256i t;
  __asm__("vpmaddubsw %[y], %[w], %[t]\n\t"
          "vpaddw %[t], %[acc], %[acc]"
          : [acc] "+x"(acc), [t] "=&x"(t)
          : [w] "x"(w), [y] "x"(y));
  return acc;
}
double int8_maddubs_ymm(int64_t iters) {
  constexpr int kChains = 10;  // + weights, activations, a temporary: 13 of 16 registers
  volatile int vw = 0x01020304, vy = 0x01010101;
  const __m256i w = _mm256_set1_epi32(vw), y = _mm256_set1_epi32(vy);
  __m256i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_epi32(j);
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = int8_step(acc[j], w, y);
  }
  __m256i s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_epi16(s, acc[j]);
  g_sink_i = hsum(s);
  return 2.0 * 32 * kChains * double(iters);
}

}  // namespace

void fill_peaks_avx2(PeakLoops& p) {
  p.fp32 = {"vfmadd231ps ymm (avx2)", fp32_fma_ymm};
  p.int8 = {"vpmaddubsw+vpaddw ymm (avx2)", int8_maddubs_ymm};
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
void fill_peaks_avx2(PeakLoops&) {}
}  // namespace sc

#endif
