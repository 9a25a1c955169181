// A GPT-BigCode (StarCoder) model loaded from a GGUF file: hyper-parameters,
// weights handed to a backend, the KV cache, and the forward pass. This is
// the core's C++ API; the Python module is a thin layer on it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "format/gguf.h"
#include "model/hparams.h"
#include "model/kv_book.h"
#include "model/weights.h"
#include "text/tokenizer.h"

namespace sc {

struct ModelOptions {
  std::string backend = "cpu";  // "cpu", "cuda" or "auto" (backend/registry.h)
  int n_ctx = 0;         // <= 0: the model's context length, capped at kDefaultMaxCtx
  int n_threads = 0;     // CPU backend threads; <= 0: one per available core
  int n_batch = 512;     // tokens per forward chunk when evaluating a prompt
  // KV cache element type: F16 (half the memory and bandwidth of F32; what
  // llama.cpp uses), F32 (float32 attention throughout) or Q8_0 (half of F16
  // again; needs head_dim a multiple of 32).
  TensorType kv_type = TensorType::F16;
  // "f32" or "bf16": see BackendOptions::matmul_precision (backend/registry.h).
  std::string matmul_precision = "f32";
  static constexpr int kDefaultMaxCtx = 8192;
};

class Model {
 public:
  // Throws GGUFError (bad file), ModelError (not a runnable GPT-BigCode),
  // std::invalid_argument (bad option) or BackendUnavailableError.
  Model(const std::string& path, const ModelOptions& options);
  ~Model();

  const HParams& hparams() const { return hp_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GGUFFile& file() const { return *file_; }
  const Backend& backend() const { return *backend_; }
  // Why backend "auto" chose what it chose ("" otherwise).
  const std::string& backend_note() const { return backend_note_; }
  // The options in force (n_threads resolved).
  const ModelOptions& options() const { return opts_; }
  int n_ctx() const { return n_ctx_; }
  TensorType kv_type() const { return opts_.kv_type; }

  // The KV cache holds independent sequences (slots 0..kMaxSeq-1), each with
  // up to n_ctx positions; a slot's memory is reserved on first use.
  static constexpr int kMaxSeq = 64;
  // Bytes of keys and values one sequence holds when full (n_ctx positions).
  uint64_t kv_bytes_per_seq() const;
  // Throws MemoryLimitError unless the weights plus `n_seq` full sequences
  // fit the backend's memory (or STARCODER_MEMORY_LIMIT when set). The
  // constructor checks one sequence; a server checks all of its slots.
  void check_memory(int n_seq) const;
  int n_past(int seq = 0) const { return book_.n_past(seq); }
  // Tokens whose keys/values are in the cache of `seq`, in order.
  const std::vector<int32_t>& history(int seq = 0) const { return book_.history(seq); }
  // Bumped by every change to any cache; lets a caller holding state across
  // calls notice that someone else used the model in between.
  uint64_t cache_version() const { return book_.version(); }

  // Evaluates `n` tokens after those in the cache of `seq`. Writes logits for
  // the last token (all_logits=false: n_vocab floats) or for every token
  // (n * n_vocab floats). Validates everything before changing any state:
  // throws std::invalid_argument for a bad token id or sequence, and
  // ContextOverflowError when the cache cannot hold the tokens.
  void eval(const int32_t* tokens, int n, bool all_logits, float* logits, int seq = 0);

  // One forward pass over tokens of several sequences: entry i appends
  // tokens[i] to sequence seqs[i] (entries of one sequence in order). The
  // weights are read once for the whole batch. Writes one row of logits per
  // entry, or, given `want`, one per entry with want[i] != 0, in order (a
  // server's batch mixes decode tokens with prompt chunks whose logits it
  // does not need). At most n_batch entries.
  void eval_batch(const int32_t* tokens, const int* seqs, int n, float* logits, const char* want = nullptr);

  // Drops positions >= n_keep of `seq` (0: empty).
  void truncate(int n_keep, int seq = 0);
  // Empties every sequence.
  void reset();

 private:
  struct Activations;
  // What one forward pass computes: token t goes to sequence seqs[t] at
  // position pos[t]; logits are wanted for the rows with want[t] (in order).
  struct Batch {
    const int32_t* tokens;
    const int* seqs;
    const int* pos;
    const char* want;
    int n;
  };
  void check_tokens(const int32_t* tokens, int n) const;
  // The sequence, its cache memory reserved (throws for a bad id).
  void use_sequence(int seq);
  void forward(const Batch& batch, float* logits);
  void embed(const Batch& batch, Activations& a);
  void attend(int layer, const Batch& batch, Activations& a);
  int keep_output_rows(const Batch& batch, int n_rows, Activations& a);
  void output_logits(int n_rows, Activations& a, float* logits);

  std::unique_ptr<GGUFFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::string backend_note_;
  HParams hp_;
  ModelOptions opts_;
  int n_ctx_ = 0;
  ModelWeights w_;
  std::unique_ptr<KvCache> cache_;
  KvBook book_;
  std::unique_ptr<Activations> act_;
};

}  // namespace sc
