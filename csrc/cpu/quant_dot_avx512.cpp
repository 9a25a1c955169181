// AVX-512 + VNNI quantized dot products: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 weights, Q8_0/Q8_1 activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#include <immintrin.h>

#include "quant.h"

namespace sc {
namespace {

}  // namespace

void fill_quant_legacy_avx512(CpuKernels& k) {}

}  // namespace sc

#else

namespace sc {
void fill_quant_legacy_avx512(CpuKernels&) {}
}  // namespace sc

#endif
