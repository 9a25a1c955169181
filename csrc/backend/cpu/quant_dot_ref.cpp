// Reference dot products (see quant_dot_ref.h). Each weight block is decoded
// to int8 once, then combined with block i of every activation row; out[k]
// accumulates blocks in order, so the result does not depend on n_act.
#include "backend/cpu/quant_dot_ref.h"

#include <stdexcept>
#include <string>

#include "format/quant.h"
#include "format/quant_internal.h"
#include "format/quant_unpack.h"

namespace sc {

using qi::from_half;

void vec_dot_q4_0_q8_0(int64_t n, const block_q4_0* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK4_0];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    for (int j = 0; j < QK4_0 / 2; ++j) {
      q[j] = int8_t((x[i].qs[j] & 0x0F) - 8);
      q[j + QK4_0 / 2] = int8_t((x[i].qs[j] >> 4) - 8);
    }
    const float dx = from_half(x[i].d);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_0& y = qi::act_block<block_q8_0>(acts, stride, k, i);
      out[k] += float(qi::dot_i8<QK4_0>(q, y.qs)) * dx * from_half(y.d);
    }
  }
}

void vec_dot_q4_1_q8_1(int64_t n, const block_q4_1* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK4_1];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    for (int j = 0; j < QK4_1 / 2; ++j) {
      q[j] = int8_t(x[i].qs[j] & 0x0F);
      q[j + QK4_1 / 2] = int8_t(x[i].qs[j] >> 4);
    }
    const float dx = from_half(x[i].d), mx = from_half(x[i].m);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_1& y = qi::act_block<block_q8_1>(acts, stride, k, i);
      // sum_j (d q_j + m) * dy q8_j = d dy sum(q q8) + m * s, s = dy sum(q8)
      out[k] += dx * from_half(y.d) * float(qi::dot_i8<QK4_1>(q, y.qs)) + mx * from_half(y.s);
    }
  }
}

void vec_dot_q5_0_q8_0(int64_t n, const block_q5_0* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK5_0];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    qu::unpack_q5(x[i].qs, x[i].qh, 16, q);
    const float dx = from_half(x[i].d);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_0& y = qi::act_block<block_q8_0>(acts, stride, k, i);
      out[k] += float(qi::dot_i8<QK5_0>(q, y.qs)) * dx * from_half(y.d);
    }
  }
}

void vec_dot_q5_1_q8_1(int64_t n, const block_q5_1* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK5_1];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK5_1; ++i) {
    qu::unpack_q5(x[i].qs, x[i].qh, 0, q);
    const float dx = from_half(x[i].d), mx = from_half(x[i].m);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_1& y = qi::act_block<block_q8_1>(acts, stride, k, i);
      out[k] += dx * from_half(y.d) * float(qi::dot_i8<QK5_1>(q, y.qs)) + mx * from_half(y.s);
    }
  }
}

void vec_dot_q8_0_q8_0(int64_t n, const block_q8_0* x, const void* acts, size_t stride, int n_act, float* out) {
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float dx = from_half(x[i].d);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_0& y = qi::act_block<block_q8_0>(acts, stride, k, i);
      out[k] += float(qi::dot_i8<QK8_0>(x[i].qs, y.qs)) * dx * from_half(y.d);
    }
  }
}

void vec_dot_multi(TensorType t, int64_t n, const void* w, const void* a, size_t stride, int n_act, float* out) {
  switch (t) {
    case TensorType::Q4_0: return vec_dot_q4_0_q8_0(n, static_cast<const block_q4_0*>(w), a, stride, n_act, out);
    case TensorType::Q4_1: return vec_dot_q4_1_q8_1(n, static_cast<const block_q4_1*>(w), a, stride, n_act, out);
    case TensorType::Q5_0: return vec_dot_q5_0_q8_0(n, static_cast<const block_q5_0*>(w), a, stride, n_act, out);
    case TensorType::Q5_1: return vec_dot_q5_1_q8_1(n, static_cast<const block_q5_1*>(w), a, stride, n_act, out);
    case TensorType::Q8_0: return vec_dot_q8_0_q8_0(n, static_cast<const block_q8_0*>(w), a, stride, n_act, out);
    case TensorType::Q2_K: return vec_dot_q2_K_q8_K(n, static_cast<const block_q2_K*>(w), a, stride, n_act, out);
    case TensorType::Q3_K: return vec_dot_q3_K_q8_K(n, static_cast<const block_q3_K*>(w), a, stride, n_act, out);
    case TensorType::Q4_K: return vec_dot_q4_K_q8_K(n, static_cast<const block_q4_K*>(w), a, stride, n_act, out);
    case TensorType::Q5_K: return vec_dot_q5_K_q8_K(n, static_cast<const block_q5_K*>(w), a, stride, n_act, out);
    case TensorType::Q6_K: return vec_dot_q6_K_q8_K(n, static_cast<const block_q6_K*>(w), a, stride, n_act, out);
    default:
      throw std::invalid_argument("vec_dot: no quantized dot product for " + tensor_type_name(t));
  }
}

float vec_dot(TensorType t, int64_t n, const void* w, const void* a) {
  float out;
  vec_dot_multi(t, n, w, a, 0, 1, &out);
  return out;
}

// ---------------------------------------------------------------- k-quants

void vec_dot_q2_K_q8_K(int64_t n, const block_q2_K* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK_K];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    qu::unpack_q2_K(x[i], q);
    const float d = from_half(x[i].d), dmin = from_half(x[i].dmin);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_K& y = qi::act_block<block_q8_K>(acts, stride, k, i);
      int isum = 0, summs = 0;
      for (int j = 0; j < QK_K / 16; ++j) {
        isum += (x[i].scales[j] & 0xF) * qi::dot_i8<16>(q + 16 * j, y.qs + 16 * j);
        summs += (x[i].scales[j] >> 4) * y.bsums[j];
      }
      // x = d*sc*q - dmin*m  =>  x.y8 = d*sum(sc*q.y8) - dmin*sum(m*bsum)
      out[k] += y.d * d * float(isum) - y.d * dmin * float(summs);
    }
  }
}

void vec_dot_q3_K_q8_K(int64_t n, const block_q3_K* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK_K];
  int sc[QK_K / 16];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    qu::unpack_q3_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) sc[j] = qu::q3_scale(x[i].scales, j);
    const float d = from_half(x[i].d);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_K& y = qi::act_block<block_q8_K>(acts, stride, k, i);
      int isum = 0;
      for (int j = 0; j < QK_K / 16; ++j) isum += sc[j] * qi::dot_i8<16>(q + 16 * j, y.qs + 16 * j);
      out[k] += d * y.d * float(isum);
    }
  }
}

// Shared by Q4_K and Q5_K: levels q (element order), 6-bit scales/mins.
// Shared by Q4_K and Q5_K: levels q (element order) with 6-bit group scales and mins.
struct K4Block {
  int8_t q[QK_K];
  uint8_t sc[QK_K / 32], m[QK_K / 32];
  float d, dmin;
};

static inline void dot_k4_superblock(const K4Block& b, const void* acts, size_t stride, int64_t i, int n_act,
                                     float* out) {
  for (int k = 0; k < n_act; ++k) {
    const block_q8_K& y = qi::act_block<block_q8_K>(acts, stride, k, i);
    int isum = 0, summs = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
      isum += b.sc[j] * qi::dot_i8<32>(b.q + 32 * j, y.qs + 32 * j);
      summs += b.m[j] * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    out[k] += y.d * b.d * float(isum) - y.d * b.dmin * float(summs);
  }
}

void vec_dot_q4_K_q8_K(int64_t n, const block_q4_K* x, const void* acts, size_t stride, int n_act, float* out) {
  K4Block b;
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    qu::unpack_q4_K(x[i], b.q);
    for (int j = 0; j < QK_K / 32; ++j) qu::get_scale_min_k4(j, x[i].scales, &b.sc[j], &b.m[j]);
    b.d = from_half(x[i].d);
    b.dmin = from_half(x[i].dmin);
    dot_k4_superblock(b, acts, stride, i, n_act, out);
  }
}

void vec_dot_q5_K_q8_K(int64_t n, const block_q5_K* x, const void* acts, size_t stride, int n_act, float* out) {
  K4Block b;
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    qu::unpack_q5_K(x[i], b.q);
    for (int j = 0; j < QK_K / 32; ++j) qu::get_scale_min_k4(j, x[i].scales, &b.sc[j], &b.m[j]);
    b.d = from_half(x[i].d);
    b.dmin = from_half(x[i].dmin);
    dot_k4_superblock(b, acts, stride, i, n_act, out);
  }
}

void vec_dot_q6_K_q8_K(int64_t n, const block_q6_K* x, const void* acts, size_t stride, int n_act, float* out) {
  int8_t q[QK_K];
  for (int k = 0; k < n_act; ++k) out[k] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    qu::unpack_q6_K(x[i], q);
    const float d = from_half(x[i].d);
    for (int k = 0; k < n_act; ++k) {
      const block_q8_K& y = qi::act_block<block_q8_K>(acts, stride, k, i);
      int isum = 0;
      for (int j = 0; j < QK_K / 16; ++j) isum += x[i].scales[j] * qi::dot_i8<16>(q + 16 * j, y.qs + 16 * j);
      out[k] += d * y.d * float(isum);
    }
  }
}

}  // namespace sc
