// Reference kernels and the start-up choice of kernel level.
#include "cpu/kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quant.h"
#include "tensor_types.h"

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

void dot4x2_f32_ref(const float* w0, const float* w1, const float* w2, const float* w3, const float* x0,
                    const float* x1, int64_t n, float* out) {
  dot4_f32_ref(w0, w1, w2, w3, x0, n, out);
  dot4_f32_ref(w0, w1, w2, w3, x1, n, out + 4);
}

void f16_to_f32_ref(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

void dot4_f16_ref(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                  int64_t n, float* out) {
  const uint16_t* w[4] = {w0, w1, w2, w3};
  for (int r = 0; r < 4; ++r) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += fp16_to_fp32(w[r][i + l]) * x[i + l];
    float s = 0.f;
    for (; i < n; ++i) s += fp16_to_fp32(w[r][i]) * x[i];
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
  k.dot4x2_f32 = dot4x2_f32_ref;
  k.dot4_f16 = dot4_f16_ref;
  k.axpy_f32 = axpy_f32_ref;
  k.exp_shift_sum = exp_shift_sum_ref;
  k.f16_to_f32 = f16_to_f32_ref;
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
  CpuKernels avx2{}, avx512{};
  bool has_avx2 = false, has_avx512 = false;
  const char* names[4] = {"generic", nullptr, nullptr, nullptr};

  Levels() {
    int n = 1;
    has_avx2 = cpu_supports_avx2();
    if (has_avx2) {
      avx2 = generic;
      avx2.level = "avx2";
      fill_float_avx2(avx2);
      fill_quant_legacy_avx2(avx2);
      fill_quant_k_avx2(avx2);
      fill_attention_avx2(avx2);
      names[n++] = "avx2";
    }
    has_avx512 = has_avx2 && cpu_supports_avx512();
    if (has_avx512) {
      avx512 = avx2;
      avx512.level = "avx512";
      fill_float_avx512(avx512);
      fill_quant_legacy_avx512(avx512);
      fill_quant_k_avx512(avx512);
      fill_attention_avx512(avx512);
      names[n++] = "avx512";
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
  if (l.has_avx512) return l.avx512;
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
#if defined(__aarch64__)
  if (n == "neon") return &l.neon;
  if (n == "neon_dotprod" && l.has_neon_dotprod) return &l.neon_dotprod;
#endif
  return nullptr;
}

const char* const* supported_levels() { return levels().names; }

const CpuKernels& cpu_kernels() {
  static const CpuKernels& k = choose();
  return k;
}

}  // namespace sc
