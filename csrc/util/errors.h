// Exceptions the core throws; the bindings map each to a Python exception.
#pragma once
#include <stdexcept>

namespace sc {

// The file is a valid GGUF but not a model this runtime can run (wrong
// architecture, missing tensor, shape mismatch, unsupported type).
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// More tokens than the KV cache holds. Thrown before any state changes.
class ContextOverflowError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A configuration that needs more memory than the backend has (KV cache of
// every slot plus the weights); thrown before anything is allocated.
class MemoryLimitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A backend that exists by name but that this build or machine cannot run
// (no CUDA in the build, no driver, no GPU); the message names what is missing.
class BackendUnavailableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sc
