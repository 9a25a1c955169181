// Turning next-token logits into a token: greedy, or a sampling chain
// (repeat penalty -> temperature -> top-k -> top-p -> min-p -> draw) with a
// seeded generator, so the same seed gives the same output on any machine.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace sc {

// log(sum_i exp(x[i])) of n > 0 logits, shifted by their maximum for
// stability: the normaliser of the model's log-probabilities. Uses the CPU's
// vector exp in place: x is left holding exp(x[i] - max).
float log_sum_exp(float* x, int n);

// The defaults are starcoder_cpp.SamplingOptions' (a test holds them equal):
// low-temperature nucleus sampling, StarCoder's setting for code.
struct SamplingParams {
  float temperature = 0.2f;    // 0: greedy (argmax after the repeat penalty)
  int top_k = 0;               // 0: off
  float top_p = 0.95f;         // 1: off
  float min_p = 0.0f;          // 0: off; drop tokens below min_p * p(best)
  float repeat_penalty = 1.0f; // 1: off; CTRL-style, as HF's repetition_penalty
  int repeat_last_n = 64;      // how many recent tokens the penalty looks at (-1: all)
  uint64_t seed = 0;
};

// Validates params; throws std::invalid_argument with the offending field.
void check_sampling_params(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks the next token. `logits` (n_vocab floats) is modified in place.
  // `recent` holds the tokens the repeat penalty applies to (oldest first).
  int32_t sample(float* logits, int n_vocab, const std::vector<int32_t>& recent);

  // The distribution sample() draws from, as (token, probability) pairs
  // sorted by descending probability; for tests and introspection.
  std::vector<std::pair<int32_t, float>> distribution(float* logits, int n_vocab,
                                                       const std::vector<int32_t>& recent);

  const SamplingParams& params() const { return p_; }

 private:
  void apply_repeat_penalty(float* logits, int n_vocab, const std::vector<int32_t>& recent) const;
  // Fills cand_ with the candidates left after top-k/top-p/min-p, with
  // normalised probabilities, best first.
  void filter(const float* logits, int n_vocab);

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<int32_t, float>> cand_;
};

}  // namespace sc
