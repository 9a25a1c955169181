// An 8x8 transpose of 32-bit lanes in AVX2 registers, for the panel packers
// (quant_gemm_x86.h: int8 codes in 4-byte groups; attention_avx2.cpp:
// float32 keys). Include only from files compiled with the AVX2 (or AVX-512) flags,
// inside their ISA guard.
#pragma once
#include <immintrin.h>

namespace sc {
namespace {

// v[r] holds 8 dwords of row r; afterwards v[g] holds dword g of rows 0..7.
inline void transpose8x8_epi32(__m256i v[8]) {
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  const __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
  const __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
  const __m256i s0 = _mm256_unpacklo_epi64(t0, t2), s1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i s2 = _mm256_unpacklo_epi64(t1, t3), s3 = _mm256_unpackhi_epi64(t1, t3);
  const __m256i s4 = _mm256_unpacklo_epi64(t4, t6), s5 = _mm256_unpackhi_epi64(t4, t6);
  const __m256i s6 = _mm256_unpacklo_epi64(t5, t7), s7 = _mm256_unpackhi_epi64(t5, t7);
  v[0] = _mm256_permute2x128_si256(s0, s4, 0x20);
  v[1] = _mm256_permute2x128_si256(s1, s5, 0x20);
  v[2] = _mm256_permute2x128_si256(s2, s6, 0x20);
  v[3] = _mm256_permute2x128_si256(s3, s7, 0x20);
  v[4] = _mm256_permute2x128_si256(s0, s4, 0x31);
  v[5] = _mm256_permute2x128_si256(s1, s5, 0x31);
  v[6] = _mm256_permute2x128_si256(s2, s6, 0x31);
  v[7] = _mm256_permute2x128_si256(s3, s7, 0x31);
}

}  // namespace
}  // namespace sc
