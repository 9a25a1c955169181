// Causal multi-query / multi-head attention over the KV cache, tiled the way
// flash attention is: keys and values stream through in tiles of kAttnTile,
// with a running max and sum per query row, so no [n_tokens x n_ctx] score
// matrix is ever built and each K/V tile is read once for every query row of
// a work item. With multi-query attention all query heads of a token share
// the one K/V head, so a work item stacks several tokens x all their heads
// into one block of query rows: the score tile is then a small GEMM.
#pragma once
#include <vector>

#include <cstdint>

#include "format/tensor_types.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace sc {

constexpr int kAttnTile = 64;  // keys per tile

// One attention call on host memory: queries for n_tokens new positions
// starting at position n_past, against cache rows that already hold their
// keys/values.
struct AttentionArgs {
  const float* q;          // [n_tokens, q_stride]; head h at q + h*head_dim
  int64_t q_stride;
  const void* k_cache;     // [n_ctx] rows of kv_dim elements of kv_type; kv head g
  const void* v_cache;     //   is elements [g*head_dim, (g+1)*head_dim) of a row
  TensorType kv_type;      // F32, F16 or Q8_0 (head_dim a multiple of 32)
  int64_t kv_dim;          // n_head_kv * head_dim
  int n_tokens;
  int n_past;
  int n_head;
  int n_head_kv;           // 1 = multi-query: every query head shares one K/V head
  int head_dim;
  float scale;             // usually 1/sqrt(head_dim)
  float* out;              // [n_tokens, n_head*head_dim]
};

class CpuAttention {
 public:
  explicit CpuAttention(int n_threads) : scratch_(size_t(n_threads)) {}
  void run(const AttentionArgs& a, ThreadPool& pool, const CpuKernels& k);

 private:
  struct Scratch {
    std::vector<float> q, s, kt, v, o, m, l, row;
  };
  std::vector<Scratch> scratch_;
  std::vector<float> partial_;  // per-split results (m, l, o) when keys are split across threads
};

}  // namespace sc
