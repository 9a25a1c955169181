#include "model/hparams.h"

#include <string>

#include "util/errors.h"

namespace sc {
namespace {

std::string key(const char* suffix) { return std::string("starcoder.") + suffix; }

int positive_int(const GGUFFile& f, const std::string& k) {
  const int64_t v = f.get_int(k);
  if (v <= 0 || v > (int64_t(1) << 24))
    throw ModelError(f.path() + ": metadata '" + k + "' = " + std::to_string(v) + " is out of range");
  return int(v);
}

}  // namespace

HParams read_hparams(const GGUFFile& f) {
  HParams hp;
  hp.n_ctx_train = positive_int(f, key("context_length"));
  hp.n_embd = positive_int(f, key("embedding_length"));
  hp.n_ff = positive_int(f, key("feed_forward_length"));
  hp.n_layer = positive_int(f, key("block_count"));
  hp.n_head = positive_int(f, key("attention.head_count"));
  hp.n_head_kv = f.has(key("attention.head_count_kv")) ? positive_int(f, key("attention.head_count_kv")) : hp.n_head;
  hp.norm_eps = float(f.get_float(key("attention.layer_norm_epsilon"), 1e-5));
  if (hp.n_embd % hp.n_head != 0) throw ModelError(f.path() + ": embedding_length is not a multiple of head_count");
  if (hp.n_head % hp.n_head_kv != 0) throw ModelError(f.path() + ": head_count is not a multiple of head_count_kv");
  hp.head_dim = hp.n_embd / hp.n_head;
  const std::string act = f.get_string("starcoder_cpp.activation", "gelu_tanh");
  if (act != "gelu_tanh" && act != "gelu") throw ModelError(f.path() + ": unsupported activation '" + act + "'");
  hp.gelu_exact = act == "gelu";
  const GGUFTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw ModelError(f.path() + ": missing tensor 'token_embd.weight'");
  hp.n_vocab = int(embd->ne[1]);
  return hp;
}

}  // namespace sc
