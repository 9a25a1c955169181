// Few-token GEMM for Q4_0 at the AVX2 level: a server's batched decode
// (4-16 activation rows, one per sequence).
//
// The prompt GEMM (quant_gemm_x86.h) rearranges 8 weight rows into a
// panel so that one vector holds 4 codes of each of 8 rows. With only a few
// tokens to share it, that per-call packing costs about as much as the
// arithmetic: at the 1B shape with 8 tokens, 37% of the step was in the
// packer and 42% in the tile. Here the roles are swapped. The ACTIVATIONS
// are rearranged, once per call (n_act * n_in bytes), so that vector k of a
// block holds codes 4k..4k+3 of each of 8 tokens, and each weight dword is
// broadcast straight from the file's own layout. One maddubs then gives
// partial sums of one weight row for 8 tokens, and the 8 lanes of a row's
// accumulator are its 8 tokens' outputs. Nothing is packed on the weight
// side and each weight block is read once per call.
//
// Measured (2-core Zen 3, 1B shape, Model::eval_batch, ms per step, this
// kernel / before): 8 sequences 147-168 / 216-218, 6: 142-150 / 200-217,
// 4: 139-140 / 140-152, 2: 141-146 / 96-98 (a half-empty group costs a
// full one, hence kMinTokens). tiny_starcoder_py shape, 8 sequences: 26-27
// / 33-36. The same scheme for Q8_0 was tried and left out: its signed codes
// need a sign and an abs per dword and twice the dwords per block, and it
// measured 242 / 273 ms at the 1B shape but 56-59 / 52 at the
// tiny_starcoder_py shape.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/x86/q8_helpers_avx2.h"
#include "backend/cpu/x86/transpose_avx2.h"
#include "format/quant.h"

namespace sc {
namespace {

constexpr int kGroup = 8;     // tokens per pass: one int32/float lane each
constexpr int kRowTile = 4;   // weight rows interleaved per block (independent chains)
constexpr int kMinTokens = 4;   // fewer: the row kernel (measured above)
// more: the panel GEMM. At 16 tokens this kernel measured 86-98 GMAC/s and
// the panel 66 (6 layers of the 1B shape); larger batches were not measured.
constexpr int kMaxTokens = 16;

QuantDotFn fallback[kQuantSlots];  // what the table held before: the panel GEMM / row kernels

// One block of 8 tokens' activations: codes as 8 dword-transposed vectors,
// each token's scale, and (offset formats) -offset * d * sum(codes).
struct alignas(32) ActBlock {
  __m256i q[8];
  __m256 d;
  __m256 corr;
};

// blocks[g * nb + b]: block b of token group g; tokens past n_act are zero.
void arrange_acts(const uint8_t* acts, size_t act_stride, int n_act, int64_t nb, int offset,
                  std::vector<ActBlock>& blocks) {
  const int n_groups = (n_act + kGroup - 1) / kGroup;
  blocks.resize(size_t(n_groups) * size_t(nb));
  for (int g = 0; g < n_groups; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      ActBlock& ab = blocks[size_t(g) * size_t(nb) + size_t(b)];
      alignas(32) float d[kGroup] = {}, corr[kGroup] = {};
      for (int t = 0; t < kGroup; ++t) {
        const int a = g * kGroup + t;
        if (a >= n_act) {
          ab.q[t] = _mm256_setzero_si256();
          continue;
        }
        const block_q8_0* y = reinterpret_cast<const block_q8_0*>(acts + size_t(a) * act_stride) + b;
        ab.q[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y->qs));
        d[t] = _cvtsh_ss(y->d);
        if (offset) corr[t] = -float(offset) * d[t] * float(q8_code_sum(y->qs));
      }
      transpose8x8_epi32(ab.q);
      ab.d = _mm256_load_ps(d);
      ab.corr = _mm256_load_ps(corr);
    }
}

// Q4_0: dword k of qs holds elements 4k..4k+3 in its low nibbles and
// 16+4k..16+4k+3 in its high ones (activation vectors k and 4+k). Codes stay
// unsigned (0..15); the -8 offset comes in through corr. Eight products of
// at most 2 * 15 * 127 stay inside int16.
struct Q4_0 {
  static constexpr int kSlot = kQ4_0;
  static constexpr int kOffset = 8;
  using block = block_q4_0;
  static __m256 block_dot(const block& w, const ActBlock& y) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i s_lo = _mm256_setzero_si256(), s_hi = _mm256_setzero_si256();  // two chains, not one
    for (int k = 0; k < 4; ++k) {
      const __m256i bw = _mm256_set1_epi32(load_i32(w.qs + 4 * k));
      const __m256i lo = _mm256_and_si256(bw, low);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bw, 4), low);
      s_lo = _mm256_add_epi16(s_lo, _mm256_maddubs_epi16(lo, y.q[k]));
      s_hi = _mm256_add_epi16(s_hi, _mm256_maddubs_epi16(hi, y.q[4 + k]));
    }
    const __m256i s16 = _mm256_add_epi16(s_lo, s_hi);
    const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w.d)), _mm256_fmadd_ps(s, y.d, y.corr));
  }
};

// R weight rows against one group of 8 tokens; lane t of row r's sum goes
// to out[t * out_stride + r] for the group's n_tok tokens.
template <class F, int R>
void rows_x_group(int64_t nb, const uint8_t* w, size_t w_stride, const ActBlock* y, int n_tok, float* out,
                  size_t out_stride) {
  using block = typename F::block;
  const block* rows[R];
  __m256 acc[R];
  for (int r = 0; r < R; ++r) {
    rows[r] = reinterpret_cast<const block*>(w + size_t(r) * w_stride);
    acc[r] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b)
    for (int r = 0; r < R; ++r) acc[r] = _mm256_add_ps(acc[r], F::block_dot(rows[r][b], y[b]));
  for (int r = 0; r < R; ++r) {
    alignas(32) float lanes[kGroup];
    _mm256_store_ps(lanes, acc[r]);
    for (int t = 0; t < n_tok; ++t) out[size_t(t) * out_stride + size_t(r)] = lanes[t];
  }
}

template <class F>
void quant_gemm_few_avx2(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                         int n_act, float* out, size_t out_stride) {
  if (n_act < kMinTokens || n_act > kMaxTokens) {
    fallback[F::kSlot](n, w, w_stride, n_w, acts, act_stride, n_act, out, out_stride);
    return;
  }
  const int64_t nb = n / QK8_0;
  thread_local std::vector<ActBlock> blocks;
  arrange_acts(static_cast<const uint8_t*>(acts), act_stride, n_act, nb, F::kOffset, blocks);
  const uint8_t* wp = static_cast<const uint8_t*>(w);
  int r = 0;
  // The row tile's weights (at most 4 rows, 4.6-18 KB at StarCoder's
  // widths) stay in L1/L2 while the token groups pass over them.
  for (; r + kRowTile <= n_w; r += kRowTile)
    for (int g = 0; g * kGroup < n_act; ++g)
      rows_x_group<F, kRowTile>(nb, wp + size_t(r) * w_stride, w_stride, blocks.data() + size_t(g) * size_t(nb),
                                std::min(kGroup, n_act - g * kGroup), out + size_t(g) * kGroup * out_stride + r,
                                out_stride);
  for (; r < n_w; ++r)
    for (int g = 0; g * kGroup < n_act; ++g)
      rows_x_group<F, 1>(nb, wp + size_t(r) * w_stride, w_stride, blocks.data() + size_t(g) * size_t(nb),
                         std::min(kGroup, n_act - g * kGroup), out + size_t(g) * kGroup * out_stride + r, out_stride);
}

}  // namespace

void fill_quant_gemm_few_avx2(CpuKernels& k) {
  fallback[kQ4_0] = k.quant_dot[kQ4_0];
  k.quant_dot[kQ4_0] = quant_gemm_few_avx2<Q4_0>;
}

}  // namespace sc

#else

namespace sc {
void fill_quant_gemm_few_avx2(CpuKernels&) {}
}  // namespace sc

#endif
