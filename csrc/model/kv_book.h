// Which tokens each KV-cache sequence holds. The cache memory itself lives in
// the backend; this is the host's record of it: per sequence, the token ids
// at positions 0..n_past-1, and a version bumped by every change.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sc {

class KvBook {
 public:
  KvBook() : KvBook(0, 0) {}
  KvBook(int n_seq, int n_ctx) : n_ctx_(n_ctx), history_(size_t(n_seq)) {}

  int n_seq() const { return int(history_.size()); }
  // Throws std::invalid_argument for a sequence outside [0, n_seq).
  void check_seq(int seq) const;
  const std::vector<int32_t>& history(int seq) const;
  int n_past(int seq) const { return int(history(seq).size()); }
  uint64_t version() const { return version_; }

  // Position of each of n new tokens, entry i appended to sequence seqs[i]
  // (entries of one sequence in order). Throws ContextOverflowError when a
  // sequence would outgrow n_ctx; nothing changes either way.
  std::vector<int> positions(const int* seqs, int n) const;
  // Records tokens whose keys/values the forward pass has just written.
  void append(const int32_t* tokens, const int* seqs, int n);
  // Marks the start of a forward pass that writes the cache.
  void touch() { ++version_; }
  void truncate(int seq, int n_keep);
  void clear();

 private:
  int n_ctx_;
  std::vector<std::vector<int32_t>> history_;
  uint64_t version_ = 0;
};

}  // namespace sc
