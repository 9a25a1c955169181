// The CPU backend: host memory, the kernel table of the best instruction-set
// level this CPU runs (backend/cpu/kernels.h), and a pool of worker threads.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace sc {

// n_threads: worker threads including the caller (> 0; the registry resolves 0).
// bf16_products: prompts of F16/BF16 weights take the level's bf16 GEMM
// (kernels.h, gemm_bf16) where it has one.
std::unique_ptr<Backend> make_cpu_backend(int n_threads, bool bf16_products = false);

}  // namespace sc
