// GPT-BigCode hyper-parameters, read from a GGUF file's `starcoder.*` keys
// (llama.cpp's names).
#pragma once
#include "format/gguf.h"

namespace sc {

struct HParams {
  int n_vocab = 0;
  int n_ctx_train = 0;   // starcoder.context_length (rows of position_embd)
  int n_embd = 0;
  int n_ff = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;     // 1: multi-query attention
  int head_dim = 0;
  float norm_eps = 1e-5f;
  bool gelu_exact = false;  // erf GELU instead of the tanh approximation

  int64_t kv_dim() const { return int64_t(n_head_kv) * head_dim; }
  int64_t qkv_dim() const { return n_embd + 2 * kv_dim(); }
};

// Throws ModelError naming the key when one is missing or out of range.
HParams read_hparams(const GGUFFile& f);

}  // namespace sc
