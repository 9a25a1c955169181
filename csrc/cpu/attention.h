// Causal multi-query / multi-head attention over the KV cache, tiled the way
// flash attention is: keys and values stream through in tiles of kAttnTile,
// with a running max and sum per query row, so no [n_tokens x n_ctx] score
// matrix is ever built and each K/V tile is read once for every query row of
// a work item. With multi-query attention all query heads of a token share
// the one K/V head, so a work item stacks several tokens x all their heads
// into one block of query rows: the score tile is then a small GEMM.
#pragma once
#include <vector>

#include "backend.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"

namespace sc {

constexpr int kAttnTile = 64;  // keys per tile

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
