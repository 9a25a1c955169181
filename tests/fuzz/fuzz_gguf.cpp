// libFuzzer harness: a GGUF file from arbitrary bytes, as Model(path) sees it:
// open + validate the header, metadata and tensor table, then everything a
// model load does (hyper-parameters, tokenizer, weights through the CPU
// backend, the KV cache and activation buffers) with a small n_ctx. Any
// exception is an answer; a crash, a sanitizer report, a leak or a hang is
// a bug.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "model/model.h"

namespace {

// The input as a file the reader can open by path, without touching disk.
std::string as_file(const uint8_t* data, size_t size) {
  static int fd = memfd_create("fuzz.gguf", 0);
  if (ftruncate(fd, 0) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, off_t(done));
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = as_file(data, size);
  sc::ModelOptions o;
  o.n_ctx = 8;
  o.n_batch = 4;
  o.n_threads = 1;
  try {
    sc::Model m(path, o);
    // A model that loads must also answer a one-token step.
    const int32_t tok = 0;
    std::vector<float> logits(size_t(m.hparams().n_vocab));
    if (m.hparams().n_embd <= 256 && m.hparams().n_layer <= 4) m.eval(&tok, 1, false, logits.data());
  } catch (const std::exception&) {
  }
  return 0;
}
