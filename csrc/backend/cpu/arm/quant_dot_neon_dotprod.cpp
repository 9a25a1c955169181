// Quantized dot products with the ARMv8.2 dot-product instructions (SDOT:
// four int8 products summed into each int32 lane in one instruction). This
// file alone is compiled with -march=armv8.2-a+dotprod; nothing here runs
// unless the CPU reports the extension (the neon level's kernels are used
// otherwise, and its activation quantizers are kept either way).
#include "backend/cpu/kernels.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "backend/cpu/arm/quant_dot_neon_impl.h"

namespace sc {
namespace {

bool cpu_has_dotprod_impl() {
#if defined(__linux__)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
  int v = 0;
  size_t len = sizeof(v);
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, nullptr, 0) == 0 && v != 0;
#else
  return false;  // no portable way to ask: stay on the neon level
#endif
}

struct DotSdot {
  static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};

}  // namespace

bool cpu_supports_neon_dotprod() {
  static const bool ok = cpu_has_dotprod_impl();
  return ok;
}

void fill_quant_neon_dotprod(CpuKernels& k) { fill_quant_dots<DotSdot>(k); }

}  // namespace sc

#else  // not an aarch64 build with the dotprod flags

namespace sc {
bool cpu_supports_neon_dotprod() { return false; }
void fill_quant_neon_dotprod(CpuKernels&) {}
}  // namespace sc

#endif
