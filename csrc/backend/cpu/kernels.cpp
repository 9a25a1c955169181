// Reference kernels and the start-up choice of kernel level.
#include "backend/cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "format/quant.h"
#include "backend/cpu/quant_dot_ref.h"
#include "format/tensor_types.h"

namespace sc {
namespace {

// Independent partial sums: the compiler vectorises this with baseline SSE2
// and the summation order stays fixed (deterministic results).
float dot_f32_ref(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  float s = 0.f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

void dot4_f32_ref(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                  float* out) {
  out[0] = dot_f32_ref(w0, x, n);
  out[1] = dot_f32_ref(w1, x, n);
  out[2] = dot_f32_ref(w2, x, n);
  out[3] = dot_f32_ref(w3, x, n);
}

void f16_to_f32_ref(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

template <float (*H)(uint16_t)>
void dot4_half_ref(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                   int64_t n, float* out) {
  const uint16_t* w[4] = {w0, w1, w2, w3};
  for (int r = 0; r < 4; ++r) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += H(w[r][i + l]) * x[i + l];
    float s = 0.f;
    for (; i < n; ++i) s += H(w[r][i]) * x[i];
    for (int l = 0; l < 16; ++l) s += acc[l];
    out[r] = s;
  }
}

void axpy_f32_ref(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

float exp_shift_sum_ref(float* x, int64_t n, float max) {
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  return sum;
}

// The tanh approximation as written in PyTorch (gelu_pytorch_tanh).
void gelu_tanh_ref(float* x, int64_t n) {
  const float c = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(c * (v + 0.044715f * v * v * v)));
  }
}

void gelu_erf_ref(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * float(M_SQRT1_2)));
}

// Mean and variance in double: the reference the float SIMD variants are held to.
void layer_norm_ref(const float* x, const float* gamma, const float* beta, int64_t n, float eps, float* y) {
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= double(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean;
    var += d * d;
  }
  var /= double(n);
  const float inv = float(1.0 / std::sqrt(var + double(eps)));
  const float m = float(mean);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * inv * gamma[i] + beta[i];
}

// Element k of a float weight row stored as t.
float weight_at(TensorType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case TensorType::F16: return fp16_to_fp32(reinterpret_cast<const uint16_t*>(row)[k]);
    case TensorType::BF16: return bf16_to_fp32(reinterpret_cast<const uint16_t*>(row)[k]);
    default: {
      float v;
      std::memcpy(&v, row + size_t(k) * 4, 4);
      return v;
    }
  }
}

void gemm_pack_w_ref(TensorType t, const uint8_t* w, size_t row_bytes, int n_rows, int64_t k0, int64_t kc, int nr,
                     float* panel) {
  for (int j = 0; j < nr; ++j) {
    const uint8_t* row = w + size_t(j) * row_bytes;
    for (int64_t k = 0; k < kc; ++k) panel[k * nr + j] = j < n_rows ? weight_at(t, row, k0 + k) : 0.f;
  }
}

void gemm_pack_x_panel_ref(const float* x, int64_t ldx, int n_rows, int64_t n, int mr, float* panel) {
  for (int i = 0; i < mr; ++i)
    for (int64_t k = 0; k < n; ++k) panel[k * mr + i] = i < n_rows ? x[i * ldx + k] : 0.f;
}

// The reference of the bf16 GEMM: the float32 GEMM over weights and
// activations rounded to bfloat16 (the products of two bfloat16 values are
// exact in float32), one K element a unit.
float round_to_bf16(float v) { return bf16_to_fp32(fp32_to_bf16(v)); }

void gemm_pack_w_bf16_ref(TensorType t, const uint8_t* w, size_t row_bytes, int n_rows, int64_t k0, int64_t kc,
                          int nr, float* panel) {
  gemm_pack_w_ref(t, w, row_bytes, n_rows, k0, kc, nr, panel);
  for (int64_t u = 0; u < kc * nr; ++u) panel[u] = round_to_bf16(panel[u]);
}

void gemm_pack_x_panel_bf16_ref(const float* x, int64_t ldx, int n_rows, int64_t n, int mr, float* panel) {
  gemm_pack_x_panel_ref(x, ldx, n_rows, n, mr, panel);
  for (int64_t u = 0; u < n * mr; ++u) panel[u] = round_to_bf16(panel[u]);
}

// The reference tile is small enough (8 SSE accumulators) for the compiler to
// keep in registers with baseline x86-64 flags.
constexpr int kRefMr = 4, kRefNr = 8;

void gemm_tile_ref(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n, bool accumulate) {
  float acc[kRefMr][kRefNr] = {};
  for (int64_t k = 0; k < kc; ++k, a += kRefMr, b += kRefNr)
    for (int i = 0; i < kRefMr; ++i)
      for (int j = 0; j < kRefNr; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[i][j];
}

// The quantized reference kernels of quant.h, behind the table's signature:
// one weight row at a time against every activation row.
template <typename Block, void (*F)(int64_t, const Block*, const void*, size_t, int, float*)>
void quant_dot_ref(int64_t n, const void* w, size_t w_stride, int n_w, const void* acts, size_t act_stride, int n_act,
                   float* out, size_t out_stride) {
  std::vector<float> col(static_cast<size_t>(n_act));
  for (int r = 0; r < n_w; ++r) {
    F(n, reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride), acts, act_stride,
      n_act, col.data());
    for (int a = 0; a < n_act; ++a) out[size_t(a) * out_stride + size_t(r)] = col[size_t(a)];
  }
}
template <typename Block, void (*F)(const float*, Block*, int64_t)>
void quantize_act_ref(const float* x, void* y, int64_t n) {
  F(x, static_cast<Block*>(y), n);
}

CpuKernels make_generic() {
  CpuKernels k{};
  k.level = "generic";
  k.dot_f32 = dot_f32_ref;
  k.dot4_f32 = dot4_f32_ref;
  k.dot4_f16 = dot4_half_ref<fp16_to_fp32>;
  k.dot4_bf16 = dot4_half_ref<bf16_to_fp32>;
  k.axpy_f32 = axpy_f32_ref;
  k.exp_shift_sum = exp_shift_sum_ref;
  k.f16_to_f32 = f16_to_f32_ref;
  k.gelu_tanh = gelu_tanh_ref;
  k.gelu_erf = gelu_erf_ref;
  k.layer_norm = layer_norm_ref;
  k.gemm = {kRefMr, kRefNr, 1, gemm_pack_w_ref, gemm_pack_x_panel_ref, gemm_tile_ref};
  k.gemm_bf16 = {kRefMr, kRefNr, 1, gemm_pack_w_bf16_ref, gemm_pack_x_panel_bf16_ref, gemm_tile_ref};
  k.quant_dot[kQ4_0] = quant_dot_ref<block_q4_0, vec_dot_q4_0_q8_0>;
  k.quant_dot[kQ4_1] = quant_dot_ref<block_q4_1, vec_dot_q4_1_q8_1>;
  k.quant_dot[kQ5_0] = quant_dot_ref<block_q5_0, vec_dot_q5_0_q8_0>;
  k.quant_dot[kQ5_1] = quant_dot_ref<block_q5_1, vec_dot_q5_1_q8_1>;
  k.quant_dot[kQ8_0] = quant_dot_ref<block_q8_0, vec_dot_q8_0_q8_0>;
  k.quant_dot[kQ2_K] = quant_dot_ref<block_q2_K, vec_dot_q2_K_q8_K>;
  k.quant_dot[kQ3_K] = quant_dot_ref<block_q3_K, vec_dot_q3_K_q8_K>;
  k.quant_dot[kQ4_K] = quant_dot_ref<block_q4_K, vec_dot_q4_K_q8_K>;
  k.quant_dot[kQ5_K] = quant_dot_ref<block_q5_K, vec_dot_q5_K_q8_K>;
  k.quant_dot[kQ6_K] = quant_dot_ref<block_q6_K, vec_dot_q6_K_q8_K>;
  k.quantize_act[kActQ8_0] = quantize_act_ref<block_q8_0, quantize_row_q8_0_ref>;
  k.quantize_act[kActQ8_1] = quantize_act_ref<block_q8_1, quantize_row_q8_1_ref>;
  k.quantize_act[kActQ8_K] = quantize_act_ref<block_q8_K, quantize_row_q8_K_ref>;
  fill_attention_generic(k);
  return k;
}

struct Levels {
  CpuKernels generic = make_generic();
  CpuKernels avx2{}, avx512{}, avx512_zmm{};
  bool has_avx2 = false, has_avx512 = false;
  const char* names[5] = {"generic", nullptr, nullptr, nullptr, nullptr};

  Levels() {
    int n = 1;
    has_avx2 = cpu_supports_avx2();
    if (has_avx2) {
      avx2 = generic;
      avx2.level = "avx2";
      fill_float_avx2(avx2);
      fill_quant_legacy_avx2(avx2);
      fill_quant_k_avx2(avx2);
      fill_quant_gemm_avx2(avx2);
      fill_attention_avx2(avx2);
      names[n++] = "avx2";
    }
    has_avx512 = has_avx2 && cpu_supports_avx512();
    if (has_avx512) {
      avx512 = avx2;
      avx512.level = "avx512";
      fill_float_avx512(avx512);
      fill_gemm_bf16_avx512(avx512);
      fill_quant_legacy_avx512(avx512);
      fill_quant_k_avx512(avx512);
      fill_quant_gemm_avx512(avx512);
      fill_attention_avx512(avx512);
      names[n++] = "avx512";
      avx512_zmm = avx512;
      avx512_zmm.level = "avx512_zmm";
      fill_quant_legacy_avx512_zmm(avx512_zmm);
      fill_quant_gemm_avx512_zmm(avx512_zmm);
      names[n++] = "avx512_zmm";
    }
#if defined(__aarch64__)
    add_aarch64_levels(n);
#endif
  }

#if defined(__aarch64__)
  CpuKernels neon{}, neon_dotprod{};
  bool has_neon_dotprod = false;

  void add_aarch64_levels(int& n) {
    neon = generic;
    neon.level = "neon";
    fill_float_neon(neon);
    fill_quant_neon(neon);
    fill_attention_neon(neon);
    names[n++] = "neon";
    has_neon_dotprod = cpu_supports_neon_dotprod();
    if (has_neon_dotprod) {
      neon_dotprod = neon;
      neon_dotprod.level = "neon_dotprod";
      fill_quant_neon_dotprod(neon_dotprod);
      names[n++] = "neon_dotprod";
    }
  }
#endif
};

const Levels& levels() {
  static const Levels l;
  return l;
}

// The best level, or the level STARCODER_CPU names if this CPU can run it
// (an unknown or unsupported name falls back to the best level below it).
const CpuKernels& choose() {
  const Levels& l = levels();
  const char* env = std::getenv("STARCODER_CPU");
  const std::string want = env ? env : "";
  if (want == "generic") return l.generic;
#if defined(__aarch64__)
  if (want == "neon") return l.neon;
  return l.has_neon_dotprod ? l.neon_dotprod : l.neon;
#endif
  if (want == "avx2") return l.has_avx2 ? l.avx2 : l.generic;
  if (l.has_avx512 && want == "avx512") return l.avx512;
  if (l.has_avx512 && want == "avx512_zmm") return l.avx512_zmm;
  if (l.has_avx512) return cpu_runs_zmm_at_full_width() ? l.avx512_zmm : l.avx512;
  if (l.has_avx2) return l.avx2;
  return l.generic;
}

}  // namespace

int quant_slot(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: return kQ4_0;
    case TensorType::Q4_1: return kQ4_1;
    case TensorType::Q5_0: return kQ5_0;
    case TensorType::Q5_1: return kQ5_1;
    case TensorType::Q8_0: return kQ8_0;
    case TensorType::Q2_K: return kQ2_K;
    case TensorType::Q3_K: return kQ3_K;
    case TensorType::Q4_K: return kQ4_K;
    case TensorType::Q5_K: return kQ5_K;
    case TensorType::Q6_K: return kQ6_K;
    default: return -1;
  }
}

int act_slot(TensorType t) {
  switch (t) {
    case TensorType::Q8_0: return kActQ8_0;
    case TensorType::Q8_1: return kActQ8_1;
    case TensorType::Q8_K: return kActQ8_K;
    default: return -1;
  }
}

const CpuKernels& generic_kernels() { return levels().generic; }

const CpuKernels* kernels_for_level(const char* name) {
  const Levels& l = levels();
  const std::string n = name ? name : "";
  if (n == "generic") return &l.generic;
  if (n == "avx2" && l.has_avx2) return &l.avx2;
  if (n == "avx512" && l.has_avx512) return &l.avx512;
  if (n == "avx512_zmm" && l.has_avx512) return &l.avx512_zmm;
#if defined(__aarch64__)
  if (n == "neon") return &l.neon;
  if (n == "neon_dotprod" && l.has_neon_dotprod) return &l.neon_dotprod;
#endif
  return nullptr;
}

const char* const* supported_levels() { return levels().names; }

// ---- prompt-path GEMM driver ----
//
// BLIS's loop order. For a block of kGemmNcPanels weight panels (a slice of
// output columns) and kGemmKc steps of K, the weight rows are converted and
// packed once (kGemmKc x nr floats a panel: the panel stays in L1 while the
// tokens stream past it, the whole block in L2). Tokens go in blocks of
// kGemmMcPanels activation panels, small enough to stay in L2 while every
// weight panel of the block is applied to them. The last K block finishes
// the outputs, so the bias is added right after it, while they are in cache.
namespace {
constexpr int64_t kGemmKc = 256;
constexpr int64_t kGemmNcPanels = 8;
constexpr int64_t kGemmMcPanels = 16;
}  // namespace

int64_t gemm_panels_x(const FloatGemm& g, int n_tokens) { return (n_tokens + g.mr - 1) / g.mr; }

size_t gemm_packed_x_floats(const FloatGemm& g, int n_tokens, int64_t n_in) {
  return size_t(gemm_panels_x(g, n_tokens)) * size_t(g.mr) * size_t(gemm_k_units(g, n_in));
}

void gemm_pack_x(const FloatGemm& g, const float* x, int n_tokens, int64_t n_in, int64_t p0, int64_t p1,
                 float* packed) {
  const int mr = g.mr;
  const size_t panel_units = size_t(mr) * size_t(gemm_k_units(g, n_in));
  for (int64_t p = p0; p < p1; ++p)
    g.pack_x_panel(x + p * mr * n_in, n_in, int(std::min<int64_t>(mr, n_tokens - p * mr)), n_in, mr,
                   packed + size_t(p) * panel_units);
}

size_t gemm_scratch_floats(const FloatGemm& g, int64_t n_in) {
  return size_t(kGemmNcPanels) * size_t(g.nr) * size_t(gemm_k_units(g, std::min<int64_t>(kGemmKc, n_in)));
}

// Offsets count 32-bit units: a K block of kc elements is gemm_k_units(kc)
// units, and every block but the last starts at an even K (kGemmKc is even).
void gemm_columns(const FloatGemm& g, TensorType t, const uint8_t* w, size_t row_bytes, int64_t n_in,
                  const float* bias, const float* packed_x, int n_tokens, int64_t o0, int64_t o1, float* y,
                  int64_t ldy, float* scratch) {
  const int mr = g.mr, nr = g.nr;
  const int64_t nc_max = kGemmNcPanels * nr, mc_max = kGemmMcPanels * mr;
  const size_t x_units = size_t(gemm_k_units(g, n_in));
  for (int64_t oc = o0; oc < o1; oc += nc_max) {
    const int64_t nc = std::min(nc_max, o1 - oc);
    if (n_in == 0)
      for (int tk = 0; tk < n_tokens; ++tk) std::fill(y + tk * ldy + oc, y + tk * ldy + oc + nc, 0.f);
    for (int64_t k0 = 0; k0 < n_in; k0 += kGemmKc) {
      const int64_t kc = std::min(kGemmKc, n_in - k0);
      const int64_t kc_units = gemm_k_units(g, kc), k0_units = k0 / g.k_pack;
      for (int64_t j = 0; j < nc; j += nr)
        g.pack_w(t, w + size_t(oc + j) * row_bytes, row_bytes, int(std::min<int64_t>(nr, nc - j)), k0, kc, nr,
                 scratch + j * kc_units);
      for (int64_t tc = 0; tc < n_tokens; tc += mc_max) {
        const int64_t tc_end = std::min<int64_t>(n_tokens, tc + mc_max);
        for (int64_t j = 0; j < nc; j += nr) {
          const float* b = scratch + j * kc_units;
          const int n = int(std::min<int64_t>(nr, nc - j));
          for (int64_t tk = tc; tk < tc_end; tk += mr) {
            const float* a = packed_x + size_t(tk) * x_units + size_t(k0_units) * size_t(mr);
            g.tile(kc, a, b, y + tk * ldy + oc + j, ldy, int(std::min<int64_t>(mr, tc_end - tk)), n, k0 > 0);
          }
        }
      }
    }
    if (bias)
      for (int tk = 0; tk < n_tokens; ++tk)
        for (int64_t j = 0; j < nc; ++j) y[tk * ldy + oc + j] += bias[oc + j];
  }
}

const CpuKernels& cpu_kernels() {
  static const CpuKernels& k = choose();
  return k;
}

float max_of(const float* x, int64_t n) {
  float m[8];
  for (int l = 0; l < 8; ++l) m[l] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
  for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
  for (int l = 1; l < 8; ++l) m[0] = m[l] > m[0] ? m[l] : m[0];
  return m[0];
}

}  // namespace sc
