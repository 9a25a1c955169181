// AVX-512 kernels (F/BW/DQ/VL + VNNI: Ice Lake, Sapphire Rapids, Zen 4 and
// later). This file alone is compiled with the AVX-512 flags; nothing here
// runs unless cpuid says the CPU has them and the OS saves ZMM state.
#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__)
#include <cpuid.h>
#include <immintrin.h>

namespace sc {
namespace {

bool cpu_has_avx512_impl() {
  if (!cpu_supports_avx2()) return false;
  unsigned a, b, c, d;
  // The OS must save opmask and ZMM state as well as XMM/YMM (XCR0 bits 1, 2, 5, 6, 7).
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  return f && dq && bw && vl && vnni;
}

}  // namespace

bool cpu_supports_avx512() {
  static const bool ok = cpu_has_avx512_impl();
  return ok;
}

void fill_float_avx512(CpuKernels& k) {}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
bool cpu_supports_avx512() { return false; }
void fill_float_avx512(CpuKernels&) {}
}  // namespace sc

#endif
