#include "model/kv_book.h"

#include <stdexcept>
#include <string>

#include "util/errors.h"

namespace sc {

void KvBook::check_seq(int seq) const {
  if (seq < 0 || seq >= n_seq())
    throw std::invalid_argument("sequence " + std::to_string(seq) + " is out of range [0, " +
                                std::to_string(n_seq()) + ")");
}

const std::vector<int32_t>& KvBook::history(int seq) const {
  check_seq(seq);
  return history_[size_t(seq)];
}

std::vector<int> KvBook::positions(const int* seqs, int n) const {
  for (int i = 0; i < n; ++i) check_seq(seqs[i]);
  std::vector<int> pos(static_cast<size_t>(n));
  std::vector<int> added(history_.size(), 0);
  for (int i = 0; i < n; ++i) {
    const size_t s = size_t(seqs[i]);
    pos[size_t(i)] = int(history_[s].size()) + added[s]++;
    if (pos[size_t(i)] >= n_ctx_)
      throw ContextOverflowError("sequence " + std::to_string(seqs[i]) + " would exceed the context of " +
                                 std::to_string(n_ctx_) + " tokens");
  }
  return pos;
}

void KvBook::append(const int32_t* tokens, const int* seqs, int n) {
  for (int i = 0; i < n; ++i) history_[size_t(seqs[i])].push_back(tokens[i]);
}

void KvBook::truncate(int seq, int n_keep) {
  if (n_keep < 0) throw std::invalid_argument("truncate: n_keep must be >= 0");
  check_seq(seq);
  std::vector<int32_t>& h = history_[size_t(seq)];
  if (n_keep < int(h.size())) {
    h.resize(size_t(n_keep));
    ++version_;
  }
}

void KvBook::clear() {
  for (std::vector<int32_t>& h : history_) h.clear();
  ++version_;
}

}  // namespace sc
