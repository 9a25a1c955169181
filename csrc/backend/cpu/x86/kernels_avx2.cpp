// AVX2 + FMA + F16C kernels (the x86-64 laptop baseline). This file alone is
// compiled with -mavx2 -mfma -mf16c; nothing here runs unless cpuid says the
// CPU has those extensions and the OS saves YMM state.
#include "backend/cpu/kernels.h"
#include "format/tensor_types.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/x86/prefetch_x86.h"

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

// 8 halves -> 8 floats: IEEE half, or bfloat16 (the top half of a float32).
inline __m256 f16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 bf16x8(const uint16_t* p) {
  const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}
inline float f16x1(uint16_t h) { return _cvtsh_ss(h); }
inline float bf16x1(uint16_t h) { return bf16_to_fp32(h); }

// dot4 over 16-bit weights converted in registers (decode: each row is read
// once, from the file, so no f32 copy is made).
template <__m256 (*H8)(const uint16_t*), float (*H1)(uint16_t)>
float dot_half_row_avx2(const uint16_t* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {  // four independent FMA chains
    prefetch_stream(w + i);
    a0 = _mm256_fmadd_ps(H8(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(H8(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(H8(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(H8(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(H8(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += H1(w[i]) * x[i];
  return s;
}

// The four rows one after the other: they are adjacent in the file, so this
// reads one contiguous stretch (interleaving them measured slower, as for
// the quantized kernels).
template <__m256 (*H8)(const uint16_t*), float (*H1)(uint16_t)>
void dot4_half_avx2(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                    int64_t n, float* out) {
  out[0] = dot_half_row_avx2<H8, H1>(w0, x, n);
  out[1] = dot_half_row_avx2<H8, H1>(w1, x, n);
  out[2] = dot_half_row_avx2<H8, H1>(w2, x, n);
  out[3] = dot_half_row_avx2<H8, H1>(w3, x, n);
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

// ---- GELU ----

// 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation for negative x.
// sigmoid(2u) = 1 / (1 + e) for u >= 0 and e / (1 + e) for u < 0, with
// e = exp(-2|u|) in (0, 1], so nothing overflows however large |x| is.
inline __m256 gelu_tanh8(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  const __m256 abs_u = _mm256_andnot_ps(_mm256_set1_ps(-0.f), u);
  const __m256 e = exp_avx2(_mm256_mul_ps(_mm256_set1_ps(-2.f), abs_u));
  const __m256 r = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), e));
  const __m256 sig = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_mul_ps(x, sig);
}

// erfc(z) for z >= 0 as t exp(-z^2 + P(t)), t = 1 / (1 + z/2) (Numerical
// Recipes' erfcc, a Chebyshev fit with relative error below 1.2e-7 for every
// z >= 0). GELU needs 1 + erf(x/sqrt2) = erfc(-x/sqrt2); computing the
// complement directly keeps it accurate where it is tiny (x << 0).
inline __m256 erfc_nonneg8(__m256 z) {
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  return _mm256_mul_ps(t, exp_avx2(_mm256_fnmadd_ps(z, z, p)));
}

// 0.5 x (1 + erf(x/sqrt2)) = x (1 - erfc(|x|/sqrt2)/2) for x >= 0,
//                            x erfc(|x|/sqrt2)/2       for x < 0.
inline __m256 gelu_erf8(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  const __m256 half_erfc = _mm256_mul_ps(_mm256_set1_ps(0.5f), erfc_nonneg8(_mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f))));
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 f = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.f), half_erfc), half_erfc, neg);
  return _mm256_mul_ps(x, f);
}

// The tail goes through a zero-padded copy so that it is rounded exactly
// like the vector body.
template <__m256 (*F)(__m256)>
void map8_avx2(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, F(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float tail[8] = {0};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_storeu_ps(tail, F(_mm256_loadu_ps(tail)));
    for (int64_t j = i; j < n; ++j) x[j] = tail[j - i];
  }
}

void gelu_tanh_avx2(float* x, int64_t n) { map8_avx2<gelu_tanh8>(x, n); }
void gelu_erf_avx2(float* x, int64_t n) { map8_avx2<gelu_erf8>(x, n); }

// ---- LayerNorm ----

// Two passes in float (the corrected two-pass algorithm): a first mean, then
// the sums of d = x - mean and d^2. The sum of d corrects the float rounding
// of the first mean (which matters when the mean is large against the
// spread, as in a residual stream with a few large channels), and the
// variance never subtracts two large numbers.
void layer_norm_avx2(const float* x, const float* gamma, const float* beta, int64_t n, float eps, float* y) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
  float sum = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) sum += x[i];
  const float mean0 = sum / float(n);

  const __m256 mv0 = _mm256_set1_ps(mean0);
  __m256 d_sum = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv0), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv0);
    d_sum = _mm256_add_ps(d_sum, _mm256_add_ps(d0, d1));
    q0 = _mm256_fmadd_ps(d0, d0, q0);
    q1 = _mm256_fmadd_ps(d1, d1, q1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv0);
    d_sum = _mm256_add_ps(d_sum, d);
    q0 = _mm256_fmadd_ps(d, d, q0);
  }
  float ds = hsum(d_sum), sq = hsum(_mm256_add_ps(q0, q1));
  for (; i < n; ++i) {
    const float d = x[i] - mean0;
    ds += d;
    sq += d * d;
  }
  const float shift = ds / float(n);
  const float mean = mean0 + shift;
  const float var = std::max(0.f, sq / float(n) - shift * shift);
  const float inv = 1.f / std::sqrt(var + eps);

  const __m256 mv = _mm256_set1_ps(mean), iv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), iv);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

// ---- GEMM (prompt path) ----

// 8 floats of a weight row from column k, converted from its storage type.
inline __m256 load8_as_f32(TensorType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case TensorType::F16: return f16x8(reinterpret_cast<const uint16_t*>(row) + k);
    case TensorType::BF16: return bf16x8(reinterpret_cast<const uint16_t*>(row) + k);
    default:
      return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
}

inline float load1_as_f32(TensorType t, const uint8_t* row, int64_t k) {
  const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
  switch (t) {
    case TensorType::F16: return _cvtsh_ss(h[k]);
    case TensorType::BF16: return bf16_to_fp32(h[k]);
    default: return reinterpret_cast<const float*>(row)[k];
  }
}

// r[j] = row j (8 columns) -> out + i * stride holds column i (8 rows).
inline void transpose8_store(const __m256 r[8], float* out, int64_t stride) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  // s0: column 0 (rows 0-3) | column 4 (rows 0-3); s1: columns 1|5; s2: 2|6; s3: 3|7; s4..s7: rows 4-7
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out + 0 * stride, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(out + 1 * stride, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(out + 2 * stride, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(out + 3 * stride, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(out + 4 * stride, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(out + 5 * stride, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(out + 6 * stride, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(out + 7 * stride, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// Groups of 8 full rows go through 8x8 register transposes; a K tail and a
// short last group go element by element. nr is a multiple of 8 at every
// level that uses this (avx2: 16, avx512: 32).
void gemm_pack_w_avx2(TensorType t, const uint8_t* w, size_t row_bytes, int n_rows, int64_t k0, int64_t kc, int nr,
                      float* panel) {
  for (int j0 = 0; j0 < nr; j0 += 8) {
    int64_t k = 0;
    if (j0 + 8 <= n_rows) {
      const size_t elem = t == TensorType::F32 ? 4 : 2;
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; ++j) {
          const uint8_t* row = w + size_t(j0 + j) * row_bytes;
          // Many short row segments at once defeat the hardware prefetcher
          // when the weights come from DRAM: ask for each row 512 bytes ahead.
          _mm_prefetch(reinterpret_cast<const char*>(row + size_t(k0 + k) * elem + 512), _MM_HINT_T0);
          r[j] = load8_as_f32(t, row, k0 + k);
        }
        transpose8_store(r, panel + k * nr + j0, nr);
      }
    }
    for (; k < kc; ++k)
      for (int j = j0; j < j0 + 8; ++j)
        panel[k * nr + j] = j < n_rows ? load1_as_f32(t, w + size_t(j) * row_bytes, k0 + k) : 0.f;
  }
}

// Full panels: rows in groups of 8 (8x8 register transposes), then of 4
// (4x4 transposes of each half), the rest element by element. mr is any
// tile height (avx2: 6, avx512: 12). A short last panel goes element by
// element, zero-filling the missing rows.
void gemm_pack_x_panel_avx2(const float* x, int64_t ldx, int n_rows, int64_t n, int mr, float* panel) {
  const int n_full = n_rows == mr ? mr : 0;
  int i0 = 0;
  int64_t k_vec = n / 8 * 8;
  for (; i0 + 8 <= n_full; i0 += 8)
    for (int64_t k = 0; k < k_vec; k += 8) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(x + (i0 + j) * ldx + k);
      transpose8_store(r, panel + k * mr + i0, mr);
    }
  for (; i0 + 4 <= n_full; i0 += 4)
    for (int64_t k = 0; k < k_vec; k += 8) {
      __m128 lo[4], hi[4];
      for (int j = 0; j < 4; ++j) {
        const __m256 v = _mm256_loadu_ps(x + (i0 + j) * ldx + k);
        lo[j] = _mm256_castps256_ps128(v);
        hi[j] = _mm256_extractf128_ps(v, 1);
      }
      _MM_TRANSPOSE4_PS(lo[0], lo[1], lo[2], lo[3]);
      _MM_TRANSPOSE4_PS(hi[0], hi[1], hi[2], hi[3]);
      for (int c = 0; c < 4; ++c) {
        _mm_storeu_ps(panel + (k + c) * mr + i0, lo[c]);
        _mm_storeu_ps(panel + (k + 4 + c) * mr + i0, hi[c]);
      }
    }
  if (i0 == 0) k_vec = 0;  // nothing went through registers: do it all below
  for (int i = 0; i < mr; ++i) {
    const int64_t k_from = i < i0 ? k_vec : 0;  // rows done in registers only miss their K tail
    for (int64_t k = k_from; k < n; ++k) panel[k * mr + i] = i < n_rows ? x[i * ldx + k] : 0.f;
  }
}

// 6 tokens x 16 outputs: 12 ymm accumulators, 2 weight loads and 6
// broadcasts per step of K (15 of the 16 ymm registers).
constexpr int kMr = 6, kNr = 16;

// The accumulators must live in registers: every loop over them is fully
// unrolled (M is a constant) and the only indexing is by constants, so GCC
// does not give the array a stack home that the K loop would store to.
template <int M>
void gemm_tile_avx2_m(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int n, bool accumulate) {
  __m256 acc[M][2];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, a += kMr, b += kNr) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  if (n == kNr) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(ci));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, acc[i][0]);
      _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
    return;
  }
  float tile[M][kNr];  // a short last tile: through a buffer
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    _mm256_storeu_ps(tile[i], acc[i][0]);
    _mm256_storeu_ps(tile[i] + 8, acc[i][1]);
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + tile[i][j];
}

using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, bool);
constexpr TileFn kTiles[kMr] = {gemm_tile_avx2_m<1>, gemm_tile_avx2_m<2>, gemm_tile_avx2_m<3>,
                                gemm_tile_avx2_m<4>, gemm_tile_avx2_m<5>, gemm_tile_avx2_m<6>};

void gemm_tile_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool accumulate) {
  kTiles[m - 1](kc, a, b, c, ldc, n, accumulate);
}

}  // namespace

bool cpu_supports_avx2() {
  static const bool ok = cpu_has_avx2_fma_f16c_impl();
  return ok;
}

void fill_float_avx2(CpuKernels& k) {
  k.dot_f32 = dot_f32_avx2;
  k.dot4_f32 = dot4_f32_avx2;
  k.dot4_f16 = dot4_half_avx2<f16x8, f16x1>;
  k.dot4_bf16 = dot4_half_avx2<bf16x8, bf16x1>;
  k.axpy_f32 = axpy_f32_avx2;
  k.exp_shift_sum = exp_shift_sum_avx2;
  k.f16_to_f32 = f16_to_f32_avx2;
  k.gelu_tanh = gelu_tanh_avx2;
  k.gelu_erf = gelu_erf_avx2;
  k.layer_norm = layer_norm_avx2;
  k.gemm = {kMr, kNr, 1, gemm_pack_w_avx2, gemm_pack_x_panel_avx2, gemm_tile_avx2};
  k.gemm_bf16 = {};  // no bf16 products below AVX512_BF16 (the reference would only be slower)
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
bool cpu_supports_avx2() { return false; }
void fill_float_avx2(CpuKernels&) {}
}  // namespace sc

#endif
