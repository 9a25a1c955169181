// The avx512 level's peak loops (backend/cpu/peaks.h). This file alone is
// compiled with the AVX-512 flags, like the avx512 kernels; nothing here runs
// unless the dispatcher chose the avx512 level (cpuid said so), and the BF16
// loop only where cpuid also reports AVX512_BF16.
#include "backend/cpu/peaks.h"

#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__)
#include <cpuid.h>

#include <algorithm>
#include <chrono>
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593; see kernels_avx512.cpp).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

namespace sc {
namespace {

volatile float g_sink_f;
volatile int g_sink_i;

bool cpu_has_avx512_bf16_impl() {
  if (!cpu_supports_avx512()) return false;  // ZMM state saved, F/BW/DQ/VL/VNNI
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return false;  // a: the last sub-leaf of leaf 7
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return a & (1u << 5);  // AVX512_BF16
}

// acc += a * b (vfmadd231ps zmm), 12 chains. 2 flops per lane.
double fp32_fma_zmm(int64_t iters) {
  constexpr int kChains = 12;
  volatile float va = 1e-3f, vb = 1e-3f;
  const __m512 a = _mm512_set1_ps(va), b = _mm512_set1_ps(vb);
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + 0.01f * float(j));
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(a, b, acc[j]);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  g_sink_f = _mm512_reduce_add_ps(s);
  return 2.0 * 16 * kChains * double(iters);
}

// The int8 step of the avx512 quantized dots (x86/quant_dot_avx512.cpp): one
// vpdpbusd zmm, 64 u8 x s8 multiply-adds into 16 i32 lanes, 128 ops. In asm
// so that the loop is that instruction alone: as the intrinsic, GCC 12 adds a
// register copy per step (vpdpbusd overwrites its accumulator).
inline __m512i int8_step(__m512i acc, __m512i w, __m512i y) {
  __asm__("vpdpbusd %[y], %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [y] "v"(y));
  return acc;
}

// The same instruction on 256-bit registers: 32 u8 x s8 multiply-adds, 64 ops.
inline __m256i int8_step(__m256i acc, __m256i w, __m256i y) {
  __asm__("vpdpbusd %[y], %[w], %[acc]" : [acc] "+v"(acc) : [w] "v"(w), [y] "v"(y));
  return acc;
}

// What the vpdpbusd loop needs of each register width.
inline __m512i set1(__m512i, int v) { return _mm512_set1_epi32(v); }
inline __m256i set1(__m256i, int v) { return _mm256_set1_epi32(v); }
inline __m512i add32(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
inline __m256i add32(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
inline int lane_sum(__m512i s) { return _mm512_reduce_add_epi32(s); }
inline int lane_sum(__m256i s) { return _mm256_extract_epi32(s, 0) + _mm256_extract_epi32(s, 7); }

template <class V>
double int8_dpbusd(int64_t iters) {
  constexpr int kChains = 12;
  volatile int vw = 0x01020304, vy = 0x01010101;
  const V w = set1(V{}, vw), y = set1(V{}, vy);
  V acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = set1(V{}, j);
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = int8_step(acc[j], w, y);
  }
  V s = acc[0];
  for (int j = 1; j < kChains; ++j) s = add32(s, acc[j]);
  g_sink_i = lane_sum(s);
  return 2.0 * double(sizeof(V)) * kChains * double(iters);  // 2 ops per byte pair
}
constexpr PeakLoopFn int8_dpbusd_zmm = int8_dpbusd<__m512i>;
constexpr PeakLoopFn int8_dpbusd_ymm = int8_dpbusd<__m256i>;

// Ops per second of one run of a loop on this thread.
double rate_of(PeakLoopFn loop, int64_t iters) {
  const auto t0 = std::chrono::steady_clock::now();
  const double ops = loop(iters);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s > 0 ? ops / s : 0.0;
}

bool zmm_full_width_impl() {
  // About 0.2 ms per run at 3 GHz; the best of 5 alternating runs of each,
  // so that an interruption (a noisy VM) cannot decide it.
  constexpr int64_t kIters = 20000;
  double best_ymm = 0, best_zmm = 0;
  for (int r = 0; r < 5; ++r) {
    best_ymm = std::max(best_ymm, rate_of(int8_dpbusd_ymm, kIters));
    best_zmm = std::max(best_zmm, rate_of(int8_dpbusd_zmm, kIters));
  }
  return best_zmm >= 1.5 * best_ymm;
}

// vdpbf16ps zmm: 32 bf16 pairs multiplied and summed into 16 float lanes, 64
// flops. Only this function may use AVX512_BF16 (the file's flags do not
// include it), and it is only called where cpuid reports it.
__attribute__((target("avx512bf16"))) double bf16_dpbf16_zmm(int64_t iters) {
  constexpr int kChains = 12;
  volatile float va = 1e-3f;
  const __m512 f = _mm512_set1_ps(va);
  const __m512bh a = _mm512_cvtne2ps_pbh(f, f), b = _mm512_cvtne2ps_pbh(f, f);
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + 0.01f * float(j));
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  g_sink_f = _mm512_reduce_add_ps(s);
  return 2.0 * 32 * kChains * double(iters);
}

}  // namespace

bool cpu_supports_avx512_bf16() {
  static const bool ok = cpu_has_avx512_bf16_impl();
  return ok;
}

bool cpu_runs_zmm_at_full_width() {
  static const bool full = cpu_supports_avx512() && zmm_full_width_impl();
  return full;
}

void fill_peaks_avx512(PeakLoops& p) {
  p.fp32 = {"vfmadd231ps zmm (avx512)", fp32_fma_zmm};
  p.int8 = {"vpdpbusd zmm (avx512_vnni)", int8_dpbusd_zmm};
  if (cpu_supports_avx512_bf16()) p.bf16 = {"vdpbf16ps zmm (avx512_bf16)", bf16_dpbf16_zmm};
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
bool cpu_supports_avx512_bf16() { return false; }
bool cpu_runs_zmm_at_full_width() { return false; }
void fill_peaks_avx512(PeakLoops&) {}
}  // namespace sc

#endif
