// The C entry point of a backend built as its own shared library (the CUDA
// backend: libstarcoder_cuda.so beside the core), which the registry loads
// with dlopen at first use. A C function, so no exception crosses the
// library boundary at creation; the Backend it returns is a C++ object of
// backend.h, so both sides must be built from the same headers: the
// registry passes kBackendAbi and the library refuses any other value.
#pragma once
#include <cstddef>

#include "backend/backend.h"

namespace sc {

// Bump whenever backend.h changes in a way that alters the vtable or a struct.
constexpr int kBackendAbi = 3;

// What a plugin's factory returns.
enum PluginStatus : int {
  kPluginOk = 0,
  kPluginNoDriver = 1,  // the GPU driver library is absent or too old
  kPluginNoDevice = 2,  // the driver is there but sees no usable device
  kPluginAbiMismatch = 3,
  kPluginFailed = 4,    // anything else (message says what)
};

}  // namespace sc

// Creates the backend into *out, or returns a PluginStatus and writes a
// message (NUL-terminated, at most err_size bytes) into err.
extern "C" {
typedef int (*StarcoderBackendFactory)(int abi, sc::Backend** out, char* err, size_t err_size);
}
#define STARCODER_CUDA_FACTORY "starcoder_cuda_create_backend"
