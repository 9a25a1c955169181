// Attention tiles for NEON (32 q registers): 4 query rows x 16 keys (16
// accumulators) per pass for the scores, 4 rows x 16 output columns for the
// value sum; each loaded K/V vector is used by all 4 rows.
#include "backend/cpu/attention.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace sc {
namespace {

static_assert(kAttnTile % 16 == 0, "score passes are 4 vectors wide");

template <int R>
inline void qk_block(const float* q, int i, int d, const float* kt, int j0, float* s) {
  float32x4_t acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) acc[r][u] = vdupq_n_f32(0.f);
  for (int c = 0; c < d; ++c) {
    const float* kr = kt + int64_t(c) * kAttnTile + j0;
    const float32x4_t k0 = vld1q_f32(kr), k1 = vld1q_f32(kr + 4), k2 = vld1q_f32(kr + 8), k3 = vld1q_f32(kr + 12);
    for (int r = 0; r < R; ++r) {
      const float qv = q[int64_t(i + r) * d + c];
      acc[r][0] = vfmaq_n_f32(acc[r][0], k0, qv);
      acc[r][1] = vfmaq_n_f32(acc[r][1], k1, qv);
      acc[r][2] = vfmaq_n_f32(acc[r][2], k2, qv);
      acc[r][3] = vfmaq_n_f32(acc[r][3], k3, qv);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < 4; ++u) vst1q_f32(s + int64_t(i + r) * kAttnTile + j0 + 4 * u, acc[r][u]);
}

void qk_tile_neon(const float* q, int m, int d, const float* kt, float* s) {
  for (int j0 = 0; j0 < kAttnTile; j0 += 16) {
    int i = 0;
    for (; i + 4 <= m; i += 4) qk_block<4>(q, i, d, kt, j0, s);
    for (; i < m; ++i) qk_block<1>(q, i, d, kt, j0, s);
  }
}

// Output columns [c0, c0 + 4 * U) of rows [i, i + R).
template <int R, int U>
inline void pv_block(const float* p, int i, int nk, const float* v, int d, int c0, float* o) {
  float32x4_t acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u) acc[r][u] = vld1q_f32(o + int64_t(i + r) * d + c0 + 4 * u);
  for (int j = 0; j < nk; ++j) {
    const float* vr = v + int64_t(j) * d + c0;
    float32x4_t vv[U];
    for (int u = 0; u < U; ++u) vv[u] = vld1q_f32(vr + 4 * u);
    for (int r = 0; r < R; ++r) {
      const float pv = p[int64_t(i + r) * kAttnTile + j];
      for (int u = 0; u < U; ++u) acc[r][u] = vfmaq_n_f32(acc[r][u], vv[u], pv);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u) vst1q_f32(o + int64_t(i + r) * d + c0 + 4 * u, acc[r][u]);
}

template <int U>
inline void pv_columns(const float* p, int m, int nk, const float* v, int d, int c0, float* o) {
  int i = 0;
  for (; i + 4 <= m; i += 4) pv_block<4, U>(p, i, nk, v, d, c0, o);
  for (; i < m; ++i) pv_block<1, U>(p, i, nk, v, d, c0, o);
}

void pv_tile_neon(const float* p, int m, int nk, const float* v, int d, float* o) {
  int c0 = 0;
  for (; c0 + 16 <= d; c0 += 16) pv_columns<4>(p, m, nk, v, d, c0, o);
  for (; c0 + 4 <= d; c0 += 4) pv_columns<1>(p, m, nk, v, d, c0, o);
  for (int i = 0; i < m && c0 < d; ++i)  // columns left over when d is not a multiple of 4
    for (int j = 0; j < nk; ++j) {
      const float pv = p[int64_t(i) * kAttnTile + j];
      for (int c = c0; c < d; ++c) o[int64_t(i) * d + c] += pv * v[int64_t(j) * d + c];
    }
}

}  // namespace

void fill_attention_neon(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_neon;
  k.attn_pv_tile = pv_tile_neon;
}

}  // namespace sc

#else

namespace sc {
void fill_attention_neon(CpuKernels&) {}
}  // namespace sc

#endif
