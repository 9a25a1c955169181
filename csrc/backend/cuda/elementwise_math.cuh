// The arithmetic of the CUDA LayerNorm and GELU kernels, for device and host.
// LayerNorm is two-pass: the mean from the row sum, then the variance from
// the sum of squared deviations (no E[x^2] - E[x]^2 cancellation); the CPU
// reference does the same in double, the kernel in float with tree sums.
#pragma once
#include "backend/cuda/device_compat.cuh"

namespace sc {
namespace cu {

// 1 / sqrt(var + eps) from the sum of squared deviations of n values.
SC_HD float layer_norm_inv_std(float sq_dev_sum, int64_t n, float eps) {
  return 1.0f / sqrtf(sq_dev_sum / float(n) + eps);
}
// One output element, as the CPU reference writes it.
SC_HD float layer_norm_out(float x, float mean, float inv, float gamma, float beta) {
  return (x - mean) * inv * gamma + beta;
}

// gelu_pytorch_tanh.
SC_HD float gelu_tanh(float v) {
  const float c = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
}
// Exact (erf) GELU.
SC_HD float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

}  // namespace cu
}  // namespace sc
