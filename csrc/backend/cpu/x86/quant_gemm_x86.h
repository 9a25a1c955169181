// Prompt-path GEMM for Q4_0, Q8_0 and the k-quants, shared by the AVX2 and
// AVX-512 levels: quant_gemm_avx2.cpp and quant_gemm_avx512.cpp each include
// this once, compiled with their own flags, after defining
// SC_QUANT_GEMM_FILL (the name of the fill function). With AVX512_VNNI/VL
// the inner steps use vpdpbusd / vpdpwssd in 256-bit registers (one
// instruction where AVX2 needs a multiply and an add); everything else is
// the same code. The AVX-512 file also defines SC_QUANT_GEMM_FILL_WIDE,
// which makes the 16-row tiles in 512-bit registers available: the
// k-quants take them at both AVX-512 levels, Q4_0 and Q8_0 at the
// avx512_zmm level (for cores that run 512-bit operations at full width).
//
// The row kernels (quant_dot_avx2.cpp) dot one weight block with one
// activation block at a time: a maddubs yields 16 pair sums of ONE row,
// which then need a float FMA and, at the end, a horizontal sum per output.
// Here 8 weight rows are first rearranged into a panel in which one 32-byte
// vector holds 4 consecutive codes of each of the 8 rows (the idea of
// llama.cpp's repacked 8x8 layouts): a maddubs of it against 4 activation
// bytes broadcast gives partial sums of all 8 rows at once, a block's sums
// stay in int16 until its scale is applied, and the float work per block is
// one vector for 8 outputs. Measured on a 2-core Zen 3 (AVX2): 2.4-3.5x the
// row kernel's MACs/s for 128 tokens.
//
// The panel (8 rows, codes unpacked to bytes: 8 * n_in bytes plus a float
// scale per row and block, 18-73 KB for StarCoder's widths) is built per
// call in a per-thread scratch buffer from the file's own layout, so there is
// no private copy of the weights and the packing is spread over every token.
// Decode (few tokens, F::kMinTokens) and rows that do not fill a panel take
// the row kernel.
#pragma once
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/x86/kquant_decode_avx2.h"
#include "backend/cpu/x86/q8_helpers_avx2.h"
#include "backend/cpu/x86/transpose_avx2.h"
#include "format/quant.h"

namespace sc {
namespace {

constexpr int kPanelRows = 8;   // weight rows per panel: one int32/float lane each
// Activation rows per pass over a panel (the formats' kTokenTile): 4 for
// Q4_0/Q8_0; 6 for the k-quants, whose longer int16 chains and per-group
// scale multiply leave registers for 6 (2-core Zen 3, one thread, 512 rows
// of 2048, GMAC/s at 4 / 6 rows: Q4_K 82 / 85, Q6_K 71 / 73; Q4_0 84 / 78).
// The 16-row panels keep 4: in 512-bit registers (kTokenTileWide), and in
// the pair of 256-bit panels (kTokenTilePair), where AVX2 keeps 6 of its 8
// float accumulators in L1, touched once per block (with VNNI's 32
// registers 6 tokens fit, and measured no faster: Zen 4, one thread, 256
// tokens, 2048 x 8192, GMAC/s at 4 / 6: Q4_0 155-156 / 117-158, Q8_0
// 141-145 / 106-150).
constexpr int kTokenTileWide = 4;
// VNNI: vpdpbusd multiplies unsigned by signed bytes into int32 without
// saturation, so signed Q8_0 codes can be stored offset by 128 (w + 128 in
// 0..255) and the offset taken out through the activation sums, as Q4_0's 8.
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
constexpr bool kVnni = true;
#else
constexpr bool kVnni = false;
#endif
constexpr int kTokenTilePair = 4;

// Below a format's kMinTokens activation rows the row kernel is faster: the
// panel is packed per call, and a few tokens do not pay for it (a server's
// batched decode is 2-16 rows). Whole batched decode steps (Engine.step,
// 2-core Zen 3, AVX2, 2 threads, 1B shape, best ms per step of 20, row
// kernel / panel GEMM), once the next panel was prefetched from the first
// tile and the k-quant pack stored through raw pointers:
//   Q4_0: 2 sequences 65-75 / 52-59, 3: 82-84 / 53-64.
//   Q8_0: 2 sequences 76-86 / 78-84 (a tie: the row kernel kept), 3: 92-102
//     / 69-91, 4: 106-112 / 77-89, 6: 168-189 / 105-131.
//   Q4_K_M: 4 sequences 79-94 / 97-120, 6: 99-125 / 108-131, 8: 128-159 /
//     120-129 (the k-quants' pack decodes every block, so they cross over
//     later). Before the pack's fix, 8 sequences took 276-309 ms in the
//     panel.
// The VNNI build (the avx512 level) keeps the Q4_0 and Q8_0 crossovers it
// had before these changes (4 and 8; its zmm row tiles were fast at 2-7
// tokens), not re-measured since; its k-quant crossover is below.
constexpr int kMinTokensQ4_0 = kVnni ? 4 : 2;
// The 16-row panels pay from 8 Q4_0 rows: on a 2-core Zen 5, 8 tokens 132
// GMAC/s against the zmm tiles' 134 (which that level keeps below it), 16
// tokens 221 against 167.
// The pair tile (panel_tile_pair, 16 rows in 256-bit halves) takes Q4_0
// from 4 tokens at the AVX2 and avx512 levels: no slower in a step and
// faster in prompts; at 2 it lost a little (whole steps, Zen 3, 1B, best
// ms of 16, 8-row / pair tile, three alternating rounds: 2 sequences 52-57
// / 56-59, 4: 69-78 / 65-73, 16: 179-212 / 178-198; 256-token prompts
// 84-99 / 116-120 tok/s). With VNNI (Zen 4, avx512 level, 1B Q4_0, best ms
// of 16, two rounds, pair tile from 8 / from 4): 4 sequences 76-82 / 78-80,
// 8: 123-127 / 112 (the same code: the spread of this VM), 16: 205-212 /
// 188-198.
constexpr int kMinTokensQ4_0Pair = 4;
constexpr int kMinTokensQ4_0Wide = 8;
constexpr int kMinTokensQ8_0 = kVnni ? 8 : 3;
constexpr int kMinTokensQ8_0Pair = 8;  // VNNI only: from the 8-row GEMM's own crossover
// The k-quants' few-token row kernels (dot_rows_few) cover 1-7 tokens at
// AVX2 and 1-8 with VNNI, where from 9 the panel is faster (Zen 4, one
// thread, 8192 x 2048, GMAC/s, row kernels / 8-row panel, two rounds: 8
// tokens Q4_K 65-68 / 55-68, Q6_K 63-65 / 34-47; 12 tokens Q4_K 46-50 /
// 68-76, Q6_K 42 / 45-47; 1B Q4_K_M, 12 sequences, best ms of 12: 221-229
// / 177-188).
constexpr int kMinTokensK = kVnni ? 9 : 8;
constexpr int kMinTokensKWide = 16;

// A panel of 8 * H rows (H = 1: one 256-bit vector per step; H = 2: one
// 512-bit vector in the wide variant below, two 256-bit ones in the pair
// tile): per block and group g, H vectors
// of codes (vector h: codes 4g..4g+3 of rows 8h..8h+7, row 8h+r in bytes
// 4r..4r+3), then the rows' scales.
//
// The vectors of a panel: 32 bytes each, contiguous, stored in 64-byte
// aligned pairs so that a 512-bit load of both halves never splits a cache
// line. Addressed as bytes (vector i at bytes(i)), so that a kernel steps
// through them by constant offsets from one pointer.
class VecStore {
 public:
  void resize(size_t n) { v_.resize((n + 1) / 2); }
  // (a byte pointer into the storage, not an index into one Pair's array,
  // which UBSan rightly flags past its 64 bytes)
  const uint8_t* bytes(size_t i) const { return reinterpret_cast<const uint8_t*>(v_.data()) + 32 * i; }
  uint8_t* bytes(size_t i) { return reinterpret_cast<uint8_t*>(v_.data()) + 32 * i; }

 private:
  struct alignas(64) Pair {
    uint8_t bytes[64];
  };
  std::vector<Pair> v_;
};
inline __m256i load_vec(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

struct Panel {
  VecStore codes;            // [block][group][half]
  std::vector<float> d;      // [block][row]
  void resize(int64_t nb, int halves) {
    codes.resize(size_t(nb) * 8 * size_t(halves));
    d.resize(size_t(nb) * kPanelRows * size_t(halves));
  }
};

struct ActScales;    // per activation block, below
struct NoActScales;  // the k-quants' (nothing), with the driver

// Q4_0: codes 0..15 (the -8 offset is applied through the activation sums).
struct Q4_0 {
  static constexpr int kSlot = kQ4_0;
  static constexpr int kMinTokens = kMinTokensQ4_0;
  static constexpr int kMinTokensPair = kMinTokensQ4_0Pair;
  static constexpr int kMinTokensWide = kMinTokensQ4_0Wide;
  static constexpr int kTokenTile = 4;
  static constexpr int kZero = 8;  // code of weight 0
  static constexpr bool kOffset = true;
  static constexpr int64_t kBlock = QK8_0;
  using PanelT = Panel;
  using Act = ActScales;
  // The 8 panel vectors of rows 0..7 of block b: vector g holds dword g
  // of every row's qs (a 4x4 dword transpose per 128-bit half, rows 0-3 in
  // the low half, 4-7 in the high), low nibbles for g < 4, high ones after.
  static void pack8(const uint8_t* w, size_t stride, int64_t b, __m256i v[8], float* d) {
    const auto row = [&](int r) { return reinterpret_cast<const block_q4_0*>(w + size_t(r) * stride) + b; };
    const auto qs = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(row(r)->qs)); };
    __m256i a[4];
    for (int j = 0; j < 4; ++j) a[j] = _mm256_set_m128i(qs(j + 4), qs(j));
    const __m256i t0 = _mm256_unpacklo_epi32(a[0], a[1]), t1 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(a[2], a[3]), t3 = _mm256_unpackhi_epi32(a[2], a[3]);
    const __m256i dw[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                           _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int g = 0; g < 4; ++g) {
      v[g] = _mm256_and_si256(dw[g], low);
      v[4 + g] = _mm256_and_si256(_mm256_srli_epi16(dw[g], 4), low);
    }
    for (int r = 0; r < kPanelRows; ++r) d[r] = _cvtsh_ss(row(r)->d);
  }
};

// Q8_0: signed codes. With VNNI stored as w + 128 (offset like Q4_0); without,
// multiplied as |w| * (y * sign(w)), since maddubs saturates at int16.
struct Q8_0 {
  static constexpr int kSlot = kQ8_0;
  static constexpr int kMinTokens = kMinTokensQ8_0;
  static constexpr int kMinTokensPair = kMinTokensQ8_0Pair;
  static constexpr int kMinTokensWide = kMinTokensQ8_0;
  static constexpr int kTokenTile = 4;
  static constexpr int kZero = kVnni ? 128 : 0;
  static constexpr bool kOffset = kVnni;
  static constexpr int64_t kBlock = QK8_0;
  using PanelT = Panel;
  using Act = ActScales;
  // The 8 panel vectors of rows 0..7 of block b: each row's 32 codes as
  // 8 dwords, transposed.
  static void pack8(const uint8_t* w, size_t stride, int64_t b, __m256i v[8], float* d) {
    for (int r = 0; r < kPanelRows; ++r) {
      const block_q8_0* blk = reinterpret_cast<const block_q8_0*>(w + size_t(r) * stride) + b;
      v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs));
      if constexpr (kOffset) v[r] = _mm256_xor_si256(v[r], _mm256_set1_epi8(char(0x80)));
      d[r] = _cvtsh_ss(blk->d);
    }
    transpose8x8_epi32(v);
  }
};

// The rows after a panel (the next panel's, contiguous in the file) are
// prefetched while the panel's first tile runs, a share per block
// (prefetch_share, for block b of nb), so that their DRAM reads overlap
// the tiles' arithmetic and the next pack finds them in cache. With a few
// tokens (a server's batched decode) the pack is where the weights stream
// in. Issued from the pack instead (as before), the prefetches bunched up
// behind its loads: 2-core Zen 3, 1B shape, Engine.step, best ms per step
// over 40, pack / first tile: Q4_0 8 sequences 90-95 / 83-88, 4 sequences
// 62-65 / 54-61; Q8_0 8 sequences 131-148 / 112-137; Q4_K_M 16
// sequences 305-310 / 262-297; 512-token prompts unchanged. The pair tiles
// and the 512-bit k-quant tile prefetch the same way (on a Zen 4, 1B
// Q4_K_M, 16 sequences, best ms of 12, two rounds, without / with:
// 228-257 / 231-233); the 512-bit Q4_0/Q8_0 tile (avx512_zmm) does not:
// no full-width AVX-512 CPU was at hand to measure it on.
// Prefetching to L2 only (T1) was no better than to L1.
inline size_t prefetch_share(const uint8_t* next, size_t next_bytes, int64_t b, int64_t nb, size_t ahead) {
  for (const size_t end = next_bytes * size_t(b + 1) / size_t(nb); ahead < end; ahead += 64)
    _mm_prefetch(reinterpret_cast<const char*>(next + ahead), _MM_HINT_T0);
  return ahead;
}

// Per activation block: its scale, and for offset formats zero * sum(codes),
// which the integer sum of a block loses exactly (so the correction is
// exact too: in float it would cancel against a sum 128x larger for Q8_0).
struct ActScales {
  std::vector<float> d;        // [token][block]
  std::vector<int32_t> corr;   // [token][block]
  void prepare(const uint8_t* acts, size_t act_stride, int n_act, int64_t nb, int zero) {
    const bool offset = zero != 0;
    d.resize(size_t(n_act) * size_t(nb));
    corr.resize(offset ? d.size() : 0);
    for (int a = 0; a < n_act; ++a)
      for (int64_t b = 0; b < nb; ++b) {
        const block_q8_0* y = reinterpret_cast<const block_q8_0*>(acts + size_t(a) * act_stride) + b;
        const size_t i = size_t(a) * size_t(nb) + size_t(b);
        d[i] = _cvtsh_ss(y->d);
        if (!offset) continue;
        corr[i] = zero * q8_code_sum(y->qs);
      }
  }
};

// Keeps v in a register as it is, so that the compiler cannot regroup a
// chain of integer adds into a tree (which needs more live registers than
// AVX2 has and spills: measured 1.6x slower). "v": any vector register the
// build has (16 with AVX2, 32 with AVX-512).
template <class V>
inline void keep(V& v) {
  asm("" : "+v"(v));
}

// T activation rows against one panel: out[t * out_stride + r] for r < 8.
// The 8 groups of a block are unrolled, their codes read at constant
// offsets from one pointer.
template <class F, int T>
void panel_tile(int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const float* dy,
                const int32_t* corr, int64_t ld, float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  size_t ahead = 0;
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const uint8_t* wb = p.codes.bytes(0);
  const uint8_t* yb = acts + offsetof(block_q8_0, qs);
  for (int64_t b = 0; b < nb; ++b, wb += 8 * 32, yb += sizeof(block_q8_0)) {
    ahead = prefetch_share(next, next_bytes, b, nb, ahead);
    __m256i s[T];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m256i w = load_vec(wb + 32 * g);
      if constexpr (F::kOffset) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        for (int t = 0; t < T; ++t) {
          const __m256i y = _mm256_set1_epi32(load_i32(yb + size_t(t) * act_stride + 4 * g));
          s[t] = g == 0 ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, y) : _mm256_dpbusd_epi32(s[t], w, y);
          keep(s[t]);
        }
#else
        // codes <= 15: 8 groups of pair sums stay below 8 * 2 * 15 * 128 < 2^15
        for (int t = 0; t < T; ++t) {
          const __m256i m = _mm256_maddubs_epi16(w, _mm256_set1_epi32(load_i32(yb + size_t(t) * act_stride + 4 * g)));
          s[t] = g == 0 ? m : _mm256_add_epi16(s[t], m);
          keep(s[t]);
        }
#endif
      } else {
        // |w| * |y| pair sums reach 2 * 128 * 127: widen every group
        const __m256i aw = _mm256_sign_epi8(w, w);
        for (int t = 0; t < T; ++t) {
          const __m256i ys = _mm256_sign_epi8(_mm256_set1_epi32(load_i32(yb + size_t(t) * act_stride + 4 * g)), w);
          const __m256i m = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, ys), ones16);
          s[t] = g == 0 ? m : _mm256_add_epi32(s[t], m);
          keep(s[t]);
        }
      }
    }
    const __m256 dw = _mm256_loadu_ps(&p.d[size_t(b) * kPanelRows]);
    for (int t = 0; t < T; ++t) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      __m256i si = s[t];  // int32 sums already
#else
      __m256i si = F::kOffset ? _mm256_madd_epi16(s[t], ones16) : s[t];
#endif
      if constexpr (F::kOffset) si = _mm256_sub_epi32(si, _mm256_set1_epi32(corr[t * ld + b]));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(dy[t * ld + b]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), scale, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + size_t(t) * out_stride, acc[t]);
}

// T activation rows against 16 weight rows (two 8-row panels side by side,
// the H = 2 layout) in 256-bit registers, for the offset formats (AVX2's
// Q4_0; Q4_0 and Q8_0 with VNNI): each activation broadcast feeds two
// maddubs (or vpdpbusd), one per 8 rows. Per block, token and 8 rows
// the 8-row tile of 4 tokens issues about 12 loads (8 broadcasts, 2 weight
// vectors, the scales and the correction) beside 21 vector operations (8
// maddubs, 8 adds, the float step), and a core issues loads at about half
// its rate of vector operations (Zen 3: two 256-bit loads and four vector
// operations a cycle), so the loads bound it. Here it is about 9: 4
// broadcasts, 2 weight vectors, half the scale loads, and the 6 of 8 float
// accumulators that do not fit the 16 registers beside the 8 int16 sums, 2
// weight vectors and a broadcast (they live in L1, loaded and stored once
// per block). The sums are the 8-row tile's, lane for lane, so the outputs
// are bit-identical. Zen 3, 1B Q4_0, 256-token prompt, best tok/s, three
// alternating rounds: 8-row tile 84-99, pair of 3 tokens (all in registers)
// 107-112, pair of 4 116-120; 6 tokens measured no better than 4. With
// VNNI the same halving of broadcasts per multiply made the avx512 level's
// 256-bit GEMM as fast as avx512_zmm's 512-bit one on a Zen 4, which runs
// a 512-bit vpdpbusd at the 256-bit rate (1B, 256-token prompts, best
// tok/s, two alternating rounds, 8-row tile / pair tile / avx512_zmm:
// Q4_0 162-197 / 228-241 / 224-246, Q8_0 175-204 / 215-239 / 248-280).
template <class F, int T>
void panel_tile_pair(int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const float* dy,
                     const int32_t* corr, int64_t ld, float* out, size_t out_stride, const uint8_t* next,
                     size_t next_bytes) {
  static_assert(F::kOffset, "the pair tile multiplies unsigned codes: an offset format");
#if !(defined(__AVX512VNNI__) && defined(__AVX512VL__))
  const __m256i ones16 = _mm256_set1_epi16(1);
#endif
  size_t ahead = 0;
  __m256 acc[2][T];
  for (int t = 0; t < T; ++t) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
  const uint8_t* wb = p.codes.bytes(0);
  const uint8_t* yb = acts + offsetof(block_q8_0, qs);
  for (int64_t b = 0; b < nb; ++b, wb += 16 * 32, yb += sizeof(block_q8_0)) {
    ahead = prefetch_share(next, next_bytes, b, nb, ahead);
    __m256i s[2][T];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m256i w0 = load_vec(wb + 64 * g), w1 = load_vec(wb + 64 * g + 32);
      for (int t = 0; t < T; ++t) {
        const __m256i y = _mm256_set1_epi32(load_i32(yb + size_t(t) * act_stride + 4 * g));
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        s[0][t] = _mm256_dpbusd_epi32(g == 0 ? _mm256_setzero_si256() : s[0][t], w0, y);
        s[1][t] = _mm256_dpbusd_epi32(g == 0 ? _mm256_setzero_si256() : s[1][t], w1, y);
#else
        const __m256i m0 = _mm256_maddubs_epi16(w0, y), m1 = _mm256_maddubs_epi16(w1, y);
        s[0][t] = g == 0 ? m0 : _mm256_add_epi16(s[0][t], m0);
        s[1][t] = g == 0 ? m1 : _mm256_add_epi16(s[1][t], m1);
#endif
        keep(s[0][t]);
        keep(s[1][t]);
      }
    }
    const __m256 dw0 = _mm256_loadu_ps(&p.d[size_t(b) * 16]), dw1 = _mm256_loadu_ps(&p.d[size_t(b) * 16 + 8]);
    for (int t = 0; t < T; ++t) {
      const __m256i c = _mm256_set1_epi32(corr[t * ld + b]);
      const __m256 dyt = _mm256_set1_ps(dy[t * ld + b]);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      const __m256i s0 = _mm256_sub_epi32(s[0][t], c), s1 = _mm256_sub_epi32(s[1][t], c);
#else
      const __m256i s0 = _mm256_sub_epi32(_mm256_madd_epi16(s[0][t], ones16), c);
      const __m256i s1 = _mm256_sub_epi32(_mm256_madd_epi16(s[1][t], ones16), c);
#endif
      acc[0][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(dw0, dyt), acc[0][t]);
      acc[1][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(dw1, dyt), acc[1][t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    _mm256_storeu_ps(out + size_t(t) * out_stride, acc[0][t]);
    _mm256_storeu_ps(out + size_t(t) * out_stride + 8, acc[1][t]);
  }
}

// ---------------------------------------------------------------- k-quants
// A k-quant panel holds, per super-block, the codes of the 8 weight rows as
// above (the levels of kquant_decode_avx2.h's KBlock, 32-element sub-block c
// in vectors 8c..8c+7), each row's int16 scale per 16-element group (in both
// halves of the row's int32 lane, for madd), and the bsum coefficients as
// int16 pairs (row r's m_2p, m_2p+1 in lane r), so that
//   w_r . y = y.d * (d_r * sum_k sc_rk * (u_rk . y_k) - dm_r * sum_k m_rk * bsum_k)
// is 8 rows wide at every step.
struct KPanel {
  VecStore codes;            // [block][64][half]
  VecStore sc;               // [block][16-group][half]
  VecStore m;                // [block][pair of 16-groups][half]
  std::vector<float> d, dm;  // [block][row]
  void resize(int64_t nb, int halves) {
    const size_t h = size_t(halves);
    codes.resize(size_t(nb) * 64 * h);
    sc.resize(size_t(nb) * 16 * h);
    m.resize(size_t(nb) * 8 * h);
    d.resize(size_t(nb) * kPanelRows * h);
    dm.resize(size_t(nb) * kPanelRows * h);
  }
};

// kMaxLevel: the largest level, which bounds how many maddubs results (each
// lane a pair sum of at most 2 * level * 128) an int16 sum can take: the 4
// groups of a 16-group while 4 * 2 * level * 128 < 2^15 (levels up to 31),
// else 2 (Q6_K).
template <typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale_, int kMaxLevel, int kSlot_>
struct KFormat {
  static constexpr int kSlot = kSlot_;
  static constexpr int kMinTokens = kMinTokensK;
  static constexpr int kMinTokensWide = kMinTokensKWide;
  static constexpr int kTokenTile = 6;
  static constexpr bool kSameScale = kSameScale_;
  static constexpr int kZero = 0;
  static constexpr bool kOffset = false;  // the offsets are in the panel's bsum coefficients
  static constexpr int64_t kBlock = QK_K;
  using PanelT = KPanel;
  using Act = NoActScales;
  static constexpr int kGroupsPerSum = 4 * 2 * kMaxLevel * 128 < 32768 ? 4 : 2;
  // Stores through raw pointers hoisted out of the loops: through the
  // thread-local panel's containers GCC called __tls_get_addr and spilled
  // each transposed vector to copy it in halves (a third of the pack's time
  // on one store, Zen 3).
  static void pack(const uint8_t* w, size_t stride, int64_t nb, int halves, KPanel& p) {
    const size_t H = size_t(halves), rows = kPanelRows * H;
    uint8_t* codes = p.codes.bytes(0);
    uint8_t* scs = p.sc.bytes(0);
    uint8_t* ms = p.m.bytes(0);
    float* pd = p.d.data();
    float* pdm = p.dm.data();
    for (int64_t i = 0; i < nb; ++i)
      for (size_t h = 0; h < H; ++h) {
        KBlock kb[kPanelRows];
        for (int r = 0; r < kPanelRows; ++r)
          Decode(reinterpret_cast<const Block*>(w + (8 * h + size_t(r)) * stride)[i], kb[r]);
        for (int c = 0; c < 8; ++c) {
          __m256i v[8];
          for (int r = 0; r < kPanelRows; ++r) v[r] = kb[r].q[c];
          transpose8x8_epi32(v);
          for (int g = 0; g < 8; ++g)
            _mm256_store_si256(reinterpret_cast<__m256i*>(codes + 32 * ((size_t(i) * 64 + size_t(c) * 8 + size_t(g)) * H + h)), v[g]);
        }
        // Scales: a KBlock's sc[c] repeats group 2c's int16 scale over lanes
        // 0-7 and 2c+1's over 8-15, so its int32 lanes 0 and 4 are the
        // (v, v) pairs the panel wants; gathered over the 8 rows by two
        // unpack levels and a lane swap. The bsum coefficients: int32 lane q
        // of a row's m is the pair (m_2q, m_2q+1), so the 8 rows transpose.
        // (Done element by element, this was 40% of the pack. One thread,
        // 4096 x 2048, 8 tokens, GMAC/s: Q4_K 26-40 -> 47-53, Q6_K 27-39 ->
        // 49-50; 1B Q4_K_M 8-sequence step 122-159 -> 110-119 ms, Zen 3.)
        for (int c = 0; c < 8; ++c) {
          const __m256i a0 = _mm256_unpacklo_epi32(kb[0].sc[c], kb[1].sc[c]);
          const __m256i a1 = _mm256_unpacklo_epi32(kb[2].sc[c], kb[3].sc[c]);
          const __m256i a2 = _mm256_unpacklo_epi32(kb[4].sc[c], kb[5].sc[c]);
          const __m256i a3 = _mm256_unpacklo_epi32(kb[6].sc[c], kb[7].sc[c]);
          const __m256i b0 = _mm256_unpacklo_epi64(a0, a1), b1 = _mm256_unpacklo_epi64(a2, a3);
          _mm256_store_si256(reinterpret_cast<__m256i*>(scs + 32 * ((size_t(i) * 16 + size_t(2 * c)) * H + h)),
                             _mm256_permute2x128_si256(b0, b1, 0x20));
          _mm256_store_si256(reinterpret_cast<__m256i*>(scs + 32 * ((size_t(i) * 16 + size_t(2 * c + 1)) * H + h)),
                             _mm256_permute2x128_si256(b0, b1, 0x31));
        }
        __m256i m[8];
        for (int r = 0; r < kPanelRows; ++r) m[r] = kb[r].m;
        transpose8x8_epi32(m);
        for (int q = 0; q < 8; ++q)
          _mm256_store_si256(reinterpret_cast<__m256i*>(ms + 32 * ((size_t(i) * 8 + size_t(q)) * H + h)), m[q]);
        for (int r = 0; r < kPanelRows; ++r) {
          pd[size_t(i) * rows + 8 * h + size_t(r)] = kb[r].d;
          pdm[size_t(i) * rows + 8 * h + size_t(r)] = kb[r].dm;
        }
      }
  }
};

template <class F, int T>
void kpanel_tile(int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, float* out, size_t out_stride,
                 const uint8_t* next, size_t next_bytes) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  size_t ahead = 0;
  for (int64_t i = 0; i < nb; ++i) {
    ahead = prefetch_share(next, next_bytes, i, nb, ahead);
    const block_q8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = act_row(acts, act_stride, t) + i;
    __m256i s32[T];
    for (int t = 0; t < T; ++t) s32[t] = _mm256_setzero_si256();
    const uint8_t* wc = p.codes.bytes(size_t(i) * 64);
    const uint8_t* wsc = p.sc.bytes(size_t(i) * 16);
#pragma GCC unroll 1
    for (int k = 0; k < 16; ++k, wc += 4 * 32, wsc += 32) {  // 16-element groups
      const __m256i sc = load_vec(wsc);
#pragma GCC unroll 4
      for (int g0 = 0; g0 < 4; g0 += F::kGroupsPerSum) {
        __m256i s16[T];
#pragma GCC unroll 4
        for (int g = g0; g < g0 + F::kGroupsPerSum; ++g) {
          const __m256i w = load_vec(wc + 32 * g);
          for (int t = 0; t < T; ++t) {
            const __m256i m = _mm256_maddubs_epi16(w, _mm256_set1_epi32(load_i32(y[t]->qs + 16 * k + 4 * g)));
            s16[t] = g == g0 ? m : _mm256_add_epi16(s16[t], m);
            keep(s16[t]);
          }
        }
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        for (int t = 0; t < T; ++t) s32[t] = _mm256_dpwssd_epi32(s32[t], s16[t], sc);
#else
        for (int t = 0; t < T; ++t) s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], sc));
#endif
      }
    }
    const __m256 d = _mm256_loadu_ps(&p.d[size_t(i) * kPanelRows]);
    const __m256 dm = _mm256_loadu_ps(&p.dm[size_t(i) * kPanelRows]);
    for (int t = 0; t < T; ++t) {
      __m256i msum = _mm256_setzero_si256();
      for (int q = 0; q < 8; ++q) {
        int32_t b;
        std::memcpy(&b, y[t]->bsums + 2 * q, 4);
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(load_vec(p.m.bytes(size_t(i) * 8 + size_t(q))), _mm256_set1_epi32(b)));
      }
      const __m256 yd = _mm256_set1_ps(y[t]->d);
      if constexpr (F::kSameScale) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s32[t], msum)), _mm256_mul_ps(d, yd), acc[t]);
      } else {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(d, yd), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dm, yd), acc[t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + size_t(t) * out_stride, acc[t]);
}

using Q2_K = KFormat<block_q2_K, decode_q2_K, false, 3, kQ2_K>;
using Q3_K = KFormat<block_q3_K, decode_q3_K, true, 7, kQ3_K>;
using Q4_K = KFormat<block_q4_K, decode_q4_K, false, 15, kQ4_K>;
using Q5_K = KFormat<block_q5_K, decode_q5_K, false, 31, kQ5_K>;
using Q6_K = KFormat<block_q6_K, decode_q6_K, true, 63, kQ6_K>;

#if defined(SC_QUANT_GEMM_FILL_WIDE)
// ---------------------------------------------------------------- 16 rows
// The same tiles on 16-row panels in 512-bit registers (the panel's two
// halves side by side in one load): where the CPU runs a 512-bit vpdpbusd
// at twice the 256-bit rate (full-width AVX-512, not Zen 4's double pumping)
// each instruction then does twice the work. Needs VNNI, so Q4_0 and Q8_0
// are both offset formats here.
inline __m512i load_pair(const VecStore& v, size_t i) {
  return _mm512_load_si512(reinterpret_cast<const __m512i*>(v.bytes(2 * i)));
}

template <class F, int T>
void panel_tile_wide(int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const float* dy,
                     const int32_t* corr, int64_t ld, float* out, size_t out_stride) {
  static_assert(F::kOffset, "the wide tile needs vpdpbusd's unsigned weights");
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const block_q8_0*>(acts + size_t(t) * act_stride)[b].qs;
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int g = 0; g < 8; ++g) {
      const __m512i w = load_pair(p.codes, size_t(b) * 8 + size_t(g));
      for (int t = 0; t < T; ++t) s[t] = _mm512_dpbusd_epi32(s[t], w, _mm512_set1_epi32(load_i32(y[t] + 4 * g)));
    }
    const __m512 dw = _mm512_loadu_ps(&p.d[size_t(b) * 16]);
    for (int t = 0; t < T; ++t) {
      const __m512i si = _mm512_sub_epi32(s[t], _mm512_set1_epi32(corr[t * ld + b]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si), _mm512_mul_ps(dw, _mm512_set1_ps(dy[t * ld + b])), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + size_t(t) * out_stride, acc[t]);
}

template <class F, int T>
void kpanel_tile_wide(int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, float* out,
                      size_t out_stride, const uint8_t* next, size_t next_bytes) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  size_t ahead = 0;
  for (int64_t i = 0; i < nb; ++i) {
    ahead = prefetch_share(next, next_bytes, i, nb, ahead);
    const block_q8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = act_row(acts, act_stride, t) + i;
    __m512i s32[T];
    for (int t = 0; t < T; ++t) s32[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int k = 0; k < 16; ++k) {  // 16-element groups
      const __m512i sc = load_pair(p.sc, size_t(i) * 16 + size_t(k));
      for (int g0 = 0; g0 < 4; g0 += F::kGroupsPerSum) {
        __m512i s16[T];
        for (int t = 0; t < T; ++t) s16[t] = _mm512_setzero_si512();
        for (int g = g0; g < g0 + F::kGroupsPerSum; ++g) {
          const __m512i w = load_pair(p.codes, size_t(i) * 64 + size_t(k) * 4 + size_t(g));
          for (int t = 0; t < T; ++t)
            s16[t] = _mm512_add_epi16(s16[t], _mm512_maddubs_epi16(w, _mm512_set1_epi32(load_i32(y[t]->qs + 16 * k + 4 * g))));
        }
        for (int t = 0; t < T; ++t) s32[t] = _mm512_dpwssd_epi32(s32[t], s16[t], sc);
      }
    }
    const __m512 d = _mm512_loadu_ps(&p.d[size_t(i) * 16]);
    const __m512 dm = _mm512_loadu_ps(&p.dm[size_t(i) * 16]);
    for (int t = 0; t < T; ++t) {
      __m512i msum = _mm512_setzero_si512();
      for (int q = 0; q < 8; ++q) msum = _mm512_dpwssd_epi32(msum, load_pair(p.m, size_t(i) * 8 + size_t(q)),
                                                             _mm512_set1_epi32(load_i32(y[t]->bsums + 2 * q)));
      const __m512 yd = _mm512_set1_ps(y[t]->d);
      if constexpr (F::kSameScale) {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s32[t], msum)), _mm512_mul_ps(d, yd), acc[t]);
      } else {
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s32[t]), _mm512_mul_ps(d, yd), acc[t]);
        acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dm, yd), acc[t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + size_t(t) * out_stride, acc[t]);
}
#endif

// ---------------------------------------------------------------- the driver
// The k-quants need nothing per activation block beyond what Q8_K stores.
struct NoActScales {
  void prepare(const uint8_t*, size_t, int, int64_t, int) {}
};

// The tiles a GEMM runs, one tag per panel height and register width: 8
// rows in 256-bit registers; 16 rows (two 8-row panels side by side) as two
// 256-bit halves, the pair tile; 16 rows in one 512-bit vector (avx512_zmm).
// kIndex: the tag's row in `below`.
struct Rows8 {
  static constexpr int kHalves = 1, kIndex = 0;
  template <class F>
  static constexpr int kTokenTile = F::kTokenTile;
  template <class F>
  static constexpr int kMinTokens = F::kMinTokens;
};
struct Pair16 {
  static constexpr int kHalves = 2, kIndex = 1;
  template <class F>
  static constexpr int kTokenTile = kTokenTilePair;
  template <class F>
  static constexpr int kMinTokens = F::kMinTokensPair;
};
struct Zmm16 {
  static constexpr int kHalves = 2, kIndex = 2;
  template <class F>
  static constexpr int kTokenTile = kTokenTileWide;
  template <class F>
  static constexpr int kMinTokens = F::kMinTokensWide;
};

// Packs 8 * halves rows of Q4_0 or Q8_0 into a panel, storing through one
// pointer to the codes (a store through the vector container made GCC
// reload the buffer's address after each one).
template <class F>
void pack_rows(const uint8_t* w, size_t stride, int64_t nb, int halves, Panel& p) {
  uint8_t* codes = p.codes.bytes(0);
  float* d = p.d.data();
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < halves; ++h) {
      __m256i v[8];
      F::pack8(w + size_t(8 * h) * stride, stride, b, v, d + (size_t(b) * size_t(halves) + size_t(h)) * kPanelRows);
      for (int g = 0; g < 8; ++g)
        _mm256_store_si256(reinterpret_cast<__m256i*>(codes + 32 * ((size_t(b) * 8 + size_t(g)) * size_t(halves) + size_t(h))), v[g]);
    }
  }
}
// The k-quants' (KFormat::pack, above).
template <class F>
void pack_rows(const uint8_t* w, size_t stride, int64_t nb, int halves, KPanel& p) {
  F::pack(w, stride, nb, halves, p);
}

// One tile of T activation rows (starting at row a) against a panel.
template <class F, int T>
void run_tile(Rows8, int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const ActScales& s, int a,
              float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  panel_tile<F, T>(nb, p, acts, act_stride, s.d.data() + a * nb, F::kOffset ? s.corr.data() + a * nb : nullptr, nb,
                   out, out_stride, next, next_bytes);
}
template <class F, int T>
void run_tile(Rows8, int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, const NoActScales&, int,
              float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  kpanel_tile<F, T>(nb, p, acts, act_stride, out, out_stride, next, next_bytes);
}
template <class F, int T>
void run_tile(Pair16, int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const ActScales& s, int a,
              float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  panel_tile_pair<F, T>(nb, p, acts, act_stride, s.d.data() + a * nb, s.corr.data() + a * nb, nb, out, out_stride,
                        next, next_bytes);
}
#if defined(SC_QUANT_GEMM_FILL_WIDE)
template <class F, int T>
void run_tile(Zmm16, int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const ActScales& s, int a,
              float* out, size_t out_stride, const uint8_t*, size_t) {
  panel_tile_wide<F, T>(nb, p, acts, act_stride, s.d.data() + a * nb, s.corr.data() + a * nb, nb, out, out_stride);
}
template <class F, int T>
void run_tile(Zmm16, int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, const NoActScales&, int,
              float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  kpanel_tile_wide<F, T>(nb, p, acts, act_stride, out, out_stride, next, next_bytes);
}
#endif

// The tile of t activation rows (1 <= t <= the format's tile), so that a
// call's rows split into tiles of nearly equal size: a 6-row tile and two
// single rows for 8 tokens reread the panel 3 times, at a third of the
// work per weight load in the singles. (Zen 3, Engine.step, 1B Q4_K_M, 16
// sequences, 6 + 6 + 4 singles / 6 + 5 + 5: best 283-344 / 261-278 ms.)
template <class F>
using TileFn = void (*)(int64_t, const typename F::PanelT&, const uint8_t*, size_t, const typename F::Act&, int,
                        float*, size_t, const uint8_t*, size_t);
template <class F, class Tiles, int T>
void tile_of(int64_t nb, const typename F::PanelT& p, const uint8_t* acts, size_t act_stride, const typename F::Act& s,
             int a, float* out, size_t out_stride, const uint8_t* next, size_t next_bytes) {
  run_tile<F, T>(Tiles(), nb, p, acts, act_stride, s, a, out, out_stride, next, next_bytes);
}
template <class F, class Tiles, int... T>
TileFn<F> tile_fn_of(int t, std::integer_sequence<int, T...>) {
  static constexpr TileFn<F> fns[] = {tile_of<F, Tiles, T + 1>...};
  return fns[t - 1];
}
template <class F, class Tiles>
TileFn<F> tile_fn(int t) {
  return tile_fn_of<F, Tiles>(t, std::make_integer_sequence<int, Tiles::template kTokenTile<F>>());
}

// What a GEMM hands the rest to (decode, and rows that do not fill a
// panel): the level's row kernels below the 8-row GEMM, the 8-row GEMM below
// the 16-row ones.
QuantDotFn below[3][kQuantSlots];  // [Tiles::kIndex]

template <class F, class Tiles>
void quant_gemm(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                int n_act, float* out, size_t out_stride) {
  constexpr int H = Tiles::kHalves, kRows = kPanelRows * H;
  const int n_panel_rows = n_act >= Tiles::template kMinTokens<F> ? n_w / kRows * kRows : 0;
  const uint8_t* wp = static_cast<const uint8_t*>(w);
  const uint8_t* xp = static_cast<const uint8_t*>(acts);
  if (n_panel_rows > 0) {
    const int64_t nb = n / F::kBlock;
    thread_local typename F::PanelT panel;
    thread_local typename F::Act scales;
    panel.resize(nb, H);
    scales.prepare(xp, act_stride, n_act, nb, F::kZero);
    // balanced tiles, the same for every panel: the first n_act % n_tiles
    // take one row more (8 rows in 6-row tiles are 4 + 4)
    constexpr int kTile = Tiles::template kTokenTile<F>;
    const int n_tiles = (n_act + kTile - 1) / kTile, rows_per_tile = n_act / n_tiles, n_larger = n_act % n_tiles;
    const TileFn<F> tile = tile_fn<F, Tiles>(rows_per_tile);
    const TileFn<F> larger_tile = n_larger > 0 ? tile_fn<F, Tiles>(rows_per_tile + 1) : tile;
    for (int r0 = 0; r0 < n_panel_rows; r0 += kRows) {
      // the next panel's rows, or none after the last
      const size_t next_bytes = r0 + kRows < n_panel_rows ? size_t(kRows) * w_stride : 0;
      pack_rows<F>(wp + size_t(r0) * w_stride, w_stride, nb, H, panel);
      for (int i = 0, a = 0; i < n_tiles; ++i) {
        (i < n_larger ? larger_tile : tile)(nb, panel, xp + size_t(a) * act_stride, act_stride, scales, a,
                                            out + size_t(a) * out_stride + r0, out_stride,
                                            wp + size_t(r0 + kRows) * w_stride, i == 0 ? next_bytes : 0);
        a += rows_per_tile + (i < n_larger);
      }
    }
  }
  if (n_panel_rows < n_w)
    below[Tiles::kIndex][F::kSlot](n, wp + size_t(n_panel_rows) * w_stride, w_stride, n_w - n_panel_rows, acts, act_stride,
                       n_act, out + n_panel_rows, out_stride);
}

// Installs the GEMM of Tiles for each format over the level's kernel, which it wraps.
template <class Tiles, class... F>
void install(CpuKernels& k) {
  for (int slot : {F::kSlot...}) below[Tiles::kIndex][slot] = k.quant_dot[slot];
  ((k.quant_dot[F::kSlot] = quant_gemm<F, Tiles>), ...);
}

}  // namespace

void SC_QUANT_GEMM_FILL(CpuKernels& k) {
  install<Rows8, Q4_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K>(k);
  // the 16-row pair tile for the offset formats (Q8_0 is one only with VNNI),
  // wrapping the 8-row GEMM for rows that do not fill 16 and few tokens
  if constexpr (kVnni)
    install<Pair16, Q4_0, Q8_0>(k);
  else
    install<Pair16, Q4_0>(k);
#if defined(SC_QUANT_GEMM_FILL_WIDE)
  // The k-quants take the 512-bit 16-row tiles at both AVX-512 levels: on a
  // Zen 4, which runs them at the 256-bit rate, they still issue half the
  // instructions, and a pair tile in 256-bit halves measured no faster than
  // the 8-row one (docs/ARCHITECTURE.md).
  install<Zmm16, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K>(k);
#endif
}
#if defined(SC_QUANT_GEMM_FILL_WIDE)
// avx512_zmm: the level above with Q4_0 and Q8_0 on 512-bit 16-row tiles
// too (its k-quants already are).
void SC_QUANT_GEMM_FILL_WIDE(CpuKernels& k) { install<Zmm16, Q4_0, Q8_0>(k); }
#endif

}  // namespace sc

#endif
