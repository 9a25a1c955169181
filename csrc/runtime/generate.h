// Decoding loops on top of Model::eval.
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace sc {

// Makes the cache hold exactly `prompt` minus its last token, keeping the
// longest cached prefix it shares with `prompt` (only the differing tail is
// evaluated later). Returns how many prompt tokens are already cached.
int reuse_prefix(Model& model, const std::vector<int32_t>& prompt, int seq = 0);

// Greedy decoding: evaluates the prompt (reusing any cached prefix), then
// appends argmax tokens until max_new_tokens, the context is full, or a token
// in stop_ids is produced (that token is included in the result).
std::vector<int32_t> generate_greedy(Model& model, const std::vector<int32_t>& prompt, int max_new_tokens,
                                     const std::vector<int32_t>& stop_ids);

// Index of the largest of n > 0 values (the first one on ties); 0 when all are NaN.
int32_t argmax(const float* x, int n);

}  // namespace sc
