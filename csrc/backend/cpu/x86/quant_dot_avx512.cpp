// AVX-512 + VNNI quantized dot products: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights, Q8_0/Q8_1 activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
// gcc 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialised
// variable) as the unused merge source, which -W(maybe-)uninitialized
// reports wherever they are inlined (gcc bug 105593), so both are off for
// this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/x86/prefetch_x86.h"
#include "format/quant.h"

namespace sc {
namespace {

// Two blocks per zmm: lanes 0..7 hold block i's partial sums, lanes 8..15
// block i+1's. A pair of blocks is read with one 64-byte load (which may
// run past the pair: the driver keeps it inside the row) and rearranged
// with word permutes: every legacy block has an even size, so its scales
// and codes sit on 16-bit boundaries.

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

// Word indices for _mm512_permutexvar_epi16, built at compile time.
struct WordIndex {
  alignas(64) uint16_t v[32];
};
// The 16 code bytes of block 0 (from word q0) into 128-bit lanes 0 and 1,
// those of block 1 (from word q1) into lanes 2 and 3.
constexpr WordIndex nibble_index(int q0, int q1) {
  WordIndex r{};
  for (int i = 0; i < 8; ++i) r.v[i] = r.v[8 + i] = uint16_t(q0 + i), r.v[16 + i] = r.v[24 + i] = uint16_t(q1 + i);
  return r;
}
// Lanes 0..7 word d0, 8..15 word d1, 16..23 word m0, 24..31 word m1 (scales
// as halves: converted, the low 256 bits give [d0 x8, d1 x8], the high [m0 x8, m1 x8]).
constexpr WordIndex scale_index(int d0, int d1, int m0, int m1) {
  WordIndex r{};
  for (int i = 0; i < 8; ++i)
    r.v[i] = uint16_t(d0), r.v[8 + i] = uint16_t(d1), r.v[16 + i] = uint16_t(m0), r.v[24 + i] = uint16_t(m1);
  return r;
}

inline __m512i load_index(const WordIndex& w) { return _mm512_load_si512(w.v); }

inline __m512 halves_lo(__m512i h) { return _mm512_cvtph_ps(_mm512_castsi512_si256(h)); }
inline __m512 halves_hi(__m512i h) { return _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)); }

// The 32-byte code arrays at p0 and p1, one per half.
inline __m512i load2x32(const void* p0, const void* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(p0))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(p1)), 1);
}

// The nibbles of two Q4/Q5 blocks in element order, [lo(q0) hi(q0) lo(q1) hi(q1)]:
// each code array is copied into two 128-bit lanes, and a 64-bit shift by 4
// in the odd lanes brings the high nibbles down.
inline __m512i nibbles2(__m512i raw, const WordIndex& idx) {
  const __m512i v = _mm512_permutexvar_epi16(load_index(idx), raw);
  return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0F));
}

// Q5: adds 16 to the code of element j where bit j of the blocks' qh is set.
inline __m512i add_fifth_bits(__m512i nib, const uint8_t* qh0, const uint8_t* qh1) {
  uint32_t b0, b1;
  std::memcpy(&b0, qh0, 4);
  std::memcpy(&b1, qh1, 4);
  const __mmask64 m = _mm512_kunpackd(_cvtu32_mask32(b1), _cvtu32_mask32(b0));
  return _mm512_mask_add_epi8(nib, m, nib, _mm512_set1_epi8(16));
}

// ---------------------------------------------------------------- weight formats
// VNNI multiplies u8 x s8, so every format keeps its weight codes unsigned:
// Q4_0 and Q5_0 codes are 0..15 / 0..31 with an offset of 8 / 16, and Q8_0
// codes get 128 added (xor 0x80). The offset times sum(y) is computed once
// per activation block (dpbusd of the offset bytes with y) and seeds the
// accumulator of every weight row's dpbusd, so the per-row work is one
// dpbusd. Q4_1/Q5_1 add m * s (s = d_y * sum(q_y)) into lane 0 of each half.
// Every load_w / load_y takes the address of the first block of a pair
// and may read 64 bytes from there.

struct WCodes {
  __m512i u;
  __m512 d;
};
struct WMin {
  __m512i u;
  __m512 d, m;
};

struct Act0 {  // two Q8_0 blocks against an offset format
  __m512i q, seed;  // seed: -offset * sum(q) per group of 4
  __m512 d;
};
template <uint8_t kOffset>
inline Act0 load_act_offset(const uint8_t* p) {
  static constexpr WordIndex kScales = scale_index(0, 17, 0, 17);
  Act0 y;
  y.q = load2x32(p + 2, p + 36);
  y.seed = _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(kOffset)), y.q));
  y.d = halves_lo(_mm512_permutexvar_epi16(load_index(kScales), _mm512_loadu_si512(p)));
  return y;
}

struct Act1 {  // two Q8_1 blocks
  __m512i q;
  __m512 d, s;  // s in lanes 0 and 8, zeros elsewhere
};
inline Act1 load_act_q8_1(const uint8_t* p) {
  static constexpr WordIndex kScales = scale_index(0, 18, 1, 19);
  Act1 y;
  y.q = load2x32(p + 4, p + 40);
  const __m512i h = _mm512_maskz_permutexvar_epi16(0x0101FFFF, load_index(kScales), _mm512_loadu_si512(p));
  y.d = halves_lo(h);
  y.s = halves_hi(h);
  return y;
}

struct Q4_0 {
  using block = block_q4_0;
  using W = WCodes;
  using Y = Act0;
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const uint8_t* p) {
    static constexpr WordIndex kNib = nibble_index(1, 10), kScales = scale_index(0, 9, 0, 9);
    const __m512i raw = _mm512_loadu_si512(p);
    return {nibbles2(raw, kNib), halves_lo(_mm512_permutexvar_epi16(load_index(kScales), raw))};
  }
  static Y load_y(const uint8_t* p) { return load_act_offset<8>(p); }
  static __m512i dot(const W& w, const Y& y) { return _mm512_dpbusd_epi32(y.seed, w.u, y.q); }
};

struct Q5_0 {
  using block = block_q5_0;
  using W = WCodes;
  using Y = Act0;
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const uint8_t* p) {
    static constexpr WordIndex kNib = nibble_index(3, 14), kScales = scale_index(0, 11, 0, 11);
    const __m512i raw = _mm512_loadu_si512(p);
    return {add_fifth_bits(nibbles2(raw, kNib), p + 2, p + 24),
            halves_lo(_mm512_permutexvar_epi16(load_index(kScales), raw))};
  }
  static Y load_y(const uint8_t* p) { return load_act_offset<16>(p); }
  static __m512i dot(const W& w, const Y& y) { return _mm512_dpbusd_epi32(y.seed, w.u, y.q); }
};

struct Q8_0 {
  using block = block_q8_0;
  using W = WCodes;
  using Y = Act0;
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const uint8_t* p) {
    static constexpr WordIndex kScales = scale_index(0, 17, 0, 17);
    return {_mm512_xor_si512(load2x32(p + 2, p + 36), _mm512_set1_epi8(char(0x80))),
            halves_lo(_mm512_permutexvar_epi16(load_index(kScales), _mm512_loadu_si512(p)))};
  }
  static Y load_y(const uint8_t* p) { return load_act_offset<128>(p); }
  static __m512i dot(const W& w, const Y& y) { return _mm512_dpbusd_epi32(y.seed, w.u, y.q); }
};

struct Q4_1 {
  using block = block_q4_1;
  using W = WMin;
  using Y = Act1;
  static constexpr bool kMin = true;
  static constexpr size_t kActBytes = sizeof(block_q8_1);
  static W load_w(const uint8_t* p) {
    static constexpr WordIndex kNib = nibble_index(2, 12), kScales = scale_index(0, 10, 1, 11);
    const __m512i raw = _mm512_loadu_si512(p);
    const __m512i h = _mm512_permutexvar_epi16(load_index(kScales), raw);
    return {nibbles2(raw, kNib), halves_lo(h), halves_hi(h)};
  }
  static Y load_y(const uint8_t* p) { return load_act_q8_1(p); }
  static __m512i dot(const W& w, const Y& y) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.u, y.q); }
};

struct Q5_1 {
  using block = block_q5_1;
  using W = WMin;
  using Y = Act1;
  static constexpr bool kMin = true;
  static constexpr size_t kActBytes = sizeof(block_q8_1);
  static W load_w(const uint8_t* p) {
    static constexpr WordIndex kNib = nibble_index(4, 16), kScales = scale_index(0, 12, 1, 13);
    const __m512i raw = _mm512_loadu_si512(p);
    const __m512i h = _mm512_permutexvar_epi16(load_index(kScales), raw);
    return {add_fifth_bits(nibbles2(raw, kNib), p + 4, p + 28), halves_lo(h), halves_hi(h)};
  }
  static Y load_y(const uint8_t* p) { return load_act_q8_1(p); }
  static __m512i dot(const W& w, const Y& y) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.u, y.q); }
};

// ---------------------------------------------------------------- the GEMM driver
// A register tile of R weight rows x A activation rows over pairs of blocks:
// each weight pair is decoded once for the A activations, each activation
// pair once for the R rows; the float accumulators are reduced at the end.
template <class F, int R, int A>
inline void tile_step(const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, __m512 (&acc)[R][A]) {
  typename F::W wb[R];
  for (int r = 0; r < R; ++r) wb[r] = F::load_w(w + r * w_stride);
  for (int a = 0; a < A; ++a) {
    const typename F::Y y = F::load_y(x + a * x_stride);
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_cvtepi32_ps(F::dot(wb[r], y));
      acc[r][a] = _mm512_fmadd_ps(s, _mm512_mul_ps(wb[r].d, y.d), acc[r][a]);
      if constexpr (F::kMin) acc[r][a] = _mm512_fmadd_ps(wb[r].m, y.s, acc[r][a]);
    }
  }
}

template <class F, int R, int A>
void dot_tile(int64_t nb, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, float* out,
              size_t out_stride) {
  constexpr int64_t kWB = sizeof(typename F::block), kXB = F::kActBytes;
  // pairs whose 64-byte loads stay inside the rows; the last few blocks
  // (fewer than kRest) are copied into zero-padded buffers, an odd one
  // paired with a zero block (scale 0, codes 0)
  constexpr int64_t kRest = (64 + kWB - 1) / kWB + 2;
  __m512 acc[R][A];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) acc[r][a] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i * kWB + 64 <= nb * kWB && i + 2 <= nb; i += 2) {
    if constexpr (R == 1) {  // decode, and the few tokens of dot_rows_few
      prefetch_stream(w + i * kWB);
      if constexpr (2 * kWB > 64) prefetch_stream(w + i * kWB + 64);
    }
    tile_step<F, R, A>(w + i * kWB, w_stride, x + i * kXB, x_stride, acc);
  }
  if (i < nb) {
    const int64_t rest = nb - i;
    alignas(64) uint8_t wt[R][kRest * kWB + 64] = {}, xt[A][kRest * kXB + 64] = {};
    for (int r = 0; r < R; ++r) std::memcpy(wt[r], w + r * w_stride + i * kWB, size_t(rest * kWB));
    for (int a = 0; a < A; ++a) std::memcpy(xt[a], x + a * x_stride + i * kXB, size_t(rest * kXB));
    for (int64_t j = 0; j < rest; j += 2)
      tile_step<F, R, A>(wt[0] + j * kWB, sizeof(wt[0]), xt[0] + j * kXB, sizeof(xt[0]), acc);
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) out[a * out_stride + r] = _mm512_reduce_add_ps(acc[r][a]);
}

// Every row against activations [0, A): tiles of R rows, then halving tiles for the rest.
template <class F, int R, int A>
void dot_rows(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, size_t x_stride, float* out,
              size_t out_stride) {
  int r = 0;
  for (; r + R <= n_w; r += R)
    dot_tile<F, R, A>(nb, w + r * w_stride, w_stride, x, x_stride, out + r, out_stride);
  if constexpr (R > 1)
    if (r < n_w)
      dot_rows<F, R / 2, A>(nb, w + r * w_stride, w_stride, n_w - r, x, x_stride, out + r, out_stride);
}

// ---------------------------------------------------------------- Q4_0 decode, two blocks per step
// AVX2's pair kernel (quant_dot_avx2.cpp) with VNNI in 256-bit registers:
// one register holds the codes of blocks 2j and 2j+1 (low nibbles: elements
// 0..15 of each, high nibbles: 16..31), the activation row is rearranged
// once per call to match, and the offset correction -8 * sum(y) per dword
// lane seeds the first dpbusd, so a pair costs two dpbusd where AVX2 needs
// two maddubs, an add, a subtract and a madd. 256-bit, because on a core
// that runs 512-bit vectors as two halves (Zen 4) the zmm kernel above,
// with its word permutes per pair, decoded 1B-shape Q4_0 at 23-29 tok/s
// against AVX2's 34-38.
struct ActPairVnni {
  int8_t lo[32];     // elements 0..15 of block 2j, then of block 2j+1
  int8_t hi[32];     // elements 16..31 of each
  int32_t seed[8];   // -8 * (the 4 lo + the 4 hi bytes of the lane)
  float d[8];        // d of block 2j x4, d of block 2j+1 x4
};

void arrange_pairs(int64_t n_pairs, const block_q8_0* y, ActPairVnni* out) {
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t j = 0; j < n_pairs; ++j) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[2 * j].qs));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[2 * j + 1].qs));
    const __m256i lo = _mm256_permute2x128_si256(a, b, 0x20), hi = _mm256_permute2x128_si256(a, b, 0x31);
    const __m256i sum8 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, lo), eight, hi);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].lo), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].hi), hi);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].seed), _mm256_sub_epi32(_mm256_setzero_si256(), sum8));
    _mm256_storeu_ps(out[j].d, _mm256_set_m128(_mm_set1_ps(fp16(y[2 * j + 1].d)), _mm_set1_ps(fp16(y[2 * j].d))));
  }
}

// acc[t] + blocks 2j and 2j+1 of a row against activation row t (pairs
// t_stride apart), for NT rows: the weights are unpacked once for all of
// them (lanes 0..3 sum block 2j, 4..7 block 2j+1).
template <int NT>
inline void dot_pair_q4_0(const block_q4_0* b, const ActPairVnni* y, int64_t t_stride, __m256* acc) {
  const __m256i v = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)), 1);
  const __m256i m = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
  const __m256 dw = _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_set1_epi16(short(b[0].d)), _mm_set1_epi16(short(b[1].d))));
  for (int t = 0; t < NT; ++t) {
    const ActPairVnni& yt = y[t * t_stride];
    const __m256i lo_y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yt.lo));
    const __m256i hi_y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yt.hi));
    const __m256i seed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yt.seed));
    const __m256i s = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(seed, lo, lo_y), hi, hi_y);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_loadu_ps(yt.d)), acc[t]);
  }
}

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Q4_0 decode of NT tokens: the pair kernel, each weight pair unpacked once
// for all of them. (Through the 4-row tiles, 2 tokens took 2.7x one token's
// time: one thread, 16384 x 2048, Zen 4, 23 against 40 GMAC/s; now 64.)
template <int NT>
void dot_rows_few_q4_0(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, size_t x_stride,
                       float* out, size_t out_stride) {
  thread_local std::vector<ActPairVnni> pairs;
  const int64_t n_pairs = nb / 2;
  if (int64_t(pairs.size()) < NT * n_pairs) pairs.resize(size_t(NT * n_pairs));
  for (int t = 0; t < NT; ++t)
    arrange_pairs(n_pairs, reinterpret_cast<const block_q8_0*>(x + t * x_stride), pairs.data() + t * n_pairs);
  for (int r = 0; r < n_w; ++r) {
    const block_q4_0* row = reinterpret_cast<const block_q4_0*>(w + r * w_stride);
    __m256 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= n_pairs; j += 2) {
      prefetch_stream(row + 2 * j);
      dot_pair_q4_0<NT>(row + 2 * j, pairs.data() + j, n_pairs, acc0);
      dot_pair_q4_0<NT>(row + 2 * j + 2, pairs.data() + j + 1, n_pairs, acc1);
    }
    if (j < n_pairs) dot_pair_q4_0<NT>(row + 2 * j, pairs.data() + j, n_pairs, acc0);
    for (int t = 0; t < NT; ++t) {
      float* o = out + t * out_stride + r;
      *o = hsum256(_mm256_add_ps(acc0[t], acc1[t]));
      if (nb % 2) {  // the odd last block: a one-block row for the tile kernel
        float last;
        dot_tile<Q4_0, 1, 1>(1, w + r * w_stride + (nb - 1) * sizeof(block_q4_0), 0,
                             x + t * x_stride + (nb - 1) * sizeof(block_q8_0), 0, &last, 0);
        *o += last;
      }
    }
  }
}

// Decode (NT = 1) and a server's batched decode of 2-3 tokens against
// activation rows x (from 4 tokens the 4 x 4 tiles below, or for Q4_0 and
// Q8_0 the panel GEMM of quant_gemm_x86.h once it pays): the one-row tile,
// except for Q4_0 (above).
template <class F, int NT>
void dot_rows_few(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, size_t x_stride,
                  float* out, size_t out_stride) {
  // Q8_0's blocks unpack to nothing, so its rows stream at memory speed
  // from one row at a time (with the decode prefetch); the formats that
  // unpack nibbles or fifth bits gain more from sharing each activation
  // load among 4 rows (one thread, 16384 x 2048, Zen 4, GMAC/s, 4-row / 1-row
  // tiles, 2 and 3 tokens: Q8_0 21.8 / 28.8, 27.5 / 30.1; Q5_0 21.8 /
  // 23.1, 29.5 / 23.6; Q4_1 19.2 / 18.9, 26.9 / 20.7)
  constexpr int kRows = NT == 1 || std::is_same_v<F, Q8_0> ? 1 : 4;
  if constexpr (std::is_same_v<F, Q4_0>)
    dot_rows_few_q4_0<NT>(nb, w, w_stride, n_w, x, x_stride, out, out_stride);
  else
    dot_rows<F, kRows, NT>(nb, w, w_stride, n_w, x, x_stride, out, out_stride);
}

// Activations go in chunks small enough to stay in L2 while the rows stream
// past; within a chunk, 4 x 4 tiles. Decode goes one row at a time: 8-row
// tiles measured 1.7x slower for Q8_0 (17 vs 30 GB/s, 2048-wide rows, Zen 5).
template <class F>
void quant_dot_avx512(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                      int n_act, float* out, size_t out_stride) {
  constexpr int kChunk = 32;
  const int64_t nb = n / 32;
  const uint8_t* wp = static_cast<const uint8_t*>(w);
  const uint8_t* xp = static_cast<const uint8_t*>(acts);
  for (int a0 = 0; a0 < n_act; a0 += kChunk) {
    const int a1 = n_act < a0 + kChunk ? n_act : a0 + kChunk;
    int a = a0;
    for (; a + 4 <= a1; a += 4)
      dot_rows<F, 4, 4>(nb, wp, w_stride, n_w, xp + a * act_stride, act_stride, out + a * out_stride, out_stride);
    const uint8_t* x = xp + a * act_stride;
    float* o = out + a * out_stride;
    switch (a1 - a) {
      case 3: dot_rows_few<F, 3>(nb, wp, w_stride, n_w, x, act_stride, o, out_stride); break;
      case 2: dot_rows_few<F, 2>(nb, wp, w_stride, n_w, x, act_stride, o, out_stride); break;
      case 1: dot_rows_few<F, 1>(nb, wp, w_stride, n_w, x, act_stride, o, out_stride); break;
      default: break;
    }
  }
}

// At the avx512_zmm level (full-width 512-bit cores) the zmm tiles keep
// Q4_0 calls of 4-7 activation rows (a server's batched decode): on a
// 2-core Zen 5 (6 layers of the 1B shape, GMAC/s, medians of 3) they ran 4
// tokens at 124 GMAC/s against a few-token GEMM's 54 (since removed), and
// 8 at 134 against 110; from 8 tokens that level's 16-row panel GEMM takes
// over. At the avx512 level the 8-row panel GEMM takes Q4_0 from 4 rows.
constexpr QuantDotFn dot_q4_0_q8_0_avx512_tiles = quant_dot_avx512<Q4_0>;

// The kernels by name (one instance of the driver per weight format).
constexpr QuantDotFn dot_q4_1_q8_1_avx512 = quant_dot_avx512<Q4_1>;
constexpr QuantDotFn dot_q5_0_q8_0_avx512 = quant_dot_avx512<Q5_0>;
constexpr QuantDotFn dot_q5_1_q8_1_avx512 = quant_dot_avx512<Q5_1>;
constexpr QuantDotFn dot_q8_0_q8_0_avx512 = quant_dot_avx512<Q8_0>;

// The Q8_0/Q8_1 activation quantizers are AVX2's (this level's table starts
// as a copy of that one): quantizing a row costs n, the products n * rows.

}  // namespace

void fill_quant_legacy_avx512_zmm(CpuKernels& k) { k.quant_dot[kQ4_0] = dot_q4_0_q8_0_avx512_tiles; }

void fill_quant_legacy_avx512(CpuKernels& k) {
  k.quant_dot[kQ4_0] = quant_dot_avx512<Q4_0>;
  k.quant_dot[kQ4_1] = dot_q4_1_q8_1_avx512;
  k.quant_dot[kQ5_0] = dot_q5_0_q8_0_avx512;
  k.quant_dot[kQ5_1] = dot_q5_1_q8_1_avx512;
  k.quant_dot[kQ8_0] = dot_q8_0_q8_0_avx512;
}

}  // namespace sc

#pragma GCC diagnostic pop

#else

namespace sc {
void fill_quant_legacy_avx512(CpuKernels&) {}
void fill_quant_legacy_avx512_zmm(CpuKernels&) {}
}  // namespace sc

#endif
