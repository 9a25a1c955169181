#include "runtime/generate.h"

#include <algorithm>
#include <stdexcept>

#include "backend/cpu/kernels.h"  // max_of: host math on host logits
#include "util/errors.h"

namespace sc {

int32_t argmax(const float* x, int n) {
  // The largest value, then the first index holding it: two streaming
  // passes instead of one compare chain. NaNs never win (as x[i] > best).
  const float mx = max_of(x, n);
  for (int i = 0; i < n; ++i)
    if (x[i] == mx) return i;
  return 0;  // every value NaN
}

int reuse_prefix(Model& model, const std::vector<int32_t>& prompt, int seq) {
  const std::vector<int32_t>& cached = model.history(seq);
  // Keep at most prompt.size() - 1 tokens: the last prompt token must be
  // evaluated again to produce the next-token logits.
  const size_t limit = std::min(cached.size(), prompt.empty() ? 0 : prompt.size() - 1);
  size_t common = 0;
  while (common < limit && cached[common] == prompt[common]) ++common;
  model.truncate(int(common), seq);
  return int(common);
}

std::vector<int32_t> generate_greedy(Model& model, const std::vector<int32_t>& prompt, int max_new_tokens,
                                     const std::vector<int32_t>& stop_ids) {
  if (prompt.empty()) throw std::invalid_argument("generate needs a non-empty prompt");
  if (max_new_tokens < 0) throw std::invalid_argument("max_new_tokens must be >= 0");
  if (int64_t(prompt.size()) > model.n_ctx())
    throw ContextOverflowError("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the context of " +
                               std::to_string(model.n_ctx()) + " tokens");
  const int n_vocab = model.hparams().n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  std::vector<int32_t> out;
  if (max_new_tokens == 0) return out;

  const int cached = reuse_prefix(model, prompt);
  model.eval(prompt.data() + cached, int(prompt.size()) - cached, false, logits.data());
  for (;;) {
    const int32_t next = argmax(logits.data(), n_vocab);
    out.push_back(next);
    if (int(out.size()) >= max_new_tokens) break;
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    if (model.n_past() >= model.n_ctx()) break;
    model.eval(&next, 1, false, logits.data());
  }
  return out;
}

}  // namespace sc
