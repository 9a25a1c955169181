// The serving engine: a fixed set of slots, each a KV-cache sequence running
// one Completion, advanced together by step(). Each step is one forward pass
// over one batch: the last sampled token of every running slot, then up to
// `prefill_chunk` prompt tokens of slots still evaluating their prompts
// (oldest request first). So slots join and leave between steps (continuous
// batching), and a long new prompt delays the running streams by one chunk
// per step, never by the whole prompt (chunked prefill).
// One thread owns an Engine; nothing here locks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/completion.h"
#include "model/model.h"

namespace sc {

struct SlotRequest {
  std::vector<int32_t> prompt;
  CompletionParams params;
  int n_probs = 0;                 // top log-probabilities reported per token
  float presence_penalty = 0.0f;   // OpenAI-style, over the tokens generated so far
  float frequency_penalty = 0.0f;
  bool cache_prompt = true;        // false: evaluate the whole prompt afresh
};

// What one slot did in one step.
struct StepEvent {
  int slot = -1;
  int32_t token = -1;              // token sampled (-1: none, e.g. n_predict 0)
  float logprob = 0.0f;            // its log-probability under the model (before sampling filters)
  bool special = false;
  std::vector<std::pair<int32_t, float>> top;  // n_probs best (token, logprob)
  std::string piece;               // text released by this step (valid UTF-8 that will stand)
  bool finished = false;
  FinishReason finish = FinishReason::kNone;
  std::string stop_word;           // the stop string that ended it (finish kStop)
  std::string error;               // non-empty: the slot failed and was freed
  int n_prompt = 0, n_cached = 0, n_generated = 0;
};

class Engine {
 public:
  // Throws std::invalid_argument when n_slots is outside [1, Model::kMaxSeq],
  // exceeds the model's n_batch (every slot's token must fit one batch), or
  // prefill_chunk < 1. The chunk is capped at n_batch.
  Engine(Model& model, int n_slots, int prefill_chunk = kDefaultPrefillChunk);
  // Prompt tokens per step: on two cores, a 1B model evaluates 128 in about
  // a second, so a stream waits that long at worst while a new prompt is read.
  static constexpr int kDefaultPrefillChunk = 128;

  Model& model() { return model_; }
  int n_slots() const { return int(slots_.size()); }
  int prefill_chunk() const { return prefill_chunk_; }
  bool busy(int slot) const { return bool(slots_.at(size_t(slot)).c); }
  int n_busy() const;

  // The idle slot whose cache shares the longest prefix with `prompt`
  // (ties: the least recently used), with that prefix's length; (-1, 0) when
  // every slot is busy.
  std::pair<int, int> pick_slot(const std::vector<int32_t>& prompt) const;

  // Puts a request on an idle slot (keeping the cached prefix it shares);
  // its prompt is evaluated by the following steps. Throws
  // std::invalid_argument / ContextOverflowError for bad input.
  void start(int slot, SlotRequest req);
  // Stops a slot's generation now (its cache keeps what was evaluated).
  void cancel(int slot);

  // Runs one step for every busy slot; returns what each produced.
  std::vector<StepEvent> step();

 private:
  struct Slot {
    std::unique_ptr<Completion> c;
    int n_prefilled = 0;           // prompt tokens in the cache; < prompt size: still prefilling
    int n_probs = 0;
    float presence = 0.0f, frequency = 0.0f;
    std::vector<std::pair<int32_t, int>> counts;  // generated token -> times (small, linear)
    uint64_t last_used = 0;
  };
  // Samples the slot's next token from its row of logits (changed in place
  // by the penalties) and fills *ev.
  void sample(int slot, float* logits, StepEvent* ev);
  void finish_event(int slot, StepEvent* ev);
  bool prefilling(const Slot& s) const { return s.c && s.n_prefilled < s.c->n_prompt_tokens(); }

  Model& model_;
  std::vector<Slot> slots_;
  int prefill_chunk_;
  std::vector<float> logits_;      // one step's logits, a row per sampled slot (kept: no allocation per step)
  std::vector<float> raw_;         // unmodified logits of the slot being sampled
  uint64_t clock_ = 0;
};

}  // namespace sc
