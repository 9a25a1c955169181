// Prompt-path GEMM for Q4_0, Q8_0 and the k-quants, shared by the AVX2 and
// AVX-512 levels: quant_gemm_avx2.cpp and quant_gemm_avx512.cpp each include
// this once, compiled with their own flags, after defining
// SC_QUANT_GEMM_FILL (the name of the fill function). With AVX512_VNNI/VL
// the inner steps use vpdpbusd / vpdpwssd in 256-bit registers (one
// instruction where AVX2 needs a multiply and an add); everything else is
// the same code.
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

#include <cstring>
#include <vector>

#include "backend/cpu/x86/kquant_decode_avx2.h"
#include "backend/cpu/x86/q8_helpers_avx2.h"
#include "backend/cpu/x86/transpose_avx2.h"
#include "format/quant.h"

namespace sc {
namespace {

constexpr int kPanelRows = 8;   // weight rows per panel: one int32/float lane each
constexpr int kTokenTile = 4;   // activation rows per pass over a panel
// Below a format's kMinTokens activation rows the row kernel is faster: the
// panel is packed per call, and a few tokens do not pay for it (a server's
// batched decode is 2-16 rows). Measured with 2 threads at the 1B shape's
// widths (Zen 3), GEMM / row GMAC/s: Q4_0 4 rows 35/45, 8 rows 50/39; Q8_0
// 34/41, 46/40; Q4_K 8 rows 37/78, 16 rows 58/61; Q6_K 30/49, 54/52. The
// k-quants' packing decodes every block, so they cross over later. (At the
// 768-wide tiny_starcoder_py shape Q8_0 crosses over later too, 8 rows
// 33/42, 16 rows 53/45.) Q8_0 therefore starts at 16: in whole 8-sequence
// decode steps (Model::eval_batch) the row kernel measured 36-39 ms against
// the GEMM's 45-53 at the tiny_starcoder_py shape and 237-247 against
// 248-272 at the 1B shape. Q4_0 calls of 4-16 rows go to the few-token
// GEMM (quant_gemm_few_avx2.cpp) at both levels, so Q4_0 starts at 17.
constexpr int kMinTokensQ4_0 = 17;
constexpr int kMinTokensQ8_0 = 16;
constexpr int kMinTokensK = 16;

// The row kernels this level had before the GEMM was installed (decode and leftover rows).
QuantDotFn row_kernel[kQuantSlots];

// A panel: per block, 8 vectors of codes (vector g: codes 4g..4g+3 of each
// row, row r in bytes 4r..4r+3) and the 8 rows' scales.
struct alignas(32) Vec32 {
  uint8_t bytes[32];
};
struct Panel {
  std::vector<Vec32> codes;  // [block][8]
  std::vector<float> d;        // [block][8]
  void resize(int64_t nb) {
    codes.resize(size_t(nb) * 8);
    d.resize(size_t(nb) * kPanelRows);
  }
};

struct ActScales;    // per activation block, below
struct NoActScales;  // the k-quants' (nothing), with the driver

// Q4_0: codes 0..15 (the -8 offset is applied through the activation sums).
struct Q4_0 {
  static constexpr int kSlot = kQ4_0;
  static constexpr int kMinTokens = kMinTokensQ4_0;
  static constexpr bool kOffset = true;
  static constexpr int64_t kBlock = QK8_0;
  using PanelT = Panel;
  using Act = ActScales;
  static void pack(const uint8_t* w, size_t stride, int64_t nb, Panel& p) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b) {
      __m256i v[8];
      for (int r = 0; r < kPanelRows; ++r) {
        const block_q4_0* blk = reinterpret_cast<const block_q4_0*>(w + size_t(r) * stride) + b;
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs));
        v[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);  // element order
        p.d[size_t(b) * kPanelRows + size_t(r)] = _cvtsh_ss(blk->d);
      }
      transpose8x8_epi32(v);
      std::memcpy(&p.codes[size_t(b) * 8], v, sizeof(v));
    }
  }
};

// Q8_0: signed codes, multiplied as |w| * (y * sign(w)).
struct Q8_0 {
  static constexpr int kSlot = kQ8_0;
  static constexpr int kMinTokens = kMinTokensQ8_0;
  static constexpr bool kOffset = false;
  static constexpr int64_t kBlock = QK8_0;
  using PanelT = Panel;
  using Act = ActScales;
  static void pack(const uint8_t* w, size_t stride, int64_t nb, Panel& p) {
    for (int64_t b = 0; b < nb; ++b) {
      __m256i v[8];
      for (int r = 0; r < kPanelRows; ++r) {
        const block_q8_0* blk = reinterpret_cast<const block_q8_0*>(w + size_t(r) * stride) + b;
        v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs));
        p.d[size_t(b) * kPanelRows + size_t(r)] = _cvtsh_ss(blk->d);
      }
      transpose8x8_epi32(v);
      std::memcpy(&p.codes[size_t(b) * 8], v, sizeof(v));
    }
  }
};

// Per activation block: its scale, and for offset formats -8 * d * sum(codes).
struct ActScales {
  std::vector<float> d, corr;  // [token][block]
  void prepare(const uint8_t* acts, size_t act_stride, int n_act, int64_t nb, bool offset) {
    d.resize(size_t(n_act) * size_t(nb));
    corr.resize(offset ? d.size() : 0);
    for (int a = 0; a < n_act; ++a)
      for (int64_t b = 0; b < nb; ++b) {
        const block_q8_0* y = reinterpret_cast<const block_q8_0*>(acts + size_t(a) * act_stride) + b;
        const size_t i = size_t(a) * size_t(nb) + size_t(b);
        d[i] = _cvtsh_ss(y->d);
        if (!offset) continue;
        corr[i] = -8.0f * d[i] * float(q8_code_sum(y->qs));
      }
  }
};

// T activation rows against one panel: out[t * out_stride + r] for r < 8.
// The group loop is kept rolled: unrolled, GCC regroups the int16 sums
// into a tree and spills them (measured 1.6x slower).
template <class F, int T>
void panel_tile(int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const float* dy,
                const float* corr, int64_t ld, float* out, size_t out_stride) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const Vec32* wq = &p.codes[size_t(b) * 8];
    const int8_t* y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const block_q8_0*>(acts + size_t(t) * act_stride)[b].qs;
    __m256i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int g = 0; g < 8; ++g) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(wq[g].bytes));
      if constexpr (F::kOffset) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        for (int t = 0; t < T; ++t) s[t] = _mm256_dpbusd_epi32(s[t], w, _mm256_set1_epi32(load_i32(y[t] + 4 * g)));
#else
        // codes <= 15: 8 groups of pair sums stay below 8 * 2 * 15 * 128 < 2^15
        for (int t = 0; t < T; ++t)
          s[t] = _mm256_add_epi16(s[t], _mm256_maddubs_epi16(w, _mm256_set1_epi32(load_i32(y[t] + 4 * g))));
#endif
      } else {
        // |w| * |y| pair sums reach 2 * 128 * 127: widen every group
        const __m256i aw = _mm256_sign_epi8(w, w);
        for (int t = 0; t < T; ++t) {
          const __m256i ys = _mm256_sign_epi8(_mm256_set1_epi32(load_i32(y[t] + 4 * g)), w);
          s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, ys), ones16));
        }
      }
    }
    const __m256 dw = _mm256_loadu_ps(&p.d[size_t(b) * kPanelRows]);
    for (int t = 0; t < T; ++t) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      const __m256i si = s[t];  // int32 sums already
#else
      const __m256i si = F::kOffset ? _mm256_madd_epi16(s[t], ones16) : s[t];
#endif
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(dy[t * ld + b]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), scale, acc[t]);
      if constexpr (F::kOffset) acc[t] = _mm256_fmadd_ps(dw, _mm256_set1_ps(corr[t * ld + b]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + size_t(t) * out_stride, acc[t]);
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
  std::vector<Vec32> codes;  // [block][64]
  std::vector<Vec32> sc;     // [block][16-group]
  std::vector<Vec32> m;      // [block][pair of 16-groups]
  std::vector<float> d, dm;  // [block][row]
  void resize(int64_t nb) {
    codes.resize(size_t(nb) * 64);
    sc.resize(size_t(nb) * 16);
    m.resize(size_t(nb) * 8);
    d.resize(size_t(nb) * kPanelRows);
    dm.resize(size_t(nb) * kPanelRows);
  }
};

inline int32_t int16_pair(int16_t lo, int16_t hi) { return int32_t(uint32_t(uint16_t(lo)) | uint32_t(uint16_t(hi)) << 16); }

// kMaxLevel: the largest level, which bounds how many maddubs results (each
// lane a pair sum of at most 2 * level * 128) an int16 sum can take: the 4
// groups of a 16-group while 4 * 2 * level * 128 < 2^15 (levels up to 31),
// else 2 (Q6_K).
template <typename Block, void (*Decode)(const Block&, KBlock&), bool kSameScale_, int kMaxLevel, int kSlot_>
struct KFormat {
  static constexpr int kSlot = kSlot_;
  static constexpr int kMinTokens = kMinTokensK;
  static constexpr bool kSameScale = kSameScale_;
  static constexpr bool kOffset = false;  // the offsets are in the panel's bsum coefficients
  static constexpr int64_t kBlock = QK_K;
  using PanelT = KPanel;
  using Act = NoActScales;
  static constexpr int kGroupsPerSum = 4 * 2 * kMaxLevel * 128 < 32768 ? 4 : 2;
  static void pack(const uint8_t* w, size_t stride, int64_t nb, KPanel& p) {
    for (int64_t i = 0; i < nb; ++i) {
      KBlock kb[kPanelRows];
      for (int r = 0; r < kPanelRows; ++r) Decode(reinterpret_cast<const Block*>(w + size_t(r) * stride)[i], kb[r]);
      for (int c = 0; c < 8; ++c) {
        __m256i v[8];
        for (int r = 0; r < kPanelRows; ++r) v[r] = kb[r].q[c];
        transpose8x8_epi32(v);
        std::memcpy(&p.codes[size_t(i) * 64 + size_t(c) * 8], v, sizeof(v));
      }
      int32_t sc[16][kPanelRows], m[8][kPanelRows];
      for (int r = 0; r < kPanelRows; ++r) {
        int16_t s16[8][16], m16[16];
        std::memcpy(s16, kb[r].sc, sizeof(s16));
        std::memcpy(m16, &kb[r].m, sizeof(m16));
        for (int k = 0; k < 16; ++k) {
          const int16_t v = s16[k / 2][(k % 2) * 8];  // KBlock: group 2c in lanes 0-7 of sc[c], 2c+1 in 8-15
          sc[k][r] = int16_pair(v, v);
        }
        for (int q = 0; q < 8; ++q) m[q][r] = int16_pair(m16[2 * q], m16[2 * q + 1]);
        p.d[size_t(i) * kPanelRows + size_t(r)] = kb[r].d;
        p.dm[size_t(i) * kPanelRows + size_t(r)] = kb[r].dm;
      }
      std::memcpy(&p.sc[size_t(i) * 16], sc, sizeof(sc));
      std::memcpy(&p.m[size_t(i) * 8], m, sizeof(m));
    }
  }
};

inline __m256i load_vec(const Vec32& v) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(v.bytes)); }

template <class F, int T>
void kpanel_tile(int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, float* out, size_t out_stride) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const block_q8_K* y[T];
    for (int t = 0; t < T; ++t) y[t] = act_row(acts, act_stride, t) + i;
    __m256i s32[T];
    for (int t = 0; t < T; ++t) s32[t] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int k = 0; k < 16; ++k) {  // 16-element groups
      const Vec32* wq = &p.codes[size_t(i) * 64 + size_t(k) * 4];
      const __m256i sc = load_vec(p.sc[size_t(i) * 16 + size_t(k)]);
      for (int g0 = 0; g0 < 4; g0 += F::kGroupsPerSum) {
        __m256i s16[T];
        for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
        for (int g = g0; g < g0 + F::kGroupsPerSum; ++g) {
          const __m256i w = load_vec(wq[g]);
          for (int t = 0; t < T; ++t)
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, _mm256_set1_epi32(load_i32(y[t]->qs + 16 * k + 4 * g))));
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
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(load_vec(p.m[size_t(i) * 8 + size_t(q)]), _mm256_set1_epi32(b)));
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

// ---------------------------------------------------------------- the driver
// The k-quants need nothing per activation block beyond what Q8_K stores.
struct NoActScales {
  void prepare(const uint8_t*, size_t, int, int64_t, bool) {}
};

// One tile of T activation rows (starting at row a) against a panel.
template <class F, int T>
void run_tile(int64_t nb, const Panel& p, const uint8_t* acts, size_t act_stride, const ActScales& s, int a,
              float* out, size_t out_stride) {
  panel_tile<F, T>(nb, p, acts, act_stride, s.d.data() + a * nb, F::kOffset ? s.corr.data() + a * nb : nullptr, nb,
                   out, out_stride);
}
template <class F, int T>
void run_tile(int64_t nb, const KPanel& p, const uint8_t* acts, size_t act_stride, const NoActScales&, int,
              float* out, size_t out_stride) {
  kpanel_tile<F, T>(nb, p, acts, act_stride, out, out_stride);
}

template <class F>
void quant_gemm(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                     int n_act, float* out, size_t out_stride) {
  const int n_panel_rows = n_act >= F::kMinTokens ? n_w / kPanelRows * kPanelRows : 0;
  const uint8_t* wp = static_cast<const uint8_t*>(w);
  const uint8_t* xp = static_cast<const uint8_t*>(acts);
  if (n_panel_rows > 0) {
    const int64_t nb = n / F::kBlock;
    thread_local typename F::PanelT panel;
    thread_local typename F::Act scales;
    panel.resize(nb);
    scales.prepare(xp, act_stride, n_act, nb, F::kOffset);
    for (int r0 = 0; r0 < n_panel_rows; r0 += kPanelRows) {
      F::pack(wp + size_t(r0) * w_stride, w_stride, nb, panel);
      int a = 0;
      for (; a + kTokenTile <= n_act; a += kTokenTile)
        run_tile<F, kTokenTile>(nb, panel, xp + size_t(a) * act_stride, act_stride, scales, a,
                                out + size_t(a) * out_stride + r0, out_stride);
      for (; a < n_act; ++a)
        run_tile<F, 1>(nb, panel, xp + size_t(a) * act_stride, act_stride, scales, a,
                       out + size_t(a) * out_stride + r0, out_stride);
    }
  }
  if (n_panel_rows < n_w)
    row_kernel[F::kSlot](n, wp + size_t(n_panel_rows) * w_stride, w_stride, n_w - n_panel_rows, acts, act_stride,
                         n_act, out + n_panel_rows, out_stride);
}

}  // namespace

void SC_QUANT_GEMM_FILL(CpuKernels& k) {
  for (int slot : {kQ4_0, kQ8_0, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K}) row_kernel[slot] = k.quant_dot[slot];
  k.quant_dot[kQ4_0] = quant_gemm<Q4_0>;
  k.quant_dot[kQ8_0] = quant_gemm<Q8_0>;
  k.quant_dot[kQ2_K] = quant_gemm<Q2_K>;
  k.quant_dot[kQ3_K] = quant_gemm<Q3_K>;
  k.quant_dot[kQ4_K] = quant_gemm<Q4_K>;
  k.quant_dot[kQ5_K] = quant_gemm<Q5_K>;
  k.quant_dot[kQ6_K] = quant_gemm<Q6_K>;
}

}  // namespace sc

#endif
