#include "runtime/completion.h"

#include <algorithm>
#include <stdexcept>

#include "util/errors.h"
#include "runtime/generate.h"

namespace sc {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    default: return "";
  }
}

Completion::Completion(Model& model, std::vector<int32_t> prompt, CompletionParams params, int seq)
    : model_(model), seq_(seq), prompt_(std::move(prompt)), params_(std::move(params)), sampler_(params_.sampling) {
  if (prompt_.empty()) throw std::invalid_argument("the prompt is empty: give at least one token");
  if (params_.max_tokens < 0) throw std::invalid_argument("max_tokens must be >= 0");
  for (int32_t t : prompt_)
    if (t < 0 || t >= model_.hparams().n_vocab)
      throw std::invalid_argument("token id " + std::to_string(t) + " is out of range [0, " +
                                  std::to_string(model_.hparams().n_vocab) + ")");
  for (const std::string& s : params_.stop)
    if (s.empty()) throw std::invalid_argument("stop strings must not be empty");
  if (int64_t(prompt_.size()) > model_.n_ctx())
    throw ContextOverflowError("the prompt has " + std::to_string(prompt_.size()) +
                               " tokens; the context holds " + std::to_string(model_.n_ctx()));
  logits_.resize(size_t(model_.hparams().n_vocab));
}

int Completion::keep_cached_prefix() {
  started_ = true;
  return n_reused_ = reuse_prefix(model_, prompt_, seq_);
}

void Completion::start() {
  if (params_.max_tokens == 0) {
    started_ = true;
    finish_ = FinishReason::kLength;
    return;
  }
  keep_cached_prefix();
  model_.eval(prompt_.data() + n_reused_, int(prompt_.size()) - n_reused_, false, logits_.data(), seq_);
  version_ = model_.cache_version();
}

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
static size_t partial_stop_suffix(const std::string& text, const std::string& stop) {
  for (size_t n = std::min(text.size(), stop.size() - 1); n > 0; --n)
    if (text.compare(text.size() - n, n, stop, 0, n) == 0) return n;
  return 0;
}

// Length of the longest prefix of `s` that ends on a complete UTF-8 sequence
// (an invalid sequence counts as complete: it will never become valid).
static size_t complete_utf8_prefix(const std::string& s) {
  const size_t n = s.size();
  // Look back at most 3 bytes for the lead byte of an unfinished character.
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = 0;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return (need > back) ? n - back : n;
  }
  return n;
}

size_t Completion::emittable_prefix() const {
  size_t hold = 0;
  for (const std::string& s : params_.stop) hold = std::max(hold, partial_stop_suffix(pending_, s));
  return complete_utf8_prefix(pending_.substr(0, pending_.size() - hold));
}

void Completion::sync_cache() {
  if (model_.cache_version() == version_) return;
  std::vector<int32_t> all = prompt_;
  all.insert(all.end(), generated_.begin(), generated_.end() - (need_eval_ ? 1 : 0));
  const int cached = reuse_prefix(model_, all, seq_);
  model_.eval(all.data() + cached, int(all.size()) - cached, false, logits_.data(), seq_);
  version_ = model_.cache_version();
}

void Completion::advance(float* logits) {
  const int32_t tok = sampler_.sample(logits, int(logits_.size()), model_.history(seq_));
  generated_.push_back(tok);
  need_eval_ = false;

  if (std::find(params_.stop_ids.begin(), params_.stop_ids.end(), tok) != params_.stop_ids.end()) {
    finish_ = FinishReason::kEos;
    return;
  }
  pending_ += model_.tokenizer().token_bytes(tok);
  for (const std::string& s : params_.stop) {
    const size_t at = pending_.find(s);
    if (at != std::string::npos) {
      pending_.resize(at);
      finish_ = FinishReason::kStop;
      return;
    }
  }
  // The new token still has to be evaluated; it needs a free position.
  if (int(generated_.size()) >= params_.max_tokens || model_.n_past(seq_) >= model_.n_ctx()) {
    finish_ = FinishReason::kLength;
    return;
  }
  need_eval_ = true;
}

bool Completion::next(std::string* piece) {
  if (!started_) start();
  while (finish_ == FinishReason::kNone) {
    if (need_eval_) {
      sync_cache();
      model_.eval(&generated_.back(), 1, false, logits_.data(), seq_);
      version_ = model_.cache_version();
    }
    advance();
    if (finish_ != FinishReason::kNone) break;
    const size_t n = emittable_prefix();
    if (n > 0) {
      *piece = pending_.substr(0, n);
      pending_.erase(0, n);
      return true;
    }
  }
  if (pending_.empty()) return false;
  *piece = std::move(pending_);  // at the end, hand out whatever is left
  pending_.clear();
  return true;
}

std::vector<BatchResult> complete_batch(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const CompletionParams& params) {
  if (int(prompts.size()) > Model::kMaxSeq)
    throw std::invalid_argument("at most " + std::to_string(Model::kMaxSeq) + " prompts per batch");
  model.check_memory(int(prompts.size()));
  std::vector<Completion> seqs;
  seqs.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    CompletionParams p = params;
    p.sampling.seed = params.sampling.seed + i;
    seqs.emplace_back(model, prompts[i], p, int(i));
  }
  std::vector<BatchResult> out(prompts.size());
  for (Completion& c : seqs) {
    c.start();
    if (!c.finished()) c.advance();
  }
  const size_t n_vocab = size_t(model.hparams().n_vocab);
  std::vector<int32_t> tokens;
  std::vector<int> ids;
  std::vector<float> logits;
  for (;;) {
    tokens.clear();
    ids.clear();
    for (size_t i = 0; i < seqs.size(); ++i)
      if (seqs[i].need_eval_) {
        tokens.push_back(seqs[i].generated_.back());
        ids.push_back(int(i));
      }
    if (tokens.empty()) break;
    logits.resize(tokens.size() * n_vocab);
    model.eval_batch(tokens.data(), ids.data(), int(tokens.size()), logits.data());
    for (size_t j = 0; j < ids.size(); ++j) {
      Completion& c = seqs[size_t(ids[j])];
      std::copy(logits.begin() + ptrdiff_t(j * n_vocab), logits.begin() + ptrdiff_t((j + 1) * n_vocab),
                c.logits_.begin());
      c.version_ = model.cache_version();
      c.advance();
    }
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    out[i].text = std::move(seqs[i].pending_);
    out[i].finish = seqs[i].finish_;
    out[i].n_tokens = int(seqs[i].generated_.size());
  }
  return out;
}

}  // namespace sc
