// The k-quant weight super-blocks (Q2_K..Q6_K) decoded in AVX2 registers
// into one common form, KBlock: the levels as unsigned bytes in element
// order (the u8 operand of maddubs), an int16 scale per 16-element group,
// and for the offset part of the format (Q2_K/Q4_K/Q5_K mins, or the +32/+4
// bias that makes Q6_K/Q3_K levels unsigned) an int16 coefficient per group
// that is applied to the activation's group sums (bsums):
//   w . y = y.d * (d * sum_g sc_g * (u_g . y_g) - dm * sum_g m_g * bsum_g)
// Shared by the row kernels (quant_dot_k_avx2.cpp) and the prompt GEMM
// (quant_gemm_x86.h). Include only from files compiled with the AVX2 (or AVX-512)
// flags, inside their ISA guard: the anonymous namespace gives each its own
// copy.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/x86/quant_dot_k_x86.h"
#include "format/quant.h"

namespace sc {
namespace {


// A decoded super-block (see the file comment).
struct KBlock {
  __m256i q[8];   // u8 levels of elements 32c .. 32c+31
  __m256i sc[8];  // int16 scales for maddubs(q[c], y): lanes 0-7 group 2c, lanes 8-15 group 2c+1
  __m256i m;      // int16 coefficient of bsum_g for the 16 groups
  float d, dm;
};

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Scale vectors from 16 int8 group scales (byte g = group g): chunk c gets
// group 2c's scale in its low 128-bit lane and group 2c+1's in its high one.
inline void set_group_scales(__m128i sc8, KBlock& b) {
  const __m256i s16 = _mm256_cvtepi8_epi16(sc8);
  const __m256i lo = _mm256_permute2x128_si256(s16, s16, 0x00);  // groups 0-7 in both lanes
  const __m256i hi = _mm256_permute2x128_si256(s16, s16, 0x11);  // groups 8-15
  for (int c = 0; c < 4; ++c) {
    // int16 lane 2c of the low lane, 2c+1 of the high lane, repeated
    const __m256i ctrl = _mm256_setr_m128i(_mm_set1_epi16(short(0x0100 + 0x0404 * c)),
                                           _mm_set1_epi16(short(0x0302 + 0x0404 * c)));
    b.sc[c] = _mm256_shuffle_epi8(lo, ctrl);
    b.sc[c + 4] = _mm256_shuffle_epi8(hi, ctrl);
  }
}

// Q4_K/Q5_K groups are 32 wide: each scale and min covers two 16-groups.
inline void set_scales_k4(const uint8_t* packed, KBlock& b) {
  uint64_t sc, m;
  unpack_scales_k4(packed, &sc, &m);
  const __m128i sc8 = _mm_cvtsi64_si128(int64_t(sc)), m8 = _mm_cvtsi64_si128(int64_t(m));
  set_group_scales(_mm_unpacklo_epi8(sc8, sc8), b);
  b.m = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
}

inline void decode_q4_K(const block_q4_K& x, KBlock& b) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(x.qs + 32 * c);
    b.q[2 * c] = _mm256_and_si256(v, low4);
    b.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
  }
  set_scales_k4(x.scales, b);
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

// Bit k of each qh byte, moved to bit 4 (k is a constant after unrolling).
inline __m256i q5_high_bit(__m256i qh, int k) {
  const __m256i bit = _mm256_and_si256(qh, _mm256_set1_epi8(char(1 << k)));
  return k <= 4 ? _mm256_slli_epi16(bit, 4 - k) : _mm256_srli_epi16(bit, k - 4);
}

inline void decode_q5_K(const block_q5_K& x, KBlock& b) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i qh = load256(x.qh);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(x.qs + 32 * c);
    b.q[2 * c] = _mm256_or_si256(_mm256_and_si256(v, low4), q5_high_bit(qh, 2 * c));
    b.q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), q5_high_bit(qh, 2 * c + 1));
  }
  set_scales_k4(x.scales, b);
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

// Q6_K levels are q + 32 in [0, 63]; the bias goes to the bsum term
// (coefficient 32 * sc, same factor d).
inline void decode_q6_K(const block_q6_K& x, KBlock& b) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int h = 0; h < 2; ++h) {
    const __m256i l0 = load256(x.ql + 64 * h), l1 = load256(x.ql + 64 * h + 32);
    const __m256i qh = load256(x.qh + 32 * h);
    b.q[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                 _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
    b.q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                     _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
    b.q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                     _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
    b.q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                     _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(char(0xC0))), 2));
  }
  const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
  set_group_scales(sc8, b);
  b.m = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
  b.d = b.dm = _cvtsh_ss(x.d);
}

// Q3_K levels are q + 4 in [0, 7] (2 low bits from qs, bit 2 from hmask);
// the bias goes to the bsum term (coefficient 4 * sc, same factor d).
inline void decode_q3_K(const block_q3_K& x, KBlock& b) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i hm = load256(x.hmask);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load256(x.qs + 32 * h);
    for (int s = 0; s < 4; ++s) {
      const int g = 4 * h + s;
      const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), three);
      const __m256i bit = _mm256_and_si256(hm, _mm256_set1_epi8(char(1 << g)));  // -> bit 2
      const __m256i hi = g <= 2 ? _mm256_slli_epi16(bit, 2 - g) : _mm256_srli_epi16(bit, g - 2);
      b.q[g] = _mm256_or_si256(lo, hi);
    }
  }
  const __m128i sc8 = unpack_scales_q3(x.scales);
  set_group_scales(sc8, b);
  b.m = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 2);
  b.d = b.dm = _cvtsh_ss(x.d);
}

inline void decode_q2_K(const block_q2_K& x, KBlock& b) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load256(x.qs + 32 * h);
    for (int s = 0; s < 4; ++s) b.q[4 * h + s] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * s), three);
  }
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  set_group_scales(_mm_and_si128(packed, low4), b);
  b.m = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

}  // namespace
}  // namespace sc
