// k-quants: 256-element super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and the
// Q8_K activation format.
//
// The quantizers follow ggml's quantize_row_*_ref (the no-imatrix path of
// llama-quantize) step for step: each super-block is split into groups of
// 16 or 32, a scale (and for Q2/Q4/Q5 a min) is fitted per group by a small
// search, the group scales are themselves quantized to 4, 6 or 8 bits
// against one half-float super-scale, and finally every value is re-rounded
// against the scale it will actually be decoded with.
#include <cmath>
#include <cstring>

#include "format/quant.h"
#include "format/quant_internal.h"
#include "format/quant_unpack.h"

namespace sc {

using qi::from_half;
using qi::max_;
using qi::min_;
using qi::nearest_int;
using qi::to_half;
using qu::get_scale_min_k4;
using qu::q3_scale;
using qu::unpack_q2_K;
using qu::unpack_q3_K;
using qu::unpack_q4_K;
using qu::unpack_q5_K;
using qu::unpack_q6_K;

namespace {

constexpr float GROUP_MAX_EPS = 1e-15f;

// Fits a symmetric scale for n values quantized to [-nmax, nmax-1]
// (ggml's make_qx_quants with rmse_type 1 and no importance weights: each
// value weighted by x^2, nineteen candidate scales tried). L gets q + nmax.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_(-nmax, min_(nmax - 1, l));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = max_(-nmax, min_(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = int8_t(nmax + max_(-nmax, min_(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's group fit (ggml's make_q3_quants with do_rmse): start from the
// max-based scale, then up to five passes that move single values to the
// level that most improves the x^2-weighted fit. L gets q + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_(-nmax, min_(nmax - 1, l));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = max_(-nmax, min_(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Fits scale and min for n values quantized to [0, nmax] (x ~ scale*q - min)
// by a weighted least-squares search over nstep+1 candidate scales (ggml's
// make_qkx2_quants). Returns the scale; *the_min gets the (positive) min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(max_(0, min_(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = max_(0, min_(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

inline void set_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* q) {
  if (j < 4) {
    q[j] = ls;
    q[j + 4] = lm;
  } else {
    q[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] |= uint8_t((ls >> 4) << 6);
    q[j] |= uint8_t((lm >> 4) << 6);
  }
}

// Shared by Q4_K and Q5_K: fit the 8 groups of 32, quantize their scales and
// mins to 6 bits, then re-round every value to [0, nmax] against the decoded
// scales. L gets the final levels.
void fit_k4_superblock(const float* x, int nmax, float rmin, int nstep, uint8_t* scales_out, uint16_t* d_out,
                       uint16_t* dmin_out, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[QK_K / 32], scales[QK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
    uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
    ls = min_<uint8_t>(63, ls);
    lm = min_<uint8_t>(63, lm);
    set_scale_min_k4(j, ls, lm, scales_out);
  }
  *d_out = to_half(max_scale / 63.f);
  *dmin_out = to_half(max_min / 63.f);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, scales_out, &sc, &m);
    const float d = from_half(*d_out) * float(sc);
    if (d == 0.0f) continue;
    const float dm = from_half(*dmin_out) * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(max_(0, min_(nmax, l)));
    }
  }
}

}  // namespace

// ============================================================================
// Q2_K
// ============================================================================

void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  uint8_t L[QK_K], Laux[16];
  float weights[16], mins[QK_K / 16], scales[QK_K / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      y[i].d = to_half(max_scale / q4scale);
    } else {
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = 0;
      y[i].d = to_half(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      y[i].dmin = to_half(max_min / q4scale);
    } else {
      y[i].dmin = to_half(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = from_half(y[i].d) * float(y[i].scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = from_half(y[i].dmin) * float(y[i].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = uint8_t(max_(0, min_(3, l)));
      }
    }
    // byte l of each 32-byte half holds elements l, l+32, l+64, l+96 of its 128
    for (int j = 0; j < QK_K; j += 128)
      for (int l = 0; l < 32; ++l)
        y[i].qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
  }
}

void dequantize_row_q2_K(const block_q2_K* x, float* y, int64_t k) {
  int8_t q[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = from_half(x[i].d), dmin = from_half(x[i].dmin);
    unpack_q2_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * float(x[i].scales[j] & 0xF), ml = dmin * float(x[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * float(q[16 * j + l]) - ml;
    }
  }
}

// ============================================================================
// Q3_K
// ============================================================================

void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(y[i].scales, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(max_(-32, min_(31, int(l))) + 32);
        if (j < 8) {
          y[i].scales[j] = uint8_t(l & 0xF);
        } else {
          y[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
        }
        l = int8_t(l >> 4);
        y[i].scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
      }
      y[i].d = to_half(1 / iscale);
    } else {
      y[i].d = to_half(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = from_half(y[i].d) * float(q3_scale(y[i].scales, j));
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(max_(-4, min_(3, l)) + 4);
      }
    }
    // bit 2 of each level goes to hmask: element j -> byte j%32, bit j/32
    std::memset(y[i].hmask, 0, QK_K / 8);
    for (int j = 0; j < QK_K; ++j) {
      if (L[j] > 3) {
        y[i].hmask[j % 32] |= uint8_t(1u << (j / 32));
        L[j] = int8_t(L[j] - 4);
      }
    }
    for (int j = 0; j < QK_K; j += 128)
      for (int l = 0; l < 32; ++l)
        y[i].qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
  }
}

void dequantize_row_q3_K(const block_q3_K* x, float* y, int64_t k) {
  int8_t q[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = from_half(x[i].d);
    unpack_q3_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * float(q3_scale(x[i].scales, j));
      for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * float(q[16 * j + l]);
    }
  }
}

// ============================================================================
// Q4_K
// ============================================================================

void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    fit_k4_superblock(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
    // bytes 32c..32c+31: elements 64c+l in the low nibble, 64c+32+l in the high one
    uint8_t* q = y[i].qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
  }
}

void dequantize_row_q4_K(const block_q4_K* x, float* y, int64_t k) {
  int8_t q[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = from_half(x[i].d), dmin = from_half(x[i].dmin);
    unpack_q4_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[i].scales, &sc, &m);
      const float dl = d * float(sc), ml = dmin * float(m);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * float(q[32 * j + l]) - ml;
    }
  }
}

// ============================================================================
// Q5_K
// ============================================================================

void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    fit_k4_superblock(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
    // low nibbles as Q4_K; bit 4 of element 64c+l -> qh[l] bit 2c, of 64c+32+l -> bit 2c+1
    uint8_t* qh = y[i].qh;
    uint8_t* ql = y[i].qs;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int c = 0; c < QK_K; c += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[c + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[c + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = uint8_t(l1 | (l2 << 4));
      }
      m1 = uint8_t(m1 << 2);
      m2 = uint8_t(m2 << 2);
    }
  }
}

void dequantize_row_q5_K(const block_q5_K* x, float* y, int64_t k) {
  int8_t q[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = from_half(x[i].d), dmin = from_half(x[i].dmin);
    unpack_q5_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, x[i].scales, &sc, &m);
      const float dl = d * float(sc), ml = dmin * float(m);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * float(q[32 * j + l]) - ml;
    }
  }
}

// ============================================================================
// Q6_K
// ============================================================================

void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
      std::memset(&y[i], 0, sizeof(block_q6_K));
      y[i].d = to_half(0.f);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = to_half(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) y[i].scales[ib] = int8_t(min_(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = from_half(y[i].d) * float(y[i].scales[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(max_(-32, min_(31, l)) + 32);
      }
    }
    // per 128 elements: low nibbles of e and e+64 share ql[l], of e+32 and e+96
    // share ql[l+32]; the four 2-bit tops share qh[l]
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = uint8_t(q1 | (q3 << 4));
        ql[l + 32] = uint8_t(q2 | (q4 << 4));
        qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                        ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_row_q6_K(const block_q6_K* x, float* y, int64_t k) {
  int8_t q[QK_K];
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = from_half(x[i].d);
    unpack_q6_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * float(x[i].scales[j]);
      for (int l = 0; l < 16; ++l) y[16 * j + l] = dl * float(q[16 * j + l]);
    }
  }
}

// ============================================================================
// Q8_K
// ============================================================================

void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k) {
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y[i].d = 0;
      std::memset(y[i].qs, 0, QK_K);
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));  // (ggml leaves them as they were)
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) y[i].qs[j] = int8_t(min_(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < QK_K / 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += y[i].qs[16 * j + l];
      y[i].bsums[j] = int16_t(s);
    }
    y[i].d = 1 / iscale;
  }
}

void dequantize_row_q8_K(const block_q8_K* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K)
    for (int j = 0; j < QK_K; ++j) y[j] = x[i].d * float(x[i].qs[j]);
}

}  // namespace sc
