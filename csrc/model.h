// A GPT-BigCode (StarCoder) model loaded from a GGUF file: hyper-parameters,
// weights (views into the memory-mapped file), the KV cache, and the forward
// pass. This is the core's C++ API; the Python module is a thin layer on it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "gguf.h"
#include "tokenizer.h"

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
};

struct ModelOptions {
  int n_ctx = 0;         // <= 0: the model's context length, capped at kDefaultMaxCtx
  int n_threads = 0;     // <= 0: one per available core
  int n_batch = 512;     // tokens per forward chunk when evaluating a prompt
  // KV cache element type: F16 (half the memory and bandwidth of F32; what
  // llama.cpp uses), F32 (float32 attention throughout) or Q8_0 (half of F16
  // again; needs head_dim a multiple of 32).
  TensorType kv_type = TensorType::F16;
  static constexpr int kDefaultMaxCtx = 8192;
};

class Model {
 public:
  // Throws GGUFError (bad file) or ModelError (not a runnable GPT-BigCode).
  Model(const std::string& path, const ModelOptions& options);
  ~Model();

  const HParams& hparams() const { return hp_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GGUFFile& file() const { return *file_; }
  const Backend& backend() const { return *backend_; }
  int n_ctx() const { return n_ctx_; }
  TensorType kv_type() const { return opts_.kv_type; }

  // The KV cache holds independent sequences (slots 0..kMaxSeq-1), each with
  // up to n_ctx positions; a slot's memory is reserved on first use.
  static constexpr int kMaxSeq = 64;
  int n_past(int seq = 0) const { return int(seqs_.at(size_t(seq)).history.size()); }
  // Tokens whose keys/values are in the cache of `seq`, in order.
  const std::vector<int32_t>& history(int seq = 0) const { return seqs_.at(size_t(seq)).history; }
  // Bumped by every change to any cache; lets a caller holding state across
  // calls notice that someone else used the model in between.
  uint64_t cache_version() const { return cache_version_; }

  // Evaluates `n` tokens after those in the cache of `seq`. Writes logits for
  // the last token (all_logits=false: n_vocab floats) or for every token
  // (n * n_vocab floats). Validates everything before changing any state:
  // throws std::invalid_argument for a bad token id or sequence, and
  // ContextOverflowError when the cache cannot hold the tokens.
  void eval(const int32_t* tokens, int n, bool all_logits, float* logits, int seq = 0);

  // One forward pass over tokens of several sequences: entry i appends
  // tokens[i] to sequence seqs[i] (entries of one sequence in order). The
  // weights are read once for the whole batch. Writes n rows of logits.
  void eval_batch(const int32_t* tokens, const int* seqs, int n, float* logits);

  // Drops positions >= n_keep of `seq` (0: empty).
  void truncate(int n_keep, int seq = 0);
  // Empties every sequence.
  void reset();

 private:
  struct Layer;
  struct Buffers;
  void load_hparams();
  void load_weights();
  struct Sequence {
    std::vector<int32_t> history;
    std::unique_ptr<uint8_t[]> k, v;  // [n_layer][n_ctx][kv_dim] of kv_type
  };
  void check_tokens(const int32_t* tokens, int n) const;
  Sequence& sequence(int seq);
  // Forward pass over m tokens; token t goes to sequence seqs[t] at position
  // pos[t]. Writes logits for rows with want_logits[t] (in order) into logits.
  void forward(const int32_t* tokens, const int* seqs, const int* pos, int m, const std::vector<char>& want_logits,
               float* logits);

  std::unique_ptr<GGUFFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  HParams hp_;
  ModelOptions opts_;
  int n_ctx_ = 0;

  Weight tok_embd_, pos_embd_, output_;
  std::vector<float> out_norm_w_, out_norm_b_;
  std::vector<Layer> layers_;
  // Cache memory is left uninitialised: pages are only touched (and
  // resident) once positions are written.
  std::vector<Sequence> seqs_;
  uint64_t cache_version_ = 0;
  std::unique_ptr<Buffers> buf_;
};

}  // namespace sc
