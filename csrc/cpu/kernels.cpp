// Reference kernels and the start-up choice of kernel level.
#include "cpu/kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

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

const CpuKernels kGeneric = {"generic", dot_f32_ref, dot4_f32_ref, dot4x2_f32_ref, dot4_f16_ref, axpy_f32_ref,
                             exp_shift_sum_ref, f16_to_f32_ref};

const CpuKernels& choose() {
  const char* env = std::getenv("STARCODER_CPU");
  const std::string want = env ? env : "";
  if (want == "generic") return kGeneric;
  if (const CpuKernels* k = avx2_kernels()) return *k;
  return kGeneric;
}

}  // namespace

const CpuKernels& generic_kernels() { return kGeneric; }

const CpuKernels& cpu_kernels() {
  static const CpuKernels& k = choose();
  return k;
}

}  // namespace sc
