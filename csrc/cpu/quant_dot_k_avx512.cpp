// AVX-512 + VNNI quantized dot products: the k-quants Q2_K..Q6_K, Q8_K activations.
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

void fill_quant_k_avx512(CpuKernels& k) {}

}  // namespace sc

#else

namespace sc {
void fill_quant_k_avx512(CpuKernels&) {}
}  // namespace sc

#endif
