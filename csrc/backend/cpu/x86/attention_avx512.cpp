// Attention tiles for AVX-512: 4 query rows x 64 keys (16 zmm accumulators)
// for the scores, 4 rows x 64 output columns for the value sum. Each
// broadcast and each load feeds four FMAs.
#include "backend/cpu/attention.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

namespace sc {
namespace {

static_assert(kAttnTile == 64, "the score tile is 4 zmm wide");

void qk_tile_avx512(const float* q, int m, int d, const float* kt, float* s) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
    const float* q0 = q + int64_t(i) * d;
    for (int c = 0; c < d; ++c) {
      const float* kr = kt + int64_t(c) * kAttnTile;
      const __m512 k0 = _mm512_loadu_ps(kr), k1 = _mm512_loadu_ps(kr + 16), k2 = _mm512_loadu_ps(kr + 32),
                   k3 = _mm512_loadu_ps(kr + 48);
      for (int r = 0; r < 4; ++r) {
        const __m512 qv = _mm512_set1_ps(q0[int64_t(r) * d + c]);
        acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
        acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
        acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
      }
    }
    for (int r = 0; r < 4; ++r)
      for (int j = 0; j < 4; ++j) _mm512_storeu_ps(s + int64_t(i + r) * kAttnTile + 16 * j, acc[r][j]);
  }
  for (; i < m; ++i) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int c = 0; c < d; ++c) {
      const float* kr = kt + int64_t(c) * kAttnTile;
      const __m512 qv = _mm512_set1_ps(q[int64_t(i) * d + c]);
      a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kr), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kr + 16), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kr + 32), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kr + 48), a3);
    }
    float* sr = s + int64_t(i) * kAttnTile;
    _mm512_storeu_ps(sr, a0);
    _mm512_storeu_ps(sr + 16, a1);
    _mm512_storeu_ps(sr + 32, a2);
    _mm512_storeu_ps(sr + 48, a3);
  }
}

// Output columns [c0, c0 + 64) of rows [i, i + R) (c0 + 64 <= d).
template <int R>
inline void pv_block(const float* p, int i, int nk, const float* v, int d, int c0, float* o) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_loadu_ps(o + int64_t(i + r) * d + c0 + 16 * u);
  for (int j = 0; j < nk; ++j) {
    const float* vr = v + int64_t(j) * d + c0;
    const __m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16), v2 = _mm512_loadu_ps(vr + 32),
                 v3 = _mm512_loadu_ps(vr + 48);
    for (int r = 0; r < R; ++r) {
      const __m512 pv = _mm512_set1_ps(p[int64_t(i + r) * kAttnTile + j]);
      acc[r][0] = _mm512_fmadd_ps(pv, v0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(pv, v1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(pv, v2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(pv, v3, acc[r][3]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) _mm512_storeu_ps(o + int64_t(i + r) * d + c0 + 16 * u, acc[r][u]);
}

// Columns [c0, d) when fewer than 64 are left: one masked vector at a time.
void pv_tail(const float* p, int m, int nk, const float* v, int d, int c0, float* o) {
  for (; c0 < d; c0 += 16) {
    const int left = d - c0;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    for (int i = 0; i < m; ++i) {
      __m512 acc = _mm512_maskz_loadu_ps(mask, o + int64_t(i) * d + c0);
      for (int j = 0; j < nk; ++j)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(p[int64_t(i) * kAttnTile + j]),
                              _mm512_maskz_loadu_ps(mask, v + int64_t(j) * d + c0), acc);
      _mm512_mask_storeu_ps(o + int64_t(i) * d + c0, mask, acc);
    }
  }
}

void pv_tile_avx512(const float* p, int m, int nk, const float* v, int d, float* o) {
  int c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) {
    int i = 0;
    for (; i + 4 <= m; i += 4) pv_block<4>(p, i, nk, v, d, c0, o);
    for (; i < m; ++i) pv_block<1>(p, i, nk, v, d, c0, o);
  }
  pv_tail(p, m, nk, v, d, c0, o);
}

}  // namespace

void fill_attention_avx512(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_avx512;
  k.attn_pv_tile = pv_tile_avx512;
}

}  // namespace sc

#else

namespace sc {
void fill_attention_avx512(CpuKernels&) {}
}  // namespace sc

#endif
