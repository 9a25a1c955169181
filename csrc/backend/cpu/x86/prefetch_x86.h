// Software prefetch for the decode kernels, which stream every weight row
// once from DRAM. Include only inside an x86 ISA guard.
#pragma once
#include <immintrin.h>

namespace sc {

// How far ahead of the row stream to ask for a cache line. With the
// hardware prefetcher alone, two threads read 13 GB/s of Q4_0 rows out of
// 24 (Zen 3, 1B shape); with this, 17-20 GB/s. 1, 2 and 4 KB measured alike:
// far enough to cover DRAM latency at these rates, near enough that the
// lines are still in L1/L2 when the loads reach them.
// On a 2-core Zen 4 (1B shape, GB/s of file read per decode step, medians
// of 3-4 interleaved runs): AVX-512 Q8_0 22 -> 32, Q4_K_M 25 -> 28, AVX2
// F16 23 -> 24 (zmm F16 lost with it, 22 -> 20: that level uses AVX2's).
constexpr int kStreamPrefetchBytes = 2048;

// Call once per 64 bytes consumed (or a little more often).
inline void prefetch_stream(const void* p) {
  _mm_prefetch(static_cast<const char*>(p) + kStreamPrefetchBytes, _MM_HINT_T0);
}

}  // namespace sc
