// Text completion: prompt tokens in, text pieces out. Handles prefix reuse,
// sampling, end-of-text tokens, stop strings matched across token boundaries
// (never emitted), and UTF-8 characters split across tokens (held back until
// complete), so every piece it returns is valid UTF-8 that will stand.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/sampling.h"

namespace sc {

enum class FinishReason { kNone, kStop, kLength, kEos };
const char* finish_reason_name(FinishReason r);

struct CompletionParams {
  SamplingParams sampling;
  int max_tokens = 128;
  std::vector<std::string> stop;    // stop strings (matched on text)
  std::vector<int32_t> stop_ids;    // tokens that end generation (EOS, <fim_pad>, ...)
};

class Completion {
 public:
  // Evaluates nothing yet; the prompt is evaluated by the first next().
  // `seq` selects the KV-cache sequence. Throws ContextOverflowError when
  // the prompt cannot fit.
  Completion(Model& model, std::vector<int32_t> prompt, CompletionParams params, int seq = 0);

  // Generates until there is text to hand out or generation ends. Returns
  // false when finished with nothing more to give; otherwise sets *piece.
  bool next(std::string* piece);

  FinishReason finish_reason() const { return finish_; }
  bool finished() const { return finish_ != FinishReason::kNone; }
  int n_prompt_tokens() const { return int(prompt_.size()); }
  int n_reused_tokens() const { return n_reused_; }   // prompt tokens found in the cache
  const std::vector<int32_t>& generated() const { return generated_; }

 private:
  friend class Engine;  // runtime/engine.cpp drives several completions in one batched step
  friend std::vector<struct BatchResult> complete_batch(Model&, const std::vector<std::vector<int32_t>>&,
                                                        const CompletionParams&);
  void start();                        // evaluates the prompt (reusing the cache)
  int keep_cached_prefix();            // marks it started; cache = longest shared prefix; returns its length
  void sync_cache();                   // re-evaluates if someone else used the model
  void advance() { advance(logits_.data()); }
  void advance(float* logits);         // samples one token from `logits` (changed in place), updates text state
  size_t emittable_prefix() const;     // bytes of pending_ safe to hand out now

  Model& model_;
  int seq_;
  std::vector<int32_t> prompt_;
  CompletionParams params_;
  Sampler sampler_;
  std::vector<float> logits_;
  std::vector<int32_t> generated_;
  std::string pending_;                // generated text not yet handed out
  FinishReason finish_ = FinishReason::kNone;
  bool started_ = false;
  bool need_eval_ = false;             // last sampled token not yet in the cache
  int n_reused_ = 0;
  uint64_t version_ = 0;               // model cache version after our last eval
};

struct BatchResult {
  std::string text;
  FinishReason finish = FinishReason::kNone;
  int n_tokens = 0;
};

// Completes several prompts together: after each prompt is evaluated, every
// step runs one forward pass for all unfinished sequences (the weights are
// read once per step for all of them). Sequence i uses KV slot i; sampler i
// is seeded with seed + i.
std::vector<BatchResult> complete_batch(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const CompletionParams& params);

}  // namespace sc
