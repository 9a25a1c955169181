// The model's tensors, checked against the hyper-parameters and handed to
// the backend once: matrices through prepare_weight, norm parameters and
// biases converted to float32 and uploaded.
#pragma once
#include <vector>

#include "backend/backend.h"
#include "format/gguf.h"
#include "model/hparams.h"

namespace sc {

struct LayerWeights {
  BufferPtr attn_norm_w, attn_norm_b;
  Weight attn_qkv;
  BufferPtr attn_qkv_b;  // biases are null when the file has none
  Weight attn_out;
  BufferPtr attn_out_b;
  BufferPtr ffn_norm_w, ffn_norm_b;
  Weight ffn_up;
  BufferPtr ffn_up_b;
  Weight ffn_down;
  BufferPtr ffn_down_b;
};

struct ModelWeights {
  Weight tok_embd, pos_embd;
  Weight output;            // unused (n_out 0) when the LM head is tied to tok_embd
  BufferPtr out_norm_w, out_norm_b;
  std::vector<LayerWeights> layers;
  const Weight& lm_head() const { return output.n_out ? output : tok_embd; }
};

// Throws ModelError for a missing tensor, a wrong shape, a type `be` cannot
// run, a tensor the model does not use, or a bias that only some layers have.
ModelWeights load_weights(const GGUFFile& f, const HParams& hp, Backend& be);

}  // namespace sc
