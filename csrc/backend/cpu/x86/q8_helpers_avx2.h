// Small AVX2 helpers for the Q8_0-activation GEMM (quant_gemm_x86.h).
// Include only from files
// compiled with the AVX2 (or AVX-512) flags, inside their ISA guard.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace sc {
namespace {

// 4 bytes at p as one int32 (unaligned), for a dword broadcast.
inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The sum of the 32 signed codes of an activation block (an offset format's
// correction term).
inline int32_t q8_code_sum(const int8_t* qs) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(h);
}

}  // namespace
}  // namespace sc
