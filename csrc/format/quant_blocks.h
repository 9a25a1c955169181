// ggml's quantized block formats, byte for byte (ggml-common.h): a row of n
// elements is n / block_size blocks laid out back to back. Scales are IEEE
// half floats stored as raw uint16_t bits (except Q8_K's float d).
//
// Structs and sizes only, so that every backend (a .cu file included) can
// read the same bytes; the reference quantizers are in quant.h and the CPU
// dot products in backend/cpu/.
#pragma once
#include <cstdint>

namespace sc {

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256;        // k-quant super-block
constexpr int K_SCALE_SIZE = 12; // packed 6-bit scales/mins of Q4_K/Q5_K (and Q3_K's 16 scales)

// ---------------------------------------------------------------- legacy (32)
struct block_q4_0 {   // x = d * (q - 8), q in [0, 15]
  uint16_t d;
  uint8_t qs[QK4_0 / 2];  // element j in the low nibble of qs[j], element j+16 in its high nibble
};
struct block_q4_1 {   // x = d * q + m
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {   // x = d * (q - 16), q in [0, 31]; bit 4 of element j is bit j of qh
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {   // x = d * q + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {   // x = d * q
  uint16_t d;
  int8_t qs[QK8_0];
};
struct block_q8_1 {   // activations for Q4_1/Q5_1: s = d * sum(qs)
  uint16_t d, s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 layout");
static_assert(sizeof(block_q4_1) == 2 * 2 + QK4_1 / 2, "block_q4_1 layout");
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 layout");
static_assert(sizeof(block_q5_1) == 2 * 2 + 4 + QK5_1 / 2, "block_q5_1 layout");
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 layout");
static_assert(sizeof(block_q8_1) == 2 * 2 + QK8_1, "block_q8_1 layout");

// ---------------------------------------------------------------- k-quants (256)
struct block_q2_K {   // 16 groups of 16: x = d*(sc&15)*q - dmin*(sc>>4), q in [0, 3]
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};
struct block_q3_K {   // 16 groups of 16: x = d*(sc-32)*q, q in [-4, 3]; 6-bit sc packed in 12 bytes
  uint8_t hmask[QK_K / 8];  // high bit of each q (set: q >= 0)
  uint8_t qs[QK_K / 4];     // low 2 bits
  uint8_t scales[12];
  uint16_t d;
};
struct block_q4_K {   // 8 groups of 32: x = d*sc*q - dmin*m, q in [0, 15]; 6-bit sc/m
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct block_q5_K {   // as Q4_K with a fifth bit per q in qh
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct block_q6_K {   // 16 groups of 16: x = d*sc*q, q in [-32, 31], sc int8
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
struct block_q8_K {   // activations for the k-quants
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];  // sum of each group of 16 qs
};
static_assert(sizeof(block_q2_K) == QK_K / 16 + QK_K / 4 + 2 * 2, "block_q2_K layout");
static_assert(sizeof(block_q3_K) == QK_K / 8 + QK_K / 4 + 12 + 2, "block_q3_K layout");
static_assert(sizeof(block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "block_q4_K layout");
static_assert(sizeof(block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2, "block_q5_K layout");
static_assert(sizeof(block_q6_K) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "block_q6_K layout");
static_assert(sizeof(block_q8_K) == 4 + QK_K + 2 * (QK_K / 16), "block_q8_K layout");

}  // namespace sc
