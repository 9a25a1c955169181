#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "format/quant.h"
#include "format/tensor_types.h"

namespace sc {
namespace {

// Reference tiles: plain loops (the generic level; the SIMD levels hold
// register-blocked versions of the same sums in attention_avx*.cpp).
void qk_tile_generic(const float* q, int m, int d, const float* kt, float* s) {
  for (int i = 0; i < m; ++i) {
    float acc[kAttnTile] = {};
    for (int c = 0; c < d; ++c) {
      const float qv = q[int64_t(i) * d + c];
      const float* kr = kt + int64_t(c) * kAttnTile;
      for (int j = 0; j < kAttnTile; ++j) acc[j] += qv * kr[j];
    }
    for (int j = 0; j < kAttnTile; ++j) s[int64_t(i) * kAttnTile + j] = acc[j];
  }
}

void pv_tile_generic(const float* p, int m, int nk, const float* v, int d, float* o) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < nk; ++j) {
      const float pv = p[int64_t(i) * kAttnTile + j];
      const float* vr = v + int64_t(j) * d;
      float* orow = o + int64_t(i) * d;
      for (int c = 0; c < d; ++c) orow[c] += pv * vr[c];
    }
}

void pack_kt_f16_generic(const uint8_t* k, size_t row_bytes, int nk, int d, float* kt) {
  for (int j = 0; j < kAttnTile; ++j) {
    if (j >= nk) {
      for (int c = 0; c < d; ++c) kt[int64_t(c) * kAttnTile + j] = 0.f;
      continue;
    }
    const uint16_t* kr = reinterpret_cast<const uint16_t*>(k + size_t(j) * row_bytes);
    for (int c = 0; c < d; ++c) kt[int64_t(c) * kAttnTile + j] = fp16_to_fp32(kr[c]);
  }
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// One work item: query rows [token t0, t1) x heads [h0, h0 + nh) of K/V head
// g, against keys [k0, k1) (clipped per row by causality). Leaves the
// unnormalised output o, the running max m and the sum l per row.
struct Item {
  int t0, t1, h0, nh, g, k0, k1;
};

}  // namespace

void fill_attention_generic(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_generic;
  k.attn_pv_tile = pv_tile_generic;
  k.attn_pack_kt_f16 = pack_kt_f16_generic;
}

void CpuAttention::run(const AttentionArgs& a, ThreadPool& pool, const CpuKernels& k) {
  const int d = a.head_dim;
  const int group = a.n_head / a.n_head_kv;  // query heads per K/V head
  const int64_t out_stride = int64_t(a.n_head) * d;
  const int n_keys_total = a.n_past + a.n_tokens;

  // Query blocks: enough tokens that a block has ~128 query rows, so that
  // packing each K/V tile is cheap next to the work done with it.
  const int tq = std::max(1, std::min(a.n_tokens, 128 / group));
  const int n_qb = (a.n_tokens + tq - 1) / tq;
  const int base = n_qb * a.n_head_kv;
  // Too few blocks to keep every thread busy (decode): split the keys too,
  // and merge the partial softmaxes afterwards (flash-decoding).
  int n_split = 1;
  if (base < pool.size() && n_keys_total >= 4 * kAttnTile)
    n_split = std::min((pool.size() + base - 1) / base, n_keys_total / (2 * kAttnTile));
  const int per_split = (n_keys_total + n_split - 1) / n_split;
  const int keys_per_split = (per_split + kAttnTile - 1) / kAttnTile * kAttnTile;
  const int rows_max = tq * group;
  if (n_split > 1) partial_.resize(size_t(base) * n_split * rows_max * (d + 2));

  auto item_at = [&](int64_t i) {
    // Causal work grows with the block index; interleave cheap and costly
    // blocks so the pool's contiguous slices get equal work.
    const int split = int(i % n_split);
    const int64_t bi = i / n_split;
    const int g = int(bi % a.n_head_kv);
    const int j = int(bi / a.n_head_kv);
    const int qb = (j % 2 == 0) ? j / 2 : n_qb - 1 - j / 2;
    Item it;
    it.t0 = qb * tq;
    it.t1 = std::min(a.n_tokens, it.t0 + tq);
    it.g = g;
    it.h0 = g * group;
    it.nh = group;
    it.k0 = split * keys_per_split;
    it.k1 = std::min(a.n_past + it.t1, it.k0 + keys_per_split);
    return it;
  };

  const size_t kv_row_bytes = size_t(row_size(a.kv_type, a.kv_dim));
  pool.parallel_for(int64_t(base) * n_split, 1, [&](int64_t i0, int64_t i1, int tid) {
    Scratch& sc = scratch_[size_t(tid)];
    for (int64_t i = i0; i < i1; ++i) {
      const Item it = item_at(i);
      const int m = (it.t1 - it.t0) * it.nh;
      sc.q.resize(size_t(m) * d);
      sc.o.assign(size_t(m) * d, 0.f);
      sc.s.resize(size_t(m) * kAttnTile);
      sc.kt.resize(size_t(d) * kAttnTile);
      sc.v.resize(size_t(kAttnTile) * d);
      sc.row.resize(size_t(d));
      sc.m.assign(size_t(m), kNegInf);
      sc.l.assign(size_t(m), 0.f);
      // Query rows, pre-scaled: row r is token t0 + r / nh, head h0 + r % nh.
      for (int r = 0; r < m; ++r) {
        const float* src = a.q + int64_t(it.t0 + r / it.nh) * a.q_stride + int64_t(it.h0 + r % it.nh) * d;
        for (int c = 0; c < d; ++c) sc.q[size_t(r) * d + c] = src[c] * a.scale;
      }
      const size_t head_offset = size_t(row_size(a.kv_type, int64_t(it.g) * d));  // bytes into a cache row
      for (int kb = it.k0; kb < it.k1; kb += kAttnTile) {
        const int nk = std::min(kAttnTile, it.k1 - kb);
        // Pack the tile: K transposed (kt[c][j]) and V as rows, both float32.
        if (a.kv_type == TensorType::F16) {  // the default cache: register transposes where the level has them
          const uint8_t* k0 = static_cast<const uint8_t*>(a.k_cache) + size_t(kb) * kv_row_bytes + head_offset;
          const uint8_t* v0 = static_cast<const uint8_t*>(a.v_cache) + size_t(kb) * kv_row_bytes + head_offset;
          k.attn_pack_kt_f16(k0, kv_row_bytes, nk, d, sc.kt.data());
          for (int j = 0; j < nk; ++j)
            k.f16_to_f32(reinterpret_cast<const uint16_t*>(v0 + size_t(j) * kv_row_bytes), sc.v.data() + size_t(j) * d, d);
        } else {  // F32 or Q8_0: row by row
          for (int j = 0; j < kAttnTile; ++j) {
            if (j < nk) {
              const size_t at = size_t(kb + j) * kv_row_bytes + head_offset;
              const uint8_t* kr = static_cast<const uint8_t*>(a.k_cache) + at;
              const uint8_t* vr = static_cast<const uint8_t*>(a.v_cache) + at;
              const float* kf = sc.row.data();
              if (a.kv_type == TensorType::F32) {
                kf = reinterpret_cast<const float*>(kr);
                std::memcpy(sc.v.data() + size_t(j) * d, vr, size_t(d) * 4);
              } else {
                dequantize_row(a.kv_type, kr, sc.row.data(), d);
                dequantize_row(a.kv_type, vr, sc.v.data() + size_t(j) * d, d);
              }
              for (int c = 0; c < d; ++c) sc.kt[size_t(c) * kAttnTile + j] = kf[c];
            } else {
              for (int c = 0; c < d; ++c) sc.kt[size_t(c) * kAttnTile + j] = 0.f;
            }
          }
        }
        k.attn_qk_tile(sc.q.data(), m, d, sc.kt.data(), sc.s.data());
        // Online softmax per row over this tile's visible keys.
        for (int r = 0; r < m; ++r) {
          float* s = sc.s.data() + size_t(r) * kAttnTile;
          const int limit = a.n_past + it.t0 + r / it.nh + 1;  // keys < limit are visible
          const int nv = std::max(0, std::min(nk, limit - kb));
          if (nv == 0) {
            std::fill(s, s + nk, 0.f);
            continue;
          }
          const float mx = std::max(sc.m[size_t(r)], max_of(s, nv));
          const float sum = k.exp_shift_sum(s, nv, mx);
          std::fill(s + nv, s + nk, 0.f);
          if (mx != sc.m[size_t(r)]) {
            const float alpha = std::exp(sc.m[size_t(r)] - mx);  // 0 for the first tile
            float* o = sc.o.data() + size_t(r) * d;
            for (int c = 0; c < d; ++c) o[c] *= alpha;
            sc.l[size_t(r)] *= alpha;
            sc.m[size_t(r)] = mx;
          }
          sc.l[size_t(r)] += sum;
        }
        k.attn_pv_tile(sc.s.data(), m, nk, sc.v.data(), d, sc.o.data());
      }
      if (n_split == 1) {
        for (int r = 0; r < m; ++r) {
          float* out = a.out + int64_t(it.t0 + r / it.nh) * out_stride + int64_t(it.h0 + r % it.nh) * d;
          const float inv = 1.f / sc.l[size_t(r)];
          for (int c = 0; c < d; ++c) out[c] = sc.o[size_t(r) * d + c] * inv;
        }
      } else {
        float* p = partial_.data() + size_t(i) * rows_max * (d + 2);
        for (int r = 0; r < m; ++r) {
          float* pr = p + size_t(r) * (d + 2);
          pr[0] = sc.m[size_t(r)];
          pr[1] = sc.l[size_t(r)];
          std::memcpy(pr + 2, sc.o.data() + size_t(r) * d, size_t(d) * 4);
        }
      }
    }
  });
  if (n_split == 1) return;

  // Merge the splits of each block: rescale every partial sum to the common max.
  pool.parallel_for(base, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      const Item it = item_at(bi * n_split);
      const int m = (it.t1 - it.t0) * it.nh;
      for (int r = 0; r < m; ++r) {
        float mx = kNegInf;
        for (int sp = 0; sp < n_split; ++sp)
          mx = std::max(mx, partial_[(size_t(bi * n_split + sp) * rows_max + r) * (d + 2)]);
        float* out = a.out + int64_t(it.t0 + r / it.nh) * out_stride + int64_t(it.h0 + r % it.nh) * d;
        std::fill(out, out + d, 0.f);
        float l = 0.f;
        for (int sp = 0; sp < n_split; ++sp) {
          const float* pr = partial_.data() + (size_t(bi * n_split + sp) * rows_max + r) * (d + 2);
          if (pr[1] == 0.f) continue;  // no visible keys in this split
          const float w = std::exp(pr[0] - mx);
          l += pr[1] * w;
          for (int c = 0; c < d; ++c) out[c] += pr[2 + c] * w;
        }
        const float inv = 1.f / l;
        for (int c = 0; c < d; ++c) out[c] *= inv;
      }
    }
  });
}

}  // namespace sc
