#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "backend/cpu/kernels.h"  // host math on host logits, whichever backend made them
#include "runtime/generate.h"

namespace sc {

float log_sum_exp(float* x, int n) {
  const float mx = max_of(x, n);
  if (!std::isfinite(mx)) return mx;
  return mx + std::log(cpu_kernels().exp_shift_sum(x, n, mx));
}

void check_sampling_params(const SamplingParams& p) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (!(p.temperature >= 0.f) || !std::isfinite(p.temperature)) bad("temperature must be a finite number >= 0");
  if (p.top_k < 0) bad("top_k must be >= 0 (0 disables it)");
  if (!(p.top_p > 0.f && p.top_p <= 1.f)) bad("top_p must be in (0, 1]");
  if (!(p.min_p >= 0.f && p.min_p <= 1.f)) bad("min_p must be in [0, 1]");
  if (!(p.repeat_penalty > 0.f) || !std::isfinite(p.repeat_penalty)) bad("repeat_penalty must be a finite number > 0");
  if (p.repeat_last_n < -1) bad("repeat_last_n must be >= -1");
}

Sampler::Sampler(const SamplingParams& params) : p_(params), rng_(params.seed) { check_sampling_params(p_); }

void Sampler::apply_repeat_penalty(float* logits, int n_vocab, const std::vector<int32_t>& recent) const {
  if (p_.repeat_penalty == 1.f || p_.repeat_last_n == 0) return;
  const size_t n = p_.repeat_last_n < 0 ? recent.size() : std::min(recent.size(), size_t(p_.repeat_last_n));
  // Each distinct token is penalised once, however often it appears.
  std::vector<int32_t> seen(recent.end() - n, recent.end());
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int32_t t : seen) {
    if (t < 0 || t >= n_vocab) continue;
    float& l = logits[t];
    l = l > 0.f ? l / p_.repeat_penalty : l * p_.repeat_penalty;
  }
}

void Sampler::filter(const float* logits, int n_vocab) {
  cand_.resize(size_t(n_vocab));
  for (int i = 0; i < n_vocab; ++i) cand_[size_t(i)] = {i, logits[i] / p_.temperature};
  auto by_logit = [](const std::pair<int32_t, float>& a, const std::pair<int32_t, float>& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  // top-k: keep the k largest (a partial sort keeps this cheap for k << n).
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) keep = size_t(p_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + ptrdiff_t(keep), cand_.end(), by_logit);
  cand_.resize(keep);

  // softmax over the survivors
  const float mx = cand_[0].second;
  double sum = 0.0;
  for (auto& c : cand_) {
    c.second = std::exp(c.second - mx);
    sum += c.second;
  }
  for (auto& c : cand_) c.second = float(c.second / sum);

  // top-p: the smallest prefix whose mass reaches top_p.
  if (p_.top_p < 1.f) {
    double cum = 0.0;
    size_t n = 0;
    while (n < cand_.size()) {
      cum += cand_[n].second;
      ++n;
      if (cum >= p_.top_p) break;
    }
    cand_.resize(n);
  }
  // min-p: drop tokens less likely than min_p times the best one.
  if (p_.min_p > 0.f) {
    const float floor = p_.min_p * cand_[0].second;
    size_t n = 1;
    while (n < cand_.size() && cand_[n].second >= floor) ++n;
    cand_.resize(n);
  }
  double total = 0.0;
  for (const auto& c : cand_) total += c.second;
  for (auto& c : cand_) c.second = float(c.second / total);
}

std::vector<std::pair<int32_t, float>> Sampler::distribution(float* logits, int n_vocab,
                                                             const std::vector<int32_t>& recent) {
  apply_repeat_penalty(logits, n_vocab, recent);
  if (p_.temperature == 0.f) return {{argmax(logits, n_vocab), 1.f}};
  filter(logits, n_vocab);
  return cand_;
}

int32_t Sampler::sample(float* logits, int n_vocab, const std::vector<int32_t>& recent) {
  apply_repeat_penalty(logits, n_vocab, recent);
  if (p_.temperature == 0.f) return argmax(logits, n_vocab);
  filter(logits, n_vocab);
  // Inverse-CDF draw from a 53-bit uniform: identical on every platform
  // (std::*_distribution implementations differ between standard libraries).
  const double u = double(rng_() >> 11) * (1.0 / 9007199254740992.0);
  double cum = 0.0;
  for (const auto& c : cand_) {
    cum += c.second;
    if (u < cum) return c.first;
  }
  return cand_.back().first;
}

}  // namespace sc
