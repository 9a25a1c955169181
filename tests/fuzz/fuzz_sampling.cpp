// libFuzzer harness: sampling parameters from arbitrary bytes (NaN, inf and
// extreme values included), then, when they validate, a sampler run on
// logits from the same bytes (which may hold NaN and inf too). The sampler
// must return a token in range or throw; never crash or hang.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include "runtime/sampling.h"

namespace {

template <typename T>
T take(const uint8_t*& p, size_t& n) {
  T v{};
  const size_t k = n < sizeof(T) ? n : sizeof(T);
  std::memcpy(&v, p, k);
  p += k;
  n -= k;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* p = data;
  size_t n = size;
  sc::SamplingParams sp;
  sp.temperature = take<float>(p, n);
  sp.top_k = take<int32_t>(p, n);
  sp.top_p = take<float>(p, n);
  sp.min_p = take<float>(p, n);
  sp.repeat_penalty = take<float>(p, n);
  sp.repeat_last_n = take<int32_t>(p, n);
  sp.seed = take<uint64_t>(p, n);
  try {
    sc::check_sampling_params(sp);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const int n_vocab = 1 + int(take<uint8_t>(p, n));
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  for (float& l : logits) l = take<float>(p, n);
  std::vector<int32_t> recent;
  while (n >= 2) recent.push_back(int32_t(take<uint16_t>(p, n)) % n_vocab);
  try {
    sc::Sampler s(sp);
    const int32_t tok = s.sample(logits.data(), n_vocab, recent);
    if (tok < 0 || tok >= n_vocab) std::abort();
  } catch (const std::exception&) {
  }
  return 0;
}
