#include "backend/registry.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "backend/cpu/backend_cpu.h"
#include "backend/plugin_abi.h"
#include "util/errors.h"
#include "util/thread_pool.h"

namespace sc {
namespace {

std::unique_ptr<Backend> make_cpu(const BackendOptions& o) {
  return make_cpu_backend(o.n_threads > 0 ? o.n_threads : default_thread_count(), o.matmul_precision == "bf16");
}

// The CUDA backend is a separate library (built only with -DSTARCODER_CUDA=ON)
// that is loaded on first use, so a CPU-only install never needs a CUDA file.
// It is looked for beside the library holding this code (the _core module),
// or where STARCODER_CUDA_LIB says.
constexpr const char* kCudaLibName = "libstarcoder_cuda.so";

std::string cuda_library_path(bool* from_env) {
  const char* env = std::getenv("STARCODER_CUDA_LIB");
  *from_env = env && *env;
  if (*from_env) return env;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&cuda_library_path), &info) && info.dli_fname) {
    std::string self = info.dli_fname;
    const size_t slash = self.rfind('/');
    if (slash != std::string::npos) return self.substr(0, slash + 1) + kCudaLibName;
  }
  return kCudaLibName;
}

// Loaded once and never closed: backends made by it keep their code there.
StarcoderBackendFactory load_cuda_factory() {
  static std::mutex mu;
  static StarcoderBackendFactory factory = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (factory) return factory;
  bool from_env = false;
  const std::string path = cuda_library_path(&from_env);
  const std::string pre = "backend 'cuda' is not available: ";
  if (!from_env && access(path.c_str(), F_OK) != 0)
    throw BackendUnavailableError(pre + "this build has no CUDA backend (built without -DSTARCODER_CUDA=ON; no " +
                                  path + ")");
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = dlerror();
    throw BackendUnavailableError(pre + (from_env ? "STARCODER_CUDA_LIB=" : "") + "cannot load " + path + ": " +
                                  (why ? why : "unknown error"));
  }
  void* sym = dlsym(h, STARCODER_CUDA_FACTORY);
  if (!sym) throw BackendUnavailableError(pre + path + " has no " + STARCODER_CUDA_FACTORY + " (not a starcoder-cpp CUDA backend)");
  factory = reinterpret_cast<StarcoderBackendFactory>(sym);
  return factory;
}

std::unique_ptr<Backend> make_cuda(const BackendOptions&) {
  StarcoderBackendFactory create = load_cuda_factory();
  Backend* be = nullptr;
  char err[512] = {0};
  const int status = create(kBackendAbi, &be, err, sizeof err);
  if (status != kPluginOk || !be)
    throw BackendUnavailableError(std::string("backend 'cuda' is not available: ") + (err[0] ? err : "unknown error"));
  return std::unique_ptr<Backend>(be);
}

}  // namespace

std::vector<std::string> backend_names() { return {"cpu", "cuda", "auto"}; }

std::unique_ptr<Backend> make_backend(const BackendOptions& o, std::string* note) {
  if (note) note->clear();
  if (o.matmul_precision != "f32" && o.matmul_precision != "bf16")
    throw std::invalid_argument("matmul_precision must be 'f32' or 'bf16', got '" + o.matmul_precision + "'");
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
