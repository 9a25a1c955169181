// AVX2 + FMA + F16C quantized dot products: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights, Q8_0/Q8_1 activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "backend/cpu/x86/prefetch_x86.h"
#include "format/quant.h"

namespace sc {
namespace {

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }
// 8 x the half at p (a word broadcast straight from memory, then F16C)
inline __m256 fp16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_set1_epi16(short(*p))); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// The 32 nibbles of a Q4/Q5 block in element order: the low nibbles of
// qs[0..15] are elements 0..15, the high nibbles elements 16..31.
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

// Q5's fifth bits as bytes: 0x10 in byte j where bit j of the (little-endian) qh is set.
inline __m256i fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // byte j takes byte j/8 of qh, then tests bit j%8 of it
  const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), spread), bit);
  return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

// ---------------------------------------------------------------- weight formats
// Each format decodes one weight block (W) and one activation block (Y) into
// registers; dot(W, Y) is the block's exact integer sum spread over 8 int32
// lanes. Q4_0/Q5_0 keep their codes unsigned (maddubs wants u8 x s8) and
// subtract offset * sum(y), precomputed per activation block as int16 pairs;
// the products stay below 2^15 (31 * 127 * 2), so maddubs never saturates.
// Q8_0 codes are signed: |w| x (y * sign(w)) instead.
// Q4_1/Q5_1 add m * s (s = d_y * sum(q_y)) into lane 0 only.

struct Act0 {  // a Q8_0 block against an offset format
  __m256i q, corr;
  __m256 d;
};
template <int kOffset>
inline Act0 load_act_offset(const uint8_t* p) {
  const block_q8_0* b = reinterpret_cast<const block_q8_0*>(p);
  Act0 y;
  y.q = load32(b->qs);
  y.corr = _mm256_maddubs_epi16(_mm256_set1_epi8(kOffset), y.q);
  y.d = fp16x8(&b->d);
  return y;
}

struct Act1 {  // a Q8_1 block
  __m256i q;
  __m256 d, s;  // s in lane 0, zeros elsewhere
};
inline Act1 load_act_q8_1(const uint8_t* p) {
  const block_q8_1* b = reinterpret_cast<const block_q8_1*>(p);
  Act1 y;
  y.q = load32(b->qs);
  y.d = fp16x8(&b->d);
  y.s = _mm256_zextps128_ps256(_mm_set_ss(fp16(b->s)));
  return y;
}

struct WOffset {
  __m256i u;
  __m256 d;
};
inline __m256i dot_offset(const WOffset& w, const Act0& y) {
  const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(w.u, y.q), y.corr);
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

struct WMin {
  __m256i u;
  __m256 d, m;
};
inline __m256i dot_min(const WMin& w, const Act1& y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w.u, y.q), _mm256_set1_epi16(1));
}

struct Q4_0 {
  using block = block_q4_0;
  using W = WOffset;
  using Y = Act0;
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const block* b) { return {nibbles(b->qs), fp16x8(&b->d)}; }
  static Y load_y(const uint8_t* p) { return load_act_offset<8>(p); }
  static __m256i dot(const W& w, const Y& y) { return dot_offset(w, y); }
};

struct Q5_0 {
  using block = block_q5_0;
  using W = WOffset;
  using Y = Act0;
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const block* b) {
    return {_mm256_or_si256(nibbles(b->qs), fifth_bits(b->qh)), fp16x8(&b->d)};
  }
  static Y load_y(const uint8_t* p) { return load_act_offset<16>(p); }
  static __m256i dot(const W& w, const Y& y) { return dot_offset(w, y); }
};

struct Q4_1 {
  using block = block_q4_1;
  using W = WMin;
  using Y = Act1;
  static constexpr bool kMin = true;
  static constexpr size_t kActBytes = sizeof(block_q8_1);
  static W load_w(const block* b) {
    return {nibbles(b->qs), fp16x8(&b->d), fp16x8(&b->m)};
  }
  static Y load_y(const uint8_t* p) { return load_act_q8_1(p); }
  static __m256i dot(const W& w, const Y& y) { return dot_min(w, y); }
};

struct Q5_1 {
  using block = block_q5_1;
  using W = WMin;
  using Y = Act1;
  static constexpr bool kMin = true;
  static constexpr size_t kActBytes = sizeof(block_q8_1);
  static W load_w(const block* b) {
    return {_mm256_or_si256(nibbles(b->qs), fifth_bits(b->qh)), fp16x8(&b->d),
            fp16x8(&b->m)};
  }
  static Y load_y(const uint8_t* p) { return load_act_q8_1(p); }
  static __m256i dot(const W& w, const Y& y) { return dot_min(w, y); }
};

struct Q8_0 {
  using block = block_q8_0;
  struct W {
    __m256i q, a;  // codes and their magnitudes
    __m256 d;
  };
  struct Y {
    __m256i q;
    __m256 d;
  };
  static constexpr bool kMin = false;
  static constexpr size_t kActBytes = sizeof(block_q8_0);
  static W load_w(const block* b) {
    const __m256i q = load32(b->qs);
    return {q, _mm256_sign_epi8(q, q), fp16x8(&b->d)};
  }
  static Y load_y(const uint8_t* p) {
    const block_q8_0* b = reinterpret_cast<const block_q8_0*>(p);
    return {load32(b->qs), fp16x8(&b->d)};
  }
  // |w| * (y * sign(w)): at most 127 * 127 * 2 per pair, no saturation
  static __m256i dot(const W& w, const Y& y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.a, _mm256_sign_epi8(y.q, w.q)), _mm256_set1_epi16(1));
  }
};

// ---------------------------------------------------------------- the GEMM driver
// A register tile of R weight rows x A activation rows: each weight block is
// decoded once for the A activations, each activation block once for the R
// rows, and the float accumulators are reduced once at the end.
template <class F, int R, int A>
void dot_tile(int64_t nb, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, float* out,
              size_t out_stride) {
  using block = typename F::block;
  __m256 acc[R][A];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    typename F::W wb[R];
    for (int r = 0; r < R; ++r) wb[r] = F::load_w(reinterpret_cast<const block*>(w + r * w_stride) + i);
    for (int a = 0; a < A; ++a) {
      const typename F::Y y = F::load_y(x + a * x_stride + size_t(i) * F::kActBytes);
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_cvtepi32_ps(F::dot(wb[r], y));
        acc[r][a] = _mm256_fmadd_ps(s, _mm256_mul_ps(wb[r].d, y.d), acc[r][a]);
        if constexpr (F::kMin) acc[r][a] = _mm256_fmadd_ps(wb[r].m, y.s, acc[r][a]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) out[a * out_stride + r] = hsum(acc[r][a]);
}

// Every row against activations [0, A), one row at a time. Multi-row tiles
// (3 or 4 rows) measured 2-2.4x slower here, for decode and prompts alike
// (2048-wide rows, Zen 5: Q8_0 decode 11.5 -> 27 GB/s, prompt 42 -> 95
// GOP/s with one row): 16 ymm registers do not hold R weight blocks, their
// scales and R x A accumulators.
template <class F, int A>
void dot_rows(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, size_t x_stride, float* out,
              size_t out_stride) {
  for (int r = 0; r < n_w; ++r) dot_tile<F, 1, A>(nb, w + r * w_stride, w_stride, x, x_stride, out + r, out_stride);
}

// Decode: one row against one activation row, two accumulators (even and
// odd blocks), so that a block's FMA does not wait for the previous one's.
template <class F>
float dot_row(int64_t nb, const uint8_t* w, const uint8_t* x) {
  using block = typename F::block;
  const block* wb = reinterpret_cast<const block*>(w);
  const auto step = [&](int64_t i, __m256 acc) {
    const typename F::W wi = F::load_w(wb + i);
    const typename F::Y y = F::load_y(x + size_t(i) * F::kActBytes);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(wi, y)), _mm256_mul_ps(wi.d, y.d), acc);
    if constexpr (F::kMin) acc = _mm256_fmadd_ps(wi.m, y.s, acc);
    return acc;
  };
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    prefetch_stream(wb + i);
    acc0 = step(i, acc0);
    acc1 = step(i + 1, acc1);
  }
  if (i < nb) acc0 = step(i, acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

// ---------------------------------------------------------------- Q4_0 decode, two blocks per step
// One register holds the 16 code bytes of two consecutive blocks, so its low
// nibbles are elements 0..15 of both and its high nibbles elements 16..31.
// The activation row is rearranged once per call to match (ActPair), with
// the offset correction and the scales precomputed. That leaves about 9
// vector ops per block instead of 15: 1.33 against 2.37 ns per block and
// thread with the rows in L2 (Zen 3), so decode is bound by memory again.
struct ActPair {
  int8_t lo[32];     // elements 0..15 of block 2j, then of block 2j+1
  int8_t hi[32];     // elements 16..31 of each
  int16_t corr[16];  // 8 * (lo + hi) pairs: the offset-8 correction, per maddubs lane
  float d[8];        // d of block 2j x4, d of block 2j+1 x4
};

void arrange_pairs(int64_t n_pairs, const block_q8_0* y, ActPair* out) {
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t j = 0; j < n_pairs; ++j) {
    const __m256i a = load32(y[2 * j].qs), b = load32(y[2 * j + 1].qs);
    const __m256i lo = _mm256_permute2x128_si256(a, b, 0x20), hi = _mm256_permute2x128_si256(a, b, 0x31);
    const __m256i corr = _mm256_add_epi16(_mm256_maddubs_epi16(eight, lo), _mm256_maddubs_epi16(eight, hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].lo), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].hi), hi);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[j].corr), corr);
    _mm256_storeu_ps(out[j].d, _mm256_set_m128(_mm_set1_ps(fp16(y[2 * j + 1].d)), _mm_set1_ps(fp16(y[2 * j].d))));
  }
}

// Blocks 2j and 2j+1 of a row: 8 lanes, the first 4 summing block 2j.
inline __m256 dot_pair_q4_0(const block_q4_0* b, const ActPair& y) {
  const __m256i v = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs)));
  const __m256i m = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
  // each maddubs lane is at most 2 * 15 * 127, so the sum of two fits in int16
  __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, load32(y.lo)), _mm256_maddubs_epi16(hi, load32(y.hi)));
  p = _mm256_sub_epi16(p, load32(y.corr));
  const __m256i s = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  const __m256 dw = _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_set1_epi16(short(b[0].d)), _mm_set1_epi16(short(b[1].d))));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_loadu_ps(y.d)));
}

float dot_row_q4_0_pairs(int64_t nb, const block_q4_0* w, const ActPair* y, const uint8_t* x_q8) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t n_pairs = nb / 2;
  int64_t j = 0;
  for (; j + 2 <= n_pairs; j += 2) {
    prefetch_stream(w + 2 * j);
    acc0 = _mm256_add_ps(acc0, dot_pair_q4_0(w + 2 * j, y[j]));
    acc1 = _mm256_add_ps(acc1, dot_pair_q4_0(w + 2 * j + 2, y[j + 1]));
  }
  if (j < n_pairs) acc0 = _mm256_add_ps(acc0, dot_pair_q4_0(w + 2 * j, y[j]));
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  if (nb % 2)  // the odd last block: a one-block row for the plain kernel
    sum += dot_row<Q4_0>(1, reinterpret_cast<const uint8_t*>(w + nb - 1), x_q8 + size_t(nb - 1) * sizeof(block_q8_0));
  return sum;
}

// Decode of every row against activation row x: dot_row per row, except for
// Q4_0 (below).
template <class F>
void dot_rows_decode(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, float* out) {
  for (int r = 0; r < n_w; ++r) out[r] = dot_row<F>(nb, w + r * w_stride, x);
}

template <>
void dot_rows_decode<Q4_0>(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const uint8_t* x, float* out) {
  thread_local std::vector<ActPair> pairs;
  const int64_t n_pairs = nb / 2;
  if (int64_t(pairs.size()) < n_pairs) pairs.resize(size_t(n_pairs));
  arrange_pairs(n_pairs, reinterpret_cast<const block_q8_0*>(x), pairs.data());
  for (int r = 0; r < n_w; ++r)
    out[r] = dot_row_q4_0_pairs(nb, reinterpret_cast<const block_q4_0*>(w + r * w_stride), pairs.data(), x);
}

// Activations go in chunks small enough to stay in L2 while the rows stream
// past; within a chunk, groups of 4 (then the 1..3 left).
template <class F>
void quant_dot_avx2(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                    int n_act, float* out, size_t out_stride) {
  constexpr int kChunk = 32;
  const int64_t nb = n / 32;
  const uint8_t* wp = static_cast<const uint8_t*>(w);
  const uint8_t* xp = static_cast<const uint8_t*>(acts);
  for (int a0 = 0; a0 < n_act; a0 += kChunk) {
    const int a1 = n_act < a0 + kChunk ? n_act : a0 + kChunk;
    int a = a0;
    for (; a + 4 <= a1; a += 4)
      dot_rows<F, 4>(nb, wp, w_stride, n_w, xp + a * act_stride, act_stride, out + a * out_stride, out_stride);
    const uint8_t* x = xp + a * act_stride;
    float* o = out + a * out_stride;
    switch (a1 - a) {
      case 3: dot_rows<F, 3>(nb, wp, w_stride, n_w, x, act_stride, o, out_stride); break;
      case 2: dot_rows<F, 2>(nb, wp, w_stride, n_w, x, act_stride, o, out_stride); break;
      case 1: dot_rows_decode<F>(nb, wp, w_stride, n_w, x, o); break;
      default: break;
    }
  }
}

// The kernels by name (one instance of the driver per weight format).
constexpr QuantDotFn dot_q4_0_q8_0_avx2 = quant_dot_avx2<Q4_0>;
constexpr QuantDotFn dot_q4_1_q8_1_avx2 = quant_dot_avx2<Q4_1>;
constexpr QuantDotFn dot_q5_0_q8_0_avx2 = quant_dot_avx2<Q5_0>;
constexpr QuantDotFn dot_q5_1_q8_1_avx2 = quant_dot_avx2<Q5_1>;
constexpr QuantDotFn dot_q8_0_q8_0_avx2 = quant_dot_avx2<Q8_0>;

// ---------------------------------------------------------------- activation quantizers
// std::round of v (ties away from zero) as an exact float integer: truncate
// |v|, add 1 where the dropped fraction (exact) is at least one half.
inline __m256 round_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, v);
  const __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
  return _mm256_or_ps(r, _mm256_and_ps(sign, v));
}

// One block of 32 floats: the codes into qs, returns d (and the code sum via *sum).
inline float quantize_block_q8(const float* x, int8_t* qs, int* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
  }
  const float d = hmax(amax) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int j = 0; j < 4; ++j) q[j] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[j], idv)));
  if (sum) *sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // packs interleave 128-bit lanes; the permute puts the 4-byte groups back in order
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return d;
}

void quantize_row_q8_0_avx2(const float* x, void* vy, int64_t n) {
  block_q8_0* y = static_cast<block_q8_0*>(vy);
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float d = quantize_block_q8(x + i * QK8_0, y[i].qs, nullptr);
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  }
}

void quantize_row_q8_1_avx2(const float* x, void* vy, int64_t n) {
  block_q8_1* y = static_cast<block_q8_1*>(vy);
  for (int64_t i = 0; i < n / QK8_1; ++i) {
    int sum;
    const float d = quantize_block_q8(x + i * QK8_1, y[i].qs, &sum);
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    y[i].s = _cvtss_sh(float(sum) * d, _MM_FROUND_TO_NEAREST_INT);
  }
}

}  // namespace

void fill_quant_legacy_avx2(CpuKernels& k) {
  k.quant_dot[kQ4_0] = dot_q4_0_q8_0_avx2;
  k.quant_dot[kQ4_1] = dot_q4_1_q8_1_avx2;
  k.quant_dot[kQ5_0] = dot_q5_0_q8_0_avx2;
  k.quant_dot[kQ5_1] = dot_q5_1_q8_1_avx2;
  k.quant_dot[kQ8_0] = dot_q8_0_q8_0_avx2;
  k.quantize_act[kActQ8_0] = quantize_row_q8_0_avx2;
  k.quantize_act[kActQ8_1] = quantize_row_q8_1_avx2;
}

}  // namespace sc

#else

namespace sc {
void fill_quant_legacy_avx2(CpuKernels&) {}
}  // namespace sc

#endif
