#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/errors.h"

namespace sc {

Engine::Engine(Model& model, int n_slots, int prefill_chunk) : model_(model) {
  if (n_slots < 1 || n_slots > Model::kMaxSeq)
    throw std::invalid_argument("the number of slots must be in [1, " + std::to_string(Model::kMaxSeq) + "]");
  const int n_batch = model.options().n_batch;
  if (n_slots > n_batch)
    throw std::invalid_argument("n_batch " + std::to_string(n_batch) + " is smaller than the " +
                                std::to_string(n_slots) + " slots: every slot's next token must fit one batch");
  if (prefill_chunk < 1) throw std::invalid_argument("prefill_chunk must be >= 1");
  model.check_memory(n_slots);
  slots_.resize(size_t(n_slots));
  prefill_chunk_ = std::min(prefill_chunk, n_batch);
}

int Engine::n_busy() const {
  int n = 0;
  for (const Slot& s : slots_) n += s.c ? 1 : 0;
  return n;
}

std::pair<int, int> Engine::pick_slot(const std::vector<int32_t>& prompt) const {
  int best = -1, best_common = -1;
  for (int i = 0; i < n_slots(); ++i) {
    const Slot& s = slots_[size_t(i)];
    if (s.c) continue;
    const std::vector<int32_t>& h = model_.history(i);
    // As reuse_prefix: the last prompt token is always evaluated again.
    const size_t limit = std::min(h.size(), prompt.empty() ? 0 : prompt.size() - 1);
    size_t common = 0;
    while (common < limit && h[common] == prompt[common]) ++common;
    if (int(common) > best_common ||
        (int(common) == best_common && s.last_used < slots_[size_t(best)].last_used)) {
      best = i;
      best_common = int(common);
    }
  }
  return best < 0 ? std::make_pair(-1, 0) : std::make_pair(best, best_common);
}

void Engine::start(int slot, SlotRequest req) {
  if (slot < 0 || slot >= n_slots()) throw std::invalid_argument("slot " + std::to_string(slot) + " does not exist");
  Slot& s = slots_[size_t(slot)];
  if (s.c) throw std::invalid_argument("slot " + std::to_string(slot) + " is busy");
  if (req.n_probs < 0) throw std::invalid_argument("n_probs must be >= 0");
  // The constructor validates the prompt and parameters before anything changes.
  auto c = std::make_unique<Completion>(model_, std::move(req.prompt), std::move(req.params), slot);
  if (!req.cache_prompt) model_.truncate(0, slot);
  s.n_prefilled = c->keep_cached_prefix();  // the step()s evaluate the rest in chunks
  s.c = std::move(c);
  s.n_probs = std::min(req.n_probs, model_.hparams().n_vocab);
  s.presence = req.presence_penalty;
  s.frequency = req.frequency_penalty;
  s.counts.clear();
  s.last_used = ++clock_;
}

void Engine::cancel(int slot) {
  Slot& s = slots_.at(size_t(slot));
  s.c.reset();
}

void Engine::finish_event(int slot, StepEvent* ev) {
  Slot& s = slots_[size_t(slot)];
  Completion& c = *s.c;
  ev->finished = true;
  ev->finish = c.finish_;
  ev->piece += c.pending_;  // whatever was held back for a stop string can go now
  ev->n_prompt = c.n_prompt_tokens();
  ev->n_cached = c.n_reused_tokens();
  ev->n_generated = int(c.generated_.size());
  s.c.reset();
}

void Engine::sample(int slot, float* logits, StepEvent* ev) {
  Slot& s = slots_[size_t(slot)];
  Completion& c = *s.c;
  const int n_vocab = model_.hparams().n_vocab;
  raw_.assign(logits, logits + n_vocab);  // the penalties below change `logits`
  if (s.presence != 0.0f || s.frequency != 0.0f)
    for (const auto& [tok, n] : s.counts) logits[size_t(tok)] -= s.presence + s.frequency * float(n);

  const std::string before = c.params_.stop.empty() ? std::string() : c.pending_;
  c.advance(logits);
  const int32_t tok = c.generated_.back();
  if (c.finish_ == FinishReason::kStop) {
    // The text was cut where the first stop string began: name that string.
    const std::string raw = before + model_.tokenizer().token_bytes(tok);
    for (const std::string& w : c.params_.stop)
      if (raw.compare(c.pending_.size(), w.size(), w) == 0) {
        ev->stop_word = w;
        break;
      }
  }
  ev->slot = slot;
  ev->token = tok;
  ev->special = model_.tokenizer().is_special(tok);
  auto it = std::find_if(s.counts.begin(), s.counts.end(), [&](const auto& p) { return p.first == tok; });
  if (it == s.counts.end()) s.counts.emplace_back(tok, 1);
  else ++it->second;
  // The model's own log-probabilities: the raw logits the event needs are
  // read first, then the normaliser overwrites raw_ (no second copy).
  ev->logprob = raw_[size_t(tok)];
  if (s.n_probs > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab), 0);
    for (int i = 0; i < n_vocab; ++i) ids[size_t(i)] = i;
    std::partial_sort(ids.begin(), ids.begin() + s.n_probs, ids.end(),
                      [&](int32_t a, int32_t b) { return raw_[size_t(a)] > raw_[size_t(b)]; });
    for (int i = 0; i < s.n_probs; ++i) ev->top.emplace_back(ids[size_t(i)], raw_[size_t(ids[size_t(i)])]);
  }
  const float lse = log_sum_exp(raw_.data(), n_vocab);
  ev->logprob -= lse;
  for (auto& t : ev->top) t.second -= lse;
  if (c.finished()) {
    finish_event(slot, ev);
    return;
  }
  const size_t n = c.emittable_prefix();
  ev->piece = c.pending_.substr(0, n);
  c.pending_.erase(0, n);
}

std::vector<StepEvent> Engine::step() {
  // 1. The batch: every running slot's last sampled token, then prompt
  //    tokens of prefilling slots, oldest request first, up to the chunk.
  std::vector<int32_t> tokens;
  std::vector<int> seqs;
  std::vector<char> want;
  for (int i = 0; i < n_slots(); ++i) {
    const Slot& s = slots_[size_t(i)];
    if (s.c && !prefilling(s) && s.c->need_eval_) {
      tokens.push_back(s.c->generated_.back());
      seqs.push_back(i);
      want.push_back(1);
    }
  }
  std::vector<int> waiting;
  for (int i = 0; i < n_slots(); ++i)
    if (prefilling(slots_[size_t(i)])) waiting.push_back(i);
  std::sort(waiting.begin(), waiting.end(),
            [&](int a, int b) { return slots_[size_t(a)].last_used < slots_[size_t(b)].last_used; });
  const int n_batch = model_.options().n_batch;
  int budget = std::min(prefill_chunk_, n_batch - int(tokens.size()));
  std::vector<std::pair<int, int>> chunks;  // (slot, prompt tokens in this batch)
  for (int i : waiting) {
    if (budget <= 0) break;
    const Slot& s = slots_[size_t(i)];
    const std::vector<int32_t>& prompt = s.c->prompt_;
    const int k = std::min(budget, int(prompt.size()) - s.n_prefilled);
    for (int t = s.n_prefilled; t < s.n_prefilled + k; ++t) {
      tokens.push_back(prompt[size_t(t)]);
      seqs.push_back(i);
      // Logits of the last prompt token give the first sampled one (none
      // wanted for max_tokens 0: the request only fills the cache).
      want.push_back(t + 1 == int(prompt.size()) && s.c->params_.max_tokens > 0);
    }
    chunks.emplace_back(i, k);
    budget -= k;
  }
  std::vector<StepEvent> events;
  if (tokens.empty()) return events;

  // 2. One forward pass for the whole batch.
  const size_t n_vocab = size_t(model_.hparams().n_vocab);
  logits_.resize(size_t(std::count(want.begin(), want.end(), 1)) * n_vocab);
  try {
    model_.eval_batch(tokens.data(), seqs.data(), int(tokens.size()), logits_.data(), want.data());
  } catch (const std::exception& e) {
    for (int i = 0; i < n_slots(); ++i) {
      if (std::find(seqs.begin(), seqs.end(), i) == seqs.end()) continue;
      StepEvent ev;
      ev.slot = i;
      ev.error = e.what();
      ev.finished = true;
      slots_[size_t(i)].c.reset();
      events.push_back(std::move(ev));
    }
    return events;
  }
  for (const auto& [i, k] : chunks) slots_[size_t(i)].n_prefilled += k;

  // 3. Sample for every row whose logits came back; end the cache-only requests.
  size_t row = 0;
  for (size_t j = 0; j < tokens.size(); ++j) {
    const int i = seqs[j];
    Completion& c = *slots_[size_t(i)].c;
    StepEvent ev;
    ev.slot = i;
    if (want[j]) {
      c.version_ = model_.cache_version();
      sample(i, logits_.data() + row++ * n_vocab, &ev);
    } else if (c.params_.max_tokens == 0 && !prefilling(slots_[size_t(i)]) &&
               (j + 1 == tokens.size() || seqs[j + 1] != i)) {
      c.finish_ = FinishReason::kLength;  // the prompt is cached; nothing to generate
      finish_event(i, &ev);
    } else {
      continue;
    }
    events.push_back(std::move(ev));
  }
  return events;
}

}  // namespace sc
