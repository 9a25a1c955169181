// Unpacking ggml blocks into their integer levels and scales: the pieces
// every dequantizer and every dot product over these formats shares. Plain
// inline functions of the block bytes, no allocation, no state.
#pragma once
#include <cstdint>
#include <cstring>

#include "format/quant_blocks.h"

namespace sc {
namespace qu {

// The 32 five-bit values of a Q5 block minus `offset`, in element order
// (bit 4 of element j is bit j of the little-endian qh). Testing against a
// table of masks, not shifting by j, lets the loop vectorize.
constexpr uint32_t kBit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,  1u << 8,  1u << 9,  1u << 10,
    1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15, 1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21,
    1u << 22, 1u << 23, 1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

inline void unpack_q5(const uint8_t* qs, const uint8_t* qh_bytes, int offset, int8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = int8_t((qs[j] & 0x0F) - offset + ((qh & kBit[j]) ? 16 : 0));
    q[j + 16] = int8_t((qs[j] >> 4) - offset + ((qh & kBit[j + 16]) ? 16 : 0));
  }
}

// Q4_K/Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes:
// groups 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins);
// groups 4-7 as nibbles in bytes 8-11, their top 2 bits in the spare
// top bits of bytes 0-7.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q3_K's 16 six-bit scales (stored +32) in 12 bytes: low nibbles of groups
// 0-7 and 8-15 share bytes 0-7; the top 2 bits of group j sit in byte
// 8 + j%4 at bit 2*(j/4).
inline int q3_scale(const uint8_t* s, int j) {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  return (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Unpacks the 2-bit levels of one Q2_K block in element order.
inline void unpack_q2_K(const block_q2_K& b, int8_t* q) {
  for (int half = 0; half < 2; ++half)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) q[128 * half + 32 * s + l] = int8_t((b.qs[32 * half + l] >> (2 * s)) & 3);
}

// Unpacks Q3_K levels (in [-4, 3]) in element order.
inline void unpack_q3_K(const block_q3_K& b, int8_t* q) {
  for (int g = 0; g < 8; ++g) {  // elements 32g .. 32g+31: 2-bit field g%4 of qs half g/4, hmask bit g
    const uint8_t* qs = b.qs + 32 * (g / 4);
    const int shift = 2 * (g % 4);
    for (int l = 0; l < 32; ++l)
      q[32 * g + l] = int8_t(((qs[l] >> shift) & 3) + (((b.hmask[l] >> g) & 1) << 2) - 4);
  }
}

inline void unpack_q4_K(const block_q4_K& b, int8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = int8_t(b.qs[32 * c + l] & 0xF);
      q[64 * c + 32 + l] = int8_t(b.qs[32 * c + l] >> 4);
    }
}

inline void unpack_q5_K(const block_q5_K& b, int8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = int8_t((b.qs[32 * c + l] & 0xF) | (((b.qh[l] >> (2 * c)) & 1) << 4));
      q[64 * c + 32 + l] = int8_t((b.qs[32 * c + l] >> 4) | (((b.qh[l] >> (2 * c + 1)) & 1) << 4));
    }
}

inline void unpack_q6_K(const block_q6_K& b, int8_t* q) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    int8_t* o = q + 128 * half;
    for (int l = 0; l < 32; ++l) {
      o[l] = int8_t(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      o[l + 32] = int8_t(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      o[l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      o[l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

}  // namespace qu
}  // namespace sc
