// The arithmetic of the CUDA attention kernel, for device and host: the
// online-softmax update (flash attention's running max m and sum l, applied
// one tile of keys at a time) and the merge of two partial states. The CPU
// tests run these on the host in the kernel's tile order and hold the result
// against the CPU attention kernel.
#pragma once
#include "backend/cuda/device_compat.cuh"

namespace sc {
namespace cu {

constexpr int kAttnKeysPerTile = 32;  // one key per lane of a warp

// Running state of one query row: max score seen, sum of exp(score - m).
struct SoftmaxState {
  float m;
  float l;
};
SC_HD SoftmaxState softmax_start() { return SoftmaxState{-INFINITY, 0.0f}; }

// Moves the running max to cover a new tile whose largest visible score is
// tile_max (finite: every tile the kernel visits has a visible key). Returns
// the factor the accumulated output and sum are scaled by (0 for the first tile).
SC_HD float softmax_rescale(SoftmaxState& s, float tile_max) {
  const float m_new = fmaxf(s.m, tile_max);
  const float alpha = s.m == -INFINITY ? 0.0f : expf(s.m - m_new);
  s.l *= alpha;
  s.m = m_new;
  return alpha;
}

// Weight of one visible score under the current max (call after softmax_rescale).
SC_HD float softmax_weight(const SoftmaxState& s, float score) { return expf(score - s.m); }

// Combines two partial states over disjoint keys; wa and wb receive the
// factors their accumulated outputs are scaled by before they are added.
SC_HD SoftmaxState softmax_merge(SoftmaxState a, SoftmaxState b, float* wa, float* wb) {
  const float m = fmaxf(a.m, b.m);
  *wa = a.l == 0.0f ? 0.0f : expf(a.m - m);
  *wb = b.l == 0.0f ? 0.0f : expf(b.m - m);
  return SoftmaxState{m, a.l * *wa + b.l * *wb};
}

}  // namespace cu
}  // namespace sc
