// AVX-512 + VNNI quantized dot products: the k-quants Q2_K..Q6_K, Q8_K activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
//
// Same scheme as the AVX2 file: each weight super-block is decoded in
// registers into unsigned levels (u8 operand of maddubs), an int16 scale per
// 16-element group and an int16 coefficient per group for the activation's
// bsums (mins, or the bias that makes Q3_K/Q6_K levels unsigned):
//   w . y = y.d * (d * sum_g sc_g * (u_g . y_g) - dm * sum_g m_g * bsum_g)
// 64 elements per vector; VNNI's dpwssd applies the group scales and
// accumulates in one instruction (maddubs gives the int16 pair sums first:
// the scales do not fit the u8 x s8 operands of dpbusd).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
// GCC 12's AVX-512 headers self-initialise "undefined" vectors and
// -W(maybe-)uninitialized flags their inlined uses (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "backend/cpu/x86/prefetch_x86.h"
#include "backend/cpu/x86/quant_dot_k_x86.h"
#include "format/quant.h"

namespace sc {
namespace {

struct KBlock {
  __m512i q[4];   // u8 levels of elements 64c .. 64c+63
  __m512i sc[4];  // int16 scales for maddubs(q[c], y): 128-bit lane L gets group 4c+L
  __m256i m;      // int16 coefficient of bsum_g for the 16 groups
  float d, dm;
};

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// The same 32 bytes in both halves.
inline __m512i load256x2(const void* p) { return _mm512_broadcast_i64x4(load256(p)); }
// One value for the low 256 bits, another for the high 256 bits.
inline __m512i halves_epi8(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi8(char(lo)), _mm256_set1_epi8(char(hi)), 1);
}

// Scale vectors from 16 int8 group scales (byte g = group g).
inline void set_group_scales(__m128i sc8, KBlock& b) {
  const __m512i s16 = _mm512_zextsi256_si512(_mm256_cvtepi8_epi16(sc8));
  for (int c = 0; c < 4; ++c) {
    const __m512i idx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_setr_m128i(_mm_set1_epi16(short(4 * c)), _mm_set1_epi16(short(4 * c + 1)))),
        _mm256_setr_m128i(_mm_set1_epi16(short(4 * c + 2)), _mm_set1_epi16(short(4 * c + 3))), 1);
    b.sc[c] = _mm512_permutexvar_epi16(idx, s16);
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

// 32 packed bytes -> their low nibbles then their high nibbles (64 levels in element order).
inline __m512i nibbles(const uint8_t* p) {
  const __m256i v = load256(p);
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
  return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
}

inline void decode_q4_K(const block_q4_K& x, KBlock& b) {
  for (int c = 0; c < 4; ++c) b.q[c] = nibbles(x.qs + 32 * c);
  set_scales_k4(x.scales, b);
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

inline void decode_q5_K(const block_q5_K& x, KBlock& b) {
  const __m512i qh = load256x2(x.qh);
  const __m512i sixteen = _mm512_set1_epi8(16);
  for (int c = 0; c < 4; ++c) {
    // fifth bit: bit 2c of qh for the low nibbles, bit 2c+1 for the high ones
    const __mmask64 hi = _mm512_test_epi8_mask(qh, halves_epi8(1 << (2 * c), 1 << (2 * c + 1)));
    const __m512i lo = nibbles(x.qs + 32 * c);
    b.q[c] = _mm512_mask_add_epi8(lo, hi, lo, sixteen);
  }
  set_scales_k4(x.scales, b);
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

// Q6_K levels are q + 32 in [0, 63]; the bias goes to the bsum term
// (coefficient 32 * sc, same factor d).
inline void decode_q6_K(const block_q6_K& x, KBlock& b) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i l = load512(x.ql + 64 * h);  // elements 128h+j (low nibble), +64 (high nibble)
    // top bits of elements 128h + 0..31 (bits 0-1) and 32..63 (bits 2-3) at bits 0-1; +64 at bits 4-5
    const __m512i qh = _mm512_srlv_epi16(load256x2(x.qh + 32 * h), shift);
    const __m512i h0 = _mm512_slli_epi16(_mm512_and_si512(qh, _mm512_set1_epi8(0x03)), 4);
    const __m512i h1 = _mm512_and_si512(qh, _mm512_set1_epi8(0x30));
    b.q[2 * h] = _mm512_or_si512(_mm512_and_si512(l, low4), h0);
    b.q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4), h1);
  }
  const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
  set_group_scales(sc8, b);
  b.m = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
  b.d = b.dm = _cvtsh_ss(x.d);
}

// 2-bit fields of Q2_K/Q3_K: 64-element chunk c is fields 2c%4 and 2c%4+1 of
// the 32 bytes of half c/2.
inline __m512i two_bit_fields(const uint8_t* qs, int c) {
  const short s = short(4 * (c % 2));
  const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(s), _mm256_set1_epi16(short(s + 2)), 1);
  return _mm512_and_si512(_mm512_srlv_epi16(load256x2(qs + 32 * (c / 2)), shift), _mm512_set1_epi8(3));
}

// Q3_K levels are q + 4 in [0, 7] (2 low bits from qs, bit 2 from hmask);
// the bias goes to the bsum term (coefficient 4 * sc, same factor d).
inline void decode_q3_K(const block_q3_K& x, KBlock& b) {
  const __m512i hm = load256x2(x.hmask);
  const __m512i four = _mm512_set1_epi8(4);
  for (int c = 0; c < 4; ++c) {
    const __mmask64 hi = _mm512_test_epi8_mask(hm, halves_epi8(1 << (2 * c), 1 << (2 * c + 1)));
    const __m512i lo = two_bit_fields(x.qs, c);
    b.q[c] = _mm512_mask_add_epi8(lo, hi, lo, four);
  }
  const __m128i sc8 = unpack_scales_q3(x.scales);
  set_group_scales(sc8, b);
  b.m = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 2);
  b.d = b.dm = _cvtsh_ss(x.d);
}

inline void decode_q2_K(const block_q2_K& x, KBlock& b) {
  for (int c = 0; c < 4; ++c) b.q[c] = two_bit_fields(x.qs, c);
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  set_group_scales(_mm_and_si128(packed, low4), b);
  b.m = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
  b.d = _cvtsh_ss(x.d);
  b.dm = _cvtsh_ss(x.dmin);
}

// Integer part of one block against one activation block:
// sum_g sc_g * (u_g . y_g) in 16 int32 lanes.
inline __m512i block_isum(const KBlock& b, const int8_t* yq) {
  // |u| <= 63, |y| <= 127: the int16 pair sums of maddubs cannot saturate
  __m512i s0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(b.q[0], load512(yq)), b.sc[0]);
  __m512i s1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(b.q[1], load512(yq + 64)), b.sc[1]);
  s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(b.q[2], load512(yq + 128)), b.sc[2]);
  s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(b.q[3], load512(yq + 192)), b.sc[3]);
  return _mm512_add_epi32(s0, s1);
}

// acc += y.d * (d * isum - dm * msum) for one block, from its integer sums.
// kSameScale: the bsum term has factor d too (Q3_K, Q6_K), so it is
// subtracted in integers.
template <bool kSameScale>
inline __m512 scale_block(const KBlock& b, float yd, __m512i isum, __m256i msum, __m512 acc) {
  const __m512i m = _mm512_zextsi256_si512(msum);
  if (kSameScale) return _mm512_fmadd_ps(_mm512_set1_ps(yd * b.d), _mm512_cvtepi32_ps(_mm512_sub_epi32(isum, m)), acc);
  acc = _mm512_fmadd_ps(_mm512_set1_ps(yd * b.d), _mm512_cvtepi32_ps(isum), acc);
  return _mm512_fnmadd_ps(_mm512_set1_ps(yd * b.dm), _mm512_cvtepi32_ps(m), acc);
}

// Prompts: tokens in chunks whose activation rows (292 bytes per 256 inputs)
// stay in L2 while the weight rows stream past; rows in tiles of kRowTile,
// their blocks decoded side by side, so that each decoded block serves the
// whole chunk and each activation block (which comes from L2: a chunk's
// blocks at one position do not stay in L1) is loaded once per tile.
// Measured here: 4 rows ~1.5x faster than 1 row, 6 or 8 no better than 4.
constexpr int kTokenChunk = 32;
constexpr int kRowTile = 4;

// R rows x the tokens t0 .. t0+nt-1: each activation block is loaded once for the R rows.
template <int R, typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale>
void dot_tile(int64_t nb, const Block* const* x, const void* acts, size_t act_stride, int t0, int nt, float* out,
              size_t out_stride) {
  KBlock b[R];
  __m512 acc[kTokenChunk][R];
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    for (int r = 0; r < R; ++r) Decode(x[r][i], b[r]);
    for (int t = 0; t < nt; ++t) {
      const block_q8_K& y = act_row(acts, act_stride, t0 + t)[i];
      __m512i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {
        const __m512i a = load512(y.qs + 64 * c);
        for (int r = 0; r < R; ++r)
          isum[r] = _mm512_dpwssd_epi32(isum[r], _mm512_maddubs_epi16(b[r].q[c], a), b[r].sc[c]);
      }
      const __m256i bsums = load256(y.bsums);
      for (int r = 0; r < R; ++r)
        acc[t][r] = scale_block<kSameScale>(b[r], y.d, isum[r], _mm256_madd_epi16(bsums, b[r].m), acc[t][r]);
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < R; ++r) out[size_t(t) * out_stride + size_t(r)] = _mm512_reduce_add_ps(acc[t][r]);
}

// Decode and a server's batched decode (fewer tokens than the panel GEMM
// takes, quant_gemm_x86.h): one pass over the rows, each block decoded in
// registers once and applied to NT activation rows, the rows prefetched
// ahead. NT is a constant so that the accumulators stay in registers. (Through
// dot_tile, whose accumulators and 4 decoded blocks live in memory, 2
// tokens took 3x one token's time: one thread, 8192 x 8192 Q4_K, Zen 4,
// 25.6 against 37.8 GMAC/s.)
template <int NT, typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale>
void dot_rows_few(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                  float* out, size_t out_stride) {
  const block_q8_K* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = act_row(acts, act_stride, t);
  for (int r = 0; r < n_w; ++r) {
    const Block* x = reinterpret_cast<const Block*>(w + size_t(r) * w_stride);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
      for (size_t off = 0; off < sizeof(Block); off += 64) prefetch_stream(reinterpret_cast<const char*>(x + i) + off);
      KBlock b;
      Decode(x[i], b);
      for (int t = 0; t < NT; ++t)
        acc[t] = scale_block<kSameScale>(b, y[t][i].d, block_isum(b, y[t][i].qs),
                                         _mm256_madd_epi16(load256(y[t][i].bsums), b.m), acc[t]);
    }
    for (int t = 0; t < NT; ++t) out[size_t(t) * out_stride + size_t(r)] = _mm512_reduce_add_ps(acc[t]);
  }
}

// Tokens per call of dot_rows_few: this level's panel GEMM takes 9 and
// more, and hands dot_tile only the rows that do not fill a panel.
constexpr int kFewTokens = 8;
using FewFn = void (*)(int64_t, const uint8_t*, size_t, int, const void*, size_t, float*, size_t);
template <typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale, int... T>
FewFn few_fn_of(int n, std::integer_sequence<int, T...>) {
  static constexpr FewFn fns[] = {dot_rows_few<T + 1, Block, Decode, kSameScale>...};
  return fns[n - 1];
}

template <typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale>
void dot_k_q8_K(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride, int n_act,
                float* out, size_t out_stride) {
  const int64_t nb = n / QK_K;
  if (n_act <= kFewTokens) {
    few_fn_of<Block, Decode, kSameScale>(n_act, std::make_integer_sequence<int, kFewTokens>())(
        nb, static_cast<const uint8_t*>(w), w_stride, n_w, acts, act_stride, out, out_stride);
    return;
  }
  const auto row = [&](int r) {
    return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride);
  };
  for (int t0 = 0; t0 < n_act; t0 += kTokenChunk) {
    const int nt = n_act - t0 < kTokenChunk ? n_act - t0 : kTokenChunk;
    float* o = out + size_t(t0) * out_stride;
    int r = 0;
    for (; r + kRowTile <= n_w; r += kRowTile) {
      const Block* x[kRowTile];
      for (int j = 0; j < kRowTile; ++j) x[j] = row(r + j);
      dot_tile<kRowTile, Block, Decode, kSameScale>(nb, x, acts, act_stride, t0, nt, o + r, out_stride);
    }
    for (; r < n_w; ++r) {
      const Block* x[1] = {row(r)};
      dot_tile<1, Block, Decode, kSameScale>(nb, x, acts, act_stride, t0, nt, o + r, out_stride);
    }
  }
}

}  // namespace

void fill_quant_k_avx512(CpuKernels& k) {
  k.quant_dot[kQ2_K] = dot_k_q8_K<block_q2_K, decode_q2_K, false>;
  k.quant_dot[kQ3_K] = dot_k_q8_K<block_q3_K, decode_q3_K, true>;
  k.quant_dot[kQ4_K] = dot_k_q8_K<block_q4_K, decode_q4_K, false>;
  k.quant_dot[kQ5_K] = dot_k_q8_K<block_q5_K, decode_q5_K, false>;
  k.quant_dot[kQ6_K] = dot_k_q8_K<block_q6_K, decode_q6_K, true>;
}

}  // namespace sc

#pragma GCC diagnostic pop

#else

namespace sc {
void fill_quant_k_avx512(CpuKernels&) {}
}  // namespace sc

#endif
