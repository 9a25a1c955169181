// AVX2 + FMA + F16C quantized dot products: the k-quants Q2_K..Q6_K, Q8_K activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
//
// Every weight super-block is decoded in registers into the common form of
// kquant_decode_avx2.h (KBlock); one decoded block then serves every
// activation row of a token chunk.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "backend/cpu/x86/kquant_decode_avx2.h"
#include "backend/cpu/x86/prefetch_x86.h"
#include "backend/cpu/x86/quant_dot_k_x86.h"
#include "format/quant.h"

namespace sc {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Integer part of one block against one activation block: sum_g sc_g * (u_g . y_g)
// in 8 int32 lanes, and the bsum term sum_g m_g * bsum_g likewise.
inline __m256i block_isum(const KBlock& b, const int8_t* yq) {
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
  for (int c = 0; c < 8; c += 2) {
    // |u| <= 63, |y| <= 127: the int16 pair sums of maddubs cannot saturate
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(b.q[c], load256(yq + 32 * c)), b.sc[c]));
    s1 = _mm256_add_epi32(s1,
                          _mm256_madd_epi16(_mm256_maddubs_epi16(b.q[c + 1], load256(yq + 32 * c + 32)), b.sc[c + 1]));
  }
  return _mm256_add_epi32(s0, s1);
}

// acc += w . y for one decoded block. kSameScale: the bsum term has factor d
// too (Q3_K, Q6_K), so it is subtracted in integers.
template <bool kSameScale>
inline __m256 dot_block(const KBlock& b, const block_q8_K& y, __m256 acc) {
  const __m256i isum = block_isum(b, y.qs);
  const __m256i msum = _mm256_madd_epi16(load256(y.bsums), b.m);
  if (kSameScale)
    return _mm256_fmadd_ps(_mm256_set1_ps(y.d * b.d), _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, msum)), acc);
  acc = _mm256_fmadd_ps(_mm256_set1_ps(y.d * b.d), _mm256_cvtepi32_ps(isum), acc);
  return _mm256_fnmadd_ps(_mm256_set1_ps(y.d * b.dm), _mm256_cvtepi32_ps(msum), acc);
}

// Decode and a server's batched decode (fewer tokens than the panel GEMM
// takes, quant_gemm_x86.h): one pass over the rows, each block decoded once
// and applied to NT activation rows, the rows prefetched ahead. NT is a
// constant so that the accumulators stay in registers. (With a runtime
// token count and no prefetch, 2 tokens took 2.9x one token's time: one
// thread, 8192 x 8192 Q4_K, Zen 4, 25.0 against 36.3 GMAC/s.)
template <int NT, typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale>
void dot_rows_few(int64_t nb, const uint8_t* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                  float* out, size_t out_stride) {
  const block_q8_K* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = act_row(acts, act_stride, t);
  for (int r = 0; r < n_w; ++r) {
    const Block* x = reinterpret_cast<const Block*>(w + size_t(r) * w_stride);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
      for (size_t off = 0; off < sizeof(Block); off += 64) prefetch_stream(reinterpret_cast<const char*>(x + i) + off);
      KBlock b;
      Decode(x[i], b);
      for (int t = 0; t < NT; ++t) acc[t] = dot_block<kSameScale>(b, y[t][i], acc[t]);
    }
    for (int t = 0; t < NT; ++t) out[size_t(t) * out_stride + size_t(r)] = hsum(acc[t]);
  }
}

// Tokens per call of dot_rows_few: the AVX2 panel GEMM takes 8 and more.
constexpr int kFewTokens = 7;
using FewFn = void (*)(int64_t, const uint8_t*, size_t, int, const void*, size_t, float*, size_t);
template <typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale, int... T>
FewFn few_fn_of(int n, std::integer_sequence<int, T...>) {
  static constexpr FewFn fns[] = {dot_rows_few<T + 1, Block, Decode, kSameScale>...};
  return fns[n - 1];
}

// Tokens per pass over the weight rows beyond kFewTokens (the rows a panel
// GEMM leaves over): their activation rows (292 bytes per 256 inputs) stay
// in L2 while the rows stream past, each block decoded once per pass.
constexpr int kTokenChunk = 32;

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
  KBlock b;
  __m256 acc[kTokenChunk];
  for (int t0 = 0; t0 < n_act; t0 += kTokenChunk) {
    const int nt = n_act - t0 < kTokenChunk ? n_act - t0 : kTokenChunk;
    for (int r = 0; r < n_w; ++r) {
      const Block* x = row(r);
      for (int t = 0; t < nt; ++t) acc[t] = _mm256_setzero_ps();
      for (int64_t i = 0; i < nb; ++i) {
        Decode(x[i], b);
        for (int t = 0; t < nt; ++t) acc[t] = dot_block<kSameScale>(b, act_row(acts, act_stride, t0 + t)[i], acc[t]);
      }
      for (int t = 0; t < nt; ++t) out[size_t(t0 + t) * out_stride + size_t(r)] = hsum(acc[t]);
    }
  }
}

// Q8_K activations, byte for byte as quantize_row_q8_K_ref: the scale comes
// from the first element of largest magnitude, levels are round-to-nearest-
// even of iscale * x (cvtps under the default rounding mode, as nearest_int).
void quantize_row_q8_K_avx2(const float* x, void* vy, int64_t k) {
  block_q8_K* y = static_cast<block_q8_K*>(vy);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    // |x| first: max_ps returns its second operand when one is NaN, and NaNs are skipped as in the reference
    __m256 mx = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) mx = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), mx);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    block_q8_K& b = y[i];
    if (amax == 0.0f) {
      std::memset(&b, 0, sizeof(b));
      continue;
    }
    const __m256 vamax = _mm256_set1_ps(amax);
    int first = 0;
    for (int j = 0; j < QK_K; j += 8) {
      const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j));
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(ax, vamax, _CMP_EQ_OQ));
      if (hit) {
        first = j + __builtin_ctz(unsigned(hit));
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const __m256 vis = _mm256_set1_ps(iscale);
    __m256i sums[8];
    for (int j = 0; j < QK_K; j += 32) {
      const __m256i v0 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j)));
      const __m256i v1 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8)));
      const __m256i v2 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 16)));
      const __m256i v3 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 24)));
      // saturating packs clamp at 127 as min(127, .) does (|levels| <= 127 otherwise)
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
      const __m256i q = _mm256_permutevar8x32_epi32(p, order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + j), q);
      // int32 sums of 4 bytes: 4 per 16-group, group j/16 in the low lane, j/16+1 in the high one
      sums[j / 32] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i* s = sums + 4 * h;
      // lanes: groups 0,2,4,6 | 1,3,5,7 (of this half) -> in order
      const __m256i g = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
      const __m256i gs = _mm256_permutevar8x32_epi32(g, order);
      const __m128i g16 = _mm_packs_epi32(_mm256_castsi256_si128(gs), _mm256_extracti128_si256(gs, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(b.bsums + 8 * h), g16);
    }
    b.d = 1 / iscale;
  }
}

}  // namespace

void fill_quant_k_avx2(CpuKernels& k) {
  k.quant_dot[kQ2_K] = dot_k_q8_K<block_q2_K, decode_q2_K, false>;
  k.quant_dot[kQ3_K] = dot_k_q8_K<block_q3_K, decode_q3_K, true>;
  k.quant_dot[kQ4_K] = dot_k_q8_K<block_q4_K, decode_q4_K, false>;
  k.quant_dot[kQ5_K] = dot_k_q8_K<block_q5_K, decode_q5_K, false>;
  k.quant_dot[kQ6_K] = dot_k_q8_K<block_q6_K, decode_q6_K, true>;
  k.quantize_act[kActQ8_K] = quantize_row_q8_K_avx2;
}

}  // namespace sc

#else

namespace sc {
void fill_quant_k_avx2(CpuKernels&) {}
}  // namespace sc

#endif
