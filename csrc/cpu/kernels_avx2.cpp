// AVX2 + FMA + F16C kernels (the x86-64 laptop baseline). This file alone is
// compiled with -mavx2 -mfma -mf16c; nothing here runs unless cpuid says the
// CPU has those extensions and the OS saves YMM state.
#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <cpuid.h>
#include <immintrin.h>

#include <cmath>

namespace sc {
namespace {

bool cpu_has_avx2_fma_f16c_impl() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return false;
  // The OS must save XMM and YMM state (XCR0 bits 1 and 2).
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 6) != 6) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return b & (1u << 5);  // AVX2
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float dot_f32_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void dot4_f32_avx2(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                   float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
  }
  float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
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

void dot4x2_f32_avx2(const float* w0, const float* w1, const float* w2, const float* w3, const float* x0,
                     const float* x1, int64_t n, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xa = _mm256_loadu_ps(x0 + i), xb = _mm256_loadu_ps(x1 + i);
    const __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
    const __m256 v2 = _mm256_loadu_ps(w2 + i), v3 = _mm256_loadu_ps(w3 + i);
    a0 = _mm256_fmadd_ps(v0, xa, a0);
    b0 = _mm256_fmadd_ps(v0, xb, b0);
    a1 = _mm256_fmadd_ps(v1, xa, a1);
    b1 = _mm256_fmadd_ps(v1, xb, b1);
    a2 = _mm256_fmadd_ps(v2, xa, a2);
    b2 = _mm256_fmadd_ps(v2, xb, b2);
    a3 = _mm256_fmadd_ps(v3, xa, a3);
    b3 = _mm256_fmadd_ps(v3, xb, b3);
  }
  float s[8] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3), hsum(b0), hsum(b1), hsum(b2), hsum(b3)};
  const float* w[4] = {w0, w1, w2, w3};
  for (; i < n; ++i)
    for (int r = 0; r < 4; ++r) {
      s[r] += w[r][i] * x0[i];
      s[4 + r] += w[r][i] * x1[i];
    }
  for (int j = 0; j < 8; ++j) out[j] = s[j];
}

void dot4_f16_avx2(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                   int64_t n, float* out) {
  auto h8 = [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // two accumulators per row: 8 independent FMA chains
    const __m256 xa = _mm256_loadu_ps(x + i), xb = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_fmadd_ps(h8(w0 + i), xa, a0);
    b0 = _mm256_fmadd_ps(h8(w0 + i + 8), xb, b0);
    a1 = _mm256_fmadd_ps(h8(w1 + i), xa, a1);
    b1 = _mm256_fmadd_ps(h8(w1 + i + 8), xb, b1);
    a2 = _mm256_fmadd_ps(h8(w2 + i), xa, a2);
    b2 = _mm256_fmadd_ps(h8(w2 + i + 8), xb, b2);
    a3 = _mm256_fmadd_ps(h8(w3 + i), xa, a3);
    b3 = _mm256_fmadd_ps(h8(w3 + i + 8), xb, b3);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 xa = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(h8(w0 + i), xa, a0);
    a1 = _mm256_fmadd_ps(h8(w1 + i), xa, a1);
    a2 = _mm256_fmadd_ps(h8(w2 + i), xa, a2);
    a3 = _mm256_fmadd_ps(h8(w3 + i), xa, a3);
  }
  float s[4] = {hsum(_mm256_add_ps(a0, b0)), hsum(_mm256_add_ps(a1, b1)), hsum(_mm256_add_ps(a2, b2)),
                hsum(_mm256_add_ps(a3, b3))};
  const uint16_t* w[4] = {w0, w1, w2, w3};
  for (; i < n; ++i)
    for (int r = 0; r < 4; ++r) s[r] += _cvtsh_ss(w[r][i]) * x[i];
  for (int r = 0; r < 4; ++r) out[r] = s[r];
}

void axpy_f32_avx2(float* y, float a, const float* x, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// exp(x) for x <= ~88 (Cephes' expf scheme): x = n ln2 + r with |r| <= ln2/2,
// a degree-6 polynomial for exp(r), then 2^n through the exponent bits.
// Relative error about 2 ulp; inputs below -87 give 0.
inline __m256 exp_avx2(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 below = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(below, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

float exp_shift_sum_avx2(float* x, int64_t n, float max) {
  const __m256 mv = _mm256_set1_ps(max);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  return sum;
}

void f16_to_f32_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

}  // namespace

bool cpu_supports_avx2() {
  static const bool ok = cpu_has_avx2_fma_f16c_impl();
  return ok;
}

void fill_float_avx2(CpuKernels& k) {
  k.dot_f32 = dot_f32_avx2;
  k.dot4_f32 = dot4_f32_avx2;
  k.dot4x2_f32 = dot4x2_f32_avx2;
  k.dot4_f16 = dot4_f16_avx2;
  k.axpy_f32 = axpy_f32_avx2;
  k.exp_shift_sum = exp_shift_sum_avx2;
  k.f16_to_f32 = f16_to_f32_avx2;
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
bool cpu_supports_avx2() { return false; }
void fill_float_avx2(CpuKernels&) {}
}  // namespace sc

#endif
