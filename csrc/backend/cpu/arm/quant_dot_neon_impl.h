// Quantized dot products for aarch64, written once and instantiated twice:
// quant_dot_neon.cpp pairs them with widening multiplies (any aarch64 CPU),
// quant_dot_neon_dotprod.cpp with SDOT (ARMv8.2 dotprod, its own -march).
// Include only from those two files. Everything is in an unnamed namespace on
// purpose: with external (inline) linkage the linker could keep the dotprod
// copy of a shared helper for both levels, and the neon level would then
// execute SDOT on a CPU without it.
//
// Each kernel computes what its reference in quant.cpp / quant_k.cpp
// computes: the integer sums per block are exact, only the float
// accumulation order differs. A weight block is decoded to int8 once and
// applied to up to 4 activation rows; rows come in blocks of 16 so that
// their weights stay in cache while every group of 4 tokens passes by.
//
// A dot policy D provides D::dot16(acc, a, b): acc plus the products of 16
// int8 pairs, summed into the 4 int32 lanes (any split across lanes).
#pragma once

#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "quant_dot_neon_impl.h is for aarch64 builds only"
#endif

#include <arm_neon.h>

#include <cstring>

#include "backend/cpu/kernels.h"
#include "format/quant.h"

namespace sc {
namespace {

// The half table read directly, not through quant.h's inline half_to_float:
// an inline function with external linkage emitted by both files could be
// merged into the dotprod-compiled copy.
inline float h2f(uint16_t h) { return kHalfToFloat[h]; }

template <typename B>
inline const B& act_at(const uint8_t* acts, size_t stride, int a, int64_t i) {
  return reinterpret_cast<const B*>(acts + size_t(a) * stride)[i];
}

inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }
inline uint8x16_t low4(uint8x16_t v) { return vandq_u8(v, vdupq_n_u8(0x0F)); }

// Bit 4 of the 32 elements of a Q5_0/Q5_1 block: element j's is bit j of the
// little-endian qh. Spread byte b over lanes 8b..8b+7 and test one bit per
// lane; lanes whose bit is set get 0x10.
inline void q5_high_bits(const uint8_t* qh, uint8x16_t& h0, uint8x16_t& h1) {
  uint32_t u;
  std::memcpy(&u, qh, 4);
  const uint8x8_t b = vcreate_u8(u);
  const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
  const uint8x16_t b01 = vcombine_u8(vdup_lane_u8(b, 0), vdup_lane_u8(b, 1));
  const uint8x16_t b23 = vcombine_u8(vdup_lane_u8(b, 2), vdup_lane_u8(b, 3));
  h0 = vandq_u8(vtstq_u8(b01, bit), vdupq_n_u8(0x10));
  h1 = vandq_u8(vtstq_u8(b23, bit), vdupq_n_u8(0x10));
}

// ---------------------------------------------------------------- legacy (32)
// T::decode gives a block's 32 levels (elements 0..15, 16..31) as int8;
// kMin types (Q4_1, Q5_1) add m * s of the Q8_1 activation.
struct Q8_0T {
  using W = block_q8_0;
  using A = block_q8_0;
  static constexpr bool kMin = false;
  static inline void decode(const W& b, int8x16_t& lo, int8x16_t& hi) {
    lo = vld1q_s8(b.qs);
    hi = vld1q_s8(b.qs + 16);
  }
};
struct Q4_0T {
  using W = block_q4_0;
  using A = block_q8_0;
  static constexpr bool kMin = false;
  static inline void decode(const W& b, int8x16_t& lo, int8x16_t& hi) {
    const uint8x16_t v = vld1q_u8(b.qs);
    lo = vsubq_s8(s8(low4(v)), vdupq_n_s8(8));
    hi = vsubq_s8(s8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
  }
};
struct Q4_1T {
  using W = block_q4_1;
  using A = block_q8_1;
  static constexpr bool kMin = true;
  static inline void decode(const W& b, int8x16_t& lo, int8x16_t& hi) {
    const uint8x16_t v = vld1q_u8(b.qs);
    lo = s8(low4(v));
    hi = s8(vshrq_n_u8(v, 4));
  }
};
struct Q5_0T {
  using W = block_q5_0;
  using A = block_q8_0;
  static constexpr bool kMin = false;
  static inline void decode(const W& b, int8x16_t& lo, int8x16_t& hi) {
    uint8x16_t h0, h1;
    q5_high_bits(b.qh, h0, h1);
    const uint8x16_t v = vld1q_u8(b.qs);
    lo = vsubq_s8(s8(vorrq_u8(low4(v), h0)), vdupq_n_s8(16));
    hi = vsubq_s8(s8(vorrq_u8(vshrq_n_u8(v, 4), h1)), vdupq_n_s8(16));
  }
};
struct Q5_1T {
  using W = block_q5_1;
  using A = block_q8_1;
  static constexpr bool kMin = true;
  static inline void decode(const W& b, int8x16_t& lo, int8x16_t& hi) {
    uint8x16_t h0, h1;
    q5_high_bits(b.qh, h0, h1);
    const uint8x16_t v = vld1q_u8(b.qs);
    lo = s8(vorrq_u8(low4(v), h0));
    hi = s8(vorrq_u8(vshrq_n_u8(v, 4), h1));
  }
};

// One weight row against NA activation rows: out[a * os] = w . act_a.
// Per-lane block sums are scaled in float lanes (no horizontal add per block).
template <class D, class T>
struct LegacyRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const typename T::W* x = reinterpret_cast<const typename T::W*>(w);
    float32x4_t acc[NA];
    float macc[NA];
    for (int a = 0; a < NA; ++a) {
      acc[a] = vdupq_n_f32(0.f);
      macc[a] = 0.f;
    }
    for (int64_t i = 0; i < n / 32; ++i) {
      int8x16_t q0, q1;
      T::decode(x[i], q0, q1);
      const float dx = h2f(x[i].d);
      for (int a = 0; a < NA; ++a) {
        const typename T::A& y = act_at<typename T::A>(acts, as, a, i);
        const int32x4_t p = D::dot16(D::dot16(vdupq_n_s32(0), q0, vld1q_s8(y.qs)), q1, vld1q_s8(y.qs + 16));
        acc[a] = vmlaq_n_f32(acc[a], vcvtq_f32_s32(p), dx * h2f(y.d));
        if constexpr (T::kMin) macc[a] += h2f(x[i].m) * h2f(y.s);
      }
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = vaddvq_f32(acc[a]) + macc[a];
  }
};

// ---------------------------------------------------------------- k-quants (256)
// Each decodes a super-block into q[16] (16 elements each, element order)
// once, then runs every activation row through it.

inline int32x4_t zero4() { return vdupq_n_s32(0); }

// sum_j m[j] * (sum of group j of 16 activations), 16 groups, m as int16 (two halves).
inline int32_t mins_dot16(const int16_t* bsums, int16x8_t m_lo, int16x8_t m_hi) {
  const int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
  int32x4_t s = vmull_s16(vget_low_s16(b0), vget_low_s16(m_lo));
  s = vmlal_high_s16(s, b0, m_lo);
  s = vmlal_s16(s, vget_low_s16(b1), vget_low_s16(m_hi));
  s = vmlal_high_s16(s, b1, m_hi);
  return vaddvq_s32(s);
}

// The 6-bit scales and mins of the 8 groups of a Q4_K/Q5_K block (12 bytes).
inline void k4_scales(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m[j] = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q4_K/Q5_K: 8 groups of 32 (q[2j], q[2j+1]); x = d*sc*q - dmin*m.
template <class D, int NA>
inline void k4_apply(const int8x16_t* q, const uint8_t* sc, const uint8_t* m, float d, float dmin,
                     const uint8_t* acts, size_t as, int64_t i, float* sum) {
  const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  for (int a = 0; a < NA; ++a) {
    const block_q8_K& y = act_at<block_q8_K>(acts, as, a, i);
    int32x4_t isum = zero4();
    for (int j = 0; j < 8; ++j) {
      const int32x4_t p = D::dot16(D::dot16(zero4(), q[2 * j], vld1q_s8(y.qs + 32 * j)), q[2 * j + 1],
                                   vld1q_s8(y.qs + 32 * j + 16));
      isum = vmlaq_n_s32(isum, p, sc[j]);
    }
    // group sums of the activations: adjacent pairs of the 16 bsums
    const int16x8_t gs = vpaddq_s16(vld1q_s16(y.bsums), vld1q_s16(y.bsums + 8));
    const int32x4_t ms = vmlal_high_s16(vmull_s16(vget_low_s16(gs), vget_low_s16(mins)), gs, mins);
    sum[a] += y.d * d * float(vaddvq_s32(isum)) - y.d * dmin * float(vaddvq_s32(ms));
  }
}

template <class D>
struct Q4KRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const block_q4_K* x = reinterpret_cast<const block_q4_K*>(w);
    float sum[NA] = {};
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q4_K& b = x[i];
      int8x16_t q[16];
      for (int c = 0; c < 4; ++c) {  // bytes 32c..: elements 64c+l (low nibble), 64c+32+l (high)
        const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
        q[4 * c + 0] = s8(low4(v0));
        q[4 * c + 1] = s8(low4(v1));
        q[4 * c + 2] = s8(vshrq_n_u8(v0, 4));
        q[4 * c + 3] = s8(vshrq_n_u8(v1, 4));
      }
      uint8_t sc[8], m[8];
      k4_scales(b.scales, sc, m);
      k4_apply<D, NA>(q, sc, m, h2f(b.d), h2f(b.dmin), acts, as, i, sum);
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = sum[a];
  }
};

template <class D>
struct Q5KRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const block_q5_K* x = reinterpret_cast<const block_q5_K*>(w);
    const uint8x16_t b4 = vdupq_n_u8(0x10);
    float sum[NA] = {};
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q5_K& b = x[i];
      // fifth bits: qh[l] bit 2c for element 64c+l, bit 2c+1 for 64c+32+l
      uint8x16_t h0 = vld1q_u8(b.qh), h1 = vld1q_u8(b.qh + 16);
      int8x16_t q[16];
      for (int c = 0; c < 4; ++c) {
        const uint8x16_t v0 = vld1q_u8(b.qs + 32 * c), v1 = vld1q_u8(b.qs + 32 * c + 16);
        q[4 * c + 0] = s8(vorrq_u8(low4(v0), vandq_u8(vshlq_n_u8(h0, 4), b4)));
        q[4 * c + 1] = s8(vorrq_u8(low4(v1), vandq_u8(vshlq_n_u8(h1, 4), b4)));
        q[4 * c + 2] = s8(vorrq_u8(vshrq_n_u8(v0, 4), vandq_u8(vshlq_n_u8(h0, 3), b4)));
        q[4 * c + 3] = s8(vorrq_u8(vshrq_n_u8(v1, 4), vandq_u8(vshlq_n_u8(h1, 3), b4)));
        h0 = vshrq_n_u8(h0, 2);
        h1 = vshrq_n_u8(h1, 2);
      }
      uint8_t sc[8], m[8];
      k4_scales(b.scales, sc, m);
      k4_apply<D, NA>(q, sc, m, h2f(b.d), h2f(b.dmin), acts, as, i, sum);
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = sum[a];
  }
};

// 16 groups of 16 (q[j]) with int scales sc[j]: sum_j sc[j] * (q_j . y_j).
template <class D>
inline int32_t scaled_dot16x16(const int8x16_t* q, const int8_t* sc, const int8_t* yq) {
  int32x4_t isum = zero4();
  for (int j = 0; j < 16; ++j) isum = vmlaq_n_s32(isum, D::dot16(zero4(), q[j], vld1q_s8(yq + 16 * j)), sc[j]);
  return vaddvq_s32(isum);
}

template <class D>
struct Q6KRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const block_q6_K* x = reinterpret_cast<const block_q6_K*>(w);
    const uint8x16_t m30 = vdupq_n_u8(0x30);
    const int8x16_t k32 = vdupq_n_s8(32);
    float sum[NA] = {};
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q6_K& b = x[i];
      int8x16_t q[16];
      for (int half = 0; half < 2; ++half) {
        // per 128 elements e: ql[l] holds e+l (low) and e+64+l (high nibble),
        // ql[l+32] holds e+32+l and e+96+l; qh[l] the four 2-bit tops
        const uint8_t* ql = b.ql + 64 * half;
        const uint8_t* qh = b.qh + 32 * half;
        for (int u = 0; u < 2; ++u) {
          const uint8x16_t l0 = vld1q_u8(ql + 16 * u), l1 = vld1q_u8(ql + 32 + 16 * u);
          const uint8x16_t h = vld1q_u8(qh + 16 * u);
          int8x16_t* o = q + 8 * half + u;
          o[0] = vsubq_s8(s8(vorrq_u8(low4(l0), vandq_u8(vshlq_n_u8(h, 4), m30))), k32);
          o[2] = vsubq_s8(s8(vorrq_u8(low4(l1), vandq_u8(vshlq_n_u8(h, 2), m30))), k32);
          o[4] = vsubq_s8(s8(vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h, m30))), k32);
          o[6] = vsubq_s8(s8(vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(h, 2), m30))), k32);
        }
      }
      const float d = h2f(b.d);
      for (int a = 0; a < NA; ++a) {
        const block_q8_K& y = act_at<block_q8_K>(acts, as, a, i);
        sum[a] += d * y.d * float(scaled_dot16x16<D>(q, b.scales, y.qs));
      }
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = sum[a];
  }
};

// Q3_K's 16 signed 6-bit scales: low 4 bits in bytes 0..7 (two per byte),
// high 2 bits in bytes 8..11.
inline void q3_scales(const uint8_t* s, int8_t* sc) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    sc[j] = int8_t((lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
  }
}

template <class D>
struct Q3KRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const block_q3_K* x = reinterpret_cast<const block_q3_K*>(w);
    const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float sum[NA] = {};
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q3_K& b = x[i];
      const uint8x16_t hm[2] = {vld1q_u8(b.hmask), vld1q_u8(b.hmask + 16)};
      int8x16_t q[16];
      // elements 32g+l: 2-bit field g%4 of qs[32*(g/4) + l], hmask[l] bit g set: q >= 0
      for (int g = 0; g < 8; ++g) {
        const int8x16_t shift = vdupq_n_s8(int8_t(-2 * (g % 4)));
        const uint8x16_t bit = vdupq_n_u8(uint8_t(1u << g));
        for (int u = 0; u < 2; ++u) {
          const uint8x16_t lo = vandq_u8(vshlq_u8(vld1q_u8(b.qs + 32 * (g / 4) + 16 * u), shift), three);
          const uint8x16_t hi = vandq_u8(vtstq_u8(hm[u], bit), four);
          q[2 * g + u] = vsubq_s8(s8(vorrq_u8(lo, hi)), vreinterpretq_s8_u8(four));
        }
      }
      int8_t sc[16];
      q3_scales(b.scales, sc);
      const float d = h2f(b.d);
      for (int a = 0; a < NA; ++a) {
        const block_q8_K& y = act_at<block_q8_K>(acts, as, a, i);
        sum[a] += d * y.d * float(scaled_dot16x16<D>(q, sc, y.qs));
      }
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = sum[a];
  }
};

template <class D>
struct Q2KRow {
  template <int NA>
  static void run(int64_t n, const uint8_t* w, const uint8_t* acts, size_t as, float* out, size_t os) {
    const block_q2_K* x = reinterpret_cast<const block_q2_K*>(w);
    const uint8x16_t three = vdupq_n_u8(3);
    float sum[NA] = {};
    for (int64_t i = 0; i < n / QK_K; ++i) {
      const block_q2_K& b = x[i];
      int8x16_t q[16];
      // element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t v0 = vld1q_u8(b.qs + 32 * h), v1 = vld1q_u8(b.qs + 32 * h + 16);
        for (int s = 0; s < 4; ++s) {
          const int8x16_t shift = vdupq_n_s8(int8_t(-2 * s));
          q[8 * h + 2 * s] = s8(vandq_u8(vshlq_u8(v0, shift), three));
          q[8 * h + 2 * s + 1] = s8(vandq_u8(vshlq_u8(v1, shift), three));
        }
      }
      const uint8x16_t sm = vld1q_u8(b.scales);  // low nibble: scale, high: min
      int8_t sc[16];
      vst1q_s8(sc, s8(low4(sm)));
      const uint8x16_t mins = vshrq_n_u8(sm, 4);
      const int16x8_t m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
      const int16x8_t m_hi = vreinterpretq_s16_u16(vmovl_high_u8(mins));
      const float d = h2f(b.d), dmin = h2f(b.dmin);
      for (int a = 0; a < NA; ++a) {
        const block_q8_K& y = act_at<block_q8_K>(acts, as, a, i);
        const int32_t isum = scaled_dot16x16<D>(q, sc, y.qs);
        const int32_t summs = mins_dot16(y.bsums, m_lo, m_hi);
        sum[a] += y.d * d * float(isum) - y.d * dmin * float(summs);
      }
    }
    for (int a = 0; a < NA; ++a) out[size_t(a) * os] = sum[a];
  }
};

// ---------------------------------------------------------------- the GEMM
// Rows in blocks of 16, tokens in groups of up to 4 (register accumulators).
template <class Row>
void quant_gemm(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride, int n_act,
                float* out, size_t out_stride) {
  constexpr int kRowBlock = 16, kActGroup = 4;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(acts);
  for (int r0 = 0; r0 < n_w; r0 += kRowBlock) {
    const int r1 = r0 + kRowBlock < n_w ? r0 + kRowBlock : n_w;
    for (int a0 = 0; a0 < n_act; a0 += kActGroup) {
      const int na = n_act - a0 < kActGroup ? n_act - a0 : kActGroup;
      const uint8_t* ag = ab + size_t(a0) * act_stride;
      for (int r = r0; r < r1; ++r) {
        const uint8_t* wr = wb + size_t(r) * w_stride;
        float* o = out + size_t(a0) * out_stride + size_t(r);
        switch (na) {
          case 4: Row::template run<4>(n, wr, ag, act_stride, o, out_stride); break;
          case 3: Row::template run<3>(n, wr, ag, act_stride, o, out_stride); break;
          case 2: Row::template run<2>(n, wr, ag, act_stride, o, out_stride); break;
          default: Row::template run<1>(n, wr, ag, act_stride, o, out_stride); break;
        }
      }
    }
  }
}

// Fills every quantized dot slot with the kernels above on dot policy D.
template <class D>
void fill_quant_dots(CpuKernels& k) {
  k.quant_dot[kQ8_0] = quant_gemm<LegacyRow<D, Q8_0T>>;
  k.quant_dot[kQ4_0] = quant_gemm<LegacyRow<D, Q4_0T>>;
  k.quant_dot[kQ4_1] = quant_gemm<LegacyRow<D, Q4_1T>>;
  k.quant_dot[kQ5_0] = quant_gemm<LegacyRow<D, Q5_0T>>;
  k.quant_dot[kQ5_1] = quant_gemm<LegacyRow<D, Q5_1T>>;
  k.quant_dot[kQ2_K] = quant_gemm<Q2KRow<D>>;
  k.quant_dot[kQ3_K] = quant_gemm<Q3KRow<D>>;
  k.quant_dot[kQ4_K] = quant_gemm<Q4KRow<D>>;
  k.quant_dot[kQ5_K] = quant_gemm<Q5KRow<D>>;
  k.quant_dot[kQ6_K] = quant_gemm<Q6KRow<D>>;
}

}  // namespace
}  // namespace sc
