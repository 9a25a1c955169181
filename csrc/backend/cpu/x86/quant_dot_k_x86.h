// Scalar/SSE2 helpers shared by the x86 k-quant kernels (quant_dot_k_avx2.cpp,
// quant_dot_k_avx512.cpp). Include inside those files' ISA guards. The
// anonymous namespace is deliberate: each file compiles its own copy with its
// own flags, so the linker can never hand the AVX2 level a copy built for
// AVX-512.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "format/quant.h"

namespace sc {
namespace {

// 8 six-bit scales and mins of Q4_K/Q5_K (12 packed bytes) as bytes.
inline void unpack_scales_k4(const uint8_t* p, uint64_t* sc, uint64_t* m) {
  uint32_t w[3];
  std::memcpy(w, p, 12);
  const uint32_t sc_lo = w[0] & 0x3f3f3f3fu, m_lo = w[1] & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
  const uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
  *sc = sc_lo | uint64_t(sc_hi) << 32;
  *m = m_lo | uint64_t(m_hi) << 32;
}

// Q3_K: 16 six-bit scales (stored +32) from 12 packed bytes, as int8.
inline __m128i unpack_scales_q3(const uint8_t* p) {
  uint32_t w[3];
  std::memcpy(w, p, 12);
  const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
  const uint32_t s0 = (w[0] & m4) | ((w[2] & m2) << 4);
  const uint32_t s1 = (w[1] & m4) | (((w[2] >> 2) & m2) << 4);
  const uint32_t s2 = ((w[0] >> 4) & m4) | (((w[2] >> 4) & m2) << 4);
  const uint32_t s3 = ((w[1] >> 4) & m4) | (((w[2] >> 6) & m2) << 4);
  return _mm_sub_epi8(_mm_setr_epi32(int(s0), int(s1), int(s2), int(s3)), _mm_set1_epi8(32));
}

// Activation row a of a set of Q8_K rows `stride` bytes apart.
inline const block_q8_K* act_row(const void* acts, size_t stride, int a) {
  return reinterpret_cast<const block_q8_K*>(static_cast<const uint8_t*>(acts) + size_t(a) * stride);
}

}  // namespace
}  // namespace sc
