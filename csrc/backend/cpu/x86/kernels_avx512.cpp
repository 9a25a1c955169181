// AVX-512 kernels (F/BW/DQ/VL + VNNI: Ice Lake, Sapphire Rapids, Zen 4 and
// later). This file alone is compiled with the AVX-512 flags; nothing here
// runs unless cpuid says the CPU has them and the OS saves ZMM state.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__)
#include <cpuid.h>
// GCC 12's AVX-512 intrinsics build their results on a self-initialised
// "undefined" vector that -Wextra reports as uninitialised (GCC bug 105593,
// fixed in GCC 13); the warning is about the header, not this file.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace sc {
namespace {

bool cpu_has_avx512_impl() {
  if (!cpu_supports_avx2()) return false;
  unsigned a, b, c, d;
  // The OS must save opmask and ZMM state as well as XMM/YMM (XCR0 bits 1, 2, 5, 6, 7).
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  return f && dq && bw && vl && vnni;
}

// Lanes [0, n) of a 16-lane vector, n < 16: masked loads and stores handle
// every tail, so no loop needs a scalar remainder.
inline __mmask16 first_lanes(int64_t n) { return __mmask16((1u << n) - 1); }

float dot_f32_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
         acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

void dot4_f32_avx512(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                     float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
  }
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w0 + i), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w1 + i), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w2 + i), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w3 + i), xv, a3);
  }
  out[0] = _mm512_reduce_add_ps(a0);
  out[1] = _mm512_reduce_add_ps(a1);
  out[2] = _mm512_reduce_add_ps(a2);
  out[3] = _mm512_reduce_add_ps(a3);
}

// Decode of 16-bit weights (dot4_f16, dot4_bf16) keeps AVX2's kernels: on
// a Zen 4 core (512-bit vectors as two halves) they read 1B-shape F16 rows
// at 24 GB/s against 20-22 for a zmm version with 16 halves per load (with
// and without prefetch, medians of 4 interleaved runs); the loop is bound by
// memory either way, so wider vectors buy nothing there.

void axpy_f32_avx512(float* y, float a, const float* x, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// exp(x) for x <= 88, the scheme of exp_avx2 (x = n ln2 + r, |r| <= ln2/2,
// a degree-6 polynomial for exp(r)), with 2^n applied by scalef, which
// rounds into the subnormals instead of needing a cut-off; below -104 the
// result is 0.
inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

float exp_shift_sum_avx512(float* x, int64_t n, float max) {
  const __m512 mv = _mm512_set1_ps(max);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv)));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

void f16_to_f32_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
  }
}

// ---- GELU (the formulas of kernels_avx2.cpp, see there) ----

// x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), sigmoid from e = exp(-2|u|).
inline __m512 gelu_tanh16(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  const __m512 e = exp_avx512(_mm512_mul_ps(_mm512_set1_ps(-2.f), _mm512_abs_ps(u)));
  const __m512 r = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
  const __mmask16 neg = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mul_ps(x, _mm512_mask_mul_ps(r, neg, e, r));
}

// erfc(z), z >= 0: t exp(-z^2 + P(t)), t = 1 / (1 + z/2) (Numerical Recipes' erfcc).
inline __m512 erfc_nonneg16(__m512 z) {
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.f)));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  return _mm512_mul_ps(t, exp_avx512(_mm512_fnmadd_ps(z, z, p)));
}

// x (1 - erfc(|x|/sqrt2)/2) for x >= 0, x erfc(|x|/sqrt2)/2 for x < 0.
inline __m512 gelu_erf16(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 half_erfc = _mm512_mul_ps(_mm512_set1_ps(0.5f), erfc_nonneg16(_mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f))));
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 f = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.f), half_erfc), half_erfc);
  return _mm512_mul_ps(x, f);
}

template <__m512 (*F)(__m512)>
void map16_avx512(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(x + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

void gelu_tanh_avx512(float* x, int64_t n) { map16_avx512<gelu_tanh16>(x, n); }
void gelu_erf_avx512(float* x, int64_t n) { map16_avx512<gelu_erf16>(x, n); }

// ---- LayerNorm: the corrected two-pass algorithm of layer_norm_avx2 ----
void layer_norm_avx512(const float* x, const float* gamma, const float* beta, int64_t n, float eps, float* y) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : first_lanes(n - i);
    s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, x + i));
  }
  const float mean0 = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / float(n);

  const __m512 mv0 = _mm512_set1_ps(mean0);
  __m512 d_sum = _mm512_setzero_ps(), q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
  for (i = 0; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), mv0), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mv0);
    d_sum = _mm512_add_ps(d_sum, _mm512_add_ps(d0, d1));
    q0 = _mm512_fmadd_ps(d0, d0, q0);
    q1 = _mm512_fmadd_ps(d1, d1, q1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : first_lanes(n - i);
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), mv0);
    d_sum = _mm512_add_ps(d_sum, d);
    q0 = _mm512_fmadd_ps(d, d, q0);
  }
  const float shift = _mm512_reduce_add_ps(d_sum) / float(n);
  const float mean = mean0 + shift;
  const float var = std::max(0.f, _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) / float(n) - shift * shift);
  const float inv = 1.f / std::sqrt(var + eps);

  const __m512 mv = _mm512_set1_ps(mean), iv = _mm512_set1_ps(inv);
  for (i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : first_lanes(n - i);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv), iv);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i), _mm512_maskz_loadu_ps(m, beta + i)));
  }
}

// ---- GEMM tile (prompt path); the panels are packed by the avx2 kernels ----

// 12 tokens x 32 outputs: 24 zmm accumulators, 2 weight loads a step of K,
// and the 12 activations as broadcast memory operands of the FMAs.
constexpr int kMr = 12, kNr = 32;

// Accumulators stay in registers: loops over them are fully unrolled and
// indexed by constants only (see gemm_tile_avx2_m).
template <int M>
void gemm_tile_avx512_m(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int n, bool accumulate) {
  __m512 acc[M][2];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // lanes of the two output vectors that exist (n < 32 only at the last tile of a slice)
  const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : first_lanes(n);
  const __mmask16 m1 = n >= 32 ? __mmask16(0xFFFF) : n > 16 ? first_lanes(n - 16) : __mmask16(0);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(m0, ci));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, acc[i][0]);
    _mm512_mask_storeu_ps(ci + 16, m1, acc[i][1]);
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, bool);

template <size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {gemm_tile_avx512_m<int(I) + 1>...};
}
constexpr std::array<TileFn, kMr> kTiles = make_tiles(std::make_index_sequence<kMr>());

void gemm_tile_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                      bool accumulate) {
  kTiles[size_t(m - 1)](kc, a, b, c, ldc, n, accumulate);
}

}  // namespace

bool cpu_supports_avx512() {
  static const bool ok = cpu_has_avx512_impl();
  return ok;
}

void fill_float_avx512(CpuKernels& k) {
  k.dot_f32 = dot_f32_avx512;
  k.dot4_f32 = dot4_f32_avx512;
  k.axpy_f32 = axpy_f32_avx512;
  k.exp_shift_sum = exp_shift_sum_avx512;
  k.f16_to_f32 = f16_to_f32_avx512;
  k.gelu_tanh = gelu_tanh_avx512;
  k.gelu_erf = gelu_erf_avx512;
  k.layer_norm = layer_norm_avx512;
  k.gemm.mr = kMr;
  k.gemm.nr = kNr;
  k.gemm.tile = gemm_tile_avx512;  // the packing kernels are avx2's (8x8 transposes), for any tile shape
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
bool cpu_supports_avx512() { return false; }
void fill_float_avx512(CpuKernels&) {}
}  // namespace sc

#endif
