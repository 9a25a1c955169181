// Attention tiles for AVX2 (16 ymm): 3 query rows x 32 keys (12 accumulators)
// per pass for the scores, 3 rows x 32 output columns for the value sum.
#include "backend/cpu/attention.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include "backend/cpu/x86/transpose_avx2.h"

namespace sc {
namespace {

static_assert(kAttnTile % 32 == 0, "score passes are 4 ymm wide");

template <int R>
inline void qk_block(const float* q, int i, int d, const float* kt, int j0, float* s) {
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) acc[r][u] = _mm256_setzero_ps();
  for (int c = 0; c < d; ++c) {
    const float* kr = kt + int64_t(c) * kAttnTile + j0;
    const __m256 k0 = _mm256_loadu_ps(kr), k1 = _mm256_loadu_ps(kr + 8), k2 = _mm256_loadu_ps(kr + 16),
                 k3 = _mm256_loadu_ps(kr + 24);
    for (int r = 0; r < R; ++r) {
      const __m256 qv = _mm256_broadcast_ss(q + int64_t(i + r) * d + c);
      acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(qv, k2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(qv, k3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) _mm256_storeu_ps(s + int64_t(i + r) * kAttnTile + j0 + 8 * u, acc[r][u]);
}

void qk_tile_avx2(const float* q, int m, int d, const float* kt, float* s) {
  for (int j0 = 0; j0 < kAttnTile; j0 += 32) {
    int i = 0;
    for (; i + 3 <= m; i += 3) qk_block<3>(q, i, d, kt, j0, s);
    for (; i < m; ++i) qk_block<1>(q, i, d, kt, j0, s);
  }
}

// Output columns [c0, c0 + 32) of rows [i, i + R) (c0 + 32 <= d).
template <int R>
inline void pv_block(const float* p, int i, int nk, const float* v, int d, int c0, float* o) {
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) acc[r][u] = _mm256_loadu_ps(o + int64_t(i + r) * d + c0 + 8 * u);
  for (int j = 0; j < nk; ++j) {
    const float* vr = v + int64_t(j) * d + c0;
    const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8), v2 = _mm256_loadu_ps(vr + 16),
                 v3 = _mm256_loadu_ps(vr + 24);
    for (int r = 0; r < R; ++r) {
      const __m256 pv = _mm256_broadcast_ss(p + int64_t(i + r) * kAttnTile + j);
      acc[r][0] = _mm256_fmadd_ps(pv, v0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(pv, v1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(pv, v2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(pv, v3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) _mm256_storeu_ps(o + int64_t(i + r) * d + c0 + 8 * u, acc[r][u]);
}

void pv_tile_avx2(const float* p, int m, int nk, const float* v, int d, float* o) {
  int c0 = 0;
  for (; c0 + 32 <= d; c0 += 32) {
    int i = 0;
    for (; i + 3 <= m; i += 3) pv_block<3>(p, i, nk, v, d, c0, o);
    for (; i < m; ++i) pv_block<1>(p, i, nk, v, d, c0, o);
  }
  for (int i = 0; i < m && c0 < d; ++i)  // columns left over when d is not a multiple of 32
    for (int j = 0; j < nk; ++j) {
      const float pv = p[int64_t(i) * kAttnTile + j];
      for (int c = c0; c < d; ++c) o[int64_t(i) * d + c] += pv * v[int64_t(j) * d + c];
    }
}

// Keys in groups of 8 through 8x8 register transposes (F16C converts 8
// halves per load); the K tail of each key and the keys past the last full
// group element by element.
void pack_kt_f16_avx2(const uint8_t* k, size_t row_bytes, int nk, int d, float* kt) {
  const int d8 = d / 8 * 8;
  int j0 = 0;
  for (; j0 + 8 <= nk; j0 += 8) {
    for (int c = 0; c < d8; c += 8) {
      __m256i r[8];
      for (int j = 0; j < 8; ++j) {
        const uint16_t* kr = reinterpret_cast<const uint16_t*>(k + size_t(j0 + j) * row_bytes) + c;
        r[j] = _mm256_castps_si256(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kr))));
      }
      transpose8x8_epi32(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_si256(reinterpret_cast<__m256i*>(kt + int64_t(c + i) * kAttnTile + j0), r[i]);
    }
    for (int j = j0; j < j0 + 8; ++j) {
      const uint16_t* kr = reinterpret_cast<const uint16_t*>(k + size_t(j) * row_bytes);
      for (int c = d8; c < d; ++c) kt[int64_t(c) * kAttnTile + j] = _cvtsh_ss(kr[c]);
    }
  }
  for (int j = j0; j < kAttnTile; ++j) {
    if (j >= nk) {
      for (int c = 0; c < d; ++c) kt[int64_t(c) * kAttnTile + j] = 0.f;
      continue;
    }
    const uint16_t* kr = reinterpret_cast<const uint16_t*>(k + size_t(j) * row_bytes);
    for (int c = 0; c < d; ++c) kt[int64_t(c) * kAttnTile + j] = _cvtsh_ss(kr[c]);
  }
}

}  // namespace

void fill_attention_avx2(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_avx2;
  k.attn_pv_tile = pv_tile_avx2;
  k.attn_pack_kt_f16 = pack_kt_f16_avx2;
}

}  // namespace sc

#else

namespace sc {
void fill_attention_avx2(CpuKernels&) {}
}  // namespace sc

#endif
