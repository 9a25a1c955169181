#include "backend/registry.h"

#include <stdexcept>

#include "backend/cpu/backend_cpu.h"
#include "util/errors.h"
#include "util/thread_pool.h"

namespace sc {
namespace {

std::unique_ptr<Backend> make_cpu(const BackendOptions& o) {
  return make_cpu_backend(o.n_threads > 0 ? o.n_threads : default_thread_count());
}

// No GPU backend is compiled into this build yet; the message says so, so a
// user asking for one learns what is missing instead of getting the CPU.
std::unique_ptr<Backend> make_cuda(const BackendOptions&) {
  throw BackendUnavailableError("backend 'cuda' is not available: this build of starcoder-cpp has no CUDA backend");
}

}  // namespace

std::vector<std::string> backend_names() { return {"cpu", "cuda", "auto"}; }

std::unique_ptr<Backend> make_backend(const BackendOptions& o, std::string* note) {
  if (note) note->clear();
  if (o.name == "cpu") return make_cpu(o);
  if (o.name == "cuda") return make_cuda(o);
  if (o.name == "auto") {
    try {
      return make_cuda(o);
    } catch (const BackendUnavailableError& e) {
      if (note) *note = std::string("auto chose cpu: ") + e.what();
      return make_cpu(o);
    }
  }
  std::string known;
  for (const std::string& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown backend '" + o.name + "' (known: " + known + ")");
}

}  // namespace sc
