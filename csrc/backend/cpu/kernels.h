// Inner loops of the CPU backend, one table per instruction-set level.
// Each SIMD variant sits beside the plain C++ reference and is tested equal
// to it (within float reassociation). The level is chosen once at start-up
// from cpuid (x86-64) or the auxiliary vector (aarch64); STARCODER_CPU=
// generic|avx2|avx512|avx512_zmm (x86-64) or generic|neon|neon_dotprod
// (aarch64) forces another the CPU can run. Of the two AVX-512 levels, avx512_zmm (the prompt GEMM on
// 16-row panels in 512-bit registers for every format) is chosen where a
// 512-bit integer multiply-add runs at full width, avx512 (Q4_0 and Q8_0 on
// 16-row panels as two 256-bit halves, the k-quants in 512-bit registers)
// where it is split into two halves; STARCODER_CPU=avx512 or avx512_zmm
// forces either.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/tensor_types.h"

namespace sc {

// Quantized weights (formats in quant.h), a small GEMM:
//   out[a * out_stride + r] = w_r . act_a   for r < n_w, a < n_act
// with weight rows w_stride bytes apart and activation rows act_stride bytes
// apart, each already quantized into the weight type's vec_dot_type (Q8_0,
// Q8_1 or Q8_K). One call gets a thread's whole slice of rows and every
// token, so a kernel may tile both (decode: n_act = 1; prompt: many).
using QuantDotFn = void (*)(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride,
                            int n_act, float* out, size_t out_stride);
// n floats -> one activation row of an activation type (Q8_0, Q8_1, Q8_K).
using QuantizeActFn = void (*)(const float* x, void* y, int64_t n);

// Slots of the per-type tables below, one per weight type with a dot product.
enum QuantSlot { kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K, kQuantSlots };
enum ActSlot { kActQ8_0, kActQ8_1, kActQ8_K, kActSlots };
// -1 when t has no slot (float types, activation-only types).
int quant_slot(TensorType t);
int act_slot(TensorType t);

// One float GEMM's packing and register tile (gemm_columns drives it).
// Packed panels are arrays of 32-bit units, each holding k_pack consecutive
// K elements: one float32 (k_pack 1) or a pair of bfloat16 (k_pack 2, the
// lower K index in the low half, as vdpbf16ps pairs them); a K length of n
// takes gemm_k_units(n) units.
struct FloatGemm {
  // Register tile: mr tokens x nr outputs.
  int mr = 0, nr = 0, k_pack = 1;
  // Packs weight rows [0, n_rows) (n_rows <= nr, stored as t = F32, F16 or
  // BF16, row_bytes apart), columns [k0, k0 + kc), into a K-major panel:
  // unit u of row j at panel[u * nr + j]; rows n_rows..nr-1 are zero, as is
  // the second half of a last unit past kc.
  void (*pack_w)(TensorType t, const uint8_t* w, size_t row_bytes, int n_rows, int64_t k0, int64_t kc, int nr,
                 float* panel) = nullptr;
  // Packs activation rows [0, n_rows) (n_rows <= mr, ldx floats apart, n
  // long) into a K-major panel: unit u of row i at panel[u * mr + i]; rows
  // n_rows..mr-1 are zero.
  void (*pack_x_panel)(const float* x, int64_t ldx, int n_rows, int64_t n, int mr, float* panel) = nullptr;
  // One tile over kc elements of K, from a packed activation panel a and a
  // packed weight panel b:
  //   c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + sum_k a[k][i] * b[k][j]
  // for i < m <= mr, j < n <= nr (the rest of the tile is not stored).
  void (*tile)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
               bool accumulate) = nullptr;
};
inline int64_t gemm_k_units(const FloatGemm& g, int64_t n) { return (n + g.k_pack - 1) / g.k_pack; }

struct CpuKernels {
  const char* level;
  // sum_i a[i] * b[i]
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  // out[r] = sum_i w[r][i] * x[i] for 4 rows at once (x loaded once for all 4).
  void (*dot4_f32)(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                   float* out);
  // dot4_f32 with the 4 weight rows stored as IEEE half, converted in
  // registers (decode: the weights are read once, so no f32 copy is made).
  void (*dot4_f16)(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                   int64_t n, float* out);
  // The same for bfloat16 rows.
  void (*dot4_bf16)(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                    int64_t n, float* out);
  // y += a * x
  void (*axpy_f32)(float* y, float a, const float* x, int64_t n);
  // x[i] = exp(x[i] - max) in place; returns the sum (softmax numerator).
  float (*exp_shift_sum)(float* x, int64_t n, float max);
  // IEEE half -> float for a row.
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);

  // ---- GELU and LayerNorm ----
  // In place, x[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (gelu_pytorch_tanh).
  void (*gelu_tanh)(float* x, int64_t n);
  // In place, x[i] = 0.5 x (1 + erf(x / sqrt(2))).
  void (*gelu_erf)(float* x, int64_t n);
  // One row: y = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
  void (*layer_norm)(const float* x, const float* gamma, const float* beta, int64_t n, float eps, float* y);

  // ---- float GEMMs of the prompt path (F32/F16/BF16 weights), see gemm_columns ----
  // gemm: float32 products, exact to float rounding for every weight type.
  // gemm_bf16: F16/BF16 weights and the activations rounded to bfloat16,
  // products summed in float32 (vdpbf16ps where the CPU has AVX512_BF16:
  // twice the float32 FMA rate); taken only when a model asks for it
  // (matmul_precision "bf16"). Its tile is null at a level without bf16
  // products; the generic level has the reference (float32 products of the
  // rounded values).
  FloatGemm gemm, gemm_bf16;

  // Quantized dot products by QuantSlot, activation quantizers by ActSlot.
  QuantDotFn quant_dot[kQuantSlots];
  QuantizeActFn quantize_act[kActSlots];
  // Attention tiles (cpu/attention.h, kAttnTile keys each):
  // s[i][j] = q_i . k_j for i < m, with the key tile transposed (kt[c][j]);
  void (*attn_qk_tile)(const float* q, int m, int d, const float* kt, float* s);
  // o_i += sum_{j < nk} p[i][j] v_j (p rows kAttnTile apart, v/o rows d apart).
  void (*attn_pv_tile)(const float* p, int m, int nk, const float* v, int d, float* o);
  // The transposed key tile from an F16 cache: kt[c * kAttnTile + j] = k_j[c]
  // as float32 for keys j < nk (row j at k + j * row_bytes, d halves), zero
  // for nk <= j < kAttnTile.
  void (*attn_pack_kt_f16)(const uint8_t* k, size_t row_bytes, int nk, int d, float* kt);
};

// The largest of x[0..n), n >= 1, ignoring NaNs unless x[0] is one. Plain
// C++ with eight running maxima, so every level's compiler vectorises it
// (std::max_element is a scalar compare-and-branch loop). Attention's
// softmax and the sampler's argmax and log-softmax use it.
float max_of(const float* x, int64_t n);

// The kernels chosen at start-up (best level, or the one STARCODER_CPU asks for).
const CpuKernels& cpu_kernels();
const CpuKernels& generic_kernels();
// By name ("generic", "avx2", "avx512", "avx512_zmm", "neon", "neon_dotprod"); nullptr if unknown or this CPU (or
// this build) cannot run that level.
const CpuKernels* kernels_for_level(const char* name);
// The levels this CPU can run, lowest first ("generic" always).
const char* const* supported_levels();

// ---- the prompt-path GEMM driver (kernels.cpp), over one of a level's float GEMMs ----
//   y[t * ldy + o] = sum_k x[t][k] * w[o][k] (+ bias[o])
// Activations are packed once per call (gemm_pack_x, shared by all threads);
// then each thread computes a slice of output columns with gemm_columns,
// which packs weight panels into its own scratch buffer (never a copy of the
// whole matrix) and runs the level's register tile over cache blocks.
// 32-bit units of the packed activations (tokens rounded up to mr, times n_in's units).
size_t gemm_packed_x_floats(const FloatGemm& g, int n_tokens, int64_t n_in);
// Packs the token panels [p0, p1) (panel p: tokens p*mr .. p*mr+mr-1, zero
// past n_tokens) of x [n_tokens, n_in], K-major per panel.
void gemm_pack_x(const FloatGemm& g, const float* x, int n_tokens, int64_t n_in, int64_t p0, int64_t p1,
                 float* packed);
// Token panels of a call: n_tokens / mr, rounded up.
int64_t gemm_panels_x(const FloatGemm& g, int n_tokens);
// 32-bit units of the per-thread scratch gemm_columns needs.
size_t gemm_scratch_floats(const FloatGemm& g, int64_t n_in);
// Output columns [o0, o1) for every token. w: n_out rows of n_in elements of
// type t (F32, F16, BF16), row_bytes apart; bias may be null.
void gemm_columns(const FloatGemm& g, TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in,
                  const float* bias, const float* packed_x, int n_tokens, int64_t o0, int64_t o1, float* y,
                  int64_t ldy, float* scratch);

// ---- what the per-ISA files provide (each compiled with its own flags) ----
// Whether the CPU and OS can run a level (false in a build without the file's flags).
bool cpu_supports_avx2();    // AVX2 + FMA + F16C, YMM state saved
bool cpu_supports_avx512();  // AVX-512 F/BW/DQ/VL + VNNI, ZMM state saved
// Whether a 512-bit vpdpbusd retires at >= 1.5x the 256-bit rate (full-width
// 512-bit units, not two 256-bit halves as on Zen 4): measured once, about
// 0.4 ms, on the first call (peaks_avx512.cpp). Picks avx512_zmm over avx512.
bool cpu_runs_zmm_at_full_width();
// Each fills its part of its level's table; a slot it leaves alone keeps the
// kernel of the level below (avx512 starts from avx2, avx2 from generic).
void fill_float_avx2(CpuKernels& k);           // kernels_avx2.cpp: the float kernels (dots, GEMM, GELU, LayerNorm)
void fill_quant_legacy_avx2(CpuKernels& k);    // quant_dot_avx2.cpp: Q4_0..Q8_0, Q8_0/Q8_1 activations
void fill_quant_k_avx2(CpuKernels& k);         // quant_dot_k_avx2.cpp: Q2_K..Q6_K, Q8_K activations
// quant_gemm_avx2.cpp (quant_gemm_x86.h): Q4_0, Q8_0, k-quant prompts through 8-row panels; wraps the row kernels above, so call it after them.
void fill_quant_gemm_avx2(CpuKernels& k);
void fill_float_avx512(CpuKernels& k);         // kernels_avx512.cpp
// gemm_bf16_avx512.cpp: the bf16 GEMM, where cpuid reports AVX512_BF16 (both AVX-512 levels).
void fill_gemm_bf16_avx512(CpuKernels& k);
void fill_quant_legacy_avx512(CpuKernels& k);  // quant_dot_avx512.cpp
// quant_dot_avx512.cpp, the avx512_zmm level: Q4_0 keeps the zmm tiles for 4-7 tokens too (call before the wide GEMM).
void fill_quant_legacy_avx512_zmm(CpuKernels& k);
void fill_quant_k_avx512(CpuKernels& k);       // quant_dot_k_avx512.cpp
// quant_gemm_avx512.cpp: the same GEMM with VNNI; wraps the AVX-512 row kernels, so call it after them.
void fill_quant_gemm_avx512(CpuKernels& k);
// Q4_0 and Q8_0 on 16-row panels in 512-bit registers too (the avx512_zmm level); wraps the above.
void fill_quant_gemm_avx512_zmm(CpuKernels& k);
void fill_attention_generic(CpuKernels& k);    // attention.cpp
void fill_attention_avx2(CpuKernels& k);       // attention_avx2.cpp
void fill_attention_avx512(CpuKernels& k);     // attention_avx512.cpp

// ---- aarch64 (stubs elsewhere): neon starts from generic, neon_dotprod from neon ----
// Advanced SIMD is mandatory on aarch64, so the neon level needs no check.
bool cpu_supports_neon_dotprod();              // ARMv8.2 SDOT/UDOT (HWCAP_ASIMDDP, FEAT_DotProd)
void fill_float_neon(CpuKernels& k);           // kernels_neon.cpp: the f32/f16 kernels
void fill_quant_neon(CpuKernels& k);           // quant_dot_neon.cpp: quantized dots, Q8_0/Q8_1/Q8_K activations
void fill_attention_neon(CpuKernels& k);       // attention_neon.cpp
void fill_quant_neon_dotprod(CpuKernels& k);   // quant_dot_neon_dotprod.cpp: quantized dots with vdotq_s32

}  // namespace sc
