// Choosing a backend by name. "cpu" is always there; "cuda" when this build
// has it and the machine can run it; "auto" takes the best that works and
// says in `note` why it took what it took.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sc {

struct BackendOptions {
  std::string name = "cpu";  // "cpu", "cuda" or "auto"
  int n_threads = 0;         // CPU worker threads; <= 0: one per available core
  // Products of F16/BF16 weights in prompts: "f32" (exact float32 products)
  // or "bf16" (weights and activations rounded to bfloat16 where the CPU
  // multiplies bfloat16 in hardware; a backend that cannot keeps "f32").
  std::string matmul_precision = "f32";
};

// Throws std::invalid_argument for an unknown name and BackendUnavailableError
// (naming what is missing) for one this build or machine cannot run.
// `note` (may be null) gets a line for info(): why "auto" chose what it chose.
std::unique_ptr<Backend> make_backend(const BackendOptions& options, std::string* note = nullptr);

// The names make_backend knows, whether or not this machine can run them.
std::vector<std::string> backend_names();

}  // namespace sc
