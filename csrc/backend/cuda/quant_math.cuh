// The arithmetic of the CUDA quantized matrix-vector product, as functions of
// block bytes that compile for the device and for the host (device_compat.cuh):
//
//  - activation quantizers, one block at a time, rounding as ggml's reference
//    quantize_row_q8_1 / q8_K (format/quant.cpp) does, so the device produces
//    the same bytes as the CPU;
//  - per weight type, the integer sums of one "part" (32 elements) of a block
//    against the matching activation block, with dp4a on packed bytes, and the
//    float combination of those sums with the block scales, written as the
//    CPU reference (backend/cpu/quant_dot_ref.cpp) writes it;
//  - per weight type, the dequantization of one part (for get_rows).
//
// Legacy types (32-element blocks) pair with Q8_1 activations: Q8_1's d and
// qs are exactly Q8_0's, so Q4_0/Q5_0/Q8_0 give the CPU's Q8_0 sums, and the
// s field serves Q4_1/Q5_1. k-quants pair with Q8_K. Levels are unpacked
// unsigned and the offset is taken out with the activation sum:
// sum (u - o) y = sum u y - o sum y, in integers, so nothing is rounded.
#pragma once
#include <cstdint>

#include "backend/cuda/device_compat.cuh"
#include "format/quant_blocks.h"

namespace sc {
namespace cu {

// ---------------------------------------------------------------- activation quantizers

// One Q8_1 block from 32 floats (quantize_row_q8_1_ref, block by block).
SC_HD void quantize_block_q8_1(const float* x, block_q8_1* y) {
  float amax = 0.0f;
  for (int j = 0; j < QK8_1; ++j) amax = fmaxf(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int j = 0; j < QK8_1; ++j) {
    const int8_t q = int8_t(roundf(mul_rn(x[j], id)));  // ties away from zero, as std::round
    y->qs[j] = q;
    sum += q;
  }
  y->d = float_to_half_bits(d);
  y->s = float_to_half_bits(mul_rn(float(sum), d));
}

// One Q8_0 block (the KV cache's quantized type): Q8_1 without the sum.
SC_HD void quantize_block_q8_0(const float* x, uint8_t* out /* 34 bytes, 2-aligned */) {
  float amax = 0.0f;
  for (int j = 0; j < QK8_0; ++j) amax = fmaxf(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = float_to_half_bits(d);
  out[0] = uint8_t(dh & 0xff);
  out[1] = uint8_t(dh >> 8);
  for (int j = 0; j < QK8_0; ++j) out[2 + j] = uint8_t(int8_t(roundf(mul_rn(x[j], id))));
}

// ggml's nearest_int: round to nearest even through the float mantissa.
SC_HD int nearest_int(float v) {
  const float val = add_rn(v, 12582912.f);
  int32_t i;
#if defined(__CUDA_ARCH__)
  i = __float_as_int(val);
#else
  std::memcpy(&i, &val, 4);
#endif
  return (i & 0x007fffff) - 0x00400000;
}

// One Q8_K super-block from 256 floats (quantize_row_q8_K_ref): the scale
// comes from the signed value of largest magnitude, and bsums hold the sum of
// each group of 16 levels.
SC_HD void quantize_block_q8_K(const float* x, block_q8_K* y) {
  float max = 0.0f, amax = 0.0f;
  for (int j = 0; j < QK_K; ++j) {
    const float ax = fabsf(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    y->d = 0.0f;
    for (int j = 0; j < QK_K; ++j) y->qs[j] = 0;
    for (int j = 0; j < QK_K / 16; ++j) y->bsums[j] = 0;
    return;
  }
  const float iscale = -127.f / max;
  for (int j = 0; j < QK_K; ++j) {
    const int q = nearest_int(mul_rn(iscale, x[j]));
    y->qs[j] = int8_t(q < 127 ? q : 127);
  }
  for (int j = 0; j < QK_K / 16; ++j) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += y->qs[16 * j + l];
    y->bsums[j] = int16_t(s);
  }
  y->d = 1 / iscale;
}

// ---------------------------------------------------------------- helpers on packed levels

constexpr int kOnes = 0x01010101;

// Bits 0..3 of b, each moved to bit 4 of its own byte (a Q5 fifth bit).
SC_HD int spread_bit4(uint32_t b) {
  return int(((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25));
}

// The integer sums of one 32-element part against its activations:
// isum = sum of scaled level products; summs = sum of min * activation group sum
// (k-quants with mins; zero otherwise).
struct PartSums {
  int isum = 0;
  int summs = 0;
};

// sum over 16 elements (4 words) of packed unsigned levels u times activations y, minus offset * sum(y).
SC_HD int dot16_offset(const int* u, const uint8_t* y, int offset, int ysum) {
  int s = 0;
  for (int k = 0; k < 4; ++k) s = dp4a(u[k], ld32_a4(y + 4 * k), s);
  return s - offset * ysum;
}

// ---------------------------------------------------------------- legacy types, Q8_1 activations
// Each has one part per block; combine() is the CPU reference's per-block float.

struct TQ4_0 {
  static constexpr int kElems = QK4_0, kBytes = sizeof(block_q4_0), kParts = 1;
  using Act = block_q8_1;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_1* a, int) {
    int s = 0, ys = 0;
    const uint8_t* y = reinterpret_cast<const uint8_t*>(a->qs);
    for (int k = 0; k < 4; ++k) {
      const int v = ld32_a2(w + 2 + 4 * k);
      const int ylo = ld32_a4(y + 4 * k), yhi = ld32_a4(y + 16 + 4 * k);
      s = dp4a(v & 0x0F0F0F0F, ylo, s);
      s = dp4a((v >> 4) & 0x0F0F0F0F, yhi, s);
      ys = dp4a(kOnes, ylo, dp4a(kOnes, yhi, ys));
    }
    PartSums r;
    r.isum = s - 8 * ys;
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_1* a, PartSums p) {
    return float(p.isum) * half_bits_to_float(ld16(w)) * half_bits_to_float(a->d);
  }
  SC_HD static void dequant(const uint8_t* w, int, float* out) {
    const float d = half_bits_to_float(ld16(w));
    for (int j = 0; j < 16; ++j) {
      out[j] = float((w[2 + j] & 0x0F) - 8) * d;
      out[j + 16] = float((w[2 + j] >> 4) - 8) * d;
    }
  }
};

struct TQ4_1 {
  static constexpr int kElems = QK4_1, kBytes = sizeof(block_q4_1), kParts = 1;
  using Act = block_q8_1;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_1* a, int) {
    int s = 0;
    const uint8_t* y = reinterpret_cast<const uint8_t*>(a->qs);
    for (int k = 0; k < 4; ++k) {
      const int v = ld32_a4(w + 4 + 4 * k);
      s = dp4a(v & 0x0F0F0F0F, ld32_a4(y + 4 * k), s);
      s = dp4a((v >> 4) & 0x0F0F0F0F, ld32_a4(y + 16 + 4 * k), s);
    }
    PartSums r;
    r.isum = s;
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_1* a, PartSums p) {
    const float dx = half_bits_to_float(ld16(w)), mx = half_bits_to_float(ld16(w + 2));
    return dx * half_bits_to_float(a->d) * float(p.isum) + mx * half_bits_to_float(a->s);
  }
  SC_HD static void dequant(const uint8_t* w, int, float* out) {
    const float d = half_bits_to_float(ld16(w)), m = half_bits_to_float(ld16(w + 2));
    for (int j = 0; j < 16; ++j) {
      out[j] = float(w[4 + j] & 0x0F) * d + m;
      out[j + 16] = float(w[4 + j] >> 4) * d + m;
    }
  }
};

// Q5_0 / Q5_1: four-bit nibbles plus a fifth bit per element in the 32-bit qh.
template <int kQhAt, int kQsAt, bool kAligned>
SC_HD int q5_sums(const uint8_t* w, const block_q8_1* a, int* ysum) {
  const uint32_t qh = uint32_t(ld32_a2(w + kQhAt));
  const uint8_t* y = reinterpret_cast<const uint8_t*>(a->qs);
  int s = 0, ys = 0;
  for (int k = 0; k < 4; ++k) {
    const int v = kAligned ? ld32_a4(w + kQsAt + 4 * k) : ld32_a2(w + kQsAt + 4 * k);
    const int lo = (v & 0x0F0F0F0F) | spread_bit4(qh >> (4 * k));
    const int hi = ((v >> 4) & 0x0F0F0F0F) | spread_bit4(qh >> (16 + 4 * k));
    const int ylo = ld32_a4(y + 4 * k), yhi = ld32_a4(y + 16 + 4 * k);
    s = dp4a(lo, ylo, s);
    s = dp4a(hi, yhi, s);
    ys = dp4a(kOnes, ylo, dp4a(kOnes, yhi, ys));
  }
  *ysum = ys;
  return s;
}
template <int kQhAt, int kQsAt>
SC_HD void q5_dequant_levels(const uint8_t* w, int* q) {
  const uint32_t qh = uint32_t(ld32_a2(w + kQhAt));
  for (int j = 0; j < 16; ++j) {
    q[j] = (w[kQsAt + j] & 0x0F) | (((qh >> j) & 1u) << 4);
    q[j + 16] = (w[kQsAt + j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
  }
}

struct TQ5_0 {
  static constexpr int kElems = QK5_0, kBytes = sizeof(block_q5_0), kParts = 1;
  using Act = block_q8_1;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_1* a, int) {
    int ys;
    const int s = q5_sums<2, 6, false>(w, a, &ys);
    PartSums r;
    r.isum = s - 16 * ys;
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_1* a, PartSums p) {
    return float(p.isum) * half_bits_to_float(ld16(w)) * half_bits_to_float(a->d);
  }
  SC_HD static void dequant(const uint8_t* w, int, float* out) {
    int q[32];
    q5_dequant_levels<2, 6>(w, q);
    const float d = half_bits_to_float(ld16(w));
    for (int j = 0; j < 32; ++j) out[j] = float(q[j] - 16) * d;
  }
};

struct TQ5_1 {
  static constexpr int kElems = QK5_1, kBytes = sizeof(block_q5_1), kParts = 1;
  using Act = block_q8_1;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_1* a, int) {
    int ys;
    PartSums r;
    r.isum = q5_sums<4, 8, true>(w, a, &ys);
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_1* a, PartSums p) {
    const float dx = half_bits_to_float(ld16(w)), mx = half_bits_to_float(ld16(w + 2));
    return dx * half_bits_to_float(a->d) * float(p.isum) + mx * half_bits_to_float(a->s);
  }
  SC_HD static void dequant(const uint8_t* w, int, float* out) {
    int q[32];
    q5_dequant_levels<4, 8>(w, q);
    const float d = half_bits_to_float(ld16(w)), m = half_bits_to_float(ld16(w + 2));
    for (int j = 0; j < 32; ++j) out[j] = float(q[j]) * d + m;
  }
};

struct TQ8_0 {
  static constexpr int kElems = QK8_0, kBytes = sizeof(block_q8_0), kParts = 1;
  using Act = block_q8_1;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_1* a, int) {
    const uint8_t* y = reinterpret_cast<const uint8_t*>(a->qs);
    int s = 0;
    for (int k = 0; k < 8; ++k) s = dp4a(ld32_a2(w + 2 + 4 * k), ld32_a4(y + 4 * k), s);
    PartSums r;
    r.isum = s;
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_1* a, PartSums p) {
    return float(p.isum) * half_bits_to_float(ld16(w)) * half_bits_to_float(a->d);
  }
  SC_HD static void dequant(const uint8_t* w, int, float* out) {
    const float d = half_bits_to_float(ld16(w));
    for (int j = 0; j < 32; ++j) out[j] = float(int8_t(w[2 + j])) * d;
  }
};

// ---------------------------------------------------------------- k-quants, Q8_K activations
// Part p covers elements [32p, 32p + 32) of a 256-element super-block, i.e.
// activation qs[32p..] and bsums[2p], bsums[2p + 1]. Summing the parts'
// PartSums gives the super-block integers the CPU reference forms, and
// combine() is its float.

SC_HD const uint8_t* act_qs(const block_q8_K* a, int p) { return reinterpret_cast<const uint8_t*>(a->qs) + 32 * p; }

struct TQ2_K {  // scales[16] | qs[64] | d | dmin   (84 bytes)
  static constexpr int kElems = QK_K, kBytes = sizeof(block_q2_K), kParts = 8;
  using Act = block_q8_K;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_K* a, int p) {
    const int half = p / 4, shift = 2 * (p % 4);
    int u[8];
    for (int k = 0; k < 8; ++k) u[k] = (ld32_a4(w + 16 + 32 * half + 4 * k) >> shift) & 0x03030303;
    const uint8_t* y = act_qs(a, p);
    PartSums r;
    for (int g = 0; g < 2; ++g) {
      const int sc = w[2 * p + g];
      r.isum += (sc & 0xF) * dot16_offset(u + 4 * g, y + 16 * g, 0, 0);
      r.summs += (sc >> 4) * a->bsums[2 * p + g];
    }
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_K* a, PartSums p) {
    const float d = half_bits_to_float(ld16(w + 80)), dmin = half_bits_to_float(ld16(w + 82));
    return a->d * d * float(p.isum) - a->d * dmin * float(p.summs);
  }
  SC_HD static void dequant(const uint8_t* w, int p, float* out) {
    const float d = half_bits_to_float(ld16(w + 80)), dmin = half_bits_to_float(ld16(w + 82));
    const int half = p / 4, shift = 2 * (p % 4);
    for (int g = 0; g < 2; ++g) {
      const int sc = w[2 * p + g];
      const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
      for (int l = 0; l < 16; ++l) out[16 * g + l] = dl * float((w[16 + 32 * half + 16 * g + l] >> shift) & 3) - ml;
    }
  }
};

// Q3_K's sixteen 6-bit scales (stored + 32), as format/quant_unpack.h's q3_scale.
SC_HD int q3k_scale(const uint8_t* s, int j) {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  return (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

struct TQ3_K {  // hmask[32] | qs[64] | scales[12] | d   (110 bytes)
  static constexpr int kElems = QK_K, kBytes = sizeof(block_q3_K), kParts = 8;
  using Act = block_q8_K;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_K* a, int p) {
    const int shift = 2 * (p % 4);
    int u[8];
    for (int k = 0; k < 8; ++k) {
      const int lo = (ld32_a2(w + 32 + 32 * (p / 4) + 4 * k) >> shift) & 0x03030303;
      const int hb = (ld32_a2(w + 4 * k) >> p) & kOnes;
      u[k] = lo | (hb << 2);  // level + 4, in [0, 7]
    }
    const uint8_t* y = act_qs(a, p);
    PartSums r;
    for (int g = 0; g < 2; ++g)
      r.isum += q3k_scale(w + 96, 2 * p + g) * dot16_offset(u + 4 * g, y + 16 * g, 4, a->bsums[2 * p + g]);
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_K* a, PartSums p) {
    return half_bits_to_float(ld16(w + 108)) * a->d * float(p.isum);
  }
  SC_HD static void dequant(const uint8_t* w, int p, float* out) {
    const float d = half_bits_to_float(ld16(w + 108));
    const int shift = 2 * (p % 4);
    for (int g = 0; g < 2; ++g) {
      const float dl = d * float(q3k_scale(w + 96, 2 * p + g));
      for (int l = 16 * g; l < 16 * g + 16; ++l) {
        const int q = ((w[32 + 32 * (p / 4) + l] >> shift) & 3) + (((w[l] >> p) & 1) << 2) - 4;
        out[l] = dl * float(q);
      }
    }
  }
};

// Q4_K/Q5_K's 6-bit scale and min of group j (format/quant_unpack.h's get_scale_min_k4).
SC_HD void k4_scale_min(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Shared by Q4_K and Q5_K: part p is group p with one scale and one min.
SC_HD PartSums k4_part_sums(const int* u, const uint8_t* scales, const block_q8_K* a, int p) {
  int sc, m;
  k4_scale_min(p, scales, &sc, &m);
  const uint8_t* y = act_qs(a, p);
  int s = 0;
  for (int k = 0; k < 8; ++k) s = dp4a(u[k], ld32_a4(y + 4 * k), s);
  PartSums r;
  r.isum = sc * s;
  r.summs = m * (a->bsums[2 * p] + a->bsums[2 * p + 1]);
  return r;
}
SC_HD float k4_combine(const uint8_t* w, const block_q8_K* a, PartSums p) {
  const float d = half_bits_to_float(ld16(w)), dmin = half_bits_to_float(ld16(w + 2));
  return a->d * d * float(p.isum) - a->d * dmin * float(p.summs);
}

struct TQ4_K {  // d | dmin | scales[12] | qs[128]   (144 bytes)
  static constexpr int kElems = QK_K, kBytes = sizeof(block_q4_K), kParts = 8;
  using Act = block_q8_K;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_K* a, int p) {
    int u[8];
    for (int k = 0; k < 8; ++k) u[k] = (ld32_a4(w + 16 + 32 * (p / 2) + 4 * k) >> (4 * (p % 2))) & 0x0F0F0F0F;
    return k4_part_sums(u, w + 4, a, p);
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_K* a, PartSums p) { return k4_combine(w, a, p); }
  SC_HD static void dequant(const uint8_t* w, int p, float* out) {
    int sc, m;
    k4_scale_min(p, w + 4, &sc, &m);
    const float d = half_bits_to_float(ld16(w)) * float(sc), mn = half_bits_to_float(ld16(w + 2)) * float(m);
    for (int l = 0; l < 32; ++l) out[l] = d * float((w[16 + 32 * (p / 2) + l] >> (4 * (p % 2))) & 0xF) - mn;
  }
};

struct TQ5_K {  // d | dmin | scales[12] | qh[32] | qs[128]   (176 bytes)
  static constexpr int kElems = QK_K, kBytes = sizeof(block_q5_K), kParts = 8;
  using Act = block_q8_K;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_K* a, int p) {
    int u[8];
    for (int k = 0; k < 8; ++k) {
      const int nib = (ld32_a4(w + 48 + 32 * (p / 2) + 4 * k) >> (4 * (p % 2))) & 0x0F0F0F0F;
      const int hb = (ld32_a4(w + 16 + 4 * k) >> p) & kOnes;
      u[k] = nib | (hb << 4);
    }
    return k4_part_sums(u, w + 4, a, p);
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_K* a, PartSums p) { return k4_combine(w, a, p); }
  SC_HD static void dequant(const uint8_t* w, int p, float* out) {
    int sc, m;
    k4_scale_min(p, w + 4, &sc, &m);
    const float d = half_bits_to_float(ld16(w)) * float(sc), mn = half_bits_to_float(ld16(w + 2)) * float(m);
    for (int l = 0; l < 32; ++l) {
      const int q = ((w[48 + 32 * (p / 2) + l] >> (4 * (p % 2))) & 0xF) | (((w[16 + l] >> p) & 1) << 4);
      out[l] = d * float(q) - mn;
    }
  }
};

struct TQ6_K {  // ql[128] | qh[64] | scales[16] (int8) | d   (210 bytes)
  static constexpr int kElems = QK_K, kBytes = sizeof(block_q6_K), kParts = 8;
  using Act = block_q8_K;
  SC_HD static PartSums sums(const uint8_t* w, const block_q8_K* a, int p) {
    const int h = p / 4, s = p % 4;
    const uint8_t* ql = w + 64 * h + 32 * (s & 1);
    const uint8_t* qh = w + 128 + 32 * h;
    int u[8];
    for (int k = 0; k < 8; ++k) {
      const int lo = (ld32_a2(ql + 4 * k) >> (4 * (s >> 1))) & 0x0F0F0F0F;
      const int hi = (ld32_a2(qh + 4 * k) >> (2 * s)) & 0x03030303;
      u[k] = lo | (hi << 4);  // level + 32, in [0, 63]
    }
    const uint8_t* y = act_qs(a, p);
    PartSums r;
    for (int g = 0; g < 2; ++g)
      r.isum += int(int8_t(w[192 + 2 * p + g])) * dot16_offset(u + 4 * g, y + 16 * g, 32, a->bsums[2 * p + g]);
    return r;
  }
  SC_HD static float combine(const uint8_t* w, const block_q8_K* a, PartSums p) {
    return half_bits_to_float(ld16(w + 208)) * a->d * float(p.isum);
  }
  SC_HD static void dequant(const uint8_t* w, int p, float* out) {
    const int h = p / 4, s = p % 4;
    const uint8_t* ql = w + 64 * h + 32 * (s & 1);
    const uint8_t* qh = w + 128 + 32 * h;
    const float d = half_bits_to_float(ld16(w + 208));
    for (int g = 0; g < 2; ++g) {
      const float dl = d * float(int8_t(w[192 + 2 * p + g]));
      for (int l = 16 * g; l < 16 * g + 16; ++l) {
        const int q = (((ql[l] >> (4 * (s >> 1))) & 0xF) | (((qh[l] >> (2 * s)) & 3) << 4)) - 32;
        out[l] = dl * float(q);
      }
    }
  }
};

}  // namespace cu
}  // namespace sc
