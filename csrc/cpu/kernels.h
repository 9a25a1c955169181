// Inner loops of the CPU backend, one table per instruction-set level.
// Each SIMD variant sits beside the plain C++ reference and is tested equal
// to it (within float reassociation). The level is chosen once at start-up
// from cpuid; STARCODER_CPU=generic|avx2 forces a lower one.
#pragma once
#include <cstdint>

namespace sc {

struct CpuKernels {
  const char* level;
  // sum_i a[i] * b[i]
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  // out[r] = sum_i w[r][i] * x[i] for 4 rows at once (x loaded once for all 4).
  void (*dot4_f32)(const float* w0, const float* w1, const float* w2, const float* w3, const float* x, int64_t n,
                   float* out);
  // The same for two activation rows: out[0..3] for x0, out[4..7] for x1
  // (8 independent accumulators keep both FMA units busy).
  void (*dot4x2_f32)(const float* w0, const float* w1, const float* w2, const float* w3, const float* x0,
                     const float* x1, int64_t n, float* out);
  // dot4_f32 with the 4 weight rows stored as IEEE half, converted in
  // registers (decode: the weights are read once, so no f32 copy is made).
  void (*dot4_f16)(const uint16_t* w0, const uint16_t* w1, const uint16_t* w2, const uint16_t* w3, const float* x,
                   int64_t n, float* out);
  // y += a * x
  void (*axpy_f32)(float* y, float a, const float* x, int64_t n);
  // x[i] = exp(x[i] - max) in place; returns the sum (softmax numerator).
  float (*exp_shift_sum)(float* x, int64_t n, float max);
  // IEEE half -> float for a row.
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);
};

const CpuKernels& cpu_kernels();
const CpuKernels& generic_kernels();
// nullptr when this CPU (or this build) cannot run that level.
const CpuKernels* avx2_kernels();

}  // namespace sc
